//! Kubernetes' schema dialect: `openAPIV3Schema` is OpenAPI v3.0 as CRD structural schemas use
//! it, translated here into the JSON Schema draft 2020-12 the validator compiles.
//!
//! - `exclusiveMinimum: true` with `minimum: m` becomes `exclusiveMinimum: m` (same for maximum);
//!   a boolean without its bound, or `false`, is dropped.
//! - `nullable: true` lets `null` through; `nullable: false` is dropped.
//! - `x-kubernetes-int-or-string: true` means an integer or a string.
//! - `format` is an annotation: never checked, never an error.
//! - `$schema` is dropped (the dialect is fixed) and so is every `x-*` extension, including
//!   `x-kubernetes-preserve-unknown-fields`: unknown fields are allowed anyway unless
//!   `additionalProperties: false` says otherwise.
//!
//! The walk is bounded: a schema nested deeper than [`MAX_SCHEMA_DEPTH`] or with more than
//! [`MAX_SCHEMA_NODES`] subschemas is refused with a [`SchemaError`].

use super::SchemaError;
use serde_json::{Map, Value, json};

/// Subschemas nested inside each other.
pub const MAX_SCHEMA_DEPTH: usize = 512;
/// Subschemas in one schema, all levels together.
pub const MAX_SCHEMA_NODES: usize = 20_000;

/// Keywords whose value is a single subschema.
pub const SCHEMA_KEYWORDS: &[&str] = &[
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
pub const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value maps names to subschemas.
pub const SCHEMA_MAP_KEYWORDS: &[&str] = &[
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

/// The draft 2020-12 form of a Kubernetes `openAPIV3Schema`.
pub fn translate(schema: &Value) -> Result<Value, SchemaError> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(SchemaError(format!(
            "invalid schema: must be an object or a boolean, got {}",
            super::type_name(schema)
        )));
    }
    let mut translated = schema.clone();
    let mut nodes = 0;
    translate_node(&mut translated, 0, &mut nodes)?;
    Ok(translated)
}

fn translate_node(schema: &mut Value, depth: usize, nodes: &mut usize) -> Result<(), SchemaError> {
    let Value::Object(keywords) = schema else {
        return Ok(());
    };
    *nodes += 1;
    if *nodes > MAX_SCHEMA_NODES {
        return Err(SchemaError(format!(
            "schema too large: more than {MAX_SCHEMA_NODES} subschemas"
        )));
    }
    if depth > MAX_SCHEMA_DEPTH {
        return Err(SchemaError(format!(
            "schema too deep: subschemas nested more than {MAX_SCHEMA_DEPTH} levels"
        )));
    }
    for child in subschemas_mut(keywords) {
        translate_node(child, depth + 1, nodes)?;
    }
    translate_keywords(keywords);
    Ok(())
}

/// The subschemas directly inside a schema object.
fn subschemas_mut(keywords: &mut Map<String, Value>) -> impl Iterator<Item = &mut Value> {
    keywords.iter_mut().flat_map(|(keyword, value)| {
        let keyword = keyword.as_str();
        let children: Box<dyn Iterator<Item = &mut Value>> =
            if value.is_array() && SCHEMA_ARRAY_KEYWORDS.contains(&keyword) {
                Box::new(value.as_array_mut().into_iter().flatten())
            } else if value.is_object() && SCHEMA_MAP_KEYWORDS.contains(&keyword) {
                Box::new(value.as_object_mut().into_iter().flat_map(Map::values_mut))
            } else if SCHEMA_KEYWORDS.contains(&keyword) {
                Box::new(std::iter::once(value))
            } else {
                Box::new(std::iter::empty())
            };
        children
    })
}

/// Rewrites one schema object's own keywords (its subschemas are already done).
fn translate_keywords(keywords: &mut Map<String, Value>) {
    if keywords.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        keywords.insert("type".to_owned(), json!(["integer", "string"]));
    }
    keywords.retain(|keyword, _| !keyword.starts_with("x-") && keyword != "$schema");
    keywords.remove("format");
    exclusive_bound(keywords, "exclusiveMinimum", "minimum");
    exclusive_bound(keywords, "exclusiveMaximum", "maximum");
    if keywords.remove("nullable") == Some(Value::Bool(true)) {
        allow_null(keywords);
    }
}

