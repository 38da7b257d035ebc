//! Kratix bookkeeping: a PromiseRevision per Promise version (latest moves with the Promise),
//! revision-deletion cleanup, binding version checks, and the request controllers (see
//! [`super::requests`]) kept in step with the kinds the Promises offer.

use super::conditions::{merge, resolve_version, same};
use super::requests::{self, Registry};
use super::runner::{self, Follow, Key};
use super::{
    Ctx, Error, Target, finalizer_added, finalizer_removed, get_text, guarded, list_each,
    patch_version,
};
use crate::cluster::{Changed, ClusterView};
use crate::crd::*;
use crate::kinds::{Family, Kind};
use crate::naming::{self, RevisionId};
use crate::policy::promise_revision::is_latest;
use kube::api::{Api, ApiResource, ListParams, ObjectMeta, Patch, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs the Kratix loops; the request controllers live in `registry`.
pub async fn run(ctx: Arc<Ctx>, registry: Arc<Registry>) {
    tokio::join!(
        runner::run(ctx.clone(), Promises),
        runner::run(ctx.clone(), Revisions),
        runner::run(ctx.clone(), Bindings),
        runner::run(ctx, Offers(registry)),
    );
}

/// The Promises, each reconciled when it or one of its revisions changes.
struct Promises;

impl Follow for Promises {
    fn kind(&self) -> &'static str {
        Kind::Promise.name()
    }
    fn family(&self) -> Family {
        Family::Kratix
    }
    fn every(&self, view: &dyn ClusterView) -> Vec<Key> {
        let all = view.all_promises();
        all.iter()
            .map(|p| runner::key(None, &p.name_any()))
            .collect()
    }
    fn affected(&self, view: &dyn ClusterView, change: &Changed) -> Vec<Key> {
        match (change.kind, change.relisted) {
            (Kind::Promise | Kind::PromiseRevision, true) => self.every(view),
            (Kind::Promise, false) if !change.gone => vec![runner::key(None, &change.name)],
            (Kind::PromiseRevision, false) => revision_promise(change).into_iter().collect(),
            _ => Vec::new(),
        }
    }
    async fn reconcile(&self, ctx: &Ctx, key: &str) -> Result<(), Error> {
        let live = ctx.view.promise(key);
        if live.is_none_or(|p| p.metadata.deletion_timestamp.is_some()) {
            return Ok(());
        }
        // The view keeps no spec; the revision copies it.
        let Some(text) = get_text::<Promise>(&ctx.client, None, key).await? else {
            return Ok(());
        };
        match decode::<Promise>(&text)? {
            promise if promise.metadata.deletion_timestamp.is_none() => {
                reconcile_promise(&promise, ctx).await
            }
            _ => Ok(()),
        }
    }
}

/// The Promise a changed revision belongs to, even once the view has forgotten the revision.
fn revision_promise(change: &Changed) -> Option<Key> {
    change.lookup.as_deref().map(|p| runner::key(None, p))
}

/// The PromiseRevisions: each keeps its finalizer until the requests and bindings pinned to it
/// are gone.
struct Revisions;

impl Follow for Revisions {
    fn kind(&self) -> &'static str {
        Kind::PromiseRevision.name()
    }
    fn family(&self) -> Family {
        Family::Kratix
    }
    fn every(&self, view: &dyn ClusterView) -> Vec<Key> {
        let all = view.all_promise_revisions();
        all.iter()
            .map(|r| runner::key(None, &r.name_any()))
            .collect()
    }
    fn affected(&self, view: &dyn ClusterView, change: &Changed) -> Vec<Key> {
        match (change.kind, change.relisted, change.gone) {
            (Kind::PromiseRevision, true, _) => self.every(view),
            (Kind::PromiseRevision, false, false) => vec![runner::key(None, &change.name)],
            _ => Vec::new(),
        }
    }
    async fn reconcile(&self, ctx: &Ctx, key: &str) -> Result<(), Error> {
        let Some(seen) = ctx.view.promise_revision(key) else {
            return Ok(());
        };
        let settled = seen.metadata.deletion_timestamp.is_none()
            && seen.finalizers().iter().any(|f| f == REVISION_FINALIZER);
        if settled {
            return Ok(());
        }
        // Read raw and in parts: a revision whose copy of the Promise nests too deep for the
        // decoder is still finalized and cleaned up.
        let Some(text) = get_text::<PromiseRevision>(&ctx.client, None, key).await? else {
            return Ok(());
        };
        let meta = decode::<requests::Request>(&text)?.metadata;
        let held = meta.finalizers.as_deref().unwrap_or_default();
        let at = held.iter().position(|f| f == REVISION_FINALIZER);
        let ops = match (meta.deletion_timestamp.is_some(), at) {
            (false, None) => finalizer_added(held.len(), REVISION_FINALIZER),
            (true, Some(i)) => {
                let retiring = retiring(&text, meta.clone())?;
                cleanup_revision(&retiring.revision, retiring.api.as_ref(), ctx).await?;
                if let Some(api) = retiring.api {
                    let promise = retiring.revision.spec.promise_ref.name.clone();
                    // Never keeps the revision: the requests it pinned are gone already.
                    if let Err(error) =
                        release_unoffered(ctx, requests::Offer { promise, api }).await
                    {
                        tracing::warn!(%error, revision = key, "could not let the requests of its kind go");
                    }
                }
                // Like kube's finalizer helper, tested by place only: the revision may have
                // changed during the cleanup.
                let ops = finalizer_removed(i, REVISION_FINALIZER);
                return patch_text::<PromiseRevision>(&ctx.client, key, None, ops).await;
            }
            _ => return Ok(()),
        };
        let version = meta.resource_version.as_deref();
        patch_text::<PromiseRevision>(&ctx.client, key, version, ops).await
    }
}

