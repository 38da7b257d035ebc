//! The deploy manifests in `manifests/`, judged by the real API server.

use std::path::Path;

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[scenario!(manifests_pass_server_dry_run)];

/// What the deploy manifests must contain, as kubectl names it in `apply` output.
const EXPECTED: &[&str] = &[
    "serviceaccount/",
    "clusterrole.rbac.authorization.k8s.io/",
    "clusterrolebinding.rbac.authorization.k8s.io/",
    "deployment.apps/",
    "service/",
    "poddisruptionbudget.policy/",
    "validatingwebhookconfiguration.admissionregistration.k8s.io/",
    "mutatingwebhookconfiguration.admissionregistration.k8s.io/",
];

/// `kubectl apply --dry-run=server` accepts every deploy manifest (schema, RBAC, webhook
/// configurations), and they contain every kind a deployment needs.
fn manifests_pass_server_dry_run(c: &Cluster) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let dir = dir.display().to_string();
    let out = if Path::new(&dir).join("kustomization.yaml").is_file() {
        c.kubectl.run(&["apply", "--dry-run=server", "-k", &dir])
    } else {
        c.kubectl
            .run(&["apply", "--dry-run=server", "-R", "-f", &dir])
    };
    let out = out.ok();
    for kind in EXPECTED {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(kind) && l.ends_with("(server dry run)")),
            "no {kind}... in the dry run:\n{out}"
        );
    }
}
