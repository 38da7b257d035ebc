//! Rule correctness under real operations: patches the API server must accept, updates judged
//! on what they change, Terminating objects and the seed's way out of RetainHold.

use super::*;
use crate::wait::{self, Probe};
use std::time::Duration;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(a_long_resource_name_gets_a_valid_label),
    scenario!(a_legacy_binding_can_lose_its_finalizer),
    scenario!(a_terminating_binding_frees_its_target),
    scenario!(the_retain_flip_works_when_everything_else_is_gone),
];

/// A spec line that lets the loop release its finalizer on deletion.
const DELETE: &str = "  retainPolicy: Delete";

/// A finalizer of someone else's, so that the object stays Terminating until we say so.
const HOLD: &str = "example.com/hold";

/// Project doclet, Environment development, a ResourceType keeper (Retain), and a Resource
/// `name` of project `project`.
fn world(name: &str, project: &str) -> String {
    format!(
        r#"
apiVersion: openchoreo.dev/v1alpha1
kind: Project
metadata: {{name: doclet}}
spec: {{deploymentPipelineRef: {{name: default}}, type: {{name: default}}}}
---
apiVersion: openchoreo.dev/v1alpha1
kind: Environment
metadata: {{name: development}}
spec: {{}}
---
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceType
metadata: {{name: keeper}}
spec: {{retainPolicy: Retain}}
---
{}"#,
        resource(name, project)
    )
}

fn resource(name: &str, project: &str) -> String {
    format!(
        r#"
apiVersion: openchoreo.dev/v1alpha1
kind: Resource
metadata: {{name: {name}}}
spec:
  owner: {{projectName: {project}}}
  type: {{kind: ResourceType, name: keeper}}
"#
    )
}

/// A binding `name` of `resource` (project doclet) to development, with `extra` spec lines
/// and the finalizers `finalizers`.
fn binding(name: &str, resource: &str, extra: &str, finalizers: &[&str]) -> String {
    format!(
        r#"
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceReleaseBinding
metadata:
  name: {name}
  finalizers: {finalizers:?}
spec:
  owner: {{projectName: doclet, resourceName: {resource}}}
  environment: development
{extra}
"#
    )
}

fn kubectl(c: &Cluster, args: &[&str]) -> Output {
    c.kubectl.run(args)
}

