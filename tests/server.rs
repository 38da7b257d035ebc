//! The webhook over real HTTPS: the wire contract, bad input, bounded work, panics, certificate
//! rotation and the admin routes; `server/shutdown.rs` drives the real binary through SIGTERM and
//! `server/logs.rs` with a log nobody reads.

#[path = "server/logs.rs"]
mod logs;
#[path = "server/process.rs"]
mod process;
#[path = "server/shutdown.rs"]
mod shutdown;
#[path = "server/support.rs"]
mod support;

use support::*;

use bindguard::admission::Nesting;
use bindguard::judge;
use bindguard::policy::{Context, Phase};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn an_owner_change_is_denied_422_with_the_uid_echoed() {
    let h = start().await;
    let response = h
        .review(
            "/validate",
            &review("uid-7", "UPDATE", binding("billing"), binding("doclet")),
        )
        .await;
    assert_eq!(response["uid"], "uid-7");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(response["status"]["reason"], "Invalid");
    assert_eq!(
        response["status"]["details"]["causes"][0]["field"],
        "spec.owner"
    );
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("was (project \"doclet\""), "{message}");
    assert!(message.contains("delete this binding"), "{message}");
}

#[tokio::test]
async fn mutation_returns_a_base64_json_patch() {
    let h = start().await;
    let response = h
        .review(
            "/mutate",
            &review("uid-8", "CREATE", binding("doclet"), Value::Null),
        )
        .await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    use base64::Engine;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("patch is base64 text"))
        .unwrap();
    let ops: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(ops[0]["path"], "/metadata/labels");
    assert_eq!(ops[0]["value"]["openchoreo.dev/project"], "doclet");
}

