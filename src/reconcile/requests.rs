//! Resource requests: one controller per offered kind, served by the Promise that offers it now.
//!
//! Requests are read metadata-only ([`Request`]: names, labels, annotations, finalizers,
//! deletion state), which is all the loop needs, so a request of any shape or nesting depth
//! neither fails the watch nor the initial list. Deletes go through the raw API for the same
//! reason: the answer, a whole request, is never decoded.

use super::{Ctx, Error, Failures, finished, observed, on_error};
use crate::cluster::Changed;
use crate::crd::*;
use crate::kinds::{Family, Kind};
use crate::naming;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// A resource request as the loop reads it: its metadata, from metadata-only requests
/// (`PartialObjectMetadata`), without `managedFields`. Those mirror the shape of the object
/// (`fieldsV1` nests as deep as the spec), so decoding them would fail on a deep request; every
/// field this type does not name is skipped without recursion.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Request {
    pub metadata: ObjectMeta,
}

/// [`ObjectMeta`] without `managedFields`, as decoded.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetaWithoutFields {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    uid: Option<String>,
}

#[derive(Deserialize)]
struct RequestWire {
    #[serde(default)]
    metadata: MetaWithoutFields,
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = RequestWire::deserialize(d)?.metadata;
        Ok(Request {
            metadata: ObjectMeta {
                annotations: m.annotations,
                creation_timestamp: m.creation_timestamp,
                deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                deletion_timestamp: m.deletion_timestamp,
                finalizers: m.finalizers,
                generate_name: m.generate_name,
                generation: m.generation,
                labels: m.labels,
                name: m.name,
                namespace: m.namespace,
                owner_references: m.owner_references,
                resource_version: m.resource_version,
                uid: m.uid,
                ..ObjectMeta::default()
            },
        })
    }
}

impl Resource for Request {
    type DynamicType = ApiResource;
    type Scope = kube::core::DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn metadata_api() -> bool {
        true
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Where a request remembers its binding's version, so a deleted binding is recreated with it
/// even after a restart.
pub const BOUND_VERSION: &str = "bindguard.dev/bound-version";

/// What one Promise offers: the kind its `spec.api` defines, at the version served.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub promise: String,
    pub api: ApiResource,
}

/// An offered kind: `(group, kind)`.
pub type KindKey = (String, String);

/// The API a Promise's `spec.api` (a CRD) offers: group, kind, plural and the served storage
/// version, else the first served one.
pub fn offered_api(crd: &Value) -> Option<ApiResource> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let kind = names.get("kind")?.as_str()?.to_string();
    let plural = names.get("plural")?.as_str()?.to_string();
    let versions = spec.get("versions")?.as_array()?;
    let served = |v: &&Value| v.get("served").and_then(Value::as_bool).unwrap_or(true);
    let storage = |v: &&Value| v.get("storage").and_then(Value::as_bool).unwrap_or(false);
    let chosen = versions
        .iter()
        .filter(served)
        .find(storage)
        .or_else(|| versions.iter().find(served))?;
    let version = chosen.get("name")?.as_str()?.to_string();
    Some(ApiResource {
        api_version: format!("{group}/{version}"),
        group,
        version,
        kind,
        plural,
    })
}

/// [`offered_api`] of a CRD given as text, reading only the fields it names: everything else
/// (the schemas) is skipped where it stands, so a CRD nested past the decoder's limit elsewhere
/// still names its kind.
pub fn offered_api_in(crd: &str) -> Option<ApiResource> {
    #[derive(Deserialize)]
    struct Crd {
        spec: Spec,
    }
    #[derive(Deserialize)]
    struct Spec {
        group: Option<Value>,
        names: Option<Names>,
        versions: Option<Vec<Version>>,
    }
    #[derive(Deserialize, Serialize)]
    struct Names {
        kind: Option<Value>,
        plural: Option<Value>,
    }
    #[derive(Deserialize, Serialize)]
    struct Version {
        name: Option<Value>,
        served: Option<Value>,
        storage: Option<Value>,
    }
    let Crd { spec } = serde_json::from_str(crd).ok()?;
    let shallow =
        json!({"spec": {"group": spec.group, "names": spec.names, "versions": spec.versions}});
    offered_api(&shallow)
}

