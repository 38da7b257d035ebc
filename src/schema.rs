//! Validation of a ResourceReleaseBinding's `spec.resourceTypeEnvironmentConfigs` against the
//! `environmentConfigs.openAPIV3Schema` of its ResourceType.
//!
//! Schemas are compiled as JSON Schema draft 2020-12 with remote retrieval disabled. OpenAPI's
//! `nullable: true` is rewritten so that `null` is accepted; `x-*` keys are unknown keywords and
//! therefore ignored. Defaults are applied to a copy of the value before it is validated.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::Location;
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value, json};

/// Compiled schemas kept by a [`SchemaCache`] before the oldest is evicted.
const CACHE_CAPACITY: usize = 1024;
/// Nesting (instance levels plus `$ref`/`allOf` hops) beyond which no defaults are applied.
const MAX_DEFAULTS_DEPTH: usize = 256;
/// `$ref` hops followed when looking up a property's `default`.
const MAX_REF_HOPS: usize = 32;
/// Violation messages are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Keywords whose value is a single subschema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "items",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value maps names to subschemas.
const SCHEMA_MAP_KEYWORDS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependencies",
];
/// Keywords of a `nullable` schema that would reject `null`; they are moved under
/// `if: {type: null}, else: {...}` so that they apply to non-null values only.
const NULL_REJECTING_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "$ref",
    "$dynamicRef",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
];

type Compiled = Arc<Result<EnvConfigSchema, SchemaError>>;
type Slot = Arc<OnceLock<Compiled>>;

/// A schema that cannot be compiled; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

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

    fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// Returns the compiled schema for `identity`, compiling `schema` on first use.
    /// Concurrent callers with the same identity wait for a single compilation.
    pub fn get_or_compile(
        &self,
        identity: &str,
        schema: &Value,
    ) -> Arc<Result<EnvConfigSchema, SchemaError>> {
        let slot = self.slot(identity);
        Arc::clone(slot.get_or_init(|| Arc::new(EnvConfigSchema::compile(schema))))
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

    fn slot(&self, identity: &str) -> Slot {
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
        let slot = Slot::default();
        entries.slots.insert(identity.to_owned(), Arc::clone(&slot));
        entries.insertion_order.push_back(identity.to_owned());
        slot
    }
}

/// A compiled `environmentConfigs.openAPIV3Schema`.
pub struct EnvConfigSchema {
    validator: Validator,
    /// The schema as given; defaults are read from it.
    schema: Value,
}

impl fmt::Debug for EnvConfigSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvConfigSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl EnvConfigSchema {
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        if !(schema.is_object() || schema.is_boolean()) {
            return Err(SchemaError(format!(
                "invalid schema: must be an object or a boolean, got {}",
                type_name(schema)
            )));
        }
        let mut prepared = schema.clone();
        rewrite_nullable(&mut prepared);
        let built = guarded(|| {
            jsonschema::draft202012::options()
                .offline()
                .build(&prepared)
        })
        .map_err(SchemaError)?;
        let validator = built.map_err(|error| schema_error(&error))?;
        Ok(Self {
            validator,
            schema: schema.clone(),
        })
    }

    /// Applies defaults to a copy of `value`, validates, returns every violation (empty = valid).
    pub fn validate(&self, value: &Value) -> Vec<Violation> {
        let effective = self.with_defaults(value);
        guarded(|| {
            self.validator
                .iter_errors(&effective)
                .flat_map(|error| violations(&effective, &error))
                .collect()
        })
        .unwrap_or_else(|message| {
            vec![Violation {
                segments: Vec::new(),
                message,
            }]
        })
    }

    /// The value with defaults applied (for tests and for showing the effective config).
    pub fn with_defaults(&self, value: &Value) -> Value {
        let mut effective = value.clone();
        apply_defaults(
            &self.schema,
            &self.schema,
            &mut effective,
            &mut Vec::new(),
            0,
        );
        effective
    }
}

/// One step of a [`Violation`]'s path inside the validated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index (`Display` renders it as its decimal string).
    Index(usize),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(key) => f.write_str(key),
            Segment::Index(index) => write!(f, "{index}"),
        }
    }
}

