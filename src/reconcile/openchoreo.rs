//! OpenChoreo bookkeeping: the ResourceReleaseBinding finalizer, its Synced/Ready conditions
//! recomputed whenever a referent changes, RetainHold on deletion, and bindings deleted with
//! their Resource (told by the cluster view's announced changes, as referent changes are).

use super::conditions::{self, BindingView, binding_conditions, finalizing, merge, same};
use super::{Ctx, Error, observed, on_error};
use crate::cluster::Changed;
use crate::crd::*;
use crate::policy::referents::{self, DELETE, RETAIN};
use futures::StreamExt;
use kube::Resource as _;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

type Rrb = ResourceReleaseBinding;

/// Bindings are watched here; their referents are not: every referent change the cluster view
/// applies (its own watches, one per kind and process) is mapped to the bindings it affects, so a
/// triggered reconcile always reads a view that already has the change.
pub async fn run(ctx: Arc<Ctx>) {
    let c = ctx.client.clone();
    let (store, writer) = reflector::store();
    let bindings = watcher(Api::<Rrb>::all(c), watcher::Config::default()).modify(lean);
    let controller = Controller::for_stream(
        reflector::reflector(writer, bindings).applied_objects(),
        store,
    )
    .with_config(super::controller_config());
    let store = controller.store();
    let changes = ctx.view.changes();
    if changes.is_none() {
        tracing::warn!(
            "the cluster view announces no changes: bindings follow their referents only every 5 minutes"
        );
    }
    let cascade = cascade_resource_deletion(ctx.clone(), store.clone());
    let reconciles = controller
        .reconcile_on(affected_by_changes(changes, store))
        .run(
            observed("ResourceReleaseBinding", ctx.metrics.clone(), reconcile),
            |_, e, c: Arc<Ctx>| on_error("ResourceReleaseBinding", e, &c),
            ctx,
        )
        .for_each(|_| async {});
    tokio::join!(reconciles, cascade);
}

/// What the loop keeps of a binding: not what it never reads (managedFields, labels,
/// annotations with kubectl's last-applied copy, status outputs), together often larger than the
/// rest. It writes finalizers by JSON patch and conditions by merge patch, never the whole object.
fn lean(binding: &mut Rrb) {
    let meta = &mut binding.metadata;
    meta.managed_fields = None;
    meta.labels = None;
    meta.annotations = None;
    if let Some(status) = binding.status.as_mut() {
        status.outputs = Vec::new();
    }
}

/// The bindings each announced change affects; all of them when changes were missed.
fn affected_by_changes(
    changes: Option<broadcast::Receiver<Changed>>,
    store: Store<Rrb>,
) -> impl futures::Stream<Item = ObjectRef<Rrb>> + Send + 'static {
    futures::stream::unfold((changes, store), |(changes, store)| async move {
        let mut changes = changes?;
        let affected = match changes.recv().await {
            Ok(change) => affected(&store, &change),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "referent changes missed; looking at every binding");
                every(&store, |_| true)
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((futures::stream::iter(affected), (Some(changes), store)))
    })
    .flatten()
}

/// The bindings a change of a referent affects: those in its namespace that name it (every one
/// in the namespace for a ResourceType, every one for a ClusterResourceType).
fn affected(store: &Store<Rrb>, change: &Changed) -> Vec<ObjectRef<Rrb>> {
    let name = change.name.as_str();
    let here = |b: &Rrb| b.metadata.namespace == change.namespace;
    match &*change.kind {
        "Environment" => every(store, |b| here(b) && b.spec.environment == name),
        "Resource" => every(store, |b| here(b) && b.spec.owner.resource_name == name),
        "ResourceRelease" => every(store, |b| {
            here(b) && b.spec.resource_release.as_deref() == Some(name)
        }),
        "Project" => every(store, |b| here(b) && b.spec.owner.project_name == name),
        "ResourceType" => every(store, here),
        "ClusterResourceType" => every(store, |_| true),
        _ => Vec::new(),
    }
}