/// The Kratix ResourceBindings, each resolved against its Promise's revisions whenever it or
/// one of them changes.
struct Bindings;

impl Follow for Bindings {
    fn kind(&self) -> &'static str {
        Kind::ResourceBinding.name()
    }
    fn family(&self) -> Family {
        Family::Kratix
    }
    fn every(&self, view: &dyn ClusterView) -> Vec<Key> {
        let all = view.all_resource_bindings();
        all.iter().map(|b| binding_key(b)).collect()
    }
    fn affected(&self, view: &dyn ClusterView, change: &Changed) -> Vec<Key> {
        match (change.kind, change.relisted) {
            (Kind::ResourceBinding | Kind::PromiseRevision, true) => self.every(view),
            (Kind::ResourceBinding, false) if !change.gone => {
                vec![runner::key(change.namespace.as_deref(), &change.name)]
            }
            (Kind::PromiseRevision, false) => {
                let Some(promise) = change.lookup.as_deref() else {
                    return Vec::new();
                };
                let all = view.all_resource_bindings();
                let of = all.iter().filter(|b| b.spec.promise_ref.name == promise);
                of.map(|b| binding_key(b)).collect()
            }
            _ => Vec::new(),
        }
    }
    async fn reconcile(&self, ctx: &Ctx, key: &str) -> Result<(), Error> {
        let (ns, name) = runner::parts(key);
        let seen = ctx.view.resource_binding(ns, name);
        if seen.is_none_or(|b| b.metadata.deletion_timestamp.is_some()) {
            return Ok(());
        }
        // The view keeps no status; the conditions are merged into it.
        let api: Api<ResourceBinding> = Api::namespaced(ctx.client.clone(), ns);
        match api.get_opt(name).await? {
            Some(binding) if binding.metadata.deletion_timestamp.is_none() => {
                reconcile_binding(&binding, ctx).await
            }
            _ => Ok(()),
        }
    }
}

fn binding_key(b: &ResourceBinding) -> Key {
    runner::key(b.metadata.namespace.as_deref(), &b.name_any())
}

/// Keeps one request controller per offered kind, re-deciding whenever a Promise changes,
/// deletions included. The offers are read from the Promises' specs, which the view does not
/// keep: each decision lists them.
struct Offers(Arc<Registry>);

/// The one key of [`Offers`]: every decision covers every Promise.
const OFFERED: &str = "offers";

impl Follow for Offers {
    fn kind(&self) -> &'static str {
        "PromiseOffers"
    }
    fn family(&self) -> Family {
        Family::Kratix
    }
    fn every(&self, _: &dyn ClusterView) -> Vec<Key> {
        vec![runner::key(None, OFFERED)]
    }
    fn affected(&self, view: &dyn ClusterView, change: &Changed) -> Vec<Key> {
        match changes_offers(change) {
            true => self.every(view),
            false => Vec::new(),
        }
    }
    /// A Promise that does not decode is left out ([`super::list_each`]): it never keeps the
    /// other Promises' kinds from being served.
    async fn reconcile(&self, ctx: &Ctx, _: &str) -> Result<(), Error> {
        let (offers, complete) = offers_now(ctx).await?;
        self.0.sync(&offers, complete);
        Ok(())
    }
}

/// What the Promises offer now ([`requests::offers`], listed from the API server: the view
/// keeps no spec), and whether every Promise could be read.
async fn offers_now(
    ctx: &Ctx,
) -> Result<(BTreeMap<requests::KindKey, requests::Offer>, bool), Error> {
    let listed = list_each::<Promise>(&ctx.client, None, &ListParams::default()).await?;
    let complete = listed.unreadable.is_empty();
    let all: Vec<Arc<Promise>> = listed.readable().into_iter().map(Arc::new).collect();
    Ok((requests::offers(&all), complete))
}

