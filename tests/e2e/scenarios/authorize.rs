//! `serve --authorize-projects`: a ResourceReleaseBinding write needs the requester's access to
//! the binding's project, asked of the API server with a SubjectAccessReview. Two users with
//! client certificates: e2e-alice may act on project `alpha`, e2e-bob on `beta`.

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[scenario!(binding_writes_need_access_to_the_project)];

/// Both users may write bindings as far as Kubernetes RBAC goes; each may act on one project.
fn rbac(ns: &str) -> String {
    let grant = |user: &str, project: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {user}-{project}\n  namespace: {ns}\nrules:\n\
             - apiGroups: [openchoreo.dev]\n  resources: [resourcereleasebindings]\n  verbs: [get, list, watch, create, update, patch, delete]\n\
             - apiGroups: [openchoreo.dev]\n  resources: [projects/releasebindings]\n  resourceNames: [{project}]\n  verbs: [create, update, delete]\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {user}-{project}\n  namespace: {ns}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {user}-{project}}}\n\
             subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]\n"
        )
    };
    format!(
        "{}---\n{}",
        grant("e2e-alice", "alpha"),
        grant("e2e-bob", "beta")
    )
}

fn binding(name: &str, project: &str) -> String {
    format!(
        "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: {name}\n\
         spec:\n  owner:\n    projectName: {project}\n    resourceName: db-{project}\n  environment: development\n"
    )
}

fn binding_writes_need_access_to_the_project(c: &Cluster) {
    let ns = c.kubectl.create_namespace("authorize-projects");
    c.kubectl.apply(&ns, &rbac(&ns));
    let alice = c.kubectl_as("e2e-alice");
    let bob = c.kubectl_as("e2e-bob");
    c.restart_bindguard_with(&["--authorize-projects"])
        .expect("restart bindguard with --authorize-projects");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        authorized_writes(&ns, &alice, &bob);
    }));
    c.restart_bindguard()
        .expect("restart bindguard with its defaults");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    // Without the flag, project access is not asked: bob may bind to alpha.
    bob.apply(&ns, &binding("bob-in-alpha", "alpha"));
}

fn authorized_writes(ns: &str, alice: &Kubectl, bob: &Kubectl) {
    alice.apply(ns, &binding("alpha-db", "alpha"));

    let out = alice.try_apply(ns, &binding("beta-db", "beta"));
    let line = assert_denied(
        &out,
        r#"may not create ResourceReleaseBindings of project "beta""#,
    );
    assert!(line.contains(r#"user "e2e-alice""#), "{line}");
    assert!(line.contains("projects/releasebindings"), "{line}");

    // UPDATE and DELETE are judged by the stored owner: alpha.
    let out = bob.run(&["label", "rrb", "alpha-db", "-n", ns, "team=b"]);
    assert_denied(
        &out,
        r#"user "e2e-bob" may not update ResourceReleaseBindings of project "alpha""#,
    );
    let out = bob.run(&["delete", "rrb", "alpha-db", "-n", ns, "--wait=false"]);
    assert_denied(
        &out,
        r#"user "e2e-bob" may not delete ResourceReleaseBindings of project "alpha""#,
    );
    // Re-targeting it to bob's project needs alpha too (the CRD's immutability aside).
    bob.apply(ns, &binding("beta-db", "beta"));
    let out = alice.run(&["label", "rrb", "beta-db", "-n", ns, "team=a"]);
    assert_denied(&out, r#"project "beta""#);

    alice
        .run(&["label", "rrb", "alpha-db", "-n", ns, "team=a"])
        .ok();
    alice
        .run(&["delete", "rrb", "alpha-db", "-n", ns, "--wait=false"])
        .ok();
}
