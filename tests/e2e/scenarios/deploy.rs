//! The deploy manifests in `manifests/`, judged by the real API server.

use std::path::Path;

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(manifests_pass_server_dry_run),
    scenario!(helm_chart_lints_renders_and_passes_server_dry_run),
    scenario!(kubectl_knows_our_short_names_category_and_columns),
    scenario!(our_crds_refuse_what_upstreams_refuse),
];

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
    // The cert-manager overlay needs cert-manager's CRDs to apply; it must at least build, with
    // the shared base and its Certificate.
    let overlay = format!("{dir}/cert-manager");
    let built = c.kubectl.run(&["kustomize", &overlay]).ok();
    for wanted in [
        "kind: Certificate",
        "kind: Deployment",
        "cert-manager.io/inject-ca-from",
    ] {
        assert!(
            built.stdout.contains(wanted),
            "{wanted:?} not in {overlay}:\n{built}"
        );
    }
    for kind in EXPECTED {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(kind) && l.ends_with("(server dry run)")),
            "no {kind}... in the dry run:\n{out}"
        );
    }
}

/// Runs the provisioned `helm` with `args`; panics with its output unless it succeeds.
fn helm(c: &Cluster, args: &[&str]) -> String {
    let out = std::process::Command::new(c.tool("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", c.dir().join("helm-cache"))
        .env("HELM_CONFIG_HOME", c.dir().join("helm-config"))
        .env("HELM_DATA_HOME", c.dir().join("helm-data"))
        .output()
        .expect("run helm");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout.into_owned()
}

/// `helm lint` passes with the default and with every value set; both render; the default
/// rendering is accepted by the real API server (`--dry-run=server`) and holds every kind a
/// deployment needs; the full one carries what its values ask for.
fn helm_chart_lints_renders_and_passes_server_dry_run(c: &Cluster) {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/bindguard");
    let chart = chart.display().to_string();
    let full = format!("{chart}/ci/full-values.yaml");
    helm(c, &["lint", "--strict", &chart]);
    helm(c, &["lint", "--strict", &chart, "--values", &full]);
    let ns = ["--namespace", "bindguard-system"];
    let default = helm(
        c,
        &[&["template", "bindguard", &chart][..], &ns[..]].concat(),
    );
    let out = c
        .kubectl
        .run_with_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&default))
        .ok();
    for kind in EXPECTED.iter().chain(&[
        "customresourcedefinition.apiextensions.k8s.io/",
        "networkpolicy.networking.k8s.io/",
    ]) {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(kind) && l.ends_with("(server dry run)")),
            "no {kind}... in the dry run of the chart:\n{out}"
        );
    }
    let rendered = helm(
        c,
        &[
            &["template", "bindguard", &chart, "--values", &full][..],
            &ns[..],
        ]
        .concat(),
    );
    for wanted in [
        "kind: Certificate",
        "cert-manager.io/inject-ca-from: bindguard-system/guard",
        "--references=strict",
        "--no-reconcile",
        "--controller-user=system:serviceaccount:platform:deployer",
        "cidr: 10.0.0.0/16",
        "cost-center: \"42\"",
        "replicas: 3",
    ] {
        assert!(
            rendered.contains(wanted),
            "{wanted:?} not in the full rendering:\n{rendered}"
        );
    }
    assert!(
        !rendered.contains("kind: CustomResourceDefinition"),
        "installCRDs: false still renders CRDs"
    );
}

/// What a user types and sees: short names, the `kratix` category and the printer columns.
fn kubectl_knows_our_short_names_category_and_columns(c: &Cluster) {
    let k = &c.kubectl;
    for name in [
        "envs", "projs", "rts", "crts", "rrb", "rrbs", "res", "kratix",
    ] {
        k.run(&["get", name, "-A"]).ok();
    }
    let header = |resource: &str| -> String {
        let out = k.run(&["get", resource, "-A", "--no-headers=false"]).ok();
        let first = out.stdout.lines().next().unwrap_or_default().to_string();
        first.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let ns = k.create_namespace("deploy-columns");
    let binding = "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: cols\n\
                   spec:\n  owner:\n    projectName: p\n    resourceName: r\n  environment: e\n";
    k.apply(&ns, binding);
    let promise = "apiVersion: platform.kratix.io/v1alpha1\nkind: Promise\nmetadata:\n  name: columns-demo\nspec: {}\n";
    k.apply(&ns, promise);
    let rrb = header("resourcereleasebindings");
    assert!(
        rrb.contains("PROJECT RESOURCE ENVIRONMENT RELEASE READY AGE"),
        "{rrb}"
    );
    let promises = header("promises");
    assert!(
        promises.contains("NAME STATUS KIND API VERSION VERSION"),
        "{promises}"
    );
    k.run(&["delete", "promise", "columns-demo", "--wait=false"])
        .ok();
}

/// Where upstream's CRDs are strict, ours are too (tests/crds.rs diffs the schemas; this shows
/// the API server acting on them): unknown fields, required fields, a once-set reference.
fn our_crds_refuse_what_upstreams_refuse(c: &Cluster) {
    let k = &c.kubectl;
    let ns = k.create_namespace("deploy-strict");
    let promise = "apiVersion: platform.kratix.io/v1alpha1\nkind: Promise\nmetadata:\n  name: strict-demo\n\
                   spec:\n  api: {kind: Anything}\n  destinationSelector: [{matchLabels: {env: dev}}]\n";
    let out = k.try_apply(&ns, promise);
    assert_denied(&out, r#"unknown field "spec.destinationSelector""#);
    let project =
        "apiVersion: openchoreo.dev/v1alpha1\nkind: Project\nmetadata:\n  name: p\nspec: {}\n";
    let out = k.try_apply(&ns, project);
    assert_denied(&out, "spec.deploymentPipelineRef: Required value");
    let env = |plane: &str| {
        format!(
            "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: e\n\
             spec:\n  dataPlaneRef: {{kind: DataPlane, name: {plane}}}\n"
        )
    };
    k.apply(&ns, &env("first"));
    let out = k.try_apply(&ns, &env("second"));
    assert_denied(&out, "dataPlaneRef is immutable once set");
    let output = "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceType\nmetadata:\n  name: t\n\
                  spec:\n  outputs:\n  - name: url\n    secretKeyRef: {name: s}\n";
    let out = k.try_apply(&ns, output);
    assert_denied(&out, "spec.outputs[0].secretKeyRef.key: Required value");
}
