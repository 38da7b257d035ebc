//! OpenChoreo: ResourceReleaseBinding admission (openchoreo.dev/v1alpha1).

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::wait::{self, Probe};

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(binding_apply_is_allowed_and_persists),
    scenario!(mutating_webhook_sets_binding_labels),
    scenario!(owner_edit_is_refused),
    scenario!(environment_edit_is_refused),
    scenario!(owner_edit_is_refused_by_the_api_server_alone),
    scenario!(cross_project_binding_is_forbidden),
    scenario!(release_of_another_resource_is_forbidden),
    scenario!(environment_configs_violations_are_listed),
    scenario!(duplicate_binding_is_forbidden),
    scenario!(missing_environment_warns),
    scenario!(deleting_a_retained_binding_warns),
    scenario!(secret_output_literal_is_forbidden),
];

/// The doclet project: its development Environment, the postgres ResourceType and the
/// doclet-postgres Resource a binding deploys.
const DOCLET: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: Project
metadata:
  name: doclet
spec:
  deploymentPipelineRef:
    name: default
  type:
    name: default
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

/// How long the webhook's watch caches may take to see an object just applied.
const CACHE_TIMEOUT: Duration = Duration::from_secs(30);
const DENIED_403: &str = r#"Error from server (Forbidden): admission webhook "validate.bindguard.dev" denied the request: "#;
/// What kubectl prints before a 403 message when `kubectl create -f -` is refused.
const CREATE_DENIED_403: &str = r#"Error from server (Forbidden): error when creating "STDIN": admission webhook "validate.bindguard.dev" denied the request: "#;
const DRY_CREATE: [&str; 3] = ["create", "--dry-run=server", "-f"];

/// Beside DOCLET: the billing project and its Resource, the production Environment and a
/// release of doclet-postgres whose type snapshot retains data and declares a secret output.
const BILLING_AND_RELEASE: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: Project
metadata:
  name: billing
spec:
  deploymentPipelineRef:
    name: default
  type:
    name: default
---
apiVersion: openchoreo.dev/v1alpha1
kind: Environment
metadata:
  name: production
spec: {}
---
apiVersion: openchoreo.dev/v1alpha1
kind: Resource
metadata:
  name: billing-db
spec:
  owner:
    projectName: billing
  type:
    kind: ResourceType
    name: postgres
---
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceRelease
metadata:
  name: doclet-postgres-abc12345
spec:
  owner:
    projectName: doclet
    resourceName: doclet-postgres
  resourceType:
    kind: ResourceType
    name: postgres
    spec:
      retainPolicy: Retain
      outputs:
        - name: host
          value: "${resource.name}.svc"
        - name: password
          secretKeyRef:
            name: "${resource.name}-credentials"
            key: password
"#;

/// Namespace `ns` with DOCLET and BILLING_AND_RELEASE applied.
fn world(k: &Kubectl, ns: &str) {
    k.create_namespace(ns);
    k.apply(ns, DOCLET);
    k.apply(ns, BILLING_AND_RELEASE);
}

/// A binding manifest; `extra` is appended to its spec (indented two spaces).
fn binding_yaml(name: &str, project: &str, resource: &str, env: &str, extra: &str) -> String {
    format!(
        "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: {name}\n\
         spec:\n  owner:\n    projectName: {project}\n    resourceName: {resource}\n  environment: {env}\n{extra}"
    )
}