/// A schema violation: where in the value (`segments`, outermost first) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub segments: Vec<Segment>,
    pub message: String,
}

impl Violation {
    /// `prefix` joined with the segments: object keys as `.key`, array indexes as `[i]`;
    /// keys that are not plain identifiers ([A-Za-z0-9_-]) as `["weird key"]`.
    pub fn field(&self, prefix: &str) -> String {
        let mut field = prefix.to_owned();
        for segment in &self.segments {
            match segment {
                Segment::Index(index) => {
                    let _ = write!(field, "[{index}]");
                }
                Segment::Key(key) if is_plain_key(key) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                Segment::Key(key) => {
                    let _ = write!(field, "[{}]", Value::String(key.clone()));
                }
            }
        }
        field
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Runs third-party code, turning a panic into an error message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| "internal error in the JSON Schema library".to_owned())
}

fn schema_error(error: &ValidationError<'_>) -> SchemaError {
    let at = error.instance_path().as_str();
    let message = shorten(error.to_string());
    if at.is_empty() {
        SchemaError(format!("invalid schema: {message}"))
    } else {
        SchemaError(format!("invalid schema at {at}: {message}"))
    }
}

fn shorten(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

// ---- nullable ----

fn rewrite_nullable(schema: &mut Value) {
    let Value::Object(keywords) = schema else {
        return;
    };
    for_each_subschema(keywords, rewrite_nullable);
    if keywords.remove("nullable") == Some(Value::Bool(true)) {
        allow_null(keywords);
    }
}

fn for_each_subschema(keywords: &mut Map<String, Value>, f: fn(&mut Value)) {
    for (keyword, value) in keywords.iter_mut() {
        let keyword = keyword.as_str();
        match value {
            Value::Array(members) if SCHEMA_ARRAY_KEYWORDS.contains(&keyword) => {
                members.iter_mut().for_each(f);
            }
            Value::Object(named) if SCHEMA_MAP_KEYWORDS.contains(&keyword) => {
                named.values_mut().for_each(f);
            }
            _ if SCHEMA_KEYWORDS.contains(&keyword) => f(value),
            _ => {}
        }
    }
}

fn allow_null(keywords: &mut Map<String, Value>) {
    let non_null: Map<String, Value> = NULL_REJECTING_KEYWORDS
        .iter()
        .filter_map(|keyword| Some((keyword.to_string(), keywords.remove(*keyword)?)))
        .collect();
    if !non_null.is_empty() {
        keywords.insert("if".to_owned(), json!({"type": "null"}));
        keywords.insert("else".to_owned(), Value::Object(non_null));
    }
}

// ---- defaults ----

/// Inserts missing property defaults into `instance`. `seen` holds the schemas already applied
/// to this instance node, which stops `$ref` cycles and repeated work.
fn apply_defaults<'s>(
    root: &'s Value,
    schema: &'s Value,
    instance: &mut Value,
    seen: &mut Vec<&'s Value>,
    depth: usize,
) {
    let Value::Object(keywords) = schema else {
        return;
    };
    if depth > MAX_DEFAULTS_DEPTH || seen.iter().any(|done| ptr::eq(*done, schema)) {
        return;
    }
    seen.push(schema);
    if let Some(target) = keywords.get("$ref").and_then(|r| resolve_local(root, r)) {
        apply_defaults(root, target, instance, seen, depth + 1);
    }
    if let Some(Value::Array(members)) = keywords.get("allOf") {
        for member in members {
            apply_defaults(root, member, instance, seen, depth + 1);
        }
    }
    match instance {
        Value::Object(fields) => apply_property_defaults(root, keywords, fields, depth),
        Value::Array(items) => {
            if let Some(item_schema) = keywords.get("items") {
                for item in items {
                    apply_defaults(root, item_schema, item, &mut Vec::new(), depth + 1);
                }
            }
        }
        _ => {}
    }
}