/// Lets the requests of the kind `offered` names go ([`requests::release_all`]) when no Promise
/// offers it now (and every Promise could be read). The revision cleanup calls this, so a
/// Promise deleted while no replica led (whose revisions wait for a leader, their finalizer
/// held) still has its requests let go: the request controllers of a term that starts later
/// never served the kind.
async fn release_unoffered(ctx: &Ctx, offered: requests::Offer) -> Result<(), Error> {
    let (offers, complete) = offers_now(ctx).await?;
    let key = (offered.api.group.clone(), offered.api.kind.clone());
    // A Promise that cannot be read may offer the kind: nothing is let go then.
    if complete && !offers.contains_key(&key) {
        requests::release_all(ctx, &offered).await?;
    }
    Ok(())
}

/// Whether `change` may change what the Promises offer: any change to any Promise, deletions
/// and relists included.
fn changes_offers(change: &Changed) -> bool {
    change.kind == Kind::Promise
}

/// The identities of `revisions`, for naming.
pub fn ids(revisions: &[PromiseRevision]) -> Vec<RevisionId> {
    revisions
        .iter()
        .map(|r| RevisionId {
            name: r.name_any(),
            promise: r.spec.promise_ref.name.clone(),
            version: r.spec.version.clone(),
        })
        .collect()
}

/// The revision a Promise asks for, given the revisions that exist: named by
/// [`naming::revision_name`], owned by the Promise, marked latest, finalizer in place (so the
/// revision controller never has to add it to a revision the loop created).
pub fn desired_revision(promise: &Promise, existing: &[RevisionId]) -> PromiseRevision {
    let name = promise.name_any();
    let version = naming::promise_version(promise.metadata.labels.as_ref());
    let mut revision = PromiseRevision::new(
        &naming::revision_name(&name, &version, existing),
        PromiseRevisionSpec {
            promise_ref: NameRef { name: name.clone() },
            promise_spec: Some(Value::Object(promise.spec.0.clone())),
            version,
        },
    );
    revision.metadata.labels = Some(BTreeMap::from([
        (LABEL_PROMISE_NAME.to_string(), naming::label_value(&name)),
        (LABEL_LATEST_REVISION.to_string(), "true".to_string()),
    ]));
    revision.metadata.owner_references = promise.controller_owner_ref(&()).map(|o| vec![o]);
    revision.metadata.finalizers = Some(vec![REVISION_FINALIZER.to_string()]);
    revision
}

/// Which siblings must lose the latest mark: every revision of `promise` (by spec) but
/// `current` that still has the label or `status.latest`.
pub fn demoted(revisions: &[PromiseRevision], promise: &str, current: &str) -> Vec<String> {
    revisions
        .iter()
        .filter(|r| r.spec.promise_ref.name == promise && r.name_any() != current)
        .filter(|r| {
            r.labels().contains_key(LABEL_LATEST_REVISION)
                || r.status.as_ref().is_some_and(|s| s.latest)
        })
        .map(ResourceExt::name_any)
        .collect()
}

/// What writing `desired` over `live` changes: `None` when they already agree.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// `spec.promiseSpec` (or another spec field) differs: the whole spec is replaced.
    Spec,
    /// Only the latest label, the promise-name label or the owner is missing or wrong.
    Marks,
}

pub fn change(live: &PromiseRevision, desired: &PromiseRevision) -> Option<Change> {
    if live.spec != desired.spec {
        return Some(Change::Spec);
    }
    let label = |r: &PromiseRevision, k: &str| r.labels().get(k).cloned();
    let marks = label(live, LABEL_LATEST_REVISION).is_none()
        || label(live, LABEL_PROMISE_NAME) != label(desired, LABEL_PROMISE_NAME)
        || live.metadata.owner_references != desired.metadata.owner_references;
    marks.then_some(Change::Marks)
}

/// `live` with `desired`'s spec, labels and owner: the object to PUT (its resourceVersion
/// guards the write), so keys dropped from the Promise are dropped from the revision.
pub fn updated(live: &PromiseRevision, desired: &PromiseRevision) -> PromiseRevision {
    let mut out = live.clone();
    out.spec = desired.spec.clone();
    let labels = out.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(desired.labels().clone());
    out.metadata.owner_references = desired.metadata.owner_references.clone();
    out
}

