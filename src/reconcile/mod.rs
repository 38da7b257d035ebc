//! The bookkeeping loops: Kratix revisions and bindings, OpenChoreo binding finalizers and
//! conditions. Leader-elected; controllers run only while this replica holds the Lease.

pub mod conditions;
pub mod kratix;
pub mod leader;
pub mod openchoreo;
pub mod promote;
pub mod queue;
pub mod requests;
pub mod runner;

use crate::cluster::ClusterView;
use crate::metrics::Metrics;
use crate::schema::SchemaCache;
use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

/// How long a controller waits after an object's last event before reconciling it. A loop that
/// writes an object twice (finalizer, then status) sees both writes in one reconcile, not one
/// reconcile (and possibly one more write) per write.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Reconciles one controller runs at once. Each may write, and every write is judged by the
/// webhooks: an unbounded burst (a GitOps sync of thousands of bindings) would fill bindguard's
/// own review slots and get users' writes refused as busy.
pub const CONCURRENCY: u16 = 4;

/// The settings every controller runs with.
pub fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .debounce(DEBOUNCE)
        .concurrency(CONCURRENCY)
}

/// What every reconcile shares.
pub struct Ctx {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The same cluster view admission reads: facts come from here, not from API reads.
    pub view: Arc<dyn ClusterView>,
    pub schemas: SchemaCache,
    /// When the view saw the last Resource deletion this process's loop acted on: a term acts
    /// first on the deletions the view saw since ([`ClusterView::recent_deletions`]), so those
    /// queued when a term ended are not lost.
    pub cascaded_through: std::sync::Mutex<Option<std::time::Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

impl Ctx {
    /// Publishes an Event on `object`; a failure is logged, never fatal.
    pub async fn event<K>(&self, object: &K, warning: bool, reason: &str, note: String)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.event_ref(&object.object_ref(&()), warning, reason, note)
            .await;
    }

    pub async fn event_ref(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.event_on(reference, None, warning, reason, note).await;
    }

    /// Publishes an Event on `regarding` about `related`, the object acted on. Events with the
    /// same reason on the same pair are folded into one series (keeping the first note), so
    /// each distinct action on each object gets its own Event.
    pub async fn event_on(
        &self,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        related: Option<k8s_openapi::api::core::v1::ObjectReference>,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: related,
        };
        match self.recorder.publish(&event, regarding).await {
            Ok(()) => {}
            // A namespace being deleted takes no new Events; its objects' last ones are noise.
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("being terminated") => {
                tracing::debug!(reason, "no event: its namespace is being deleted");
            }
            Err(error) => tracing::warn!(%error, reason, "could not publish event"),
        }
    }
}

/// GETs the `K` named `name` (in `namespace` when namespaced) as text; `None` when it is gone.
pub async fn get_text<K>(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<String>, Error>
where
    K: kube::Resource<DynamicType = ()>,
{
    let get = kube::core::Request::new(K::url_path(&(), namespace))
        .get(name, &Default::default())
        .map_err(|e| Error::Other(e.to_string()))?;
    match client.request_text(get).await {
        Ok(text) => Ok(Some(text)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Where a patch goes: the object `name` of kind `K` (in `namespace` when namespaced), or its
/// `status` subresource.
pub struct Target<'a> {
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub status: bool,
}

/// Sends `patch` to `to` and reads the answer for its resourceVersion only, skipping the rest
/// unread: an object nested past the JSON decoder's 128 levels is written and answered like any
/// other, not counted as a failed write after it landed.
pub async fn patch_version<K, P>(
    client: &Client,
    to: Target<'_>,
    patch: &kube::api::Patch<P>,
) -> Result<Option<String>, Error>
where
    K: kube::Resource<DynamicType = ()>,
    P: serde::Serialize + std::fmt::Debug,
{
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta {
        resource_version: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        metadata: Meta,
    }
    let request = kube::core::Request::new(K::url_path(&(), to.namespace));
    let params = kube::api::PatchParams::default();
    let request = match to.status {
        true => request.patch_subresource("status", to.name, &params, patch),
        false => request.patch(to.name, &params, patch),
    }
    .map_err(|e| Error::Other(e.to_string()))?;
    let text = client.request_text(request).await?;
    let answer: Answer = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("the answer to a patch of {}: {e}", to.name)))?;
    Ok(answer.metadata.resource_version)
}

/// `ops` after a test of the resourceVersion, when one is known.
pub fn guarded(version: Option<&str>, ops: Vec<Value>) -> Result<json_patch::Patch, Error> {
    let test = version.map(
        |version| json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}),
    );
    let all: Vec<Value> = test.into_iter().chain(ops).collect();
    serde_json::from_value(Value::Array(all)).map_err(|e| Error::Other(e.to_string()))
}

