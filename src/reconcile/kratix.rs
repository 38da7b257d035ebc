//! Kratix bookkeeping: a PromiseRevision per Promise version (latest moves with the Promise),
//! one ResourceBinding per resource request, revision-deletion cleanup, binding version checks.

use super::conditions::{merge, resolve_version, same};
use super::{Ctx, Error, on_error};
use crate::crd::*;
use crate::naming;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a request remembers its binding's version, so a deleted binding is recreated with it
/// even after a restart.
pub const BOUND_VERSION: &str = "bindguard.dev/bound-version";

struct KratixCtx {
    ctx: Arc<Ctx>,
    started: Mutex<HashSet<String>>,
}

pub async fn run(ctx: Arc<Ctx>) {
    let k = Arc::new(KratixCtx {
        ctx: ctx.clone(),
        started: Mutex::new(HashSet::new()),
    });
    let client = ctx.client.clone();
    let promises = Controller::new(
        Api::<Promise>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(
        reconcile_promise,
        |_, e, k: Arc<KratixCtx>| on_error("Promise", e, &k.ctx),
        k,
    )
    .for_each(|_| async {});
    let revisions = Controller::new(
        Api::<PromiseRevision>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(
        reconcile_revision,
        |_, e, c: Arc<Ctx>| on_error("PromiseRevision", e, &c),
        ctx.clone(),
    )
    .for_each(|_| async {});
    let controller = Controller::new(
        Api::<ResourceBinding>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let bindings = controller
        .watches(
            Api::<PromiseRevision>::all(client),
            watcher::Config::default(),
            move |rev| {
                let promise = rev.spec.promise_ref.name.clone();
                store
                    .state()
                    .into_iter()
                    .filter(|b| b.spec.promise_ref.name == promise)
                    .map(|b| ObjectRef::from_obj(&*b))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            reconcile_binding,
            |_, e, c: Arc<Ctx>| on_error("ResourceBinding", e, &c),
            ctx,
        )
        .for_each(|_| async {});
    tokio::join!(promises, revisions, bindings);
}

/// The revision a Promise asks for: named for its version, owned by it, marked latest.
pub fn desired_revision(promise: &Promise) -> PromiseRevision {
    let name = promise.name_any();
    let version = naming::promise_version(promise.metadata.labels.as_ref());
    let mut revision = PromiseRevision::new(
        &naming::revision_name(&name, &version),
        PromiseRevisionSpec {
            promise_ref: NameRef { name: name.clone() },
            promise_spec: Some(Value::Object(promise.spec.0.clone())),
            version,
        },
    );
    revision.metadata.labels = Some(BTreeMap::from([
        (LABEL_PROMISE_NAME.to_string(), name),
        (LABEL_LATEST_REVISION.to_string(), "true".to_string()),
    ]));
    revision.metadata.owner_references = promise.controller_owner_ref(&()).map(|o| vec![o]);
    revision
}

/// Which siblings must lose the latest mark: every revision but `current` that still has the
/// label or `status.latest`.
pub fn demoted(revisions: &[PromiseRevision], current: &str) -> Vec<String> {
    revisions
        .iter()
        .filter(|r| r.name_any() != current)
        .filter(|r| {
            r.labels().contains_key(LABEL_LATEST_REVISION)
                || r.status.as_ref().is_some_and(|s| s.latest)
        })
        .map(ResourceExt::name_any)
        .collect()
}

async fn reconcile_promise(promise: Arc<Promise>, k: Arc<KratixCtx>) -> Result<Action, Error> {
    let ctx = &k.ctx;
    let api: Api<PromiseRevision> = Api::all(ctx.client.clone());
    let desired = desired_revision(&promise);
    let name = desired.name_any();
    match api.get_opt(&name).await? {
        None => {
            api.create(&PostParams::default(), &desired).await?;
            let note = format!(
                "created PromiseRevision {name} for version {:?}",
                desired.spec.version
            );
            ctx.event(&*promise, false, "RevisionCreated", note).await;
        }
        Some(live) if needs_update(&live, &desired) => {
            let patch = json!({
                "metadata": {"labels": desired.metadata.labels, "ownerReferences": desired.metadata.owner_references},
                "spec": desired.spec,
            });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let note = format!("PromiseRevision {name} updated and marked latest");
            ctx.event(&*promise, false, "RevisionUpdated", note).await;
        }
        Some(_) => {}
    }
    let live = api.get(&name).await?;
    if !live.status.as_ref().is_some_and(|s| s.latest) {
        set_latest_status(&api, &name, true).await?;
    }
    let selector = format!("{LABEL_PROMISE_NAME}={}", promise.name_any());
    let siblings = api.list(&ListParams::default().labels(&selector)).await?;
    for sibling in demoted(&siblings.items, &name) {
        let patch = json!({"metadata": {"labels": {LABEL_LATEST_REVISION: null}}});
        api.patch(&sibling, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        set_latest_status(&api, &sibling, false).await?;
    }
    if let Some(ar) = offered_api(&promise) {
        start_requests(&k, ar, promise.name_any());
    }
    ctx.metrics.reconcile("Promise", "ok");
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn needs_update(live: &PromiseRevision, desired: &PromiseRevision) -> bool {
    live.spec != desired.spec
        || !live.labels().contains_key(LABEL_LATEST_REVISION)
        || live.labels().get(LABEL_PROMISE_NAME) != desired.labels().get(LABEL_PROMISE_NAME)
        || live.metadata.owner_references != desired.metadata.owner_references
}

async fn set_latest_status(
    api: &Api<PromiseRevision>,
    name: &str,
    latest: bool,
) -> Result<(), Error> {
    let patch = json!({"status": {"latest": latest}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The API a Promise offers (`spec.api`, a CRD): group, kind, plural and a served version.
pub fn offered_api(promise: &Promise) -> Option<ApiResource> {
    let spec = promise.spec.api()?.get("spec")?;
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

async fn reconcile_revision(rev: Arc<PromiseRevision>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<PromiseRevision> = Api::all(ctx.client.clone());
    let result = finalizer(&api, REVISION_FINALIZER, rev, |event| async {
        match event {
            Finalizer::Apply(_) => Ok(Action::await_change()),
            Finalizer::Cleanup(rev) => cleanup_revision(&rev, &ctx).await,
        }
    })
    .await;
    finish("PromiseRevision", &ctx, result)
}

fn finish(
    kind: &str,
    ctx: &Ctx,
    result: Result<Action, kube::runtime::finalizer::Error<Error>>,
) -> Result<Action, Error> {
    let action = result.map_err(|e| Error::Other(e.to_string()))?;
    ctx.metrics.reconcile(kind, "ok");
    Ok(action)
}

/// Deletes the requests whose binding pins this revision's version, then those bindings.
async fn cleanup_revision(rev: &PromiseRevision, ctx: &Ctx) -> Result<Action, Error> {
    let promise = rev.spec.promise_ref.name.clone();
    let bindings: Api<ResourceBinding> = Api::all(ctx.client.clone());
    let selector = format!("{LABEL_PROMISE_NAME}={promise}");
    let pinned: Vec<ResourceBinding> = bindings
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|b| b.spec.version == rev.spec.version)
        .collect();
    let offered = Api::<Promise>::all(ctx.client.clone())
        .get_opt(&promise)
        .await?
        .and_then(|p| offered_api(&p));
    for binding in &pinned {
        let ns = binding.namespace().unwrap_or_default();
        if let Some(ar) = &offered {
            let requests: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, ar);
            ignore_missing(
                requests
                    .delete(&binding.spec.resource_ref.name, &DeleteParams::default())
                    .await,
            )?;
        }
        let api: Api<ResourceBinding> = Api::namespaced(ctx.client.clone(), &ns);
        ignore_missing(
            api.delete(&binding.name_any(), &DeleteParams::default())
                .await,
        )?;
        let note = format!(
            "deleted request {ns}/{} pinned to version {:?}",
            binding.spec.resource_ref.name, rev.spec.version
        );
        ctx.event(rev, false, "RequestDeleted", note).await;
    }
    Ok(Action::await_change())
}

fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile_binding(binding: Arc<ResourceBinding>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if binding.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let promise = &binding.spec.promise_ref.name;
    let api: Api<PromiseRevision> = Api::all(ctx.client.clone());
    let selector = format!("{LABEL_PROMISE_NAME}={promise}");
    let revisions = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
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
    let conditions = merge(&old.conditions, vec![condition.clone()], &super::now());
    let applied = resolved.clone().or(old.last_applied_version.clone());
    if same(&old.conditions, &conditions) && applied == old.last_applied_version {
        ctx.metrics.reconcile("ResourceBinding", "ok");
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    let patch = json!({"status": {"conditions": conditions, "lastAppliedVersion": applied}});
    let ns = binding.namespace().unwrap_or_default();
    Api::<ResourceBinding>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &binding.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let warning = resolved.is_none();
    ctx.event(&*binding, warning, &condition.reason, condition.message)
        .await;
    ctx.metrics.reconcile("ResourceBinding", "ok");
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Starts one controller per offered kind, once.
fn start_requests(k: &Arc<KratixCtx>, ar: ApiResource, promise: String) {
    let key = format!("{}/{}/{}", ar.group, ar.version, ar.plural);
    let fresh = k.started.lock().map(|mut s| s.insert(key)).unwrap_or(false);
    if !fresh {
        return;
    }
    let ctx = Arc::new(RequestCtx {
        ctx: k.ctx.clone(),
        ar: ar.clone(),
        promise: promise.clone(),
    });
    let client = k.ctx.client.clone();
    let requests = Api::<DynamicObject>::all_with(client.clone(), &ar);
    let selector = format!("{LABEL_PROMISE_NAME}={promise}");
    let mapped = ar.clone();
    let controller = Controller::new_with(requests, watcher::Config::default(), ar)
        .watches(
            Api::<ResourceBinding>::all(client),
            watcher::Config::default().labels(&selector),
            move |b| {
                let name = b.labels().get(LABEL_RESOURCE_NAME).cloned();
                let ns = b.namespace();
                name.zip(ns)
                    .map(|(n, ns)| ObjectRef::new_with(&n, mapped.clone()).within(&ns))
            },
        )
        .run(
            reconcile_request,
            |_, e, c: Arc<RequestCtx>| on_error("ResourceRequest", e, &c.ctx),
            ctx,
        )
        .for_each(|_| async {});
    tokio::spawn(controller);
}

struct RequestCtx {
    ctx: Arc<Ctx>,
    ar: ApiResource,
    promise: String,
}

/// The binding a request should have, pinned to `version`.
pub fn binding_for(request: &DynamicObject, promise: &str, version: &str) -> ResourceBinding {
    let name = request.name_any();
    let ns = request.namespace().unwrap_or_default();
    let hash = naming::short_hash(&format!("{ns}/{name}"));
    let mut binding = ResourceBinding::new(
        &format!("{name}-{promise}-{hash}"),
        ResourceBindingSpec {
            promise_ref: NameRef {
                name: promise.into(),
            },
            resource_ref: ResourceRef {
                name: name.clone(),
                namespace: ns.clone(),
            },
            version: version.into(),
        },
    );
    binding.metadata.namespace = Some(ns);
    binding.metadata.labels = Some(BTreeMap::from([
        (LABEL_PROMISE_NAME.to_string(), promise.to_string()),
        (LABEL_RESOURCE_NAME.to_string(), name),
    ]));
    binding
}

/// The version a new binding gets: the remembered one, else the latest revision's.
pub fn version_for(request: &DynamicObject, latest: Option<&str>) -> Option<String> {
    request
        .annotations()
        .get(BOUND_VERSION)
        .filter(|v| !v.is_empty())
        .cloned()
        .or_else(|| latest.map(str::to_string))
}

async fn reconcile_request(
    request: Arc<DynamicObject>,
    rc: Arc<RequestCtx>,
) -> Result<Action, Error> {
    let ns = request.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(rc.ctx.client.clone(), &ns, &rc.ar);
    let result = finalizer(&api, REQUEST_FINALIZER, request, |event| async {
        match event {
            Finalizer::Apply(r) => ensure_binding(&r, &rc, &api).await,
            Finalizer::Cleanup(r) => delete_bindings(&r, &rc).await,
        }
    })
    .await;
    finish("ResourceRequest", &rc.ctx, result)
}

async fn bindings_of(
    request: &DynamicObject,
    rc: &RequestCtx,
) -> Result<(Api<ResourceBinding>, Vec<ResourceBinding>), Error> {
    let ns = request.namespace().unwrap_or_default();
    let api: Api<ResourceBinding> = Api::namespaced(rc.ctx.client.clone(), &ns);
    let selector = format!(
        "{LABEL_PROMISE_NAME}={},{LABEL_RESOURCE_NAME}={}",
        rc.promise,
        request.name_any()
    );
    let items = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    Ok((api, items))
}

async fn ensure_binding(
    request: &DynamicObject,
    rc: &RequestCtx,
    requests: &Api<DynamicObject>,
) -> Result<Action, Error> {
    let (api, found) = bindings_of(request, rc).await?;
    let version = match found.as_slice() {
        [one] => one.spec.version.clone(),
        [] => {
            let latest = latest_version(&rc.ctx, &rc.promise).await?;
            let Some(version) = version_for(request, latest.as_deref()) else {
                return Err(Error::Other(format!(
                    "Promise {:?} has no latest PromiseRevision yet",
                    rc.promise
                )));
            };
            let binding = binding_for(request, &rc.promise, &version);
            api.create(&PostParams::default(), &binding).await?;
            let note = format!(
                "created ResourceBinding {} at version {version:?}",
                binding.name_any()
            );
            rc.ctx
                .event_ref(&reference(request, &rc.ar), false, "BindingCreated", note)
                .await;
            version
        }
        _ => {
            return Err(Error::Other(format!(
                "found multiple ResourceBindings for Resource {} in namespace {};there should be one ResourceBinding per Resource",
                request.name_any(),
                request.namespace().unwrap_or_default()
            )));
        }
    };
    if request.annotations().get(BOUND_VERSION) != Some(&version) {
        let patch = json!({"metadata": {"annotations": {BOUND_VERSION: version}}});
        requests
            .patch(
                &request.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn delete_bindings(request: &DynamicObject, rc: &RequestCtx) -> Result<Action, Error> {
    let (api, found) = bindings_of(request, rc).await?;
    for binding in found {
        ignore_missing(
            api.delete(&binding.name_any(), &DeleteParams::default())
                .await,
        )?;
        let note = format!(
            "deleted ResourceBinding {} with its request",
            binding.name_any()
        );
        rc.ctx
            .event_ref(&reference(request, &rc.ar), false, "BindingDeleted", note)
            .await;
    }
    Ok(Action::await_change())
}

async fn latest_version(ctx: &Ctx, promise: &str) -> Result<Option<String>, Error> {
    let api: Api<PromiseRevision> = Api::all(ctx.client.clone());
    let selector = format!("{LABEL_PROMISE_NAME}={promise},{LABEL_LATEST_REVISION}=true");
    let items = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    Ok(items.first().map(|r| r.spec.version.clone()))
}

fn reference(object: &DynamicObject, ar: &ApiResource) -> ObjectReference {
    object.object_ref(ar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

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

    #[test]
    fn a_promise_asks_for_its_versions_revision() {
        let r = desired_revision(&promise(Some("v0.2.0")));
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
        let owner = r.metadata.owner_references.unwrap_or_default();
        assert_eq!(
            owner.first().map(|o: &OwnerReference| o.kind.as_str()),
            Some("Promise")
        );
        assert_eq!(desired_revision(&promise(None)).name_any(), "redis-not-set");
    }

    #[test]
    fn latest_moves_off_every_sibling() {
        let mut old = desired_revision(&promise(Some("v0.1.0")));
        old.status = Some(PromiseRevisionStatus { latest: true });
        let mut plain = desired_revision(&promise(Some("v0.0.1")));
        plain
            .metadata
            .labels
            .as_mut()
            .map(|l| l.remove(LABEL_LATEST_REVISION));
        let new = desired_revision(&promise(Some("v0.2.0")));
        let all = [old, plain, new];
        assert_eq!(
            demoted(&all, "redis-v0.2.0"),
            vec!["redis-v0.1.0".to_string()]
        );
        assert_eq!(
            demoted(&all, "redis-v0.1.0"),
            vec!["redis-v0.2.0".to_string()]
        );
    }

    #[test]
    fn the_offered_api_is_read_from_the_promise() {
        let ar = offered_api(&promise(None)).map(|a| (a.group, a.version, a.kind, a.plural));
        let want = ("marketplace.kratix.io", "v1alpha1", "redis", "redis");
        assert_eq!(
            ar,
            Some((want.0.into(), want.1.into(), want.2.into(), want.3.into()))
        );
        assert!(offered_api(&Promise::new("x", PromiseSpec::default())).is_none());
    }

    #[test]
    fn a_request_gets_one_labelled_binding() {
        let mut request = DynamicObject::new("example", &ApiResource::erase::<Promise>(&()));
        request.metadata.namespace = Some("team".into());
        let b = binding_for(&request, "redis", "v0.1.0");
        let hash = naming::short_hash("team/example");
        assert_eq!(b.name_any(), format!("example-redis-{hash}"));
        assert_eq!(b.namespace().as_deref(), Some("team"));
        assert_eq!(b.spec.resource_ref.namespace, "team");
        assert_eq!(
            b.labels().get(LABEL_RESOURCE_NAME).map(String::as_str),
            Some("example")
        );
        assert_eq!(
            version_for(&request, Some("v0.2.0")).as_deref(),
            Some("v0.2.0")
        );
        request.metadata.annotations = Some(BTreeMap::from([(
            BOUND_VERSION.to_string(),
            "v0.1.0".to_string(),
        )]));
        assert_eq!(
            version_for(&request, Some("v0.2.0")).as_deref(),
            Some("v0.1.0")
        );
        assert_eq!(
            version_for(
                &DynamicObject::new("x", &ApiResource::erase::<Promise>(&())),
                None
            ),
            None
        );
    }
}