#[tokio::test]
async fn kinds_that_are_not_ours_are_allowed_untouched() {
    let h = start().await;
    let mut other = review(
        "uid-9",
        "CREATE",
        json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        Value::Null,
    );
    other["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let response = h.review("/validate", &other).await;
    assert_eq!(response, json!({"uid": "uid-9", "allowed": true}));
    h.assert_healthy().await;
}

#[tokio::test]
async fn an_unknown_kind_of_our_group_is_allowed_untouched() {
    let h = start().await;
    let mut other = review("uid-kind", "CREATE", json!({"spec": 1}), Value::Null);
    other["request"]["kind"] =
        json!({"group": "openchoreo.dev", "version": "v1alpha1", "kind": "Bogus"});
    let response = h.review("/validate", &other).await;
    assert_eq!(response, json!({"uid": "uid-kind", "allowed": true}));
    h.assert_healthy().await;
}

#[tokio::test]
async fn an_object_of_the_wrong_type_is_refused_400_naming_the_field() {
    let h = start().await;
    let mut bad = binding("doclet");
    bad["spec"]["owner"] = json!("not an object");
    let response = h
        .review("/validate", &review("uid-10", "CREATE", bad, Value::Null))
        .await;
    assert_eq!(response["uid"], "uid-10");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.owner"), "{message}");
    let whole = h
        .review(
            "/validate",
            &review("uid-10b", "CREATE", json!([1, 2]), Value::Null),
        )
        .await;
    assert_eq!(whole["allowed"], false);
    assert_eq!(whole["status"]["code"], 400);
    h.assert_healthy().await;
}

/// Posts `body` and expects a prompt HTTP refusal with `code` whose error names `needle`.
async fn refused(h: &Harness, content_type: &str, body: Vec<u8>, code: u16, needle: &str) {
    let (status, answer) = h.post("/validate", content_type, body).await;
    assert_eq!(status, code, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "{needle:?} not in {answer}");
    h.assert_healthy().await;
}

#[tokio::test]
async fn an_empty_body_is_refused_400() {
    let h = start().await;
    refused(&h, JSON, Vec::new(), 400, "not JSON").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_400() {
    let h = start().await;
    refused(&h, JSON, b"{not json".to_vec(), 400, "not JSON").await;
}

#[tokio::test]
async fn truncated_json_is_refused_400() {
    let whole = serde_json::to_vec(&review("u", "CREATE", binding("doclet"), Value::Null)).unwrap();
    let h = start().await;
    refused(&h, JSON, whole[..whole.len() / 2].to_vec(), 400, "EOF").await;
}

#[tokio::test]
async fn invalid_utf8_is_refused_400() {
    let h = start().await;
    let body = b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"\xff\xfe\"}".to_vec();
    refused(&h, JSON, body, 400, "not JSON").await;
}

#[tokio::test]
async fn a_body_nested_deeper_than_the_api_server_allows_is_refused_400() {
    let h = start().await;
    let levels = bindguard::admission::MAX_REVIEW_DEPTH + 1;
    let body = format!("{}{}", "[".repeat(levels), "]".repeat(levels)).into_bytes();
    refused(&h, JSON, body, 400, "nested more than").await;
}

#[tokio::test]
async fn a_wrong_content_type_is_refused_415() {
    let h = start().await;
    refused(&h, "text/plain", b"{}".to_vec(), 415, "application/json").await;
}

#[tokio::test]
async fn a_wrong_api_version_or_kind_is_refused_400() {
    let h = start().await;
    let body = br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec();
    refused(&h, JSON, body, 400, "AdmissionReview").await;
    let mut wrong = review("u", "CREATE", binding("doclet"), Value::Null);
    wrong["apiVersion"] = json!("admission.k8s.io/v1beta1");
    refused(
        &h,
        JSON,
        serde_json::to_vec(&wrong).unwrap(),
        400,
        "v1beta1",
    )
    .await;
}

#[tokio::test]
async fn a_missing_request_or_uid_is_refused_400() {
    let h = start().await;
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec();
    refused(&h, JSON, body, 400, "request is missing").await;
    let mut no_uid = review("u", "CREATE", binding("doclet"), Value::Null);
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    refused(&h, JSON, serde_json::to_vec(&no_uid).unwrap(), 400, "uid").await;
    let empty_uid = review("", "CREATE", binding("doclet"), Value::Null);
    let body = serde_json::to_vec(&empty_uid).unwrap();
    refused(&h, JSON, body, 400, "request.uid is empty").await;
}

#[tokio::test]
async fn json_that_is_not_an_object_is_refused_400_by_its_type() {
    let h = start().await;
    refused(
        &h,
        JSON,
        b"[{}]".to_vec(),
        400,
        "is a JSON array, not an object",
    )
    .await;
}

#[tokio::test]
async fn a_null_object_on_create_is_refused_400() {
    let h = start().await;
    let body = serde_json::to_vec(&review("u", "CREATE", Value::Null, Value::Null)).unwrap();
    refused(&h, JSON, body, 400, "request.object is missing").await;
}

#[tokio::test]
async fn a_missing_old_object_on_update_is_refused_400() {
    let h = start().await;
    let mut update = review("u", "UPDATE", binding("doclet"), Value::Null);
    update["request"]
        .as_object_mut()
        .unwrap()
        .remove("oldObject");
    let body = serde_json::to_vec(&update).unwrap();
    refused(&h, JSON, body, 400, "request.oldObject is missing").await;
}

#[tokio::test]
async fn a_50_mb_body_is_refused_413_over_http1() {
    let h = start().await;
    let (status, answer) = h.post_over(Version::Http1, "/validate", JSON, big()).await;
    assert_eq!(status, 413, "{answer}");
    h.assert_healthy().await;
}

#[tokio::test]
async fn a_50_mb_body_is_refused_413_over_http2() {
    let h = start().await;
    let (status, answer) = h.post_over(Version::Http2, "/validate", JSON, big()).await;
    assert_eq!(status, 413, "{answer}");
    h.assert_healthy().await;
}

/// Refused before its body is read, the stream ends with RST_STREAM(NO_ERROR) after the 413,
/// which clients read as "response complete"; CANCEL would make them drop the response.
#[tokio::test]
async fn an_http2_refusal_before_the_body_is_read_resets_the_stream_with_no_error() {
    let h = start().await;
    let tls = h.tls_stream(b"h2").await;
    let (mut client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    let request =
        axum::http::Request::post(format!("https://localhost:{}/validate", h.webhook.port()))
            .header("content-type", JSON)
            .header("content-length", (50 * 1024 * 1024).to_string())
            .body(())
            .unwrap();
    let (response, mut upload) = client.send_request(request, false).unwrap();
    upload
        .send_data(vec![b' '; 16 * 1024].into(), false)
        .unwrap();
    let response = within(Duration::from_secs(10), "a response", response)
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.expect("the whole refusal"));
    }
    assert!(String::from_utf8_lossy(&text).contains("larger than"));
    let reset = futures::future::poll_fn(|cx| upload.poll_reset(cx));
    let reason = within(Duration::from_secs(10), "a reset", reset)
        .await
        .unwrap();
    assert_eq!(reason, h2::Reason::NO_ERROR);
    h.assert_healthy().await;
}

fn big() -> Vec<u8> {
    vec![b' '; 50 * 1024 * 1024]
}

#[tokio::test]
async fn a_body_sent_one_byte_per_second_is_cut_off_over_http1() {
    let h = start().await;
    let answer = h.slow_http1_request("/validate").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let within = bindguard::server::budget(None).min(bindguard::server::BODY_TIMEOUT);
    assert!(
        answer.contains(&format!("not received within {within:?}")),
        "{answer}"
    );
    h.assert_healthy().await;
}

/// The body must arrive within most of the API server's own timeout, and the refusal says so.
#[tokio::test]
async fn a_slow_body_is_cut_off_within_the_api_servers_timeout_and_says_when() {
    let h = start().await;
    let answer = h.slow_http1_request("/validate?timeout=2s").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("not received within 1.6s"), "{answer}");
}

