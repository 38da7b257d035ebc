//! Lookups that would otherwise scan a kind: each object's name filed under the key a rule looks
//! it up by (for Kratix ResourceBindings: the request they bind), kept in step with the store by
//! the [`Keeper`] that writes both.

use super::Sink;
use super::facts::Watched;
use kube::ResourceExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Names by lookup key. Most keys hold one name, so each holds a small sorted `Vec`, not a set.
#[derive(Clone, Default)]
pub struct Index(Arc<RwLock<Filed>>);

/// Sorted names by key.
type Filed = HashMap<Box<str>, Vec<Box<str>>>;

impl Index {
    /// The names filed under `key`.
    pub fn names(&self, key: &str) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .map(|names| names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    fn with(&self, f: impl FnOnce(&mut Filed)) {
        f(&mut self.0.write().unwrap_or_else(|p| p.into_inner()));
    }

    fn insert(&self, key: String, name: String) {
        self.with(|map| file(map, key, name));
    }

    fn remove(&self, key: &str, name: &str) {
        self.with(|map| {
            if let Some(names) = map.get_mut(key) {
                names.retain(|n| &**n != name);
                if names.is_empty() {
                    map.remove(key);
                }
            }
        });
    }

    fn rebuild<K: Watched>(&self, objects: &[Arc<K>]) {
        let mut fresh = HashMap::new();
        for object in objects {
            if let Some(key) = object.lookup_key() {
                file(&mut fresh, key, object.name_any());
            }
        }
        self.with(|map| *map = fresh);
    }
}

fn file(map: &mut Filed, key: String, name: String) {
    let names = map.entry(key.into_boxed_str()).or_default();
    if let Err(at) = names.binary_search_by(|n| (**n).cmp(name.as_str())) {
        names.insert(at, name.into_boxed_str());
        names.shrink_to_fit();
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
}

impl<K: Watched> Sink<K> for Keeper<K> {
    /// Applies one watch event to the store and the index.
    fn apply_watcher_event(&mut self, event: &Event<K>) {
        let previous = match event {
            Event::Apply(object) | Event::Delete(object) => {
                self.writer.as_reader().get(&ObjectRef::from_obj(object))
            }
            _ => None,
        };
        self.writer.apply_watcher_event(event);
        match event {
            Event::Apply(object) | Event::InitApply(object) => {
                if let Some(old) = previous.and_then(|p| p.lookup_key())
                    && Some(&old) != object.lookup_key().as_ref()
                {
                    self.index.remove(&old, &object.name_any());
                }
                if let Some(key) = object.lookup_key() {
                    self.index.insert(key, object.name_any());
                }
            }
            // Filed under what the store held: a placeholder for an object that turned
            // unreadable carries no spec to compute the key from.
            Event::Delete(object) => {
                let key = previous.and_then(|p| p.lookup_key());
                if let Some(key) = key.or_else(|| object.lookup_key()) {
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
    use crate::crd::{ResourceBinding, ResourceBindingSpec};

    /// A binding `name` of promise `p`'s request `request`.
    fn binding(name: &str, request: &str) -> ResourceBinding {
        let mut spec = ResourceBindingSpec::default();
        spec.promise_ref.name = "p".into();
        spec.resource_ref.name = request.into();
        let mut b = ResourceBinding::new(name, spec);
        b.metadata.namespace = Some("ns".into());
        b
    }

    fn names(view: &dyn ClusterView, request: &str) -> Vec<String> {
        let mut names: Vec<String> = view
            .resource_bindings_for("ns", "p", request)
            .iter()
            .map(|b| b.name_any())
            .collect();
        names.sort();
        names
    }

    fn indexed(stores: &crate::cluster::Stores, request: &str) -> Vec<String> {
        let key = ResourceBinding::request_key("ns", "p", request);
        stores.resource_binding_requests.names(&key)
    }

    #[test]
    fn bindings_are_found_by_request_refiled_and_forgotten_when_deleted_or_relisted_away() {
        let (mut writers, stores) = Writers::new(0);
        let keeper = &mut writers.resource_bindings;
        for b in [
            binding("a", "db"),
            binding("b", "db"),
            binding("c", "cache"),
        ] {
            keeper.apply_watcher_event(&Event::Apply(b));
        }
        assert_eq!(names(&stores, "db"), ["a", "b"]);
        assert_eq!(names(&stores, "cache"), ["c"]);
        assert!(names(&stores, "queue").is_empty());

        keeper.apply_watcher_event(&Event::Delete(binding("a", "db")));
        assert_eq!(names(&stores, "db"), ["b"]);

        // Re-targeted: filed under its new key only, and gone from the index when deleted.
        keeper.apply_watcher_event(&Event::Apply(binding("b", "queue")));
        assert!(indexed(&stores, "db").is_empty());
        keeper.apply_watcher_event(&Event::Delete(binding("b", "queue")));
        assert!(indexed(&stores, "queue").is_empty());
        keeper.apply_watcher_event(&Event::Apply(binding("b", "db")));
        assert_eq!(names(&stores, "db"), ["b"]);

        // A relist that no longer holds b: the index follows the store.
        keeper.apply_watcher_event(&Event::Init);
        keeper.apply_watcher_event(&Event::InitApply(binding("c", "cache")));
        keeper.apply_watcher_event(&Event::InitDone);
        assert!(names(&stores, "db").is_empty());
        assert!(indexed(&stores, "db").is_empty());
        assert_eq!(names(&stores, "cache"), ["c"]);
    }

    #[test]
    fn a_placeholder_deleted_for_an_unreadable_version_unfiles_what_the_store_held() {
        let (mut writers, stores) = Writers::new(0);
        let keeper = &mut writers.resource_bindings;
        keeper.apply_watcher_event(&Event::Apply(binding("a", "db")));
        let mut placeholder = ResourceBinding::new("a", ResourceBindingSpec::default());
        placeholder.metadata.namespace = Some("ns".into());
        keeper.apply_watcher_event(&Event::Delete(placeholder));
        assert!(indexed(&stores, "db").is_empty());
    }
}
