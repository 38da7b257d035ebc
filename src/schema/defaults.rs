//! Defaults, applied where Kubernetes' apiextensions applies them before validation: under
//! `properties`, `additionalProperties` and `items` (following local `$ref`s and `allOf`), to
//! fields that are absent, or `null` where the field is not `nullable`. A default that is inserted
//! gets its own nested defaults.
//!
//! The same walk also goes everywhere the validator will go (`anyOf`, `oneOf`, `not`,
//! `if`/`then`/`else`, `patternProperties`, `contains`, ...), without applying defaults there, and
//! counts the steps. Work is bounded by [`MAX_STEPS`] and nesting by [`MAX_DEPTH`]: a schema whose
//! defaults contain themselves, or whose `$ref`s multiply the work at each level, gets a
//! [`SchemaError`] in milliseconds instead of an exponential walk.

use super::SchemaError;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::ptr;

/// Schema-node visits (plus nodes of inserted defaults) allowed for one value.
pub const MAX_STEPS: usize = 1_000_000;
/// Bytes of defaults (strings and keys, 16 per node besides) inserted into one value: a small
/// object whose items each get a large default would otherwise grow to gigabytes.
pub const MAX_DEFAULT_BYTES: usize = 1 << 20;
/// Levels of value nesting plus `$ref`/`allOf` hops under which a schema still applies.
pub const MAX_DEPTH: usize = 1_000;
/// `$ref` hops followed when looking up a property's `default`.
const MAX_REF_HOPS: usize = 32;

/// The work a walk may do: schema-node visits, and bytes of strings (values, or keys under
/// `patternProperties`) run through a `pattern`, counted once per pattern that runs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub steps: usize,
    pub pattern_bytes: usize,
}

impl Budget {
    /// What any check may do.
    pub const WHOLE: Budget = Budget {
        steps: MAX_STEPS,
        pattern_bytes: usize::MAX,
    };
}

/// `value` with every default of `schema` applied.
pub fn apply(schema: &Value, value: &Value) -> Result<Value, SchemaError> {
    apply_within(schema, value, Budget::WHOLE)
}

/// [`apply`], within `budget`.
pub fn apply_within(schema: &Value, value: &Value, budget: Budget) -> Result<Value, SchemaError> {
    let mut effective = value.clone();
    let mut walk = Walk {
        root: schema,
        steps: 0,
        scanned: 0,
        inserted: 0,
        budget,
        in_place: HashSet::new(),
        refs: HashMap::new(),
    };
    walk.schema(schema, &mut effective, Mode::Default, 0)?;
    Ok(effective)
}

/// Whether defaults are applied below this point, or only the validator's work is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Count,
}

struct Walk<'s> {
    root: &'s Value,
    steps: usize,
    /// Bytes run through patterns so far.
    scanned: usize,
    /// Bytes of defaults inserted so far.
    inserted: usize,
    budget: Budget,
    /// (schema, value node) pairs being applied, to stop `$ref` cycles that do not descend.
    in_place: HashSet<(*const Value, *const Value)>,
    /// Local `$ref`s already resolved.
    refs: HashMap<&'s str, Option<&'s Value>>,
}

impl<'s> Walk<'s> {
    fn step(&mut self, cost: usize) -> Result<(), SchemaError> {
        self.steps = self.steps.saturating_add(cost);
        if self.steps > self.budget.steps {
            return Err(SchemaError(format!(
                "checking a value against this schema needs more than {} steps \
                 (a $ref that multiplies itself, or defaults that contain themselves?)",
                self.budget.steps
            )));
        }
        Ok(())
    }

    /// Counts `text` run through `patterns` patterns.
    fn scan(&mut self, text: &str, patterns: usize) -> Result<(), SchemaError> {
        let bytes = text.len().saturating_mul(patterns);
        self.scanned = self.scanned.saturating_add(bytes);
        if self.scanned > self.budget.pattern_bytes {
            return Err(SchemaError(format!(
                "checking a value against this schema runs patterns over more than {} bytes",
                self.budget.pattern_bytes
            )));
        }
        Ok(())
    }

    /// Applies `schema` to `instance`: first the subschemas that apply in place, then the
    /// instance's children.
    fn schema(
        &mut self,
        schema: &'s Value,
        instance: &mut Value,
        mode: Mode,
        depth: usize,
    ) -> Result<(), SchemaError> {
        self.step(1)?;
        let Value::Object(keywords) = schema else {
            return Ok(());
        };
        if depth > MAX_DEPTH {
            return Err(SchemaError(format!(
                "the schema applies more than {MAX_DEPTH} levels deep into the value"
            )));
        }
        let id = (ptr::from_ref(schema), ptr::from_ref(instance));
        if !self.in_place.insert(id) {
            return Ok(());
        }
        let result = self
            .in_place_subschemas(keywords, instance, mode, depth)
            .and_then(|()| match instance {
                Value::Object(fields) => self.fields(keywords, fields, mode, depth),
                Value::Array(items) => self.items(keywords, items, mode, depth),
                Value::String(text) if keywords.get("pattern").is_some_and(Value::is_string) => {
                    self.scan(text, 1)
                }
                _ => Ok(()),
            });
        self.in_place.remove(&id);
        result
    }

