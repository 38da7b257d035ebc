//! The cluster view: objects it cannot read are named, never a reason to stop answering.

use std::time::Duration;

use super::*;
use crate::wait::{self, Probe};

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(deep_objects_never_blind_the_view_nor_readiness),
    scenario!(the_loop_writes_a_deep_binding_without_a_failed_reconcile),
];

/// How long the view may take to see an object.
const VIEW_TIMEOUT: Duration = Duration::from_secs(30);

/// Nested this deep, a value is past serde_json's default recursion limit of 128.
const DEPTH: usize = 150;

/// Marks the innermost values, so the log can be searched for the objects' contents.
const CONTENT_MARKER: &str = "deep-value-never-logged";

/// `{"level": {"level": ... "<marker>"}}`, `depth` objects deep.
fn nested(depth: usize) -> String {
    format!(
        "{}\"{CONTENT_MARKER}\"{}",
        r#"{"level":"#.repeat(depth),
        "}".repeat(depth)
    )
}

/// A Resource `name` of `project` and ResourceType `kind`, with `spec.parameters` nested `depth`
/// objects deep.
fn resource(name: &str, project: &str, kind: &str, depth: usize) -> String {
    format!(
        r#"{{"apiVersion":"openchoreo.dev/v1alpha1","kind":"Resource","metadata":{{"name":"{name}"}},
            "spec":{{"owner":{{"projectName":"{project}"}},"type":{{"kind":"ResourceType","name":"{kind}"}},
            "parameters":{}}}}}"#,
        nested(depth)
    )
}

/// A ResourceType `name` whose environmentConfigs schema (which bindguard keeps) is nested
/// `depth` objects deep.
fn resource_type(name: &str, depth: usize) -> String {
    format!(
        r#"{{"apiVersion":"openchoreo.dev/v1alpha1","kind":"ResourceType","metadata":{{"name":"{name}"}},
            "spec":{{"environmentConfigs":{{"openAPIV3Schema":{}}}}}}}"#,
        nested(depth)
    )
}

/// A binding of `resource` claiming `project`, deployed to development with some settings.
fn binding(name: &str, project: &str, resource: &str) -> String {
    format!(
        "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: {name}\n\
         spec:\n  owner:\n    projectName: {project}\n    resourceName: {resource}\n  environment: development\n\
         \x20 resourceTypeEnvironmentConfigs:\n    memory: 512Mi\n"
    )
}

const ENVIRONMENT: &str = "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: development\nspec: {}\n";

