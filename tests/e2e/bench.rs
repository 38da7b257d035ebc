//! The live benchmark: `BINDGUARD_LIVE_BENCH=N cargo test --release --test e2e` starts the
//! suite's cluster and, instead of the scenarios, creates N ResourceReleaseBindings (with N/10
//! Resources and releases, 10 Environments and a ResourceType per namespace, over 100
//! namespaces) through the API server with bindguard's webhooks and loop running, waits until
//! the loop has finished every binding, and prints one table: admission reviews per created
//! binding, CPU of bindguard and the API server, bindguard's RSS, and the latency bindguard adds
//! to a binding write (dry-run creates over one keep-alive connection, registered versus not).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::cluster::Cluster;

const NAMESPACES: usize = 100;
const ENVIRONMENTS: usize = 10;
const OC: &str = "/apis/openchoreo.dev/v1alpha1";
/// Creates in flight at once.
const CONCURRENCY: usize = 8;
/// Latency rounds: each times dry-run creates with the webhooks registered, then not, so both
/// states see the same machine; slow moments of the API server fall into either.
const ROUNDS: usize = 8;
/// Dry-run creates timed per state and round, after [`WARM_UP`] untimed ones.
const PROBES: usize = 250;
/// Untimed creates after each registration change: the API server's first calls to a
/// newly registered webhook build its client and connection.
const WARM_UP: usize = 10;