    fn in_place_subschemas(
        &mut self,
        keywords: &'s Map<String, Value>,
        instance: &mut Value,
        mode: Mode,
        depth: usize,
    ) -> Result<(), SchemaError> {
        if let Some(target) = keywords.get("$ref").and_then(|r| self.resolve(r)) {
            self.schema(target, instance, mode, depth + 1)?;
        }
        for member in members(keywords, "allOf") {
            self.schema(member, instance, mode, depth + 1)?;
        }
        let counted = ["anyOf", "oneOf"]
            .into_iter()
            .flat_map(|keyword| members(keywords, keyword))
            .chain(
                ["not", "if", "then", "else"]
                    .into_iter()
                    .filter_map(|keyword| keywords.get(keyword)),
            )
            .chain(
                ["dependentSchemas", "dependencies"]
                    .into_iter()
                    .filter_map(|keyword| object_at(keywords, keyword))
                    .flat_map(Map::values),
            );
        for subschema in counted {
            self.schema(subschema, instance, Mode::Count, depth + 1)?;
        }
        Ok(())
    }

    fn fields(
        &mut self,
        keywords: &'s Map<String, Value>,
        fields: &mut Map<String, Value>,
        mode: Mode,
        depth: usize,
    ) -> Result<(), SchemaError> {
        let properties = object_at(keywords, "properties");
        for (name, property) in properties.into_iter().flatten() {
            self.step(1)?;
            if mode == Mode::Default {
                self.default_into(fields, name, property)?;
            }
            if let Some(field) = fields.get_mut(name) {
                self.child(property, field, mode, depth)?;
            }
        }
        let patterns = object_at(keywords, "patternProperties");
        // Without patternProperties, additionalProperties is exactly "every key not listed".
        let additional_mode = if patterns.is_some() {
            Mode::Count
        } else {
            mode
        };
        let additional = keywords.get("additionalProperties");
        let names = keywords.get("propertyNames");
        let unevaluated = keywords.get("unevaluatedProperties");
        for (name, field) in fields.iter_mut() {
            self.scan(name, patterns.map_or(0, Map::len))?;
            let listed = properties.is_some_and(|p| p.contains_key(name));
            if let Some(schema) = additional.filter(|_| !listed) {
                self.child(schema, field, additional_mode, depth)?;
            }
            for schema in patterns
                .into_iter()
                .flat_map(Map::values)
                .chain(unevaluated)
            {
                self.child(schema, field, Mode::Count, depth)?;
            }
            if let Some(schema) = names {
                self.child(schema, &mut Value::String(name.clone()), Mode::Count, depth)?;
            }
        }
        Ok(())
    }

    fn items(
        &mut self,
        keywords: &'s Map<String, Value>,
        items: &mut [Value],
        mode: Mode,
        depth: usize,
    ) -> Result<(), SchemaError> {
        let prefix: &[Value] = match keywords.get("prefixItems") {
            Some(Value::Array(prefix)) => prefix,
            _ => &[],
        };
        let rest = keywords.get("items").filter(|s| !s.is_array());
        let counted: Vec<&'s Value> = ["contains", "unevaluatedItems"]
            .into_iter()
            .filter_map(|keyword| keywords.get(keyword))
            .collect();
        for (index, item) in items.iter_mut().enumerate() {
            self.step(1)?;
            if let Some(schema) = prefix.get(index).or(rest) {
                self.child(schema, item, mode, depth)?;
            }
            for schema in &counted {
                self.child(schema, item, Mode::Count, depth)?;
            }
        }
        Ok(())
    }

    /// Applies `schema` to a child of the current value node.
    fn child(
        &mut self,
        schema: &'s Value,
        instance: &mut Value,
        mode: Mode,
        depth: usize,
    ) -> Result<(), SchemaError> {
        self.schema(schema, instance, mode, depth + 1)
    }

