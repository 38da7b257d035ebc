//! End-to-end suite: a real etcd and kube-apiserver, the release `bindguard` binary as their
//! admission webhook, and the real kubectl. Run with `cargo test --release --test e2e`, or
//! `cargo test --release --test e2e -- <substring>...` for the scenarios whose names match.
//!
//! A plain `fn main()` runner (`harness = false`): the cluster is started once, the scenarios run
//! one after another, and the cluster is torn down before the summary line.

mod bench;
mod cluster;
mod kubectl;
mod scenarios;
mod wait;

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use cluster::Cluster;
use scenarios::Scenario;

fn main() -> ExitCode {
    if let Ok(n) = std::env::var("BINDGUARD_LIVE_BENCH") {
        return live_bench(&n);
    }
    let args = Args::parse(std::env::args().skip(1));
    let all = scenarios::all();
    if args.list {
        // The format `cargo nextest` and `cargo test -- --list` expect.
        for s in all
            .iter()
            .filter(|s| !args.ignored && args.selects(s.name()))
        {
            println!("{}: test", s.name());
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&Scenario> = all.into_iter().filter(|s| args.selects(s.name())).collect();
    let failed = if selected.is_empty() {
        0
    } else {
        run_all(&selected)
    };
    println!("{} passed, {failed} failed", selected.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `BINDGUARD_LIVE_BENCH=N`: the live benchmark ([`bench`]) instead of the scenarios.
fn live_bench(n: &str) -> ExitCode {
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("BINDGUARD_LIVE_BENCH must be a number of bindings, not {n:?}");
        return ExitCode::FAILURE;
    };
    let outcome = Cluster::start()
        .and_then(|cluster| bench::run(&cluster, n).with_context(|| cluster.log_tails(30)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("live benchmark failed: {e:?}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the cluster, runs `scenarios` and tears down. Returns how many failed; when the
/// cluster cannot start, all of them have.
fn run_all(scenarios: &[&Scenario]) -> usize {
    let started = Instant::now();
    let cluster = match Cluster::start() {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("e2e: cluster setup failed: {e:?}");
            return scenarios.len();
        }
    };
    eprintln!(
        "e2e: cluster ready in {:.1?} ({})",
        started.elapsed(),
        cluster.dir().display()
    );
    let last_panic = capture_panics();
    let failed = scenarios
        .iter()
        .filter(|s| !run_one(s, &cluster, &last_panic))
        .count();
    let _ = panic::take_hook();
    let teardown = Instant::now();
    drop(cluster);
    eprintln!("e2e: teardown in {:.1?}", teardown.elapsed());
    failed
}

/// Runs one scenario; prints `test <name> ... ok` or `FAILED` with the panic and the log tails.
fn run_one(scenario: &Scenario, cluster: &Cluster, last_panic: &Mutex<String>) -> bool {
    let started = Instant::now();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| (scenario.run)(cluster)));
    let elapsed = started.elapsed();
    match outcome {
        Ok(()) => println!("test {} ... ok ({elapsed:.1?})", scenario.name()),
        Err(_) => {
            println!("test {} ... FAILED ({elapsed:.1?})", scenario.name());
            let message = last_panic.lock().map(|m| m.clone()).unwrap_or_default();
            println!("{}\n{}", indent(&message), indent(&cluster.log_tails(20)));
        }
    }
    outcome.is_ok()
}

/// Replaces the panic hook with one that keeps the last panic's message and location, so the
/// runner prints it under the scenario's FAILED line instead of in the middle of the output.
fn capture_panics() -> Arc<Mutex<String>> {
    let last = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&last);
    panic::set_hook(Box::new(move |info| {
        if let Ok(mut message) = sink.lock() {
            *message = info.to_string();
        }
    }));
    last
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Command-line arguments. Cargo passes test-harness flags through verbatim; flags this runner
/// has no use for are ignored, along with the values of those known to take one.
#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    list: bool,
    ignored: bool,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Args {
        let mut parsed = Args::default();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--list" => parsed.list = true,
                "--ignored" => parsed.ignored = true,
                "--skip" => parsed.skips.extend(args.next()),
                "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" => {
                    args.next();
                }
                flag if flag.starts_with('-') => {}
                filter => parsed.filters.push(filter.to_owned()),
            }
        }
        parsed
    }

    fn selects(&self, name: &str) -> bool {
        let wanted =
            self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()));
        wanted && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}
