//! Minimal JSON Patches built from operations on the raw object.

use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde_json::{Map, Value};

/// Escapes one JSON Pointer segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Operations that make `metadata.labels` carry `wanted`; none when they already do.
pub fn set_labels(object: &Value, wanted: &[(&str, &str)]) -> Vec<PatchOperation> {
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    let Some(labels) = labels else {
        let all: Map<String, Value> = wanted
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        return vec![add("/metadata/labels", Value::Object(all))];
    };
    wanted
        .iter()
        .filter_map(|(key, value)| {
            let path = format!("/metadata/labels/{}", escape(key));
            match labels.get(*key) {
                Some(current) if current == value => None,
                Some(_) => Some(replace(&path, Value::from(*value))),
                None => Some(add(&path, Value::from(*value))),
            }
        })
        .collect()
}

pub fn add(path: &str, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(path),
        value,
    })
}

pub fn replace(path: &str, value: Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: pointer(path),
        value,
    })
}

fn pointer(path: &str) -> jsonptr::PointerBuf {
    jsonptr::PointerBuf::parse(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(object: &Value, ops: Vec<PatchOperation>) -> Value {
        let mut out = object.clone();
        json_patch::patch(&mut out, &ops).unwrap();
        out
    }

    #[test]
    fn adds_labels_map_when_absent() {
        let object = json!({"metadata": {"name": "x"}});
        let ops = set_labels(&object, &[("a/b", "1")]);
        assert_eq!(apply(&object, ops)["metadata"]["labels"]["a/b"], "1");
    }

    #[test]
    fn adds_and_corrects_only_what_differs_and_is_idempotent() {
        let object = json!({"metadata": {"labels": {"keep": "x", "a/b": "wrong", "ok": "1"}}});
        let ops = set_labels(&object, &[("a/b", "1"), ("ok", "1"), ("new", "2")]);
        assert_eq!(ops.len(), 2);
        let patched = apply(&object, ops);
        assert_eq!(
            patched["metadata"]["labels"],
            json!({"keep": "x", "a/b": "1", "ok": "1", "new": "2"})
        );
        assert!(set_labels(&patched, &[("a/b", "1"), ("ok", "1"), ("new", "2")]).is_empty());
    }
}