fn apply_property_defaults<'s>(
    root: &'s Value,
    keywords: &'s Map<String, Value>,
    fields: &mut Map<String, Value>,
    depth: usize,
) {
    let Some(Value::Object(properties)) = keywords.get("properties") else {
        return;
    };
    for (name, property) in properties {
        if !fields.contains_key(name)
            && let Some(default) = find_default(root, property)
        {
            fields.insert(name.clone(), default.clone());
        }
        if let Some(field) = fields.get_mut(name) {
            apply_defaults(root, property, field, &mut Vec::new(), depth + 1);
        }
    }
}

/// The schema's `default`, or that of the schema its local `$ref` points to.
fn find_default<'s>(root: &'s Value, mut schema: &'s Value) -> Option<&'s Value> {
    for _ in 0..MAX_REF_HOPS {
        if let Some(default) = schema.get("default") {
            return Some(default);
        }
        schema = resolve_local(root, schema.get("$ref")?)?;
    }
    None
}

/// Resolves `#/json/pointer` references inside the document; anything else yields `None`.
fn resolve_local<'s>(root: &'s Value, reference: &Value) -> Option<&'s Value> {
    let fragment = reference.as_str()?.strip_prefix('#')?;
    root.pointer(&percent_decode(fragment)?)
}

fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = text.bytes();
    let mut decoded = Vec::with_capacity(text.len());
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = hex_digit(bytes.next()?)?;
            let low = hex_digit(bytes.next()?)?;
            decoded.push((high << 4) | low);
        } else {
            decoded.push(byte);
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

// ---- violations ----

fn violations(instance: &Value, error: &ValidationError<'_>) -> Vec<Violation> {
    let segments = segments_at(instance, error.instance_path());
    let child = |name: String, message: String| {
        let mut segments = segments.clone();
        segments.push(Segment::Key(name));
        Violation { segments, message }
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            vec![child(
                name,
                format!("required property {property} is missing"),
            )]
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                let message = format!("unknown property {} is not allowed", json!(name));
                child(name.clone(), message)
            })
            .collect(),
        _ => vec![Violation {
            segments,
            message: shorten(error.to_string()),
        }],
    }
}

