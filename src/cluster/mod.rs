//! The facts policy may ask about the cluster, answered from memory.
//!
//! [`Stores`] holds one reflector store per kind. The live view fills them from watches
//! ([`live`]); the static view fills them from manifest files ([`files`]). Either way a lookup
//! is a hash-map read: no API call on the request path. An object the live view could not read
//! is kept out of the stores and recorded in [`Unreadables`] by name.

pub mod facts;
pub mod files;
pub mod held;
pub mod index;
pub mod live;
pub mod schemas;
pub mod targets;

pub use index::{Index, Keeper};
pub use targets::{Books, Listed, Targets, TargetsWriter};

use crate::crd::*;
use crate::kinds::{Family, Kind};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::broadcast;

/// What policy may ask of the cluster.
pub trait ClusterView: Send + Sync {
    fn environment(&self, namespace: &str, name: &str) -> Option<Arc<Environment>>;
    fn project(&self, namespace: &str, name: &str) -> Option<Arc<Project>>;
    fn resource(&self, namespace: &str, name: &str) -> Option<Arc<Resource>>;
    fn resource_type(&self, namespace: &str, name: &str) -> Option<Arc<ResourceType>>;
    fn cluster_resource_type(&self, name: &str) -> Option<Arc<ClusterResourceType>>;
    fn resource_release(&self, namespace: &str, name: &str) -> Option<Arc<ResourceRelease>>;
    fn release_bindings(&self, namespace: &str) -> Vec<Arc<ResourceReleaseBinding>>;
    /// The bindings in `namespace` of `resource` to `environment` (any project): by index where
    /// the view has one.
    fn release_bindings_to(
        &self,
        namespace: &str,
        resource: &str,
        environment: &str,
    ) -> Vec<Arc<ResourceReleaseBinding>> {
        self.release_bindings(namespace)
            .into_iter()
            .filter(|b| targets(b, resource, environment))
            .collect()
    }
    /// The binding `namespace/name` with everything the reconcile loop reads of it; `None` when
    /// this view keeps no such binding.
    fn release_binding_books(&self, _namespace: &str, _name: &str) -> Option<Books> {
        None
    }
    /// `(namespace, name)` of every binding `pick` chooses, in `namespace` or in all namespaces.
    fn release_binding_names(
        &self,
        _namespace: Option<&str>,
        _pick: &dyn Fn(&Listed) -> bool,
    ) -> Vec<(String, String)> {
        Vec::new()
    }
    fn promise(&self, name: &str) -> Option<Arc<Promise>>;
    fn promise_revision(&self, name: &str) -> Option<Arc<PromiseRevision>>;
    fn resource_binding(&self, namespace: &str, name: &str) -> Option<Arc<ResourceBinding>>;
    /// Every Promise this view keeps.
    fn all_promises(&self) -> Vec<Arc<Promise>>;
    /// Every PromiseRevision this view keeps.
    fn all_promise_revisions(&self) -> Vec<Arc<PromiseRevision>>;
    /// Every Kratix ResourceBinding this view keeps, in every namespace.
    fn all_resource_bindings(&self) -> Vec<Arc<ResourceBinding>>;
    /// Every revision whose `spec.promiseRef.name` is `promise`.
    fn promise_revisions(&self, promise: &str) -> Vec<Arc<PromiseRevision>>;
    fn resource_bindings(&self, namespace: &str) -> Vec<Arc<ResourceBinding>>;
    /// The bindings in `namespace` of `promise`'s request `resource`: by index where the view
    /// has one.
    fn resource_bindings_for(
        &self,
        namespace: &str,
        promise: &str,
        resource: &str,
    ) -> Vec<Arc<ResourceBinding>> {
        self.resource_bindings(namespace)
            .into_iter()
            .filter(|b| binds(b, promise, resource))
            .collect()
    }
    /// Why the `kind` object `name` (in `namespace`, empty for cluster-scoped kinds) exists but
    /// could not be read, when it could not.
    fn unreadable(&self, kind: &str, namespace: &str, name: &str) -> Option<String>;
    /// True once every kind has been listed at least once.
    fn is_synced(&self) -> bool;
    /// Every change of a kind of `family` this view applies from now on, after applying it;
    /// `None` for views that do not change (files).
    fn changes(&self, _family: Family) -> Option<broadcast::Receiver<Changed>> {
        None
    }
    /// The deletions among [`ClusterView::changes`], on a channel of their own: they are few, so
    /// a listener that lags behind every change still hears of every deletion.
    fn deletions(&self) -> Option<broadcast::Receiver<Changed>> {
        None
    }
    /// The deletions of kinds whose deletions cascade ([`Kind::deletion_cascades`]) announced
    /// after `since` and in the last [`RECENT_DELETIONS_KEPT`], oldest first: what a leadership
    /// term that starts now missed while another replica led, or none did.
    fn recent_deletions(&self, _since: Option<Instant>) -> Vec<Changed> {
        Vec::new()
    }
}

