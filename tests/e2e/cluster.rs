//! A throwaway control plane on 127.0.0.1: etcd, kube-apiserver (RBAC on, client-certificate
//! auth), the bindguard CRDs, and the release `bindguard` binary serving as its admission webhook.
//! Everything is a real process; everything is stopped and deleted when the [`Cluster`] drops.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

use crate::kubectl::{Kubectl, Output};
use crate::wait::{self, Probe};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const BINDGUARD: &str = env!("CARGO_BIN_EXE_bindguard");
/// bindguard's own namespace: excluded from its webhooks, home of its lease.
const SYSTEM_NAMESPACE: &str = "bindguard-system";
/// How long any one start-up step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running cluster with bindguard registered as its webhook.
pub struct Cluster {
    pub kubectl: Kubectl,
    /// Fields drop in order: bindguard, then the API server, then etcd, then the directory.
    /// In a cell so that a scenario can restart it.
    bindguard: RefCell<Proc>,
    /// How bindguard was started, so that it can be started again (and replicas beside it).
    launch: Launch,
    /// Where kube-apiserver, kubectl, etcd and helm were provisioned.
    tools: PathBuf,
    apiserver: Proc,
    /// `https://127.0.0.1:<port>`.
    apiserver_url: String,
    etcd: Proc,
    admin_addr: SocketAddr,
    /// The output of `bindguard webhook-config`, applied as is.
    webhook_config: String,
    dir: Workdir,
}

impl Cluster {
    /// Provisions the binaries, starts every process and waits until the webhook is called.
    pub fn start() -> Result<Cluster> {
        let tools = step(
            "provision kube-apiserver, kubectl, etcd and helm",
            provision,
        )?;
        let dir = Workdir::create()?;
        let ports = Ports::pick()?;
        let pki = Pki::write(&dir.join("pki"))?;
        let etcd = step("start etcd", || start_etcd(&tools, &dir, &ports))?;
        let (apiserver, kubectl) = step("start kube-apiserver", || {
            start_apiserver(&tools, &dir, &ports, &pki)
        })?;
        step("install CRDs", || install_crds(&kubectl))?;
        let (bindguard, launch, webhook_config) = step("start bindguard", || {
            start_bindguard(&dir, &ports, &kubectl, &pki)
        })?;
        let admin_addr = launch.admin;
        let cluster = Cluster {
            kubectl,
            bindguard: RefCell::new(bindguard),
            launch,
            tools: tools.clone(),
            apiserver,
            apiserver_url: format!("https://127.0.0.1:{}", ports.apiserver),
            etcd,
            admin_addr,
            webhook_config,
            dir,
        };
        step("register webhooks", || cluster.register_webhooks())?;
        Ok(cluster)
    }

    /// Applies bindguard's webhook configurations and waits until the API server calls them.
    pub fn register_webhooks(&self) -> Result<()> {
        self.kubectl
            .run_with_stdin(&["apply", "-f", "-"], Some(&self.webhook_config))
            .into_result()?;
        self.wait_webhook(true)
            .with_context(|| format!("bindguard log:\n{}", self.bindguard.borrow().log_tail(40)))
    }

    /// Deletes bindguard's webhook configurations and waits until the API server stops calling them.
    pub fn unregister_webhooks(&self) -> Result<()> {
        self.kubectl
            .run_with_stdin(&["delete", "-f", "-", "--wait"], Some(&self.webhook_config))
            .into_result()?;
        self.wait_webhook(false)
    }

    /// Runs `f` with the webhooks unregistered, so only the API server judges requests, then
    /// registers them again (also when `f` panics) before returning or resuming the panic.
    pub fn without_webhooks(&self, f: impl FnOnce()) {
        self.unregister_webhooks().expect("unregister webhooks");
        let outcome = panic::catch_unwind(AssertUnwindSafe(f));
        self.register_webhooks().expect("register webhooks again");
        if let Err(payload) = outcome {
            panic::resume_unwind(payload);
        }
    }

