//! OpenChoreo kinds (`openchoreo.dev/v1alpha1`): the binding bindguard guards and the facts its
//! rules read.

// kube's derive repeats `type_` across printcolumn entries, which clippy misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

use super::Condition;
use super::schema_helpers::{conditions, non_empty, optional_free_form, raw, retain_policy};
use super::upstream_specs::{environment_spec, project_spec};
use crate::{free_form_schema, schema_from};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const OPENCHOREO_GROUP: &str = "openchoreo.dev";
pub const RRB_FINALIZER: &str = "openchoreo.dev/resourcereleasebinding-cleanup";
pub const LABEL_PROJECT: &str = "openchoreo.dev/project";
pub const LABEL_RESOURCE: &str = "openchoreo.dev/resource";
pub const LABEL_ENVIRONMENT: &str = "openchoreo.dev/environment";

/// Pins a ResourceRelease of one Resource to one Environment.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "ResourceReleaseBinding",
    namespaced,
    status = "ResourceReleaseBindingStatus",
    shortname = "rrb",
    shortname = "rrbs",
    printcolumn(
        name = "Project",
        type_ = "string",
        json_path = ".spec.owner.projectName"
    ),
    printcolumn(
        name = "Resource",
        type_ = "string",
        json_path = ".spec.owner.resourceName"
    ),
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(
        name = "Release",
        type_ = "string",
        json_path = ".spec.resourceRelease"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReleaseBindingSpec {
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.owner is immutable"}]))]
    pub owner: BindingOwner,
    #[schemars(schema_with = "non_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.environment is immutable"}]))]
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "retain_policy")]
    pub retain_policy: Option<String>,
    /// Kept raw: policy decides whether it is an object and whether it fits the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "raw")]
    pub resource_type_environment_configs: Option<Value>,
}

/// The Resource a binding deploys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingOwner {
    #[schemars(schema_with = "non_empty")]
    pub project_name: String,
    #[schemars(schema_with = "non_empty")]
    pub resource_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReleaseBindingStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub outputs: Vec<ResolvedResourceOutput>,
}

/// One resolved output: exactly one of value, secretKeyRef or configMapKeyRef.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.value) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0) == 1",
    "message": "exactly one of value, secretKeyRef, or configMapKeyRef must be set"
}]))]
pub struct ResolvedResourceOutput {
    #[schemars(schema_with = "non_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A `{name, key}` reference to a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

/// Something a project provisions from a ResourceType.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "Resource",
    namespaced,
    status = "ResourceStatus",
    shortname = "res",
    printcolumn(
        name = "Project",
        type_ = "string",
        json_path = ".spec.owner.projectName"
    ),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type.name"),
    printcolumn(
        name = "Latest",
        type_ = "string",
        json_path = ".status.latestRelease.name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.owner is immutable"}]))]
    pub owner: ResourceOwner,
    #[serde(rename = "type")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.type cannot be changed after creation"}]))]
    pub type_: TypeRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "raw")]
    pub parameters: Option<Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOwner {
    #[schemars(schema_with = "non_empty")]
    pub project_name: String,
}

/// Names a ResourceType (namespaced) or ClusterResourceType.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TypeRef {
    #[serde(default = "default_type_kind")]
    #[schemars(schema_with = "type_kind")]
    pub kind: String,
    #[schemars(schema_with = "non_empty")]
    pub name: String,
}

pub const KIND_RESOURCE_TYPE: &str = "ResourceType";
pub const KIND_CLUSTER_RESOURCE_TYPE: &str = "ClusterResourceType";

fn default_type_kind() -> String {
    KIND_RESOURCE_TYPE.to_string()
}

fn type_kind(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": [KIND_RESOURCE_TYPE, KIND_CLUSTER_RESOURCE_TYPE],
        "default": KIND_RESOURCE_TYPE,
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_release: Option<LatestRelease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LatestRelease {
    pub name: String,
    #[serde(default)]
    pub hash: String,
}

/// The template a Resource is provisioned from; shared by ResourceType, ClusterResourceType and
/// the snapshot inside a ResourceRelease.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTypeTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<SchemaSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_configs: Option<SchemaSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "retain_policy")]
    pub retain_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "resource_templates")]
    pub resources: Vec<Value>,
}

