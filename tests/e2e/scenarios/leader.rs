//! Leader election of the reconcile loop with two and three bindguard processes: the Lease is
//! released on SIGTERM, a killed leader is replaced, and a replica that loses the Lease stops
//! every controller it started (the per-kind request controllers included).
//!
//! Who wrote is read from the Events: each carries the writer's Lease identity as
//! `reportingInstance`.

use super::kratix_loop::{
    GARBAGE_COLLECTOR, bindings_of, finalizers_of, get_json, items, offer_at_v1, remembering,
    request_yaml, wait_for,
};
use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde_json::{Value, json};

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(a_terminated_leader_hands_over_at_once_and_a_killed_one_is_replaced),
    scenario!(handing_the_lease_away_stops_every_controller),
    scenario!(a_resource_deleted_while_no_replica_leads_takes_its_bindings_when_one_leads),
    scenario!(a_promise_deleted_while_no_replica_leads_lets_its_requests_go_when_one_leads),
];

const LEASE: [&str; 4] = ["lease", "bindguard-reconcile", "-n", "bindguard-system"];

fn lease(c: &Cluster) -> Value {
    get_json(c, &LEASE)
}

fn holder(c: &Cluster) -> String {
    lease(c)["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn wait_holder(c: &Cluster, identity: &str) {
    wait_for(c, &format!("{identity} to hold the Lease"), || {
        let seen = holder(c);
        if seen == identity { Ok(()) } else { Err(seen) }
    });
}

fn micro_time(value: &Value) -> MicroTime {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"))
}

/// Replaces the Lease with one `holder` took now for an hour, as a replica that is not running
/// would have, and waits until the main bindguard has stopped its controllers.
fn hand_lease_away(c: &Cluster, holder_name: &str) {
    let lost = || c.bindguard_log().matches("lost the lease").count();
    let lost_before = lost();
    set_lease(c, holder_name, k8s_openapi::jiff::Timestamp::now(), 3600);
    wait_for(c, "the main bindguard to stop its controllers", || {
        if lost() > lost_before {
            Ok(())
        } else {
            Err(holder(c))
        }
    });
}

/// Replaces the Lease with one `holder_name` last renewed an hour ago for a second: any replica
/// may take it.
fn let_lease_expire(c: &Cluster, holder_name: &str) {
    let an_hour_ago =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(1);
    set_lease(c, holder_name, an_hour_ago, 1);
}

/// Replaces the Lease with one `holder_name` renewed at `at` for `seconds`.
fn set_lease(c: &Cluster, holder_name: &str, at: k8s_openapi::jiff::Timestamp, seconds: i64) {
    wait_for(c, &format!("the Lease handed to {holder_name}"), || {
        let mut taken = lease(c);
        let at = serde_json::to_value(MicroTime(at)).map_err(|e| e.to_string())?;
        taken["spec"]["holderIdentity"] = json!(holder_name);
        taken["spec"]["acquireTime"] = at.clone();
        taken["spec"]["renewTime"] = at;
        taken["spec"]["leaseDurationSeconds"] = json!(seconds);
        let out = c
            .kubectl
            .run_with_stdin(&["replace", "-f", "-"], Some(&taken.to_string()));
        if out.success {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
}

/// `(reportingInstance, note)` of every BindingCreated Event about request `kind`/`name`.
fn binding_writers(c: &Cluster, ns: &str, kind: &str, name: &str) -> Vec<(String, String)> {
    let list = get_json(c, &["events.events.k8s.io", "-n", ns]);
    items(&list)
        .filter(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
        .filter(|e| e["reason"] == "BindingCreated")
        .map(|e| {
            let instance = e["reportingInstance"].as_str().unwrap_or_default();
            let note = e["note"].as_str().unwrap_or_default();
            (instance.to_string(), note.to_string())
        })
        .collect()
}

/// Waits until request `name` has exactly one binding, then returns who created it (exactly
/// one BindingCreated Event, with series count 1, is required: no duplicate write).
fn bound_once_by(c: &Cluster, ns: &str, kind: &str, name: &str) -> String {
    wait_for(c, &format!("{ns}/{name} bound once"), || {
        let bindings = bindings_of(c, ns, name);
        let writers = binding_writers(c, ns, kind, name);
        match (bindings.split(' ').count(), writers.as_slice()) {
            (1, [(instance, _)]) if !bindings.is_empty() => Ok(instance.clone()),
            _ => Err(format!("bindings={bindings:?} events={writers:?}")),
        }
    })
}

/// Sets up a Promise offering `kind` at v1 and returns the request YAML maker.
fn offered(c: &Cluster, promise: &str, group: &str, kind: &str, plural: &str) -> String {
    offer_at_v1(c, promise, (group, kind, plural));
    format!("{group}/v1alpha1")
}

/// SIGTERM releases the Lease: a follower takes it before the old holder's lease could have
/// expired. SIGKILL does not: the next follower takes over after expiry. Every request is bound
/// exactly once, by whichever replica led when it arrived.
fn a_terminated_leader_hands_over_at_once_and_a_killed_one_is_replaced(c: &Cluster) {
    let ns = c.kubectl.create_namespace("ld-handover");
    let (kind, plural) = ("Handover", "handovers");
    let api_version = offered(c, "ld-handover", "ld.example.dev", kind, plural);
    let request = |name: &str| request_yaml(&api_version, kind, name);
    let main = c.main_identity();
    wait_holder(c, main);
    c.kubectl.apply(&ns, &request("first"));
    assert_eq!(bound_once_by(c, &ns, kind, "first"), main);
    let first = c
        .start_replica("bindguard-1", &[])
        .expect("start bindguard-1");
    let last_renewal = micro_time(&lease(c)["spec"]["renewTime"]);
    c.restart_bindguard_with(&["--no-reconcile"])
        .expect("restart the main bindguard without its loop");
    wait_holder(c, "bindguard-1");
    let taken = lease(c);
    let acquired = micro_time(&taken["spec"]["acquireTime"]);
    let expiry = last_renewal.0 + k8s_openapi::jiff::SignedDuration::from_secs(15);
    assert!(
        acquired.0 < expiry,
        "bindguard-1 took the Lease at {acquired:?}, not before {main}'s lease expired: {taken}"
    );
    assert!(
        c.bindguard_log().contains("released the lease"),
        "no release logged"
    );
    c.kubectl.apply(&ns, &request("second"));
    assert_eq!(bound_once_by(c, &ns, kind, "second"), "bindguard-1");
    let second = c
        .start_replica("bindguard-2", &[])
        .expect("start bindguard-2");
    first.kill();
    for name in ["third", "fourth", "fifth"] {
        c.kubectl.apply(&ns, &request(name));
    }
    wait_holder(c, "bindguard-2");
    for name in ["third", "fourth", "fifth"] {
        assert_eq!(bound_once_by(c, &ns, kind, name), "bindguard-2");
    }
    c.restart_bindguard().expect("restart the main bindguard");
    second.terminate();
    wait_holder(c, main);
}

/// A Lease replaced by hand with another holder stops every controller of the replica that
/// held it: a request created afterwards is bound by the new holder, never by the old one.
fn handing_the_lease_away_stops_every_controller(c: &Cluster) {
    let ns = c.kubectl.create_namespace("ld-handaway");
    let (kind, plural) = ("Handaway", "handaways");
    let api_version = offered(c, "ld-handaway", "ld.example.dev", kind, plural);
    let request = |name: &str| request_yaml(&api_version, kind, name);
    let main = c.main_identity();
    wait_holder(c, main);
    c.kubectl.apply(&ns, &request("before"));
    assert_eq!(bound_once_by(c, &ns, kind, "before"), main);
    let successor = "bindguard-successor";
    hand_lease_away(c, successor);
    c.kubectl.apply(&ns, &request("after"));
    let replica = c
        .start_replica(successor, &[])
        .expect("start the successor");
    assert_eq!(bound_once_by(c, &ns, kind, "after"), successor);
    replica.terminate();
    wait_holder(c, main);
}

/// A Resource deleted while no replica leads (here: the Lease held by one that is not running)
/// takes its bindings once one leads: the view of every replica keeps the deletions it saw, and
/// a term starts with those since this replica last led. Before, the deletion was only acted on
/// as it was announced, so a binding stayed for good.
fn a_resource_deleted_while_no_replica_leads_takes_its_bindings_when_one_leads(c: &Cluster) {
    use super::reconcile::{ENVIRONMENT, PROJECT, RESOURCE, TYPE, rrb};
    let ns = c.kubectl.create_namespace("ld-cascade");
    for yaml in [PROJECT, ENVIRONMENT, TYPE, RESOURCE] {
        c.kubectl.apply(&ns, yaml);
    }
    c.kubectl.apply(&ns, &rrb("orphaned", None, None));
    let main = c.main_identity();
    wait_holder(c, main);
    let finalizers = || finalizers_of(c, "rrb", &ns, "orphaned");
    wait_for(c, "the binding's finalizer", || {
        let seen = finalizers();
        match seen.contains("openchoreo.dev/resourcereleasebinding-cleanup") {
            true => Ok(()),
            false => Err(seen),
        }
    });
    hand_lease_away(c, "bindguard-absent");
    let deleted = c
        .kubectl
        .run(&["delete", "resource", "shop-db", "-n", &ns, "--timeout=30s"]);
    assert!(deleted.success, "{}", deleted.stderr);
    let_lease_expire(c, "bindguard-absent");
    wait_holder(c, main);
    wait_for(
        c,
        "the binding of the deleted Resource gone",
        || match get_json(c, &["rrb", "orphaned", "-n", &ns]) {
            Value::Null => Ok(()),
            seen => Err(format!("{}", seen["metadata"])),
        },
    );
}

/// A Promise deleted while no replica leads: its revision waits for a leader (finalizer held),
/// and the term that cleans it up lets the kind's requests go, also one with no binding, whose
/// kind no request controller of that term ever served. Before, that request kept
/// `kratix.io/resource-binding-cleanup` for good.
fn a_promise_deleted_while_no_replica_leads_lets_its_requests_go_when_one_leads(c: &Cluster) {
    let ns = c.kubectl.create_namespace("ld-retire");
    let (kind, plural) = ("Retired", "retireds");
    let api_version = offered(c, "ld-retire", "ld.example.dev", kind, plural);
    c.kubectl
        .apply(&ns, &remembering(&api_version, kind, "unbound", "v9"));
    let finalizers = || finalizers_of(c, plural, &ns, "unbound");
    let held = r#"["kratix.io/resource-binding-cleanup"]"#;
    wait_for(c, "the request held, its binding refused", || {
        let seen = finalizers();
        if seen == held { Ok(()) } else { Err(seen) }
    });
    hand_lease_away(c, "bindguard-absent");
    c.kubectl.run(&["delete", "promise", "ld-retire"]).ok();
    let as_gc = format!("--as={GARBAGE_COLLECTOR}");
    let revision = [
        "delete",
        "promiserevision",
        "ld-retire-v1",
        &as_gc,
        "--wait=false",
    ];
    let deleted = c.kubectl.run(&revision);
    assert!(deleted.success, "{}", deleted.stderr);
    assert_eq!(finalizers(), held, "no leader, nothing let go");
    let_lease_expire(c, "bindguard-absent");
    wait_holder(c, c.main_identity());
    wait_for(c, "the request let go and the revision gone", || {
        let revision = get_json(c, &["promiserevision", "ld-retire-v1"]);
        let seen = format!("{} {}", finalizers(), revision.is_null());
        if seen == " true" { Ok(()) } else { Err(seen) }
    });
}
