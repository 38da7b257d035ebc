//! The cluster a change is judged against: the head's manifests, and with `--cluster` the live
//! cluster under them (an object of the head replaces the live one with the same identity; an
//! object the change deletes is gone from both).

use super::{Manifest, ObjectId};
use crate::cluster::{ClusterView, Stores, Writers};
use crate::crd::*;
use kube::ResourceExt;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The static view of the head's objects, leaving out `gone`. Objects that do not decode as
/// their kind stay out of the view: the CRD's rules refuse them.
pub fn head_stores<'a>(
    head: impl Iterator<Item = &'a Manifest>,
    gone: &BTreeSet<&ObjectId>,
) -> Stores {
    let (mut writers, stores) = Writers::new(0);
    for manifest in head.filter(|m| !gone.contains(&m.id)) {
        let _ = writers.add(manifest.object.clone());
    }
    stores
}

/// The head over the live cluster.
pub struct Merged {
    pub head: Stores,
    pub live: Stores,
    /// `kind/namespace/name` of what the head holds or the change deletes: never read
    /// from the live cluster.
    pub shadowed: BTreeSet<String>,
}

/// The key [`Merged::shadowed`] uses (our kinds' names are unique across their groups).
pub fn shadow_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Merged {
    fn live_one<K: kube::Resource<DynamicType = ()>>(
        &self,
        found: Option<Arc<K>>,
    ) -> Option<Arc<K>> {
        found.filter(|o| !self.is_shadowed(o.as_ref()))
    }

    fn is_shadowed<K: kube::Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let key = shadow_key(
            &K::kind(&()),
            object.namespace().as_deref().unwrap_or(""),
            &object.name_any(),
        );
        self.shadowed.contains(&key)
    }

    fn both<K: kube::Resource<DynamicType = ()>>(
        &self,
        head: Vec<Arc<K>>,
        live: Vec<Arc<K>>,
    ) -> Vec<Arc<K>> {
        let mut all = head;
        all.extend(live.into_iter().filter(|o| !self.is_shadowed(o.as_ref())));
        all
    }
}

impl ClusterView for Merged {
    fn environment(&self, namespace: &str, name: &str) -> Option<Arc<Environment>> {
        self.head
            .environment(namespace, name)
            .or_else(|| self.live_one(self.live.environment(namespace, name)))
    }
    fn project(&self, namespace: &str, name: &str) -> Option<Arc<Project>> {
        self.head
            .project(namespace, name)
            .or_else(|| self.live_one(self.live.project(namespace, name)))
    }
    fn resource(&self, namespace: &str, name: &str) -> Option<Arc<Resource>> {
        self.head
            .resource(namespace, name)
            .or_else(|| self.live_one(self.live.resource(namespace, name)))
    }
    fn resource_type(&self, namespace: &str, name: &str) -> Option<Arc<ResourceType>> {
        self.head
            .resource_type(namespace, name)
            .or_else(|| self.live_one(self.live.resource_type(namespace, name)))
    }
    fn cluster_resource_type(&self, name: &str) -> Option<Arc<ClusterResourceType>> {
        self.head
            .cluster_resource_type(name)
            .or_else(|| self.live_one(self.live.cluster_resource_type(name)))
    }
    fn resource_release(&self, namespace: &str, name: &str) -> Option<Arc<ResourceRelease>> {
        self.head
            .resource_release(namespace, name)
            .or_else(|| self.live_one(self.live.resource_release(namespace, name)))
    }
    fn release_bindings(&self, namespace: &str) -> Vec<Arc<ResourceReleaseBinding>> {
        self.both(
            self.head.release_bindings(namespace),
            self.live.release_bindings(namespace),
        )
    }
    fn promise(&self, name: &str) -> Option<Arc<Promise>> {
        self.head
            .promise(name)
            .or_else(|| self.live_one(self.live.promise(name)))
    }
    fn promise_revision(&self, name: &str) -> Option<Arc<PromiseRevision>> {
        self.head
            .promise_revision(name)
            .or_else(|| self.live_one(self.live.promise_revision(name)))
    }
    fn resource_binding(&self, namespace: &str, name: &str) -> Option<Arc<ResourceBinding>> {
        self.head
            .resource_binding(namespace, name)
            .or_else(|| self.live_one(self.live.resource_binding(namespace, name)))
    }
    fn all_promises(&self) -> Vec<Arc<Promise>> {
        self.both(self.head.all_promises(), self.live.all_promises())
    }
    fn all_promise_revisions(&self) -> Vec<Arc<PromiseRevision>> {
        let (head, live) = (&self.head, &self.live);
        self.both(head.all_promise_revisions(), live.all_promise_revisions())
    }
    fn all_resource_bindings(&self) -> Vec<Arc<ResourceBinding>> {
        let (head, live) = (&self.head, &self.live);
        self.both(head.all_resource_bindings(), live.all_resource_bindings())
    }
    fn promise_revisions(&self, promise: &str) -> Vec<Arc<PromiseRevision>> {
        self.both(
            self.head.promise_revisions(promise),
            self.live.promise_revisions(promise),
        )
    }
    fn resource_bindings(&self, namespace: &str) -> Vec<Arc<ResourceBinding>> {
        self.both(
            self.head.resource_bindings(namespace),
            self.live.resource_bindings(namespace),
        )
    }
    fn unreadable(&self, kind: &str, namespace: &str, name: &str) -> Option<String> {
        if self.shadowed.contains(&shadow_key(kind, namespace, name)) {
            return None;
        }
        self.live.unreadable(kind, namespace, name)
    }
    fn is_synced(&self) -> bool {
        self.live.is_synced()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stores(objects: &[serde_json::Value]) -> Stores {
        let (mut writers, stores) = Writers::new(0);
        for object in objects {
            writers.add(object.clone()).unwrap();
        }
        stores
    }

    fn env(name: &str, uid: &str) -> serde_json::Value {
        json!({"apiVersion": "openchoreo.dev/v1alpha1", "kind": "Environment", "metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": {}})
    }

    #[test]
    fn the_head_replaces_live_objects_and_deletions_hide_them() {
        let live = stores(&[env("dev", "live"), env("prod", "live"), env("old", "live")]);
        let head = stores(&[env("dev", "head")]);
        let shadowed = ["dev", "old"]
            .iter()
            .map(|n| shadow_key("Environment", "default", n))
            .collect();
        let view = Merged {
            head,
            live,
            shadowed,
        };
        let dev = view.environment("default", "dev").unwrap();
        assert_eq!(dev.metadata.uid.as_deref(), Some("head"));
        assert!(view.environment("default", "prod").is_some());
        assert!(view.environment("default", "old").is_none());
    }
}
