//! Validation of a ResourceReleaseBinding's `spec.resourceTypeEnvironmentConfigs` against the
//! `environmentConfigs.openAPIV3Schema` of its ResourceType.
//!
//! A schema is read in Kubernetes' dialect ([`dialect`]) and compiled as JSON Schema draft 2020-12
//! with remote retrieval disabled and linear-time (RE2-like) patterns. Defaults are applied to a
//! copy of the value before it is validated ([`defaults`]); that walk also bounds the work a value
//! can cost. Violations come back few and short ([`violations`]); compiled schemas are cached by
//! identity ([`cache`]).

mod cache;
mod defaults;
mod dialect;
mod violations;

pub use cache::{InPlace, SchemaCache};
pub use violations::{MAX_CAUSES, Report, Segment, Violation};

use defaults::Budget;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde_json::{Value, json};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Compiled size of one `pattern`, in bytes.
const MAX_PATTERN_BYTES: usize = 1 << 20;
/// Stack left below which schema work moves to a fresh stack: the walks recurse once per level of
/// [`dialect::MAX_SCHEMA_DEPTH`] and [`defaults::MAX_DEPTH`].
const STACK_RED_ZONE: usize = 32 << 20;
/// Size of that fresh stack (reserved, committed only as it is used).
const STACK_SIZE: usize = 128 << 20;
/// Stack for the threads that judge reviews: deep enough that schema work stays on it instead of
/// mapping (and unmapping) a fresh stack per review. Reserved, committed only as it is used.
pub const JUDGE_THREAD_STACK: usize = STACK_RED_ZONE + (8 << 20);

/// A schema that cannot be compiled, or that a value cannot be checked against in bounded work;
/// the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// The work a check may do on an async worker (see [`InPlace`]), against [`Budget::WHOLE`]
/// elsewhere: a regex may cost about a microsecond per byte where it cannot use its DFA, so the
/// bytes run through patterns are bounded apart from the steps.
const IN_PLACE: Budget = Budget {
    steps: 2_000,
    pattern_bytes: 2 * 1024,
};
/// Compiled size of the largest `pattern` a check on an async worker may run: small enough that
/// matching costs little per byte of the value even where the regex engine cannot use its DFA.
const IN_PLACE_PATTERN_BYTES: usize = 8 * 1024;

/// A compiled `environmentConfigs.openAPIV3Schema`.
pub struct EnvConfigSchema {
    validator: Validator,
    /// The schema as given; defaults are read from it.
    schema: Value,
    /// Every pattern compiles within [`IN_PLACE_PATTERN_BYTES`].
    small_patterns: bool,
}

impl fmt::Debug for EnvConfigSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvConfigSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl EnvConfigSchema {
    /// Compiles `schema`; a schema whose own defaults never end is refused here, once.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        on_deep_stack(|| {
            let translated = dialect::translate(schema)?;
            defaults::apply(schema, &json!({}))?;
            let patterns = PatternOptions::regex().size_limit(MAX_PATTERN_BYTES);
            let built = guarded(|| {
                jsonschema::draft202012::options()
                    .offline()
                    .with_pattern_options(patterns)
                    .build(&translated)
            })?;
            let validator = built.map_err(|error| compile_error(&error))?;
            Ok(Self {
                validator,
                schema: schema.clone(),
                small_patterns: patterns_are_small(&translated),
            })
        })
    }

    /// Applies defaults to a copy of `value` and validates it. `Err` when the work it needs is
    /// more than bindguard allows.
    pub fn check(&self, value: &Value) -> Result<Report, SchemaError> {
        on_deep_stack(|| {
            let effective = defaults::apply(&self.schema, value)?;
            violations::collect(&self.validator, &effective)
        })
    }

    /// [`Self::check`] within what may run on an async worker; `None` when the check could
    /// cost more (large patterns, more than [`IN_PLACE`] allows, or an error [`Self::check`]
    /// would report).
    pub fn check_in_place(&self, value: &Value) -> Option<Report> {
        if !self.small_patterns {
            return None;
        }
        on_deep_stack(|| {
            let effective = defaults::apply_within(&self.schema, value, IN_PLACE).ok()?;
            violations::collect(&self.validator, &effective).ok()
        })
    }

    /// The violations [`Self::check`] keeps (empty = valid); a value that cannot be checked is
    /// one violation at the root saying why.
    pub fn validate(&self, value: &Value) -> Vec<Violation> {
        self.check(value)
            .map(|report| report.violations)
            .unwrap_or_else(|SchemaError(message)| {
                vec![Violation {
                    segments: Vec::new(),
                    message,
                }]
            })
    }

    /// The value with defaults applied (for tests and for showing the effective config).
    pub fn with_defaults(&self, value: &Value) -> Result<Value, SchemaError> {
        on_deep_stack(|| defaults::apply(&self.schema, value))
    }
}

/// Whether every `pattern` and `patternProperties` key in `schema` compiles within
/// [`IN_PLACE_PATTERN_BYTES`] (one that the regex crate cannot read counts as large).
fn patterns_are_small(schema: &Value) -> bool {
    let small = |pattern: &str| {
        regex::RegexBuilder::new(pattern)
            .size_limit(IN_PLACE_PATTERN_BYTES)
            .build()
            .is_ok()
    };
    match schema {
        Value::Object(keywords) => keywords.iter().all(|(keyword, value)| {
            let own = match (keyword.as_str(), value) {
                ("pattern", Value::String(pattern)) => small(pattern),
                ("patternProperties", Value::Object(patterns)) => patterns.keys().all(|p| small(p)),
                _ => true,
            };
            own && patterns_are_small(value)
        }),
        Value::Array(items) => items.iter().all(patterns_are_small),
        _ => true,
    }
}

/// Runs `f` with enough stack for the bounded recursion of schema work.
fn on_deep_stack<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SIZE, f)
}

/// Runs third-party code, turning a panic into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, SchemaError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| SchemaError("internal error in the JSON Schema library".to_owned()))
}

fn compile_error(error: &ValidationError<'_>) -> SchemaError {
    let at = error.instance_path().as_str();
    let message = violations::shorten(error.to_string(), violations::MAX_MESSAGE_CHARS);
    if at.is_empty() {
        SchemaError(format!("invalid schema: {message}"))
    } else {
        SchemaError(format!("invalid schema at {at}: {message}"))
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const PREFIX: &str = "spec.resourceTypeEnvironmentConfigs";

    pub(crate) fn postgres() -> Value {
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
            (json!({"tier":null}), base.clone()),
        ];
        let schema = compiled(&postgres());
        for (input, expected) in cases {
            let original = input.clone();
            assert_eq!(schema.with_defaults(&input), Ok(expected), "input {input}");
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
        assert_eq!(compiled(&schema).with_defaults(&input), Ok(expected));
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
                .all(|v| v.message.chars().count() <= violations::MAX_MESSAGE_CHARS + 1)
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
}
