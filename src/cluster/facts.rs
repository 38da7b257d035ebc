//! What the view keeps of each watched kind, and how it reads an object from the API server.
//!
//! An object arrives as raw JSON. Only the fields the rules read are decoded; every other field
//! (free-form parameters, managed fields, whole Promise specs) is skipped by serde_json without
//! recursion, so its depth and shape never matter. An object whose kept fields do not decode
//! (a value of the wrong type, nesting past serde_json's limit of 128) becomes [`Seen::Unreadable`]:
//! its name and uid are kept and the watch goes on.

use crate::crd::*;
use crate::kinds::Kind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// A kind the view watches: the parts of it the rules read, and how to rebuild it from them.
pub trait Watched:
    kube::Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static
{
    /// The kept part of `spec`; unknown fields are skipped.
    type Spec: DeserializeOwned + Default;
    /// The kept part of `status`, or [`IgnoredAny`] when the rules read none of it.
    type Status: DeserializeOwned;
    fn assemble(metadata: ObjectMeta, spec: Self::Spec, status: Option<Self::Status>) -> Self;
    /// Its entry in the registry of kinds.
    const KIND: Kind;
    /// Whether rules read this kind's labels; other kinds' labels are not kept.
    const KEEPS_LABELS: bool = false;
    /// The key lookups find this object by without a scan ([`super::Index`]), if any.
    fn lookup_key(&self) -> Option<String> {
        None
    }
}

/// One object as a watch delivers it.
#[derive(Clone, Debug)]
pub enum Seen<K> {
    Readable(K),
    /// Its facts could not be decoded: only its identity is known.
    Unreadable {
        metadata: Box<ObjectMeta>,
        reason: String,
    },
}

impl<K: Watched> Seen<K> {
    /// Decodes one object from its JSON text; never fails.
    pub fn read(json: &str) -> Self {
        let mut de = serde_json::Deserializer::from_str(json);
        match serde_path_to_error::deserialize::<_, Facts<K>>(&mut de) {
            Ok(mut facts) => {
                if !K::KEEPS_LABELS {
                    facts.metadata.labels = None;
                }
                Seen::Readable(K::assemble(facts.metadata.into(), facts.spec, facts.status))
            }
            Err(error) => Seen::Unreadable {
                metadata: Box::new(identity(json)),
                reason: describe(&error),
            },
        }
    }

    /// The object itself, or a placeholder carrying only its identity.
    pub fn into_object(self) -> K {
        match self {
            Seen::Readable(object) => object,
            Seen::Unreadable { metadata, .. } => K::assemble(*metadata, K::Spec::default(), None),
        }
    }
}

impl<'de, K: Watched> Deserialize<'de> for Seen<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Capturing the raw text is iterative in serde_json: no depth limit, no recursion.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Seen::read(raw.get()))
    }
}

impl<K: Watched> kube::Resource for Seen<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Seen::Readable(object) => object.meta(),
            Seen::Unreadable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Seen::Readable(object) => object.meta_mut(),
            Seen::Unreadable { metadata, .. } => metadata,
        }
    }
}

/// The kept parts of one object.
#[derive(Deserialize)]
#[serde(bound = "")]
struct Facts<K: Watched> {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: K::Spec,
    #[serde(default)]
    status: Option<K::Status>,
}

/// The metadata the rules read: identity, generation, labels and deletion. The watcher resumes
/// from the last object's resourceVersion, so it is kept while an object passes through; of
/// the compact records in the view ([`super::targets`]) only a binding's keeps it (the loop's
/// writes are conditional on it).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    finalizers: Option<Vec<String>>,
    deletion_timestamp: Option<Time>,
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> Self {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            labels: m.labels,
            finalizers: m.finalizers,
            deletion_timestamp: m.deletion_timestamp,
            ..ObjectMeta::default()
        }
    }
}

/// Name, namespace, uid and resourceVersion, from an object nothing else could be read of.
pub fn identity(json: &str) -> ObjectMeta {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Identity {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
    }
    #[derive(Deserialize)]
    struct Object {
        metadata: Identity,
    }
    let Ok(Object { metadata: m }) = serde_json::from_str::<Object>(json) else {
        return ObjectMeta::default();
    };
    ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        ..ObjectMeta::default()
    }
}