/// How long the live view keeps a cascading deletion for a term that starts later.
pub const RECENT_DELETIONS_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// At most this many recent cascading deletions are kept (the oldest go first).
const RECENT_DELETIONS_MAX: usize = 4096;

/// An object the live view has just added, changed or forgotten; or, with `relisted`, a whole
/// kind listed again (after a watch restart), so anything of that kind may have changed.
#[derive(Clone, Debug)]
pub struct Changed {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    /// The object was deleted from the cluster (its watch said so).
    pub gone: bool,
    /// Every object of `kind` was listed again and the view now holds that list; no name.
    pub relisted: bool,
    /// The object's [`facts::Watched::lookup_key`], for kinds that have one: what a deleted
    /// object was filed under, once the view has forgotten it.
    pub lookup: Option<String>,
}

#[cfg(test)]
impl Changed {
    /// `namespace/name` of `kind` applied, without a lookup key.
    pub fn of(kind: Kind, namespace: Option<&str>, name: &str) -> Changed {
        Changed {
            kind,
            namespace: namespace.map(String::from),
            name: name.into(),
            gone: false,
            relisted: false,
            lookup: None,
        }
    }
}

/// Changes kept for a slow listener before it is told it lagged.
pub const CHANGES_BUFFERED: usize = 4096;

/// Where the live view announces what it applied: every change, and the deletions again on
/// their own channel.
#[derive(Clone)]
pub struct Announcer {
    openchoreo: broadcast::Sender<Changed>,
    kratix: broadcast::Sender<Changed>,
    deletions: broadcast::Sender<Changed>,
    recent: Arc<std::sync::Mutex<VecDeque<(Instant, Changed)>>>,
}

impl Announcer {
    /// Channels keeping `buffered` announcements each for a slow listener.
    pub fn new(buffered: usize) -> Self {
        Announcer {
            openchoreo: broadcast::channel(buffered).0,
            kratix: broadcast::channel(buffered).0,
            deletions: broadcast::channel(buffered).0,
            recent: Arc::default(),
        }
    }

    fn channel(&self, family: Family) -> &broadcast::Sender<Changed> {
        match family {
            Family::OpenChoreo => &self.openchoreo,
            Family::Kratix => &self.kratix,
        }
    }

    pub fn announce(&self, change: Changed) {
        // No listener (no loop running here) is not an error.
        if change.gone {
            if change.kind.deletion_cascades() {
                self.remember(change.clone());
            }
            let _ = self.deletions.send(change.clone());
        }
        let _ = self.channel(change.kind.family()).send(change);
    }

    fn remember(&self, deletion: Changed) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.push_back((Instant::now(), deletion));
            while recent.len() > RECENT_DELETIONS_MAX {
                recent.pop_front();
            }
        }
    }

    /// [`ClusterView::recent_deletions`].
    pub fn recent_deletions(&self, since: Option<Instant>) -> Vec<Changed> {
        let Ok(mut recent) = self.recent.lock() else {
            return Vec::new();
        };
        while recent
            .front()
            .is_some_and(|(at, _)| at.elapsed() > RECENT_DELETIONS_KEPT)
        {
            recent.pop_front();
        }
        let after = |at: &Instant| since.is_none_or(|since| *at > since);
        let missed = recent.iter().filter(|(at, _)| after(at));
        missed.map(|(_, change)| change.clone()).collect()
    }
}