    /// Inserts the property's default when the field is absent, or null and not nullable.
    fn default_into(
        &mut self,
        fields: &mut Map<String, Value>,
        name: &str,
        property: &'s Value,
    ) -> Result<(), SchemaError> {
        let missing = match fields.get(name) {
            None => true,
            Some(Value::Null) => property.get("nullable") != Some(&Value::Bool(true)),
            Some(_) => false,
        };
        let Some(default) = missing.then(|| self.find_default(property)).flatten() else {
            return Ok(());
        };
        let (nodes, bytes) = size_of(default, MAX_STEPS, MAX_DEFAULT_BYTES);
        self.step(nodes)?;
        self.inserted = self.inserted.saturating_add(bytes);
        if self.inserted > MAX_DEFAULT_BYTES {
            return Err(SchemaError(format!(
                "applying this schema's defaults would add more than {MAX_DEFAULT_BYTES} bytes \
                 to the value"
            )));
        }
        fields.insert(name.to_owned(), default.clone());
        Ok(())
    }

    /// The schema's `default`, or that of the schema its local `$ref` points to.
    fn find_default(&mut self, mut schema: &'s Value) -> Option<&'s Value> {
        for _ in 0..MAX_REF_HOPS {
            if let Some(default) = schema.get("default") {
                return Some(default);
            }
            schema = self.resolve(schema.get("$ref")?)?;
        }
        None
    }

    fn resolve(&mut self, reference: &'s Value) -> Option<&'s Value> {
        let reference = reference.as_str()?;
        let root = self.root;
        *self
            .refs
            .entry(reference)
            .or_insert_with(|| resolve_local(root, reference))
    }
}

/// Nodes in `value`, counted up to `limit`.
/// Nodes and bytes of `value` (strings and keys, 16 per node besides), counted until either
/// passes its limit.
fn size_of(value: &Value, node_limit: usize, byte_limit: usize) -> (usize, usize) {
    const NODE_BYTES: usize = 16;
    let (mut nodes, mut bytes) = (0usize, 0usize);
    let mut pending = vec![value];
    while let Some(node) = pending.pop() {
        nodes += 1;
        bytes += NODE_BYTES;
        if nodes > node_limit || bytes > byte_limit {
            break;
        }
        match node {
            Value::String(text) => bytes += text.len(),
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => {
                bytes += fields.keys().map(String::len).sum::<usize>();
                pending.extend(fields.values());
            }
            _ => {}
        }
    }
    (nodes, bytes)
}

fn members<'s>(keywords: &'s Map<String, Value>, keyword: &str) -> &'s [Value] {
    match keywords.get(keyword) {
        Some(Value::Array(members)) => members,
        _ => &[],
    }
}

fn object_at<'s>(
    keywords: &'s Map<String, Value>,
    keyword: &str,
) -> Option<&'s Map<String, Value>> {
    keywords.get(keyword).and_then(Value::as_object)
}

