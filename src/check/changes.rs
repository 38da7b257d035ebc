//! Base and head objects -> what applying the head would do: CREATE, UPDATE, DELETE. Pure.

use super::{Manifest, ObjectId};
use crate::admission::Operation;
use crate::crd::KRATIX_GROUP;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One object the change creates, updates or deletes.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub operation: Operation,
    /// The object as it was (UPDATE, DELETE).
    pub old: Option<&'a Manifest>,
    /// The object as it will be (CREATE, UPDATE).
    pub new: Option<&'a Manifest>,
    /// Deleted by the cluster because its owner is deleted, not by the commit itself.
    pub cascade: bool,
}

impl<'a> Change<'a> {
    /// Where reports point: the new object, else the old one.
    pub fn at(&self) -> &'a Manifest {
        self.new.or(self.old).expect("a change has an object")
    }
}

/// The objects of one side, by identity; the first of two with the same identity wins, and
/// the others are returned apart.
pub fn index(
    manifests: &[Manifest],
) -> (BTreeMap<&ObjectId, &Manifest>, Vec<(&Manifest, &Manifest)>) {
    let mut by_id: BTreeMap<&ObjectId, &Manifest> = BTreeMap::new();
    let mut twice = Vec::new();
    for manifest in manifests {
        match by_id.get(&manifest.id) {
            Some(first) => twice.push((manifest, *first)),
            None => {
                by_id.insert(&manifest.id, manifest);
            }
        }
    }
    (by_id, twice)
}

/// The changes from `base` to `head`, objects paired by group, kind, namespace and name (so a
/// moved or renamed file is no change). Unchanged objects are left out. Deleting a Promise
/// deletes its revisions too, as the cluster's garbage collector does.
pub fn diff<'a>(
    base: &BTreeMap<&ObjectId, &'a Manifest>,
    head: &BTreeMap<&ObjectId, &'a Manifest>,
) -> Vec<Change<'a>> {
    let gone = cascaded(base, head);
    let mut changes = Vec::new();
    for (id, new) in head {
        let change = match base.get(id) {
            _ if gone.contains(*id) => continue,
            None => Change {
                operation: Operation::Create,
                old: None,
                new: Some(*new),
                cascade: false,
            },
            Some(old) if old.object == new.object => continue,
            Some(old) => Change {
                operation: Operation::Update,
                old: Some(*old),
                new: Some(*new),
                cascade: false,
            },
        };
        changes.push(change);
    }
    for (id, old) in base {
        if !head.contains_key(id) || gone.contains(*id) {
            let cascade = gone.contains(*id);
            changes.push(Change {
                operation: Operation::Delete,
                old: Some(*old),
                new: None,
                cascade,
            });
        }
    }
    changes
}

/// The revisions (in the base) of every Promise the head deletes: the cluster deletes them with
/// their Promise, whether or not the head still holds them.
pub fn cascaded<'a>(
    base: &BTreeMap<&'a ObjectId, &Manifest>,
    head: &BTreeMap<&ObjectId, &Manifest>,
) -> BTreeSet<&'a ObjectId> {
    let deleted_promises: BTreeSet<&str> = base
        .keys()
        .filter(|id| is_kratix(id, "Promise") && !head.contains_key(*id))
        .map(|id| id.name.as_str())
        .collect();
    base.iter()
        .filter(|(id, m)| {
            is_kratix(id, "PromiseRevision")
                && owner_promise(&m.object).is_some_and(|p| deleted_promises.contains(p))
        })
        .map(|(id, _)| *id)
        .collect()
}

fn is_kratix(id: &ObjectId, kind: &str) -> bool {
    id.group == KRATIX_GROUP && id.kind == kind
}

/// The Promise a revision belongs to: its controller ownerReference, else `spec.promiseRef`.
pub fn owner_promise(revision: &Value) -> Option<&str> {
    let owners = revision
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    let by_reference = owners.into_iter().flatten().find_map(|o| {
        (o.get("kind").and_then(Value::as_str) == Some("Promise"))
            .then(|| o.get("name").and_then(Value::as_str))?
    });
    by_reference.or_else(|| {
        revision
            .pointer("/spec/promiseRef/name")
            .and_then(Value::as_str)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(file: &str, kind: &str, name: &str, spec: Value) -> Manifest {
        let group = if kind == "ConfigMap" {
            ""
        } else {
            KRATIX_GROUP
        };
        Manifest {
            file: file.into(),
            line: 1,
            id: ObjectId {
                group: group.into(),
                kind: kind.into(),
                namespace: String::new(),
                name: name.into(),
            },
            object: json!({"kind": kind, "metadata": {"name": name}, "spec": spec}),
        }
    }

    fn ops(base: &[Manifest], head: &[Manifest]) -> Vec<(Operation, String, bool)> {
        let (base, head) = (index(base).0, index(head).0);
        diff(&base, &head)
            .iter()
            .map(|c| (c.operation, c.at().id.name.clone(), c.cascade))
            .collect()
    }

    #[test]
    fn pairs_by_identity_not_by_file() {
        let base = [
            manifest("a.yaml", "ConfigMap", "x", json!(1)),
            manifest("a.yaml", "ConfigMap", "y", json!(1)),
        ];
        let head = [
            manifest("b.yaml", "ConfigMap", "x", json!(1)),
            manifest("a.yaml", "ConfigMap", "z", json!(1)),
        ];
        assert_eq!(
            ops(&base, &head),
            [
                (Operation::Create, "z".into(), false),
                (Operation::Delete, "y".into(), false)
            ]
        );
        let edited = [
            manifest("a.yaml", "ConfigMap", "x", json!(2)),
            manifest("a.yaml", "ConfigMap", "y", json!(1)),
        ];
        assert_eq!(
            ops(&base, &edited),
            [(Operation::Update, "x".into(), false)]
        );
    }

    #[test]
    fn deleting_a_promise_deletes_its_revisions() {
        let revision = |name: &str| {
            manifest(
                "r.yaml",
                "PromiseRevision",
                name,
                json!({"promiseRef": {"name": "redis"}}),
            )
        };
        let promise = manifest("p.yaml", "Promise", "redis", json!({}));
        let base = [promise, revision("redis-v1"), revision("redis-v2")];
        let head = [revision("redis-v1")];
        let got = ops(&base, &head);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.contains(&(Operation::Delete, "redis".into(), false)));
        assert!(got.contains(&(Operation::Delete, "redis-v1".into(), true)));
        assert!(got.contains(&(Operation::Delete, "redis-v2".into(), true)));
    }
}