/// Polls a server-side dry-run create of `yaml` until stderr has a line containing `seen`:
/// the webhook's caches have caught up with what the scenario applied.
fn until_webhook_says(k: &Kubectl, ns: &str, what: &str, yaml: &str, seen: &str) {
    let mut args = DRY_CREATE.to_vec();
    args.extend(["-", "-n", ns]);
    wait::until(what, CACHE_TIMEOUT, || {
        let out = k.run_with_stdin(&args, Some(yaml));
        Ok(match out.stderr_line(seen) {
            Some(_) => Probe::Ready(()),
            None => Probe::NotYet(out.to_string()),
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// `kubectl create -n ns -f -` of `yaml`.
fn create(k: &Kubectl, ns: &str, yaml: &str) -> Output {
    k.run_with_stdin(&["create", "-n", ns, "-f", "-"], Some(yaml))
}

/// Asserts that the binding `name` is not stored in `ns`.
#[track_caller]
fn assert_not_stored(k: &Kubectl, ns: &str, name: &str) {
    let out = k.run(&["get", "rrb", name, "-n", ns]);
    assert_denied(&out, "not found");
}

/// Binding a Resource of another project is refused with 403 whatever the ordering, and nothing
/// is stored; the existing binding of the namespace is unchanged.
fn cross_project_binding_is_forbidden(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-cross-project";
    let before = doclet_with_binding(k, ns);
    k.apply(ns, BILLING_AND_RELEASE);
    let name = "doclet-billing-db-development";
    let yaml = binding_yaml(name, "doclet", "billing-db", "development", "");
    let expected = format!(
        "{CREATE_DENIED_403}ResourceReleaseBinding \"{name}\": spec.owner.projectName is \"doclet\" but \
         Resource \"billing-db\" belongs to project \"billing\"; a binding may only deploy a \
         Resource of its own project: set projectName to \"billing\" or bind a Resource of \
         project \"doclet\""
    );
    until_webhook_says(k, ns, "the webhook to see billing-db", &yaml, &expected);
    let out = create(k, ns, &yaml);
    assert_eq!(assert_denied(&out, &expected), expected);
    assert_not_stored(k, ns, name);
    assert_eq!(k.get_json("rrb", ns, BINDING)["spec"], before);
}

/// Pinning a release of another Resource is refused with 403 in upstream's words.
fn release_of_another_resource_is_forbidden(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-release-owner";
    world(k, ns);
    let name = "billing-db-production";
    let pin = "  resourceRelease: doclet-postgres-abc12345\n";
    let yaml = binding_yaml(name, "billing", "billing-db", "production", pin);
    let expected = format!(
        "{CREATE_DENIED_403}ResourceReleaseBinding \"{name}\": binding owner (project: \"billing\", \
         resource: \"billing-db\") does not match ResourceRelease \"doclet-postgres-abc12345\" \
         owner (project: \"doclet\", resource: \"doclet-postgres\"); pin a release of resource \
         \"billing-db\""
    );
    until_webhook_says(k, ns, "the webhook to see the release", &yaml, &expected);
    let out = create(k, ns, &yaml);
    assert_eq!(assert_denied(&out, &expected), expected);
    assert_not_stored(k, ns, name);
}

/// environmentConfigs that break the type's schema are refused with 422, one line per field.
fn environment_configs_violations_are_listed(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-env-configs";
    world(k, ns);
    let configs = "  resourceTypeEnvironmentConfigs:\n    memory: 512\n    adminEnabled: \"yes\"\n";
    let yaml = binding_yaml(BINDING, "doclet", "doclet-postgres", "development", configs);
    let invalid = format!("The ResourceReleaseBinding \"{BINDING}\" is invalid");
    until_webhook_says(k, ns, "the webhook to see postgres", &yaml, &invalid);
    let out = create(k, ns, &yaml);
    assert_denied(&out, &invalid);
    for line in [
        "spec.resourceTypeEnvironmentConfigs.memory: 512 is not of type \"string\"",
        "spec.resourceTypeEnvironmentConfigs.adminEnabled: \"yes\" is not of type \"boolean\"",
    ] {
        assert!(
            out.stderr_line(line).is_some(),
            "no line with {line:?}:\n{out}"
        );
    }
    assert_not_stored(k, ns, BINDING);
}

/// A second binding of the same Resource to the same Environment is refused, naming the first.
fn duplicate_binding_is_forbidden(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-duplicate";
    doclet_with_binding(k, ns);
    let name = "doclet-postgres-dev";
    let yaml = binding_yaml(name, "doclet", "doclet-postgres", "development", "");
    let expected = format!(
        "{CREATE_DENIED_403}ResourceReleaseBinding \"{name}\": ResourceReleaseBinding \"{BINDING}\" \
         already binds resource \"doclet-postgres\" of project \"doclet\" to environment \
         \"development\"; edit that binding instead of creating a second one"
    );
    until_webhook_says(
        k,
        ns,
        "the webhook to see the first binding",
        &yaml,
        &expected,
    );
    let out = create(k, ns, &yaml);
    assert_eq!(assert_denied(&out, &expected), expected);
    assert_not_stored(k, ns, name);
}

/// A binding to an Environment that does not exist yet is stored, with a warning.
fn missing_environment_warns(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("oc-missing-env");
    let name = "doclet-postgres-staging";
    let yaml = binding_yaml(name, "doclet", "doclet-postgres", "staging", "");
    let out = create(k, &ns, &yaml).ok();
    let expected = format!(
        "Warning: binding \"{name}\": Environment \"staging\" not found; create it or fix \
         spec.environment"
    );
    assert_eq!(
        out.stderr_line("Environment"),
        Some(expected.as_str()),
        "{out}"
    );
    assert_eq!(
        k.get_json("rrb", &ns, name)["spec"]["environment"],
        "staging"
    );
}

/// Deleting a binding that retains its data is allowed and kubectl prints why it may linger.
/// The reconcile loop's finalizer may hold it, so the scenario does not wait for it to go.
fn deleting_a_retained_binding_warns(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-retain-delete";
    world(k, ns);
    let yaml = binding_yaml(
        BINDING,
        "doclet",
        "doclet-postgres",
        "development",
        "  retainPolicy: Retain\n",
    );
    create(k, ns, &yaml).ok();
    let out = k
        .run(&["delete", "rrb", BINDING, "-n", ns, "--wait=false"])
        .ok();
    let expected = format!(
        "Warning: {BINDING} stays Terminating (Finalizing/RetainHold) with data-plane state \
         until retainPolicy=Delete"
    );
    assert_eq!(
        out.stderr_line("RetainHold"),
        Some(expected.as_str()),
        "{out}"
    );
}

/// Publishing an output the type declares as a secret as a literal value is refused (403)
/// through the status subresource, and the stored status keeps no literal.
fn secret_output_literal_is_forbidden(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "oc-secret-output";
    world(k, ns);
    let name = "doclet-postgres-production";
    let pin = "  resourceRelease: doclet-postgres-abc12345\n";
    let yaml = binding_yaml(name, "doclet", "doclet-postgres", "production", pin);
    let ready = wait::until("the webhook to see the release", CACHE_TIMEOUT, || {
        let mut args = DRY_CREATE.to_vec();
        args.extend(["-", "-n", ns]);
        let out = k.run_with_stdin(&args, Some(&yaml));
        Ok(match out.stderr_line("not found") {
            None if out.success => Probe::Ready(()),
            _ => Probe::NotYet(out.to_string()),
        })
    });
    ready.unwrap_or_else(|e| panic!("{e:#}"));
    create(k, ns, &yaml).ok();
    let leak = r#"{"status":{"outputs":[{"name":"password","value":"hunter2"}]}}"#;
    let args = [
        "patch",
        "rrb",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        leak,
    ];
    let out = k.run(&args);
    let expected = format!(
        "{DENIED_403}ResourceReleaseBinding \"{name}\": status.outputs[0] (\"password\") is a \
         literal value, but ResourceRelease \"doclet-postgres-abc12345\" declares it a \
         secretKeyRef output: sensitive material never appears in status.outputs; publish a \
         secretKeyRef instead"
    );
    assert_eq!(assert_denied(&out, &expected), expected);
    let stored = k.get_json("rrb", ns, name);
    assert!(!stored.to_string().contains("hunter2"), "{stored}");
}
