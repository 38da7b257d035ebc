//! The webhook over real HTTPS: the wire contract, bad input, and the admin routes.

use axum::body::Bytes;
use bindguard::cluster::files;
use bindguard::metrics::Metrics;
use bindguard::policy::Settings;
use bindguard::schema::SchemaCache;
use bindguard::server::{self, App};
use bindguard::tls;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

struct Harness {
    webhook: SocketAddr,
    admin: SocketAddr,
    client: HttpsClient,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start() -> Harness {
    let stores = files::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster"))
        .expect("examples/cluster loads");
    let app = Arc::new(App {
        view: Arc::new(stores.clone()),
        stores: Some(stores),
        settings: Settings::default(),
        schemas: SchemaCache::new(),
        metrics: Arc::new(Metrics::default()),
        tls_ready: AtomicBool::new(true),
    });
    let bundle = tls::generate(&["127.0.0.1".into(), "localhost".into()]).expect("certs");
    let dir = std::env::temp_dir().join(format!(
        "bindguard-server-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    tls::write_bundle(&dir, &bundle).expect("write certs");
    let key = tls::load(&dir.join("tls.crt"), &dir.join("tls.key")).expect("load certs");
    let config = tls::server_config(tls::Resolver::new(key)).expect("tls config");
    let webhook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (webhook, admin) = (
        webhook_listener.local_addr().unwrap(),
        admin_listener.local_addr().unwrap(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(server::serve_tls(
        webhook_listener,
        config,
        server::webhook_router(app.clone()),
        stopped.clone(),
    ));
    tokio::spawn(server::serve_plain(
        admin_listener,
        server::admin_router(app),
        stopped,
    ));
    Harness {
        webhook,
        admin,
        client: client(&bundle.ca_pem),
        _stop: stop,
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn client(ca_pem: &str) -> HttpsClient {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

impl Harness {
    async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let request =
            hyper::Request::post(format!("https://localhost:{}{path}", self.webhook.port()))
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
        let response = self.client.request(request).await.expect("HTTPS request");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self
            .post(
                path,
                "application/json",
                serde_json::to_vec(review).unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        body["response"].clone()
    }

    async fn admin_get(&self, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, text)
    }
}

fn binding(project: &str) -> Value {
    json!({
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ResourceReleaseBinding",
        "metadata": {"name": "doclet-postgres-development", "namespace": "default"},
        "spec": {"owner": {"projectName": project, "resourceName": "doclet-postgres"}, "environment": "development"},
    })
}

fn review(uid: &str, operation: &str, object: Value, old: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "openchoreo.dev", "version": "v1alpha1", "kind": "ResourceReleaseBinding"},
            "resource": {"group": "openchoreo.dev", "version": "v1alpha1", "resource": "resourcereleasebindings"},
            "name": "doclet-postgres-development",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": old,
        },
    })
}

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
}

#[tokio::test]
async fn an_object_that_does_not_decode_is_refused_400_naming_the_field() {
    let h = start().await;
    let mut bad = binding("doclet");
    bad["spec"]["owner"] = json!("not an object");
    let response = h
        .review("/validate", &review("uid-10", "CREATE", bad, Value::Null))
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.owner"), "{message}");
}

#[tokio::test]
async fn bad_bodies_get_400_415_413_and_the_server_keeps_serving() {
    let h = start().await;
    let (status, body) = h
        .post("/validate", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = h
        .post(
            "/validate",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("AdmissionReview"));
    let (status, _) = h.post("/validate", "text/plain", b"{}".to_vec()).await;
    assert_eq!(status, 415);
    let (status, _) = h
        .post("/validate", "application/json", vec![b' '; 8 * 1024 * 1024])
        .await;
    assert_eq!(status, 413);
    let response = h
        .review(
            "/validate",
            &review("uid-11", "CREATE", binding("doclet"), Value::Null),
        )
        .await;
    assert_eq!(response["uid"], "uid-11");
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
    assert!(text.contains("bindguard_admission_requests_total{kind=\"ResourceReleaseBinding\",operation=\"UPDATE\",verdict=\"denied\"} 1"), "{text}");
    assert!(text.contains("bindguard_admission_duration_seconds_bucket{le=\"0.0001\"}"));
    assert!(text.contains("bindguard_cache_objects{kind=\"Environment\"} 2"));
}
