//! Schema fragments that schemars cannot derive: free-form objects and CEL rules.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields the API server keeps as they are.
pub fn free_form(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Like [`free_form`], but absent is allowed.
pub fn optional_free_form(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Any JSON value, kept as it is (upstream's `runtime.RawExtension` fields); policy judges it.
pub fn raw(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// An integer without a declared width.
pub fn integer(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer" })
}

/// A string that cannot be empty.
pub fn non_empty(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "minLength": 1 })
}

/// `Delete` or `Retain`; absent means inherit.
pub fn retain_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["Delete", "Retain"] })
}

/// Conditions as a map keyed by type.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<super::Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Implements `JsonSchema` for a spec the API server should keep as it is.
#[macro_export]
macro_rules! free_form_schema {
    ($t:ty) => {
        $crate::schema_from!($t, $crate::crd::schema_helpers::free_form);
    };
}

/// Implements `JsonSchema` for `$t` with the schema `$f` writes.
#[macro_export]
macro_rules! schema_from {
    ($t:ty, $f:path) => {
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $f(generator)
            }
        }
    };
}