/// Where and why decoding failed, without the object's values (they may be secret).
fn describe(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    const MAX_PATH: usize = 100;
    let mut path = error.path().to_string();
    if path.chars().count() > MAX_PATH {
        path = path.chars().take(MAX_PATH).chain(['…']).collect();
    }
    let message = error.inner().to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    let why = if message.starts_with("recursion limit exceeded") {
        "nested more than 128 levels deep".to_string()
    } else if let Some((_, expected)) = message.split_once(", expected ") {
        format!("expected {expected}")
    } else if message.starts_with("missing field") {
        message.to_string()
    } else {
        "unexpected shape".to_string()
    };
    format!("{path}: {why}")
}

/// The kept part of a ResourceType, ClusterResourceType or release snapshot: its parameters
/// schema and resource templates are never read.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFacts {
    environment_configs: Option<SchemaSection>,
    retain_policy: Option<String>,
    #[serde(default)]
    outputs: Vec<OutputTemplate>,
}

impl From<TemplateFacts> for ResourceTypeTemplate {
    fn from(t: TemplateFacts) -> Self {
        let environment_configs = t.environment_configs.map(|section| SchemaSection {
            open_api_v3_schema: section.open_api_v3_schema.map(super::schemas::shared),
        });
        ResourceTypeTemplate {
            parameters: None,
            environment_configs,
            retain_policy: t.retain_policy,
            outputs: t.outputs,
            resources: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ResourceFacts {
    owner: ResourceOwner,
    #[serde(rename = "type")]
    type_: TypeRef,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseFacts {
    owner: BindingOwner,
    resource_type: ReleasedTypeFacts,
}

#[derive(Deserialize, Default)]
pub struct ReleasedTypeFacts {
    #[serde(default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    spec: TemplateFacts,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BindingFacts {
    owner: BindingOwner,
    environment: String,
    resource_release: Option<String>,
    retain_policy: Option<String>,
    /// Captured as text (no depth limit); parsed once the binding is assembled.
    resource_type_environment_configs: Option<Box<RawValue>>,
}

/// A binding's status as the loop reads it: its conditions, whatever their shape. Anything that
/// is not a condition list, or a field of the wrong type, reads as absent, so a binding never
/// becomes unreadable for its status.
pub struct BindingStatusFacts(Vec<Condition>);

impl<'de> Deserialize<'de> for BindingStatusFacts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Status {
            conditions: Option<Box<RawValue>>,
        }
        // Captured whole first: any JSON value is, so the object around it reads on.
        let status = Option::<Box<RawValue>>::deserialize(deserializer)?;
        let Some(raw) = status
            .and_then(|s| serde_json::from_str::<Status>(s.get()).ok())
            .and_then(|s| s.conditions)
        else {
            return Ok(BindingStatusFacts(Vec::new()));
        };
        if let Ok(conditions) = serde_json::from_str(raw.get()) {
            return Ok(BindingStatusFacts(conditions));
        }
        let listed: Vec<Box<RawValue>> = serde_json::from_str(raw.get()).unwrap_or_default();
        let lenient = listed.iter().map(|raw| lenient_condition(raw.get()));
        Ok(BindingStatusFacts(lenient.collect()))
    }
}

/// One condition, each field read alone: a field of the wrong type is empty.
fn lenient_condition(json: &str) -> Condition {
    let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_str(json).unwrap_or_default();
    let text = |key: &str| {
        fields
            .get(key)
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    };
    Condition {
        type_: text("type").unwrap_or_default(),
        status: text("status").unwrap_or_default(),
        reason: text("reason").unwrap_or_default(),
        message: text("message").unwrap_or_default(),
        last_transition_time: text("lastTransitionTime"),
        observed_generation: fields
            .get("observedGeneration")
            .and_then(|raw| serde_json::from_str(raw.get()).ok()),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionFacts {
    promise_ref: NameRef,
    #[serde(default)]
    version: String,
}

impl Watched for Environment {
    const KIND: Kind = Kind::Environment;
    type Spec = IgnoredAny;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, _: IgnoredAny, _: Option<IgnoredAny>) -> Self {
        let spec = EnvironmentSpec::default();
        Environment {
            metadata,
            spec,
            status: None,
        }
    }
}

impl Watched for Project {
    const KIND: Kind = Kind::Project;
    type Spec = IgnoredAny;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, _: IgnoredAny, _: Option<IgnoredAny>) -> Self {
        let spec = ProjectSpec::default();
        Project {
            metadata,
            spec,
            status: None,
        }
    }
}

/// Only a Promise's labels and deletion are read; its spec is copied by the loop, not the view.
impl Watched for Promise {
    const KIND: Kind = Kind::Promise;
    const KEEPS_LABELS: bool = true;
    type Spec = IgnoredAny;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, _: IgnoredAny, _: Option<IgnoredAny>) -> Self {
        let spec = PromiseSpec::default();
        let status = None;
        Promise {
            metadata,
            spec,
            status,
        }
    }
}

impl Watched for Resource {
    const KIND: Kind = Kind::Resource;
    type Spec = ResourceFacts;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, spec: ResourceFacts, _: Option<IgnoredAny>) -> Self {
        let spec = ResourceSpec {
            owner: spec.owner,
            type_: spec.type_,
            parameters: None,
        };
        Resource {
            metadata,
            spec,
            status: None,
        }
    }
}