/// A client that stops in the middle of the HTTP/2 preface, or after it without a request
/// (never answering the server's GOAWAY and ping), holds its connection no longer than a slow
/// HTTP/1.1 request's headers may take.
#[tokio::test]
async fn a_connection_stopped_in_the_http2_preface_is_closed_after_the_header_timeout() {
    let h = start().await;
    let whole = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let silent = async {
        let mut stream = h.tls_stream(b"h2").await;
        tokio::io::AsyncWriteExt::write_all(&mut stream, whole)
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest).await;
    };
    let mut stream = h.tls_stream(b"h2").await;
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"PRI * HTTP/2.0\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest);
    let limit = bindguard::server::FIRST_REQUEST_TIMEOUT + Duration::from_secs(5);
    assert!(limit < bindguard::server::IDLE_TIMEOUT);
    let both = futures::future::join(closed, silent);
    let _ = within(limit, "both connections to be closed", both).await;
    h.assert_healthy().await;
}

#[tokio::test]
async fn a_body_sent_one_byte_per_second_is_cut_off_over_http2() {
    let h = start().await;
    let status = h.slow_http2_request().await;
    assert_eq!(status, 408);
    h.assert_healthy().await;
}

/// Holds a review in its judge until the test lets it go; other reviews are judged as usual.
/// A judge that blocks asks to run off the async workers.
fn holding_judge(
    phase: Phase,
    body: &[u8],
    nesting: Nesting,
    ctx: &Context,
) -> Result<judge::Judged, bindguard::admission::ReviewError> {
    if let Some(in_place) = ctx.in_place {
        in_place.defer();
        return judge::judge_measured(phase, body, nesting, ctx);
    }
    gate::wait_while_held(&uid_of(body));
    judge::judge_measured(phase, body, nesting, ctx)
}

/// A client that goes away in the middle of its body is counted as `aborted`, not as a
/// malformed call: alerts on malformed calls must not fire when the API server gives up.
#[tokio::test]
async fn a_body_cut_off_by_its_client_counts_as_aborted_not_malformed() {
    let h = start().await;
    let mut stream = h.tls_stream(b"http/1.1").await;
    let head = "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":";
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut stream)
        .await
        .unwrap();
    drop(stream);
    let counted = |metrics: &str, verdict: &str| {
        metrics.lines().any(|l| {
            l.starts_with("bindguard_admission_requests_total{")
                && l.contains(&format!("verdict=\"{verdict}\""))
        })
    };
    wait_until(
        "the aborted call counted",
        Duration::from_secs(10),
        || async { counted(&h.admin_get("/metrics").await.1, "aborted") },
    )
    .await;
    let metrics = h.admin_get("/metrics").await.1;
    assert!(!counted(&metrics, "malformed"), "{metrics}");
}

/// Bodies are held within `--max-review-mib`: one that does not fit waits for room before it is
/// read, and is refused with HTTP 429 when none frees up by its deadline.
#[tokio::test]
async fn a_body_without_room_in_the_body_budget_is_refused_429_unread() {
    let h = start().await;
    let all_but_one_mib = (bindguard::server::DEFAULT_MAX_REVIEW_MIB - 1) * 1024;
    let held = h.app.body_kib.clone().acquire_many_owned(all_but_one_mib);
    let held = held.await.unwrap();
    let small = review("small", "CREATE", binding("doclet"), Value::Null);
    let answer = h.review("/validate", &small).await;
    assert_eq!(
        answer["allowed"], true,
        "a usual review still fits: {answer}"
    );
    let mut big = review("big", "CREATE", binding("doclet"), Value::Null);
    big["request"]["object"]["metadata"]["annotations"] = json!({"pad": "x".repeat(2 << 20)});
    let body = serde_json::to_vec(&big).unwrap();
    let (status, answer) = h.post("/validate?timeout=1s", JSON, body.clone()).await;
    assert_eq!(status, 429, "2 MiB do not fit in the 1 MiB left: {answer}");
    h.assert_healthy().await;
    drop(held);
    let (status, answer) = h.post("/validate?timeout=1s", JSON, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], "big");
}

