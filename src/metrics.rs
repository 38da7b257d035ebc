//! What bindguard counts, exposed in Prometheus text format through `prometheus-client`.
//! Every metric is listed in `docs/operations.md`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Upper bounds of the admission latency buckets, in seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds of the reconcile duration buckets, in seconds: 1 ms to 30 s.
const RECONCILE_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];

/// One answered admission request, as counted.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: String,
    pub operation: String,
    /// `allowed`, `warned`, `patched`, `denied`, or why it was not judged: `busy`, `timeout`,
    /// `error`, `malformed`.
    pub verdict: String,
    /// For denials, the field the refusing rule guards (at most two segments, such as
    /// `spec.owner`), `unreadable` for objects that could not be decoded; empty otherwise.
    pub rule: String,
}

impl RequestLabels {
    /// A request that never reached policy (`busy`, `timeout`, `error`, `malformed`).
    pub fn unjudged(kind: &str, operation: &str, verdict: &str) -> Self {
        RequestLabels {
            kind: kind.into(),
            operation: operation.into(),
            verdict: verdict.into(),
            rule: String::new(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    kind: String,
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

type DroppedLines = Box<dyn Fn() -> u64 + Send + Sync>;

/// Everything bindguard counts, and the registry that renders it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    watch_restarts: Family<KindLabel, Counter>,
    unreadable_objects: Family<KindLabel, Counter>,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_seconds: HistogramFamily<KindLabel>,
    cache_objects: Family<KindLabel, Gauge>,
    certificate_expiry: Gauge<f64, AtomicU64>,
    log_lines_dropped: Counter,
    /// Reads how many log lines the non-blocking log writer has dropped so far.
    dropped_log_lines: Mutex<Option<DroppedLines>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
            watch_restarts: Family::default(),
            unreadable_objects: Family::default(),
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(reconcile_histogram),
            cache_objects: Family::default(),
            certificate_expiry: Gauge::default(),
            log_lines_dropped: Counter::default(),
            dropped_log_lines: Mutex::new(None),
        };
        metrics.registered()
    }
}

impl Metrics {
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "bindguard_admission_requests",
            "Admission requests by kind, operation, verdict and refusing rule",
            self.requests.clone(),
        );
        r.register(
            "bindguard_admission_duration_seconds",
            "Time from receiving an admission request to answering it",
            self.latency.clone(),
        );
        r.register(
            "bindguard_watch_restarts",
            "Watch failures of the cluster view that were retried, by kind",
            self.watch_restarts.clone(),
        );
        r.register(
            "bindguard_unreadable_objects",
            "Objects (or versions of them) the cluster view could not read, by kind",
            self.unreadable_objects.clone(),
        );
        r.register(
            "bindguard_reconciles",
            "Reconciles by kind and outcome (ok or error)",
            self.reconciles.clone(),
        );
        r.register(
            "bindguard_reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            self.reconcile_seconds.clone(),
        );
        r.register(
            "bindguard_cache_objects",
            "Objects held in the cluster view, by kind",
            self.cache_objects.clone(),
        );
        r.register(
            "bindguard_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time; 0 until one is loaded)",
            self.certificate_expiry.clone(),
        );
        r.register(
            "bindguard_log_lines_dropped",
            "Log lines dropped because stderr was not taking them fast enough",
            self.log_lines_dropped.clone(),
        );
        self
    }

    /// Where to read the log lines dropped so far ([`crate::logs::Queue::dropped`]).
    pub fn count_dropped_log_lines(&self, dropped: impl Fn() -> u64 + Send + Sync + 'static) {
        *self.dropped_lines() = Some(Box::new(dropped));
    }

    /// One admission request answered.
    pub fn request(&self, labels: &RequestLabels, took: Duration) {
        self.requests.get_or_create(labels).inc();
        self.latency.observe(took.as_secs_f64());
    }

    pub fn watch_restart(&self, kind: &str) {
        self.watch_restarts.get_or_create(&kind_label(kind)).inc();
    }

    /// One object of `kind` (or a new version of it) could not be read into the cluster view.
    pub fn unreadable_object(&self, kind: &str) {
        self.unreadable_objects
            .get_or_create(&kind_label(kind))
            .inc();
    }

    /// One reconcile of `kind` ended with `outcome` (`ok` or `error`).
    pub fn reconcile(&self, kind: &str, outcome: &str) {
        let labels = OutcomeLabels {
            kind: kind.into(),
            outcome: outcome.into(),
        };
        self.reconciles.get_or_create(&labels).inc();
    }

    /// One reconcile of `kind` took `took`, whatever its outcome.
    pub fn reconcile_took(&self, kind: &str, took: Duration) {
        let histogram = self.reconcile_seconds.get_or_create(&kind_label(kind));
        histogram.observe(took.as_secs_f64());
    }

    /// The serving certificate now in use expires at `unix_seconds`.
    pub fn certificate_expires(&self, unix_seconds: i64) {
        self.certificate_expiry.set(unix_seconds as f64);
    }

    fn dropped_lines(&self) -> std::sync::MutexGuard<'_, Option<DroppedLines>> {
        self.dropped_log_lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The exposition text; `cache_sizes` are the objects held per kind.
    pub fn render(&self, cache_sizes: &[(&str, usize)]) -> String {
        for (kind, n) in cache_sizes {
            let n = i64::try_from(*n).unwrap_or(i64::MAX);
            self.cache_objects.get_or_create(&kind_label(kind)).set(n);
        }
        if let Some(dropped) = self.dropped_lines().as_ref() {
            let counted = self.log_lines_dropped.get();
            self.log_lines_dropped
                .inc_by(dropped().saturating_sub(counted));
        }
        let mut out = String::new();
        if let Err(error) = encode(&mut out, &self.registry) {
            tracing::error!(%error, "metrics could not be rendered");
        }
        out
    }
}

