//! Kept environmentConfigs schemas, shared by content: a ResourceType and every release cut
//! from it snapshot the same schema, and the view holds one copy of it however many there are.

use serde_json::Value;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// Schemas by a hash of their text; a hit is compared in full before it is shared.
#[derive(Default)]
struct Interned {
    by_hash: HashMap<u64, Vec<Weak<Value>>>,
    /// Entries at the last sweep of dropped schemas; the next sweep runs at twice as many.
    swept_at: usize,
}

static SCHEMAS: LazyLock<Mutex<Interned>> = LazyLock::new(Mutex::default);

/// The shared copy of `schema`: an equal one already held, or `schema` itself from now on.
pub fn shared(schema: Arc<Value>) -> Arc<Value> {
    let key = hash_of(&schema);
    let mut interned = SCHEMAS.lock().unwrap_or_else(|p| p.into_inner());
    let held = interned.by_hash.entry(key).or_default();
    if let Some(same) = held
        .iter()
        .filter_map(Weak::upgrade)
        .find(|h| **h == *schema)
    {
        return same;
    }
    held.retain(|w| w.strong_count() > 0);
    held.push(Arc::downgrade(&schema));
    interned.sweep();
    schema
}

impl Interned {
    fn sweep(&mut self) {
        if self.by_hash.len() < (2 * self.swept_at).max(64) {
            return;
        }
        self.by_hash.retain(|_, held| {
            held.retain(|w| w.strong_count() > 0);
            !held.is_empty()
        });
        self.swept_at = self.by_hash.len();
    }
}

fn hash_of(schema: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    schema.to_string().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_schemas_share_one_copy_and_different_ones_do_not() {
        let a = shared(Arc::new(
            json!({"type": "object", "properties": {"memory": {"type": "string"}}}),
        ));
        let b = shared(Arc::new(
            json!({"type": "object", "properties": {"memory": {"type": "string"}}}),
        ));
        let c = shared(Arc::new(
            json!({"type": "object", "properties": {"memory": {"type": "integer"}}}),
        ));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn a_dropped_schema_is_not_kept() {
        let schema =
            json!({"type": "object", "properties": {"dropped-schema-test": {"type": "string"}}});
        let first = shared(Arc::new(schema.clone()));
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_none());
        let again = shared(Arc::new(schema));
        assert_eq!(Arc::strong_count(&again), 1);
    }
}