/// One reflector store per kind bindguard reads.
#[derive(Clone)]
pub struct Stores {
    pub environments: Store<Environment>,
    pub projects: Store<Project>,
    pub resources: Store<Resource>,
    pub resource_types: Store<ResourceType>,
    pub cluster_resource_types: Store<ClusterResourceType>,
    pub resource_releases: Store<ResourceRelease>,
    /// ResourceReleaseBindings, filed by target.
    pub release_bindings: Targets,
    pub promises: Store<Promise>,
    pub promise_revisions: Store<PromiseRevision>,
    pub resource_bindings: Store<ResourceBinding>,
    /// ResourceBindings by [`ResourceBinding::lookup_key`].
    pub resource_binding_requests: Index,
    /// PromiseRevisions by their Promise.
    pub revisions_by_promise: Index,
    pub unreadable: Unreadables,
    /// Kinds whose first list has not completed yet.
    pending: Arc<AtomicUsize>,
    /// Where the live view announces what it applied ([`ClusterView::changes`]).
    pub changed: Option<Announcer>,
}

/// The write side of [`Stores`].
pub struct Writers {
    pub environments: Keeper<Environment>,
    pub projects: Keeper<Project>,
    pub resources: Keeper<Resource>,
    pub resource_types: Keeper<ResourceType>,
    pub cluster_resource_types: Keeper<ClusterResourceType>,
    pub resource_releases: Keeper<ResourceRelease>,
    pub release_bindings: TargetsWriter,
    pub promises: Keeper<Promise>,
    pub promise_revisions: Keeper<PromiseRevision>,
    pub resource_bindings: Keeper<ResourceBinding>,
}

/// How many kinds [`Stores`] holds.
pub const KINDS: usize = 10;

impl Writers {
    /// Empty writers and the stores that read them; `pending` kinds are not yet synced.
    pub fn new(pending: usize) -> (Writers, Stores) {
        let writers = Writers {
            environments: Keeper::default(),
            projects: Keeper::default(),
            resources: Keeper::default(),
            resource_types: Keeper::default(),
            cluster_resource_types: Keeper::default(),
            resource_releases: Keeper::default(),
            release_bindings: TargetsWriter::default(),
            promises: Keeper::default(),
            promise_revisions: Keeper::default(),
            resource_bindings: Keeper::default(),
        };
        let stores = Stores {
            environments: writers.environments.as_reader(),
            projects: writers.projects.as_reader(),
            resources: writers.resources.as_reader(),
            resource_types: writers.resource_types.as_reader(),
            cluster_resource_types: writers.cluster_resource_types.as_reader(),
            resource_releases: writers.resource_releases.as_reader(),
            release_bindings: writers.release_bindings.as_reader(),
            promises: writers.promises.as_reader(),
            promise_revisions: writers.promise_revisions.as_reader(),
            resource_bindings: writers.resource_bindings.as_reader(),
            resource_binding_requests: writers.resource_bindings.index.clone(),
            revisions_by_promise: writers.promise_revisions.index.clone(),
            unreadable: Unreadables::default(),
            pending: Arc::new(AtomicUsize::new(pending)),
            changed: None,
        };
        (writers, stores)
    }
}

/// Where one kind's watch events are kept.
pub trait Sink<K>: Send + 'static {
    fn apply_watcher_event(&mut self, event: &watcher::Event<K>);
}

/// Adds or replaces one object in a writer.
pub fn put<K>(writer: &mut impl Sink<K>, object: K) {
    writer.apply_watcher_event(&watcher::Event::Apply(object));
}

