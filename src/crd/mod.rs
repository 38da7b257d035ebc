//! Rust types of every resource bindguard reads or keeps, and the CRDs generated from them.

pub mod kratix;
pub mod openchoreo;
pub(crate) mod schema_helpers;
pub(crate) mod upstream_specs;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use kratix::*;
pub use openchoreo::*;

/// A status condition as Kubernetes conventions describe it.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Every CRD bindguard ships, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Environment::crd(),
        Project::crd(),
        Resource::crd(),
        ResourceType::crd(),
        ClusterResourceType::crd(),
        ResourceRelease::crd(),
        ResourceReleaseBinding::crd(),
        Promise::crd(),
        PromiseRevision::crd(),
        ResourceBinding::crd(),
    ]
}

/// The file name a CRD is kept under in `manifests/base/crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// A CRD as the YAML document kept in `manifests/base/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(crd)?)
}