/// Resolves `#/json/pointer` references inside the document; anything else yields `None`.
fn resolve_local<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let fragment = reference.strip_prefix('#')?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EnvConfigSchema;
    use serde_json::json;

    fn compiled(schema: &Value) -> EnvConfigSchema {
        EnvConfigSchema::compile(schema)
            .unwrap_or_else(|error| panic!("schema {schema} should compile: {error}"))
    }

    #[test]
    fn defaults_apply_under_additional_properties() {
        let schema = json!({"type":"object","additionalProperties":{"type":"object",
            "required":["port"],"properties":{"port":{"type":"integer","default":80}}}});
        let value = json!({"web":{},"api":{"port":81}});
        let compiled = compiled(&schema);
        assert_eq!(
            compiled.with_defaults(&value),
            Ok(json!({"web":{"port":80},"api":{"port":81}}))
        );
        assert_eq!(compiled.validate(&value), Vec::new());
    }

    #[test]
    fn defaults_apply_under_items_refs_and_all_of() {
        let schema = json!({"properties":{"ports":{"type":"array",
            "items":{"$ref":"#/$defs/port"}}},
            "$defs":{"port":{"allOf":[{"required":["protocol"],
                "properties":{"protocol":{"type":"string","default":"TCP"}}}]}}});
        let value = json!({"ports":[{},{"protocol":"UDP"}]});
        let compiled = compiled(&schema);
        assert_eq!(
            compiled.with_defaults(&value),
            Ok(json!({"ports":[{"protocol":"TCP"},{"protocol":"UDP"}]}))
        );
        assert_eq!(compiled.validate(&value), Vec::new());
    }

    #[test]
    fn null_takes_the_default_unless_nullable() {
        let schema = json!({"properties":{
            "plain":{"type":"string","default":"d"},
            "nullable":{"type":"string","nullable":true,"default":"d"}}});
        assert_eq!(
            compiled(&schema).with_defaults(&json!({"plain":null,"nullable":null})),
            Ok(json!({"plain":"d","nullable":null}))
        );
    }

    #[test]
    fn defaults_are_not_taken_from_alternatives() {
        let schema = json!({"anyOf":[{"properties":{"a":{"default":1}}}],
            "oneOf":[{"properties":{"b":{"default":1}}}],
            "not":{"properties":{"c":{"default":1}}}});
        assert_eq!(compiled(&schema).with_defaults(&json!({})), Ok(json!({})));
    }

    /// Before the work budget, this schema made defaulting exponential (no answer in 15 s, 4 GB).
    #[test]
    fn defaults_that_contain_themselves_are_refused_at_compile() {
        let schema = json!({"type":"object","properties":{
            "left":{"$ref":"#","default":{}},
            "right":{"$ref":"#","default":{}}}});
        assert!(EnvConfigSchema::compile(&schema).is_err());
    }

    #[test]
    fn defaults_that_a_value_makes_endless_are_refused() {
        let schema = json!({"properties":{"tree":{"$ref":"#/$defs/node"}},
            "$defs":{"node":{"type":"object","properties":{
                "left":{"$ref":"#/$defs/node","default":{}},
                "right":{"$ref":"#/$defs/node","default":{}}}}}});
        let compiled = compiled(&schema);
        assert_eq!(compiled.check(&json!({})).map(|r| r.total), Ok(0));
        let error = compiled.check(&json!({"tree":{}})).expect_err("budget");
        assert!(
            error.0.contains("steps") || error.0.contains("levels"),
            "{error}"
        );
    }

    /// A 4 KB value whose 1,000 items each get ten 100 KB defaults grew to about 1 GB per check.
    #[test]
    fn defaults_that_would_grow_a_small_value_past_a_mebibyte_are_refused() {
        let big = "x".repeat(100_000);
        let properties: Map<String, Value> = (0..10)
            .map(|i| (format!("p{i}"), json!({"type": "string", "default": big})))
            .collect();
        let schema = json!({"type":"object","properties":{"a":{"type":"array",
            "items":{"type":"object","properties":properties}}}});
        let compiled = compiled(&schema);
        let few = json!({"a": [{}]});
        assert_eq!(
            compiled
                .with_defaults(&few)
                .map(|v| v["a"][0]["p9"] == big.as_str()),
            Ok(true)
        );
        let many = json!({"a": vec![json!({}); 1_000]});
        let error = compiled
            .with_defaults(&many)
            .expect_err("too many bytes of defaults");
        assert!(error.0.contains("1048576 bytes"), "{error}");
    }

    #[test]
    fn refs_that_multiply_work_are_refused() {
        let mut defs = Map::new();
        for i in 0..40 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"allOf":[{"$ref":next},{"$ref":next}]}),
            );
        }
        defs.insert("d40".into(), json!({"type":"object"}));
        let at_root = json!({"$defs": defs.clone(), "$ref":"#/$defs/d0"});
        assert!(EnvConfigSchema::compile(&at_root).is_err());
        let below = json!({"$defs": defs, "properties":{"p":{"$ref":"#/$defs/d0"}}});
        let compiled = compiled(&below);
        assert!(compiled.check(&json!({"p":{}})).is_err());
    }

    #[test]
    fn ref_cycles_answer() {
        let schemas = [
            json!({"$ref":"#"}),
            json!({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}),
            json!({"$defs":{"a":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}),
        ];
        for schema in schemas {
            let compiled = compiled(&schema);
            assert!(compiled.check(&json!({"a":{"b":1}})).is_ok(), "{schema}");
        }
    }

    #[test]
    fn recursive_schemas_follow_the_value_as_deep_as_allowed() {
        let schema = json!({"type":"object","properties":{
            "next":{"$ref":"#"},"tag":{"type":"string","default":"t"}}});
        let compiled = compiled(&schema);
        let chain = |levels: usize| {
            let mut value = json!({});
            for _ in 0..levels {
                value = Value::Object(Map::from_iter([("next".to_owned(), value)]));
            }
            value
        };
        assert_eq!(compiled.check(&chain(300)).map(|r| r.total), Ok(0));
        let error = compiled.check(&chain(MAX_DEPTH + 1)).expect_err("too deep");
        assert!(error.0.contains("levels deep"), "{error}");
    }

    #[test]
    fn values_deeper_than_the_schema_are_not_walked() {
        let mut value = json!(1);
        for _ in 0..5_000 {
            value = Value::Array(vec![value]);
        }
        let value = Value::Object(Map::from_iter([("free".to_owned(), value)]));
        let compiled = compiled(&json!({"type":"object","properties":{"n":{"default":1}}}));
        assert_eq!(compiled.check(&value).map(|r| r.total), Ok(0));
        stacker::grow(64 << 20, || drop(value));
    }
}