impl Watched for ResourceType {
    const KIND: Kind = Kind::ResourceType;
    type Spec = TemplateFacts;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, spec: TemplateFacts, _: Option<IgnoredAny>) -> Self {
        let template = spec.into();
        ResourceType {
            metadata,
            spec: ResourceTypeSpec { template },
            status: None,
        }
    }
}

impl Watched for ClusterResourceType {
    const KIND: Kind = Kind::ClusterResourceType;
    type Spec = TemplateFacts;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, spec: TemplateFacts, _: Option<IgnoredAny>) -> Self {
        let template = spec.into();
        ClusterResourceType {
            metadata,
            spec: ClusterResourceTypeSpec { template },
            status: None,
        }
    }
}

impl Watched for ResourceRelease {
    const KIND: Kind = Kind::ResourceRelease;
    type Spec = ReleaseFacts;
    type Status = IgnoredAny;
    fn assemble(metadata: ObjectMeta, spec: ReleaseFacts, _: Option<IgnoredAny>) -> Self {
        let released = spec.resource_type;
        let resource_type = ReleasedType {
            kind: released
                .kind
                .unwrap_or_else(|| KIND_RESOURCE_TYPE.to_string()),
            name: released.name,
            spec: released.spec.into(),
        };
        ResourceRelease {
            metadata,
            spec: ResourceReleaseSpec {
                owner: spec.owner,
                resource_type,
                parameters: None,
            },
            status: None,
        }
    }
}

impl ResourceReleaseBinding {
    /// The index key of the bindings in `namespace` of `resource` to `environment`.
    pub fn target_key(namespace: &str, resource: &str, environment: &str) -> String {
        format!("{namespace}\0{resource}\0{environment}")
    }
}

impl Watched for ResourceReleaseBinding {
    const KIND: Kind = Kind::ResourceReleaseBinding;
    type Spec = BindingFacts;
    type Status = BindingStatusFacts;
    fn assemble(
        metadata: ObjectMeta,
        spec: BindingFacts,
        status: Option<BindingStatusFacts>,
    ) -> Self {
        // Configs nested past serde_json's limit are not kept: admission refuses such a
        // binding, and the loop then checks no configs of it.
        let configs = spec.resource_type_environment_configs;
        let spec = ResourceReleaseBindingSpec {
            owner: spec.owner,
            environment: spec.environment,
            resource_release: spec.resource_release,
            retain_policy: spec.retain_policy,
            resource_type_environment_configs: configs
                .and_then(|raw| serde_json::from_str(raw.get()).ok()),
        };
        let conditions = status.map(|s| s.0).unwrap_or_default();
        ResourceReleaseBinding {
            metadata,
            spec,
            status: Some(ResourceReleaseBindingStatus {
                conditions,
                outputs: Vec::new(),
            }),
        }
    }
}

impl Watched for PromiseRevision {
    const KIND: Kind = Kind::PromiseRevision;
    const KEEPS_LABELS: bool = true;
    type Spec = RevisionFacts;
    type Status = PromiseRevisionStatus;
    /// Its Promise: what a loop keyed by Promise needs of a revision, deleted or not.
    fn lookup_key(&self) -> Option<String> {
        Some(self.spec.promise_ref.name.clone())
    }
    fn assemble(
        metadata: ObjectMeta,
        spec: RevisionFacts,
        status: Option<PromiseRevisionStatus>,
    ) -> Self {
        let spec = PromiseRevisionSpec {
            promise_ref: spec.promise_ref,
            promise_spec: None,
            version: spec.version,
        };
        PromiseRevision {
            metadata,
            spec,
            status,
        }
    }
}

impl ResourceBinding {
    /// The index key of the bindings in `namespace` of `promise`'s request `resource`.
    pub fn request_key(namespace: &str, promise: &str, resource: &str) -> String {
        format!("{namespace}\0{promise}\0{resource}")
    }

