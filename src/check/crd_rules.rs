//! What the API server itself refuses before any webhook sees an object: the structural schema
//! of our CRDs (required fields, enums, types, lengths) and their CEL rules. No API server is
//! involved in `bindguard check`, so these are applied here.
//!
//! The schema is read by [`crate::schema`] (Kubernetes' OpenAPI dialect). CEL is not
//! interpreted: only the rule shapes our CRDs use are understood ([`Shape`]); a test fails when
//! a CRD gains a rule outside them.

use crate::schema::EnvConfigSchema;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use std::collections::HashMap;

/// One step from a schema to a nested one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// Every item of an array.
    Each,
}

/// The CEL rule shapes our CRDs use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `self == oldSelf`: the value never changes once set.
    Immutable,
    /// `(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) ... == n`: exactly `n` of the fields set.
    PresentCount { fields: Vec<String>, equals: usize },
    /// `!has(oldSelf.f) || oldSelf.f == self.f`: field `f` never changes once set.
    ImmutableOnceSet { field: String },
}

/// One `x-kubernetes-validations` entry found in a CRD schema.
#[derive(Debug, Clone)]
pub struct CelRule {
    pub path: Vec<Step>,
    pub rule: String,
    pub message: String,
    /// `None` when the rule is not one of the understood shapes.
    pub shape: Option<Shape>,
}

struct KindRules {
    namespaced: bool,
    schema: Result<EnvConfigSchema, String>,
    cel: Vec<CelRule>,
}

/// The CRD-level rules of every kind bindguard ships, keyed by group and kind.
pub struct CrdRules {
    kinds: HashMap<(String, String), KindRules>,
}

impl Default for CrdRules {
    fn default() -> Self {
        Self::new()
    }
}

impl CrdRules {
    pub fn new() -> Self {
        let kinds = crate::crd::all().iter().map(kind_rules).collect();
        CrdRules { kinds }
    }

    /// Whether `group`/`kind` is namespaced; `None` for kinds that are not ours.
    pub fn namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        Some(self.get(group, kind)?.namespaced)
    }

    /// Every CEL rule of every kind, for tests and docs.
    pub fn cel_rules(&self) -> impl Iterator<Item = (&str, &CelRule)> {
        self.kinds
            .iter()
            .flat_map(|((_, kind), rules)| rules.cel.iter().map(move |r| (kind.as_str(), r)))
    }

    fn get(&self, group: &str, kind: &str) -> Option<&KindRules> {
        self.kinds.get(&(group.to_string(), kind.to_string()))
    }

    /// What the API server refuses in writing `new` over `old` (`None` on CREATE); one line per
    /// refusal, in the API server's `field: Invalid value: ...: message` style.
    pub fn refusals(
        &self,
        group: &str,
        kind: &str,
        new: &Value,
        old: Option<&Value>,
    ) -> Vec<String> {
        let Some(rules) = self.get(group, kind) else {
            return Vec::new();
        };
        let mut refused = schema_refusals(&rules.schema, new);
        for rule in &rules.cel {
            refused.extend(cel_refusals(rule, new, old));
        }
        refused
    }
}

fn kind_rules(crd: &CustomResourceDefinition) -> ((String, String), KindRules) {
    let key = (crd.spec.group.clone(), crd.spec.names.kind.clone());
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Bool(true));
    let mut cel = Vec::new();
    collect_cel(&schema, &mut Vec::new(), &mut cel);
    let rules = KindRules {
        namespaced: crd.spec.scope == "Namespaced",
        schema: EnvConfigSchema::compile(&schema).map_err(|e| e.to_string()),
        cel,
    };
    (key, rules)
}

/// Finds every `x-kubernetes-validations` entry under `schema`, with its path.
pub fn collect_cel(schema: &Value, path: &mut Vec<Step>, into: &mut Vec<CelRule>) {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    for entry in rules.into_iter().flatten() {
        let rule = entry
            .get("rule")
            .and_then(Value::as_str)
            .unwrap_or_default();
        into.push(CelRule {
            path: path.clone(),
            rule: rule.to_string(),
            message: entry
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or(rule)
                .to_string(),
            shape: shape(rule),
        });
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, sub) in properties {
            path.push(Step::Key(key.clone()));
            collect_cel(sub, path, into);
            path.pop();
        }
    }
    if let Some(items) = schema.get("items") {
        path.push(Step::Each);
        collect_cel(items, path, into);
        path.pop();
    }
}

