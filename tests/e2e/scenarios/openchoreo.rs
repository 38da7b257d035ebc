//! OpenChoreo: ResourceReleaseBinding admission (openchoreo.dev/v1alpha1).

use serde_json::Value;

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(binding_apply_is_allowed_and_persists),
    scenario!(mutating_webhook_sets_binding_labels),
    scenario!(owner_edit_is_refused),
    scenario!(environment_edit_is_refused),
    scenario!(owner_edit_is_refused_by_the_api_server_alone),
];

/// The doclet project: its development Environment, the postgres ResourceType and the
/// doclet-postgres Resource a binding deploys.
const DOCLET: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: Project
metadata:
  name: doclet
spec: {}
---
apiVersion: openchoreo.dev/v1alpha1
kind: Environment
metadata:
  name: development
spec: {}
---
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceType
metadata:
  name: postgres
spec:
  retainPolicy: Delete
  environmentConfigs:
    openAPIV3Schema:
      type: object
      properties:
        memory: {type: string, default: 256Mi}
        adminEnabled: {type: boolean, default: false}
---
apiVersion: openchoreo.dev/v1alpha1
kind: Resource
metadata:
  name: doclet-postgres
spec:
  owner:
    projectName: doclet
  type:
    kind: ResourceType
    name: postgres
"#;

const BINDING: &str = "doclet-postgres-development";

/// A binding of doclet-postgres to development, pending (no release pinned yet).
const DOCLET_BINDING: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceReleaseBinding
metadata:
  name: doclet-postgres-development
spec:
  owner:
    projectName: doclet
    resourceName: doclet-postgres
  environment: development
  resourceTypeEnvironmentConfigs:
    memory: 512Mi
"#;

/// The same binding with labels that contradict its spec.
const MISLABELLED_BINDING: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceReleaseBinding
metadata:
  name: doclet-postgres-development
  labels:
    openchoreo.dev/project: someone-else
    openchoreo.dev/environment: production
spec:
  owner:
    projectName: doclet
    resourceName: doclet-postgres
  environment: development
"#;

/// Creates namespace `ns` holding the doclet project and its binding; returns the stored spec.
fn doclet_with_binding(k: &Kubectl, ns: &str) -> Value {
    k.create_namespace(ns);
    k.apply(ns, DOCLET);
    let out = k.apply(ns, DOCLET_BINDING);
    assert!(
        out.stdout.contains(&format!(
            "resourcereleasebinding.openchoreo.dev/{BINDING} created"
        )),
        "{out}"
    );
    k.get_json("rrb", ns, BINDING)["spec"].clone()
}

/// `kubectl patch --type=merge` of the doclet binding.
fn patch_binding(k: &Kubectl, ns: &str, patch: &str) -> Output {
    k.run(&[
        "patch",
        "rrb",
        BINDING,
        "-n",
        ns,
        "--type=merge",
        "-p",
        patch,
    ])
}

/// A consistent binding is allowed and stored as written, labelled by the mutating webhook.
fn binding_apply_is_allowed_and_persists(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-apply";
    let spec = doclet_with_binding(k, ns);
    assert_eq!(spec["owner"]["projectName"], "doclet");
    assert_eq!(spec["owner"]["resourceName"], "doclet-postgres");
    assert_eq!(spec["environment"], "development");
    assert_eq!(spec["resourceTypeEnvironmentConfigs"]["memory"], "512Mi");
    let labels = k.jsonpath("rrb", ns, BINDING, "{.metadata.labels}");
    assert_binding_labels(&labels);
}

/// The webhook is really called: a server-side dry run of a mislabelled binding comes back
/// with the labels the mutating webhook derives from the spec, bindguard counts the calls of
/// both webhooks, and nothing is stored.
fn mutating_webhook_sets_binding_labels(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("oc-mutate");
    let count = || {
        c.admission_count("ResourceReleaseBinding", "CREATE")
            .expect("read /metrics")
    };
    let before = count();
    let args = [
        "create",
        "--dry-run=server",
        "-n",
        &ns,
        "-f",
        "-",
        "-o",
        "jsonpath={.metadata.labels}",
    ];
    let out = k.run_with_stdin(&args, Some(MISLABELLED_BINDING)).ok();
    assert_binding_labels(&out.stdout);
    assert_eq!(
        count() - before,
        2,
        "one call each to the mutating and the validating webhook"
    );
    let stored = k.run(&["get", "rrb", BINDING, "-n", &ns]);
    assert_denied(
        &stored,
        &format!(r#"resourcereleasebindings.openchoreo.dev "{BINDING}" not found"#),
    );
}

/// `labels` (kubectl's JSON of `.metadata.labels`) carries the project, resource and
/// environment of the doclet binding.
#[track_caller]
fn assert_binding_labels(labels: &str) {
    let labels: Value =
        serde_json::from_str(labels).unwrap_or_else(|e| panic!("labels {labels:?}: {e}"));
    assert_eq!(labels["openchoreo.dev/project"], "doclet", "{labels}");
    assert_eq!(
        labels["openchoreo.dev/resource"], "doclet-postgres",
        "{labels}"
    );
    assert_eq!(
        labels["openchoreo.dev/environment"], "development",
        "{labels}"
    );
}

/// Re-targeting a binding to another project is refused and the stored spec does not change.
/// The CRD's CEL rule answers before the validating webhook is consulted (the API server runs
/// schema validation first), so kubectl shows the CEL message.
fn owner_edit_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-owner";
    let before = doclet_with_binding(k, ns);
    let out = patch_binding(k, ns, r#"{"spec":{"owner":{"projectName":"intruder"}}}"#);
    let line = assert_denied(&out, OWNER_IMMUTABLE);
    assert!(
        line.starts_with(&format!(
            r#"The ResourceReleaseBinding "{BINDING}" is invalid: "#
        )),
        "{line}"
    );
    assert_eq!(k.get_json("rrb", ns, BINDING)["spec"], before);
}

/// Moving a binding to another environment is refused and the stored spec does not change.
fn environment_edit_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-environment";
    let before = doclet_with_binding(k, ns);
    let out = patch_binding(k, ns, r#"{"spec":{"environment":"production"}}"#);
    assert_denied(
        &out,
        r#"spec.environment: Invalid value: "production": spec.environment is immutable"#,
    );
    assert_eq!(k.get_json("rrb", ns, BINDING)["spec"], before);
}

/// With bindguard's webhooks deleted, the API server alone still refuses owner edits (CEL).
fn owner_edit_is_refused_by_the_api_server_alone(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-owner-no-webhooks";
    let before = doclet_with_binding(k, ns);
    c.without_webhooks(|| {
        let out = patch_binding(k, ns, r#"{"spec":{"owner":{"projectName":"intruder"}}}"#);
        assert_denied(&out, OWNER_IMMUTABLE);
        assert_eq!(k.get_json("rrb", ns, BINDING)["spec"], before);
    });
}

/// What kubectl prints when the CRD's CEL rule refuses an owner change.
const OWNER_IMMUTABLE: &str = "spec.owner: Invalid value: spec.owner is immutable";
