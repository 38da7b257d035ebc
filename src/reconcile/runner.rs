//! Runs one reconcile loop from the cluster view's announcements: every key once the view has
//! listed every kind, then the keys each announced change affects (every key again when
//! changes were missed), through a [`Queue`], at most [`super::CONCURRENCY`] at a time. The
//! loop watches nothing itself; a reconcile reads the view, which already holds the change.

use super::queue::Queue;
use super::{Ctx, Error};
use crate::cluster::{Changed, ClusterView};
use crate::kinds::Family;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::Instrument;

/// An object's `namespace/name` (`name` alone when cluster-scoped): one allocation however often
/// it is queued.
pub type Key = Arc<str>;

/// The key of `namespace/name`.
pub fn key(namespace: Option<&str>, name: &str) -> Key {
    match namespace {
        Some(ns) => Arc::from(crate::cluster::object_key(ns, name)),
        None => Arc::from(name),
    }
}

/// `keys` as sorted strings, for tests that compare which keys a change reaches.
#[cfg(test)]
pub fn sorted(keys: Vec<Key>) -> Vec<String> {
    let mut names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    names.sort();
    names
}

/// `(namespace, name)` of a key; the namespace is empty for cluster-scoped objects.
pub fn parts(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// How soon a failed reconcile runs again; each further failure in a row doubles the wait, up
/// to [`MAX_RETRY`].
pub const RETRY: Duration = Duration::from_secs(5);
/// The longest wait before a reconcile that keeps failing runs again.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// How often to look whether the view has listed every kind yet.
const SYNC_POLL: Duration = Duration::from_millis(500);

/// One loop: which keys exist, which keys a change affects, and how one key is reconciled.
pub trait Follow: Send + Sync + 'static {
    /// What spans and metrics call the loop's objects.
    fn kind(&self) -> &'static str;
    /// The kinds whose changes the loop hears of.
    fn family(&self) -> Family;
    /// Every key: at the start, and after changes were missed.
    fn every(&self, view: &dyn ClusterView) -> Vec<Key>;
    /// The keys `change` affects.
    fn affected(&self, view: &dyn ClusterView, change: &Changed) -> Vec<Key>;
    fn reconcile(&self, ctx: &Ctx, key: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Resolves once the view has listed every kind.
pub async fn synced(view: &dyn ClusterView) {
    while !view.is_synced() {
        tokio::time::sleep(SYNC_POLL).await;
    }
}

/// Runs `looped` until the view stops announcing changes (never, in a live process).
pub async fn run<L: Follow>(ctx: Arc<Ctx>, looped: L) {
    let looped = Arc::new(looped);
    let Some(mut changes) = ctx.view.changes(looped.family()) else {
        tracing::warn!(
            kind = looped.kind(),
            "the cluster view announces no changes: not reconciled"
        );
        return;
    };
    synced(ctx.view.as_ref()).await;
    let mut queue = Queue::new(super::DEBOUNCE);
    looped
        .every(ctx.view.as_ref())
        .into_iter()
        .for_each(|key| queue.trigger(key));
    let mut running = FuturesUnordered::new();
    let mut failures: HashMap<Key, u32> = HashMap::new();
    let mut listening = true;
    loop {
        tokio::select! {
            change = changes.recv(), if listening => match change {
                Ok(change) => looped.affected(ctx.view.as_ref(), &change)
                    .into_iter()
                    .for_each(|key| queue.trigger(key)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(kind = looped.kind(), missed, "changes missed; looking at every object");
                    looped.every(ctx.view.as_ref()).into_iter().for_each(|key| queue.trigger(key));
                }
                Err(broadcast::error::RecvError::Closed) => listening = false,
            },
            Some(key) = queue.next(), if running.len() < usize::from(super::CONCURRENCY) => {
                running.push(observed(looped.clone(), ctx.clone(), key));
            }
            Some((key, succeeded)) = running.next() => {
                queue.done(&key);
                if succeeded {
                    failures.remove(&key);
                } else {
                    let failed = failures.entry(key.clone()).or_default();
                    *failed = failed.saturating_add(1);
                    queue.requeue(key, retry_after(*failed));
                }
            }
            else => return,
        }
    }
}

/// The wait before a reconcile that failed `failures` times in a row runs again.
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// One reconcile in a span naming the object, timed and counted; whether it succeeded.
async fn observed<L: Follow>(looped: Arc<L>, ctx: Arc<Ctx>, key: Key) -> (Key, bool) {
    let kind = looped.kind();
    let (namespace, name) = parts(&key);
    let span = tracing::info_span!("reconcile", kind, namespace, name);
    let started = Instant::now();
    let outcome = looped.reconcile(&ctx, &key).instrument(span.clone()).await;
    ctx.metrics.reconcile_took(kind, started.elapsed());
    let succeeded = match outcome {
        Ok(()) => {
            ctx.metrics.reconcile(kind, "ok");
            true
        }
        Err(error) => {
            ctx.metrics.reconcile(kind, "error");
            span.in_scope(|| tracing::warn!(kind, %error, "reconcile failed; requeueing"));
            false
        }
    };
    (key, succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_namespace_only_when_it_has_one() {
        assert_eq!(&*key(Some("ns"), "a"), "ns/a");
        assert_eq!(parts(&key(Some("ns"), "a")), ("ns", "a"));
        assert_eq!(&*key(None, "p"), "p");
        assert_eq!(parts(&key(None, "p")), ("", "p"));
    }

    #[test]
    fn a_reconcile_that_keeps_failing_waits_longer_each_time_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
    }
}