/// The shape of a CEL rule, when it is one bindguard understands.
pub fn shape(rule: &str) -> Option<Shape> {
    let compact: String = rule.split_whitespace().collect();
    if compact == "self==oldSelf" {
        return Some(Shape::Immutable);
    }
    if let Some(field) = immutable_once_set(&compact) {
        return Some(Shape::ImmutableOnceSet { field });
    }
    let (sum, equals) = compact.rsplit_once("==")?;
    let equals = equals.parse().ok()?;
    let fields = sum
        .split('+')
        .map(|term| {
            term.strip_prefix("(has(self.")?
                .strip_suffix(")?1:0)")
                .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .map(str::to_string)
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Shape::PresentCount { fields, equals })
}

fn immutable_once_set(compact: &str) -> Option<String> {
    let rest = compact.strip_prefix("!has(oldSelf.")?;
    let (field, rest) = rest.split_once(")||")?;
    let simple = !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (simple && rest == format!("oldSelf.{field}==self.{field}")).then(|| field.to_string())
}

fn schema_refusals(schema: &Result<EnvConfigSchema, String>, object: &Value) -> Vec<String> {
    match schema {
        Ok(schema) => schema
            .validate(object)
            .iter()
            .map(|v| format!("{}: Invalid value: {}", v.field(""), v.message))
            .collect(),
        Err(error) => vec![format!(
            "the CRD schema could not be read by bindguard: {error}"
        )],
    }
}

/// The values at `path` in `value`, with their field paths.
fn values_at<'v>(value: &'v Value, path: &[Step]) -> Vec<(String, &'v Value)> {
    let mut found = vec![(String::new(), value)];
    for step in path {
        found = found
            .into_iter()
            .flat_map(|(field, v)| match step {
                Step::Key(key) => v
                    .get(key)
                    .filter(|v| !v.is_null())
                    .map(|v| (join(&field, key), v))
                    .into_iter()
                    .collect::<Vec<_>>(),
                Step::Each => v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, v)| (format!("{field}[{i}]"), v))
                    .collect(),
            })
            .collect();
    }
    found
}

fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn cel_refusals(rule: &CelRule, new: &Value, old: Option<&Value>) -> Vec<String> {
    let fields = match (&rule.shape, old) {
        (Some(Shape::Immutable), Some(old)) => changed_fields(&rule.path, new, old),
        (Some(Shape::PresentCount { fields, equals }), _) => {
            miscounted(&rule.path, fields, *equals, new)
        }
        (Some(Shape::ImmutableOnceSet { field }), Some(old)) => {
            let mut path = rule.path.clone();
            path.push(Step::Key(field.clone()));
            changed_once_set(&path, new, old)
        }
        _ => Vec::new(),
    };
    fields
        .into_iter()
        .map(|field| format!("{field}: Invalid value: \"object\": {}", rule.message))
        .collect()
}

/// Where a transition rule `self == oldSelf` fails: set before and after, and changed. Like
/// the API server, list items are not correlated (our CRDs put no such rule under a list).
fn changed_fields(path: &[Step], new: &Value, old: &Value) -> Vec<String> {
    if path.contains(&Step::Each) {
        return Vec::new();
    }
    match (values_at(new, path).first(), values_at(old, path).first()) {
        (Some((field, now)), Some((_, was))) if now != was => vec![field.clone()],
        _ => Vec::new(),
    }
}

/// Where a field that was set is now different (removed or changed).
fn changed_once_set(path: &[Step], new: &Value, old: &Value) -> Vec<String> {
    if path.contains(&Step::Each) {
        return Vec::new();
    }
    let Some((field, was)) = values_at(old, path).into_iter().next() else {
        return Vec::new();
    };
    match values_at(new, path).first() {
        Some((_, now)) if *now == was => Vec::new(),
        _ => vec![field],
    }
}