/// Reviews nested deeper than any thread's stack handles each take a stack of their own; only
/// a few are judged at once, the others wait for a slot until their deadline.
#[tokio::test]
async fn deep_reviews_wait_for_one_of_their_few_slots_and_others_are_not_held_up() {
    let h = start().await;
    let all = bindguard::server::DEEP_REVIEWS_AT_ONCE as u32;
    let held = h
        .app
        .deep_reviews
        .clone()
        .acquire_many_owned(all)
        .await
        .unwrap();
    let mut nested = json!("bottom");
    for _ in 0..1_000 {
        nested = json!({ "a": nested });
    }
    let mut deep = review("deep", "CREATE", json!({"data": nested}), Value::Null);
    deep["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let body = serde_json::to_vec(&deep).unwrap();
    let (status, answer) = h.post("/validate?timeout=1s", JSON, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 504, "{answer}");
    let shallow = review("shallow", "CREATE", binding("doclet"), Value::Null);
    assert_eq!(h.review("/validate", &shallow).await["allowed"], true);
    drop(held);
    let (status, answer) = h.post("/validate?timeout=1s", JSON, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

/// A review takes from a second budget what it will take decoded, estimated from its values
/// (a small body of many values decodes to many times its size): it waits for that room before
/// it is decoded (refused 429 with its uid when none frees up), and one larger than the whole
/// budget is judged alone.
#[tokio::test]
async fn a_review_of_many_values_waits_for_room_to_decode_and_few_values_do_not() {
    let h = start().await;
    let all_but_one_mib = (bindguard::server::DEFAULT_MAX_REVIEW_MIB - 1) * 1024;
    let held = h
        .app
        .decoded_kib
        .clone()
        .acquire_many_owned(all_but_one_mib);
    let held = held.await.unwrap();
    let post = |uid: &str, annotations: Value| {
        let mut sent = review(uid, "CREATE", binding("doclet"), Value::Null);
        sent["request"]["object"]["metadata"]["annotations"] = annotations;
        h.post(
            "/validate?timeout=1s",
            JSON,
            serde_json::to_vec(&sent).unwrap(),
        )
    };
    let long = json!({"pad": "x".repeat(300_000)});
    let (status, answer) = post("few", long).await;
    assert_eq!(status, 200, "300 KB in one value fit: {answer}");
    let many: serde_json::Map<String, Value> =
        (0..30_000).map(|i| (format!("k{i}"), json!("v"))).collect();
    let many = Value::Object(many);
    let (status, answer) = post("many", many.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let refused = &answer["response"];
    assert_eq!(
        refused["uid"], "many",
        "the body was read: its uid is echoed"
    );
    assert_eq!(
        refused["status"]["code"], 429,
        "30,000 values do not fit in the 1 MiB left: {answer}"
    );
    h.assert_healthy().await;
    drop(held);
    let (status, answer) = post("many", many).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], "many");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn when_every_review_slot_is_taken_the_next_is_refused_429_at_once_and_healthz_answers() {
    let h = start_with(1, holding_judge).await;
    let held = gate::hold("busy-held");
    let first = h.spawn_review(
        "/validate",
        review(&held.uid, "CREATE", binding("doclet"), Value::Null),
    );
    h.until_reviews_in_progress(1).await;
    assert_eq!(h.admin_get("/healthz").await.0, 200);
    let refused = h
        .review(
            "/validate",
            &review("busy-next", "CREATE", binding("doclet"), Value::Null),
        )
        .await;
    assert_eq!(refused["uid"], "busy-next");
    assert_eq!(refused["allowed"], false);
    assert_eq!(refused["status"]["code"], 429);
    let message = refused["status"]["message"].as_str().unwrap();
    assert!(message.contains("limit of 1"), "{message}");
    let warned = h
        .review(
            "/warn",
            &review("busy-warn", "DELETE", Value::Null, binding("doclet")),
        )
        .await;
    assert_eq!(warned["allowed"], true, "{warned}");
    assert!(warned["warnings"][0].as_str().unwrap().contains("too busy"));
    drop(held);
    let first = first.await.unwrap();
    assert_eq!(first["response"]["allowed"], true, "{first}");
    h.assert_healthy().await;
}

#[tokio::test]
async fn judging_past_the_api_servers_timeout_is_answered_504_before_it() {
    let h = start_with(4, holding_judge).await;
    let held = gate::hold("slow-judge");
    let body = review(&held.uid, "CREATE", binding("doclet"), Value::Null);
    let (status, answer) = h
        .post(
            "/validate?timeout=1s",
            JSON,
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let response = &answer["response"];
    assert_eq!(response["uid"], held.uid.as_str());
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 504);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("800ms"),
        "{answer}"
    );
    drop(held);
    h.assert_healthy().await;
}

/// A review answered 504 at its deadline while still being judged keeps its room in the body
/// budgets until judging ends: abandoned work still holds the memory it uses.
#[tokio::test]
async fn a_review_past_its_deadline_keeps_its_budget_until_judging_ends() {
    let h = start_with(4, holding_judge).await;
    let held = gate::hold("held-large");
    let mut sent = review(&held.uid, "CREATE", binding("doclet"), Value::Null);
    let many: serde_json::Map<String, Value> =
        (0..30_000).map(|i| (format!("k{i}"), json!("v"))).collect();
    sent["request"]["object"]["metadata"]["annotations"] = Value::Object(many);
    let body = serde_json::to_vec(&sent).unwrap();
    let (status, answer) = h.post("/validate?timeout=1s", JSON, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 504, "{answer}");
    let budget = h.app.budget_kib;
    assert!(
        h.app.decoded_kib.available_permits() < budget,
        "still held after the answer"
    );
    drop(held);
    wait_until("the room given back", Duration::from_secs(10), || async {
        h.app.decoded_kib.available_permits() == budget
            && h.app.body_kib.available_permits() == budget
    })
    .await;
}

fn panicking_judge(
    phase: Phase,
    body: &[u8],
    nesting: Nesting,
    ctx: &Context,
) -> Result<judge::Judged, bindguard::admission::ReviewError> {
    if uid_of(body) == "panic-me" {
        panic!("a bug in the handler path");
    }
    judge::judge_measured(phase, body, nesting, ctx)
}

#[tokio::test]
async fn a_panic_while_judging_becomes_an_error_review_with_the_uid_and_serving_goes_on() {
    let h = start_with(4, panicking_judge).await;
    let response = h
        .review(
            "/validate",
            &review("panic-me", "CREATE", binding("doclet"), Value::Null),
        )
        .await;
    assert_eq!(response["uid"], "panic-me");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 500);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("internal error")
    );
    let warned = h
        .review(
            "/warn",
            &review("panic-me", "DELETE", Value::Null, binding("doclet")),
        )
        .await;
    assert_eq!(warned["allowed"], true);
    h.assert_healthy().await;
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics.contains("operation=\"CREATE\",verdict=\"error\",rule=\"\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_certificate_swapped_like_a_secret_volume_is_served_without_failing_a_request() {
    let rotation = Rotation::new();
    let h = start_rotating(&rotation).await;
    let old = h.served_certificate().await;
    let traffic = h.continuous_reviews();
    traffic.until_answered(5).await;
    rotation.swap();
    let new = rotation.new_certificate();
    wait_until(
        "the new certificate to be served",
        Duration::from_secs(20),
        || async { h.served_certificate().await == new },
    )
    .await;
    assert_ne!(old, new);
    let (answered, failures) = traffic.stop_after_more(5).await;
    assert!(
        failures.is_empty(),
        "{} of {answered} failed: {failures:?}",
        failures.len()
    );
}

#[tokio::test]
async fn admin_routes_answer() {
    let h = start().await;
    h.review(
        "/validate",
        &review("uid-12", "UPDATE", binding("billing"), binding("doclet")),
    )
    .await;
    assert_eq!(h.admin_get("/healthz").await.0, 200);
    assert_eq!(h.admin_get("/readyz").await.0, 200);
    let (code, text) = h.admin_get("/metrics").await;
    assert_eq!(code, 200);
    assert!(text.contains("bindguard_admission_requests_total{kind=\"ResourceReleaseBinding\",operation=\"UPDATE\",verdict=\"denied\",rule=\"spec.owner\"} 1"), "{text}");
    assert!(text.contains("bindguard_admission_duration_seconds_bucket{le=\"0.0001\"}"));
    assert!(text.contains("bindguard_cache_objects{kind=\"Environment\"} 2"));
}