/// Waits until `look` says yes.
fn wait_until(what: &str, mut look: impl FnMut() -> Result<(), String>) {
    wait::until(what, Duration::from_secs(60), || {
        Ok::<_, anyhow::Error>(match look() {
            Ok(()) => Probe::Ready(()),
            Err(seen) => Probe::NotYet(seen),
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Deletes `rrb/name` without waiting; it stays Terminating while a finalizer holds it.
fn start_deleting(c: &Cluster, ns: &str, name: &str) {
    kubectl(c, &["delete", "rrb", name, "-n", ns, "--wait=false"]).ok();
    wait_until("the binding to be Terminating", || {
        let at = c
            .kubectl
            .jsonpath("rrb", ns, name, "{.metadata.deletionTimestamp}");
        if at.is_empty() {
            Err("no deletionTimestamp".into())
        } else {
            Ok(())
        }
    });
}

/// Waits until only our hold finalizer is left (the loop has let go of its own), then
/// removes it with the real kubectl and waits for the binding to be gone.
fn release_hold(c: &Cluster, ns: &str, name: &str) {
    wait_until("the loop to release its finalizer", || {
        let finalizers = c
            .kubectl
            .jsonpath("rrb", ns, name, "{.metadata.finalizers}");
        if finalizers == format!("[\"{HOLD}\"]") {
            Ok(())
        } else {
            Err(finalizers)
        }
    });
    let patch = r#"{"metadata":{"finalizers":null}}"#;
    let out = kubectl(
        c,
        &["patch", "rrb", name, "-n", ns, "--type=merge", "-p", patch],
    );
    assert!(out.success, "finalizer removal refused: {out}");
    wait_gone(c, ns, name);
}

fn wait_gone(c: &Cluster, ns: &str, name: &str) {
    wait_until("the binding to be gone", || {
        let out = kubectl(c, &["get", "rrb", name, "-n", ns, "--ignore-not-found"]);
        if out.success && out.stdout.trim().is_empty() {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
}

fn a_long_resource_name_gets_a_valid_label(c: &Cluster) {
    let ns = c.kubectl.create_namespace("updates-long-label");
    let long = format!("doclet-{}", "postgres-".repeat(9))
        .trim_end_matches('-')
        .to_string();
    assert!(long.len() >= 70, "{}", long.len());
    c.kubectl.apply(&ns, &world(&long, "doclet"));
    let out = c.kubectl.try_apply(&ns, &binding("long", &long, "", &[]));
    assert!(
        out.success,
        "a binding of a long-named Resource is refused: {out}"
    );
    let label = c.kubectl.jsonpath(
        "rrb",
        &ns,
        "long",
        r"{.metadata.labels.openchoreo\.dev/resource}",
    );
    assert!(
        !label.is_empty() && label.len() <= 63 && long.starts_with(&label[..50]),
        "label {label:?} for {long:?}"
    );
}

fn a_legacy_binding_can_lose_its_finalizer(c: &Cluster) {
    let ns = c.kubectl.create_namespace("updates-legacy");
    c.kubectl.apply(&ns, &world("billing-db", "billing"));
    // Created while the webhook was down: one claims doclet for a Resource of billing, one has
    // a blank resource name (the CRD's minLength lets a space through).
    c.without_webhooks(|| {
        c.kubectl
            .apply(&ns, &binding("legacy", "billing-db", DELETE, &[HOLD]));
        c.kubectl
            .apply(&ns, &binding("blank", "' '", DELETE, &[HOLD]));
    });
    let refused = c
        .kubectl
        .try_apply(&ns, &binding("fresh", "billing-db", "", &[]));
    assert_denied(&refused, "belongs to project \"billing\"");
    for name in ["legacy", "blank"] {
        let labelled = kubectl(c, &["label", "rrb", name, "-n", &ns, "team=payments"]);
        assert!(
            labelled.success,
            "a label on legacy binding {name} is refused: {labelled}"
        );
        start_deleting(c, &ns, name);
        release_hold(c, &ns, name);
    }
}

fn a_terminating_binding_frees_its_target(c: &Cluster) {
    let ns = c.kubectl.create_namespace("updates-terminating");
    c.kubectl.apply(&ns, &world("db", "doclet"));
    c.kubectl.apply(&ns, &binding("old", "db", DELETE, &[HOLD]));
    let second = c.kubectl.try_apply(&ns, &binding("new", "db", "", &[]));
    assert_denied(&second, "already binds resource \"db\"");
    start_deleting(c, &ns, "old");
    let out = c.kubectl.try_apply(&ns, &binding("new", "db", "", &[]));
    assert!(
        out.success,
        "the target of a Terminating binding is still taken: {out}"
    );
    release_hold(c, &ns, "old");
}

fn the_retain_flip_works_when_everything_else_is_gone(c: &Cluster) {
    c.restart_bindguard_with(&["--references=strict"])
        .expect("restart bindguard with --references strict");
    let ns = c.kubectl.create_namespace("updates-retain-flip");
    c.kubectl.apply(&ns, &world("db", "doclet"));
    c.kubectl.apply(&ns, &binding("kept", "db", "", &[]));
    wait_until("the loop's finalizer", || {
        let f = c
            .kubectl
            .jsonpath("rrb", &ns, "kept", "{.metadata.finalizers}");
        if f.contains("resourcereleasebinding-cleanup") {
            Ok(())
        } else {
            Err(f)
        }
    });
    start_deleting(c, &ns, "kept");
    wait_until("RetainHold", || {
        let reason = c.kubectl.jsonpath(
            "rrb",
            &ns,
            "kept",
            r#"{.status.conditions[?(@.type=="Finalizing")].reason}"#,
        );
        if reason == "RetainHold" {
            Ok(())
        } else {
            Err(reason)
        }
    });
    // The Resource moves to another project, the Environment goes: the flip still works.
    kubectl(c, &["delete", "resource", "db", "-n", &ns]).ok();
    kubectl(c, &["delete", "environment", "development", "-n", &ns]).ok();
    c.kubectl.apply(&ns, &resource("db", "billing"));
    let patch = r#"{"spec":{"retainPolicy":"Delete"}}"#;
    let out = kubectl(
        c,
        &[
            "patch",
            "rrb",
            "kept",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            patch,
        ],
    );
    assert!(out.success, "the retain flip is refused: {out}");
    wait_gone(c, &ns, "kept");
    c.restart_bindguard()
        .expect("restart bindguard with defaults");
}
