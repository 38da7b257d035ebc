//! Every example in `examples/reviews/` is judged against `examples/cluster/` and must come out
//! as its file name says: `NAME.deny-CODE.json`, `NAME.warn.json` (allowed with warnings),
//! `NAME.patch.json` (mutating webhook returns a patch) or `NAME.allow.json`.

use bindguard::cluster::files;
use bindguard::judge::judge;
use bindguard::policy::{Context, Phase, Settings};
use bindguard::schema::SchemaCache;
use serde_json::Value;
use std::path::Path;

fn expectation(file: &str) -> Option<(&str, Option<u64>)> {
    let stem = file.strip_suffix(".json")?;
    let (_, outcome) = stem.rsplit_once('.')?;
    match outcome.split_once('-') {
        Some(("deny", code)) => Some(("deny", code.parse().ok())),
        _ => Some((outcome, None)),
    }
}

#[test]
fn every_review_example_gets_the_outcome_its_name_promises() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stores = files::load_dir(&root.join("examples/cluster")).expect("examples/cluster loads");
    let settings = Settings::default();
    let schemas = SchemaCache::new();
    let ctx = Context {
        view: &stores,
        settings: &settings,
        schemas: &schemas,
        in_place: None,
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("examples/reviews")).expect("examples/reviews") {
        let path = entry.expect("entry").path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some((outcome, code)) = expectation(&file) else {
            continue;
        };
        let phase = if outcome == "patch" {
            Phase::Mutate
        } else {
            Phase::Validate
        };
        let body = std::fs::read(&path).expect("read review");
        let judged = judge(phase, &body, &ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        let response = &judged.response_json()["response"];
        let allowed = response["allowed"].as_bool();
        match outcome {
            "deny" => {
                assert_eq!(allowed, Some(false), "{file}: {response}");
                assert_eq!(
                    response["status"]["code"].as_u64(),
                    code,
                    "{file}: {response}"
                );
                let message = response["status"]["message"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{file}: a denial needs a message");
            }
            "warn" => {
                assert_eq!(allowed, Some(true), "{file}: {response}");
                assert!(
                    response["warnings"]
                        .as_array()
                        .is_some_and(|w| !w.is_empty()),
                    "{file}: {response}"
                );
            }
            "patch" => {
                assert_eq!(allowed, Some(true), "{file}: {response}");
                assert!(response["patch"].is_string(), "{file}: {response}");
            }
            "allow" => {
                assert_eq!(allowed, Some(true), "{file}: {response}");
                assert!(response.get("warnings").is_none(), "{file}: {response}");
            }
            other => panic!("{file}: unknown outcome {other:?} in the file name"),
        }
        assert_eq!(response["uid"], judged_uid(&body), "{file}");
        checked += 1;
    }
    assert!(checked > 0, "no review examples found");
}

fn judged_uid(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).expect("review is JSON");
    review["request"]["uid"].clone()
}
