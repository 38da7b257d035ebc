//! Compiled schemas kept by identity, so that a schema is compiled once, not per request.

use super::{EnvConfigSchema, Report, SchemaError};
use serde_json::Value;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// Compiled schemas kept by a [`SchemaCache`] before the oldest is evicted.
pub const CACHE_CAPACITY: usize = 1024;

pub type Compiled = Arc<Result<EnvConfigSchema, SchemaError>>;
type Slot = Arc<Entry>;

#[derive(Default)]
struct Entry {
    compiled: OnceLock<Compiled>,
    /// The schema a by-address key stands for, kept alive while the entry is, so that its
    /// address cannot be reused by another schema under the same key.
    _held: Option<Arc<Value>>,
}

/// Judging on an async worker, where only work known to be short may run: a check whose schema
/// is not compiled yet, or that could cost more than [`EnvConfigSchema::check_in_place`] allows,
/// is not done but noted here, and the caller judges the review again where long work may run.
#[derive(Debug, Default)]
pub struct InPlace {
    deferred: Cell<bool>,
}

impl InPlace {
    /// Whether a check was left undone, so the judgement made alongside it must be discarded.
    pub fn deferred(&self) -> bool {
        self.deferred.get()
    }

    /// Asks for the judgement to be discarded and made again off the async workers (by a
    /// check left undone, or by a judge that may block).
    pub fn defer(&self) {
        self.deferred.set(true);
    }

    /// Notes a check left undone; the empty report stands in for it until the judgement is
    /// discarded.
    fn undone(&self) -> Report {
        self.defer();
        Report::default()
    }
}

/// Thread-safe, bounded cache of compiled schemas keyed by a caller-chosen identity
/// (e.g. uid + resourceVersion of the ResourceType). Failed compilations are cached too.
pub struct SchemaCache {
    capacity: usize,
    inner: Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    slots: HashMap<String, Slot>,
    insertion_order: VecDeque<String>,
}

impl Default for SchemaCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaCache {
    pub fn new() -> Self {
        Self::with_capacity(CACHE_CAPACITY)
    }

    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// Returns the compiled schema for `identity`, compiling `schema` on first use.
    /// Concurrent callers with the same identity wait for a single compilation.
    pub fn get_or_compile(&self, identity: &str, schema: &Value) -> Compiled {
        let slot = self.slot(identity, None);
        Arc::clone(
            slot.compiled
                .get_or_init(|| Arc::new(EnvConfigSchema::compile(schema))),
        )
    }

    /// Checks `value` against `schema`, compiled once per distinct schema: the view shares
    /// equal schemas ([`crate::cluster::schemas`]), so a type and every release cut from it
    /// use one compiled copy, keyed by the shared copy's address. With `in_place`, only a
    /// schema already compiled is used, and only for a short check (see [`InPlace`]).
    pub fn check_shared(
        &self,
        schema: &Arc<Value>,
        value: &Value,
        in_place: Option<&InPlace>,
    ) -> Result<Report, SchemaError> {
        let key = format!("shared@{:p}", Arc::as_ptr(schema));
        let slot = self.slot(&key, Some(schema));
        let compiled = match in_place {
            None => slot
                .compiled
                .get_or_init(|| Arc::new(EnvConfigSchema::compile(schema))),
            Some(in_place) => match slot.compiled.get() {
                Some(compiled) => compiled,
                None => return Ok(in_place.undone()),
            },
        };
        match (compiled.as_ref(), in_place) {
            (Err(error), _) => Err(error.clone()),
            (Ok(compiled), None) => compiled.check(value),
            (Ok(compiled), Some(in_place)) => Ok(compiled
                .check_in_place(value)
                .unwrap_or_else(|| in_place.undone())),
        }
    }

