//! The real kubectl, run as a process against the test cluster.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// kubectl bound to one cluster: a binary, a kubeconfig and a private discovery cache.
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

/// What one kubectl run did.
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(bin: PathBuf, kubeconfig: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            bin,
            kubeconfig,
            cache_dir,
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl <args>`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs `kubectl <args>` with `stdin` (usually YAML for `-f -`).
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", self.cache_dir.display()))
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("kubectl stdin is piped");
            pipe.write_all(text.as_bytes())
                .expect("write kubectl stdin");
        }
        let out = child.wait_with_output().expect("wait for kubectl");
        Output {
            command: format!("kubectl {}", args.join(" ")),
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kubectl create namespace <name>`; panics if it fails.
    pub fn create_namespace(&self, name: &str) -> String {
        self.run(&["create", "namespace", name]).ok();
        name.to_owned()
    }

    /// `kubectl apply -n <ns> -f -` without judging the outcome.
    pub fn try_apply(&self, ns: &str, yaml: &str) -> Output {
        self.run_with_stdin(&["apply", "-n", ns, "-f", "-"], Some(yaml))
    }

    /// `kubectl apply -n <ns> -f -`; panics if it fails.
    pub fn apply(&self, ns: &str, yaml: &str) -> Output {
        self.try_apply(ns, yaml).ok()
    }

    /// `kubectl get <kind> <name> -n <ns> -o json`, parsed; panics if the object is not there.
    pub fn get_json(&self, kind: &str, ns: &str, name: &str) -> Value {
        let out = self.run(&["get", kind, name, "-n", ns, "-o", "json"]).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON: {e}\n{}", out.command, out.stdout))
    }

    /// `kubectl get <kind> <name> -n <ns> -o jsonpath=<path>`; panics if the get fails.
    pub fn jsonpath(&self, kind: &str, ns: &str, name: &str, path: &str) -> String {
        let out = self.run(&[
            "get",
            kind,
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={path}"),
        ]);
        out.ok().stdout
    }
}

impl Output {
    /// Panics with the whole output unless kubectl succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success, "expected success, got failure:\n{self}");
        self
    }

    /// Turns a failed run into an error carrying its output.
    pub fn into_result(self) -> anyhow::Result<Output> {
        if self.success {
            Ok(self)
        } else {
            anyhow::bail!("{self}")
        }
    }

    /// The stderr line that contains `needle`, if any.
    pub fn stderr_line(&self, needle: &str) -> Option<&str> {
        self.stderr.lines().find(|line| line.contains(needle))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.success { "succeeded" } else { "failed" };
        write!(
            f,
            "$ {} ({outcome})\n--- stdout\n{}--- stderr\n{}",
            self.command, self.stdout, self.stderr
        )
    }
}

/// Asserts that kubectl failed and printed a stderr line containing `expected`; returns that line.
#[track_caller]
pub fn assert_denied<'a>(out: &'a Output, expected: &str) -> &'a str {
    assert!(
        !out.success,
        "expected a refusal, but kubectl succeeded:\n{out}"
    );
    out.stderr_line(expected)
        .unwrap_or_else(|| panic!("no stderr line contains {expected:?}:\n{out}"))
}
