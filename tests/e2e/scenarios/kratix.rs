//! Kratix: Promise, PromiseRevision and ResourceBinding admission (platform.kratix.io/v1alpha1).
//!
//! Promises and revisions are cluster-scoped, so every scenario uses a Promise name of its own.
//! bindguard judges from watch-fed caches; where a rule needs an object just written, the
//! scenario first polls a server-side dry run of the request until the webhook sees it.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::wait::{self, Probe};

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(latest_revision_delete_is_refused),
    scenario!(deleting_the_promise_releases_its_latest_revision),
    scenario!(revision_identity_edit_is_refused),
    scenario!(binding_resource_ref_edit_is_refused),
    scenario!(duplicate_binding_is_refused),
    scenario!(unknown_binding_version_is_refused),
    scenario!(mutating_webhook_labels_bindings_and_revisions),
    scenario!(promise_downgrade_and_unnamable_version_warn),
];

const CACHE_TIMEOUT: Duration = Duration::from_secs(30);
const DENIED_403: &str = r#"Error from server (Forbidden): admission webhook "validate.bindguard.dev" denied the request: "#;

fn promise_yaml(name: &str, version: &str) -> String {
    format!(
        "apiVersion: platform.kratix.io/v1alpha1\nkind: Promise\nmetadata:\n  name: {name}\n  \
         labels:\n    kratix.io/promise-version: {version}\nspec: {{}}\n"
    )
}

fn revision_yaml(promise: &str, version: &str, latest: bool) -> String {
    let latest = if latest {
        "\n    kratix.io/latest-revision: \"true\""
    } else {
        ""
    };
    format!(
        "apiVersion: platform.kratix.io/v1alpha1\nkind: PromiseRevision\nmetadata:\n  \
         name: {promise}-{version}\n  labels:\n    kratix.io/promise-name: {promise}{latest}\n\
         spec:\n  promiseRef:\n    name: {promise}\n  version: {version}\n  promiseSpec: {{}}\n"
    )
}

/// Revisions v0.1.0 and v0.2.0 (the latest) of `promise`.
fn two_revisions(k: &Kubectl, promise: &str) {
    k.apply("default", &revision_yaml(promise, "v0.1.0", false));
    k.apply("default", &revision_yaml(promise, "v0.2.0", true));
}

fn binding_yaml(name: &str, promise: &str, resource: &str, version: &str) -> String {
    format!(
        "apiVersion: platform.kratix.io/v1alpha1\nkind: ResourceBinding\nmetadata:\n  \
         name: {name}\nspec:\n  promiseRef:\n    name: {promise}\n  resourceRef:\n    \
         name: {resource}\n  version: {version}\n"
    )
}