/// Turns a JSON pointer into segments, using `instance` to tell array indexes from object keys
/// (an object key `"0"` stays a key).
fn segments_at(instance: &Value, location: &Location) -> Vec<Segment> {
    let mut node = Some(instance);
    location
        .as_str()
        .split('/')
        .skip(1)
        .map(|raw| {
            let token = raw.replace("~1", "/").replace("~0", "~");
            let (segment, next) = match node {
                Some(Value::Array(items)) => match token.parse::<usize>() {
                    Ok(index) => (Segment::Index(index), items.get(index)),
                    Err(_) => (Segment::Key(token), None),
                },
                Some(Value::Object(fields)) => {
                    let next = fields.get(token.as_str());
                    (Segment::Key(token), next)
                }
                _ => (Segment::Key(token), None),
            };
            node = next;
            segment
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::thread;

    const PREFIX: &str = "spec.resourceTypeEnvironmentConfigs";

    fn postgres() -> Value {
        json!({"type":"object","additionalProperties":false,
         "properties":{
           "memory":{"type":"string","pattern":"^[0-9]+(Mi|Gi)$","default":"256Mi","x-openchoreo-ui":"slider"},
           "adminEnabled":{"type":"boolean","default":false},
           "storage":{"$ref":"#/$defs/storage"},
           "tier":{"type":"string","enum":["standard","premium"],"default":"standard"}},
         "$defs":{"storage":{"type":"object","properties":{"size":{"type":"string","default":"10Gi","pattern":"^[0-9]+Gi$"},"class":{"type":"string"}},"required":["size"]}}})
    }

    fn compiled(schema: &Value) -> EnvConfigSchema {
        match EnvConfigSchema::compile(schema) {
            Ok(compiled) => compiled,
            Err(error) => panic!("schema {schema} should compile: {error}"),
        }
    }

    fn fields(schema: &Value, value: &Value) -> BTreeSet<String> {
        compiled(schema)
            .validate(value)
            .iter()
            .map(|violation| violation.field(PREFIX))
            .collect()
    }

    fn field_set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| format!("{PREFIX}{name}")).collect()
    }

    #[test]
    fn defaults_are_applied_to_a_copy() {
        let base = json!({"memory":"256Mi","adminEnabled":false,"tier":"standard"});
        let with = |extra: Value| {
            let mut expected = base.clone();
            if let (Some(target), Value::Object(extra)) = (expected.as_object_mut(), extra) {
                target.extend(extra);
            }
            expected
        };
        let cases = [
            (json!({}), base.clone()),
            (
                json!({"storage":{}}),
                with(json!({"storage":{"size":"10Gi"}})),
            ),
            (
                json!({"memory":"1Gi","storage":{"size":"5Gi","class":"fast"}}),
                with(json!({"memory":"1Gi","storage":{"size":"5Gi","class":"fast"}})),
            ),
            (json!({"tier":null}), with(json!({"tier":null}))),
        ];
        let schema = compiled(&postgres());
        for (input, expected) in cases {
            let original = input.clone();
            assert_eq!(schema.with_defaults(&input), expected, "input {input}");
            assert_eq!(input, original, "input must not be modified");
        }
    }

    #[test]
    fn defaults_follow_refs_all_of_items_and_legacy_definitions() {
        let schema = json!({
            "allOf":[{"properties":{"fromAllOf":{"default":1}}}],
            "properties":{
                "ports":{"type":"array","items":{"properties":{"protocol":{"default":"TCP"}}}},
                "legacy":{"$ref":"#/definitions/legacy"},
                "viaRef":{"$ref":"#/$defs/withDefault"},
                "outer":{"default":{},"properties":{"inner":{"default":"x"}}},
                "spaced":{"$ref":"#/$defs/a%20b"}},
            "definitions":{"legacy":{"properties":{"on":{"default":true}}}},
            "$defs":{"withDefault":{"type":"string","default":"from-ref"},
                     "a b":{"default":"decoded"}}});
        let input = json!({"ports":[{},{"protocol":"UDP"}],"legacy":{}});
        let expected = json!({
            "fromAllOf":1,
            "ports":[{"protocol":"TCP"},{"protocol":"UDP"}],
            "legacy":{"on":true},
            "viaRef":"from-ref",
            "outer":{"inner":"x"},
            "spaced":"decoded"});
        assert_eq!(compiled(&schema).with_defaults(&input), expected);
    }

    #[test]
    fn cyclic_refs_do_not_hang_defaulting() {
        let schemas = [
            json!({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}),
            json!({"$ref":"#","properties":{"self":{"$ref":"#"},"d":{"default":1}}}),
            json!({"$defs":{"a":{"allOf":[{"$ref":"#/$defs/a"},{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}),
        ];
        for schema in schemas {
            let compiled = compiled(&schema);
            let value = json!({"self":{"self":{}}});
            let _ = compiled.with_defaults(&value);
            let _ = compiled.validate(&value);
        }
    }

    #[test]
    fn valid_values_pass() {
        let cases = [
            json!({}),
            json!({"storage":{}}),
            json!({"memory":"2Gi","adminEnabled":true,"tier":"premium","storage":{"size":"20Gi","class":"fast"}}),
            json!({"storage":{"size":"1Gi","unlisted":"allowed without additionalProperties: false"}}),
        ];
        let schema = compiled(&postgres());
        for value in cases {
            assert_eq!(schema.validate(&value), Vec::new(), "value {value}");
        }
    }

    #[test]
    fn every_violation_is_reported_with_its_path() {
        let cases = [
            (
                json!({"memory":"1Gb","tier":"gold","storage":{"size":"10"}}),
                field_set(&[".memory", ".storage.size", ".tier"]),
            ),
            (
                json!({"adminEnabled":"yes","storage":{"size":"1Gi","class":3}}),
                field_set(&[".adminEnabled", ".storage.class"]),
            ),
            (
                json!({"extra":1,"other":2}),
                field_set(&[".extra", ".other"]),
            ),
            (json!({"storage":[]}), field_set(&[".storage"])),
        ];
        for (value, expected) in cases {
            assert_eq!(fields(&postgres(), &value), expected, "value {value}");
        }
    }

    #[test]
    fn messages_are_specific() {
        let violations = compiled(&postgres()).validate(&json!({"memory":"1Gb","extra":1}));
        let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        assert!(
            messages.contains(&r#""1Gb" does not match "^[0-9]+(Mi|Gi)$""#),
            "{messages:?}"
        );
        assert!(
            messages.contains(&r#"unknown property "extra" is not allowed"#),
            "{messages:?}"
        );

        let schema =
            json!({"type":"object","required":["name"],"properties":{"name":{"type":"string"}}});
        let violations = compiled(&schema).validate(&json!({}));
        let expected = Violation {
            segments: vec![Segment::Key("name".into())],
            message: r#"required property "name" is missing"#.into(),
        };
        assert_eq!(violations, vec![expected]);
    }

    #[test]
    fn long_messages_are_shortened() {
        let schema = json!({"anyOf":[{"type":"string"},{"type":"integer"}]});
        let value = json!({"big": "x".repeat(10_000)});
        let violations = compiled(&schema).validate(&value);
        assert_eq!(violations.len(), 1);
        assert!(
            violations
                .iter()
                .all(|v| v.message.chars().count() <= MAX_MESSAGE_CHARS + 1)
        );
    }

    #[test]
    fn nullable_allows_null() {
        let schema = json!({"type":"object","properties":{
            "plain":{"type":"string","nullable":true,"pattern":"^a"},
            "strict":{"type":"string"},
            "notNullable":{"type":"string","nullable":false},
            "viaRef":{"nullable":true,"allOf":[{"$ref":"#/$defs/obj"}]},
            "choice":{"type":"string","enum":["x"],"nullable":true},
            "fixed":{"const":"c","nullable":true},
            "nested":{"type":"array","items":{"type":"integer","nullable":true}}},
            "$defs":{"obj":{"type":"object"}}});
        let nulls =
            json!({"plain":null,"viaRef":null,"choice":null,"fixed":null,"nested":[1,null]});
        assert_eq!(fields(&schema, &nulls), BTreeSet::new());
        let bad = json!({"plain":"b","strict":null,"notNullable":null,"viaRef":"s","choice":"y","fixed":"d","nested":["s"]});
        let expected = field_set(&[
            ".plain",
            ".strict",
            ".notNullable",
            ".viaRef",
            ".choice",
            ".fixed",
            ".nested[0]",
        ]);
        assert_eq!(fields(&schema, &bad), expected);
    }

    #[test]
    fn x_keys_are_ignored() {
        let junk = json!({"type":"strin","pattern":"(","$ref":"https://example.com/x","$id":"https://example.com/y"});
        let schema = json!({"type":"object","x-ui":junk.clone(),"properties":{
            "name":{"type":"string","x-openchoreo-ui":junk.clone(),"x-order":"not a number"},
            "x-literal":{"type":"integer"}}});
        let plain = json!({"type":"object","properties":{"name":{"type":"string"},"x-literal":{"type":"integer"}}});
        let values = [
            json!({}),
            json!({"name":1}),
            json!({"x-literal":"s"}),
            json!({"x-ui":5}),
        ];
        for value in values {
            assert_eq!(
                compiled(&schema).validate(&value),
                compiled(&plain).validate(&value)
            );
        }
        assert_eq!(
            fields(&schema, &json!({"x-literal":"s"})),
            field_set(&[".x-literal"])
        );
    }

    #[test]
    fn invalid_schemas_are_errors() {
        let cases = [
            ("bad type", json!({"type":"strin"})),
            (
                "bad nested type",
                json!({"properties":{"a":{"type":"strin"}}}),
            ),
            ("bad pattern", json!({"type":"string","pattern":"("})),
            (
                "unresolved $ref",
                json!({"properties":{"a":{"$ref":"#/$defs/missing"}}}),
            ),
            (
                "remote $ref",
                json!({"$ref":"https://example.com/schema.json"}),
            ),
            ("relative $ref", json!({"$ref":"other.json"})),
            ("negative minLength", json!({"minLength":-1})),
            ("number", json!(3)),
            ("string", json!("object")),
            ("null", json!(null)),
            ("array", json!([])),
        ];
        for (name, schema) in cases {
            match EnvConfigSchema::compile(&schema) {
                Err(SchemaError(message)) => assert!(!message.is_empty(), "{name}"),
                Ok(_) => panic!("{name}: schema {schema} should be rejected"),
            }
        }
    }

    #[test]
    fn lenient_schemas_compile() {
        let cases = [
            json!({"properties":{"at":{"type":"string","format":"frobnicate"}}}),
            json!({"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}),
            json!({"type":"object","x-kubernetes-preserve-unknown-fields":true}),
            json!(true),
            json!({}),
        ];
        for schema in cases {
            assert_eq!(
                compiled(&schema).validate(&json!({})),
                Vec::new(),
                "{schema}"
            );
        }
    }

    #[test]
    fn boolean_schemas() {
        assert_eq!(compiled(&json!(true)).validate(&json!({"a":1})), Vec::new());
        let rejected = compiled(&json!(false)).validate(&json!({}));
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            rejected.iter().map(|v| v.field(PREFIX)).collect::<Vec<_>>(),
            [PREFIX]
        );
    }

    #[test]
    fn field_renders_keys_and_indexes() {
        let key = |k: &str| Segment::Key(k.to_owned());
        let cases = [
            (vec![], PREFIX.to_owned()),
            (vec![key("memory")], format!("{PREFIX}.memory")),
            (
                vec![key("replicas"), Segment::Index(0)],
                format!("{PREFIX}.replicas[0]"),
            ),
            (
                vec![key("a b"), key("x_y-1")],
                format!("{PREFIX}[\"a b\"].x_y-1"),
            ),
            (vec![key("")], format!("{PREFIX}[\"\"]")),
            (
                vec![key("say \"hi\"")],
                format!("{PREFIX}[\"say \\\"hi\\\"\"]"),
            ),
            (vec![key("dotted.key")], format!("{PREFIX}[\"dotted.key\"]")),
        ];
        for (segments, expected) in cases {
            let violation = Violation {
                segments,
                message: String::new(),
            };
            assert_eq!(violation.field(PREFIX), expected);
        }
        let bare = Violation {
            segments: vec![key("a"), Segment::Index(2)],
            message: String::new(),
        };
        assert_eq!(bare.field(""), "a[2]");
    }

    #[test]
    fn paths_distinguish_indexes_from_numeric_keys() {
        let schema = json!({"properties":{
            "0":{"type":"string"},
            "a/b~c":{"type":"string"},
            "list":{"items":{"type":"integer"}},
            "map":{"additionalProperties":{"type":"integer"}}}});
        let value = json!({"0":1,"a/b~c":1,"list":[1,"x"],"map":{"7":"s"}});
        let expected = field_set(&[".0", "[\"a/b~c\"]", ".list[1]", ".map.7"]);
        assert_eq!(fields(&schema, &value), expected);
        let segments: Vec<Vec<Segment>> = compiled(&schema)
            .validate(&value)
            .into_iter()
            .map(|v| v.segments)
            .collect();
        assert!(segments.contains(&vec![Segment::Key("0".into())]));
        assert!(segments.contains(&vec![Segment::Key("list".into()), Segment::Index(1)]));
    }

    #[test]
    fn odd_values_do_not_panic() {
        let mut deep = json!({});
        for _ in 0..100 {
            deep = json!({"storage": {"list": [deep]}});
        }
        let values = [
            json!("text"),
            json!([1, {"a":null}]),
            json!(null),
            json!(1.5),
            json!({"storage":null,"memory":[],"tier":{}}),
            deep,
        ];
        let schemas = [postgres(), json!(true), json!(false), json!({})];
        for schema in &schemas {
            let compiled = compiled(schema);
            for value in &values {
                let _ = compiled.with_defaults(value);
                let _ = compiled.validate(value);
            }
        }
        let violations = compiled(&postgres()).validate(&json!("text"));
        assert_eq!(violations.len(), 1);
    }

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
