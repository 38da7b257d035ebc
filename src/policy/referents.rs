//! What a ResourceReleaseBinding refers to, looked up once in the cluster view.
//!
//! The admission rules render these facts as refusals and warnings, the reconcile loop as
//! conditions; neither looks them up its own way.

use crate::cluster::ClusterView;
use crate::crd::{
    ClusterResourceType, KIND_CLUSTER_RESOURCE_TYPE, ResourceRelease, ResourceReleaseBinding,
    ResourceType, ResourceTypeTemplate,
};
use crate::schema::{InPlace, Report, SchemaCache, SchemaError};
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use std::sync::Arc;

pub const RETAIN: &str = "Retain";
pub const DELETE: &str = "Delete";

/// The pinned release name, when set and not empty.
pub fn pinned(binding: &ResourceReleaseBinding) -> Option<&str> {
    binding
        .spec
        .resource_release
        .as_deref()
        .filter(|name| !name.is_empty())
}

/// The pinned ResourceRelease, when one is pinned and in the view.
pub fn pinned_release(
    view: &dyn ClusterView,
    namespace: &str,
    binding: &ResourceReleaseBinding,
) -> Option<Arc<ResourceRelease>> {
    pinned(binding).and_then(|name| view.resource_release(namespace, name))
}

/// Where a binding's type comes from: the pinned release's snapshot, or the live type.
pub enum Declaring {
    Release(Arc<ResourceRelease>),
    Type(Arc<ResourceType>),
    ClusterType(Arc<ClusterResourceType>),
}

impl Declaring {
    /// The pinned release when it is known, else the live type of the binding's Resource.
    pub fn find(
        view: &dyn ClusterView,
        namespace: &str,
        binding: &ResourceReleaseBinding,
    ) -> Option<Self> {
        if let Some(release) = pinned_release(view, namespace, binding) {
            return Some(Declaring::Release(release));
        }
        Self::live(view, namespace, binding)
    }

    /// The live ResourceType or ClusterResourceType of the binding's Resource.
    pub fn live(
        view: &dyn ClusterView,
        namespace: &str,
        binding: &ResourceReleaseBinding,
    ) -> Option<Self> {
        let resource = view.resource(namespace, &binding.spec.owner.resource_name)?;
        let type_ref = &resource.spec.type_;
        if type_ref.kind == KIND_CLUSTER_RESOURCE_TYPE {
            let found = view.cluster_resource_type(&type_ref.name)?;
            return Some(Declaring::ClusterType(found));
        }
        let found = view.resource_type(namespace, &type_ref.name)?;
        Some(Declaring::Type(found))
    }

    pub fn template(&self) -> &ResourceTypeTemplate {
        match self {
            Declaring::Release(r) => &r.spec.resource_type.spec,
            Declaring::Type(t) => &t.spec.template,
            Declaring::ClusterType(t) => &t.spec.template,
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Declaring::Release(r) => &r.metadata,
            Declaring::Type(t) => &t.metadata,
            Declaring::ClusterType(t) => &t.metadata,
        }
    }

    /// `ResourceType "postgres"`, for messages.
    pub fn describe(&self) -> String {
        let kind = match self {
            Declaring::Release(_) => "ResourceRelease",
            Declaring::Type(_) => "ResourceType",
            Declaring::ClusterType(_) => "ClusterResourceType",
        };
        format!(
            "{kind} {:?}",
            self.meta().name.as_deref().unwrap_or_default()
        )
    }

    /// `value` checked against the type's environmentConfigs schema (compiled once per distinct
    /// schema, defaults applied first); `None` when the type declares no schema.
    pub fn check(
        &self,
        schemas: &SchemaCache,
        in_place: Option<&InPlace>,
        value: &Value,
    ) -> Option<Result<Report, SchemaError>> {
        let schema = self.template().environment_configs_shared()?;
        Some(schemas.check_shared(schema, value, in_place))
    }
}

/// The outcome of checking environmentConfigs against the binding's type.
pub enum ConfigCheck {
    /// No type, or a type without an environmentConfigs schema, was found.
    NoSchema,
    /// The schema does not compile, or is too costly for these configs.
    BrokenSchema(Declaring, SchemaError),
    /// Checked: the violations (empty when the configs fit), at most 20 kept and all counted.
    Checked(Declaring, Report),
}

/// Checks `configs` (absent = `{}`) against the schema of the binding's type, defaults applied.
pub fn check_configs(
    view: &dyn ClusterView,
    schemas: &SchemaCache,
    in_place: Option<&InPlace>,
    namespace: &str,
    binding: &ResourceReleaseBinding,
) -> ConfigCheck {
    let Some(declaring) = Declaring::find(view, namespace, binding) else {
        return ConfigCheck::NoSchema;
    };
    let empty = json!({});
    let configs = binding
        .spec
        .resource_type_environment_configs
        .as_ref()
        .unwrap_or(&empty);
    match declaring.check(schemas, in_place, configs) {
        None => ConfigCheck::NoSchema,
        Some(Ok(report)) => ConfigCheck::Checked(declaring, report),
        Some(Err(error)) => ConfigCheck::BrokenSchema(declaring, error),
    }
}