fn every(store: &Store<Rrb>, matches: impl Fn(&Rrb) -> bool) -> Vec<ObjectRef<Rrb>> {
    store
        .state()
        .into_iter()
        .filter(|b| matches(b))
        .map(|b| ObjectRef::from_obj(&*b))
        .collect()
}

/// How soon to look again when the view has not caught up with the cluster yet.
const VIEW_NOT_SYNCED: Duration = Duration::from_secs(2);

async fn reconcile(binding: Arc<Rrb>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.view.is_synced() {
        return Ok(Action::requeue(VIEW_NOT_SYNCED));
    }
    let ns = binding.namespace().unwrap_or_default();
    let api: Api<Rrb> = Api::namespaced(ctx.client.clone(), &ns);
    let ours = binding.finalizers().iter().any(|f| f == RRB_FINALIZER);
    let action = match (binding.metadata.deletion_timestamp.is_some(), ours) {
        (true, false) => Action::await_change(),
        (true, true) => finalize(&binding, &api, &ctx).await?,
        (false, _) => {
            // The patched object carries the status as the server has it now, so the condition
            // write below is the only other one; the finalizer's own watch event is debounced
            // ([`super::DEBOUNCE`]) until this write has been seen, and then nothing changed.
            let binding = match ours {
                true => binding,
                false => set_finalizer(&api, &binding, true)
                    .await?
                    .map_or(binding, Arc::new),
            };
            let facts = referents::facts(ctx.view.as_ref(), &ctx.schemas, &ns, &binding);
            let wanted = binding_conditions(&view(&binding), &facts);
            let synced = wanted
                .iter()
                .any(|c| c.type_ == conditions::SYNCED && c.status == "True");
            write_conditions(&api, &binding, wanted).await?;
            // A referent that is missing may be on its way: look again soon.
            Action::requeue(Duration::from_secs(if synced { 300 } else { 5 }))
        }
    };
    ctx.metrics.reconcile("ResourceReleaseBinding", "ok");
    Ok(action)
}

fn view(b: &Rrb) -> BindingView {
    BindingView {
        project: b.spec.owner.project_name.clone(),
        resource: b.spec.owner.resource_name.clone(),
        environment: b.spec.environment.clone(),
        release: b.spec.resource_release.clone(),
        generation: b.metadata.generation,
    }
}

/// Adds or removes our finalizer with a JSON patch that tests what it changes, so a concurrent
/// edit of the list fails (and requeues) instead of being overwritten. Returns the patched
/// object, or `None` when there was nothing to change.
async fn set_finalizer(api: &Api<Rrb>, b: &Rrb, present: bool) -> Result<Option<Rrb>, Error> {
    let list = b.finalizers();
    let ops = match (present, list.iter().position(|f| f == RRB_FINALIZER)) {
        (true, None) if list.is_empty() => {
            json!([{"op": "add", "path": "/metadata/finalizers", "value": [RRB_FINALIZER]}])
        }
        (true, None) => {
            json!([{"op": "add", "path": "/metadata/finalizers/-", "value": RRB_FINALIZER}])
        }
        (false, Some(i)) => json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": RRB_FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]),
        _ => return Ok(None),
    };
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| Error::Other(e.to_string()))?;
    let patched = api
        .patch(
            &b.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await?;
    Ok(Some(patched))
}

