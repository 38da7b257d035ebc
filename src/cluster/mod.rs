//! The facts policy may ask about the cluster, answered from memory.
//!
//! [`Stores`] holds one reflector store per kind. The live view fills them from watches
//! ([`live`]); the static view fills them from manifest files ([`files`]). Either way a lookup
//! is a hash-map read: no API call on the request path.

pub mod files;
pub mod live;

use crate::crd::*;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What policy may ask of the cluster.
pub trait ClusterView: Send + Sync {
    fn environment(&self, namespace: &str, name: &str) -> Option<Arc<Environment>>;
    fn project(&self, namespace: &str, name: &str) -> Option<Arc<Project>>;
    fn resource(&self, namespace: &str, name: &str) -> Option<Arc<Resource>>;
    fn resource_type(&self, namespace: &str, name: &str) -> Option<Arc<ResourceType>>;
    fn cluster_resource_type(&self, name: &str) -> Option<Arc<ClusterResourceType>>;
    fn resource_release(&self, namespace: &str, name: &str) -> Option<Arc<ResourceRelease>>;
    fn release_bindings(&self, namespace: &str) -> Vec<Arc<ResourceReleaseBinding>>;
    fn promise(&self, name: &str) -> Option<Arc<Promise>>;
    /// Every revision whose `spec.promiseRef.name` is `promise`.
    fn promise_revisions(&self, promise: &str) -> Vec<Arc<PromiseRevision>>;
    fn resource_bindings(&self, namespace: &str) -> Vec<Arc<ResourceBinding>>;
    /// True once every kind has been listed at least once.
    fn is_synced(&self) -> bool;
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
    pub release_bindings: Store<ResourceReleaseBinding>,
    pub promises: Store<Promise>,
    pub promise_revisions: Store<PromiseRevision>,
    pub resource_bindings: Store<ResourceBinding>,
    /// Kinds whose first list has not completed yet.
    pending: Arc<AtomicUsize>,
}

/// The write side of [`Stores`].
pub struct Writers {
    pub environments: Writer<Environment>,
    pub projects: Writer<Project>,
    pub resources: Writer<Resource>,
    pub resource_types: Writer<ResourceType>,
    pub cluster_resource_types: Writer<ClusterResourceType>,
    pub resource_releases: Writer<ResourceRelease>,
    pub release_bindings: Writer<ResourceReleaseBinding>,
    pub promises: Writer<Promise>,
    pub promise_revisions: Writer<PromiseRevision>,
    pub resource_bindings: Writer<ResourceBinding>,
}

/// How many kinds [`Stores`] holds.
pub const KINDS: usize = 10;

impl Writers {
    /// Empty writers and the stores that read them; `pending` kinds are not yet synced.
    pub fn new(pending: usize) -> (Writers, Stores) {
        let writers = Writers {
            environments: Writer::default(),
            projects: Writer::default(),
            resources: Writer::default(),
            resource_types: Writer::default(),
            cluster_resource_types: Writer::default(),
            resource_releases: Writer::default(),
            release_bindings: Writer::default(),
            promises: Writer::default(),
            promise_revisions: Writer::default(),
            resource_bindings: Writer::default(),
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
            pending: Arc::new(AtomicUsize::new(pending)),
        };
        (writers, stores)
    }
}

/// Adds or replaces one object in a writer.
pub fn put<K>(writer: &mut Writer<K>, object: K)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Clone + Default + Eq + std::hash::Hash,
{
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
            ("Environment", self.environments.len()),
            ("Project", self.projects.len()),
            ("Resource", self.resources.len()),
            ("ResourceType", self.resource_types.len()),
            ("ClusterResourceType", self.cluster_resource_types.len()),
            ("ResourceRelease", self.resource_releases.len()),
            ("ResourceReleaseBinding", self.release_bindings.len()),
            ("Promise", self.promises.len()),
            ("PromiseRevision", self.promise_revisions.len()),
            ("ResourceBinding", self.resource_bindings.len()),
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
        in_namespace(&self.release_bindings, namespace)
    }
    fn promise(&self, name: &str) -> Option<Arc<Promise>> {
        get(&self.promises, None, name)
    }
    fn promise_revisions(&self, promise: &str) -> Vec<Arc<PromiseRevision>> {
        self.promise_revisions
            .state()
            .into_iter()
            .filter(|r| r.spec.promise_ref.name == promise)
            .collect()
    }
    fn resource_bindings(&self, namespace: &str) -> Vec<Arc<ResourceBinding>> {
        in_namespace(&self.resource_bindings, namespace)
    }
    fn is_synced(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}

/// The `(group, kind)` of an object type.
pub fn group_kind<K: kube::Resource<DynamicType = ()>>() -> (String, String) {
    (K::group(&()).into_owned(), K::kind(&()).into_owned())
}