/// OpenAPI 3.0's `exclusiveMinimum: true` qualifies `minimum`; draft 2020-12 carries the bound.
fn exclusive_bound(keywords: &mut Map<String, Value>, exclusive: &str, bound: &str) {
    match keywords.get(exclusive) {
        Some(Value::Bool(true)) if keywords.get(bound).is_some_and(Value::is_number) => {
            let limit = keywords.remove(bound).unwrap_or_default();
            keywords.insert(exclusive.to_owned(), limit);
        }
        Some(Value::Bool(_)) => {
            keywords.remove(exclusive);
        }
        _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EnvConfigSchema;

    fn compiled(schema: &Value) -> EnvConfigSchema {
        EnvConfigSchema::compile(schema)
            .unwrap_or_else(|error| panic!("schema {schema} should compile: {error}"))
    }

    fn accepts(schema: &Value, value: &Value) -> bool {
        compiled(schema).validate(value).is_empty()
    }

    #[test]
    fn boolean_exclusive_bounds_qualify_minimum_and_maximum() {
        let schema = json!({"properties":{"n":{"type":"number",
            "minimum":1,"exclusiveMinimum":true,"maximum":5,"exclusiveMaximum":true}}});
        assert!(!accepts(&schema, &json!({"n":1})));
        assert!(accepts(&schema, &json!({"n":1.5})));
        assert!(!accepts(&schema, &json!({"n":5})));
        let inclusive = json!({"properties":{"n":{"minimum":1,"exclusiveMinimum":false,
            "maximum":5,"exclusiveMaximum":false}}});
        assert!(accepts(&inclusive, &json!({"n":1})));
        assert!(accepts(&inclusive, &json!({"n":5})));
        assert!(!accepts(&inclusive, &json!({"n":6})));
        let lone = json!({"properties":{"n":{"exclusiveMinimum":true}}});
        assert!(accepts(&lone, &json!({"n":-7})));
        let numeric = json!({"properties":{"n":{"exclusiveMinimum":0}}});
        assert!(!accepts(&numeric, &json!({"n":0})));
    }

    #[test]
    fn int_or_string_takes_integers_and_strings() {
        let schema = json!({"properties":{
            "port":{"x-kubernetes-int-or-string":true},
            "typed":{"x-kubernetes-int-or-string":true,
                     "anyOf":[{"type":"integer"},{"type":"string"}]},
            "maybe":{"x-kubernetes-int-or-string":true,"nullable":true}}});
        for good in [json!(8080), json!("http"), json!("50%")] {
            let value = json!({"port": good, "typed": good, "maybe": good});
            assert!(accepts(&schema, &value), "{value}");
        }
        assert!(accepts(&schema, &json!({"maybe":null})));
        for bad in [json!(true), json!(1.5), json!([1]), json!({}), json!(null)] {
            assert!(!accepts(&schema, &json!({"port": bad})), "{bad}");
        }
    }

    #[test]
    fn preserve_unknown_fields_and_extensions_never_break_a_schema() {
        let schemas = [
            json!({"type":"object","x-kubernetes-preserve-unknown-fields":true}),
            json!({"type":"object","properties":{"spec":{"type":"object",
                "x-kubernetes-preserve-unknown-fields":"yes",
                "x-kubernetes-validations":[{"rule":"self.x > 0"}],
                "x-kubernetes-list-type":"nonsense"}}}),
            json!({"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}),
        ];
        let value = json!({"spec":{"anything":{"goes":[1,"two"]}},"other":true});
        for schema in schemas {
            assert!(accepts(&schema, &value), "{schema}");
        }
    }

    #[test]
    fn formats_are_annotations() {
        let schema = json!({"properties":{
            "a":{"type":"string","format":"frobnicate"},
            "b":{"type":"integer","format":"int32"},
            "c":{"type":"string","format":"date-time"},
            "d":{"type":"string","format":3}}});
        let value = json!({"a":"x","b":1,"c":"not a date","d":"x"});
        assert!(accepts(&schema, &value));
        assert!(!accepts(&schema, &json!({"b":"1"})), "type still applies");
    }

    #[test]
    fn patterns_run_in_linear_time() {
        let schema = json!({"properties":{"name":{"type":"string","pattern":"^(a+)+$"}}});
        let compiled = compiled(&schema);
        assert!(compiled.validate(&json!({"name":"aaaa"})).is_empty());
        // 2^60 paths for a backtracking engine; one pass for RE2.
        let long = format!("{}!", "a".repeat(60));
        let violations = compiled.validate(&json!({"name": long}));
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .message
                .contains(r#"does not match "^(a+)+$""#),
            "a plain mismatch, not an engine failure: {}",
            violations[0].message
        );
        let lookahead = json!({"properties":{"name":{"pattern":"^(?=a)"}}});
        assert!(
            EnvConfigSchema::compile(&lookahead).is_err(),
            "RE2 has no lookaround"
        );
    }

    #[test]
    fn a_deep_schema_compiles_and_a_too_deep_one_is_refused() {
        let nested = |levels: usize| {
            let mut schema = json!({"type":"string","default":"bottom"});
            for _ in 0..levels {
                schema = json!({"type":"object","default":{},"properties":{"a": schema}});
            }
            schema
        };
        let deep = compiled(&nested(200));
        let mut bottom = deep.with_defaults(&json!({})).expect("defaults");
        for _ in 0..199 {
            bottom = bottom["a"].take();
        }
        assert_eq!(bottom, json!({"a":"bottom"}));
        assert!(deep.validate(&json!({})).is_empty());
        let refused = EnvConfigSchema::compile(&nested(MAX_SCHEMA_DEPTH + 10));
        assert!(refused.is_err_and(|e| e.0.contains("too deep")));
    }

    #[test]
    fn a_huge_schema_is_refused() {
        let properties: Map<String, Value> = (0..=MAX_SCHEMA_NODES)
            .map(|i| (format!("p{i}"), json!({"type":"string"})))
            .collect();
        let schema = Value::Object(Map::from_iter([(
            "properties".to_owned(),
            Value::Object(properties),
        )]));
        let refused = EnvConfigSchema::compile(&schema);
        assert!(refused.is_err_and(|e| e.0.contains("too large")));
    }
}
