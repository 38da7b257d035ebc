//! SIGTERM on the real binary while clients send reviews: `/readyz` turns 503 at once, the
//! webhook keeps serving through the drain delay, requests in flight when it stops accepting
//! finish, idle keep-alive connections are closed, and the process exits within the grace.

use super::process::Served;
use super::support::*;
use axum::body::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const DRAIN: Duration = Duration::from_secs(4);
const GRACE: Duration = Duration::from_secs(20);
/// Clients stop starting requests this long after SIGTERM, well inside the drain delay, as the
/// API server does once the endpoints drop the pod.
const SEND_UNTIL: Duration = Duration::from_secs(2);

/// Starts `bindguard serve` with the drain delay and grace under test; its log is echoed.
fn spawn_bindguard() -> Served {
    let flags = [
        format!("--drain-delay={}s", DRAIN.as_secs()),
        format!("--shutdown-grace={}s", GRACE.as_secs()),
    ];
    let mut served = Served::spawn("sigterm", &flags);
    served.echo_log();
    served
}

/// Sends reviews on a keep-alive connection until `until`; returns (answered, failures) and
/// the client, whose idle connection stays open until the server closes it.
async fn send_until(
    webhook: SocketAddr,
    ca: String,
    until: Instant,
) -> (usize, Vec<String>, HttpsClient) {
    let client = client(&client_config(&[&ca]), Version::Http1);
    let (mut answered, mut failures) = (0, Vec::new());
    while Instant::now() < until {
        let uid = format!("steady-{answered}");
        match judged(&client, webhook, &uid, full(good_review(&uid))).await {
            Ok(()) => answered += 1,
            Err(failure) => failures.push(failure),
        }
    }
    (answered, failures, client)
}

/// One review whose body arrives in two halves, `pause` apart.
async fn send_slowly(
    webhook: SocketAddr,
    ca: String,
    uid: String,
    pause: Duration,
) -> Result<(), String> {
    let client = client(&client_config(&[&ca]), Version::Http1);
    let body = good_review(&uid);
    let (sender, streamed) = streamed();
    let half = body.len() / 2;
    let (first, second) = (
        Bytes::copy_from_slice(&body[..half]),
        Bytes::copy_from_slice(&body[half..]),
    );
    let trickle = tokio::spawn(async move {
        let _ = sender.send(first).await;
        tokio::time::sleep(pause).await;
        let _ = sender.send(second).await;
    });
    let outcome = judged(&client, webhook, &uid, streamed).await;
    trickle.abort();
    outcome
}

async fn judged(
    client: &HttpsClient,
    webhook: SocketAddr,
    uid: &str,
    body: Body,
) -> Result<(), String> {
    let request = hyper::Request::post(format!(
        "https://localhost:{}/validate?timeout=10s",
        webhook.port()
    ))
    .header("content-type", JSON)
    .body(body)
    .unwrap();
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{uid}: {e:?}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{uid}: {e}"))?
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status == 200 && answer["response"]["uid"] == uid {
        Ok(())
    } else {
        Err(format!("{uid}: {status} {answer}"))
    }
}

fn good_review(uid: &str) -> Vec<u8> {
    let review = review(uid, "CREATE", binding("doclet"), Value::Null);
    serde_json::to_vec(&review).unwrap()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_without_failing_a_request_in_flight() {
    let mut served = spawn_bindguard();
    let (webhook, admin) = (served.webhook, served.admin);
    wait_until("/readyz 200", Duration::from_secs(10), || async {
        http_get(admin, "/readyz").await.0 == 200
    })
    .await;
    let term_at = Instant::now() + Duration::from_secs(1);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(send_until(webhook, served.ca.clone(), term_at + SEND_UNTIL)))
        .collect();
    tokio::time::sleep_until(term_at.into()).await;
    sigterm(&served.child);
    let sent = Instant::now();
    wait_until("/readyz 503 after SIGTERM", DRAIN / 2, || async {
        http_get(admin, "/readyz").await.0 == 503
    })
    .await;
    assert_eq!(
        http_get(admin, "/healthz").await.0,
        200,
        "healthz during the drain"
    );
    // Requests whose bodies are still arriving when the drain delay ends and accepting stops.
    let pause = Duration::from_millis(2500);
    tokio::time::sleep_until((sent + DRAIN + Duration::from_secs(1) - pause).into()).await;
    let straddling: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let uid = format!("straddling-{i}");
            tokio::spawn(send_slowly(webhook, served.ca.clone(), uid, pause))
        })
        .collect();
    let (mut answered, mut idle_clients) = (0, Vec::new());
    for client in clients {
        let (n, failures, idle) = client.await.unwrap();
        assert!(failures.is_empty(), "failed during the drain: {failures:?}");
        answered += n;
        idle_clients.push(idle);
    }
    for request in straddling {
        request
            .await
            .unwrap()
            .expect("a request in flight when accepting stopped");
    }
    let exited = wait_for_exit(&mut served.child, DRAIN + GRACE).await;
    let took = sent.elapsed();
    assert!(exited.success(), "exit status {exited}");
    // The idle connections would time out by themselves HEADER_TIMEOUT after their last
    // request; exiting before that shows shutdown closed them.
    let idle_limit = SEND_UNTIL + bindguard::server::HEADER_TIMEOUT;
    assert!(
        took < idle_limit,
        "took {took:?}: idle keep-alive connections were not closed"
    );
    drop(idle_clients);
    eprintln!("{answered} reviews answered by {CLIENTS} clients; exited {took:?} after SIGTERM");
}

async fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {limit:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