/// JSON Patch ops giving `finalizer` to an object that holds `held` finalizers.
pub fn finalizer_added(held: usize, finalizer: &str) -> Vec<Value> {
    match held {
        0 => vec![json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]})],
        _ => vec![json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer})],
    }
}

/// JSON Patch ops taking `finalizer` from place `at` of the finalizers, tested to be there first.
pub fn finalizer_removed(at: usize, finalizer: &str) -> Vec<Value> {
    vec![
        json!({"op": "test", "path": format!("/metadata/finalizers/{at}"), "value": finalizer}),
        json!({"op": "remove", "path": format!("/metadata/finalizers/{at}")}),
    ]
}

/// Every `K` the API server lists under `params` (in `namespace`, or in every namespace), each
/// decoded on its own, so an object that does not decode (a field of the wrong type) is named
/// rather than failing the list as a whole.
pub async fn list_each<K>(
    client: &Client,
    namespace: Option<&str>,
    params: &kube::api::ListParams,
) -> Result<Decoded<K>, Error>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let url = K::url_path(&(), namespace);
    let mut list = kube::core::Request::new(url)
        .list(params)
        .map_err(|e| Error::Other(e.to_string()))?;
    list.extensions_mut().insert("list");
    decode_each(&client.request_text(list).await?)
}

/// A list answer, decoded item by item: the objects that decode, and `namespace/name: why` of those that do not.
pub struct Decoded<K> {
    pub read: Vec<K>,
    pub unreadable: Vec<String>,
}

impl<K: kube::Resource<DynamicType = ()>> Decoded<K> {
    /// Every object, or an error naming one that does not decode: for decisions that must not
    /// act on part of the list (deleting what is pinned, creating what is missing).
    pub fn all(self) -> Result<Vec<K>, Error> {
        match self.unreadable.first() {
            None => Ok(self.read),
            Some(which) => Err(Error::Other(format!(
                "{} {which}: cannot be read, so nothing is decided from the list it is in",
                K::kind(&())
            ))),
        }
    }

    /// The objects that decode; the others are logged and left out.
    pub fn readable(self) -> Vec<K> {
        let kind = K::kind(&());
        for object in &self.unreadable {
            tracing::warn!(%kind, object, "cannot be read; left out");
        }
        self.read
    }
}

fn decode_each<K>(listed: &str) -> Result<Decoded<K>, Error>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    #[derive(serde::Deserialize)]
    struct Items {
        #[serde(default)]
        items: Vec<Box<serde_json::value::RawValue>>,
    }
    // Capturing an item's raw text has no depth limit.
    let items: Items = serde_json::from_str(listed).map_err(|e| Error::Other(e.to_string()))?;
    let mut out = Decoded {
        read: Vec::new(),
        unreadable: Vec::new(),
    };
    for raw in items.items {
        match decode_deep::<K>(raw.get()) {
            Ok(object) => out.read.push(object),
            Err(error) => {
                let meta = crate::cluster::facts::identity(raw.get());
                let ns = meta.namespace.unwrap_or_default();
                let name = meta.name.unwrap_or_default();
                out.unreadable.push(format!("{ns}/{name}: {error}"));
            }
        }
    }
    Ok(out)
}

/// Decodes an API answer at any nesting the API server stores (serde_json, and so kube's own
/// client, stop at 128 levels), on a stack grown for it when this one runs low. Dropping the
/// result recurses too, but far less deeply than decoding: a worker's stack holds it.
pub fn decode_deep<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    const RED_ZONE: usize = 16 << 20;
    stacker::maybe_grow(RED_ZONE, crate::admission::REVIEW_STACK_BYTES, || {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        deserializer.disable_recursion_limit();
        T::deserialize(&mut deserializer).and_then(|value| deserializer.end().map(|()| value))
    })
}

