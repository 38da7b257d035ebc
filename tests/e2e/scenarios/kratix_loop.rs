//! The Kratix side of the reconcile loop through deletions, edits, re-offers and name clashes:
//! revisions, requests, bindings and the Events that say what was done.
//!
//! The control plane has no garbage collector: where a Promise deletion would cascade to its
//! revisions, the scenario deletes them as the collector would (impersonating it).

use super::*;
use crate::wait::{Probe, until};
use serde_json::Value;
use std::time::Duration;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(deleting_a_promise_deletes_its_requests),
    scenario!(requests_of_a_kind_no_promise_offers_are_let_go),
    scenario!(a_namespace_being_deleted_gets_no_event_warnings),
    scenario!(a_same_version_update_replaces_the_revision_spec),
    scenario!(a_kind_is_served_by_the_promise_that_offers_it_now),
    scenario!(each_kind_is_watched_once_per_process),
    scenario!(two_promises_claiming_one_revision_name_each_get_one),
    scenario!(each_revision_action_gets_its_own_event),
    scenario!(the_loops_own_writes_pass_the_first_time),
    scenario!(a_legacy_binding_is_relabelled_and_loses_its_finalizer),
    scenario!(a_request_with_a_long_name_gets_a_labelled_binding),
    scenario!(bindings_are_named_as_kratix_names_them_and_twins_each_get_one),
    scenario!(a_deeply_nested_request_does_not_blind_the_loop),
    scenario!(a_deeply_nested_promise_gets_its_revision),
    scenario!(an_unreadable_promise_leaves_the_other_offers_served),
];

const TIMEOUT: Duration = Duration::from_secs(60);
pub(super) const GARBAGE_COLLECTOR: &str =
    "system:serviceaccount:kube-system:generic-garbage-collector";

/// Polls `look` until it returns `Ok`.
#[track_caller]
pub(super) fn wait_for<T>(
    c: &Cluster,
    what: &str,
    mut look: impl FnMut() -> Result<T, String>,
) -> T {
    until(what, TIMEOUT, || {
        Ok(match look() {
            Ok(v) => Probe::Ready(v),
            Err(seen) => Probe::NotYet(seen),
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(40)))
}

/// `kubectl get <args> -o json`, parsed; `Value::Null` when the get fails.
pub(super) fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.kubectl.run(&all);
    if !out.success {
        return Value::Null;
    }
    serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
}

/// The finalizers of `resource` `name` in `ns` as kubectl prints them (jsonpath: the object may
/// be too deep for the test's own JSON decoder); empty when it has none or is gone.
pub(super) fn finalizers_of(c: &Cluster, resource: &str, ns: &str, name: &str) -> String {
    let path = "jsonpath={.metadata.finalizers}";
    let out = c
        .kubectl
        .run(&["get", resource, name, "-n", ns, "-o", path]);
    out.stdout.trim().to_string()
}

/// A request of another kind with the version its binding should get remembered, as
/// [`request_yaml`] with the `bindguard.dev/bound-version` annotation.
pub(super) fn remembering(api_version: &str, kind: &str, name: &str, version: &str) -> String {
    request_yaml(api_version, kind, name).replace(
        &format!("  name: {name}\n"),
        &format!("  name: {name}\n  annotations:\n    bindguard.dev/bound-version: {version}\n"),
    )
}

/// Whether `kubectl get` answers NotFound.
pub(super) fn gone(c: &Cluster, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let out = c.kubectl.run(&all);
    !out.success && out.stderr.contains("NotFound")
}

/// The CRD of an offered kind: `versions` as `(name, storage)`, every one served, any spec.
pub(super) fn crd_yaml(group: &str, kind: &str, plural: &str, versions: &[(&str, bool)]) -> String {
    let versions: String = versions
        .iter()
        .map(|(name, storage)| {
            format!(
                "  - name: {name}\n    served: true\n    storage: {storage}\n    schema:\n      \
                 openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
            )
        })
        .collect();
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
         name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    \
         kind: {kind}\n    plural: {plural}\n    singular: {plural}\n  versions:\n{versions}"
    )
}

/// Applies the CRD and waits until it is Established.
pub(super) fn install_crd(
    c: &Cluster,
    group: &str,
    kind: &str,
    plural: &str,
    versions: &[(&str, bool)],
) {
    c.kubectl
        .apply("default", &crd_yaml(group, kind, plural, versions));
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

/// An offered API: group, kind, plural and versions as `(name, storage)`.
pub(super) type Offered<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, bool)]);

/// A Promise at `version` offering `kind` (its CRD indented under `spec.api`), with `extra`
/// spec lines.
pub(super) fn promise_yaml(name: &str, version: &str, api: Option<Offered>, extra: &str) -> String {
    let api = api
        .map(|(group, kind, plural, versions)| {
            let crd = crd_yaml(group, kind, plural, versions);
            let indented: String = crd.lines().map(|l| format!("    {l}\n")).collect();
            format!("  api:\n{indented}")
        })
        .unwrap_or_default();
    let spec = format!("{api}{extra}");
    let spec = if spec.is_empty() {
        " {}\n".to_string()
    } else {
        format!("\n{spec}")
    };
    format!(
        "apiVersion: platform.kratix.io/v1alpha1\nkind: Promise\nmetadata:\n  name: {name}\n  \
         labels:\n    kratix.io/promise-version: {version}\nspec:{spec}"
    )
}