    /// Checks `value` against the schema known as `identity` (compiled on first use).
    pub fn check(
        &self,
        identity: &str,
        schema: &Value,
        value: &Value,
    ) -> Result<Report, SchemaError> {
        match self.get_or_compile(identity, schema).as_ref() {
            Ok(compiled) => compiled.check(value),
            Err(error) => Err(error.clone()),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, CacheEntries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, identity: &str, held: Option<&Arc<Value>>) -> Slot {
        let mut entries = self.lock();
        if let Some(slot) = entries.slots.get(identity) {
            return Arc::clone(slot);
        }
        while entries.slots.len() >= self.capacity {
            let Some(oldest) = entries.insertion_order.pop_front() else {
                break;
            };
            entries.slots.remove(&oldest);
        }
        let slot = Arc::new(Entry {
            compiled: OnceLock::new(),
            _held: held.cloned(),
        });
        entries.slots.insert(identity.to_owned(), Arc::clone(&slot));
        entries.insertion_order.push_back(identity.to_owned());
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::postgres;
    use serde_json::json;
    use std::thread;

    #[test]
    fn cache_compiles_once_per_identity() {
        let cache = SchemaCache::new();
        assert!(cache.is_empty());
        let first = cache.get_or_compile("uid-1/7/ResourceType", &postgres());
        let again = cache.get_or_compile("uid-1/7/ResourceType", &json!({"type":"strin"}));
        assert!(
            Arc::ptr_eq(&first, &again),
            "same identity must reuse the compiled schema"
        );
        assert!(again.is_ok());
        assert_eq!(cache.len(), 1);

        let broken = cache.get_or_compile("uid-2/1/ResourceType", &json!({"type":"strin"}));
        assert!(broken.is_err());
        assert!(Arc::ptr_eq(
            &broken,
            &cache.get_or_compile("uid-2/1/ResourceType", &postgres())
        ));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_shared_schema_is_compiled_once_for_every_holder() {
        let cache = SchemaCache::new();
        let schema = Arc::new(postgres());
        let other =
            Arc::new(json!({"type": "object", "properties": {"memory": {"type": "integer"}}}));
        for _ in 0..3 {
            let report = cache.check_shared(&schema, &json!({"memory": "lots"}), None);
            assert_eq!(report.map(|r| r.total), Ok(1));
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache
                .check_shared(&other, &json!({"memory": 3}), None)
                .map(|r| r.total),
            Ok(0)
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(
            Arc::strong_count(&schema),
            2,
            "the cache holds the schema it is keyed by"
        );
    }

    #[test]
    fn in_place_checks_only_compiled_schemas_with_small_patterns_and_short_work() {
        let cache = SchemaCache::new();
        let check = |schema: &Arc<Value>, value: &Value| {
            let in_place = InPlace::default();
            let report = cache.check_shared(schema, value, Some(&in_place));
            (report, in_place.deferred())
        };
        let postgres = Arc::new(postgres());
        let lots = json!({"memory": "lots"});
        assert_eq!(check(&postgres, &lots), (Ok(Report::default()), true));
        let whole = cache.check_shared(&postgres, &lots, None);
        assert_eq!(whole.as_ref().map(|r| r.total), Ok(1));
        assert_eq!(check(&postgres, &lots), (whole, false));

        let large = "^(a|b|c){1,500}[0-9]{1,100}$";
        let patterned =
            Arc::new(json!({"properties": {"name": {"type": "string", "pattern": large}}}));
        let name = json!({"name": "x"});
        assert_eq!(
            cache.check_shared(&patterned, &name, None).map(|r| r.total),
            Ok(1)
        );
        assert!(
            check(&patterned, &name).1,
            "a large pattern is not run in place"
        );

        let list =
            Arc::new(json!({"properties": {"xs": {"type": "array", "items": {"type": "string"}}}}));
        let long = json!({"xs": vec!["a"; 20_000]});
        assert_eq!(
            cache.check_shared(&list, &long, None).map(|r| r.total),
            Ok(0)
        );
        assert!(check(&list, &long).1, "a long walk is not made in place");
        let (short, deferred) = check(&list, &json!({"xs": ["a", 1]}));
        assert!(!deferred);
        assert_eq!(short.map(|r| r.total), Ok(1));

        let lower = Arc::new(
            json!({"properties": {"s": {"type": "string", "pattern": "^[a-z]+$"}},
            "patternProperties": {"^x-": {"type": "string"}}}),
        );
        let text = |n: usize| json!({"s": "a".repeat(n)});
        assert_eq!(
            cache
                .check_shared(&lower, &text(3000), None)
                .map(|r| r.total),
            Ok(0)
        );
        assert!(!check(&lower, &text(100)).1);
        assert!(
            check(&lower, &text(3000)).1,
            "a long string is not run through a pattern in place"
        );
        let long_key = json!({"x-".repeat(1500): "v"});
        assert!(
            check(&lower, &long_key).1,
            "nor a long key through patternProperties"
        );
    }

    #[test]
    fn cache_checks_values() {
        let cache = SchemaCache::new();
        let report = cache.check("pg", &postgres(), &json!({"memory": "lots"}));
        assert_eq!(report.map(|r| r.total), Ok(1));
        let broken = cache.check("bad", &json!({"type":"strin"}), &json!({}));
        assert!(broken.is_err());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn cache_is_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SchemaCache>();
        assert_send_sync::<EnvConfigSchema>();

        let cache = SchemaCache::default();
        let results: Vec<Compiled> = thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| cache.get_or_compile("shared", &postgres())))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        assert_eq!(results.len(), 8);
        assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_is_bounded() {
        let cache = SchemaCache::with_capacity(2);
        let a = cache.get_or_compile("a", &json!(true));
        cache.get_or_compile("b", &json!(true));
        cache.get_or_compile("c", &json!(true));
        assert_eq!(cache.len(), 2);
        assert!(
            !Arc::ptr_eq(&a, &cache.get_or_compile("a", &json!(true))),
            "oldest is evicted"
        );

        let cache = SchemaCache::new();
        for i in 0..CACHE_CAPACITY + 10 {
            cache.get_or_compile(&i.to_string(), &json!(true));
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
    }
}