/// The current time as Kubernetes writes it in conditions.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Wraps a reconcile function for `Controller::run`: each call runs in a `reconcile` span
/// naming the object (so its log lines can be tied to it), and its duration is observed
/// whatever the outcome.
pub fn observed<K, C, Fut>(
    kind: &'static str,
    metrics: Arc<Metrics>,
    reconcile: impl Fn(Arc<K>, Arc<C>) -> Fut,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, Error>>
where
    K: kube::Resource,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object, ctx| {
        let meta = object.meta();
        let span = tracing::info_span!(
            "reconcile",
            kind,
            namespace = meta.namespace.as_deref().unwrap_or_default(),
            name = meta.name.as_deref().unwrap_or_default(),
        );
        let metrics = metrics.clone();
        let work = reconcile(object, ctx);
        async move {
            let started = Instant::now();
            let result = work.await;
            metrics.reconcile_took(kind, started.elapsed());
            result
        }
        .instrument(span)
        .boxed()
    }
}

/// Requeue on error: counted, logged, retried after `after`.
pub fn on_error(kind: &str, error: &Error, ctx: &Ctx, after: Duration) -> Action {
    ctx.metrics.reconcile(kind, "error");
    tracing::warn!(kind, %error, ?after, "reconcile failed; requeueing");
    Action::requeue(after)
}

/// Failures in a row per object, for controllers whose queue does not count them: each one
/// waits [`runner::retry_after`] before it runs again.
#[derive(Default)]
pub struct Failures(std::sync::Mutex<std::collections::HashMap<String, u32>>);

/// Objects whose failures are counted at once; past this the counts start again (an object
/// deleted after failing is never reconciled again to clear its count).
const FAILURES_KEPT: usize = 10_000;

impl Failures {
    /// Counts a failure of `key`: how long to wait before it runs again.
    pub fn failed(&self, key: &str) -> Duration {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= FAILURES_KEPT && !counts.contains_key(key) {
            counts.clear();
        }
        let failed = counts.entry(key.to_string()).or_default();
        *failed = failed.saturating_add(1);
        runner::retry_after(*failed)
    }

    /// `key` ran without error: its next failure waits the shortest time again.
    pub fn succeeded(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// A reconcile's outcome from kube's finalizer helper, counted.
pub fn finished(
    kind: &str,
    ctx: &Ctx,
    result: Result<Action, kube::runtime::finalizer::Error<Error>>,
) -> Result<Action, Error> {
    let action = result.map_err(|e| Error::Other(e.to_string()))?;
    ctx.metrics.reconcile(kind, "ok");
    Ok(action)
}

/// Runs the loop until `shutdown` turns true: follow until leading, then run the controllers
/// while renewing. Losing the Lease (or not renewing it within the renew deadline) stops every
/// controller the term started before following again. On shutdown the controllers are
/// stopped and the Lease released, so another replica takes over at once.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    view: Arc<dyn ClusterView>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut elector = leader::Elector::new(client.clone());
    let reporter = Reporter {
        controller: "bindguard".into(),
        instance: Some(elector.identity.clone()),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics,
        view,
        schemas: SchemaCache::new(),
        cascaded_through: Default::default(),
    });
    loop {
        let won = tokio::select! {
            won = follow(&mut elector) => won,
            () = shutdown_requested(&mut shutdown) => return,
        };
        tracing::info!(identity = %elector.identity, "leading: starting controllers");
        let term = lead(&ctx, &mut elector, won, &mut shutdown).await;
        if term == Term::Shutdown {
            release(&elector).await;
            return;
        }
        tracing::warn!("lost the lease: controllers stopped");
    }
}

/// Resolves when `shutdown` turns true; never when its sender is gone without saying so.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Tries to acquire the Lease every retry period; returns when the attempt that started at the
/// returned instant won it.
async fn follow(elector: &mut leader::Elector) -> Instant {
    loop {
        let started = Instant::now();
        let attempt = tokio::time::timeout(leader::RENEW_DEADLINE, elector.try_lead()).await;
        match attempt {
            Ok(Ok(true)) => return started,
            Ok(Err(error)) => tracing::warn!(%error, "lease acquisition failed"),
            _ => {}
        }
        tokio::time::sleep(leader::RETRY_PERIOD).await;
    }
}

/// How a leadership term ended.
#[derive(Debug, PartialEq)]
enum Term {
    Lost,
    Shutdown,
}