/// Names and marks come from the view's revisions (never a `promiseSpec`, so a revision too
/// deep to decode whole still counts, and blocks no other Promise); the one revision to write
/// is read whole.
async fn reconcile_promise(promise: &Promise, ctx: &Ctx) -> Result<(), Error> {
    let all: Vec<PromiseRevision> = ctx
        .view
        .all_promise_revisions()
        .iter()
        .map(|r| PromiseRevision::clone(r))
        .collect();
    let desired = desired_revision(promise, &ids(&all));
    let name = desired.name_any();
    let live = match get_text::<PromiseRevision>(&ctx.client, None, &name).await? {
        Some(text) => Some(decode::<PromiseRevision>(&text)?),
        None => None,
    };
    let live = match live {
        None => create_revision(promise, &desired, ctx).await?,
        Some(live) if live.spec.promise_ref.name != desired.spec.promise_ref.name => {
            // The view had not seen it yet when the name was chosen.
            return Err(Error::Other(format!(
                "PromiseRevision {name} belongs to Promise {:?}; choosing again",
                live.spec.promise_ref.name
            )));
        }
        Some(live) => write_revision(promise, &live, &desired, ctx).await?,
    };
    if !live.status.as_ref().is_some_and(|s| s.latest) {
        set_latest_status(&ctx.client, &name, true).await?;
    }
    let promise_name = promise.name_any();
    for sibling in demoted(&all, &promise_name, &name) {
        let patch = json!({"metadata": {"labels": {LABEL_LATEST_REVISION: null}}});
        let to = Target {
            namespace: None,
            name: &sibling,
            status: false,
        };
        patch_version::<PromiseRevision, _>(&ctx.client, to, &Patch::Merge(&patch)).await?;
        set_latest_status(&ctx.client, &sibling, false).await?;
        let note = format!("PromiseRevision {sibling} is no longer the latest; {name} is");
        let related = all.iter().find(|r| r.name_any() == sibling);
        let related = related.map(|r| r.object_ref(&()));
        let regarding = promise.object_ref(&());
        ctx.event_on(&regarding, related, false, "RevisionSuperseded", note)
            .await;
    }
    Ok(())
}

/// Requests on PromiseRevisions, sent and answered as text: a revision holds a copy of its
/// Promise's spec, nested as deep as the API server allows, deeper than kube's decoder reads.
fn revisions_request() -> kube::core::Request {
    kube::core::Request::new(PromiseRevision::url_path(&(), None))
}

/// Sends `request` and decodes its answer at any depth.
async fn revision_answer(
    client: &Client,
    request: Result<axum::http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<PromiseRevision, Error> {
    let request = request.map_err(|e| Error::Other(e.to_string()))?;
    decode(&client.request_text(request).await?)
}

fn body_of(revision: &PromiseRevision) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(revision).map_err(|e| Error::Other(e.to_string()))
}

async fn create_revision(
    promise: &Promise,
    desired: &PromiseRevision,
    ctx: &Ctx,
) -> Result<PromiseRevision, Error> {
    let request = revisions_request().create(&PostParams::default(), body_of(desired)?);
    let created = revision_answer(&ctx.client, request).await?;
    let note = format!(
        "created PromiseRevision {} for version {:?}",
        created.name_any(),
        created.spec.version
    );
    let related = Some(created.object_ref(&()));
    ctx.event_on(
        &promise.object_ref(&()),
        related,
        false,
        "RevisionCreated",
        note,
    )
    .await;
    Ok(created)
}

async fn write_revision(
    promise: &Promise,
    live: &PromiseRevision,
    desired: &PromiseRevision,
    ctx: &Ctx,
) -> Result<PromiseRevision, Error> {
    let Some(change) = change(live, desired) else {
        return Ok(live.clone());
    };
    let name = live.name_any();
    let body = body_of(&updated(live, desired))?;
    let request = revisions_request().replace(&name, &PostParams::default(), body);
    let written = revision_answer(&ctx.client, request).await?;
    let (reason, note) = match change {
        Change::Spec => (
            "RevisionUpdated",
            format!("replaced the spec of PromiseRevision {name} with the Promise's"),
        ),
        Change::Marks => (
            "RevisionMarkedLatest",
            format!("marked PromiseRevision {name} as the latest"),
        ),
    };
    let related = Some(written.object_ref(&()));
    ctx.event_on(&promise.object_ref(&()), related, false, reason, note)
        .await;
    Ok(written)
}

async fn set_latest_status(client: &Client, name: &str, latest: bool) -> Result<(), Error> {
    let patch = json!({"status": {"latest": latest}});
    let to = Target {
        namespace: None,
        name,
        status: true,
    };
    patch_version::<PromiseRevision, _>(client, to, &Patch::Merge(&patch)).await?;
    Ok(())
}

/// The bindings a revision being deleted takes with it: those of its Promise pinned to its
/// version, and those following `latest` when it is the latest.
pub fn pinned_to(bindings: Vec<ResourceBinding>, rev: &PromiseRevision) -> Vec<ResourceBinding> {
    let latest = is_latest(rev);
    bindings
        .into_iter()
        .filter(|b| b.spec.promise_ref.name == rev.spec.promise_ref.name)
        .filter(|b| {
            b.spec.version == rev.spec.version || (latest && b.spec.version == VERSION_LATEST)
        })
        .collect()
}