/// The revisions of `promise` by spec: `name=version/latest-label/status.latest`, sorted.
pub(super) fn revisions(c: &Cluster, promise: &str) -> String {
    let list = get_json(c, &["promiserevisions"]);
    let mut seen: Vec<String> = items(&list)
        .filter(|r| r["spec"]["promiseRef"]["name"] == promise)
        .map(|r| {
            format!(
                "{}={}/{}/{}",
                r["metadata"]["name"].as_str().unwrap_or_default(),
                r["spec"]["version"].as_str().unwrap_or_default(),
                r["metadata"]["labels"]["kratix.io/latest-revision"]
                    .as_str()
                    .unwrap_or_default(),
                r["status"]["latest"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    seen.join(" ")
}

pub(super) fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list["items"].as_array().into_iter().flatten()
}

pub(super) fn expect(seen: String, want: &str) -> Result<String, String> {
    if seen == want { Ok(seen) } else { Err(seen) }
}

/// The bindings in `ns` whose spec names request `name`: `promise@version`, sorted.
pub(super) fn bindings_of(c: &Cluster, ns: &str, name: &str) -> String {
    let list = get_json(c, &["resourcebindings", "-n", ns]);
    let mut seen: Vec<String> = items(&list)
        .filter(|b| b["spec"]["resourceRef"]["name"] == name)
        .map(|b| {
            format!(
                "{}@{}",
                b["spec"]["promiseRef"]["name"].as_str().unwrap_or_default(),
                b["spec"]["version"].as_str().unwrap_or_default()
            )
        })
        .collect();
    seen.sort();
    seen.join(" ")
}

pub(super) fn request_yaml(api_version: &str, kind: &str, name: &str) -> String {
    format!(
        "apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\nspec: {{size: small}}\n"
    )
}

/// The notes of the events.k8s.io Events about `regarding` (kind/name) with `reason`, in `ns`.
pub(super) fn notes(c: &Cluster, ns: &str, regarding: (&str, &str), reason: &str) -> Vec<String> {
    let list = get_json(c, &["events.events.k8s.io", "-n", ns]);
    let mut out: Vec<String> = items(&list)
        .filter(|e| e["regarding"]["kind"] == regarding.0 && e["regarding"]["name"] == regarding.1)
        .filter(|e| e["reason"] == reason)
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

/// Installs the CRD of `(group, kind, plural)` at v1alpha1 and a Promise `promise` offering it
/// at v1, waits for its revision, and returns the API offered.
pub(super) fn offer_at_v1<'a>(
    c: &Cluster,
    promise: &str,
    (group, kind, plural): (&'a str, &'a str, &'a str),
) -> Option<Offered<'a>> {
    install_crd(c, group, kind, plural, V1ALPHA1);
    let api = Some((group, kind, plural, V1ALPHA1));
    c.kubectl
        .apply("default", &promise_yaml(promise, "v1", api, ""));
    wait_revisions(c, promise, &format!("{promise}-v1=v1/true/true"));
    api
}

/// Waits for `promise`'s revisions to read `want`.
fn wait_revisions(c: &Cluster, promise: &str, want: &str) {
    wait_for(c, &format!("revisions {want}"), || {
        expect(revisions(c, promise), want)
    });
}

/// Waits until request `name` in `ns` has exactly the bindings `want`.
fn wait_bindings(c: &Cluster, ns: &str, name: &str, want: &str) {
    wait_for(c, &format!("{ns}/{name} bound {want}"), || {
        expect(bindings_of(c, ns, name), want)
    });
}

const DB: (&str, &str, &str) = ("db.kl.example.dev", "Db", "dbs");
pub(super) const V1ALPHA1: &[(&str, bool)] = &[("v1alpha1", true)];

/// Issue 13 case 1: a Promise deleted with the default background deletion is gone before its
/// revisions; deleting them (as the garbage collector does) deletes the requests bound to each,
/// read from the revision's own copy of the API, with an Event for each request actually
/// deleted.
fn deleting_a_promise_deletes_its_requests(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-delete");
    let (group, kind, plural) = DB;
    let api = offer_at_v1(c, "kl-db", (group, kind, plural));
    let request = |name: &str| request_yaml(&format!("{group}/v1alpha1"), kind, name);
    c.kubectl.apply(&ns, &request("alpha"));
    wait_bindings(c, &ns, "alpha", "kl-db@v1");
    c.kubectl
        .apply("default", &promise_yaml("kl-db", "v2", api, ""));
    wait_revisions(c, "kl-db", "kl-db-v1=v1//false kl-db-v2=v2/true/true");
    c.kubectl.apply(&ns, &request("beta"));
    wait_bindings(c, &ns, "beta", "kl-db@v2");
    c.kubectl.run(&["delete", "promise", "kl-db"]).ok();
    let as_gc = format!("--as={GARBAGE_COLLECTOR}");
    c.kubectl
        .run(&[
            "delete",
            "promiserevision",
            "kl-db-v1",
            "kl-db-v2",
            &as_gc,
            "--wait=false",
        ])
        .ok();
    let resource = format!("{plural}.{group}");
    wait_for(c, "requests, bindings and revisions gone", || {
        let left: Vec<&str> = [
            ("alpha", !gone(c, &[&resource, "alpha", "-n", &ns])),
            ("beta", !gone(c, &[&resource, "beta", "-n", &ns])),
            ("kl-db-v1", !gone(c, &["promiserevision", "kl-db-v1"])),
            ("kl-db-v2", !gone(c, &["promiserevision", "kl-db-v2"])),
        ]
        .into_iter()
        .filter_map(|(name, there)| there.then_some(name))
        .collect();
        let bindings = format!(
            "{}{}",
            bindings_of(c, &ns, "alpha"),
            bindings_of(c, &ns, "beta")
        );
        let seen = format!("left={left:?} bindings={bindings:?}");
        expect(seen, "left=[] bindings=\"\"")
    });
    let deleted = |rev: &str| notes(c, "default", ("PromiseRevision", rev), "RequestDeleted");
    let want = |name: &str, version: &str| {
        vec![format!(
            "deleted Db {ns}/{name}: its ResourceBinding pins version \"{version}\""
        )]
    };
    wait_for(c, "one RequestDeleted Event per deleted request", || {
        let seen = (deleted("kl-db-v1"), deleted("kl-db-v2"));
        if seen == (want("alpha", "v1"), want("beta", "v2")) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
}

const CACHE: (&str, &str, &str) = ("cache.kl.example.dev", "Cache", "caches");

/// A Promise deleted while a request has no binding (the version it remembers does not exist)
/// used to leave that request holding `kratix.io/resource-binding-cleanup` with no controller
/// to remove it: deleting it hung. Once no Promise offers the kind, every request
/// of it is let go; one pinned to a revision is still deleted with that revision.
fn requests_of_a_kind_no_promise_offers_are_let_go(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-retire");
    let (group, kind, plural) = CACHE;
    offer_at_v1(c, "kl-cache", (group, kind, plural));
    let request = request_yaml(&format!("{group}/v1alpha1"), kind, "alpha");
    c.kubectl.apply(&ns, &request);
    let unpinned = remembering(&format!("{group}/v1alpha1"), kind, "gamma", "v9");
    c.kubectl.apply(&ns, &unpinned);
    wait_bindings(c, &ns, "alpha", "kl-cache@v1");
    let finalizers = |name: &str| finalizers_of(c, plural, &ns, name);
    // gamma's binding is refused (v9 is no version of the Promise): it holds the finalizer
    // with no binding, as a request does before its Promise has a revision.
    wait_for(c, "gamma held without a binding", || {
        let seen = format!("{} {:?}", finalizers("gamma"), bindings_of(c, &ns, "gamma"));
        expect(seen, r#"["kratix.io/resource-binding-cleanup"] """#)
    });
    c.kubectl.run(&["delete", "promise", "kl-cache"]).ok();
    wait_for(c, "both requests let go", || {
        let seen = format!("{} {}", finalizers("alpha"), finalizers("gamma"));
        expect(seen, " ")
    });
    let deleted = c
        .kubectl
        .run(&["delete", plural, "gamma", "-n", &ns, "--timeout=30s"]);
    assert!(deleted.success, "{}", deleted.stderr);
    let as_gc = format!("--as={GARBAGE_COLLECTOR}");
    let revision = [
        "delete",
        "promiserevision",
        "kl-cache-v1",
        &as_gc,
        "--wait=false",
    ];
    c.kubectl.run(&revision).ok();
    wait_for(c, "the pinned request deleted with its revision", || {
        let there = !gone(c, &[plural, "alpha", "-n", &ns]);
        let seen = format!(
            "alpha there: {there}, bound: {:?}",
            bindings_of(c, &ns, "alpha")
        );
        expect(seen, "alpha there: false, bound: \"\"")
    });
}

/// A namespace being deleted takes no new Events: the loop's Events about the requests it
/// finalizes there are dropped without a warning line each (a namespace of 200 requests logged
/// 400). The control plane has no namespace controller: the test deletes as it would.
fn a_namespace_being_deleted_gets_no_event_warnings(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-ns-gone");
    let (group, kind, plural) = CACHE;
    offer_at_v1(c, "kl-ns-cache", (group, kind, plural));
    c.kubectl.apply(
        &ns,
        &request_yaml(&format!("{group}/v1alpha1"), kind, "doomed"),
    );
    wait_bindings(c, &ns, "doomed", "kl-ns-cache@v1");
    let ended = c.kubectl.run(&["delete", "namespace", &ns, "--wait=false"]);
    assert!(ended.success, "{}", ended.stderr);
    let as_controller = "--as=system:serviceaccount:kube-system:namespace-controller";
    let deleted = c.kubectl.run(&[
        "delete",
        plural,
        "doomed",
        "-n",
        &ns,
        as_controller,
        "--timeout=30s",
    ]);
    assert!(deleted.success, "{}", deleted.stderr);
    assert_eq!(bindings_of(c, &ns, "doomed"), "");
    let log = c.bindguard_log();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("being terminated"))
        .collect();
    assert!(noisy.is_empty(), "{noisy:#?}");
    c.kubectl.run(&["delete", "promise", "kl-ns-cache"]).ok();
}

/// Issue 13 case 2: re-applying a Promise at the same version without `destinationSelectors`
/// drops them from the revision; an unchanged Promise rewrites and announces nothing.
fn a_same_version_update_replaces_the_revision_spec(c: &Cluster) {
    let selectors = "  destinationSelectors:\n  - matchLabels: {env: dev}\n";
    c.kubectl
        .apply("default", &promise_yaml("kl-sel", "v1", None, selectors));
    let selectors_of = || {
        let rev = get_json(c, &["promiserevision", "kl-sel-v1"]);
        rev["spec"]["promiseSpec"]["destinationSelectors"].to_string()
    };
    wait_for(c, "the revision with the selectors", || {
        expect(selectors_of(), r#"[{"matchLabels":{"env":"dev"}}]"#)
    });
    c.kubectl.apply(
        "default",
        &promise_yaml("kl-sel", "v1", None, "  workflows: {}\n"),
    );
    wait_for(c, "the selectors gone from the revision", || {
        expect(selectors_of(), "null")
    });
    let version =
        || get_json(c, &["promiserevision", "kl-sel-v1"])["metadata"]["resourceVersion"].clone();
    let updates = || notes(c, "default", ("Promise", "kl-sel"), "RevisionUpdated");
    wait_for(c, "the update announced", || {
        let seen = updates();
        let want =
            vec!["replaced the spec of PromiseRevision kl-sel-v1 with the Promise's".to_string()];
        if seen == want {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    let before = (version(), updates());
    let reconciled = || promise_reconciles(c);
    let count = reconciled();
    c.kubectl
        .run(&["annotate", "promise", "kl-sel", "touched=yes"])
        .ok();
    wait_for(c, "the Promise reconciled again", || {
        let now = reconciled();
        if now > count {
            Ok(())
        } else {
            Err(format!("{now} reconciles"))
        }
    });
    assert_eq!(
        (version(), updates()),
        before,
        "an equal revision was rewritten"
    );
}

/// `bindguard_reconciles_total{kind="Promise",outcome="ok"}`.
fn promise_reconciles(c: &Cluster) -> u64 {
    let (_, body) = c.admin_get("/metrics").expect("GET /metrics");
    let series = r#"bindguard_reconciles_total{kind="Promise",outcome="ok"} "#;
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The lines of bindguard's log that contain `needle`.
pub(super) fn log_lines(c: &Cluster, needle: &str) -> Vec<String> {
    c.bindguard_log()
        .lines()
        .map(without_colours)
        .filter(|l| l.contains(needle))
        .collect()
}

/// `line` without ANSI escape sequences.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(ch);
        }
    }
    out
}

/// How many request controllers run for `kind`: started minus stopped, from the log.
fn controllers_for(c: &Cluster, kind: &str) -> usize {
    let mine = format!("kind={kind} ");
    let count = |what: &str| {
        log_lines(c, what)
            .iter()
            .filter(|l| l.contains(&mine))
            .count()
    };
    count("starting request controller").saturating_sub(count("stopping request controller"))
}

/// Issue 13 case 3: when the Promise offering a kind is deleted and another offers it, new
/// requests are bound to the new one; when its API moves to another version, one controller
/// still serves the kind.
fn a_kind_is_served_by_the_promise_that_offers_it_now(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-reoffer");
    let (group, kind, plural) = ("widget.kl.example.dev", "Widget", "widgets");
    install_crd(c, group, kind, plural, V1ALPHA1);
    let request =
        |version: &str, name: &str| request_yaml(&format!("{group}/{version}"), kind, name);
    let api = Some((group, kind, plural, V1ALPHA1));
    c.kubectl
        .apply("default", &promise_yaml("kl-first", "v1", api, ""));
    wait_revisions(c, "kl-first", "kl-first-v1=v1/true/true");
    c.kubectl.apply(&ns, &request("v1alpha1", "w1"));
    wait_bindings(c, &ns, "w1", "kl-first@v1");
    c.kubectl.run(&["delete", "promise", "kl-first"]).ok();
    let as_gc = format!("--as={GARBAGE_COLLECTOR}");
    c.kubectl
        .run(&["delete", "promiserevision", "kl-first-v1", &as_gc])
        .ok();
    let resource = format!("{plural}.{group}");
    wait_for(c, "w1 gone with its Promise", || {
        if gone(c, &[&resource, "w1", "-n", &ns]) {
            Ok(())
        } else {
            Err("w1 still there".into())
        }
    });
    c.kubectl
        .apply("default", &promise_yaml("kl-second", "v1", api, ""));
    wait_revisions(c, "kl-second", "kl-second-v1=v1/true/true");
    c.kubectl.apply(&ns, &request("v1alpha1", "w2"));
    wait_bindings(c, &ns, "w2", "kl-second@v1");
    let moved: &[(&str, bool)] = &[("v1alpha1", false), ("v1beta1", true)];
    install_crd(c, group, kind, plural, moved);
    c.kubectl.apply(
        "default",
        &promise_yaml("kl-second", "v1", Some((group, kind, plural, moved)), ""),
    );
    wait_for(c, "the controller serving v1beta1", || {
        let started = log_lines(c, "starting request controller");
        let found = started
            .iter()
            .any(|l| l.contains("kind=Widget ") && l.contains("version=v1beta1"));
        if found {
            Ok(())
        } else {
            Err(format!("{started:?}"))
        }
    });
    c.kubectl.apply(&ns, &request("v1beta1", "w3"));
    wait_bindings(c, &ns, "w3", "kl-second@v1");
    assert_eq!(controllers_for(c, kind), 1, "one controller per kind");
    let created = notes(c, &ns, (kind, "w3"), "BindingCreated");
    assert_eq!(created.len(), 1, "{created:?}");
}

/// Open watches on `group`/`resource`, by the API server's own gauge.
fn watches_of(c: &Cluster, group: &str, resource: &str) -> Result<u64, String> {
    let out = c.kubectl.run(&["get", "--raw", "/metrics"]);
    if !out.success {
        return Err(out.stderr);
    }
    let (group, resource) = (
        format!(r#"group="{group}""#),
        format!(r#"resource="{resource}""#),
    );
    let open = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("apiserver_longrunning_requests{"))
        .filter(|l| l.contains(r#"verb="WATCH""#) && l.contains(&group) && l.contains(&resource))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Ok(open as u64)
}

/// Issue 14: the loop follows Promises, revisions and bindings through the view. With a
/// Promise's request controller running, each kind bindguard reads has exactly one open watch:
/// the view's (the requests': their controller's); and a revision's lost latest mark comes back
/// at once, from the revision's change alone (the Promise itself did not change).
fn each_kind_is_watched_once_per_process(c: &Cluster) {
    let (group, kind, plural) = ("gadget.kl.example.dev", "Gadget", "gadgets");
    offer_at_v1(c, "kl-watch", (group, kind, plural));
    wait_for(
        c,
        "the Gadget controller running",
        || match controllers_for(c, kind) {
            1 => Ok(()),
            n => Err(format!("{n} controllers")),
        },
    );
    let kinds = [
        ("platform.kratix.io", "promises"),
        ("platform.kratix.io", "promiserevisions"),
        ("platform.kratix.io", "resourcebindings"),
        ("openchoreo.dev", "resourcereleasebindings"),
        ("openchoreo.dev", "resources"),
        (group, plural),
    ];
    wait_for(c, "one watch per kind", || {
        let mut seen = Vec::new();
        for (group, resource) in kinds {
            seen.push((resource, watches_of(c, group, resource)?));
        }
        match seen.iter().all(|(_, n)| *n == 1) {
            true => Ok(()),
            false => Err(format!("open watches: {seen:?}")),
        }
    });
    let unmarked = c.kubectl.run(&[
        "patch",
        "promiserevision",
        "kl-watch-v1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"latest":false}}"#,
    ]);
    assert!(unmarked.success, "{}", unmarked.stderr);
    wait_revisions(c, "kl-watch", "kl-watch-v1=v1/true/true");
}

/// Issue 13 case 4: `kl-redis`@`ha-v1` and `kl-redis-ha`@`v1` share the seed's revision name;
/// the second gets the fallback name the webhook announces, and both are latest.
fn two_promises_claiming_one_revision_name_each_get_one(c: &Cluster) {
    c.kubectl
        .apply("default", &promise_yaml("kl-redis", "ha-v1", None, ""));
    wait_revisions(c, "kl-redis", "kl-redis-ha-v1=ha-v1/true/true");
    let second = promise_yaml("kl-redis-ha", "v1", None, "");
    let prefix = r#"Warning: Promise "kl-redis-ha": revision name "kl-redis-ha-v1" is taken; its revision is ""#;
    let dry = ["apply", "--dry-run=server", "-f", "-"];
    let warned = wait_for(c, "the webhook to warn about the taken name", || {
        let out = c.kubectl.run_with_stdin(&dry, Some(&second));
        out.stderr_line(prefix)
            .map(str::to_string)
            .ok_or_else(|| out.to_string())
    });
    let fallback = warned
        .trim_start_matches(prefix)
        .trim_end_matches('"')
        .to_string();
    assert!(
        fallback.starts_with("kl-redis-ha-") && fallback != "kl-redis-ha-v1",
        "{warned}"
    );
    c.kubectl.apply("default", &second);
    wait_revisions(c, "kl-redis-ha", &format!("{fallback}=v1/true/true"));
    assert_eq!(revisions(c, "kl-redis"), "kl-redis-ha-v1=ha-v1/true/true");
}

/// Issue 13 case 5: installing v0.1.0, then v0.2.0, then v0.1.0 again leaves one Event per
/// action, each saying what was done to which revision.
fn each_revision_action_gets_its_own_event(c: &Cluster) {
    for version in ["v0.1.0", "v0.2.0"] {
        c.kubectl
            .apply("default", &promise_yaml("kl-ev", version, None, ""));
        let want = format!("kl-ev-{version}={version}/true/true");
        wait_for(c, &want, || {
            let seen = revisions(c, "kl-ev");
            if seen.contains(&want) {
                Ok(())
            } else {
                Err(seen)
            }
        });
    }
    c.kubectl
        .apply("default", &promise_yaml("kl-ev", "v0.1.0", None, ""));
    wait_revisions(
        c,
        "kl-ev",
        "kl-ev-v0.1.0=v0.1.0/true/true kl-ev-v0.2.0=v0.2.0//false",
    );
    let events = |reason: &str| notes(c, "default", ("Promise", "kl-ev"), reason);
    wait_for(c, "an Event per action", || {
        let seen = [
            events("RevisionCreated"),
            events("RevisionMarkedLatest"),
            events("RevisionSuperseded"),
        ];
        let want = [
            vec![
                r#"created PromiseRevision kl-ev-v0.1.0 for version "v0.1.0""#.to_string(),
                r#"created PromiseRevision kl-ev-v0.2.0 for version "v0.2.0""#.to_string(),
            ],
            vec!["marked PromiseRevision kl-ev-v0.1.0 as the latest".to_string()],
            vec![
                "PromiseRevision kl-ev-v0.1.0 is no longer the latest; kl-ev-v0.2.0 is".to_string(),
                "PromiseRevision kl-ev-v0.2.0 is no longer the latest; kl-ev-v0.1.0 is".to_string(),
            ],
        ];
        if seen == want {
            Ok(())
        } else {
            Err(format!("{seen:#?}"))
        }
    });
}

/// Issue 9 §8: the loop's own writes pass the API server, the CRDs and bindguard's webhooks the
/// first time: after the revisions above, the log holds no refused finalizer write.
fn the_loops_own_writes_pass_the_first_time(c: &Cluster) {
    for version in ["a1", "a2", "a3"] {
        c.kubectl
            .apply("default", &promise_yaml("kl-writes", version, None, ""));
        let want = format!("kl-writes-{version}={version}/true/true");
        wait_for(c, &want, || {
            let seen = revisions(c, "kl-writes");
            if seen.contains(&want) {
                Ok(())
            } else {
                Err(seen)
            }
        });
    }
    let refused = log_lines(c, "failed to add finalizer");
    assert!(refused.is_empty(), "{refused:#?}");
}

/// Issue 9 §2: a binding created while the webhook was away, invalid by today's rules
/// (its request in another namespace, an unknown version), can still be relabelled, deleted,
/// and lose its finalizer while Terminating.
fn a_legacy_binding_is_relabelled_and_loses_its_finalizer(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-legacy");
    let legacy = "apiVersion: platform.kratix.io/v1alpha1\nkind: ResourceBinding\nmetadata:\n  \
                  name: legacy\n  finalizers: [example.com/legacy]\nspec:\n  promiseRef: {name: kl-legacy}\n  \
                  resourceRef: {name: old, namespace: elsewhere}\n  version: v9\n";
    c.without_webhooks(|| {
        c.kubectl.apply(&ns, legacy);
    });
    let label = [
        "label",
        "resourcebinding",
        "legacy",
        "-n",
        &ns,
        "team=payments",
    ];
    c.kubectl.run(&label).ok();
    c.kubectl
        .run(&[
            "delete",
            "resourcebinding",
            "legacy",
            "-n",
            &ns,
            "--wait=false",
        ])
        .ok();
    let unblock = r#"[{"op":"remove","path":"/metadata/finalizers"}]"#;
    c.kubectl
        .run(&[
            "patch",
            "resourcebinding",
            "legacy",
            "-n",
            &ns,
            "--type=json",
            "-p",
            unblock,
        ])
        .ok();
    wait_for(c, "the legacy binding gone", || {
        if gone(c, &["resourcebinding", "legacy", "-n", &ns]) {
            Ok(())
        } else {
            Err("still there".into())
        }
    });
}

/// Issue 9 §1: a request whose name is longer than a label value gets a binding labelled with
/// the shortened value; the seed's label query finds it, and the loop, reading the spec, keeps
/// exactly one (recreating it when deleted, removing it with the request).
fn a_request_with_a_long_name_gets_a_labelled_binding(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-long");
    let (group, kind, plural) = ("long.kl.example.dev", "Long", "longs");
    offer_at_v1(c, "kl-long", (group, kind, plural));
    let name = format!(
        "{}-request",
        "a-resource-request-with-a-long-name".repeat(2)
    );
    assert!(name.len() > 70, "{}", name.len());
    c.kubectl.apply(
        &ns,
        &request_yaml(&format!("{group}/v1alpha1"), kind, &name),
    );
    wait_bindings(c, &ns, &name, "kl-long@v1");
    let label = bindguard::naming::label_value(&name);
    let selector = format!("kratix.io/promise-name=kl-long,kratix.io/resource-name={label}");
    let found = get_json(c, &["resourcebindings", "-n", &ns, "-l", &selector]);
    let names: Vec<&str> = items(&found)
        .filter_map(|b| b["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 1, "{found}");
    let binding = names[0].to_string();
    c.kubectl
        .run(&["delete", "resourcebinding", &binding, "-n", &ns])
        .ok();
    wait_for(c, "the binding recreated", || {
        let b = get_json(c, &["resourcebinding", &binding, "-n", &ns]);
        let labelled = b["metadata"]["labels"]["kratix.io/resource-name"] == label.as_str();
        if labelled { Ok(()) } else { Err(b.to_string()) }
    });
    wait_bindings(c, &ns, &name, "kl-long@v1");
    let resource = format!("{plural}.{group}");
    c.kubectl.run(&["delete", &resource, &name, "-n", &ns]).ok();
    wait_bindings(c, &ns, &name, "");
}

/// Bindings get Kratix's names (`example-redis-e7f90` in the seed) and the request's labels;
/// two requests whose `<request>-<promise>` agree in the 56 characters that name keeps each
/// get a binding of their own.
fn bindings_are_named_as_kratix_names_them_and_twins_each_get_one(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-names");
    let (group, kind, plural) = ("names.kl.example.dev", "Named", "nameds");
    offer_at_v1(c, "kl-names", (group, kind, plural));
    let api_version = format!("{group}/v1alpha1");
    let labelled = request_yaml(&api_version, kind, "example")
        .replace("metadata:\n", "metadata:\n  labels:\n    team: payments\n");
    c.kubectl.apply(&ns, &labelled);
    wait_bindings(c, &ns, "example", "kl-names@v1");
    let name = bindguard::naming::binding_name("example", "kl-names");
    let binding = get_json(c, &["resourcebinding", &name, "-n", &ns]);
    assert_eq!(
        binding["metadata"]["labels"]["team"], "payments",
        "{binding}"
    );
    // Kratix's own condition beside ours, for tools that wait on it.
    wait_for(c, "UpgradeSucceeded on the binding", || {
        let path = r#"jsonpath={.status.conditions[?(@.type=="UpgradeSucceeded")].status}/{.status.conditions[?(@.type=="UpgradeSucceeded")].reason}/{.status.lastAppliedVersion}"#;
        let out = c
            .kubectl
            .run(&["get", "resourcebinding", &name, "-n", &ns, "-o", path]);
        expect(out.stdout.trim().to_string(), "True/UpgradeComplete/v1")
    });
    let twins = ["a", "b"].map(|end| format!("{}-{end}", "twin".repeat(15)));
    assert_eq!(
        bindguard::naming::binding_name(&twins[0], "kl-names"),
        bindguard::naming::binding_name(&twins[1], "kl-names"),
        "the names agree where Kratix cuts them"
    );
    for twin in &twins {
        c.kubectl
            .apply(&ns, &request_yaml(&api_version, kind, twin));
    }
    for twin in &twins {
        wait_bindings(c, &ns, twin, "kl-names@v1");
    }
}

/// A Promise whose spec nests far deeper than kube's decoder reads (128 levels) still gets its
/// revision, a copy of that spec: the loop reads and writes revisions as text.
fn a_deeply_nested_promise_gets_its_revision(c: &Cluster) {
    let mut nested = serde_json::json!("bottom");
    for _ in 0..3_000 {
        nested = serde_json::json!({ "a": nested });
    }
    let promise = serde_json::json!({
        "apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise",
        "metadata": {"name": "kl-deep-promise", "labels": {"kratix.io/promise-version": "v1"}},
        "spec": {"dependencies": [nested]},
    });
    c.kubectl
        .run_with_stdin(&["create", "-f", "-"], Some(&promise.to_string()))
        .ok();
    let revision = ["promiserevision", "kl-deep-promise-v1"];
    // jsonpath: the revision is too deep for the test's own JSON decoder.
    wait_for(c, "the deep Promise's revision, latest", || {
        let path = "jsonpath={.spec.version}/{.metadata.labels.kratix\\.io/latest-revision}/{.status.latest}";
        let out = c
            .kubectl
            .run(&["get", revision[0], revision[1], "-o", path]);
        expect(out.stdout.trim().to_string(), "v1/true/true")
    });
    let copied = c
        .kubectl
        .run(&["get", revision[0], revision[1], "-o", "json"]);
    assert_eq!(
        copied.stdout.matches("bottom").count(),
        1,
        "the whole spec is copied"
    );
    // Gone before the next scenario lists revisions, as a Promise deletion would take it.
    c.kubectl
        .run(&["delete", "promise", "kl-deep-promise"])
        .ok();
    let as_gc = format!("--as={GARBAGE_COLLECTOR}");
    c.kubectl
        .run(&["delete", revision[0], revision[1], &as_gc])
        .ok();
}

/// Item 4 of the hardening: a request nested 150 levels deep is read metadata-only, so it
/// neither fails the request watch nor its initial list after a restart: it is bound, and so
/// is a new request after the restart; and the cleanup of the revision it is pinned to deletes
/// it (that cleanup's own read of it used to fail, and the revision stayed Terminating).
fn a_deeply_nested_request_does_not_blind_the_loop(c: &Cluster) {
    let ns = c.kubectl.create_namespace("kl-deep");
    let (group, kind, plural) = ("deep.kl.example.dev", "Deep", "deeps");
    let api = offer_at_v1(c, "kl-deep", (group, kind, plural));
    let api_version = format!("{group}/v1alpha1");
    let mut nested = serde_json::json!("bottom");
    for _ in 0..150 {
        nested = serde_json::json!({ "a": nested });
    }
    let deep = serde_json::json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": "deep"}, "spec": nested,
    });
    c.kubectl
        .run_with_stdin(&["create", "-n", &ns, "-f", "-"], Some(&deep.to_string()))
        .ok();
    wait_bindings(c, &ns, "deep", "kl-deep@v1");
    c.restart_bindguard().expect("restart bindguard");
    c.kubectl
        .apply(&ns, &request_yaml(&api_version, kind, "after-restart"));
    wait_bindings(c, &ns, "after-restart", "kl-deep@v1");
    assert_eq!(bindings_of(c, &ns, "deep"), "kl-deep@v1");
    // Its revision's cleanup reads it metadata-only too: the deep request is deleted with it.
    c.kubectl
        .apply("default", &promise_yaml("kl-deep", "v2", api, ""));
    wait_revisions(c, "kl-deep", "kl-deep-v1=v1//false kl-deep-v2=v2/true/true");
    let deleted = c
        .kubectl
        .run(&["delete", "promiserevision", "kl-deep-v1", "--wait=false"]);
    assert!(deleted.success, "{}", deleted.stderr);
    wait_for(c, "the requests pinned to v1 deleted with it", || {
        let left: Vec<&str> = ["deep", "after-restart"]
            .into_iter()
            .filter(|name| !gone(c, &[plural, name, "-n", &ns]))
            .collect();
        let revision = gone(c, &["promiserevision", "kl-deep-v1"]);
        expect(format!("{left:?} {revision}"), "[] true")
    });
}

/// Issue 14: a Promise and a revision nested deeper than the decoder allows (created while the
/// webhooks were away) block no other Promise: the offers leave the Promise out, revisions are
/// named from the view, and a kind another Promise offers after them gets its revision and is
/// served.
fn an_unreadable_promise_leaves_the_other_offers_served(c: &Cluster) {
    let mut nested = serde_json::json!("bottom");
    for _ in 0..150 {
        nested = serde_json::json!({ "a": nested });
    }
    let poison = serde_json::json!({
        "apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise",
        "metadata": {"name": "kl-nested", "labels": {"kratix.io/promise-version": "v1"}},
        "spec": {"dependencies": [nested]},
    });
    let poison_revision = serde_json::json!({
        "apiVersion": "platform.kratix.io/v1alpha1", "kind": "PromiseRevision",
        "metadata": {"name": "kl-nested-v1"},
        "spec": {"promiseRef": {"name": "kl-nested"}, "version": "v1", "promiseSpec": {"api": nested}},
    });
    c.without_webhooks(|| {
        for object in [&poison, &poison_revision] {
            let created = c
                .kubectl
                .run_with_stdin(&["create", "-f", "-"], Some(&object.to_string()));
            assert!(created.success, "{}", created.stderr);
        }
    });
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = c.kubectl.create_namespace("kl-nested");
        let (group, kind, plural) = ("nest.kl.example.dev", "Nest", "nests");
        install_crd(c, group, kind, plural, V1ALPHA1);
        let api = Some((group, kind, plural, V1ALPHA1));
        c.kubectl
            .apply("default", &promise_yaml("kl-after-nested", "v1", api, ""));
        // By name: a list holding the poison revision is one kubectl cannot print.
        wait_for(c, "the revision of kl-after-nested, latest", || {
            let rev = get_json(c, &["promiserevision", "kl-after-nested-v1"]);
            let seen = format!(
                "{}/{}/{}",
                rev["spec"]["version"],
                rev["metadata"]["labels"]["kratix.io/latest-revision"],
                rev["status"]["latest"]
            );
            expect(seen, r#""v1"/"true"/true"#)
        });
        let api_version = format!("{group}/v1alpha1");
        c.kubectl
            .apply(&ns, &request_yaml(&api_version, kind, "n1"));
        wait_bindings(c, &ns, "n1", "kl-after-nested@v1");
        // A revision pinned by a request and turned too deep to decode whole is still cleaned up
        // when deleted: its request goes, named by the copied API read on its own.
        let deepened = serde_json::json!({"spec": {"promiseSpec": {"dependencies": [nested]}}});
        c.without_webhooks(|| {
            let revision = ["promiserevision", "kl-after-nested-v1"];
            let patch = ["--type=merge", "-p", &deepened.to_string()];
            let patched = c.kubectl.run(&[&["patch"][..], &revision, &patch].concat());
            assert!(patched.success, "{}", patched.stderr);
            let deleted = c
                .kubectl
                .run(&[&["delete"][..], &revision, &["--wait=false"]].concat());
            assert!(deleted.success, "{}", deleted.stderr);
        });
        wait_for(
            c,
            "the request pinned to the deleted deep revision to be deleted",
            || {
                gone(c, &[plural, "n1", "-n", &ns])
                    .then_some(())
                    .ok_or_else(|| "still there".to_string())
            },
        );
        // The hand-made revision is finalized, and let go when deleted once its Promise is gone
        // (the loop reads the deep Promise and keeps its revision the latest until then).
        wait_for(
            c,
            "the unreadable revision to get the loop's finalizer",
            || {
                // jsonpath: the object is too deep for the test's own JSON decoder.
                let path = "jsonpath={.metadata.finalizers}";
                let out = c
                    .kubectl
                    .run(&["get", "promiserevision", "kl-nested-v1", "-o", path]);
                expect(
                    out.stdout.trim().to_string(),
                    r#"["kratix.io/resource-request-cleanup"]"#,
                )
            },
        );
        c.kubectl.run(&["delete", "promise", "kl-nested"]).ok();
        let deleted = c
            .kubectl
            .run(&["delete", "promiserevision", "kl-nested-v1", "--wait=false"]);
        assert!(deleted.success, "{}", deleted.stderr);
        wait_for(c, "the unreadable revision to be gone", || {
            gone(c, &["promiserevision", "kl-nested-v1"])
                .then_some(())
                .ok_or_else(|| "still there".to_string())
        });
    }));
    // Gone whatever happened above, so no later scenario meets it.
    c.without_webhooks(|| {
        let promise = ["delete", "promise", "kl-nested", "--ignore-not-found"];
        c.kubectl.run(&promise).ok();
        let revision = ["promiserevision", "kl-nested-v1", "--ignore-not-found"];
        c.kubectl.run(&[&["delete"][..], &revision].concat()).ok();
    });
    if let Err(failure) = served {
        std::panic::resume_unwind(failure);
    }
}