fn kind_label(kind: &str) -> KindLabel {
    KindLabel { kind: kind.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(took: Duration) -> (RequestLabels, Duration) {
        let labels = RequestLabels {
            kind: "ResourceReleaseBinding".into(),
            operation: "UPDATE".into(),
            verdict: "denied".into(),
            rule: "spec.owner".into(),
        };
        (labels, took)
    }

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        for (labels, took) in [
            denied(Duration::from_micros(300)),
            denied(Duration::from_secs(20)),
        ] {
            m.request(&labels, took);
        }
        m.reconcile("Promise", "ok");
        m.reconcile_took("Promise", Duration::from_millis(3));
        m.certificate_expires(1_800_000_000);
        let text = m.render(&[("Environment", 2)]);
        for line in [
            "bindguard_admission_requests_total{kind=\"ResourceReleaseBinding\",operation=\"UPDATE\",verdict=\"denied\",rule=\"spec.owner\"} 2",
            "bindguard_admission_duration_seconds_bucket{le=\"0.0001\"} 0",
            "bindguard_admission_duration_seconds_bucket{le=\"0.0005\"} 1",
            "bindguard_admission_duration_seconds_bucket{le=\"10.0\"} 1",
            "bindguard_admission_duration_seconds_bucket{le=\"+Inf\"} 2",
            "bindguard_admission_duration_seconds_count 2",
            "bindguard_reconciles_total{kind=\"Promise\",outcome=\"ok\"} 1",
            "bindguard_reconcile_duration_seconds_bucket{le=\"0.005\",kind=\"Promise\"} 1",
            "bindguard_cache_objects{kind=\"Environment\"} 2",
            "bindguard_certificate_expiry_timestamp_seconds 1800000000.0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}

#[test]
fn dropped_log_lines_are_counted_from_the_queue() {
    let metrics = Metrics::default();
    let text = metrics.render(&[]);
    assert!(
        text.contains("bindguard_log_lines_dropped_total 0\n"),
        "{text}"
    );
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
    let read = dropped.clone();
    metrics.count_dropped_log_lines(move || read.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        metrics
            .render(&[])
            .contains("bindguard_log_lines_dropped_total 3\n")
    );
    dropped.store(5, std::sync::atomic::Ordering::Relaxed);
    assert!(
        metrics
            .render(&[])
            .contains("bindguard_log_lines_dropped_total 5\n")
    );
}