/// Deletes the requests of kind `kind` whose binding pins this revision, then those bindings.
async fn cleanup_revision(
    rev: &PromiseRevision,
    kind: Option<&ApiResource>,
    ctx: &Ctx,
) -> Result<(), Error> {
    let client = &ctx.client;
    let selector = format!(
        "{LABEL_PROMISE_NAME}={}",
        naming::label_value(&rev.spec.promise_ref.name)
    );
    let params = ListParams::default().labels(&selector);
    let listed: Vec<ResourceBinding> = list_each(client, None, &params).await?.all()?;
    let regarding = rev.object_ref(&());
    for binding in pinned_to(listed, rev) {
        let ns = binding.namespace().unwrap_or_default();
        let request = binding.spec.resource_ref.name.clone();
        if let Some(ar) = kind
            && let Some(deleted) = requests::delete_request(client, ar, &ns, &request).await?
        {
            let note = format!(
                "deleted {} {ns}/{request}: its ResourceBinding pins version {:?}",
                ar.kind, rev.spec.version
            );
            ctx.event_on(&regarding, Some(deleted), false, "RequestDeleted", note)
                .await;
        }
        let api: Api<ResourceBinding> = Api::namespaced(client.clone(), &ns);
        if requests::delete_binding(&api, &binding).await? {
            let note = format!(
                "deleted ResourceBinding {ns}/{} pinned to version {:?}",
                binding.name_any(),
                rev.spec.version
            );
            let related = Some(binding.object_ref(&()));
            ctx.event_on(&regarding, related, false, "BindingDeleted", note)
                .await;
        }
        if let Some(ar) = kind {
            requests::release_request(client, ar, &ns, &request).await?;
        }
    }
    Ok(())
}

/// A revision being deleted, as its cleanup reads it: metadata, the Promise and version it
/// pins, whether it is the latest (its `promiseSpec` left out), and the kind of the requests
/// it offered.
struct Retiring {
    revision: PromiseRevision,
    api: Option<ApiResource>,
}