    /// `GET <path>` on bindguard's admin listener: (status, body).
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.admin_addr, path)
    }

    /// The last `lines` lines of the bindguard, kube-apiserver and etcd logs.
    pub fn log_tails(&self, lines: usize) -> String {
        let bindguard = self.bindguard.borrow();
        [&*bindguard, &self.apiserver, &self.etcd]
            .iter()
            .map(|p| {
                format!(
                    "--- {} log (last {lines} lines)\n{}",
                    p.name,
                    p.log_tail(lines)
                )
            })
            .collect()
    }

    /// kubectl authenticated as `user`, one of [`USERS`], by its client certificate.
    #[allow(dead_code)]
    pub fn kubectl_as(&self, user: &str) -> Kubectl {
        assert!(USERS.contains(&user), "{user} has no client certificate");
        Kubectl::new(
            self.tools.join("kubectl"),
            self.dir().join(format!("kubeconfig-{user}")),
            self.dir().join(format!("kube-cache-{user}")),
        )
    }

    /// Where the logs and certificates live.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The path of a provisioned tool (`kubectl`, `helm`, ...).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.tools.join(name)
    }

    /// The whole log of the main bindguard process (all its runs, appended).
    #[allow(dead_code)] // not every run of the suite selects the scenarios that read it
    pub fn bindguard_log(&self) -> String {
        self.bindguard.borrow().log()
    }

    /// Stops the main bindguard (SIGTERM, then SIGKILL after 5 s), starts it again with the
    /// default arguments and waits until its `/readyz` answers 200. Its log is appended to.
    pub fn restart_bindguard(&self) -> Result<()> {
        self.restart_bindguard_with(&[])
    }

    /// [`Cluster::restart_bindguard`] with `extra` arguments for this run only (the next
    /// restart goes back to the defaults).
    pub fn restart_bindguard_with(&self, extra: &[&str]) -> Result<()> {
        let mut slot = self.bindguard.borrow_mut();
        slot.stop();
        *slot = self
            .launch
            .spawn("bindguard", MAIN_IDENTITY, extra, &self.dir)?;
        slot.wait_ready("bindguard admin /readyz", || {
            probe_http(self.launch.admin, "/readyz")
        })
    }

    /// Starts another bindguard replica beside the main one: its own ports, the lease identity
    /// `identity`, the same certificates and kubeconfig, plus `extra` arguments. Returns once its
    /// `/healthz` answers (a follower is ready too: readiness does not depend on the lease).
    #[allow(dead_code)]
    pub fn start_replica(&self, identity: &str, extra: &[&str]) -> Result<Replica> {
        let webhook = free_port()?;
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut launch = self.launch.clone();
        launch.addr = SocketAddr::from(([127, 0, 0, 1], webhook));
        launch.admin = admin;
        let proc = launch.spawn("replica", identity, extra, &self.dir)?;
        proc.wait_ready("replica admin /healthz", || probe_http(admin, "/healthz"))?;
        Ok(Replica { proc, admin })
    }

    /// The identity of the main bindguard process in the reconcile Lease.
    #[allow(dead_code)]
    pub fn main_identity(&self) -> &'static str {
        MAIN_IDENTITY
    }

    /// Admission requests bindguard has answered for `kind` and `operation` (every verdict, both
    /// webhooks), from its `/metrics`.
    pub fn admission_count(&self, kind: &str, operation: &str) -> Result<u64> {
        self.metric_sum(&format!(
            "bindguard_admission_requests_total{{kind=\"{kind}\",operation=\"{operation}\","
        ))
    }

    /// Reconciles of `kind` bindguard's loop has finished, from its `/metrics`.
    pub fn reconcile_count(&self, kind: &str) -> Result<u64> {
        self.metric_sum(&format!("bindguard_reconciles_total{{kind=\"{kind}\","))
    }

    /// The API server's URL and the files a cluster-admin client needs: CA, certificate, key.
    pub fn admin_access(&self) -> (String, PathBuf, PathBuf, PathBuf) {
        let pki = self.dir().join("pki");
        let files = ["ca.crt", "admin.crt", "admin.key"].map(|f| pki.join(f));
        let [ca, cert, key] = files;
        (self.apiserver_url.clone(), ca, cert, key)
    }

    /// The pids of the running bindguard and kube-apiserver processes.
    pub fn pids(&self) -> Result<(u32, u32)> {
        Ok((self.bindguard.borrow().pid()?, self.apiserver.pid()?))
    }

    /// The sum of the `/metrics` samples whose line starts with `series`.
    pub fn metric_sum(&self, series: &str) -> Result<u64> {
        let (status, body) = self.admin_get("/metrics")?;
        ensure!(status == 200, "GET /metrics answered {status}: {body}");
        body.lines()
            .filter(|line| line.starts_with(series))
            .map(|line| {
                let value = line.rsplit(' ').next().unwrap_or_default();
                value
                    .parse::<u64>()
                    .with_context(|| format!("bad sample: {line}"))
            })
            .sum()
    }

    /// Polls a server-side dry run until it shows both webhooks being called (`registered`) or
    /// neither (not `registered`). Only a real call from the API server proves registration: the
    /// mutating webhook shows in the returned labels, both show in bindguard's request counter.
    fn wait_webhook(&self, registered: bool) -> Result<()> {
        let what = if registered {
            "webhooks to be called"
        } else {
            "webhooks to stop being called"
        };
        wait::until(what, STEP_TIMEOUT, || {
            self.bindguard.borrow().check_alive()?;
            let before = self.admission_count("ResourceReleaseBinding", "CREATE")?;
            let args = [
                "create",
                "--dry-run=server",
                "-n",
                "default",
                "-f",
                "-",
                "-o",
                PROBE_LABEL,
            ];
            let out = self.kubectl.run_with_stdin(&args, Some(PROBE_REQUEST));
            let after = self.admission_count("ResourceReleaseBinding", "CREATE")?;
            let calls = after.saturating_sub(before);
            let mutated = out.success && out.stdout == "probe";
            let done = if registered {
                mutated && calls >= 2
            } else {
                !mutated && calls == 0
            };
            Ok(if done {
                Probe::Ready(())
            } else {
                Probe::NotYet(format!("{calls} webhook calls for:\n{out}"))
            })
        })
    }
}

