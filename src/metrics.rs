//! Prometheus text metrics, kept by hand: a few counters and one histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (count, bound) in self.counts.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.total += 1;
    }
}

#[derive(Default)]
struct State {
    requests: BTreeMap<(String, String, String), u64>,
    latency: Histogram,
    watch_restarts: BTreeMap<String, u64>,
    unreadable_objects: BTreeMap<String, u64>,
    reconciles: BTreeMap<(String, String), u64>,
}

/// Everything bindguard counts.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// One admission request answered.
    pub fn request(&self, kind: &str, operation: &str, verdict: &str, took: Duration) {
        self.with(|s| {
            let key = (kind.to_string(), operation.to_string(), verdict.to_string());
            *s.requests.entry(key).or_default() += 1;
            s.latency.observe(took.as_secs_f64());
        });
    }

    pub fn watch_restart(&self, kind: &str) {
        self.with(|s| *s.watch_restarts.entry(kind.to_string()).or_default() += 1);
    }

    /// One object of `kind` (or a new version of it) could not be read into the cluster view.
    pub fn unreadable_object(&self, kind: &str) {
        self.with(|s| *s.unreadable_objects.entry(kind.to_string()).or_default() += 1);
    }

    /// One reconcile of `kind` ended with `outcome` (`ok` or `error`).
    pub fn reconcile(&self, kind: &str, outcome: &str) {
        self.with(|s| {
            let key = (kind.to_string(), outcome.to_string());
            *s.reconciles.entry(key).or_default() += 1;
        });
    }

    /// The exposition text; `cache_sizes` are the objects held per kind.
    pub fn render(&self, cache_sizes: &[(&str, usize)]) -> String {
        self.with(|s| {
            let mut out = String::new();
            render_requests(&mut out, s);
            render_latency(&mut out, &s.latency);
            render_map(&mut out, "bindguard_watch_restarts_total", "counter", "Watch failures that were retried.", &s.watch_restarts, "kind");
            render_map(&mut out, "bindguard_unreadable_objects_total", "counter", "Objects (or versions of them) the cluster view could not read.", &s.unreadable_objects, "kind");
            out.push_str("# HELP bindguard_reconciles_total Reconciles by kind and outcome.\n# TYPE bindguard_reconciles_total counter\n");
            for ((kind, outcome), n) in &s.reconciles {
                let _ = writeln!(out, "bindguard_reconciles_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}");
            }
            out.push_str("# HELP bindguard_cache_objects Objects held in the cluster view.\n# TYPE bindguard_cache_objects gauge\n");
            for (kind, n) in cache_sizes {
                let _ = writeln!(out, "bindguard_cache_objects{{kind=\"{kind}\"}} {n}");
            }
            out
        })
    }
}

fn render_requests(out: &mut String, s: &State) {
    out.push_str("# HELP bindguard_admission_requests_total Admission requests by kind, operation and verdict.\n# TYPE bindguard_admission_requests_total counter\n");
    for ((kind, operation, verdict), n) in &s.requests {
        let _ = writeln!(
            out,
            "bindguard_admission_requests_total{{kind=\"{kind}\",operation=\"{operation}\",verdict=\"{verdict}\"}} {n}"
        );
    }
}

fn render_latency(out: &mut String, h: &Histogram) {
    let name = "bindguard_admission_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to judge one admission request.\n# TYPE {name} histogram"
    );
    for (count, bound) in h.counts.iter().zip(LATENCY_BUCKETS) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.total);
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.total);
}

fn render_map(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    map: &BTreeMap<String, u64>,
    label: &str,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (key, n) in map {
        let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request(
            "ResourceReleaseBinding",
            "UPDATE",
            "denied",
            Duration::from_micros(300),
        );
        m.request(
            "ResourceReleaseBinding",
            "UPDATE",
            "denied",
            Duration::from_secs(20),
        );
        let text = m.render(&[("Environment", 2)]);
        assert!(text.contains("bindguard_admission_requests_total{kind=\"ResourceReleaseBinding\",operation=\"UPDATE\",verdict=\"denied\"} 2"));
        assert!(text.contains("bindguard_admission_duration_seconds_bucket{le=\"0.0001\"} 0"));
        assert!(text.contains("bindguard_admission_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("bindguard_admission_duration_seconds_bucket{le=\"10\"} 1"));
        assert!(text.contains("bindguard_admission_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("bindguard_cache_objects{kind=\"Environment\"} 2"));
    }
}
