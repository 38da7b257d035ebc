//! The demo in `examples/demo/` and the kubectl session README shows for it: this scenario runs
//! the session against the real API server and fails when README's copy differs from what
//! kubectl prints (ages aside). `BINDGUARD_UPDATE_DEMO=1` rewrites README's copy.

use super::kratix_loop::{get_json, wait_for};
use super::*;
use std::path::Path;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[scenario!(the_readme_session_is_what_kubectl_prints)];

const BEGIN: &str = "<!-- demo session: written by the e2e scenario demo::the_readme_session_is_what_kubectl_prints -->\n";
const END: &str = "<!-- end of demo session -->\n";
const NS: &str = "demo";

/// The commands a user types, and what kubectl answers, in order.
struct Session<'c> {
    c: &'c Cluster,
    text: String,
}

impl Session<'_> {
    fn run(&mut self, args: &[&str]) -> Output {
        let out = self.c.kubectl.run(args);
        let shown: Vec<String> = args.iter().map(|a| quoted(a)).collect();
        self.text += &format!("$ kubectl {}\n", shown.join(" "));
        self.text += &out.stderr;
        self.text += &out.stdout;
        out
    }
}

fn quoted(arg: &str) -> String {
    if arg.contains(['{', ' ', '"']) {
        format!("'{arg}'")
    } else {
        arg.to_string()
    }
}

fn the_readme_session_is_what_kubectl_prints(c: &Cluster) {
    let binding = bindguard::naming::binding_name("example", "redis");
    let mut s = Session {
        c,
        text: String::new(),
    };
    s.run(&["apply", "-f", "examples/demo/platform.yaml"]).ok();
    s.run(&[
        "wait",
        "--for=condition=Established",
        "crd/redis.marketplace.kratix.io",
    ])
    .ok();
    s.run(&["create", "namespace", NS]).ok();
    s.run(&["-n", NS, "apply", "-f", "examples/demo/team.yaml"])
        .ok();
    settled(c, &binding, "v0.1.0");
    let revisions = [
        "get",
        "promiserevisions",
        "-l",
        "kratix.io/promise-name=redis",
    ];
    s.run(&revisions).ok();
    let bindings = [
        "-n",
        NS,
        "get",
        "resourcebindings",
        "-l",
        "kratix.io/promise-name=redis",
        "-l",
        "kratix.io/resource-name=example",
    ];
    s.run(&bindings).ok();
    s.run(&[
        "label",
        "promise",
        "redis",
        "kratix.io/promise-version=v0.2.0",
        "--overwrite",
    ])
    .ok();
    wait_for(c, "redis-v0.2.0 is the latest revision", || {
        let r = get_json(c, &["promiserevision", "redis-v0.2.0"]);
        if r["status"]["latest"] == true {
            Ok(())
        } else {
            Err(r.to_string())
        }
    });
    s.run(&revisions).ok();
    let version = |v: &str| format!(r#"{{"spec":{{"version":"{v}"}}}}"#);
    let patch = |v: &str| {
        let p = version(v);
        [
            "-n",
            NS,
            "patch",
            "resourcebinding",
            &binding,
            "--type",
            "merge",
            "-p",
            &p,
        ]
        .map(String::from)
    };
    let refused = s.run(&as_strs(&patch("v0.3.0")));
    assert!(!refused.success, "{refused}");
    s.run(&as_strs(&patch("v0.2.0"))).ok();
    settled(c, &binding, "v0.2.0");
    s.run(&bindings).ok();
    let deleted = s.run(&["delete", "promiserevision", "redis-v0.2.0"]);
    assert!(!deleted.success, "{deleted}");
    s.run(&["-n", NS, "get", "rrb"]).ok();
    let rrb_patch = |name: &str, p: &str| {
        ["-n", NS, "patch", "rrb", name, "--type", "merge", "-p", p].map(String::from)
    };
    let retarget = rrb_patch(
        "doclet-postgres-development",
        r#"{"spec":{"owner":{"projectName":"billing"}}}"#,
    );
    assert!(!s.run(&as_strs(&retarget)).success);
    let oversized = rrb_patch(
        "doclet-postgres-production",
        r#"{"spec":{"resourceTypeEnvironmentConfigs":{"memory":"lots"}}}"#,
    );
    assert!(!s.run(&as_strs(&oversized)).success);
    let promote = rrb_patch(
        "doclet-postgres-development",
        r#"{"spec":{"resourceRelease":"doclet-postgres-abc12345"}}"#,
    );
    s.run(&as_strs(&promote)).ok();
    compare_with_readme(&s.text);
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Waits until the loop has bound the request at `version` and has written the bindings' status.
fn settled(c: &Cluster, binding: &str, version: &str) {
    wait_for(c, &format!("{binding} applied at {version}"), || {
        let b = get_json(c, &["resourcebinding", binding, "-n", NS]);
        let done = b["status"]["lastAppliedVersion"] == version;
        if done { Ok(()) } else { Err(b.to_string()) }
    });
    for rrb in ["doclet-postgres-development", "doclet-postgres-production"] {
        wait_for(c, &format!("{rrb} has a Ready condition"), || {
            let b = get_json(c, &["rrb", rrb, "-n", NS]);
            let ready = b["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready"));
            if ready { Ok(()) } else { Err(b.to_string()) }
        });
    }
}

/// Ages depend on timing; everything else must read as README shows it.
fn without_ages(text: &str) -> String {
    text.lines()
        .map(|line| {
            let last = line.rsplit(' ').next().unwrap_or_default();
            let unit = last.ends_with(['s', 'm', 'h', 'd']);
            let digits =
                last.len() > 1 && last[..last.len() - 1].chars().all(|c| c.is_ascii_digit());
            if unit && digits {
                format!("{}<age>", &line[..line.len() - last.len()])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn compare_with_readme(session: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let block = format!("{BEGIN}```console\n{session}```\n{END}");
    let (before, rest) = readme
        .split_once(BEGIN)
        .expect("README has the demo session markers");
    let (shown, after) = rest
        .split_once(END)
        .expect("README has the end-of-demo marker");
    if std::env::var_os("BINDGUARD_UPDATE_DEMO").is_some() {
        std::fs::write(&path, format!("{before}{block}{after}")).expect("write README.md");
        return;
    }
    let shown = format!("{BEGIN}{shown}{END}");
    assert_eq!(
        without_ages(&shown),
        without_ages(&block),
        "README's demo session differs from what kubectl printed; rerun with BINDGUARD_UPDATE_DEMO=1"
    );
}