/// A binding whose project label is wrong: the mutating webhook sets it from `spec.owner`.
const PROBE_REQUEST: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceReleaseBinding
metadata:
  name: bindguard-e2e-probe
  labels:
    openchoreo.dev/project: wrong
spec:
  owner:
    projectName: probe
    resourceName: probe
  environment: development
"#;

const PROBE_LABEL: &str = r"jsonpath={.metadata.labels.openchoreo\.dev/project}";

/// Runs one start-up step, reporting how long it took.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let value = f().with_context(|| format!("e2e setup step failed: {name}"))?;
    eprintln!("e2e: {name}: {:.1?}", started.elapsed());
    Ok(value)
}

/// Runs `provision.sh` (which builds the binaries once and caches them) and returns the
/// directory holding them. Build progress goes to our stderr.
fn provision() -> Result<PathBuf> {
    let script = Path::new(MANIFEST_DIR).join("tests/e2e/provision.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("run {}", script.display()))?;
    ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    for bin in ["etcd", "kube-apiserver", "kubectl", "helm"] {
        ensure!(
            dir.join(bin).is_file(),
            "provision.sh printed {dir:?}, which has no {bin}"
        );
    }
    Ok(dir)
}

fn start_etcd(tools: &Path, dir: &Workdir, ports: &Ports) -> Result<Proc> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let args = [
        "--name=e2e".to_owned(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=e2e={peer}"),
        "--unsafe-no-fsync".to_owned(),
        "--log-level=warn".to_owned(),
    ];
    let etcd = Proc::spawn("etcd", &tools.join("etcd"), &args, &[], dir)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], ports.etcd_client));
    etcd.wait_ready("etcd /health", || probe_http(addr, "/health"))?;
    Ok(etcd)
}