    /// `(namespace, promise, resource)` of a [`ResourceBinding::request_key`].
    pub fn request_of(key: &str) -> Option<(&str, &str, &str)> {
        let mut parts = key.splitn(3, '\0');
        Some((parts.next()?, parts.next()?, parts.next()?))
    }
}

impl Watched for ResourceBinding {
    const KIND: Kind = Kind::ResourceBinding;
    type Spec = ResourceBindingSpec;
    type Status = IgnoredAny;
    fn lookup_key(&self) -> Option<String> {
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        let spec = &self.spec;
        Some(Self::request_key(
            namespace,
            &spec.promise_ref.name,
            &spec.resource_ref.name,
        ))
    }
    fn assemble(metadata: ObjectMeta, spec: ResourceBindingSpec, _: Option<IgnoredAny>) -> Self {
        ResourceBinding {
            metadata,
            spec,
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectList;
    use kube::core::WatchEvent;
    use serde_json::json;

    /// `{"a": {"a": ... 1}}`, `depth` objects deep.
    fn nested(depth: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
    }

    fn resource(name: &str, owner: &str, parameters: &str) -> String {
        format!(
            r#"{{"apiVersion":"openchoreo.dev/v1alpha1","kind":"Resource",
                "metadata":{{"name":"{name}","namespace":"ns","uid":"u-{name}","resourceVersion":"7",
                  "managedFields":[{{"manager":"kubectl","fieldsV1":{{"f:spec":{parameters}}}}}]}},
                "spec":{{"owner":{{"projectName":{owner}}},"type":{{"name":"postgres"}},"parameters":{parameters}}}}}"#
        )
    }

    #[test]
    fn deep_fields_the_rules_never_read_are_skipped_at_any_depth() {
        let seen = Seen::<Resource>::read(&resource("deep", "\"doclet\"", &nested(100_000)));
        let Seen::Readable(resource) = seen else {
            panic!("must be readable: {seen:?}");
        };
        assert_eq!(resource.spec.owner.project_name, "doclet");
        assert_eq!(resource.spec.type_.kind, KIND_RESOURCE_TYPE);
        assert_eq!(resource.spec.parameters, None);
        assert_eq!(resource.metadata.managed_fields, None);
        assert_eq!(resource.metadata.uid.as_deref(), Some("u-deep"));
        assert_eq!(
            seen_resource_version(&Seen::Readable(resource)),
            Some("7"),
            "the watcher resumes from it"
        );
    }