#[derive(Deserialize)]
struct RetiringWire {
    spec: RetiringSpec,
    #[serde(default)]
    status: Option<LatestWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetiringSpec {
    promise_ref: NameRef,
    #[serde(default)]
    version: String,
    #[serde(default)]
    promise_spec: Option<OfferedWire>,
}

#[derive(Deserialize)]
struct LatestWire {
    #[serde(default)]
    latest: bool,
}

/// The API a copy of a Promise offers, kept as text until it is read on its own.
#[derive(Deserialize)]
struct OfferedWire {
    #[serde(default)]
    api: Option<Box<RawValue>>,
}

/// The revision in `text` with `meta`. The request kind comes from the revision's own copy of
/// the Promise API (`spec.promiseSpec.api`), read for the fields that name it only, so a copy
/// nested deep elsewhere (its schema) still names it; never from the Promise, which may be gone
/// already. A copy that names no kind deletes no request (the pinned bindings still go).
fn retiring(text: &str, meta: ObjectMeta) -> Result<Retiring, Error> {
    let RetiringWire { spec, status } = decode(text)?;
    let copied = spec.promise_spec.and_then(|s| s.api);
    let api = copied.and_then(|raw| {
        let api = requests::offered_api_in(raw.get());
        if api.is_none() {
            let promise = &spec.promise_ref.name;
            tracing::warn!(%promise, "the revision's copy of the Promise API names no kind; only its bindings are deleted");
        }
        api
    });
    let revision = PromiseRevision {
        metadata: meta,
        spec: PromiseRevisionSpec {
            promise_ref: spec.promise_ref,
            promise_spec: None,
            version: spec.version,
        },
        status: status.map(|s| PromiseRevisionStatus {
            latest: s.latest,
            ..PromiseRevisionStatus::default()
        }),
    };
    Ok(Retiring { revision, api })
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    super::decode_deep(text).map_err(|e| Error::Other(format!("cannot be read: {e}")))
}

/// Applies JSON patch `ops` to the cluster-scoped `K` named `name`, after a test that it is
/// still at resourceVersion `version` when one is given.
async fn patch_text<K>(
    client: &Client,
    name: &str,
    version: Option<&str>,
    ops: Vec<Value>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>,
{
    let patch = Patch::Json::<()>(guarded(version, ops)?);
    let to = Target {
        namespace: None,
        name,
        status: false,
    };
    patch_version::<K, ()>(client, to, &patch).await?;
    Ok(())
}

async fn reconcile_binding(binding: &ResourceBinding, ctx: &Ctx) -> Result<(), Error> {
    let promise = &binding.spec.promise_ref.name;
    let revisions = ctx.view.promise_revisions(promise);
    let versions: Vec<String> = revisions.iter().map(|r| r.spec.version.clone()).collect();
    let latest = revisions
        .iter()
        .find(|r| r.labels().contains_key(LABEL_LATEST_REVISION))
        .map(|r| r.spec.version.as_str());
    let generation = binding.metadata.generation;
    let (condition, resolved) = resolve_version(
        promise,
        &binding.spec.version,
        &versions,
        latest,
        generation,
    );
    let old = binding.status.clone().unwrap_or_default();
    let wanted = &binding.spec.version;
    let upgrade = super::conditions::upgrade(resolved.as_deref(), wanted, generation);
    let conditions = merge(
        &old.conditions,
        vec![condition.clone(), upgrade],
        &super::now(),
    );
    let applied = resolved.clone().or(old.last_applied_version.clone());
    let failed = resolved.is_none().then(|| wanted.clone());
    if same(&old.conditions, &conditions)
        && applied == old.last_applied_version
        && failed == old.failed_version
    {
        return Ok(());
    }
    let patch = json!({"status": {
        "conditions": conditions, "lastAppliedVersion": applied, "failedVersion": failed,
    }});
    let to = Target {
        namespace: binding.metadata.namespace.as_deref(),
        name: &binding.name_any(),
        status: true,
    };
    patch_version::<ResourceBinding, _>(&ctx.client, to, &Patch::Merge(&patch)).await?;
    let related = resolved.as_ref().and_then(|v| {
        revisions
            .iter()
            .find(|r| r.spec.version == *v)
            .map(|r| r.object_ref(&()))
    });
    ctx.event_on(
        &binding.object_ref(&()),
        related,
        resolved.is_none(),
        &condition.reason,
        condition.message,
    )
    .await;
    Ok(())
}

/// The version of `promise`'s latest revision, if it has one: read from the API server, not
/// the view, since a new binding is pinned to it for good.
pub async fn latest_version(ctx: &Ctx, promise: &str) -> Result<Option<String>, Error> {
    let selector = format!("{LABEL_PROMISE_NAME}={}", naming::label_value(promise));
    let params = ListParams::default().labels(&selector);
    let listed: Vec<PromiseRevision> = list_each(&ctx.client, None, &params).await?.all()?;
    Ok(listed
        .into_iter()
        .find(|r| {
            r.spec.promise_ref.name == promise && r.labels().contains_key(LABEL_LATEST_REVISION)
        })
        .map(|r| r.spec.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    /// The loop's copy of a Promise into its revision, at the deepest nesting the API server
    /// stores, on a stack the size of the runtime's threads: read, copied, written, read back,
    /// compared and dropped without overflowing it.
    #[test]
    fn a_promise_as_deep_as_the_api_server_stores_is_copied_on_a_worker_stack() {
        let depth = 10_000;
        let text = format!(
            r#"{{"apiVersion":"platform.kratix.io/v1alpha1","kind":"Promise","metadata":{{"name":"deep","labels":{{"kratix.io/promise-version":"v1"}}}},"spec":{{"dependencies":[{}"bottom"{}]}}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        let worker = std::thread::Builder::new().stack_size(crate::schema::JUDGE_THREAD_STACK);
        let copied = worker.spawn(move || {
            let promise: Promise = decode(&text).expect("read at any depth");
            let revision = desired_revision(&promise, &[]);
            let body = body_of(&revision).expect("written");
            let back: PromiseRevision = decode(std::str::from_utf8(&body).unwrap()).unwrap();
            let same = change(&back, &revision).is_none();
            drop((promise, revision, back));
            same
        });
        assert!(copied.unwrap().join().expect("no overflow"));
    }

    #[test]
    fn a_revision_too_deep_to_decode_whole_is_read_for_its_cleanup() {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        // The copied API: a CRD naming kind redis, its schema nested too deep to decode.
        let api = format!(
            r#"{{"spec": {{"group": "marketplace.kratix.io", "names": {{"kind": "redis", "plural": "redis"}},
              "versions": [{{"name": "v1alpha1", "served": true, "storage": true, "schema": {deep}}}]}}}}"#
        );
        let revision = |api: &str, status: &str| {
            format!(
                r#"{{"metadata": {{"name": "redis-v1", "finalizers": ["{REVISION_FINALIZER}"],
                  "managedFields": [{{"fieldsV1": {deep}}}]}},
                  "spec": {{"promiseRef": {{"name": "redis"}}, "version": "v1",
                  "promiseSpec": {{"dependencies": [{deep}], "api": {api}}}}}{status}}}"#
            )
        };
        let text = revision(&api, "");
        assert!(serde_json::from_str::<PromiseRevision>(&text).is_err());
        let meta = decode::<requests::Request>(&text).unwrap().metadata;
        assert_eq!(meta.finalizers, Some(vec![REVISION_FINALIZER.to_string()]));
        let retired = retiring(&text, meta.clone()).unwrap();
        let spec = &retired.revision.spec;
        assert_eq!(
            (spec.promise_ref.name.as_str(), spec.version.as_str()),
            ("redis", "v1")
        );
        assert_eq!(retired.api.map(|ar| ar.kind), Some("redis".to_string()));
        assert!(!is_latest(&retired.revision));
        let latest = revision(&api, r#", "status": {"latest": true}"#);
        let latest = retiring(&latest, meta.clone()).unwrap();
        assert!(
            is_latest(&latest.revision),
            "status.latest counts, as for the webhook"
        );
        let nameless = retiring(&revision(&deep, ""), meta).unwrap();
        assert!(nameless.api.is_none());
    }

    fn promise(version: Option<&str>) -> Promise {
        let mut p = Promise::new(
            "redis",
            PromiseSpec(serde_json::Map::from_iter([(
                "api".to_string(),
                json!({"spec": {"group": "marketplace.kratix.io", "names": {"kind": "redis", "plural": "redis"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true}]}}),
            )])),
        );
        p.metadata.uid = Some("u1".into());
        p.metadata.labels =
            version.map(|v| BTreeMap::from([(LABEL_PROMISE_VERSION.to_string(), v.to_string())]));
        p
    }

    fn desired(version: Option<&str>) -> PromiseRevision {
        desired_revision(&promise(version), &[])
    }

    #[test]
    fn a_promise_asks_for_its_versions_revision() {
        let r = desired(Some("v0.2.0"));
        assert_eq!(r.name_any(), "redis-v0.2.0");
        assert_eq!(r.spec.version, "v0.2.0");
        assert_eq!(r.spec.promise_ref.name, "redis");
        assert!(
            r.spec
                .promise_spec
                .as_ref()
                .is_some_and(|s| s.get("api").is_some())
        );
        assert_eq!(
            r.labels().get(LABEL_LATEST_REVISION).map(String::as_str),
            Some("true")
        );
        assert_eq!(
            r.labels().get(LABEL_PROMISE_NAME).map(String::as_str),
            Some("redis")
        );
        assert_eq!(r.finalizers(), [REVISION_FINALIZER.to_string()]);
        let owner = r.metadata.owner_references.unwrap_or_default();
        assert_eq!(
            owner.first().map(|o: &OwnerReference| o.kind.as_str()),
            Some("Promise")
        );
        assert_eq!(desired(None).name_any(), "redis-not-set");
    }

    #[test]
    fn a_taken_seed_name_falls_back_and_stays() {
        let taken = [RevisionId {
            name: "redis-v0.2.0".into(),
            promise: "redis-v0.2.0-owner".into(),
            version: "x".into(),
        }];
        let r = desired_revision(&promise(Some("v0.2.0")), &taken);
        assert_ne!(r.name_any(), "redis-v0.2.0");
        assert!(naming::is_dns_subdomain(&r.name_any()));
    }

    #[test]
    fn latest_moves_off_every_sibling_of_the_same_promise() {
        let mut old = desired(Some("v0.1.0"));
        old.status = Some(PromiseRevisionStatus {
            latest: true,
            ..Default::default()
        });
        let mut plain = desired(Some("v0.0.1"));
        plain
            .metadata
            .labels
            .as_mut()
            .map(|l| l.remove(LABEL_LATEST_REVISION));
        let new = desired(Some("v0.2.0"));
        let mut stranger = desired(Some("v9"));
        stranger.spec.promise_ref.name = "other".into();
        let all = [old, plain, new, stranger];
        assert_eq!(
            demoted(&all, "redis", "redis-v0.2.0"),
            vec!["redis-v0.1.0".to_string()]
        );
        assert_eq!(
            demoted(&all, "redis", "redis-v0.1.0"),
            vec!["redis-v0.2.0".to_string()]
        );
    }

    #[test]
    fn a_same_version_update_replaces_the_spec_and_an_equal_one_writes_nothing() {
        let mut with_selectors = promise(Some("v1"));
        with_selectors.spec.0.insert(
            "destinationSelectors".into(),
            json!([{"matchLabels": {"a": "b"}}]),
        );
        let live = desired_revision(&with_selectors, &[]);
        let wanted = desired(Some("v1"));
        assert_eq!(change(&live, &wanted), Some(Change::Spec));
        let written = updated(&live, &wanted);
        let spec = written.spec.promise_spec.as_ref().unwrap();
        assert!(spec.get("destinationSelectors").is_none(), "{spec}");
        assert_eq!(change(&written, &wanted), None);
        let mut unmarked = wanted.clone();
        unmarked
            .metadata
            .labels
            .as_mut()
            .map(|l| l.remove(LABEL_LATEST_REVISION));
        unmarked
            .metadata
            .labels
            .as_mut()
            .map(|l| l.insert("team".into(), "a".into()));
        assert_eq!(change(&unmarked, &wanted), Some(Change::Marks));
        let marked = updated(&unmarked, &wanted);
        assert_eq!(marked.labels().get("team").map(String::as_str), Some("a"));
        assert_eq!(change(&marked, &wanted), None);
    }

    #[test]
    fn a_deleted_revision_takes_the_bindings_pinned_to_it() {
        let binding = |name: &str, promise: &str, version: &str| {
            let mut b = ResourceBinding::new(
                name,
                ResourceBindingSpec {
                    promise_ref: NameRef {
                        name: promise.into(),
                    },
                    resource_ref: ResourceRef {
                        name: name.into(),
                        namespace: "default".into(),
                        generation: None,
                    },
                    version: version.into(),
                },
            );
            b.metadata.namespace = Some("default".into());
            b
        };
        let all = || {
            vec![
                binding("a", "redis", "v1"),
                binding("b", "redis", "v2"),
                binding("c", "redis", "latest"),
                binding("d", "other", "v1"),
            ]
        };
        let names = |bs: Vec<ResourceBinding>| bs.iter().map(|b| b.name_any()).collect::<Vec<_>>();
        let mut old = desired(Some("v1"));
        old.metadata
            .labels
            .as_mut()
            .map(|l| l.remove(LABEL_LATEST_REVISION));
        assert_eq!(names(pinned_to(all(), &old)), ["a"]);
        let latest = desired(Some("v2"));
        assert_eq!(names(pinned_to(all(), &latest)), ["b", "c"]);
    }

    fn revision(name: &str, promise: &str) -> PromiseRevision {
        let spec = PromiseRevisionSpec {
            promise_ref: NameRef {
                name: promise.into(),
            },
            promise_spec: None,
            version: "v1".into(),
        };
        PromiseRevision::new(name, spec)
    }

    fn bound(ns: &str, name: &str, promise: &str) -> ResourceBinding {
        let mut b = ResourceBinding::new(name, ResourceBindingSpec::default());
        b.spec.promise_ref.name = promise.into();
        b.spec.resource_ref.name = format!("{name}-request");
        b.metadata.namespace = Some(ns.into());
        b
    }

    fn changed(kind: Kind, name: &str, gone: bool, lookup: Option<&str>) -> Changed {
        let namespace = (kind == Kind::ResourceBinding).then_some("a");
        Changed {
            gone,
            lookup: lookup.map(String::from),
            ..Changed::of(kind, namespace, name)
        }
    }

    #[test]
    fn a_change_reaches_exactly_the_objects_that_read_it() {
        use crate::cluster::{Writers, put};
        let (mut w, view) = Writers::new(0);
        for name in ["redis", "kafka"] {
            put(&mut w.promises, Promise::new(name, PromiseSpec::default()));
        }
        put(&mut w.promise_revisions, revision("redis-v1", "redis"));
        put(&mut w.promise_revisions, revision("kafka-v1", "kafka"));
        put(&mut w.resource_bindings, bound("a", "one", "redis"));
        put(&mut w.resource_bindings, bound("b", "two", "redis"));
        put(&mut w.resource_bindings, bound("a", "three", "kafka"));
        let all = |change: &Changed| {
            let offers = match changes_offers(change) {
                true => vec![OFFERED.to_string()],
                false => Vec::new(),
            };
            [
                runner::sorted(Promises.affected(&view, change)),
                runner::sorted(Revisions.affected(&view, change)),
                runner::sorted(Bindings.affected(&view, change)),
                offers,
            ]
        };
        let none: Vec<String> = Vec::new();
        let revised = changed(Kind::PromiseRevision, "redis-v1", false, Some("redis"));
        assert_eq!(
            all(&revised),
            [
                vec!["redis".to_string()],
                vec!["redis-v1".into()],
                vec!["a/one".into(), "b/two".into()],
                none.clone()
            ]
        );
        let deleted = Changed {
            gone: true,
            ..revised
        };
        assert_eq!(
            all(&deleted),
            [
                vec!["redis".to_string()],
                none.clone(),
                vec!["a/one".into(), "b/two".into()],
                none.clone()
            ]
        );
        let promise = changed(Kind::Promise, "kafka", false, None);
        assert_eq!(
            all(&promise),
            [
                vec!["kafka".to_string()],
                none.clone(),
                none.clone(),
                vec!["offers".into()]
            ]
        );
        let promise_gone = Changed {
            gone: true,
            ..promise
        };
        assert_eq!(
            all(&promise_gone),
            [
                none.clone(),
                none.clone(),
                none.clone(),
                vec!["offers".into()]
            ]
        );
        let binding = changed(Kind::ResourceBinding, "three", false, None);
        assert_eq!(
            all(&binding),
            [
                none.clone(),
                none.clone(),
                vec!["a/three".to_string()],
                none.clone()
            ]
        );
        let binding_gone = Changed {
            gone: true,
            ..binding
        };
        assert_eq!(
            all(&binding_gone),
            [none.clone(), none.clone(), none.clone(), none.clone()]
        );
        let relisted = Changed {
            relisted: true,
            ..changed(Kind::PromiseRevision, "", false, None)
        };
        let [promises, revisions, bindings, _] = all(&relisted);
        assert_eq!((promises.len(), revisions.len(), bindings.len()), (2, 2, 3));
        let other = changed(Kind::ResourceReleaseBinding, "x", false, None);
        assert_eq!(
            all(&other),
            [none.clone(), none.clone(), none.clone(), none]
        );
    }
}
