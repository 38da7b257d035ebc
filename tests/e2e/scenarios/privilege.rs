//! Least privilege: bindguard runs as its ServiceAccount with exactly `manifests/base/rbac.yaml`.
//! What it needs shows in the other scenarios (a missing permission fails them, and the last
//! scenario here fails on any refusal in bindguard's log); what it must never do is asked of the
//! API server's authorizer here.

use super::*;
use crate::cluster::BINDGUARD_USER;

/// This area's scenarios, in order. Keep this area last: the final check reads the log the
/// scenarios before it produced.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(the_service_account_may_do_only_what_bindguard_does),
    scenario!(bindguard_was_never_refused_by_the_api_server),
];

/// `kubectl auth can-i <verb> <resource> [-n ns]` as bindguard's ServiceAccount.
fn can_i(k: &Kubectl, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource, "--as", BINDGUARD_USER];
    match ns {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("--all-namespaces"),
    }
    let out = k.run(&args);
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("unexpected answer:\n{out}"),
    }
}

/// The permissions the code uses are granted; the dangerous ones it never uses are not.
fn the_service_account_may_do_only_what_bindguard_does(c: &Cluster) {
    let k = &c.kubectl;
    let granted = [
        ("watch", "resources.openchoreo.dev", None),
        ("patch", "resourcereleasebindings.openchoreo.dev", None),
        (
            "patch",
            "resourcereleasebindings.openchoreo.dev/status",
            None,
        ),
        ("create", "promiserevisions.platform.kratix.io", None),
        ("delete", "resourcebindings.platform.kratix.io", None),
        ("create", "events.events.k8s.io", None),
        (
            "update",
            "leases.coordination.k8s.io",
            Some("bindguard-system"),
        ),
    ];
    for (verb, resource, ns) in granted {
        assert!(can_i(k, verb, resource, ns), "{verb} {resource} is needed");
    }
    let refused = [
        ("get", "secrets", None),
        ("list", "configmaps", None),
        ("create", "pods", None),
        ("patch", "deployments.apps", None),
        ("update", "resources.openchoreo.dev", None),
        ("delete", "resourcetypes.openchoreo.dev", None),
        ("create", "resourcereleasebindings.openchoreo.dev", None),
        ("update", "resourcereleasebindings.openchoreo.dev", None),
        ("delete", "promises.platform.kratix.io", None),
        ("delete", "promiserevisions.platform.kratix.io", None),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
        ("create", "events", None),
        ("list", "widgets.other.example.dev", None),
        ("update", "leases.coordination.k8s.io", Some("kube-system")),
        (
            "list",
            "leases.coordination.k8s.io",
            Some("bindguard-system"),
        ),
    ];
    for (verb, resource, ns) in refused {
        assert!(
            !can_i(k, verb, resource, ns),
            "{verb} {resource} is never needed"
        );
    }
}

/// No request bindguard made during the suite was refused by RBAC.
fn bindguard_was_never_refused_by_the_api_server(c: &Cluster) {
    let refused = format!("is forbidden: User \\\"{BINDGUARD_USER}\\\" cannot");
    let plain = format!("is forbidden: User \"{BINDGUARD_USER}\" cannot");
    let log = c.bindguard_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&refused) || l.contains(&plain))
        .collect();
    assert!(
        lines.is_empty(),
        "bindguard lacks permissions:\n{}",
        lines.join("\n")
    );
}
