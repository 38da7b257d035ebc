//! The reconcile loop: finalizers, conditions, revisions and bindings kept by bindguard itself.

use super::*;
use crate::wait::{Probe, until};
use serde_json::Value;
use std::time::Duration;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(promise_versions_become_revisions_and_latest_moves),
    scenario!(a_request_gets_one_binding_recreated_and_cleaned_up),
    scenario!(deleting_a_revision_deletes_its_pinned_requests),
    scenario!(binding_conditions_follow_referents_applied_out_of_order),
    scenario!(a_new_binding_costs_the_loop_one_finalizer_and_one_status_write),
    scenario!(retain_holds_until_the_policy_says_delete),
    scenario!(a_resource_replaced_in_place_keeps_its_bindings),
    scenario!(another_controllers_condition_survives_the_loops_writes),
    scenario!(promote_pins_the_latest_release),
];

const TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `look` until it returns `Some`.
#[track_caller]
fn wait_for<T>(c: &Cluster, what: &str, mut look: impl FnMut() -> Result<T, String>) -> T {
    until(what, TIMEOUT, || {
        Ok(match look() {
            Ok(v) => Probe::Ready(v),
            Err(seen) => Probe::NotYet(seen),
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)))
}

/// `kubectl get` with a jsonpath, empty when the get fails.
fn get(c: &Cluster, args: &[&str]) -> String {
    c.kubectl.run(args).stdout
}

/// `kubectl get rrb <name> -o jsonpath=<path>`, empty when the get fails.
fn rrb_jsonpath(c: &Cluster, ns: &str, name: &str, path: &str) -> String {
    let path = format!("jsonpath={path}");
    get(c, &["get", "rrb", name, "-n", ns, "-o", &path])
}

/// Whether `kubectl get` answers NotFound (not merely fails).
fn gone(c: &Cluster, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let out = c.kubectl.run(&all);
    !out.success && out.stderr.contains("NotFound")
}

fn promise(name: &str, version: &str, group: &str, kind: &str, plural: &str) -> String {
    format!(
        r#"
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: {name}
  labels:
    kratix.io/promise-version: {version}
spec:
  api:
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: {plural}.{group}
    spec:
      group: {group}
      scope: Namespaced
      names: {{kind: {kind}, plural: {plural}, singular: {plural}}}
      versions:
        - name: v1alpha1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"#
    )
}

/// The CRD a Promise offers, applied by the scenario (the loop does not install it).
fn offered_crd(c: &Cluster, group: &str, kind: &str, plural: &str) {
    let yaml = promise("unused", "v0", group, kind, plural);
    let crd = yaml
        .split_once("  api:\n")
        .map(|(_, api)| {
            api.lines()
                .map(|l| l.strip_prefix("    ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    c.kubectl.apply("default", &crd);
    let name = format!("crd/{plural}.{group}");
    c.kubectl
        .run(&[
            "wait",
            "--for=condition=Established",
            &name,
            "--timeout=30s",
        ])
        .ok();
}

fn revisions(c: &Cluster, promise: &str) -> String {
    let selector = format!("kratix.io/promise-name={promise}");
    let path = r"jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.kratix\.io/latest-revision}/{.status.latest} {end}";
    get(c, &["get", "promiserevisions", "-l", &selector, "-o", path])
        .trim()
        .to_string()
}

fn expect(seen: String, want: &str) -> Result<String, String> {
    if seen == want { Ok(seen) } else { Err(seen) }
}

fn promise_versions_become_revisions_and_latest_moves(c: &Cluster) {
    let group = "marketplace.kratix.io";
    c.kubectl.apply(
        "default",
        &promise("rc-redis", "v0.1.0", group, "RcRedis", "rcredis"),
    );
    wait_for(c, "rc-redis-v0.1.0 latest", || {
        expect(revisions(c, "rc-redis"), "rc-redis-v0.1.0=true/true")
    });
    c.kubectl.apply(
        "default",
        &promise("rc-redis", "v0.2.0", group, "RcRedis", "rcredis"),
    );
    wait_for(c, "v0.2.0 latest, v0.1.0 not", || {
        expect(
            revisions(c, "rc-redis"),
            "rc-redis-v0.1.0=/false rc-redis-v0.2.0=true/true",
        )
    });
    let listed = get(c, &["get", "promiserevisions"]);
    assert!(
        listed.contains("rc-redis-v0.1.0") && listed.contains("rc-redis-v0.2.0"),
        "{listed}"
    );
    c.kubectl.apply(
        "default",
        &promise("rc-redis", "v0.1.0", group, "RcRedis", "rcredis"),
    );
    wait_for(c, "v0.1.0 latest again", || {
        expect(
            revisions(c, "rc-redis"),
            "rc-redis-v0.1.0=true/true rc-redis-v0.2.0=/false",
        )
    });
    let owner = get(
        c,
        &[
            "get",
            "promiserevision",
            "rc-redis-v0.1.0",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.spec.promiseSpec.api.spec.group}",
        ],
    );
    assert_eq!(owner, format!("Promise/{group}"));
}

fn request(kind: &str, name: &str) -> String {
    format!(
        "apiVersion: kv.example.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec: {{size: small}}\n"
    )
}

/// The bindings of `request` in `ns`, as `name=version` by their two labels.
fn bindings(c: &Cluster, ns: &str, promise: &str, request: &str) -> String {
    let selector = format!("kratix.io/promise-name={promise},kratix.io/resource-name={request}");
    let path = "jsonpath={range .items[*]}{.metadata.name}={.spec.version} {end}";
    get(
        c,
        &[
            "get",
            "resourcebindings",
            "-n",
            ns,
            "-l",
            &selector,
            "-o",
            path,
        ],
    )
    .trim()
    .to_string()
}

fn a_request_gets_one_binding_recreated_and_cleaned_up(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-requests");
    offered_crd(c, "kv.example.dev", "KeyValue", "keyvalues");
    c.kubectl.apply(
        "default",
        &promise("kv", "v1", "kv.example.dev", "KeyValue", "keyvalues"),
    );
    wait_for(c, "kv-v1 latest", || {
        expect(revisions(c, "kv"), "kv-v1=true/true")
    });
    c.kubectl.apply(&ns, &request("KeyValue", "example"));
    let first = wait_for(c, "a binding for the request", || {
        let seen = bindings(c, &ns, "kv", "example");
        if seen.starts_with("example-kv-") && seen.ends_with("=v1") && !seen.contains(' ') {
            Ok(seen)
        } else {
            Err(seen)
        }
    });
    let name = first.trim_end_matches("=v1").to_string();
    let uid = get(
        c,
        &[
            "get",
            "resourcebinding",
            &name,
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    let finalizers = get(
        c,
        &[
            "get",
            "keyvalues.kv.example.dev",
            "example",
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.finalizers}",
        ],
    );
    assert!(
        finalizers.contains("kratix.io/resource-binding-cleanup"),
        "{finalizers}"
    );
    c.kubectl
        .run(&["delete", "resourcebinding", &name, "-n", &ns])
        .ok();
    wait_for(c, "the binding recreated at v1", || {
        let now = get(
            c,
            &[
                "get",
                "resourcebinding",
                &name,
                "-n",
                &ns,
                "-o",
                "jsonpath={.metadata.uid}={.spec.version}",
            ],
        );
        if !now.is_empty() && now != format!("{uid}=v1") && now.ends_with("=v1") {
            Ok(now)
        } else {
            Err(now)
        }
    });
    c.kubectl
        .run(&["delete", "keyvalues.kv.example.dev", "example", "-n", &ns])
        .ok();
    wait_for(c, "the binding gone with its request", || {
        expect(bindings(c, &ns, "kv", "example"), "")
    });
}

fn deleting_a_revision_deletes_its_pinned_requests(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-revisions");
    offered_crd(c, "kv.example.dev", "Cache", "caches");
    c.kubectl.apply(
        "default",
        &promise("cache", "v1", "kv.example.dev", "Cache", "caches"),
    );
    wait_for(c, "cache-v1 latest", || {
        expect(revisions(c, "cache"), "cache-v1=true/true")
    });
    c.kubectl.apply(&ns, &request("Cache", "old"));
    wait_for(c, "a v1 binding", || {
        let seen = bindings(c, &ns, "cache", "old");
        if seen.ends_with("=v1") {
            Ok(seen)
        } else {
            Err(seen)
        }
    });
    c.kubectl.apply(
        "default",
        &promise("cache", "v2", "kv.example.dev", "Cache", "caches"),
    );
    wait_for(c, "cache-v2 latest", || {
        expect(revisions(c, "cache"), "cache-v1=/false cache-v2=true/true")
    });
    let finalizers = get(
        c,
        &[
            "get",
            "promiserevision",
            "cache-v1",
            "-o",
            "jsonpath={.metadata.finalizers}",
        ],
    );
    assert!(
        finalizers.contains("kratix.io/resource-request-cleanup"),
        "{finalizers}"
    );
    c.kubectl
        .run(&["delete", "promiserevision", "cache-v1", "--wait=false"])
        .ok();
    wait_for(c, "request, binding and revision gone", || {
        let request = !gone(c, &["caches.kv.example.dev", "old", "-n", &ns]);
        let revision = !gone(c, &["promiserevision", "cache-v1"]);
        let seen = format!(
            "request={request} revision={revision} bindings={}",
            bindings(c, &ns, "cache", "old")
        );
        expect(seen, "request=false revision=false bindings=")
    });
}

pub(super) const PROJECT: &str = "apiVersion: openchoreo.dev/v1alpha1\nkind: Project\nmetadata:\n  name: shop\n\
                       spec:\n  deploymentPipelineRef: {name: default}\n  type: {name: default}\n";
pub(super) const ENVIRONMENT: &str = "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: staging\nspec: {}\n";
pub(super) const TYPE: &str = r#"
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
"#;
pub(super) const RESOURCE: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: Resource
metadata:
  name: shop-db
spec:
  owner: {projectName: shop}
  type: {kind: ResourceType, name: postgres}
"#;
const RELEASE: &str = r#"
apiVersion: openchoreo.dev/v1alpha1
kind: ResourceRelease
metadata:
  name: shop-db-abc12
spec:
  owner: {projectName: shop, resourceName: shop-db}
  resourceType:
    kind: ResourceType
    name: postgres
    spec:
      retainPolicy: Delete
"#;

pub(super) fn rrb(name: &str, release: Option<&str>, retain: Option<&str>) -> String {
    let mut yaml = format!(
        "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: {name}\nspec:\n  owner: {{projectName: shop, resourceName: shop-db}}\n  environment: staging\n"
    );
    if let Some(r) = release {
        yaml.push_str(&format!("  resourceRelease: {r}\n"));
    }
    if let Some(p) = retain {
        yaml.push_str(&format!("  retainPolicy: {p}\n"));
    }
    yaml
}

fn condition(c: &Cluster, ns: &str, name: &str, type_: &str) -> String {
    let path = format!(
        r#"jsonpath={{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#
    );
    get(c, &["get", "rrb", name, "-n", ns, "-o", &path])
}

fn wait_condition(c: &Cluster, ns: &str, name: &str, type_: &str, want: &str) {
    wait_for(c, &format!("{name} {type_}={want}"), || {
        expect(condition(c, ns, name, type_), want)
    });
}

fn binding_conditions_follow_referents_applied_out_of_order(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-conditions");
    c.kubectl.apply(&ns, PROJECT);
    c.kubectl.apply(&ns, TYPE);
    c.kubectl
        .apply(&ns, &rrb("db-staging", Some("shop-db-abc12"), None));
    wait_condition(
        c,
        &ns,
        "db-staging",
        "Synced",
        "False/ResourceReleaseNotFound",
    );
    wait_condition(
        c,
        &ns,
        "db-staging",
        "ResourcesReady",
        "Unknown/SyncedNotReady",
    );
    wait_condition(
        c,
        &ns,
        "db-staging",
        "Ready",
        "False/ResourceReleaseNotFound",
    );
    let finalizers = rrb_jsonpath(c, &ns, "db-staging", "{.metadata.finalizers}");
    assert!(
        finalizers.contains("openchoreo.dev/resourcereleasebinding-cleanup"),
        "{finalizers}"
    );
    c.kubectl.apply(&ns, RELEASE);
    wait_condition(c, &ns, "db-staging", "Synced", "False/EnvironmentNotFound");
    let message = get(
        c,
        &[
            "get",
            "rrb",
            "db-staging",
            "-n",
            &ns,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Synced")].message}"#,
        ],
    );
    assert_eq!(message, r#"Environment "staging" not found"#);
    c.kubectl.apply(&ns, ENVIRONMENT);
    wait_condition(c, &ns, "db-staging", "Synced", "False/ResourceNotFound");
    c.kubectl.apply(&ns, RESOURCE);
    wait_condition(c, &ns, "db-staging", "Synced", "True/Synced");
    wait_condition(c, &ns, "db-staging", "Ready", "Unknown/NotObserved");
}

/// The loop writes a new binding twice: its finalizer, then one status write with every
/// condition; the reconcile its own writes trigger finds nothing to change. Counted on the
/// binding itself (every write is a new version in its watch history), so other scenarios'
/// bindings and the API server's own retries of a write cannot blur the count.
fn a_new_binding_costs_the_loop_one_finalizer_and_one_status_write(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-writes");
    for yaml in [PROJECT, TYPE, RELEASE, ENVIRONMENT, RESOURCE] {
        c.kubectl.apply(&ns, yaml);
    }
    let count = |what: &str| {
        let n = match what {
            "updates" => c.admission_count("ResourceReleaseBinding", "UPDATE"),
            _ => c.reconcile_count("ResourceReleaseBinding"),
        };
        n.unwrap_or_else(|e| panic!("{e:#}"))
    };
    let (updates, reconciles) = (count("updates"), count("reconciles"));
    let yaml = rrb("db-staging", Some("shop-db-abc12"), None);
    let created = c.kubectl.run_with_stdin(
        &[
            "create",
            "-n",
            &ns,
            "-f",
            "-",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
        Some(&yaml),
    );
    let created_version = created.ok().stdout;
    wait_condition(c, &ns, "db-staging", "Synced", "True/Synced");
    // The first reconcile writes; the second, after the debounced events of those writes, must
    // not. Reconciles of other scenarios' bindings may end this wait early, never late.
    wait_for(c, "a second reconcile", || {
        let done = count("reconciles") - reconciles;
        if done >= 2 {
            Ok(())
        } else {
            Err(format!("{done} reconciles"))
        }
    });
    let finalizers = c
        .kubectl
        .jsonpath("rrb", &ns, "db-staging", "{.metadata.finalizers}");
    assert!(
        finalizers.contains("openchoreo.dev/resourcereleasebinding-cleanup"),
        "{finalizers}"
    );
    // Every version written since the create, ending when the API server closes the watch.
    let history = format!(
        "/apis/openchoreo.dev/v1alpha1/namespaces/{ns}/resourcereleasebindings?watch=1\
         &resourceVersion={created_version}&timeoutSeconds=1&fieldSelector=metadata.name%3Ddb-staging"
    );
    let events = c.kubectl.run(&["get", "--raw", &history]).ok().stdout;
    let writes: Vec<Value> = events
        .lines()
        .map(|line| serde_json::from_str(line).expect("a watch event"))
        .collect();
    let finalized = |e: &Value| e["object"]["metadata"]["finalizers"].is_array();
    let conditions = |e: &Value| e["object"]["status"]["conditions"].as_array().map(Vec::len);
    assert!(
        matches!(writes.as_slice(), [first, second]
            if finalized(first) && conditions(first).is_none() && conditions(second) == Some(4)),
        "expected the finalizer, then one status write with all four conditions: {events}"
    );
    let reviews = count("updates") - updates;
    assert!(
        reviews >= 3,
        "both writes are judged (2 reviews for the finalizer, 1 for the status): {reviews}"
    );
}

fn retain_holds_until_the_policy_says_delete(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-retain");
    for yaml in [PROJECT, ENVIRONMENT, TYPE, RESOURCE] {
        c.kubectl.apply(&ns, yaml);
    }
    c.kubectl.apply(&ns, &rrb("kept", None, Some("Retain")));
    wait_condition(c, &ns, "kept", "Synced", "False/ResourceReleaseNotSet");
    c.kubectl
        .run(&["delete", "resource", "shop-db", "-n", &ns])
        .ok();
    wait_condition(c, &ns, "kept", "Finalizing", "True/RetainHold");
    let events = get(
        c,
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "reason=RetainHold",
            "-o",
            "jsonpath={.items[*].type}",
        ],
    );
    assert!(
        events.contains("Warning"),
        "no RetainHold Warning event: {events:?}"
    );
    let patch = r#"{"spec":{"retainPolicy":"Delete"}}"#;
    c.kubectl
        .run(&[
            "patch",
            "rrb",
            "kept",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            patch,
        ])
        .ok();
    wait_for(c, "the binding gone", || {
        let exists = !gone(c, &["rrb", "kept", "-n", &ns]);
        if exists {
            Err("still there".into())
        } else {
            Ok(())
        }
    });
}

/// The loop rewrites only its own conditions, where they sit: a condition another controller
/// put first (shifting ours) keeps its place and its words, and ours are not duplicated.
/// `kubectl replace --force` deletes a Resource and creates it again at once: its bindings are
/// the new one's and stay. A Resource deleted for good after it still takes its own (deletions
/// are worked off in order, so once that one is gone the replaced one was judged).
fn a_resource_replaced_in_place_keeps_its_bindings(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-replace");
    let cache = RESOURCE.replace("name: shop-db", "name: shop-cache");
    for yaml in [PROJECT, ENVIRONMENT, TYPE, RESOURCE, cache.as_str()] {
        c.kubectl.apply(&ns, yaml);
    }
    let cache_binding = rrb("cache-staging", None, None)
        .replace("resourceName: shop-db", "resourceName: shop-cache");
    c.kubectl.apply(&ns, &rrb("db-staging", None, None));
    c.kubectl.apply(&ns, &cache_binding);
    for name in ["db-staging", "cache-staging"] {
        wait_condition(c, &ns, name, "Synced", "False/ResourceReleaseNotSet");
    }
    let replaced = c.kubectl.run_with_stdin(
        &["replace", "--force", "-n", &ns, "-f", "-"],
        Some(RESOURCE),
    );
    assert!(replaced.success, "{}", replaced.stderr);
    c.kubectl
        .run(&["delete", "resource", "shop-cache", "-n", &ns])
        .ok();
    wait_for(c, "the deleted Resource's binding gone", || {
        match gone(c, &["rrb", "cache-staging", "-n", &ns]) {
            true => Ok(()),
            false => Err("still there".to_string()),
        }
    });
    let kept = rrb_jsonpath(c, &ns, "db-staging", "{.metadata.deletionTimestamp}");
    assert_eq!(kept, "", "the replaced Resource's binding is being deleted");
    assert!(!gone(c, &["rrb", "db-staging", "-n", &ns]));
}

fn another_controllers_condition_survives_the_loops_writes(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-foreign");
    for yaml in [PROJECT, ENVIRONMENT, TYPE, RESOURCE, RELEASE] {
        c.kubectl.apply(&ns, yaml);
    }
    c.kubectl.apply(&ns, &rrb("shared", None, None));
    wait_condition(c, &ns, "shared", "Synced", "False/ResourceReleaseNotSet");
    let since = |type_: &str| {
        let path = format!(r#"{{.status.conditions[?(@.type=="{type_}")].lastTransitionTime}}"#);
        c.kubectl.jsonpath("rrb", &ns, "shared", &path)
    };
    let unknown_since = since("ResourcesReady");
    let foreign = r#"[{"op": "add", "path": "/status/conditions/0", "value": {"type": "Deployed",
        "status": "True", "reason": "Rendered", "message": "by another controller",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}}]"#;
    let patch = |args: &[&str]| {
        let all = [&["patch", "rrb", "shared", "-n", &ns][..], args].concat();
        c.kubectl.run(&all).ok();
    };
    patch(&["--subresource=status", "--type=json", "-p", foreign]);
    let pin = r#"{"spec":{"resourceRelease":"shop-db-abc12"}}"#;
    patch(&["--type=merge", "-p", pin]);
    wait_condition(c, &ns, "shared", "Synced", "True/Synced");
    wait_condition(c, &ns, "shared", "Ready", "Unknown/NotObserved");
    let listed = c.kubectl.jsonpath(
        "rrb",
        &ns,
        "shared",
        "{range .status.conditions[*]}{.type}={.message};{end}",
    );
    let types: Vec<&str> = listed
        .split(';')
        .filter_map(|c| c.split('=').next())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(
        types,
        [
            "Deployed",
            "Synced",
            "ResourcesReady",
            "OutputsResolved",
            "Ready"
        ],
        "{listed}"
    );
    assert!(
        listed.starts_with("Deployed=by another controller;"),
        "{listed}"
    );
    assert_eq!(
        since("ResourcesReady"),
        unknown_since,
        "ResourcesReady stayed Unknown: its transition time stays"
    );
}

fn promote(c: &Cluster, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bindguard"))
        .arg("promote")
        .args(args)
        .env("KUBECONFIG", c.kubectl.kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bindguard promote: {e}"))
}

fn promote_pins_the_latest_release(c: &Cluster) {
    let ns = c.kubectl.create_namespace("reconcile-promote");
    for yaml in [PROJECT, ENVIRONMENT, TYPE, RESOURCE, RELEASE] {
        c.kubectl.apply(&ns, yaml);
    }
    c.kubectl.apply(&ns, &rrb("db-staging", None, None));
    let out = promote(c, &["shop-db", "--env", "staging", "-n", &ns]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"resource "shop-db" has no released versions yet"#),
        "{stderr}"
    );
    let status = r#"{"status":{"latestRelease":{"name":"shop-db-abc12","hash":"abc12"}}}"#;
    c.kubectl
        .run(&[
            "patch",
            "resource",
            "shop-db",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ])
        .ok();
    let out = promote(c, &["shop-db", "--env", "production", "-n", &ns]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want =
        r#"no ResourceReleaseBinding found for resource "shop-db" in environment "production""#;
    assert!(stderr.contains(want), "{stderr}");
    // Parameters nested past serde_json's default limit must not stop the command.
    let deep = format!(
        r#"{{"spec":{{"parameters":{}1{}}}}}"#,
        r#"{"level":"#.repeat(150),
        "}".repeat(150)
    );
    c.kubectl
        .run(&[
            "patch",
            "resource",
            "shop-db",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            &deep,
        ])
        .ok();
    let out = promote(c, &["shop-db", "--env", "staging", "-n", &ns]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pinned = c
        .kubectl
        .jsonpath("rrb", &ns, "db-staging", "{.spec.resourceRelease}");
    assert_eq!(pinned, "shop-db-abc12");
    wait_condition(c, &ns, "db-staging", "Synced", "True/Synced");
}
