//! OpenChoreo bookkeeping: the ResourceReleaseBinding finalizer, its Synced/Ready conditions
//! recomputed whenever a referent changes, RetainHold on deletion, and bindings deleted with
//! their Resource.
//!
//! The loop watches nothing itself: the cluster view announces every change it applies (its
//! own watches, one per kind and process), bindings included, and keeps what the loop reads of
//! each binding ([`crate::cluster::Books`]). Each change is mapped to the bindings it affects
//! and queued ([`super::runner`]); a reconcile reads the view, which already has the change.

use super::conditions::{
    self, BindingView, StatusWrite, binding_conditions, finalizing, status_write,
};
use super::runner::{self, Follow, Key};
use super::{
    Ctx, Error, Target, finalizer_added, finalizer_removed, get_text, guarded, patch_version,
};
use crate::cluster::held::{Finalizers, Held};
use crate::cluster::{Books, Changed, ClusterView, Listed};
use crate::crd::*;
use crate::kinds::{Family, Kind};
use crate::policy::referents::{self, DELETE, RETAIN};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

type Rrb = ResourceReleaseBinding;

pub async fn run(ctx: Arc<Ctx>) {
    tokio::join!(
        runner::run(ctx.clone(), Bindings),
        cascade_resource_deletion(ctx)
    );
}

/// The ResourceReleaseBindings, each reconciled whenever it or a referent it reads changes.
struct Bindings;

impl Follow for Bindings {
    fn kind(&self) -> &'static str {
        Kind::ResourceReleaseBinding.name()
    }
    fn family(&self) -> Family {
        Family::OpenChoreo
    }

    fn every(&self, view: &dyn ClusterView) -> Vec<Key> {
        let all = view.release_binding_names(None, &|_| true);
        all.into_iter().map(binding_key).collect()
    }

    fn affected(&self, view: &dyn ClusterView, change: &Changed) -> Vec<Key> {
        affected(view, change)
    }

    async fn reconcile(&self, ctx: &Ctx, key: &str) -> Result<(), Error> {
        reconcile(ctx, key).await
    }
}

fn binding_key((namespace, name): (String, String)) -> Key {
    runner::key(Some(&namespace), &name)
}

/// The bindings a change affects: a binding itself, or those in a referent's namespace that
/// name it (every one in the namespace for a ResourceType, every one for a ClusterResourceType);
/// every binding when a kind they read was listed again.
fn affected(view: &dyn ClusterView, change: &Changed) -> Vec<Key> {
    if change.relisted {
        return match change.kind {
            Kind::Promise | Kind::PromiseRevision | Kind::ResourceBinding => Vec::new(),
            _ => Bindings.every(view),
        };
    }
    let name = change.name.as_str();
    let here = change.namespace.as_deref();
    let within = |pick: &dyn Fn(&Listed) -> bool| match here {
        Some(ns) => view.release_binding_names(Some(ns), pick),
        None => Vec::new(),
    };
    let names = match change.kind {
        Kind::ResourceReleaseBinding => match (here, change.gone) {
            (Some(ns), false) => vec![(ns.to_string(), name.to_string())],
            _ => Vec::new(),
        },
        Kind::Environment => within(&|b| b.environment == name),
        Kind::Resource => within(&|b| b.resource == name),
        Kind::ResourceRelease => within(&|b| b.release == Some(name)),
        Kind::Project => within(&|b| b.project == name),
        Kind::ResourceType => within(&|_| true),
        Kind::ClusterResourceType => return Bindings.every(view),
        _ => Vec::new(),
    };
    names.into_iter().map(binding_key).collect()
}

async fn reconcile(ctx: &Ctx, key: &str) -> Result<(), Error> {
    let (ns, name) = runner::parts(key);
    let Some(mut books) = ctx.view.release_binding_books(ns, name) else {
        return Ok(());
    };
    let mut writes = Writes {
        client: &ctx.client,
        namespace: ns,
        name,
        version: books.binding.metadata.resource_version.clone(),
    };
    let ours = books.finalizers.ours_at.is_some();
    match (books.binding.metadata.deletion_timestamp.is_some(), ours) {
        (true, false) => {}
        (true, true) => finalize(&mut books, &mut writes, ctx).await?,
        (false, _) => {
            // The conditions are written apart from the finalizer; the watch events of both
            // writes reach the view within the debounce ([`super::DEBOUNCE`]), and the
            // reconcile they trigger then finds nothing to change.
            if !ours {
                writes.finalizer(books.finalizers, true).await?;
            }
            let b = &books.binding;
            let facts = referents::facts(ctx.view.as_ref(), &ctx.schemas, ns, b);
            let wanted = binding_conditions(&view(b), &facts);
            writes.conditions(&mut books.conditions, wanted).await?;
        }
    }
    Ok(())
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

/// The loop's writes to one binding, each conditional on the resourceVersion the view showed
/// (then on the one the previous write answered): a write from a view that is behind fails,
/// and the reconcile runs again after [`runner::RETRY`], instead of overwriting a finalizer or a
/// condition someone else wrote meanwhile.
/// The answers are read for their resourceVersion only ([`patch_version`]), so a binding nested
/// past the JSON decoder's limit is written like any other.
struct Writes<'a> {
    client: &'a Client,
    namespace: &'a str,
    name: &'a str,
    version: Option<String>,
}

