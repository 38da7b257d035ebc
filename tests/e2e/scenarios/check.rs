//! `bindguard check --cluster`: the manifests are judged against the live cluster too.

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[scenario!(check_reads_the_live_cluster)];

fn check(c: &Cluster, dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bindguard"))
        .arg("check")
        .args(extra)
        .arg(dir)
        .env("KUBECONFIG", c.kubectl.kubeconfig())
        .env_remove("BINDGUARD_REFERENCES")
        .output()
        .unwrap_or_else(|e| panic!("cannot run bindguard check: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// An Environment that exists only in the cluster satisfies a binding in the manifests; once
/// deleted from the cluster, it no longer does.
fn check_reads_the_live_cluster(c: &Cluster) {
    let ns = c.kubectl.create_namespace("check-live");
    let env = "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: live-only\nspec: {}\n";
    c.kubectl.apply(&ns, env);
    let dir = c.dir().join("check-live");
    std::fs::create_dir_all(&dir).expect("create the manifests folder");
    let binding = format!(
        "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: db-live\n  namespace: {ns}\n\
         spec:\n  owner:\n    projectName: shop\n    resourceName: db\n  environment: live-only\n"
    );
    std::fs::write(dir.join("binding.yaml"), &binding).expect("write the manifest");

    let missing = "Environment \"live-only\" not found";
    let (code, text) = check(c, &dir, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(missing), "{text}");

    let (code, text) = check(c, &dir, &["--cluster"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(missing), "{text}");

    // The live Environment removed from the cluster: --cluster sees that too.
    c.kubectl
        .run(&["delete", "environment", "live-only", "-n", &ns]);
    let (code, text) = check(c, &dir, &["--cluster", "--references", "strict"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(missing), "{text}");
}