/// Where the number of `fields` set is not `equals`.
fn miscounted(path: &[Step], fields: &[String], equals: usize, new: &Value) -> Vec<String> {
    let set = |v: &Value| {
        fields
            .iter()
            .filter(|f| v.get(f.as_str()).is_some_and(|x| !x.is_null()))
            .count()
    };
    values_at(new, path)
        .into_iter()
        .filter(|(_, v)| set(v) != equals)
        .map(|(field, _)| field)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_cel_rule_of_our_crds_is_understood() {
        let rules = CrdRules::new();
        let mut seen = 0;
        for (kind, rule) in rules.cel_rules() {
            assert!(
                rule.shape.is_some(),
                "{kind}: CEL rule {:?} is not understood by `bindguard check`; teach src/check/crd_rules.rs its shape",
                rule.rule
            );
            seen += 1;
        }
        assert!(seen >= 5, "the CRDs' CEL rules were not found ({seen})");
    }

    #[test]
    fn shapes() {
        assert_eq!(shape(" self == oldSelf "), Some(Shape::Immutable));
        let one = "(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) == 1";
        let fields = vec!["a".to_string(), "b".to_string()];
        assert_eq!(shape(one), Some(Shape::PresentCount { fields, equals: 1 }));
        let once = "!has(oldSelf.dataPlaneRef) || oldSelf.dataPlaneRef == self.dataPlaneRef";
        let field = "dataPlaneRef".to_string();
        assert_eq!(shape(once), Some(Shape::ImmutableOnceSet { field }));
        assert_eq!(shape("!has(oldSelf.a) || oldSelf.b == self.b"), None);
        assert_eq!(shape("self.size() < 3"), None);
        assert_eq!(shape("self != oldSelf"), None);
    }

    fn rrb(owner_project: &str, environment: Value) -> Value {
        json!({"apiVersion": "openchoreo.dev/v1alpha1", "kind": "ResourceReleaseBinding",
               "metadata": {"name": "b", "namespace": "default"},
               "spec": {"owner": {"projectName": owner_project, "resourceName": "r"}, "environment": environment}})
    }

    #[test]
    fn immutable_fields_are_refused_on_update_only() {
        let rules = CrdRules::new();
        let (group, kind) = ("openchoreo.dev", "ResourceReleaseBinding");
        let old = rrb("doclet", json!("dev"));
        assert!(
            rules
                .refusals(group, kind, &rrb("billing", json!("dev")), None)
                .is_empty()
        );
        let refused = rules.refusals(group, kind, &rrb("billing", json!("dev")), Some(&old));
        assert_eq!(
            refused,
            ["spec.owner: Invalid value: \"object\": spec.owner is immutable"]
        );
        assert!(rules.refusals(group, kind, &old, Some(&old)).is_empty());
    }

    #[test]
    fn a_data_plane_ref_once_set_stays() {
        let rules = CrdRules::new();
        let env = |spec: Value| {
            json!({"apiVersion": "openchoreo.dev/v1alpha1", "kind": "Environment",
                                       "metadata": {"name": "dev", "namespace": "default"}, "spec": spec})
        };
        let (group, kind) = ("openchoreo.dev", "Environment");
        let set = env(json!({"dataPlaneRef": {"kind": "DataPlane", "name": "a"}}));
        let moved = env(json!({"dataPlaneRef": {"kind": "DataPlane", "name": "b"}}));
        assert!(
            rules
                .refusals(group, kind, &set, Some(&env(json!({}))))
                .is_empty()
        );
        assert!(rules.refusals(group, kind, &set, Some(&set)).is_empty());
        let refused = rules.refusals(group, kind, &moved, Some(&set));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("dataPlaneRef is immutable once set"),
            "{refused:?}"
        );
        assert_eq!(
            rules
                .refusals(group, kind, &env(json!({})), Some(&set))
                .len(),
            1
        );
    }

    #[test]
    fn schema_types_required_fields_and_enums_are_refused() {
        let rules = CrdRules::new();
        let (group, kind) = ("openchoreo.dev", "ResourceReleaseBinding");
        let mut bad = rrb("", json!(3));
        bad["spec"]["retainPolicy"] = json!("Keep");
        let refused = rules.refusals(group, kind, &bad, None).join("\n");
        for field in [
            "spec.owner.projectName",
            "spec.environment",
            "spec.retainPolicy",
        ] {
            assert!(refused.contains(field), "{field}: {refused}");
        }
        let mut missing = rrb("p", json!("dev"));
        missing["spec"].as_object_mut().unwrap().remove("owner");
        let refused = rules.refusals(group, kind, &missing, None).join("\n");
        assert!(refused.contains("owner"), "{refused}");
    }

    #[test]
    fn outputs_need_exactly_one_source() {
        let rules = CrdRules::new();
        let mut binding = rrb("p", json!("dev"));
        binding["status"] = json!({"outputs": [{"name": "a", "value": "x"}, {"name": "b", "value": "x", "secretKeyRef": {"name": "s", "key": "k"}}]});
        let refused = rules.refusals("openchoreo.dev", "ResourceReleaseBinding", &binding, None);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].starts_with("status.outputs[1]: "), "{refused:?}");
    }
}
