//! `bindguard serve` as a process of its own, on free ports read from its "serving" log line.

use super::support::temp_dir;
use bindguard::tls;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

pub struct Served {
    pub child: Child,
    pub webhook: SocketAddr,
    pub admin: SocketAddr,
    pub ca: String,
    /// The JSON log after the "serving" line; nobody reads it unless a test does.
    pub log: Option<BufReader<ChildStderr>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `bindguard serve --state examples/cluster` with `flags`, in a fresh directory
    /// named after `what`, and reads its log up to the "serving" line.
    pub fn spawn(what: &str, flags: &[String]) -> Served {
        Served::spawn_logging(what, flags, None)
    }

    /// [`Served::spawn`] with `RUST_LOG` set to `filter`, if any.
    pub fn spawn_logging(what: &str, flags: &[String], filter: Option<&str>) -> Served {
        let dir = temp_dir(what);
        let bundle = tls::generate(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        tls::write_bundle(&dir, &bundle).unwrap();
        let state = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cluster");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bindguard"));
        command
            .args(["serve", "--state", state, "--log-format=json"])
            .args(["--addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0"])
            .arg(format!("--tls-cert={}", dir.join("tls.crt").display()))
            .arg(format!("--tls-key={}", dir.join("tls.key").display()))
            .args(flags)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped());
        if let Some(filter) = filter {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("bindguard starts");
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let reading = std::thread::spawn(move || {
            for line in (&mut log).lines().map_while(Result::ok) {
                eprintln!("bindguard: {line}");
                let line: Value = serde_json::from_str(&line).unwrap_or_default();
                if line["fields"]["message"] == "serving" {
                    let addr = |k: &str| line["fields"][k].as_str().unwrap().parse().unwrap();
                    let _ = tx.send((addr("webhook"), addr("admin")));
                    break;
                }
            }
            log
        });
        let (webhook, admin) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a serving log line");
        Served {
            child,
            webhook,
            admin,
            ca: bundle.ca_pem,
            log: Some(reading.join().expect("the log reader")),
        }
    }

    /// Echoes the rest of the log to the test's stderr, as it comes.
    pub fn echo_log(&mut self) {
        let Some(log) = self.log.take() else {
            return;
        };
        std::thread::spawn(move || {
            for line in log.lines().map_while(Result::ok) {
                eprintln!("bindguard: {line}");
            }
        });
    }
}