/// Which Promise serves each offered kind now: of the Promises not being deleted, the most
/// recently created one that offers it (the name breaks ties).
pub fn offers(promises: &[Arc<Promise>]) -> BTreeMap<KindKey, Offer> {
    let mut live: Vec<&Arc<Promise>> = promises
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    live.sort_by_key(|p| (p.metadata.creation_timestamp.clone(), p.name_any()));
    let mut out = BTreeMap::new();
    for promise in live {
        if let Some(api) = promise.spec.api().and_then(offered_api) {
            let key = (api.group.clone(), api.kind.clone());
            let promise = promise.name_any();
            out.insert(key, Offer { promise, api });
        }
    }
    out
}

struct Running {
    offer: Offer,
    task: tokio::task::JoinHandle<()>,
}

/// The request controllers of one leadership term: exactly one per offered kind, and for each
/// kind no Promise offers any more, the task that lets its requests go ([`retire`]). Dropping
/// the registry aborts them all; [`Registry::stop_all`] also waits until they have stopped.
pub struct Registry {
    ctx: Arc<Ctx>,
    running: Mutex<BTreeMap<KindKey, Running>>,
    retiring: Mutex<BTreeMap<KindKey, tokio::task::JoinHandle<()>>>,
}

impl Registry {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Registry {
            ctx,
            running: Mutex::new(BTreeMap::new()),
            retiring: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts, restarts or stops controllers so that each kind in `wanted` has one controller,
    /// for the Promise and API version that offers it now, and no other kind has any. A kind
    /// that leaves `wanted` has its requests let go; one offered again stops that. When
    /// `wanted` is not `complete` (some Promise could not be read, and may offer a kind), no
    /// controller is stopped.
    pub fn sync(&self, wanted: &BTreeMap<KindKey, Offer>, complete: bool) {
        let (Ok(mut running), Ok(mut retiring)) = (self.running.lock(), self.retiring.lock())
        else {
            return;
        };
        let stale: Vec<KindKey> = running
            .iter()
            .filter(|(key, r)| wanted.get(*key) != Some(&r.offer))
            .filter(|(key, _)| complete || wanted.contains_key(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            let Some(r) = running.remove(&key) else {
                continue;
            };
            tracing::info!(group = %key.0, kind = %key.1, promise = %r.offer.promise, "stopping request controller");
            r.task.abort();
            if !wanted.contains_key(&key) {
                let task = tokio::spawn(retire(self.ctx.clone(), r.offer, r.task));
                if let Some(earlier) = retiring.insert(key, task) {
                    earlier.abort();
                }
            }
        }
        retiring.retain(|key, task| {
            let offered = wanted.contains_key(key);
            if offered {
                task.abort();
            }
            !offered && !task.is_finished()
        });
        for (key, offer) in wanted {
            if running.contains_key(key) {
                continue;
            }
            tracing::info!(group = %key.0, kind = %key.1, version = %offer.api.version, promise = %offer.promise, "starting request controller");
            let task = tokio::spawn(serve(self.ctx.clone(), offer.clone()));
            let offer = offer.clone();
            running.insert(key.clone(), Running { offer, task });
        }
    }

    /// Aborts every controller and waits until each has stopped.
    pub async fn stop_all(&self) {
        let tasks: Vec<_> = match self.running.lock() {
            Ok(mut running) => std::mem::take(&mut *running).into_values().collect(),
            Err(_) => Vec::new(),
        };
        let retiring: Vec<_> = match self.retiring.lock() {
            Ok(mut retiring) => std::mem::take(&mut *retiring).into_values().collect(),
            Err(_) => Vec::new(),
        };
        for r in &tasks {
            let (group, kind) = (&r.offer.api.group, &r.offer.api.kind);
            tracing::info!(%group, %kind, promise = %r.offer.promise, "stopping request controller");
            r.task.abort();
        }
        retiring.iter().for_each(|task| task.abort());
        for task in tasks.into_iter().map(|r| r.task).chain(retiring) {
            let _ = task.await;
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Ok(running) = self.running.lock() {
            running.values().for_each(|r| r.task.abort());
        }
        if let Ok(retiring) = self.retiring.lock() {
            retiring.values().for_each(|task| task.abort());
        }
    }
}

/// Lets the requests of a kind no Promise offers any more go, since no controller keeps their
/// finalizer's promise now: each one being deleted loses its bindings of `offer.promise`, then
/// the finalizer; every other one loses the finalizer, so deleting it later (or its CRD, or its
/// namespace) never waits for a controller that is not coming. Their bindings stay: those
/// pinned to a revision are deleted with it ([`super::kratix`]), with their requests. Retried
/// with backoff until done, or until the kind is offered again.
async fn retire(ctx: Arc<Ctx>, offer: Offer, stopped: tokio::task::JoinHandle<()>) {
    // Its last write (a finalizer added, say) is sent or dropped before the requests are read.
    let _ = stopped.await;
    let (group, kind, promise) = (&offer.api.group, &offer.api.kind, &offer.promise);
    let mut pause = Duration::from_secs(1);
    loop {
        match release_all(&ctx, &offer).await {
            Ok(0) => return,
            Ok(released) => {
                tracing::info!(%group, %kind, %promise, released, "no Promise offers the kind any more: its requests were let go");
                return;
            }
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 403 => {
                let error = s.message;
                tracing::warn!(%group, %kind, %promise, %error, "not allowed to let the requests of a kind no Promise offers go (see the requestGroups of the RBAC)");
                return;
            }
            Err(error) => {
                tracing::warn!(%group, %kind, %promise, %error, "could not let the requests of a kind no Promise offers go; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// What letting go takes for one request of a retired kind.
#[derive(Debug, PartialEq)]
pub enum Letting {
    /// Not ours to hold.
    Nothing,
    /// Remove the finalizer.
    Release,
    /// Being deleted: delete its bindings, then remove the finalizer.
    Finalize,
}

/// What letting go of `request` takes.
pub fn letting(request: &ObjectMeta) -> Letting {
    let mut held = request.finalizers.iter().flatten();
    match (
        held.any(|f| f == REQUEST_FINALIZER),
        request.deletion_timestamp.is_some(),
    ) {
        (false, _) => Letting::Nothing,
        (true, false) => Letting::Release,
        (true, true) => Letting::Finalize,
    }
}

/// Lets every request of `offer`'s kind go ([`retire`]); how many held our finalizer.
pub async fn release_all(ctx: &Ctx, offer: &Offer) -> Result<usize, Error> {
    let client = &ctx.client;
    let ar = &offer.api;
    let mut released = 0;
    for request in requests_of(client, ar).await? {
        let (ns, name) = (request.namespace().unwrap_or_default(), request.name_any());
        match letting(&request.metadata) {
            Letting::Nothing => continue,
            Letting::Release => {}
            Letting::Finalize => {
                let (api, found) = bindings_of(client, &offer.promise, &ns, &name).await?;
                for binding in found {
                    delete_binding(&api, &binding).await?;
                }
            }
        }
        let api: Api<Request> = Api::namespaced_with(client.clone(), &ns, ar);
        drop_finalizer(&api, &request.metadata).await?;
        released += 1;
    }
    Ok(released)
}

/// Every request of kind `ar`, metadata only, listed a page at a time; none when the kind is
/// not served at that version (its CRD gone, or moved to another version).
async fn requests_of(client: &Client, ar: &ApiResource) -> Result<Vec<Request>, Error> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(500);
        if let Some(token) = &next {
            params = params.continue_token(token);
        }
        let url = DynamicObject::url_path(ar, None);
        let list = kube::core::Request::new(url)
            .list_metadata(&params)
            .map_err(|e| Error::Other(e.to_string()))?;
        let page = match client
            .request::<kube::core::ObjectList<Request>>(list)
            .await
        {
            Ok(page) => page,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let (kind, version) = (&ar.kind, &ar.api_version);
                tracing::info!(%kind, %version, "the kind is not served at this version: no requests to let go");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        all.extend(page.items);
        next = page.metadata.continue_.filter(|token| !token.is_empty());
        if next.is_none() {
            return Ok(all);
        }
    }
}

struct RequestCtx {
    ctx: Arc<Ctx>,
    offer: Offer,
    failures: Failures,
}

/// Runs the controller for one offered kind until aborted. Requests are watched here (no other
/// part of bindguard reads them); their bindings are followed through the cluster view.
async fn serve(ctx: Arc<Ctx>, offer: Offer) {
    let Some(changes) = ctx.view.changes(Family::Kratix) else {
        tracing::warn!("the cluster view announces no changes: requests are not reconciled");
        return;
    };
    let ar = offer.api.clone();
    let requests = Api::<Request>::all_with(ctx.client.clone(), &ar);
    let metrics = ctx.metrics.clone();
    let controller = Controller::new_with(requests, watcher::Config::default(), ar.clone())
        .with_config(super::controller_config());
    let triggers = Triggers {
        changes,
        promise: offer.promise.clone(),
        ar,
        requests: controller.store(),
    };
    let rc = Arc::new(RequestCtx {
        ctx,
        offer,
        failures: Failures::default(),
    });
    controller
        .reconcile_on(triggers.stream())
        .run(
            observed("ResourceRequest", metrics, reconcile),
            |request, e, rc: Arc<RequestCtx>| {
                let after = rc.failures.failed(&request_key(&request));
                on_error("ResourceRequest", e, &rc.ctx, after)
            },
            rc,
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::warn!(%error, "request controller: watch or queue error");
            }
            async {}
        })
        .await;
}

/// The requests to reconcile as the view announces changes to ResourceBindings: the one a
/// binding of `promise` binds (also once the binding is deleted), or every request when
/// bindings were listed again or announcements were missed.
struct Triggers {
    changes: broadcast::Receiver<Changed>,
    promise: String,
    ar: ApiResource,
    requests: Store<Request>,
}

impl Triggers {
    fn stream(self) -> impl Stream<Item = ObjectRef<Request>> + Send + 'static {
        futures::stream::unfold(self, |mut triggers| async move {
            let refs = triggers.next().await?;
            Some((futures::stream::iter(refs), triggers))
        })
        .flatten()
    }

    async fn next(&mut self) -> Option<Vec<ObjectRef<Request>>> {
        loop {
            let refs = match self.changes.recv().await {
                Ok(change) if change.relisted => match change.kind {
                    Kind::ResourceBinding => self.every(),
                    _ => Vec::new(),
                },
                Ok(change) => bound_request(&change, &self.promise, &self.ar)
                    .into_iter()
                    .collect(),
                Err(broadcast::error::RecvError::Lagged(_)) => self.every(),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if !refs.is_empty() {
                return Some(refs);
            }
        }
    }

    fn every(&self) -> Vec<ObjectRef<Request>> {
        let all = self.requests.state();
        let refs = all
            .iter()
            .map(|r| ObjectRef::from_obj_with(&**r, self.ar.clone()));
        refs.collect()
    }
}

/// The request of kind `ar` a changed ResourceBinding of `promise` binds.
pub fn bound_request(
    change: &Changed,
    promise: &str,
    ar: &ApiResource,
) -> Option<ObjectRef<Request>> {
    if change.kind != Kind::ResourceBinding {
        return None;
    }
    let (ns, of, request) = ResourceBinding::request_of(change.lookup.as_deref()?)?;
    (of == promise).then(|| ObjectRef::new_with(request, ar.clone()).within(ns))
}

async fn reconcile(request: Arc<Request>, rc: Arc<RequestCtx>) -> Result<Action, Error> {
    let key = request_key(&request);
    let ns = request.namespace().unwrap_or_default();
    let api: Api<Request> = Api::namespaced_with(rc.ctx.client.clone(), &ns, &rc.offer.api);
    let result = finalizer(&api, REQUEST_FINALIZER, request, |event| async {
        match event {
            Finalizer::Apply(r) => ensure_binding(&r, &rc, &api).await,
            Finalizer::Cleanup(r) => delete_bindings(&r, &rc).await,
        }
    })
    .await;
    let outcome = finished("ResourceRequest", &rc.ctx, result);
    if outcome.is_ok() {
        rc.failures.succeeded(&key);
    }
    outcome
}

/// `namespace/name` of a request, for its failure count.
fn request_key(request: &Request) -> String {
    let ns = request.metadata.namespace.as_deref().unwrap_or_default();
    crate::cluster::object_key(ns, &request.name_any())
}

/// The binding a request should have, pinned to `version`, named as Kratix names it, labelled
/// so the seed's label query finds it, and with the request's other labels (as Kratix does).
pub fn binding_for(request: &ObjectMeta, promise: &str, version: &str) -> ResourceBinding {
    let name = request.name.clone().unwrap_or_default();
    let ns = request.namespace.clone().unwrap_or_default();
    let mut binding = ResourceBinding::new(
        &naming::binding_name(&name, promise),
        ResourceBindingSpec {
            promise_ref: NameRef {
                name: promise.into(),
            },
            resource_ref: ResourceRef {
                name: name.clone(),
                namespace: ns.clone(),
                generation: None,
            },
            version: version.into(),
        },
    );
    binding.metadata.namespace = Some(ns);
    let mut labels = request.labels.clone().unwrap_or_default();
    labels.insert(LABEL_PROMISE_NAME.to_string(), naming::label_value(promise));
    labels.insert(LABEL_RESOURCE_NAME.to_string(), naming::label_value(&name));
    binding.metadata.labels = Some(labels);
    binding
}

/// Whether `binding` binds request `name` of `promise` in `ns`, by its spec (labels may be
/// shortened, so they only narrow the search).
pub fn binds(binding: &ResourceBinding, promise: &str, ns: &str, name: &str) -> bool {
    let own = binding.namespace().unwrap_or_default();
    let target_ns = match binding.spec.resource_ref.namespace.as_str() {
        "" => own.as_str(),
        other => other,
    };
    binding.spec.promise_ref.name == promise
        && binding.spec.resource_ref.name == name
        && target_ns == ns
}

/// The version a new binding gets: the remembered one, else the latest revision's.
pub fn version_for(request: &ObjectMeta, latest: Option<&str>) -> Option<String> {
    request
        .annotations
        .as_ref()
        .and_then(|a| a.get(BOUND_VERSION))
        .filter(|v| !v.is_empty())
        .cloned()
        .or_else(|| latest.map(str::to_string))
}

/// The bindings of `request` for `promise`: found by label, confirmed by spec.
pub async fn bindings_of(
    client: &Client,
    promise: &str,
    ns: &str,
    name: &str,
) -> Result<(Api<ResourceBinding>, Vec<ResourceBinding>), Error> {
    let api: Api<ResourceBinding> = Api::namespaced(client.clone(), ns);
    let selector = format!(
        "{LABEL_PROMISE_NAME}={},{LABEL_RESOURCE_NAME}={}",
        naming::label_value(promise),
        naming::label_value(name)
    );
    let params = ListParams::default().labels(&selector);
    let listed: Vec<ResourceBinding> = super::list_each(client, Some(ns), &params).await?.all()?;
    let items = listed
        .into_iter()
        .filter(|b| binds(b, promise, ns, name))
        .collect();
    Ok((api, items))
}

async fn ensure_binding(
    request: &Request,
    rc: &RequestCtx,
    requests: &Api<Request>,
) -> Result<Action, Error> {
    let ns = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let promise = &rc.offer.promise;
    let (api, found) = bindings_of(&rc.ctx.client, promise, &ns, &name).await?;
    let version = match found.as_slice() {
        [one] => one.spec.version.clone(),
        [] => create_binding(request, rc, &api).await?,
        _ => {
            return Err(Error::Other(format!(
                "found multiple ResourceBindings for Resource {name} in namespace {ns};there should be one ResourceBinding per Resource"
            )));
        }
    };
    if request.annotations().get(BOUND_VERSION) != Some(&version) {
        let patch = json!({"metadata": {"annotations": {BOUND_VERSION: version}}});
        requests
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn create_binding(
    request: &Request,
    rc: &RequestCtx,
    api: &Api<ResourceBinding>,
) -> Result<String, Error> {
    let promise = &rc.offer.promise;
    let latest = super::kratix::latest_version(&rc.ctx, promise).await?;
    let Some(version) = version_for(&request.metadata, latest.as_deref()) else {
        return Err(Error::Other(format!(
            "Promise {promise:?} has no latest PromiseRevision yet"
        )));
    };
    let mut binding = binding_for(&request.metadata, promise, &version);
    let created = match api.create(&PostParams::default(), &binding).await {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let (ns, name) = (request.namespace().unwrap_or_default(), request.name_any());
            let held = binding.metadata.name.clone().unwrap_or_default();
            let holder = api.get(&held).await?;
            if binds(&holder, promise, &ns, &name) {
                return Ok(holder.spec.version);
            }
            binding.metadata.name = Some(naming::distinct_binding_name(&name, promise, &ns));
            api.create(&PostParams::default(), &binding).await?
        }
        created => created?,
    };
    let note = format!(
        "created ResourceBinding {} at version {version:?}",
        created.name_any()
    );
    let regarding = request.object_ref(&rc.offer.api);
    let related = Some(created.object_ref(&()));
    rc.ctx
        .event_on(&regarding, related, false, "BindingCreated", note)
        .await;
    Ok(version)
}

async fn delete_bindings(request: &Request, rc: &RequestCtx) -> Result<Action, Error> {
    let ns = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let (api, found) = bindings_of(&rc.ctx.client, &rc.offer.promise, &ns, &name).await?;
    let regarding = request.object_ref(&rc.offer.api);
    for binding in found {
        if delete_binding(&api, &binding).await? {
            let note = format!(
                "deleted ResourceBinding {} with its request",
                binding.name_any()
            );
            let related = Some(binding.object_ref(&()));
            rc.ctx
                .event_on(&regarding, related, false, "BindingDeleted", note)
                .await;
        }
    }
    Ok(Action::await_change())
}

/// Deletes `binding`; `Ok(false)` when it was already gone.
pub async fn delete_binding(
    api: &Api<ResourceBinding>,
    binding: &ResourceBinding,
) -> Result<bool, Error> {
    match api
        .delete(&binding.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Starts deleting request `ns/name` of kind `ar`: `Ok(Some(reference))` when this call started
/// it, `Ok(None)` when it was already gone or going.
pub async fn delete_request(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<Option<ObjectReference>, Error> {
    let Some(request) = get_request(client, ar, ns, name).await? else {
        return Ok(None);
    };
    if request.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let url = DynamicObject::url_path(ar, Some(ns));
    let delete = kube::core::Request::new(url)
        .delete(name, &DeleteParams::default())
        .map_err(|e| Error::Other(e.to_string()))?;
    match client.request_text(delete).await {
        Ok(_) => Ok(Some(request.object_ref(ar))),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Request `ns/name` of kind `ar`, metadata only, decoded as [`Request`] (without
/// `managedFields`, which nest as deep as the spec); `None` when it is gone.
async fn get_request(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<Option<Request>, Error> {
    let url = DynamicObject::url_path(ar, Some(ns));
    let get = kube::core::Request::new(url)
        .get_metadata(name, &Default::default())
        .map_err(|e| Error::Other(e.to_string()))?;
    match client.request::<Request>(get).await {
        Ok(request) => Ok(Some(request)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the request finalizer from a request that is being deleted and whose bindings are
/// gone, as its own controller would (that controller stops when no Promise offers the kind).
pub async fn release_request(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    let api: Api<Request> = Api::namespaced_with(client.clone(), ns, ar);
    let Some(request) = get_request(client, ar, ns, name).await? else {
        return Ok(());
    };
    match letting(&request.metadata) {
        Letting::Finalize => drop_finalizer(&api, &request.metadata).await,
        _ => Ok(()),
    }
}

/// Removes the request finalizer from `request`, conditional on the resourceVersion read.
async fn drop_finalizer(api: &Api<Request>, request: &ObjectMeta) -> Result<(), Error> {
    let kept: Vec<&String> = request
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != REQUEST_FINALIZER)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": kept,
        "resourceVersion": request.resource_version,
    }});
    let name = request.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_kind_releases_held_requests_and_finalizes_deleted_ones() {
        let meta = |finalizers: &[&str], deleting: bool| ObjectMeta {
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            deletion_timestamp: deleting.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
            ..ObjectMeta::default()
        };
        assert_eq!(letting(&meta(&["other.dev/x"], true)), Letting::Nothing);
        assert_eq!(letting(&ObjectMeta::default()), Letting::Nothing);
        let held = [REQUEST_FINALIZER, "other.dev/x"];
        assert_eq!(letting(&meta(&held, false)), Letting::Release);
        assert_eq!(letting(&meta(&held, true)), Letting::Finalize);
    }

    #[test]
    fn a_request_nested_deeper_than_serde_allows_is_read() {
        let mut fields = json!({});
        for _ in 0..300 {
            fields = json!({ "f:a": fields });
        }
        let object = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "deep", "namespace": "team", "finalizers": ["x"],
                "managedFields": [{"manager": "kubectl", "fieldsV1": fields}]}});
        // The API server sends the type first; a map would put "object" first.
        let line = format!(r#"{{"type":"ADDED","object":{object}}}"#);
        let event: kube::core::WatchEvent<Request> = serde_json::from_str(&line).unwrap();
        let kube::core::WatchEvent::Added(request) = event else {
            panic!("not an ADDED event");
        };
        assert_eq!(request.name_any(), "deep");
        assert_eq!(request.finalizers(), ["x".to_string()]);
    }

    fn crd(group: &str, kind: &str, versions: Value) -> Value {
        json!({"spec": {"group": group, "names": {"kind": kind, "plural": kind.to_lowercase()},
               "versions": versions}})
    }

    fn promise(name: &str, created: i64, api: Option<Value>) -> Arc<Promise> {
        let mut spec = serde_json::Map::new();
        if let Some(api) = api {
            spec.insert("api".into(), api);
        }
        let mut p = Promise::new(name, PromiseSpec(spec));
        let at = k8s_openapi::jiff::Timestamp::from_second(created).unwrap();
        p.metadata.creation_timestamp = Some(Time(at));
        Arc::new(p)
    }

    fn v1() -> Value {
        json!([{"name": "v1alpha1", "served": true, "storage": true}])
    }

    #[test]
    fn the_offered_api_is_the_served_storage_version() {
        let both = json!([{"name": "v1", "served": true, "storage": false},
                          {"name": "v2", "served": true, "storage": true}]);
        let ar = offered_api(&crd("kv.dev", "Cache", both)).unwrap();
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.kind.as_str()),
            ("kv.dev", "v2", "Cache")
        );
        assert_eq!(ar.plural, "cache");
        let unserved = json!([{"name": "v1", "served": false, "storage": true},
                              {"name": "v2", "served": true}]);
        assert_eq!(
            offered_api(&crd("kv.dev", "Cache", unserved))
                .unwrap()
                .version,
            "v2"
        );
        assert!(offered_api(&json!({})).is_none());
    }

    #[test]
    fn each_kind_is_served_by_the_newest_live_promise() {
        let cache = || Some(crd("kv.dev", "Cache", v1()));
        let old = promise("old", 1, cache());
        let new = promise("new", 2, cache());
        let other = promise("queue", 3, Some(crd("kv.dev", "Queue", v1())));
        let none = promise("plain", 4, None);
        let wanted = offers(&[new.clone(), old.clone(), other, none]);
        let key = ("kv.dev".to_string(), "Cache".to_string());
        assert_eq!(wanted.len(), 2);
        assert_eq!(wanted[&key].promise, "new");
        let mut going = (*new).clone();
        going.metadata.deletion_timestamp = going.metadata.creation_timestamp.clone();
        let wanted = offers(&[Arc::new(going), old]);
        assert_eq!(wanted[&key].promise, "old", "re-offered after delete");
        assert!(offers(&[]).is_empty());
    }

    #[tokio::test]
    async fn triggers_follow_bindings_and_fall_back_to_every_request() {
        let ar = offered_api(&crd("marketplace.kratix.io", "Redis", v1())).expect("offered");
        let mut writer = kube::runtime::reflector::store::Writer::<Request>::new(ar.clone());
        for name in ["cache", "queue"] {
            let mut request = Request::default();
            request.metadata.name = Some(name.into());
            request.metadata.namespace = Some("team".into());
            writer.apply_watcher_event(&watcher::Event::Apply(request));
        }
        let (sender, changes) = broadcast::channel(4);
        let binding = |promise: &str, relisted| Changed {
            gone: true,
            relisted,
            lookup: Some(ResourceBinding::request_key("team", promise, "cache")),
            ..Changed::of(Kind::ResourceBinding, Some("team"), "b")
        };
        let triggers = Triggers {
            changes,
            promise: "redis".into(),
            ar,
            requests: writer.as_reader(),
        };
        let mut stream = Box::pin(triggers.stream());
        let mut next = async || stream.next().await.map(|r| r.name);
        sender.send(binding("kafka", false)).expect("sent");
        sender.send(binding("redis", false)).expect("sent");
        assert_eq!(
            next().await.as_deref(),
            Some("cache"),
            "only redis's binding"
        );
        sender.send(binding("redis", true)).expect("sent");
        let mut every = vec![next().await, next().await];
        every.sort();
        assert_eq!(
            every,
            [Some("cache".into()), Some("queue".into())],
            "relisted"
        );
        for _ in 0..6 {
            sender.send(binding("kafka", false)).expect("sent");
        }
        let mut every = vec![next().await, next().await];
        every.sort();
        assert_eq!(
            every,
            [Some("cache".into()), Some("queue".into())],
            "lagged"
        );
        drop(sender);
        assert_eq!(next().await, None, "the stream ends with the view");
    }

    #[test]
    fn a_binding_change_reaches_the_request_it_binds_even_once_deleted() {
        let ar = offered_api(&crd("marketplace.kratix.io", "Redis", v1())).expect("offered");
        let change = |kind, promise: &str, gone| Changed {
            gone,
            lookup: Some(ResourceBinding::request_key("team", promise, "cache")),
            ..Changed::of(kind, Some("team"), "cache-x1")
        };
        for gone in [false, true] {
            let request =
                bound_request(&change(Kind::ResourceBinding, "redis", gone), "redis", &ar);
            let request = request.expect("the bound request");
            assert_eq!(
                (request.name.as_str(), request.namespace.as_deref()),
                ("cache", Some("team"))
            );
            assert_eq!(request.dyntype.kind, "Redis");
        }
        let other_promise = change(Kind::ResourceBinding, "kafka", false);
        assert!(bound_request(&other_promise, "redis", &ar).is_none());
        let other_kind = change(Kind::PromiseRevision, "redis", false);
        assert!(bound_request(&other_kind, "redis", &ar).is_none());
    }

    #[test]
    fn a_request_gets_one_labelled_binding_found_by_spec() {
        let mut request = ObjectMeta {
            name: Some("example".into()),
            namespace: Some("team".into()),
            labels: Some(BTreeMap::from([
                ("team".to_string(), "payments".to_string()),
                (LABEL_PROMISE_NAME.to_string(), "not-redis".to_string()),
            ])),
            ..ObjectMeta::default()
        };
        let b = binding_for(&request, "redis", "v0.1.0");
        assert_eq!(b.name_any(), "example-redis-e7f90", "the seed's name");
        assert_eq!(b.labels().get("team").map(String::as_str), Some("payments"));
        assert_eq!(
            b.labels().get(LABEL_PROMISE_NAME).map(String::as_str),
            Some("redis")
        );
        assert_eq!(b.namespace().as_deref(), Some("team"));
        assert_eq!(b.spec.resource_ref.namespace, "team");
        assert_eq!(
            b.labels().get(LABEL_RESOURCE_NAME).map(String::as_str),
            Some("example")
        );
        assert!(binds(&b, "redis", "team", "example"));
        assert!(!binds(&b, "redis", "team", "other"));
        assert!(!binds(&b, "cache", "team", "example"));
        assert_eq!(
            version_for(&request, Some("v0.2.0")).as_deref(),
            Some("v0.2.0")
        );
        request.annotations = Some(BTreeMap::from([(
            BOUND_VERSION.to_string(),
            "v0.1.0".to_string(),
        )]));
        assert_eq!(
            version_for(&request, Some("v0.2.0")).as_deref(),
            Some("v0.1.0")
        );
        assert_eq!(version_for(&ObjectMeta::default(), None), None);
    }

    #[test]
    fn a_long_request_name_gets_valid_labels_and_name() {
        let long = format!("{}-{}", "a".repeat(60), "b".repeat(20));
        let request = ObjectMeta {
            name: Some(long.clone()),
            namespace: Some("team".into()),
            ..ObjectMeta::default()
        };
        let b = binding_for(&request, "redis", "v1");
        let label = &b.labels()[LABEL_RESOURCE_NAME];
        assert_eq!(*label, naming::label_value(&long));
        assert!(label.len() <= naming::MAX_LABEL_VALUE);
        assert_eq!(b.spec.resource_ref.name, long);
        assert!(binds(&b, "redis", "team", &long));
        let mut shortened_twin = b.clone();
        shortened_twin.spec.resource_ref.name = format!("{}-{}", "a".repeat(60), "c".repeat(20));
        assert!(
            !binds(&shortened_twin, "redis", "team", &long),
            "a label match alone is not a binding"
        );
    }
}