impl<'a> Writes<'a> {
    /// Adds or removes our finalizer where the view says it is (tested before it is removed).
    async fn finalizer(&mut self, held: Finalizers, present: bool) -> Result<(), Error> {
        let ops = match (present, held.ours_at) {
            (true, None) => finalizer_added(held.count as usize, RRB_FINALIZER),
            (false, Some(i)) => finalizer_removed(i as usize, RRB_FINALIZER),
            _ => return Ok(()),
        };
        let patch = Patch::Json::<()>(guarded(self.version.as_deref(), ops)?);
        self.version = patch_version::<Rrb, _>(self.client, self.to(false), &patch).await?;
        Ok(())
    }

    fn to(&self, status: bool) -> Target<'a> {
        Target {
            namespace: Some(self.namespace),
            name: self.name,
            status,
        }
    }

    /// Brings the conditions to `wanted` ([`status_write`]); writes nothing when nothing
    /// changed. `held` follows the write, for a second write in the same reconcile.
    async fn conditions(
        &mut self,
        held: &mut Vec<Held>,
        wanted: Vec<Condition>,
    ) -> Result<bool, Error> {
        let Some((write, after)) = status_write(held, wanted, &super::now()) else {
            return Ok(false);
        };
        let (client, to) = (self.client, self.to(true));
        self.version = match write {
            StatusWrite::Whole(mut patch) => {
                if let Some(version) = &self.version {
                    patch["metadata"] = json!({"resourceVersion": version});
                }
                patch_version::<Rrb, _>(client, to, &Patch::Merge(&patch)).await?
            }
            StatusWrite::Steps(ops) => {
                let patch = Patch::Json::<()>(guarded(self.version.as_deref(), ops)?);
                patch_version::<Rrb, _>(client, to, &patch).await?
            }
        };
        *held = after;
        Ok(true)
    }
}

async fn finalize(books: &mut Books, writes: &mut Writes<'_>, ctx: &Ctx) -> Result<(), Error> {
    let b = &books.binding;
    let g = b.metadata.generation;
    let finalizing_now = books
        .conditions
        .iter()
        .find(|h| h.type_.is(conditions::FINALIZING))
        .copied();
    if finalizing_now.is_none() {
        let wanted = vec![finalizing("Finalizing", g)];
        writes.conditions(&mut books.conditions, wanted).await?;
    }
    let ns = b.metadata.namespace.as_deref().unwrap_or_default();
    // A hold is released by the binding's own policy only (the seed's "flip the policy"): a
    // Resource or type deleted since never turns a held binding into an accidental Delete.
    let held = finalizing_now.is_some_and(|h| h.reason.is("RetainHold"))
        && b.spec.retain_policy.as_deref() != Some(DELETE);
    let policy = match held {
        true => RETAIN.to_string(),
        false => referents::effective_retain_policy(ctx.view.as_ref(), ns, b),
    };
    if policy == RETAIN {
        let hold = vec![finalizing("RetainHold", g)];
        if writes.conditions(&mut books.conditions, hold).await? {
            let note = conditions::RETAIN_HOLD_MESSAGE.into();
            ctx.event(b, true, "RetainHold", note).await;
        }
        return Ok(());
    }
    writes.finalizer(books.finalizers, false).await?;
    let note = "retainPolicy=Delete; finalizer removed".into();
    ctx.event(b, false, "Finalized", note).await;
    Ok(())
}