/// Polls `args` (a server-side dry run) until kubectl prints a stderr line containing `seen`.
fn until_webhook_says(k: &Kubectl, what: &str, args: &[&str], stdin: Option<&str>, seen: &str) {
    wait::until(what, CACHE_TIMEOUT, || {
        let out = k.run_with_stdin(args, stdin);
        Ok(match out.stderr_line(seen) {
            Some(_) => Probe::Ready(()),
            None => Probe::NotYet(out.to_string()),
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

fn latest_refusal(revision: &str, promise: &str) -> String {
    format!(
        "{DENIED_403}can not delete the latest PromiseRevision: {revision:?} is the latest \
         revision of Promise {promise:?}; delete the Promise to remove it, or install another \
         version of the Promise first"
    )
}

/// `kubectl delete` of the latest revision is refused with the exact line and the revision
/// stays; an older revision of the same Promise can be deleted.
fn latest_revision_delete_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let promise = "kx-latest";
    k.apply("default", &promise_yaml(promise, "v0.2.0"));
    two_revisions(k, promise);
    let latest = "kx-latest-v0.2.0";
    let expected = latest_refusal(latest, promise);
    let dry = ["delete", "promiserevision", latest, "--dry-run=server"];
    until_webhook_says(k, "the webhook to see the Promise", &dry, None, &expected);
    let out = k.run(&["delete", "promiserevision", latest, "--wait=false"]);
    let line = assert_denied(&out, &expected);
    assert_eq!(line, expected);
    let kept = k.get_json("promiserevision", "default", latest);
    assert!(kept["metadata"]["deletionTimestamp"].is_null(), "{kept}");
    let older = "kx-latest-v0.1.0";
    let out = k
        .run(&["delete", "promiserevision", older, "--wait=false"])
        .ok();
    assert!(out.stdout.contains(&format!("{older}\" deleted")), "{out}");
}

/// Once its Promise is deleted, the latest revision can go too (the cascade is not blocked).
fn deleting_the_promise_releases_its_latest_revision(c: &Cluster) {
    let k = &c.kubectl;
    let promise = "kx-cascade";
    k.apply("default", &promise_yaml(promise, "v0.2.0"));
    two_revisions(k, promise);
    let latest = "kx-cascade-v0.2.0";
    let dry = ["delete", "promiserevision", latest, "--dry-run=server"];
    let refusal = latest_refusal(latest, promise);
    until_webhook_says(k, "the webhook to see the Promise", &dry, None, &refusal);
    k.run(&["delete", "promise", promise, "--wait=false"]).ok();
    wait::until("the latest revision to be deletable", CACHE_TIMEOUT, || {
        let out = k.run(&["delete", "promiserevision", latest, "--wait=false"]);
        let gone = out.stderr.contains("NotFound") || out.stderr.contains("not found");
        Ok(if out.success || gone {
            Probe::Ready(())
        } else {
            Probe::NotYet(out.to_string())
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// `spec.version` and `spec.promiseRef` of a revision cannot be edited.
fn revision_identity_edit_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let revision = "kx-edit-v0.1.0";
    k.apply("default", &revision_yaml("kx-edit", "v0.1.0", false));
    let before = k.get_json("promiserevision", "default", revision)["spec"].clone();
    let patch = |p: &str| {
        k.run(&[
            "patch",
            "promiserevision",
            revision,
            "--type=merge",
            "-p",
            p,
        ])
    };
    let out = patch(r#"{"spec":{"version":"v0.3.0"}}"#);
    let line = assert_denied(
        &out,
        r#"spec.version: PromiseRevision "kx-edit-v0.1.0": spec.version is immutable: it was "v0.1.0" and is now "v0.3.0""#,
    );
    assert!(
        line.starts_with(r#"The PromiseRevision "kx-edit-v0.1.0" is invalid: "#),
        "{line}"
    );
    let out = patch(r#"{"spec":{"promiseRef":{"name":"other"}}}"#);
    assert_denied(
        &out,
        r#"spec.promiseRef.name: PromiseRevision "kx-edit-v0.1.0": spec.promiseRef.name is immutable"#,
    );
    assert_eq!(
        k.get_json("promiserevision", "default", revision)["spec"],
        before
    );
}

/// Creates namespace `ns` with revisions of `promise` and the binding `example-<promise>` of
/// request `example` at v0.1.0.
fn namespace_with_binding(k: &Kubectl, ns: &str, promise: &str) -> String {
    k.create_namespace(ns);
    two_revisions(k, promise);
    let name = format!("example-{promise}");
    k.apply(ns, &binding_yaml(&name, promise, "example", "v0.1.0"));
    name
}

/// Pointing a binding at another request is refused, saying how to re-bind.
fn binding_resource_ref_edit_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "kx-rebind";
    let name = namespace_with_binding(k, ns, "kx-rebind");
    let before = k.get_json("resourcebinding", ns, &name)["spec"].clone();
    let out = k.run(&[
        "patch",
        "resourcebinding",
        &name,
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"resourceRef":{"name":"other"}}}"#,
    ]);
    let expected = format!(
        "spec.resourceRef: ResourceBinding {name:?}: spec.resourceRef is immutable: it was \
         {ns}/example and is now {ns}/other; a binding belongs to one resource request for life: \
         to re-bind, delete this binding and let it be recreated, or create a binding for the \
         other request"
    );
    let line = assert_denied(&out, &expected);
    assert!(
        line.starts_with(&format!(r#"The ResourceBinding "{name}" is invalid: "#)),
        "{line}"
    );
    assert_eq!(k.get_json("resourcebinding", ns, &name)["spec"], before);
}

/// A second binding for the same request is refused, naming the first; it is not stored.
fn duplicate_binding_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let ns = "kx-dup";
    let first = namespace_with_binding(k, ns, "kx-dup");
    let second = binding_yaml("example-kx-dup-2", "kx-dup", "example", "v0.1.0");
    let message = format!(
        "admission webhook \"validate.bindguard.dev\" denied the request: found multiple \
         ResourceBindings for Resource example in namespace {ns};there should be one \
         ResourceBinding per Resource: {first:?} already binds it to Promise \"kx-dup\"; change \
         spec.version of {first:?} instead"
    );
    let dry = ["create", "--dry-run=server", "-n", ns, "-f", "-"];
    until_webhook_says(
        k,
        "the webhook to see the binding",
        &dry,
        Some(&second),
        &message,
    );
    let out = k.run_with_stdin(&["create", "-n", ns, "-f", "-"], Some(&second));
    let expected =
        format!(r#"Error from server (Forbidden): error when creating "STDIN": {message}"#);
    assert_eq!(assert_denied(&out, &message), expected);
    let stored = k.run(&["get", "resourcebinding", "example-kx-dup-2", "-n", ns]);
    assert_denied(&stored, "not found");
}

/// A version no revision has is refused, listing the versions that exist.
fn unknown_binding_version_is_refused(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("kx-version");
    two_revisions(k, "kx-version");
    let binding = binding_yaml("example-kx-version", "kx-version", "example", "v9.9.9");
    let expected = "spec.version: ResourceBinding \"example-kx-version\": spec.version \
                    \"v9.9.9\" is not a version of Promise \"kx-version\"; it has v0.1.0, v0.2.0 \
                    (latest): set spec.version to one of them or to latest";
    let dry = ["create", "--dry-run=server", "-n", &ns, "-f", "-"];
    until_webhook_says(
        k,
        "the webhook to see the revisions",
        &dry,
        Some(&binding),
        expected,
    );
    let out = k.run_with_stdin(&["create", "-n", &ns, "-f", "-"], Some(&binding));
    let line = assert_denied(&out, expected);
    assert!(
        line.starts_with(r#"The ResourceBinding "example-kx-version" is invalid: "#),
        "{line}"
    );
}

/// A binding applied without labels or resource namespace is found by the seed's label query;
/// a revision without its promise-name label gets it.
fn mutating_webhook_labels_bindings_and_revisions(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("kx-labels");
    k.apply(
        &ns,
        &binding_yaml("example-redis-e7f90", "redis", "example", "latest"),
    );
    let out = k
        .run(&[
            "-n",
            &ns,
            "get",
            "resourcebindings",
            "-l",
            "kratix.io/promise-name=redis",
            "-l",
            "kratix.io/resource-name=example",
        ])
        .ok();
    assert!(out.stdout.contains("example-redis-e7f90"), "{out}");
    let stored = k.get_json("resourcebinding", &ns, "example-redis-e7f90");
    assert_eq!(
        stored["metadata"]["labels"]["kratix.io/promise-name"],
        "redis"
    );
    assert_eq!(
        stored["metadata"]["labels"]["kratix.io/resource-name"],
        "example"
    );
    assert_eq!(
        stored["spec"]["resourceRef"]["namespace"],
        Value::from(ns.as_str())
    );
    let unlabelled = "apiVersion: platform.kratix.io/v1alpha1\nkind: PromiseRevision\nmetadata:\n  \
                      name: kx-labels-v0.1.0\nspec:\n  promiseRef:\n    name: kx-labels\n  \
                      version: v0.1.0\n  promiseSpec: {}\n";
    k.apply("default", unlabelled);
    let label = k.jsonpath(
        "promiserevision",
        "default",
        "kx-labels-v0.1.0",
        r"{.metadata.labels.kratix\.io/promise-name}",
    );
    assert_eq!(label, "kx-labels");
}

/// Re-applying a Promise at a lower version than its latest revision warns; so does a version
/// that cannot be part of an object name, and an API that names no kind.
fn promise_downgrade_and_unnamable_version_warn(c: &Cluster) {
    let k = &c.kubectl;
    let promise = "kx-down";
    k.apply("default", &promise_yaml(promise, "v0.2.0"));
    two_revisions(k, promise);
    let expected = r#"Warning: Promise "kx-down": v0.1.0 is lower than latest v0.2.0 but becomes the latest revision"#;
    let lower = promise_yaml(promise, "v0.1.0");
    let dry = ["apply", "--dry-run=server", "-f", "-"];
    until_webhook_says(
        k,
        "the webhook to see the revisions",
        &dry,
        Some(&lower),
        expected,
    );
    let out = k.apply("default", &lower);
    assert_eq!(out.stderr_line(expected), Some(expected), "{out}");
    let caps = k.apply("default", &promise_yaml("kx-caps", "V1.0.0"));
    let revision = format!("kx-caps-{}", short_hash("V1.0.0"));
    let expected = format!(
        r#"Warning: Promise "kx-caps": version "V1.0.0" is not valid in an object name; its revision is "{revision}""#
    );
    assert_eq!(
        caps.stderr_line(&expected),
        Some(expected.as_str()),
        "{caps}"
    );
    // YAML reads `kind: No` as false: an API that names no kind is said, not served silently.
    let unserved = promise_yaml("kx-unserved", "v1").replace(
        "spec: {}",
        "spec:\n  api:\n    spec:\n      group: kx.example.dev\n      names: {kind: No, plural: nos}\n      versions: [{name: v1, served: true, storage: true}]",
    );
    let out = k.apply("default", &unserved);
    let expected = r#"Warning: Promise "kx-unserved": spec.api names no kind to serve; its requests get no ResourceBindings"#;
    assert_eq!(out.stderr_line(expected), Some(expected), "{out}");
}

/// The first five hex digits of the MD5 of `text`, as `bindguard::naming` computes them.
fn short_hash(text: &str) -> String {
    bindguard::naming::short_hash(text)
}