fn get<K>(store: &Store<K>, namespace: Option<&str>, name: &str) -> Option<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let key = ObjectRef::new(name);
    let key = match namespace {
        Some(ns) => key.within(ns),
        None => key,
    };
    store.get(&key)
}

fn targets(binding: &ResourceReleaseBinding, resource: &str, environment: &str) -> bool {
    binding.spec.owner.resource_name == resource && binding.spec.environment == environment
}

fn binds(binding: &ResourceBinding, promise: &str, resource: &str) -> bool {
    binding.spec.promise_ref.name == promise && binding.spec.resource_ref.name == resource
}

fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .collect()
}

impl Stores {
    /// Records that one kind finished its first list.
    pub fn mark_synced(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Object counts per kind, for metrics.
    pub fn sizes(&self) -> [(&'static str, usize); KINDS] {
        [
            (Kind::Environment.name(), self.environments.len()),
            (Kind::Project.name(), self.projects.len()),
            (Kind::Resource.name(), self.resources.len()),
            (Kind::ResourceType.name(), self.resource_types.len()),
            (
                Kind::ClusterResourceType.name(),
                self.cluster_resource_types.len(),
            ),
            (Kind::ResourceRelease.name(), self.resource_releases.len()),
            (
                Kind::ResourceReleaseBinding.name(),
                self.release_bindings.len(),
            ),
            (Kind::Promise.name(), self.promises.len()),
            (Kind::PromiseRevision.name(), self.promise_revisions.len()),
            (Kind::ResourceBinding.name(), self.resource_bindings.len()),
        ]
    }
}

impl ClusterView for Stores {
    fn environment(&self, namespace: &str, name: &str) -> Option<Arc<Environment>> {
        get(&self.environments, Some(namespace), name)
    }
    fn project(&self, namespace: &str, name: &str) -> Option<Arc<Project>> {
        get(&self.projects, Some(namespace), name)
    }
    fn resource(&self, namespace: &str, name: &str) -> Option<Arc<Resource>> {
        get(&self.resources, Some(namespace), name)
    }
    fn resource_type(&self, namespace: &str, name: &str) -> Option<Arc<ResourceType>> {
        get(&self.resource_types, Some(namespace), name)
    }
    fn cluster_resource_type(&self, name: &str) -> Option<Arc<ClusterResourceType>> {
        get(&self.cluster_resource_types, None, name)
    }
    fn resource_release(&self, namespace: &str, name: &str) -> Option<Arc<ResourceRelease>> {
        get(&self.resource_releases, Some(namespace), name)
    }
    fn release_bindings(&self, namespace: &str) -> Vec<Arc<ResourceReleaseBinding>> {
        self.release_bindings.in_namespace(namespace)
    }
    fn release_bindings_to(
        &self,
        namespace: &str,
        resource: &str,
        environment: &str,
    ) -> Vec<Arc<ResourceReleaseBinding>> {
        self.release_bindings.to(namespace, resource, environment)
    }
    fn release_binding_books(&self, namespace: &str, name: &str) -> Option<Books> {
        self.release_bindings.books(namespace, name)
    }
    fn release_binding_names(
        &self,
        namespace: Option<&str>,
        pick: &dyn Fn(&Listed) -> bool,
    ) -> Vec<(String, String)> {
        self.release_bindings.names_where(namespace, pick)
    }
    fn promise(&self, name: &str) -> Option<Arc<Promise>> {
        get(&self.promises, None, name)
    }
    fn promise_revision(&self, name: &str) -> Option<Arc<PromiseRevision>> {
        get(&self.promise_revisions, None, name)
    }
    fn resource_binding(&self, namespace: &str, name: &str) -> Option<Arc<ResourceBinding>> {
        get(&self.resource_bindings, Some(namespace), name)
    }
    fn all_promises(&self) -> Vec<Arc<Promise>> {
        self.promises.state()
    }
    fn all_promise_revisions(&self) -> Vec<Arc<PromiseRevision>> {
        self.promise_revisions.state()
    }
    fn all_resource_bindings(&self) -> Vec<Arc<ResourceBinding>> {
        self.resource_bindings.state()
    }
    fn promise_revisions(&self, promise: &str) -> Vec<Arc<PromiseRevision>> {
        self.revisions_by_promise
            .names(promise)
            .iter()
            .filter_map(|name| get(&self.promise_revisions, None, name))
            .filter(|r| r.spec.promise_ref.name == promise)
            .collect()
    }
    fn resource_bindings(&self, namespace: &str) -> Vec<Arc<ResourceBinding>> {
        in_namespace(&self.resource_bindings, namespace)
    }
    fn resource_bindings_for(
        &self,
        namespace: &str,
        promise: &str,
        resource: &str,
    ) -> Vec<Arc<ResourceBinding>> {
        let key = ResourceBinding::request_key(namespace, promise, resource);
        self.resource_binding_requests
            .names(&key)
            .iter()
            .filter_map(|name| get(&self.resource_bindings, Some(namespace), name))
            .filter(|b| binds(b, promise, resource))
            .collect()
    }
    fn unreadable(&self, kind: &str, namespace: &str, name: &str) -> Option<String> {
        self.unreadable.reason(kind, namespace, name)
    }
    fn is_synced(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
    fn changes(&self, family: Family) -> Option<broadcast::Receiver<Changed>> {
        self.changed.as_ref().map(|a| a.channel(family).subscribe())
    }
    fn deletions(&self) -> Option<broadcast::Receiver<Changed>> {
        self.changed.as_ref().map(|a| a.deletions.subscribe())
    }
    fn recent_deletions(&self, since: Option<Instant>) -> Vec<Changed> {
        let recent = self.changed.as_ref().map(|a| a.recent_deletions(since));
        recent.unwrap_or_default()
    }
}

/// The `(group, kind)` of an object type.
pub fn group_kind<K: kube::Resource<DynamicType = ()>>() -> (String, String) {
    (K::group(&()).into_owned(), K::kind(&()).into_owned())
}

/// An object that exists but whose facts could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub uid: String,
    pub resource_version: String,
    pub reason: String,
}

/// The objects the live view could not read, per kind, keyed by `namespace/name`.
#[derive(Clone, Default)]
pub struct Unreadables(Arc<RwLock<HashMap<String, HashMap<String, Unreadable>>>>);

/// The key of an object within its kind.
pub fn object_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Unreadables {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, HashMap<String, Unreadable>>) -> T) -> T {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Records one object; true when it was not already recorded at this uid and version.
    pub fn record(&self, kind: &str, key: String, entry: Unreadable) -> bool {
        self.with(|all| {
            let objects = all.entry(kind.to_string()).or_default();
            objects.insert(key, entry.clone()).as_ref() != Some(&entry)
        })
    }

    /// Forgets one object: it was deleted, or has become readable.
    pub fn forget(&self, kind: &str, key: &str) {
        self.with(|all| all.get_mut(kind).map(|objects| objects.remove(key)));
    }

    /// Replaces every record of `kind` after a full list; returns the entries not recorded before.
    pub fn replace(
        &self,
        kind: &str,
        entries: HashMap<String, Unreadable>,
    ) -> Vec<(String, Unreadable)> {
        self.with(|all| {
            let previous = all.insert(kind.to_string(), entries).unwrap_or_default();
            all[kind]
                .iter()
                .filter(|(key, entry)| previous.get(*key) != Some(*entry))
                .map(|(key, entry)| (key.clone(), entry.clone()))
                .collect()
        })
    }

    /// Why the object could not be read, when it could not.
    pub fn reason(&self, kind: &str, namespace: &str, name: &str) -> Option<String> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        let entry = guard.get(kind)?.get(&object_key(namespace, name))?;
        Some(entry.reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{AdmissionRequest, Decision, DenyCode};
    use crate::policy::{Context, Request, Settings, release_binding};
    use crate::schema::SchemaCache;
    use serde_json::json;

    /// A view with Resource `pg` of project doclet, and Resource `deep` and ResourceType `odd`
    /// that exist but could not be read.
    fn view() -> Stores {
        let (mut writers, stores) = Writers::new(0);
        let pg = json!({"metadata": {"name": "pg", "namespace": "ns"},
                        "spec": {"owner": {"projectName": "doclet"}, "type": {"name": "odd"}}});
        put(&mut writers.resources, files::decode(pg).unwrap());
        let unreadable = |reason: &str| Unreadable {
            uid: "u".into(),
            resource_version: "1".into(),
            reason: reason.into(),
        };
        let deep = unreadable("spec.owner: nested more than 128 levels deep");
        stores
            .unreadable
            .record("Resource", object_key("ns", "deep"), deep);
        let odd = unreadable("spec.outputs: expected a sequence");
        stores
            .unreadable
            .record("ResourceType", object_key("ns", "odd"), odd);
        stores
    }

    fn create(owner: serde_json::Value, configs: serde_json::Value) -> Decision {
        let object = json!({"apiVersion": "openchoreo.dev/v1alpha1", "kind": "ResourceReleaseBinding",
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"owner": owner, "environment": "dev", "resourceTypeEnvironmentConfigs": configs}});
        let review: AdmissionRequest = serde_json::from_value(json!({
            "uid": "u", "operation": "CREATE", "name": "b", "namespace": "ns",
            "kind": {"group": "openchoreo.dev", "version": "v1alpha1", "kind": "ResourceReleaseBinding"},
            "object": object,
        }))
        .unwrap();
        let (stores, settings, schemas) = (view(), Settings::default(), SchemaCache::new());
        let ctx = Context {
            view: &stores,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        };
        release_binding::validate(&Request::decode(&review).unwrap(), &ctx)
    }

    #[test]
    fn a_binding_for_an_unreadable_resource_is_refused_naming_it() {
        let owner = json!({"projectName": "billing", "resourceName": "deep"});
        let decision = create(owner, json!({}));
        let denial = decision.denial.expect("refused, not a not-found warning");
        assert_eq!(denial.code, DenyCode::Forbidden);
        assert_eq!(denial.causes[0].field, "spec.owner.resourceName");
        let says = "Resource \"deep\" in namespace ns could not be read by bindguard \
                    (spec.owner: nested more than 128 levels deep)";
        assert!(denial.message.contains(says), "{}", denial.message);
    }

    #[test]
    fn configs_checked_against_an_unreadable_type_are_refused_naming_it() {
        let owner = json!({"projectName": "doclet", "resourceName": "pg"});
        let decision = create(owner, json!({"memory": "1Gi"}));
        let denial = decision.denial.expect("refused");
        let says = "ResourceType \"odd\" in namespace ns could not be read by bindguard";
        assert!(denial.message.contains(says), "{}", denial.message);
    }

    #[test]
    fn a_resource_that_is_simply_absent_is_still_only_a_warning() {
        let owner = json!({"projectName": "billing", "resourceName": "ghost"});
        let decision = create(owner, json!({}));
        assert!(decision.denial.is_none(), "{decision:?}");
        assert!(
            decision
                .warnings
                .iter()
                .any(|w| w.contains("\"ghost\" not found"))
        );
    }

    #[test]
    fn unreadable_records_are_replaced_by_a_full_list_and_new_ones_returned() {
        let records = Unreadables::default();
        let entry = |rv: &str| Unreadable {
            uid: "u".into(),
            resource_version: rv.into(),
            reason: "r".into(),
        };
        assert!(records.record("Resource", object_key("ns", "a"), entry("1")));
        assert!(!records.record("Resource", object_key("ns", "a"), entry("1")));
        let listed = HashMap::from([
            (object_key("ns", "a"), entry("1")),
            (object_key("ns", "b"), entry("1")),
        ]);
        let new = records.replace("Resource", listed);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].0, "ns/b");
        records.replace("Resource", HashMap::new());
        assert!(records.reason("Resource", "ns", "a").is_none());
    }
}