    #[test]
    fn a_binding_reads_whatever_its_status_and_configs_hold() {
        let binding = |configs: &str, status: &str| {
            let text = format!(
                r#"{{"metadata":{{"name":"b","namespace":"ns"}},"spec":{{"owner":{{"projectName":"p",
                    "resourceName":"r"}},"environment":"dev","resourceTypeEnvironmentConfigs":{configs}}},
                    "status":{status}}}"#
            );
            match Seen::<ResourceReleaseBinding>::read(&text) {
                Seen::Readable(b) => b,
                unreadable => panic!("{configs} {status}: {unreadable:?}"),
            }
        };
        let conditions = |b: &ResourceReleaseBinding| b.status.clone().unwrap().conditions;
        for status in [
            r#""x""#,
            "[1]",
            r#"{"conditions":"x"}"#,
            "null",
            &nested(1000),
        ] {
            let b = binding("{}", status);
            assert!(conditions(&b).is_empty(), "{status}");
            assert_eq!(b.spec.environment, "dev");
        }
        let odd = r#"{"conditions":[{"type":"Synced","status":true,"lastTransitionTime":7},
                      {"type":"Ready","status":"True","observedGeneration":3,"extra":{}}]}"#;
        let b = binding(r#"{"replicas":2}"#, odd);
        let [synced, ready] = conditions(&b).try_into().expect("two conditions");
        assert_eq!(
            (synced.type_.as_str(), synced.status.as_str()),
            ("Synced", "")
        );
        assert_eq!(synced.last_transition_time, None);
        assert_eq!(
            (ready.status.as_str(), ready.observed_generation),
            ("True", Some(3))
        );
        assert_eq!(
            b.spec.resource_type_environment_configs,
            Some(json!({"replicas": 2}))
        );
        let deep = binding(&nested(100_000), "{}");
        assert_eq!(deep.spec.resource_type_environment_configs, None);
    }

    fn seen_resource_version(seen: &Seen<Resource>) -> Option<&str> {
        kube::Resource::meta(seen).resource_version.as_deref()
    }

    #[test]
    fn a_read_field_of_the_wrong_type_keeps_only_the_identity_and_no_value() {
        let seen = Seen::<Resource>::read(&resource("odd", r#"["s3cr3t"]"#, "{}"));
        let Seen::Unreadable { metadata, reason } = seen else {
            panic!("must be unreadable: {seen:?}");
        };
        assert_eq!(metadata.name.as_deref(), Some("odd"));
        assert_eq!(metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(metadata.uid.as_deref(), Some("u-odd"));
        assert_eq!(metadata.resource_version.as_deref(), Some("7"));
        assert!(
            reason.starts_with("spec.owner.projectName: expected"),
            "{reason}"
        );
        assert!(!reason.contains("s3cr3t"), "{reason}");
    }

    #[test]
    fn a_kept_schema_nested_too_deep_makes_the_type_unreadable() {
        let schema = nested(150);
        let json = format!(
            r#"{{"metadata":{{"name":"deep","namespace":"ns"}},
                "spec":{{"environmentConfigs":{{"openAPIV3Schema":{schema}}}}}}}"#
        );
        let Seen::Unreadable { reason, .. } = Seen::<ResourceType>::read(&json) else {
            panic!("must be unreadable");
        };
        assert!(
            reason.ends_with(": nested more than 128 levels deep"),
            "{reason}"
        );
        assert!(reason.chars().count() < 160, "{reason}");
        let shallow = json.replace(&schema, &nested(20));
        let Seen::Readable(found) = Seen::<ResourceType>::read(&shallow) else {
            panic!("a 20-deep schema is readable");
        };
        assert!(found.spec.template.environment_configs_schema().is_some());
    }

    #[test]
    fn one_unreadable_item_never_fails_a_list_page_or_a_watch_event() {
        let good = resource("good", "\"doclet\"", &nested(150));
        let bad = resource("bad", "12", &nested(150));
        let page = format!(
            r#"{{"apiVersion":"v1","kind":"ResourceList","metadata":{{"resourceVersion":"9"}},"items":[{good},{bad}]}}"#
        );
        let list: ObjectList<Seen<Resource>> = serde_json::from_str(&page).unwrap();
        assert!(matches!(list.items[0], Seen::Readable(_)));
        assert!(matches!(list.items[1], Seen::Unreadable { .. }));
        let line = format!(r#"{{"type":"MODIFIED","object":{bad}}}"#);
        let event: WatchEvent<Seen<Resource>> = serde_json::from_str(&line).unwrap();
        let WatchEvent::Modified(Seen::Unreadable { metadata, .. }) = event else {
            panic!("must be an unreadable MODIFIED");
        };
        assert_eq!(metadata.name.as_deref(), Some("bad"));
    }

    #[test]
    fn kept_facts_match_a_full_decode_of_every_kind() {
        let revision = json!({"metadata": {"name": "redis-v1", "labels": {"kratix.io/latest-revision": "true"}},
            "spec": {"promiseRef": {"name": "redis"}, "version": "v1", "promiseSpec": {"api": {}}},
            "status": {"latest": true}});
        let Seen::Readable(read) = Seen::<PromiseRevision>::read(&revision.to_string()) else {
            panic!("readable");
        };
        assert_eq!(read.spec.version, "v1");
        assert_eq!(read.spec.promise_ref.name, "redis");
        assert!(read.status.is_some_and(|s| s.latest));
        assert!(read.metadata.labels.is_some());
        let release = json!({"metadata": {"name": "pg-r1", "namespace": "ns", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"owner": {"projectName": "p", "resourceName": "pg"}, "parameters": {"x": 1},
                     "resourceType": {"name": "postgres", "spec": {"retainPolicy": "Retain", "resources": [{"a": 1}],
                        "outputs": [{"name": "password", "secretKeyRef": {"name": "s", "key": "k"}}]}}}});
        let Seen::Readable(read) = Seen::<ResourceRelease>::read(&release.to_string()) else {
            panic!("readable");
        };
        let template = &read.spec.resource_type.spec;
        assert_eq!(template.retain_policy.as_deref(), Some("Retain"));
        assert!(
            template
                .output("password")
                .is_some_and(|o| o.secret_key_ref.is_some())
        );
        assert!(template.resources.is_empty());
        assert_eq!(read.spec.resource_type.kind, KIND_RESOURCE_TYPE);
        assert!(read.metadata.deletion_timestamp.is_some());
    }
}