/// Starts kube-apiserver and waits for its `/readyz`; returns it and a kubectl for it.
fn start_apiserver(
    tools: &Path,
    dir: &Workdir,
    ports: &Ports,
    pki: &Pki,
) -> Result<(Proc, Kubectl)> {
    let path = |p: &PathBuf| p.display().to_string();
    let args = [
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", ports.apiserver),
        format!("--cert-dir={}", dir.join("apiserver").display()),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--client-ca-file={}", path(&pki.ca_cert)),
        "--authorization-mode=RBAC".to_owned(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
        format!("--service-account-key-file={}", path(&pki.sa_public)),
        format!("--service-account-signing-key-file={}", path(&pki.sa_key)),
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        "--endpoint-reconciler-type=none".to_owned(),
    ];
    let apiserver = Proc::spawn(
        "kube-apiserver",
        &tools.join("kube-apiserver"),
        &args,
        &[],
        dir,
    )?;
    let admin = (pki.admin_cert.as_path(), pki.admin_key.as_path());
    let kubeconfig = write_kubeconfig(dir, ports.apiserver, &pki.ca_cert, admin, "kubeconfig")?;
    let kubectl = Kubectl::new(tools.join("kubectl"), kubeconfig, dir.join("kube-cache"));
    for (user, cert, key) in &pki.users {
        let file = format!("kubeconfig-{user}");
        write_kubeconfig(dir, ports.apiserver, &pki.ca_cert, (cert, key), &file)?;
    }
    apiserver.wait_ready("kube-apiserver /readyz", || {
        probe_output(kubectl.run(&["get", "--raw", "/readyz"]))
    })?;
    Ok((apiserver, kubectl))
}

/// A kubeconfig `file` for the API server that authenticates with `cert` and `key`.
fn write_kubeconfig(
    dir: &Workdir,
    port: u16,
    ca: &Path,
    (cert, key): (&Path, &Path),
    file: &str,
) -> Result<PathBuf> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority": ca,
        }}],
        "users": [{"name": "user", "user": {
            "client-certificate": cert,
            "client-key": key,
        }}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "user"}}],
        "current-context": "e2e",
    });
    let path = dir.join(file);
    fs::write(&path, config.to_string()).with_context(|| format!("write {file}"))?;
    Ok(path)
}

/// Applies `manifests/base/crds/` and waits until every CRD is Established.
fn install_crds(kubectl: &Kubectl) -> Result<()> {
    let crds = Path::new(MANIFEST_DIR).join("manifests/base/crds");
    ensure!(crds.is_dir(), "{} is missing", crds.display());
    let crds = crds.display().to_string();
    kubectl.run(&["apply", "-f", &crds]).into_result()?;
    wait::until("CRDs to be Established", STEP_TIMEOUT, || {
        let out = kubectl.run(&["get", "crd", "-o", "json"]).into_result()?;
        let list: Value = serde_json::from_str(&out.stdout).context("parse CRD list")?;
        let pending: Vec<&str> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|crd| !is_established(crd))
            .filter_map(|crd| crd["metadata"]["name"].as_str())
            .collect();
        Ok(if pending.is_empty() {
            Probe::Ready(())
        } else {
            Probe::NotYet(format!("not yet Established: {}", pending.join(", ")))
        })
    })
}

fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

/// Starts `bindguard serve` against the cluster as its ServiceAccount (its namespace and
/// `manifests/base/rbac.yaml` applied first, as a deployment has them) and waits for its admin
/// `/readyz`. Returns the process, its admin address
/// and its webhook configurations.
fn start_bindguard(
    dir: &Workdir,
    ports: &Ports,
    kubectl: &Kubectl,
    pki: &Pki,
) -> Result<(Proc, Launch, String)> {
    let manifests = Path::new(MANIFEST_DIR).join("manifests/base");
    let namespace = manifests.join("namespace.yaml").display().to_string();
    kubectl.run(&["apply", "-f", &namespace]).into_result()?;
    let rbac = fs::read_to_string(manifests.join("rbac.yaml")).context("read rbac.yaml")?;
    let rbac = with_request_groups(&rbac, REQUEST_GROUPS)?;
    kubectl
        .run_with_stdin(&["apply", "-f", "-"], Some(&rbac))
        .into_result()?;
    let identity = (pki.bindguard_cert.as_path(), pki.bindguard_key.as_path());
    let kubeconfig = write_kubeconfig(
        dir,
        ports.apiserver,
        &pki.ca_cert,
        identity,
        "bindguard.kubeconfig",
    )?;
    let certs = dir.join("webhook-pki");
    let certs_arg = certs.display().to_string();
    let args = [
        "certs",
        "--out",
        &certs_arg,
        "--dns",
        "127.0.0.1",
        "--dns",
        "localhost",
    ];
    run_bindguard(&args)?;
    let launch = Launch {
        addr: SocketAddr::from(([127, 0, 0, 1], ports.webhook)),
        admin: SocketAddr::from(([127, 0, 0, 1], ports.admin)),
        certs: certs.clone(),
        kubeconfig,
    };
    let bindguard = launch.spawn("bindguard", MAIN_IDENTITY, &[], dir)?;
    bindguard.wait_ready("bindguard admin /readyz", || {
        probe_http(launch.admin, "/readyz")
    })?;
    let ca = certs.join("ca.crt").display().to_string();
    let url = format!("https://{}", launch.addr);
    let config = run_bindguard(&["webhook-config", "--ca-file", &ca, "--url", &url])?;
    Ok((bindguard, launch, config))
}