/// Merges `wanted` into the status conditions; writes nothing when nothing changed.
async fn write_conditions(api: &Api<Rrb>, b: &Rrb, wanted: Vec<Condition>) -> Result<bool, Error> {
    let old = b
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let merged = merge(&old, wanted, &super::now());
    if same(&old, &merged) {
        return Ok(false);
    }
    let patch = json!({"status": {"conditions": merged}});
    api.patch_status(
        &b.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}

async fn finalize(b: &Rrb, api: &Api<Rrb>, ctx: &Ctx) -> Result<Action, Error> {
    let g = b.metadata.generation;
    let reason = b.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == conditions::FINALIZING)
            .map(|c| c.reason.as_str())
    });
    if reason.is_none() {
        write_conditions(api, b, vec![finalizing("Finalizing", g)]).await?;
    }
    let ns = b.namespace().unwrap_or_default();
    // A hold is released by the binding's own policy only (the seed's "flip the policy"): a
    // Resource or type deleted since never turns a held binding into an accidental Delete.
    let held = reason == Some("RetainHold") && b.spec.retain_policy.as_deref() != Some(DELETE);
    let policy = match held {
        true => RETAIN.to_string(),
        false => referents::effective_retain_policy(ctx.view.as_ref(), &ns, b),
    };
    if policy == RETAIN {
        if write_conditions(api, b, vec![finalizing("RetainHold", g)]).await? {
            ctx.event(
                b,
                true,
                "RetainHold",
                conditions::RETAIN_HOLD_MESSAGE.into(),
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    set_finalizer(api, b, false).await?;
    ctx.event(
        b,
        false,
        "Finalized",
        "retainPolicy=Delete; finalizer removed".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Deletes the bindings of every Resource the cluster view sees deleted. Retain bindings then
/// show RetainHold. Deletions come on the view's channel of deletions only, are queued as they
/// are announced and worked off beside (once the loop holds every binding), so a mass deletion
/// never makes the listener fall behind the announcements and miss some.
async fn cascade_resource_deletion(ctx: Arc<Ctx>, bindings: Store<Rrb>) {
    let Some(mut changes) = ctx.view.deletions() else {
        tracing::warn!(
            "the cluster view announces no changes: a deleted Resource keeps its bindings"
        );
        return;
    };
    let (deleted, mut queue) = tokio::sync::mpsc::unbounded_channel();
    let resource = Resource::kind(&());
    let listen = async move {
        loop {
            match changes.recv().await {
                Ok(deletion) if *deletion.kind == *resource => {
                    let _ = deleted.send(deletion);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => tracing::warn!(
                    missed,
                    "Resource deletions missed: the bindings of those Resources stay"
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    let work = async {
        if bindings.wait_until_ready().await.is_err() {
            return;
        }
        while let Some(change) = queue.recv().await {
            delete_bindings_of(&change, &bindings, &ctx).await;
        }
    };
    tokio::join!(listen, work);
}

async fn delete_bindings_of(resource: &Changed, bindings: &Store<Rrb>, ctx: &Ctx) {
    let doomed = of_deleted_resource(bindings, resource);
    for b in doomed {
        let api: Api<Rrb> = Api::namespaced(ctx.client.clone(), &b.namespace().unwrap_or_default());
        match api.delete(&b.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                let note = format!(
                    "Resource {:?} was deleted; deleting its binding",
                    resource.name
                );
                ctx.event(&*b, false, "ResourceDeleted", note).await;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => tracing::warn!(
                %error,
                binding = %b.name_any(),
                resource = %resource.name,
                "could not delete the binding of a deleted Resource"
            ),
        }
    }
}

/// The bindings a deleted Resource takes with it: those in its namespace that name it and are
/// not being deleted already.
fn of_deleted_resource(bindings: &Store<Rrb>, resource: &Changed) -> Vec<Arc<Rrb>> {
    bindings
        .state()
        .into_iter()
        .filter(|b| {
            b.metadata.namespace == resource.namespace
                && b.spec.owner.resource_name == resource.name
                && b.metadata.deletion_timestamp.is_none()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn binding(ns: &str, name: &str, resource: &str, environment: &str) -> Rrb {
        let mut spec = ResourceReleaseBindingSpec::default();
        spec.owner.project_name = "shop".into();
        spec.owner.resource_name = resource.into();
        spec.environment = environment.into();
        spec.resource_release = Some(format!("{resource}-r1"));
        let mut b = Rrb::new(name, spec);
        b.metadata.namespace = Some(ns.into());
        b
    }

    fn names(store: &Store<Rrb>, kind: &str, ns: Option<&str>, name: &str) -> Vec<String> {
        let change = Changed {
            kind: Arc::from(kind),
            namespace: ns.map(String::from),
            name: name.into(),
            gone: false,
        };
        let mut names: Vec<String> = affected(store, &change)
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_referent_change_reaches_exactly_the_bindings_that_name_it() {
        let (store, mut writer) = reflector::store();
        for b in [
            binding("a", "db-dev", "db", "dev"),
            binding("a", "db-prod", "db", "prod"),
            binding("a", "cache-dev", "cache", "dev"),
            binding("b", "db-dev", "db", "dev"),
        ] {
            writer.apply_watcher_event(&Event::Apply(b));
        }
        assert_eq!(
            names(&store, "Environment", Some("a"), "dev"),
            ["a/cache-dev", "a/db-dev"]
        );
        assert_eq!(
            names(&store, "Resource", Some("a"), "db"),
            ["a/db-dev", "a/db-prod"]
        );
        assert_eq!(
            names(&store, "ResourceRelease", Some("b"), "db-r1"),
            ["b/db-dev"]
        );
        assert_eq!(names(&store, "Project", Some("b"), "shop"), ["b/db-dev"]);
        assert_eq!(
            names(&store, "ResourceType", Some("b"), "postgres").len(),
            1
        );
        assert_eq!(
            names(&store, "ClusterResourceType", None, "postgres").len(),
            4
        );
        assert!(names(&store, "Promise", None, "db").is_empty());
    }

    #[test]
    fn a_deleted_resource_takes_exactly_its_live_bindings() {
        let (store, mut writer) = reflector::store();
        let mut leaving = binding("a", "db-staging", "db", "staging");
        leaving.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        for b in [
            binding("a", "db-dev", "db", "dev"),
            binding("a", "db-prod", "db", "prod"),
            binding("a", "cache-dev", "cache", "dev"),
            binding("b", "db-dev", "db", "dev"),
            leaving,
        ] {
            writer.apply_watcher_event(&Event::Apply(b));
        }
        let deleted = Changed {
            kind: Arc::from("Resource"),
            namespace: Some("a".into()),
            name: "db".into(),
            gone: true,
        };
        let mut names: Vec<String> = of_deleted_resource(&store, &deleted)
            .iter()
            .map(|b| b.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["db-dev", "db-prod"]);
    }

    #[test]
    fn the_loop_keeps_what_it_reads_of_a_binding_and_nothing_else() {
        let mut b = binding("a", "db-dev", "db", "dev");
        b.metadata.labels = Some([("openchoreo.dev/project".into(), "shop".into())].into());
        b.metadata.annotations = Some([("note".into(), "x".repeat(1000))].into());
        b.metadata.managed_fields = Some(vec![Default::default()]);
        b.metadata.finalizers = Some(vec![RRB_FINALIZER.into()]);
        let condition = Condition {
            type_: "Synced".into(),
            status: "True".into(),
            ..Condition::default()
        };
        let output = ResolvedResourceOutput {
            name: "host".into(),
            value: Some("db.local".into()),
            ..ResolvedResourceOutput::default()
        };
        b.status = Some(ResourceReleaseBindingStatus {
            conditions: vec![condition.clone()],
            outputs: vec![output],
        });
        let spec = b.spec.clone();
        lean(&mut b);
        let meta = &b.metadata;
        assert!(meta.labels.is_none() && meta.annotations.is_none());
        assert!(meta.managed_fields.is_none());
        assert_eq!(b.finalizers(), [RRB_FINALIZER]);
        assert_eq!(b.spec, spec);
        let status = b.status.expect("status kept");
        assert_eq!(status.conditions, [condition]);
        assert!(status.outputs.is_empty());
    }
}