/// Server-side dry-run creates of `yaml` until the refusal contains `expected`; returns that line.
fn until_refused(k: &Kubectl, ns: &str, what: &str, yaml: &str, expected: &str) -> String {
    let args = ["create", "--dry-run=server", "-n", ns, "-f", "-"];
    wait::until(what, VIEW_TIMEOUT, || {
        let out = k.run_with_stdin(&args, Some(yaml));
        Ok(match out.stderr_line(expected) {
            Some(line) => Probe::Ready(line.to_owned()),
            None => Probe::NotYet(out.to_string()),
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// How many lines of bindguard's log say that `object` (`namespace/name`) cannot be read; the
/// log never shows the deep objects' contents.
fn unreadable_lines(c: &Cluster, object: &str) -> usize {
    let log = c.bindguard_log();
    assert!(
        !log.contains(CONTENT_MARKER),
        "the log shows an object's contents:\n{}",
        c.log_tails(20)
    );
    log.lines()
        .filter(|l| l.contains("object cannot be read") && l.contains(object))
        .count()
}

/// The `bindguard_unreadable_objects_total` sample for `kind`.
fn unreadable_count(c: &Cluster, kind: &str) -> String {
    let (_, body) = c.admin_get("/metrics").expect("GET /metrics");
    let series = format!("bindguard_unreadable_objects_total{{kind=\"{kind}\"}} ");
    let line = body.lines().find(|l| l.starts_with(&series));
    line.map(|l| l[series.len()..].to_owned())
        .unwrap_or_default()
}

/// Objects nested 150 deep never blind the view. A Resource that deep is read (its parameters are
/// not a fact any rule needs), so a binding claiming the wrong project for it is refused. A
/// ResourceType whose kept schema is that deep is recorded as unreadable: a binding whose settings
/// need it is refused naming it, and bindguard says so once. Restarted with both in the cluster,
/// bindguard becomes ready and still refuses cross-project bindings.
fn deep_objects_never_blind_the_view_nor_readiness(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("view-deep-objects");
    k.apply(&ns, ENVIRONMENT);
    k.apply(&ns, &resource_type("tangled", DEPTH));
    k.apply(&ns, &resource("deep", "doclet", "tangled", DEPTH));
    k.apply(&ns, &resource("billing-db", "billing", "postgres", 3));
    let wrong_project = binding("billing-deep", "billing", "deep");
    let cross_deep = "spec.owner.projectName is \"billing\" but Resource \"deep\" belongs to \
                      project \"doclet\"";
    let needs_type = binding("doclet-deep", "doclet", "deep");
    let unreadable = format!(
        "ResourceReleaseBinding \"doclet-deep\": ResourceType \"tangled\" in namespace {ns} could \
         not be read by bindguard (spec.environmentConfigs.openAPIV3Schema.level.level."
    );
    let cross_other = binding("doclet-billing-db", "doclet", "billing-db");
    let cross_billing = "spec.owner.projectName is \"doclet\" but Resource \"billing-db\" belongs \
                         to project \"billing\"";
    let refusals = [
        (&wrong_project, cross_deep),
        (&needs_type, unreadable.as_str()),
        (&cross_other, cross_billing),
    ];
    for (yaml, expected) in refusals {
        let line = until_refused(k, &ns, "the view to see the objects", yaml, expected);
        assert!(line.contains("(Forbidden)"), "{line}");
    }
    let seen = until_refused(k, &ns, "the reason", &needs_type, &unreadable);
    assert!(seen.contains("nested more than 128 levels deep)"), "{seen}");
    let object = format!("{ns}/tangled");
    assert_eq!(unreadable_lines(c, &object), 1);
    assert_eq!(unreadable_count(c, "ResourceType"), "1");

    c.restart_bindguard()
        .expect("bindguard restarts and becomes ready");
    let (status, body) = c.admin_get("/readyz").expect("GET /readyz");
    assert_eq!(status, 200, "{body}");
    for (yaml, expected) in refusals {
        until_refused(k, &ns, "the same refusals after a restart", yaml, expected);
    }
    assert_eq!(unreadable_lines(c, &object), 2, "once per run");
    assert_eq!(unreadable_count(c, "ResourceType"), "1");
}

/// The loop's writes to a binding nested past the JSON decoder's limit land and are answered
/// like any other: it gets its finalizer and conditions, and no reconcile of it fails (each
/// write's answer, the whole binding, used to be decoded and fail after the write landed).
fn the_loop_writes_a_deep_binding_without_a_failed_reconcile(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("view-deep-binding");
    k.apply(&ns, ENVIRONMENT);
    let deep = format!(
        r#"{{"apiVersion":"openchoreo.dev/v1alpha1","kind":"ResourceReleaseBinding",
            "metadata":{{"name":"tangled"}},
            "spec":{{"owner":{{"projectName":"doclet","resourceName":"ghost"}},
            "environment":"development","resourceTypeEnvironmentConfigs":{}}}}}"#,
        nested(DEPTH)
    );
    let created = k.run_with_stdin(&["create", "-n", &ns, "-f", "-"], Some(&deep));
    assert!(created.success, "{}", created.stderr);
    // jsonpath: the object is too deep for the test's own JSON decoder.
    let path = "jsonpath={.metadata.finalizers} {.status.conditions[?(@.type==\"Synced\")].reason}";
    let want = r#"["openchoreo.dev/resourcereleasebinding-cleanup"] ResourceReleaseNotSet"#;
    wait::until(
        "the deep binding's finalizer and Synced",
        VIEW_TIMEOUT,
        || {
            let out = k.run(&["get", "rrb", "tangled", "-n", &ns, "-o", path]);
            let seen = out.stdout.trim().to_string();
            Ok(match seen == want {
                true => Probe::Ready(()),
                false => Probe::NotYet(format!("{seen} {}", out.stderr)),
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", c.log_tails(20)));
    let log = c.bindguard_log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reconcile failed") && l.contains("tangled"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