/// The API groups of the resource requests the scenarios' Promises offer.
const REQUEST_GROUPS: &[&str] = &[
    "marketplace.kratix.io",
    "kv.example.dev",
    "ld.example.dev",
    "other.example.dev",
    "db.kl.example.dev",
    "cache.kl.example.dev",
    "deep.kl.example.dev",
    "long.kl.example.dev",
    "names.kl.example.dev",
    "widget.kl.example.dev",
    "gadget.kl.example.dev",
    "nest.kl.example.dev",
];

/// `rbac.yaml` with its resource-request rule granted on `groups`, as an installer lists the
/// groups of its Promises there.
fn with_request_groups(rbac: &str, groups: &[&str]) -> Result<String> {
    const SHIPPED: &str = r#"apiGroups: ["marketplace.kratix.io"] # resource requests"#;
    ensure!(
        rbac.contains(SHIPPED),
        "rbac.yaml has no line {SHIPPED:?} to list the request groups on"
    );
    let quoted: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
    let listed = format!("apiGroups: [{}] # resource requests", quoted.join(", "));
    Ok(rbac.replace(SHIPPED, &listed))
}

/// Who bindguard is to the API server: its ServiceAccount, whose only permissions are
/// `manifests/base/rbac.yaml`. A client certificate with this common name authenticates as that user.
pub const BINDGUARD_USER: &str = "system:serviceaccount:bindguard-system:bindguard";

/// The lease identity (`POD_NAME`) of the main bindguard process.
const MAIN_IDENTITY: &str = "bindguard-0";

/// How a bindguard `serve` process is started.
#[derive(Clone)]
struct Launch {
    addr: SocketAddr,
    admin: SocketAddr,
    certs: PathBuf,
    kubeconfig: PathBuf,
}

impl Launch {
    /// Starts `bindguard serve` as lease identity `identity`, logging to `<dir>/<name>.log`.
    fn spawn(
        &self,
        name: &'static str,
        identity: &str,
        extra: &[&str],
        dir: &Workdir,
    ) -> Result<Proc> {
        let mut serve = vec![
            "serve".to_owned(),
            format!("--addr={}", self.addr),
            format!("--admin-addr={}", self.admin),
            format!("--tls-cert={}", self.certs.join("tls.crt").display()),
            format!("--tls-key={}", self.certs.join("tls.key").display()),
            // Nothing routes by endpoints here: stop at once on SIGTERM (tests/server.rs proves
            // the drain).
            "--drain-delay=0s".to_owned(),
        ];
        serve.extend(extra.iter().map(|a| a.to_string()));
        let env = [
            ("KUBECONFIG", self.kubeconfig.as_os_str()),
            ("NO_COLOR", OsStr::new("1")),
            ("POD_NAME", OsStr::new(identity)),
            ("POD_NAMESPACE", OsStr::new(SYSTEM_NAMESPACE)),
        ];
        Proc::spawn(name, Path::new(BINDGUARD), &serve, &env, dir)
    }
}

/// A loopback port that is free now and lies below the kernel's ephemeral range, so no outgoing
/// connection (ours, the API server's, etcd's) can take it before its process binds it.
fn free_port() -> Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const BASE: u32 = 10_000;
    let span = ephemeral_low().saturating_sub(BASE).max(1_000);
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(BASE + offset).context("port out of range")?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port between {BASE} and {}", BASE + span)
}

