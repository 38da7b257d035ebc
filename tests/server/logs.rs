//! A log nobody reads never holds up a review: a container runtime that stops draining the
//! pipe would otherwise block the webhook (and, under `failurePolicy: Fail`, every write).

use super::process::Served;
use super::support::*;
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::Duration;

/// Each is an info line of about 300 bytes: far more than a pipe holds (64 KiB on Linux).
const DENIALS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_are_answered_while_nobody_reads_the_log_and_no_line_is_lost() {
    let mut served = Served::spawn("unread-log", &[]);
    let client = client(&client_config(&[&served.ca]), Version::Http1);
    let port = served.webhook.port();
    let denial = review("unread", "CREATE", binding("not-doclet"), Value::Null);
    let body = serde_json::to_vec(&denial).unwrap();
    let answering = async {
        for n in 0..DENIALS {
            let (status, answer) = post(&client, port, "/validate", JSON, full(body.clone())).await;
            assert_eq!(status, 200, "review {n}: {answer}");
            assert_eq!(answer["response"]["allowed"], false, "review {n}: {answer}");
        }
    };
    within(Duration::from_secs(60), "every denial answered", answering).await;
    let log = served.log.take().expect("the unread log");
    let reading = tokio::task::spawn_blocking(move || {
        log.lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .filter(|line| line["fields"]["message"] == "denied")
            .take(DENIALS)
            .collect::<Vec<_>>()
    });
    let logged = within(Duration::from_secs(60), "the denial lines", reading).await;
    let logged = logged.unwrap();
    assert_eq!(
        logged.len(),
        DENIALS,
        "every denial's line is written once read"
    );
    // The line names the review (its span, made from the judged review) and the refusal.
    let line = &logged[0];
    let span = &line["span"];
    let read = |value: &Value, key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let named = [
        "name",
        "uid",
        "kind",
        "namespace",
        "object_name",
        "operation",
    ]
    .map(|k| read(span, k));
    let review = [
        "review",
        "unread",
        "ResourceReleaseBinding",
        "default",
        "doclet-postgres-development",
        "CREATE",
    ];
    assert_eq!(named, review, "{line}");
    let fields = &line["fields"];
    assert_eq!(
        (read(fields, "user"), &fields["code"]),
        ("alice".into(), &json!(403)),
        "{line}"
    );
    assert!(read(fields, "field").starts_with("spec."), "{line}");
}

/// A filter on the review span's fields (`RUST_LOG='info,[review{kind=...}]=debug'`) shows the
/// debug lines of the reviews it names, allowed ones included, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_filter_on_the_review_span_shows_that_kinds_debug_lines() {
    let filter = "info,[review{kind=ResourceReleaseBinding}]=debug";
    let mut served = Served::spawn_logging("span-filter", &[], Some(filter));
    let client = client(&client_config(&[&served.ca]), Version::Http1);
    let port = served.webhook.port();
    let mut other = review("other-kind", "CREATE", json!({"data": {}}), Value::Null);
    other["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let named = review("named-kind", "CREATE", binding("doclet"), Value::Null);
    for sent in [other, named] {
        let body = full(serde_json::to_vec(&sent).unwrap());
        let (status, answer) = post(&client, port, "/validate", JSON, body).await;
        assert_eq!(answer["response"]["allowed"], true, "{status} {answer}");
    }
    let log = served.log.take().expect("the log");
    let reading = tokio::task::spawn_blocking(move || {
        log.lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .find(|line| line["fields"]["message"] == "reviewed")
    });
    let line = within(Duration::from_secs(30), "a reviewed line", reading).await;
    let line = line.unwrap().expect("a reviewed line");
    assert_eq!(line["span"]["uid"], "named-kind", "{line}");
    assert_eq!(line["fields"]["verdict"], "allowed", "{line}");
}