/// The objects a type renders: an id, a template kept as it is, and optional CEL conditions.
fn resource_templates(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let cel = serde_json::json!({"type": "string", "pattern": "^\\$\\{[\\s\\S]+\\}\\s*$"});
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "template"],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "includeWhen": cel,
                "readyWhen": cel,
                "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        },
    })
}

/// A `{name, key}` reference kept raw (policy only asks which source is set).
fn optional_key_ref(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "required": ["key", "name"],
        "properties": {"key": {"type": "string"}, "name": {"type": "string"}},
    })
}

/// A schema as OpenChoreo nests it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSection {
    #[serde(
        rename = "openAPIV3Schema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "optional_free_form")]
    pub open_api_v3_schema: Option<std::sync::Arc<Value>>,
}

/// A declared output; which source field is set tells its kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.value)?1:0) + (has(self.secretKeyRef)?1:0) + (has(self.configMapKeyRef)?1:0) == 1",
    "message": "exactly one of value, secretKeyRef, or configMapKeyRef must be set"
}]))]
pub struct OutputTemplate {
    #[schemars(schema_with = "non_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_key_ref")]
    pub secret_key_ref: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_key_ref")]
    pub config_map_key_ref: Option<Value>,
}

impl ResourceTypeTemplate {
    /// The environmentConfigs schema, when the type declares one.
    pub fn environment_configs_schema(&self) -> Option<&Value> {
        self.environment_configs
            .as_ref()?
            .open_api_v3_schema
            .as_deref()
    }

    /// The environmentConfigs schema as the view shares it.
    pub fn environment_configs_shared(&self) -> Option<&std::sync::Arc<Value>> {
        self.environment_configs
            .as_ref()?
            .open_api_v3_schema
            .as_ref()
    }

    /// The declared output called `name`.
    pub fn output(&self, name: &str) -> Option<&OutputTemplate> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// A namespaced resource type.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "ResourceType",
    namespaced,
    status = "ObservedStatus",
    shortname = "rt",
    shortname = "rts",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ResourceTypeSpec {
    #[serde(flatten)]
    pub template: ResourceTypeTemplate,
}

/// A cluster-wide resource type.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "ClusterResourceType",
    status = "ObservedStatus",
    shortname = "crt",
    shortname = "crts",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ClusterResourceTypeSpec {
    #[serde(flatten)]
    pub template: ResourceTypeTemplate,
}

/// An immutable snapshot of a Resource and its type.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "ResourceRelease",
    namespaced,
    status = "ObservedStatus",
    printcolumn(
        name = "Project",
        type_ = "string",
        json_path = ".spec.owner.projectName"
    ),
    printcolumn(
        name = "Resource",
        type_ = "string",
        json_path = ".spec.owner.resourceName"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "ResourceRelease spec is immutable"}]))]
pub struct ResourceReleaseSpec {
    pub owner: BindingOwner,
    pub resource_type: ReleasedType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "raw")]
    pub parameters: Option<Value>,
}

/// The type a release was cut from, with a full copy of its spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ReleasedType {
    #[serde(default = "default_type_kind")]
    #[schemars(schema_with = "type_kind")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub spec: ResourceTypeTemplate,
}

/// A deployment target within a namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "Environment",
    namespaced,
    status = "ObservedStatus",
    shortname = "env",
    shortname = "envs"
)]
#[serde(transparent)]
pub struct EnvironmentSpec(pub serde_json::Map<String, Value>);

schema_from!(EnvironmentSpec, environment_spec);

/// A group of Resources owned by one team.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "openchoreo.dev",
    version = "v1alpha1",
    kind = "Project",
    namespaced,
    status = "ObservedStatus",
    shortname = "proj",
    shortname = "projs"
)]
#[serde(transparent)]
pub struct ProjectSpec(pub serde_json::Map<String, Value>);

schema_from!(ProjectSpec, project_spec);

/// The status of the kinds bindguard only reads: whatever their controllers write, kept as is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct ObservedStatus(pub serde_json::Map<String, Value>);

free_form_schema!(ObservedStatus);