/// The lowest port the kernel hands out to outgoing connections (32768 when unreadable).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A second bindguard process started by [`Cluster::start_replica`]; stopped when dropped.
#[allow(dead_code)]
pub struct Replica {
    proc: Proc,
    admin: SocketAddr,
}

#[allow(dead_code)]
impl Replica {
    /// `GET <path>` on the replica's admin listener: (status, body).
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.admin, path)
    }

    /// Everything the replica has logged so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// SIGTERM, as Kubernetes stops a pod; waits for the exit (SIGKILL after 5 s).
    pub fn terminate(mut self) {
        self.proc.stop();
    }

    /// SIGKILL: the process dies without any chance to clean up (a node failure).
    pub fn kill(mut self) {
        self.proc.kill();
    }
}

/// Runs a short bindguard subcommand and returns its stdout.
fn run_bindguard(args: &[&str]) -> Result<String> {
    let out = Command::new(BINDGUARD)
        .args(args)
        .output()
        .with_context(|| format!("run {BINDGUARD}"))?;
    ensure!(
        out.status.success(),
        "bindguard {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ready when `GET <path>` answers 200.
fn probe_http(addr: SocketAddr, path: &str) -> Probe<()> {
    match http_get(addr, path) {
        Ok((200, _)) => Probe::Ready(()),
        Ok((status, body)) => Probe::NotYet(format!("{status} {body}")),
        Err(e) => Probe::NotYet(format!("{e:#}")),
    }
}

/// Ready when kubectl succeeded.
fn probe_output(out: Output) -> Probe<()> {
    if out.success {
        Probe::Ready(())
    } else {
        Probe::NotYet(out.to_string())
    }
}

/// A temporary directory for one run, deleted on drop unless `BINDGUARD_E2E_KEEP` is set.
struct Workdir(PathBuf);

impl Workdir {
    fn create() -> Result<Workdir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("bindguard-e2e-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Workdir(path))
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::env::var_os("BINDGUARD_E2E_KEEP").is_some() {
            eprintln!("e2e: kept {}", self.0.display());
        } else if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("e2e: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Loopback ports, free when picked and outside the ephemeral range (see [`free_port`]).
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    webhook: u16,
    admin: u16,
}

impl Ports {
    fn pick() -> Result<Ports> {
        Ok(Ports {
            etcd_client: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            webhook: free_port()?,
            admin: free_port()?,
        })
    }
}

/// The control plane's certificates and keys, as files.
struct Pki {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    /// bindguard's own client certificate: its ServiceAccount's user name, no groups.
    bindguard_cert: PathBuf,
    bindguard_key: PathBuf,
    sa_key: PathBuf,
    sa_public: PathBuf,
    /// Plain users without any group but `system:authenticated`: [`USERS`].
    users: Vec<(&'static str, PathBuf, PathBuf)>,
}

/// Users with a client certificate and a kubeconfig of their own ([`Cluster::kubectl_as`]).
pub const USERS: [&str; 2] = ["e2e-alice", "e2e-bob"];

impl Pki {
    /// A CA, the API server's serving certificate (127.0.0.1, localhost), an admin client
    /// certificate in `system:masters`, bindguard's client certificate, and a service-account
    /// signing key.
    fn write(dir: &Path) -> Result<Pki> {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let file = |name: &str, pem: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            fs::write(&path, pem).with_context(|| format!("write {}", path.display()))?;
            Ok(path)
        };
        let ca = ca()?;
        let (serving, serving_key) = leaf(
            &ca,
            ("kube-apiserver", None),
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (admin, admin_key) = leaf(
            &ca,
            ("bindguard-e2e-admin", Some("system:masters")),
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let (bindguard, bindguard_key) = leaf(
            &ca,
            (BINDGUARD_USER, None),
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let sa = KeyPair::generate().context("generate service-account key")?;
        let mut users = Vec::new();
        for user in USERS {
            let (cert, key) = leaf(&ca, (user, None), &[], ExtendedKeyUsagePurpose::ClientAuth)?;
            let cert = file(&format!("{user}.crt"), &cert)?;
            users.push((user, cert, file(&format!("{user}.key"), &key)?));
        }
        Ok(Pki {
            users,
            ca_cert: file("ca.crt", &ca.pem())?,
            serving_cert: file("apiserver.crt", &serving)?,
            serving_key: file("apiserver.key", &serving_key)?,
            admin_cert: file("admin.crt", &admin)?,
            admin_key: file("admin.key", &admin_key)?,
            bindguard_cert: file("bindguard.crt", &bindguard)?,
            bindguard_key: file("bindguard.key", &bindguard_key)?,
            sa_key: file("sa.key", &sa.serialize_pem())?,
            sa_public: file("sa.pub", &sa.public_key_pem())?,
        })
    }
}

fn ca() -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "bindguard-e2e-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

/// A certificate signed by `ca` for `subject` (common name, organization) and `sans`:
/// (certificate PEM, key PEM).
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    (common_name, organization): (&str, Option<&str>),
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A plain-HTTP `GET` on loopback: (status, body). HTTP/1.0, so the body is never chunked.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP response from {addr}{path}: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// A child process that cannot outlive the test process.
///
/// Each child runs under a small `sh` supervisor holding the read end of a pipe whose write end
/// only we hold. When we drop it, or when the test process dies in any way (even SIGKILL), the
/// pipe reads end-of-file and the supervisor stops the child: SIGTERM, then SIGKILL after 5 s.
/// The supervisor exits with the child's status, so an early exit is visible to `try_wait`.
struct Proc {
    name: &'static str,
    /// In a cell so that a shared `&Proc` can still ask whether it has exited.
    child: RefCell<Child>,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

const SUPERVISOR: &str = r#"
exec 3<&0 </dev/null
"$@" 3<&- &
child=$!
( read -r _ <&3; kill -TERM "$child" 2>/dev/null; sleep 5; kill -KILL "$child" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$child"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

impl Proc {
    /// Starts `program args` with extra `env`, logging stdout and stderr to `<dir>/<name>.log`.
    fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        env: &[(&str, &OsStr)],
        dir: &Workdir,
    ) -> Result<Proc> {
        let log = dir.join(&format!("{name}.log"));
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(name)
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(file.try_clone().context("clone log file")?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let lifeline = child.stdin.take();
        Ok(Proc {
            name,
            child: RefCell::new(child),
            lifeline,
            log,
        })
    }

    /// An error (with the log tail) if the process has exited.
    fn check_alive(&self) -> Result<()> {
        let status = self
            .child
            .borrow_mut()
            .try_wait()
            .context("check child status")?;
        match status {
            Some(status) => bail!(
                "{} exited ({status}); log tail:\n{}",
                self.name,
                self.log_tail(40)
            ),
            None => Ok(()),
        }
    }

    /// Polls `probe` until ready, failing at once if the process exits.
    fn wait_ready(&self, what: &str, mut probe: impl FnMut() -> Probe<()>) -> Result<()> {
        wait::until(what, STEP_TIMEOUT, || {
            self.check_alive()?;
            Ok(probe())
        })
        .with_context(|| format!("{} log tail:\n{}", self.name, self.log_tail(40)))
    }

    fn log(&self) -> String {
        let text = fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned());
        text.unwrap_or_else(|e| format!("(cannot read {}: {e})\n", self.log.display()))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

impl Proc {
    /// The supervised process itself: the supervisor's child that is not a shell.
    fn pid(&self) -> Result<u32> {
        let supervisor = self.child.borrow().id();
        for entry in fs::read_dir("/proc").context("read /proc")?.flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = &stat[open + 1..close];
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            if comm != "sh" && ppid == Some(supervisor.to_string().as_str()) {
                return entry.file_name().to_string_lossy().parse().context("pid");
            }
        }
        bail!(
            "{}: no supervised process under pid {supervisor}",
            self.name
        )
    }

    /// Closes the lifeline (SIGTERM, SIGKILL after 5 s) and waits for the exit.
    fn stop(&mut self) {
        drop(self.lifeline.take());
        self.reap();
    }

    /// SIGKILL to the supervised process itself, then waits for the supervisor to exit.
    #[allow(dead_code)]
    fn kill(&mut self) {
        let supervisor = self.child.get_mut().id().to_string();
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &supervisor])
            .status();
        self.stop();
    }

    fn reap(&mut self) {
        let child = self.child.get_mut();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!("e2e: {} did not stop; killing its supervisor", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