/// Runs the benchmark with `n` bindings; the cluster is torn down by the caller.
pub fn run(c: &Cluster, n: usize) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let api = Api::connect(c)?;
    let (bindguard, apiserver) = c.pids()?;
    let reviews = |op| c.admission_count("ResourceReleaseBinding", op);
    let before = (
        reviews("CREATE")?,
        reviews("UPDATE")?,
        c.metric_sum("bindguard_admission_requests_total{")?,
    );
    let cpu_before = (cpu_seconds(bindguard)?, cpu_seconds(apiserver)?);
    let patches_before = runtime.block_on(api.binding_patches())?;
    let started = Instant::now();
    let (namespaces, referents, bindings) = objects(n);
    let referent_count = namespaces.len() + referents.len();
    runtime.block_on(api.create_all(namespaces))?;
    runtime.block_on(api.create_all(referents))?;
    runtime.block_on(api.create_all(bindings))?;
    let created = started.elapsed();
    runtime.block_on(api.settled(n))?;
    let settled = started.elapsed();
    let cpu = (
        cpu_seconds(bindguard)? - cpu_before.0,
        cpu_seconds(apiserver)? - cpu_before.1,
    );
    let patches = runtime.block_on(api.binding_patches())?;
    let after = (
        reviews("CREATE")?,
        reviews("UPDATE")?,
        c.metric_sum("bindguard_admission_requests_total{")?,
    );
    let rss = memory(bindguard)?;
    let latency = added_latency(c, &runtime, &api)?;
    let per = |count: u64| count as f64 / n as f64;
    println!("| live figure (N = {n}) | value |");
    println!("|---|---|");
    println!(
        "| objects created (bindings + referents) | {} in {created:.1?} |",
        n + referent_count
    );
    println!("| every binding finalized and Synced after | {settled:.1?} |");
    println!(
        "| admission reviews per created binding (CREATE + UPDATE) | {:.2} ({:.2} + {:.2}) |",
        per(after.0 - before.0 + after.1 - before.1),
        per(after.0 - before.0),
        per(after.1 - before.1)
    );
    println!(
        "| admission reviews of every kind, per binding | {:.2} |",
        per(after.2 - before.2)
    );
    println!(
        "| binding writes the API server answered, per binding: PATCH / PATCH status | {:.2} / {:.2} |",
        per(patches.0 - patches_before.0),
        per(patches.1 - patches_before.1)
    );
    println!(
        "| CPU seconds: bindguard / kube-apiserver | {:.1} / {:.1} |",
        cpu.0, cpu.1
    );
    println!(
        "| bindguard RSS now / peak (VmRSS / VmHWM) | {} / {} MiB |",
        rss.0 / 1024,
        rss.1 / 1024
    );
    let (registered, bare) = (&latency.registered, &latency.bare);
    println!(
        "| dry-run binding create, median / p99: registered / not ({ROUNDS} rounds x {PROBES} each, alternated) | {:.2} / {:.2}, {:.2} / {:.2} ms |",
        registered.0, registered.1, bare.0, bare.1
    );
    println!(
        "| added by the webhooks: median / p99 | {:.2} / {:.2} ms |",
        registered.0 - bare.0,
        registered.1 - bare.1
    );
    println!(
        "| p99 per round, registered / not | {} ms |",
        latency
            .rounds
            .iter()
            .map(|(r, b)| format!("{r:.2} / {b:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| bindguard's own answers in the registered rounds: all / over 1 ms / over 5 ms | {} / {} / {} |",
        latency.answers[0], latency.answers[1], latency.answers[2]
    );
    println!(
        "| the API server's timing of those calls: all / over 5 ms / over 25 ms | {} / {} / {} |",
        latency.calls[0], latency.calls[1], latency.calls[2]
    );
    Ok(())
}

/// A create request: the collection's path and the object.
type Create = (String, Value);

/// Namespaces, the bindings' referents, and the bindings (unique targets: resource x
/// environment).
fn objects(n: usize) -> (Vec<Create>, Vec<Create>, Vec<Create>) {
    let resources = n.div_ceil(ENVIRONMENTS).max(1);
    let schema = json!({"type": "object", "additionalProperties": false, "properties": {
        "memory": {"type": "string", "pattern": "^[0-9]+(Mi|Gi)$", "default": "256Mi"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}}});
    let (mut namespaces, mut referents, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..NAMESPACES {
        let ns = namespace(i);
        let at = |plural: &str| format!("{OC}/namespaces/{ns}/{plural}");
        namespaces.push((
            "/api/v1/namespaces".into(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        ));
        referents.push((
            at("projects"),
            object(
                "Project",
                "shop",
                json!({"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}}),
            ),
        ));
        for e in 0..ENVIRONMENTS {
            referents.push((
                at("environments"),
                object("Environment", &format!("env-{e}"), json!({})),
            ));
        }
        referents.push((
            at("resourcetypes"),
            object(
                "ResourceType",
                "db",
                json!({"environmentConfigs": {"openAPIV3Schema": schema}}),
            ),
        ));
        for r in (i..resources).step_by(NAMESPACES) {
            let owner = json!({"projectName": "shop", "resourceName": format!("db-{r}")});
            referents.push((at("resources"), object("Resource", &format!("db-{r}"), json!({"owner": {"projectName": "shop"}, "type": {"kind": "ResourceType", "name": "db"}}))));
            referents.push((at("resourcereleases"), object("ResourceRelease", &format!("db-{r}-r1"), json!({"owner": owner, "resourceType": {"kind": "ResourceType", "name": "db", "spec": {"environmentConfigs": {"openAPIV3Schema": schema}}}}))));
            for e in (0..ENVIRONMENTS).take_while(|e| r * ENVIRONMENTS + e < n) {
                let spec = json!({"owner": owner, "environment": format!("env-{e}"), "resourceRelease": format!("db-{r}-r1"),
                    "resourceTypeEnvironmentConfigs": {"memory": "512Mi", "replicas": 2}});
                bindings.push((
                    at("resourcereleasebindings"),
                    object("ResourceReleaseBinding", &format!("db-{r}-e{e}"), spec),
                ));
            }
        }
    }
    (namespaces, referents, bindings)
}

fn namespace(i: usize) -> String {
    format!("bench-{i:03}")
}

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "openchoreo.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// The latency bindguard adds to a binding write.
struct Added {
    /// (median ms, p99 ms) with the webhooks registered, and not.
    registered: (f64, f64),
    bare: (f64, f64),
    /// (registered p99, not p99) of each round.
    rounds: Vec<(f64, f64)>,
    /// bindguard's own answers while registered: how many, how many over 1 ms and over 5 ms
    /// (from its latency histogram).
    answers: [u64; 3],
    /// The same calls as the API server timed them: how many, over 5 ms, over 25 ms.
    calls: [u64; 3],
}

/// Dry-run creates of one allowed binding over one keep-alive connection, in [`ROUNDS`] of
/// registered then unregistered.
fn added_latency(c: &Cluster, runtime: &tokio::runtime::Runtime, api: &Api) -> Result<Added> {
    let ns = namespace(0);
    let path = format!("{OC}/namespaces/{ns}/resourcereleasebindings?dryRun=All");
    let owner = json!({"projectName": "shop", "resourceName": "db-0"});
    let probe = object(
        "ResourceReleaseBinding",
        "latency-probe",
        json!({"owner": owner, "environment": "env-probe", "resourceRelease": "db-0-r1"}),
    );
    runtime.block_on(api.create(
        &format!("{OC}/namespaces/{ns}/environments"),
        &object("Environment", "env-probe", json!({})),
    ))?;
    let warm_up = || {
        runtime
            .block_on(api.timed(&path, &probe, WARM_UP))
            .map(drop)
    };
    let timed = || -> Result<Vec<f64>> {
        let mut ms = runtime.block_on(api.timed(&path, &probe, PROBES))?;
        ms.sort_by(f64::total_cmp);
        Ok(ms)
    };
    let answers = || -> Result<[u64; 3]> {
        let count = c.metric_sum("bindguard_admission_duration_seconds_count")?;
        let within = |le: &str| {
            c.metric_sum(&format!(
                "bindguard_admission_duration_seconds_bucket{{le=\"{le}\"}}"
            ))
        };
        Ok([count, count - within("0.001")?, count - within("0.005")?])
    };
    let calls = || runtime.block_on(api.webhook_calls());
    let (mut registered, mut bare, mut rounds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut answered, mut called) = ([0; 3], [0; 3]);
    for _ in 0..ROUNDS {
        warm_up()?;
        let before = (answers()?, calls()?);
        let with = timed()?;
        let after = (answers()?, calls()?);
        for i in 0..3 {
            answered[i] += after.0[i].saturating_sub(before.0[i]);
            called[i] += after.1[i].saturating_sub(before.1[i]);
        }
        c.unregister_webhooks()?;
        let without = warm_up().and_then(|()| timed());
        c.register_webhooks()?;
        let without = without?;
        rounds.push((p99(&with), p99(&without)));
        registered.extend(with);
        bare.extend(without);
    }
    registered.sort_by(f64::total_cmp);
    bare.sort_by(f64::total_cmp);
    Ok(Added {
        registered: (median(&registered), p99(&registered)),
        bare: (median(&bare), p99(&bare)),
        rounds,
        answers: answered,
        calls: called,
    })
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

fn p99(sorted: &[f64]) -> f64 {
    sorted[sorted.len() * 99 / 100]
}

/// A cluster-admin HTTPS client of the API server (one keep-alive connection per request in
/// flight).
struct Api {
    base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Api {
    fn connect(c: &Cluster) -> Result<Api> {
        let (base, ca, cert, key) = c.admin_access();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&ca).context("CA")? {
            roots.add(cert?)?;
        }
        let chain = CertificateDer::pem_file_iter(&cert)
            .context("client certificate")?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(Path::new(&key)).context("client key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Api { base, client })
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Bytes)> {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let response = self.client.request(request).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    async fn create(&self, path: &str, object: &Value) -> Result<()> {
        let (status, body) = self.send("POST", path, Some(object)).await?;
        ensure!(
            status == 201,
            "POST {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    async fn create_all(&self, objects: Vec<Create>) -> Result<()> {
        let mut created = futures::stream::iter(&objects)
            .map(|(path, object)| self.create(path, object))
            .buffer_unordered(CONCURRENCY);
        while let Some(result) = created.next().await {
            result?;
        }
        Ok(())
    }

    /// Milliseconds of each of `count` sequential POSTs (any answer but a server error counts).
    async fn timed(&self, path: &str, object: &Value, count: usize) -> Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            let (status, body) = self.send("POST", path, Some(object)).await?;
            ensure!(
                status == 201,
                "dry-run create answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok(ms)
    }

    /// bindguard's webhook calls as the API server timed them, from its `/metrics`: how many,
    /// how many over 5 ms and over 25 ms (its histogram's first buckets).
    async fn webhook_calls(&self) -> Result<[u64; 3]> {
        let (status, body) = self.send("GET", "/metrics", None).await?;
        ensure!(status == 200, "GET /metrics answered {status}");
        let text = String::from_utf8_lossy(&body);
        let sum = |prefix: &str, le: Option<&str>| -> Result<u64> {
            let mut total = 0.0;
            for line in text.lines().filter(|l| {
                l.starts_with(prefix)
                    && l.contains("bindguard.dev")
                    && le.is_none_or(|le| l.contains(&format!("le=\"{le}\"")))
            }) {
                total += line.rsplit(' ').next().unwrap_or("0").parse::<f64>()?;
            }
            Ok(total as u64)
        };
        let series = "apiserver_admission_webhook_admission_duration_seconds";
        let count = sum(&format!("{series}_count{{"), None)?;
        let bucket = format!("{series}_bucket{{");
        let (within_5, within_25) = (sum(&bucket, Some("0.005"))?, sum(&bucket, Some("0.025"))?);
        Ok([count, count - within_5, count - within_25])
    }

    /// PATCH requests on ResourceReleaseBindings the API server has answered, from its
    /// `/metrics`: (the object, its status).
    async fn binding_patches(&self) -> Result<(u64, u64)> {
        let (status, body) = self.send("GET", "/metrics", None).await?;
        ensure!(status == 200, "GET /metrics answered {status}");
        let text = String::from_utf8_lossy(&body);
        let mut counts = (0, 0);
        for line in text.lines().filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains(r#"resource="resourcereleasebindings""#)
                && l.contains(r#"verb="PATCH""#)
        }) {
            let value: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
            match line.contains(r#"subresource="status""#) {
                true => counts.1 += value as u64,
                false => counts.0 += value as u64,
            }
        }
        Ok(counts)
    }

    /// Waits until `n` bindings carry the loop's finalizer and a `Synced` condition.
    async fn settled(&self, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let (status, body) = self
                .send("GET", &format!("{OC}/resourcereleasebindings"), None)
                .await?;
            ensure!(status == 200, "list answered {status}");
            let list: Value = serde_json::from_slice(&body)?;
            let done = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| finished(b))
                .count();
            if done >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {done} of {n} bindings were finished by the loop");
            }
            // Each look lists every binding: at large N, look less often than the loop works.
            tokio::time::sleep(Duration::from_secs((n as u64 / 5_000).max(2))).await;
        }
    }
}

fn finished(binding: &Value) -> bool {
    let finalized = binding["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| {
            f.iter()
                .any(|f| f == "openchoreo.dev/resourcereleasebinding-cleanup")
        });
    let synced = binding["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Synced"));
    finalized && synced
}

/// User plus system CPU time of `pid`, in seconds (clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// (VmRSS, VmHWM) of `pid`, in KiB.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .context("status field")?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