/// One leadership term: the controllers run until the Lease is lost or shutdown is asked;
/// either way every task the term started has stopped when this returns.
async fn lead(
    ctx: &Arc<Ctx>,
    elector: &mut leader::Elector,
    won: Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Term {
    let registry = Arc::new(requests::Registry::new(ctx.clone()));
    let session = tokio::spawn(controllers(ctx.clone(), registry.clone()));
    let term = tokio::select! {
        () = hold(elector, won) => Term::Lost,
        () = shutdown_requested(shutdown) => Term::Shutdown,
    };
    session.abort();
    let _ = session.await;
    registry.stop_all().await;
    term
}

/// Renews every retry period; returns when the Lease is held by someone else or no renewal
/// has succeeded within the renew deadline (shorter than the lease duration, so this replica
/// stops before another may take over).
async fn hold(elector: &mut leader::Elector, won: Instant) {
    let mut renewed = won;
    loop {
        tokio::time::sleep(leader::RETRY_PERIOD).await;
        let started = Instant::now();
        let deadline = renewed + leader::RENEW_DEADLINE;
        match tokio::time::timeout_at(deadline, elector.try_lead()).await {
            Ok(Ok(true)) => renewed = started,
            Ok(Ok(false)) => return,
            Ok(Err(error)) => tracing::warn!(%error, "lease renewal failed"),
            Err(_) => tracing::warn!("lease renewal timed out"),
        }
        if Instant::now() >= renewed + leader::RENEW_DEADLINE {
            return;
        }
    }
}

/// Gives the Lease up so a follower takes over without waiting for it to expire.
async fn release(elector: &leader::Elector) {
    match tokio::time::timeout(leader::RENEW_DEADLINE, elector.release()).await {
        Ok(Ok(())) => tracing::info!(identity = %elector.identity, "released the lease"),
        Ok(Err(error)) => tracing::warn!(%error, "could not release the lease"),
        Err(_) => tracing::warn!("releasing the lease timed out"),
    }
}

async fn controllers(ctx: Arc<Ctx>, registry: Arc<requests::Registry>) {
    tokio::join!(kratix::run(ctx.clone(), registry), openchoreo::run(ctx));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Promise;
    use kube::ResourceExt;

    #[test]
    fn an_object_that_keeps_failing_waits_longer_until_it_succeeds() {
        let failures = Failures::default();
        let waits: Vec<u64> = (0..3).map(|_| failures.failed("ns/a").as_secs()).collect();
        assert_eq!(waits, [5, 10, 20]);
        assert_eq!(failures.failed("ns/b").as_secs(), 5, "counted per object");
        failures.succeeded("ns/a");
        assert_eq!(failures.failed("ns/a").as_secs(), 5);
        let failures = Failures::default();
        (0..FAILURES_KEPT).for_each(|i| _ = failures.failed(&format!("ns/{i}")));
        assert_eq!(
            failures.failed("ns/0").as_secs(),
            10,
            "a counted object counts on"
        );
        failures.failed("ns/new");
        assert_eq!(
            failures.failed("ns/0").as_secs(),
            5,
            "past the bound, counts start again"
        );
    }

    #[test]
    fn objects_that_do_not_decode_are_named_and_left_out_or_refuse_the_list() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let promise = |name: &str, spec: &str| {
            format!(
                r#"{{"apiVersion":"platform.kratix.io/v1alpha1","kind":"Promise","metadata":{{"name":"{name}"}},"spec":{spec}}}"#
            )
        };
        let items = [
            promise("deep", &format!(r#"{{"x":{deep}}}"#)),
            promise("typo", "7"),
            promise("redis", "{}"),
        ];
        let listed = format!(r#"{{"kind":"PromiseList","items":[{}]}}"#, items.join(","));
        let names =
            |read: Vec<Promise>| -> Vec<String> { read.iter().map(|p| p.name_any()).collect() };
        let listed: Decoded<Promise> = decode_each(&listed).expect("the list reads");
        assert_eq!(
            listed.unreadable.len(),
            1,
            "depth is read, a wrong type is not"
        );
        assert!(
            listed.unreadable[0].starts_with("/typo: "),
            "{:?}",
            listed.unreadable
        );
        let all = Decoded {
            read: listed.read.clone(),
            unreadable: listed.unreadable.clone(),
        };
        let refused = all.all().expect_err("a decision on the whole list refuses");
        assert!(refused.to_string().contains("Promise /typo"), "{refused}");
        assert_eq!(names(listed.readable()), ["deep", "redis"]);
        assert!(decode_each::<Promise>("not json").is_err());
    }
}
