//! Lookups that would otherwise scan a kind: each object's name filed under the key a rule looks
//! it up by (for ResourceReleaseBindings: namespace, resource and environment), kept in step with
//! the store by the [`Keeper`] that writes both.

use super::facts::Watched;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// Names by lookup key. An entry may be stale for a moment (an object whose key changed):
/// readers re-check what they find.
#[derive(Clone, Default)]
pub struct Index(Arc<RwLock<HashMap<String, BTreeSet<String>>>>);

impl Index {
    /// The names filed under `key`.
    pub fn names(&self, key: &str) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn with(&self, f: impl FnOnce(&mut HashMap<String, BTreeSet<String>>)) {
        f(&mut self.0.write().unwrap_or_else(|p| p.into_inner()));
    }

    fn insert(&self, key: String, name: String) {
        self.with(|map| {
            map.entry(key).or_default().insert(name);
        });
    }

    fn remove(&self, key: &str, name: &str) {
        self.with(|map| {
            if let Some(names) = map.get_mut(key) {
                names.remove(name);
                if names.is_empty() {
                    map.remove(key);
                }
            }
        });
    }

    fn rebuild<K: Watched>(&self, objects: &[Arc<K>]) {
        let mut fresh: HashMap<String, BTreeSet<String>> = HashMap::new();
        for object in objects {
            if let Some(key) = object.lookup_key() {
                fresh.entry(key).or_default().insert(object.name_any());
            }
        }
        self.with(|map| *map = fresh);
    }
}

/// The write side of one kind: its reflector store and its index.
pub struct Keeper<K: Watched> {
    writer: Writer<K>,
    pub index: Index,
}

impl<K: Watched> Default for Keeper<K> {
    fn default() -> Self {
        Keeper {
            writer: Writer::default(),
            index: Index::default(),
        }
    }
}

impl<K: Watched> Keeper<K> {
    pub fn as_reader(&self) -> Store<K> {
        self.writer.as_reader()
    }

    /// Applies one watch event to the store and the index.
    pub fn apply_watcher_event(&mut self, event: &Event<K>) {
        self.writer.apply_watcher_event(event);
        match event {
            Event::Apply(object) | Event::InitApply(object) => {
                if let Some(key) = object.lookup_key() {
                    self.index.insert(key, object.name_any());
                }
            }
            Event::Delete(object) => {
                if let Some(key) = object.lookup_key() {
                    self.index.remove(&key, &object.name_any());
                }
            }
            // A relist may have missed deletions: the index is rebuilt from what was listed.
            Event::InitDone => self.index.rebuild(&self.writer.as_reader().state()),
            Event::Init => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterView, Writers};
    use crate::crd::{ResourceReleaseBinding, ResourceReleaseBindingSpec};

    fn binding(name: &str, resource: &str, environment: &str) -> ResourceReleaseBinding {
        let mut spec = ResourceReleaseBindingSpec::default();
        spec.owner.project_name = "p".into();
        spec.owner.resource_name = resource.into();
        spec.environment = environment.into();
        let mut b = ResourceReleaseBinding::new(name, spec);
        b.metadata.namespace = Some("ns".into());
        b
    }

    fn names(view: &dyn ClusterView, resource: &str, environment: &str) -> Vec<String> {
        let mut names: Vec<String> = view
            .release_bindings_to("ns", resource, environment)
            .iter()
            .map(|b| b.name_any())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn bindings_are_found_by_target_and_forgotten_when_deleted_or_relisted_away() {
        let (mut writers, stores) = Writers::new(0);
        let keeper = &mut writers.release_bindings;
        for b in [
            binding("a", "db", "dev"),
            binding("b", "db", "dev"),
            binding("c", "db", "prod"),
        ] {
            keeper.apply_watcher_event(&Event::Apply(b));
        }
        assert_eq!(names(&stores, "db", "dev"), ["a", "b"]);
        assert_eq!(names(&stores, "db", "prod"), ["c"]);
        assert!(names(&stores, "cache", "dev").is_empty());

        keeper.apply_watcher_event(&Event::Delete(binding("a", "db", "dev")));
        assert_eq!(names(&stores, "db", "dev"), ["b"]);

        // A relist that no longer holds b: the index follows the store.
        keeper.apply_watcher_event(&Event::Init);
        keeper.apply_watcher_event(&Event::InitApply(binding("c", "db", "prod")));
        keeper.apply_watcher_event(&Event::InitDone);
        assert!(names(&stores, "db", "dev").is_empty());
        assert!(
            stores
                .release_binding_targets
                .names(&ResourceReleaseBinding::target_key("ns", "db", "dev"))
                .is_empty()
        );
        assert_eq!(names(&stores, "db", "prod"), ["c"]);
    }
}