/// Deletes the bindings of every Resource the cluster view sees deleted. Retain bindings then
/// show RetainHold. Deletions come on the view's channel of deletions only, are queued as they
/// are announced and worked off beside (once the view has listed every kind), so a mass
/// deletion never makes the listener fall behind the announcements and miss some. The term
/// starts with the deletions the view saw in the last minutes ([`ClusterView::recent_deletions`]),
/// which a term that ended, or none, may not have acted on.
async fn cascade_resource_deletion(ctx: Arc<Ctx>) {
    let Some(mut changes) = ctx.view.deletions() else {
        tracing::warn!(
            "the cluster view announces no changes: a deleted Resource keeps its bindings"
        );
        return;
    };
    let (deleted, mut queue) = tokio::sync::mpsc::unbounded_channel();
    // A deletion is received a moment after the view saw it: replay from a little before.
    let through = ctx.cascaded_through.lock().ok().and_then(|t| *t);
    let since = through.and_then(|t| t.checked_sub(REPLAY_MARGIN));
    for missed in ctx.view.recent_deletions(since) {
        if missed.kind == Kind::Resource {
            let _ = deleted.send((Instant::now(), missed));
        }
    }
    let listen = async move {
        loop {
            match changes.recv().await {
                Ok(deletion) if deletion.kind == Kind::Resource => {
                    let _ = deleted.send((Instant::now(), deletion));
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
        runner::synced(ctx.view.as_ref()).await;
        while let Some((seen, change)) = queue.recv().await {
            tokio::time::sleep_until(seen + RECREATE_GRACE).await;
            delete_bindings_of(&change, &ctx).await;
            if let Ok(mut through) = ctx.cascaded_through.lock() {
                *through = (*through).max(Some(seen.into_std()));
            }
        }
    };
    tokio::join!(listen, work);
}

/// How long a Resource deletion waits before its bindings go: `kubectl replace --force` (or a
/// delete and apply) creates it again within milliseconds, and those bindings are the new one's.
const RECREATE_GRACE: Duration = Duration::from_secs(2);

/// How far before the last deletion acted on a new term replays: acting twice deletes nothing
/// twice (a binding being deleted is left alone), missing one leaks its bindings.
const REPLAY_MARGIN: Duration = Duration::from_secs(5);

async fn delete_bindings_of(resource: &Changed, ctx: &Ctx) {
    if exists_again(ctx.view.as_ref(), resource) || exists_in_cluster(resource, ctx).await {
        return;
    }
    for (ns, name) in of_deleted_resource(ctx.view.as_ref(), resource) {
        let Some(books) = ctx.view.release_binding_books(&ns, &name) else {
            continue;
        };
        let api: Api<Rrb> = Api::namespaced(ctx.client.clone(), &ns);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                let note = format!(
                    "Resource {:?} was deleted; deleting its binding",
                    resource.name
                );
                ctx.event(&books.binding, false, "ResourceDeleted", note)
                    .await;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => tracing::warn!(
                %error,
                binding = name,
                resource = %resource.name,
                "could not delete the binding of a deleted Resource"
            ),
        }
    }
}

/// Whether a Resource of the deleted one's name exists now (created again since): its bindings
/// are then the new one's.
fn exists_again(view: &dyn ClusterView, resource: &Changed) -> bool {
    let ns = resource.namespace.as_deref().unwrap_or_default();
    let name = &resource.name;
    view.resource(ns, name).is_some() || view.unreadable("Resource", ns, name).is_some()
}

/// Whether the API server has a Resource of the deleted one's name (the view may be behind); an
/// error leaves the view's answer (absent) standing.
async fn exists_in_cluster(resource: &Changed, ctx: &Ctx) -> bool {
    let ns = resource.namespace.as_deref();
    match get_text::<Resource>(&ctx.client, ns, &resource.name).await {
        Ok(found) => found.is_some(),
        Err(error) => {
            tracing::warn!(%error, resource = %resource.name, "could not confirm a Resource deletion; acting on the view's");
            false
        }
    }
}

/// The bindings a deleted Resource takes with it: those in its namespace that name it and are
/// not being deleted already.
fn of_deleted_resource(view: &dyn ClusterView, resource: &Changed) -> Vec<(String, String)> {
    let Some(ns) = resource.namespace.as_deref() else {
        return Vec::new();
    };
    view.release_binding_names(Some(ns), &|b| b.resource == resource.name && !b.deleting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Stores, Writers, put};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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

    fn view(bindings: impl IntoIterator<Item = Rrb>) -> Stores {
        let (mut writers, stores) = Writers::new(0);
        for b in bindings {
            put(&mut writers.release_bindings, b);
        }
        stores
    }

    fn change(kind: Kind, ns: Option<&str>, name: &str, gone: bool) -> Changed {
        Changed {
            gone,
            ..Changed::of(kind, ns, name)
        }
    }

    #[test]
    fn a_change_reaches_exactly_the_bindings_that_read_it() {
        let view = view([
            binding("a", "db-dev", "db", "dev"),
            binding("a", "db-prod", "db", "prod"),
            binding("a", "cache-dev", "cache", "dev"),
            binding("b", "db-dev", "db", "dev"),
        ]);
        let names =
            |kind, ns, name| runner::sorted(affected(&view, &change(kind, ns, name, false)));
        assert_eq!(
            names(Kind::Environment, Some("a"), "dev"),
            ["a/cache-dev", "a/db-dev"]
        );
        assert_eq!(
            names(Kind::Resource, Some("a"), "db"),
            ["a/db-dev", "a/db-prod"]
        );
        assert_eq!(
            names(Kind::ResourceRelease, Some("b"), "db-r1"),
            ["b/db-dev"]
        );
        assert_eq!(names(Kind::Project, Some("b"), "shop"), ["b/db-dev"]);
        assert_eq!(names(Kind::ResourceType, Some("b"), "postgres").len(), 1);
        assert_eq!(names(Kind::ClusterResourceType, None, "postgres").len(), 4);
        assert!(names(Kind::Promise, None, "db").is_empty());
        assert_eq!(
            names(Kind::ResourceReleaseBinding, Some("a"), "db-dev"),
            ["a/db-dev"]
        );
        let gone = affected(
            &view,
            &change(Kind::ResourceReleaseBinding, Some("a"), "db-dev", true),
        );
        assert!(gone.is_empty(), "a deleted binding needs nothing");
        for kind in [
            Kind::ResourceReleaseBinding,
            Kind::Environment,
            Kind::ResourceType,
        ] {
            let relisted = Changed {
                relisted: true,
                ..change(kind, None, "", false)
            };
            assert_eq!(
                affected(&view, &relisted).len(),
                4,
                "{kind:?} relisted: every binding"
            );
        }
        let promises = Changed {
            relisted: true,
            ..change(Kind::Promise, None, "", false)
        };
        assert!(affected(&view, &promises).is_empty());
    }

    #[test]
    fn a_deleted_resource_takes_exactly_its_live_bindings() {
        let mut leaving = binding("a", "db-staging", "db", "staging");
        leaving.metadata.deletion_timestamp = Some(Time(Default::default()));
        let view = view([
            binding("a", "db-dev", "db", "dev"),
            binding("a", "db-prod", "db", "prod"),
            binding("a", "cache-dev", "cache", "dev"),
            binding("b", "db-dev", "db", "dev"),
            leaving,
        ]);
        let deleted = change(Kind::Resource, Some("a"), "db", true);
        assert_eq!(
            runner::sorted(
                of_deleted_resource(&view, &deleted)
                    .into_iter()
                    .map(binding_key)
                    .collect()
            ),
            ["a/db-dev", "a/db-prod"]
        );
    }

    #[test]
    fn a_resource_created_again_keeps_its_bindings() {
        let (mut writers, stores) = Writers::new(0);
        let deleted = change(Kind::Resource, Some("a"), "db", true);
        assert!(!exists_again(&stores, &deleted));
        let mut again = Resource::new("db", ResourceSpec::default());
        again.metadata.namespace = Some("a".into());
        put(&mut writers.resources, again);
        assert!(exists_again(&stores, &deleted));
        let elsewhere = change(Kind::Resource, Some("b"), "db", true);
        assert!(!exists_again(&stores, &elsewhere));
    }

    #[test]
    fn a_write_is_conditional_on_the_version_the_view_showed() {
        let add = json!({"op": "add", "path": "/metadata/finalizers/-", "value": "f"});
        let patch = guarded(Some("42"), vec![add.clone()]).unwrap();
        let ops = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            ops,
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "42"}, add])
        );
        let unguarded = serde_json::to_value(guarded(None, vec![add.clone()]).unwrap()).unwrap();
        assert_eq!(unguarded, json!([add]));
    }

    #[test]
    fn the_view_keeps_what_the_loop_reads_of_a_binding() {
        let mut b = binding("a", "db-dev", "db", "dev");
        b.metadata.uid = Some("u-1".into());
        b.metadata.generation = Some(4);
        b.metadata.resource_version = Some("17".into());
        b.metadata.finalizers = Some(vec!["other".into(), RRB_FINALIZER.into()]);
        b.spec.retain_policy = Some("Retain".into());
        b.spec.resource_type_environment_configs = Some(json!({"replicas": 2}));
        let synced = Condition {
            type_: "Synced".into(),
            status: "True".into(),
            message: "fine".into(),
            ..Condition::default()
        };
        b.status = Some(ResourceReleaseBindingStatus {
            conditions: vec![synced.clone()],
            outputs: Vec::new(),
        });
        let spec = b.spec.clone();
        let books = view([b])
            .release_binding_books("a", "db-dev")
            .expect("kept");
        assert_eq!(books.binding.spec, spec);
        let meta = &books.binding.metadata;
        assert_eq!(meta.uid.as_deref(), Some("u-1"));
        assert_eq!(meta.generation, Some(4));
        assert_eq!(meta.resource_version.as_deref(), Some("17"));
        assert_eq!(
            (books.finalizers.ours_at, books.finalizers.count),
            (Some(1), 2)
        );
        assert_eq!(books.conditions, [Held::of(&synced)]);
    }
}