/// The retain policy that applies: the binding's, else the pinned release snapshot's type's,
/// else the live ResourceType's or ClusterResourceType's, else Delete. When a referent that could
/// decide it exists but cannot be read, the answer is Retain: an unreadable object never turns
/// into an accidental Delete.
pub fn effective_retain_policy(
    view: &dyn ClusterView,
    namespace: &str,
    binding: &ResourceReleaseBinding,
) -> String {
    let declared = |d: Option<Declaring>| {
        d.and_then(|d| d.template().retain_policy.clone())
            .filter(|p| !p.is_empty())
    };
    binding
        .spec
        .retain_policy
        .clone()
        .filter(|p| !p.is_empty())
        .or_else(|| declared(pinned_release(view, namespace, binding).map(Declaring::Release)))
        .or_else(|| unreadable_decider(view, namespace, binding).then(|| RETAIN.to_string()))
        .or_else(|| declared(Declaring::live(view, namespace, binding)))
        .unwrap_or_else(|| DELETE.to_string())
}

/// Whether the pinned release, the Resource or its type exists but cannot be read.
fn unreadable_decider(
    view: &dyn ClusterView,
    namespace: &str,
    binding: &ResourceReleaseBinding,
) -> bool {
    let release = pinned(binding).is_some_and(|name| {
        view.unreadable("ResourceRelease", namespace, name)
            .is_some()
    });
    let resource_name = &binding.spec.owner.resource_name;
    let resource = view
        .unreadable("Resource", namespace, resource_name)
        .is_some();
    let type_unreadable = view.resource(namespace, resource_name).is_some_and(|r| {
        let type_ref = &r.spec.type_;
        let ns = match type_ref.kind.as_str() {
            KIND_CLUSTER_RESOURCE_TYPE => "",
            _ => namespace,
        };
        view.unreadable(&type_ref.kind, ns, &type_ref.name)
            .is_some()
    });
    release || resource || type_unreadable
}

/// What the loop's Synced condition reads about a binding's referents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The pinned release's owner `(project, resource)`, when one is pinned and found.
    pub release_owner: Option<(String, String)>,
    pub environment: bool,
    /// The owning project of the binding's Resource, when it exists.
    pub resource_project: Option<String>,
    pub project: bool,
    /// environmentConfigs violations against the effective schema, one line each.
    pub config_violations: Vec<String>,
}

/// Looks up every fact the conditions need.
pub fn facts(
    view: &dyn ClusterView,
    schemas: &SchemaCache,
    namespace: &str,
    binding: &ResourceReleaseBinding,
) -> Facts {
    let spec = &binding.spec;
    let release = pinned_release(view, namespace, binding);
    Facts {
        release_owner: release.map(|r| {
            let owner = &r.spec.owner;
            (owner.project_name.clone(), owner.resource_name.clone())
        }),
        environment: view.environment(namespace, &spec.environment).is_some(),
        resource_project: view
            .resource(namespace, &spec.owner.resource_name)
            .map(|r| r.spec.owner.project_name.clone()),
        project: view.project(namespace, &spec.owner.project_name).is_some(),
        config_violations: config_lines(view, schemas, namespace, binding),
    }
}

fn config_lines(
    view: &dyn ClusterView,
    schemas: &SchemaCache,
    namespace: &str,
    binding: &ResourceReleaseBinding,
) -> Vec<String> {
    match check_configs(view, schemas, None, namespace, binding) {
        ConfigCheck::NoSchema => Vec::new(),
        ConfigCheck::BrokenSchema(declaring, error) => vec![format!(
            "the environmentConfigs schema of {} is invalid: {error}",
            declaring.describe()
        )],
        ConfigCheck::Checked(_, report) => report.lines("spec.resourceTypeEnvironmentConfigs"),
    }
}

/// The JSON type of `value`, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Unreadable, Writers, files, object_key, put};
    use serde_json::json;

    fn binding(resource: &str, release: Option<&str>) -> ResourceReleaseBinding {
        files::decode(json!({
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"owner": {"projectName": "p", "resourceName": resource},
                     "environment": "dev", "resourceRelease": release},
        }))
        .unwrap()
    }

    #[test]
    fn an_unreadable_decider_never_turns_into_delete() {
        let (mut writers, view) = Writers::new(0);
        let keeper = json!({"metadata": {"name": "r", "namespace": "ns"},
                            "spec": {"owner": {"projectName": "p"}, "type": {"name": "odd"}}});
        put(&mut writers.resources, files::decode(keeper).unwrap());
        let entry = || Unreadable {
            uid: "u".into(),
            resource_version: "1".into(),
            reason: "nested too deep".into(),
        };
        assert_eq!(
            effective_retain_policy(&view, "ns", &binding("plain", None)),
            DELETE
        );
        view.unreadable
            .record("ResourceType", object_key("ns", "odd"), entry());
        view.unreadable
            .record("Resource", object_key("ns", "deep"), entry());
        view.unreadable
            .record("ResourceRelease", object_key("ns", "rel"), entry());
        for b in [
            binding("r", None),
            binding("deep", None),
            binding("plain", Some("rel")),
        ] {
            assert_eq!(effective_retain_policy(&view, "ns", &b), RETAIN);
        }
        let mut own = binding("deep", None);
        own.spec.retain_policy = Some(DELETE.into());
        assert_eq!(effective_retain_policy(&view, "ns", &own), DELETE);
    }
}
