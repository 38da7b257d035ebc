//! `bindguard check` on a git repository fixture: a sequence of commits, each checked against its
//! parent with the real `git` and the release binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const BINDGUARD: &str = env!("CARGO_BIN_EXE_bindguard");

/// A throw-away git repository holding the seeds' objects (`examples/cluster`) in its first commit.
struct Repo {
    dir: PathBuf,
}

/// What one `bindguard check` printed and how it ended.
struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}\n{}", self.stdout, self.stderr);
        self
    }
    fn assert_says(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "want {text:?} in:\n{}",
            self.stdout
        );
        self
    }
    fn assert_not(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text),
            "unwanted {text:?} in:\n{}",
            self.stdout
        );
        self
    }
}

impl Repo {
    fn new() -> Repo {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bindguard-check-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cluster")).expect("create the fixture folder");
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "ci@example.com"]);
        repo.git(&["config", "user.name", "CI"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
        for file in ["openchoreo.yaml", "kratix.yaml", "extra-openchoreo.yaml"] {
            let text = std::fs::read_to_string(seeds.join(file)).expect("read a seed file");
            repo.write(&format!("cluster/{file}"), &text);
        }
        repo.commit("the seeds");
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).expect("read a fixture file")
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.path(file), text).expect("write a fixture file");
    }

    /// Replaces the first `from` in `file` with `to`.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert!(text.contains(from), "{from:?} not in {file}");
        self.write(file, &text.replacen(from, to, 1));
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    /// `bindguard check --base HEAD~1 cluster` plus `extra` arguments, run at the top.
    fn check_last(&self, extra: &[&str]) -> Checked {
        let mut args = vec!["check", "--base", "HEAD~1"];
        args.extend(extra);
        args.push("cluster");
        self.check(&args)
    }

    fn check(&self, args: &[&str]) -> Checked {
        let out = Command::new(BINDGUARD)
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("BINDGUARD_REFERENCES")
            .output()
            .expect("run bindguard check");
        Checked {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ResourceReleaseBinding of the seeds' `doclet-postgres` in `environment`.
fn binding(name: &str, environment: &str) -> String {
    format!(
        "apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  owner:\n    projectName: doclet\n    resourceName: doclet-postgres\n  environment: {environment}\n"
    )
}

const QA: &str = "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: qa\n  namespace: default\nspec: {}\n";

/// The whole seed tree, with nothing to compare against, is a set of clean creates.
#[test]
fn the_seeds_are_clean_without_a_base() {
    let repo = Repo::new();
    repo.check(&["check", "cluster"])
        .assert_code(0)
        .assert_says("created, 0 updated, 0 deleted; 0 refused, 0 warnings");
}

#[test]
fn a_new_binding_is_clean_and_its_labels_are_reported_as_mutations() {
    let repo = Repo::new();
    let staging = QA.replace("qa", "staging");
    repo.write(
        "cluster/staging.yaml",
        &format!(
            "{staging}---\n{}",
            binding("doclet-postgres-staging", "staging")
        ),
    );
    repo.commit("bind staging");
    repo.check_last(&[])
        .assert_code(0)
        .assert_says("2 created, 0 updated, 0 deleted; 0 refused, 0 warnings")
        .assert_says("cluster/staging.yaml:8: ResourceReleaseBinding default/doclet-postgres-staging: note: the mutating webhook would add metadata.labels");
}

#[test]
fn an_owner_edited_in_place_is_refused_at_its_line() {
    let repo = Repo::new();
    repo.edit(
        "cluster/openchoreo.yaml",
        "  name: doclet-postgres-development\n  namespace: default\nspec:\n  owner:\n    projectName: doclet",
        "  name: doclet-postgres-development\n  namespace: default\nspec:\n  owner:\n    projectName: other",
    );
    repo.commit("re-target a binding");
    let text = repo.read("cluster/openchoreo.yaml");
    let doc = text.find("name: doclet-postgres-development").unwrap();
    let line = text[..text[..doc].rfind("apiVersion").unwrap()]
        .lines()
        .count()
        + 1;
    repo.check_last(&[])
        .assert_code(1)
        .assert_says(&format!(
            "cluster/openchoreo.yaml:{line}: ResourceReleaseBinding default/doclet-postgres-development: refused:"
        ))
        .assert_says("spec.owner is immutable")
        .assert_says("0 created, 1 updated, 0 deleted; 1 refused");
}

/// Removing one document from a multi-document file deletes that object.
#[test]
fn removing_the_latest_revision_is_refused_but_not_with_its_promise() {
    let repo = Repo::new();
    let kratix = repo.read("cluster/kratix.yaml");
    let at = kratix.find("  name: redis-v0.2.0").unwrap();
    let start = kratix[..at].rfind("---").unwrap();
    let end = start + 3 + kratix[start + 3..].find("---").unwrap();
    repo.write(
        "cluster/kratix.yaml",
        &format!("{}{}", &kratix[..start], &kratix[end..]),
    );
    repo.commit("drop the latest revision");
    repo.check_last(&[])
        .assert_code(1)
        .assert_says(
            "PromiseRevision redis-v0.2.0: refused: can not delete the latest PromiseRevision",
        )
        .assert_says("1 deleted; 1 refused");

    // The Promise goes with all its revisions: the cluster would collect them, nothing to refuse.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    let promise_end = kratix
        .find("\nkind: Redis")
        .map(|i| kratix[..i].rfind("---").unwrap());
    repo.write("cluster/kratix.yaml", &kratix[promise_end.unwrap()..]);
    repo.commit("remove the redis Promise");
    repo.check_last(&[])
        .assert_code(0)
        .assert_not("refused:")
        .assert_says("0 refused");
}

#[test]
fn environment_configs_that_break_the_schema_are_refused() {
    let repo = Repo::new();
    repo.edit(
        "cluster/openchoreo.yaml",
        "    memory: 2Gi",
        "    memory: 7\n    bogus: true",
    );
    repo.commit("break the production settings");
    repo.check_last(&[])
        .assert_code(1)
        .assert_says("does not match the environmentConfigs schema")
        .assert_says("memory: 7 is not of type \"string\"")
        .assert_says("unknown property \"bogus\"");
}

/// A reference to something that arrives later warns (refuses with `--references strict`), and the
/// commit that adds it is clean.
#[test]
fn a_binding_whose_environment_comes_later_warns_then_is_clean() {
    let repo = Repo::new();
    repo.write("cluster/qa.yaml", &binding("doclet-postgres-qa", "qa"));
    repo.commit("bind qa before it exists");
    repo.check_last(&[])
        .assert_code(0)
        .assert_says(
            "cluster/qa.yaml:1: ResourceReleaseBinding default/doclet-postgres-qa: warning:",
        )
        .assert_says("Environment \"qa\" not found")
        .assert_says("1 warnings");
    repo.check_last(&["--references", "strict"])
        .assert_code(1)
        .assert_says("Environment \"qa\" not found");
    repo.write("cluster/environments-qa.yaml", QA);
    repo.commit("add qa");
    repo.check_last(&[])
        .assert_code(0)
        .assert_says("1 created, 0 updated, 0 deleted; 0 refused, 0 warnings");
    // Everything at once, as a first sync would see it: still clean.
    repo.check(&["check", "--base", "HEAD~2", "cluster"])
        .assert_code(0)
        .assert_says("0 refused, 0 warnings");
}

#[test]
fn a_harmless_label_change_is_clean() {
    let repo = Repo::new();
    repo.edit(
        "cluster/openchoreo.yaml",
        "  name: doclet-postgres-production\n",
        "  name: doclet-postgres-production\n  labels:\n    team: payments\n",
    );
    repo.commit("label a binding");
    repo.check_last(&[])
        .assert_code(0)
        .assert_says("0 created, 1 updated, 0 deleted; 0 refused, 0 warnings");
}

#[test]
fn a_renamed_file_is_neither_a_delete_nor_a_create() {
    let repo = Repo::new();
    repo.git(&["mv", "cluster/kratix.yaml", "cluster/platform-kratix.yaml"]);
    repo.commit("rename");
    repo.check_last(&[])
        .assert_code(0)
        .assert_says("0 created, 0 updated, 0 deleted; 0 refused");
}

#[test]
fn a_malformed_document_is_an_error_naming_file_and_line() {
    let repo = Repo::new();
    repo.write(
        "cluster/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  bad: [unclosed\n",
    );
    repo.commit("broken");
    let out = repo.check_last(&[]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("cluster/broken.yaml:"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn files_that_are_not_manifests_are_skipped_with_a_note_and_lists_are_read() {
    let repo = Repo::new();
    repo.write("cluster/values.yaml", "replicas: 3\n");
    repo.write("cluster/README.md", "# not yaml at all: [\n");
    repo.write(
        "cluster/qa.json",
        r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"openchoreo.dev/v1alpha1","kind":"Environment","metadata":{"name":"qa","namespace":"default"},"spec":{}},
            {"apiVersion":"openchoreo.dev/v1alpha1","kind":"ResourceReleaseBinding","metadata":{"name":"doclet-postgres-qa","namespace":"default"},
             "spec":{"owner":{"projectName":"doclet","resourceName":"doclet-postgres"},"environment":"qa"}}]}"#,
    );
    repo.commit("more files");
    repo.check_last(&[])
        .assert_code(0)
        .assert_says("cluster/values.yaml:1: note: skipped: not a Kubernetes manifest")
        .assert_not("README.md")
        .assert_says("2 created, 0 updated, 0 deleted; 0 refused, 0 warnings");
}

#[test]
fn github_and_json_outputs() {
    let repo = Repo::new();
    repo.edit(
        "cluster/openchoreo.yaml",
        "    memory: 2Gi",
        "    memory: 7",
    );
    repo.commit("break");
    let github = repo.check_last(&["--output", "github"]);
    github.assert_code(1);
    assert!(
        github.stdout.lines().any(
            |l| l.starts_with("::error file=cluster/openchoreo.yaml,line=")
                && l.contains("environmentConfigs schema")
        ),
        "{}",
        github.stdout
    );
    let json = repo.check_last(&["--output", "json"]);
    json.assert_code(1);
    let report: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("the JSON report parses");
    assert_eq!(report["summary"]["refused"], 1, "{report}");
    let refusal = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "error")
        .expect("one error finding");
    assert_eq!(refusal["kind"], "ResourceReleaseBinding");
    assert_eq!(refusal["operation"], "UPDATE");
    assert_eq!(refusal["file"], "cluster/openchoreo.yaml");
}

#[test]
fn usage_errors_exit_2() {
    let repo = Repo::new();
    repo.check(&["check", "--base", "no-such-ref", "cluster"])
        .assert_code(2);
    repo.check(&["check", "--output", "xml", "cluster"])
        .assert_code(2);
    repo.check(&["check", "no/such/path"]).assert_code(2);
    let empty = repo.dir.with_extension("outside");
    std::fs::create_dir_all(&empty).expect("create an empty folder");
    let outside = Command::new(BINDGUARD)
        .args(["check", "--base", "HEAD", "."])
        .current_dir(&empty)
        .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
        .output()
        .expect("run bindguard check");
    assert_eq!(outside.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&empty);
    assert!(String::from_utf8_lossy(&outside.stderr).contains("needs a git repository"));
}
