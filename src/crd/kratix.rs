//! Kratix kinds (`platform.kratix.io/v1alpha1`): Promises, their revisions, and the bindings that
//! pin each resource request to one revision.

// kube's derive repeats `type_` across printcolumn entries, which clippy misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

use super::Condition;
use super::schema_helpers::{conditions, integer, non_empty};
use super::upstream_specs::promise_spec;
use crate::{free_form_schema, schema_from};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const KRATIX_GROUP: &str = "platform.kratix.io";
pub const LABEL_PROMISE_NAME: &str = "kratix.io/promise-name";
pub const LABEL_RESOURCE_NAME: &str = "kratix.io/resource-name";
pub const LABEL_PROMISE_VERSION: &str = "kratix.io/promise-version";
pub const LABEL_LATEST_REVISION: &str = "kratix.io/latest-revision";
pub const REVISION_FINALIZER: &str = "kratix.io/resource-request-cleanup";
pub const REQUEST_FINALIZER: &str = "kratix.io/resource-binding-cleanup";
/// The version of a Promise that carries no version label.
pub const VERSION_NOT_SET: &str = "not-set";
/// The binding version that follows whichever revision is latest.
pub const VERSION_LATEST: &str = "latest";

/// A platform offering. bindguard reads its version label and `spec.api`; the rest is copied
/// into revisions as it is.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "platform.kratix.io",
    version = "v1alpha1",
    kind = "Promise",
    status = "PromiseStatus",
    category = "kratix",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".status.kind"),
    printcolumn(
        name = "API Version",
        type_ = "string",
        json_path = ".status.apiVersion"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message")
)]
#[serde(transparent)]
pub struct PromiseSpec(pub serde_json::Map<String, Value>);

schema_from!(PromiseSpec, promise_spec);

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct PromiseStatus(pub serde_json::Map<String, Value>);

free_form_schema!(PromiseStatus);

impl PromiseSpec {
    /// The CRD the Promise offers to users, as raw JSON.
    pub fn api(&self) -> Option<&Value> {
        self.0.get("api")
    }
}

/// The record of one version of a Promise.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "platform.kratix.io",
    version = "v1alpha1",
    kind = "PromiseRevision",
    status = "PromiseRevisionStatus",
    category = "kratix",
    printcolumn(
        name = "Promise",
        type_ = "string",
        json_path = ".spec.promiseRef.name"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Latest", type_ = "boolean", json_path = ".status.latest")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["promiseRef", "promiseSpec", "version"]))]
pub struct PromiseRevisionSpec {
    pub promise_ref: NameRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "promise_spec")]
    pub promise_spec: Option<Value>,
    #[serde(default)]
    pub version: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromiseRevisionStatus {
    #[serde(default)]
    pub latest: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NameRef {
    #[schemars(schema_with = "non_empty")]
    pub name: String,
}

/// Binds one resource request to the Promise revision it is reconciled at.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "platform.kratix.io",
    version = "v1alpha1",
    kind = "ResourceBinding",
    namespaced,
    status = "ResourceBindingStatus",
    category = "kratix",
    printcolumn(
        name = "Resource",
        type_ = "string",
        json_path = ".spec.resourceRef.name"
    ),
    printcolumn(
        name = "Promise",
        type_ = "string",
        json_path = ".spec.promiseRef.name"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.lastAppliedVersion"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBindingSpec {
    pub promise_ref: NameRef,
    pub resource_ref: ResourceRef,
    #[serde(default)]
    pub version: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ResourceRef {
    #[schemars(schema_with = "non_empty")]
    pub name: String,
    /// Defaulted to the binding's namespace by the mutating webhook.
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "integer")]
    pub generation: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBindingStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
}
