//! The harness: an in-process server over real TLS, HTTP/1.1 and HTTP/2 clients, a slow client,
//! a judge that can be held, and a Secret-volume style certificate directory.

use axum::body::Bytes;
use bindguard::cluster::files;
use bindguard::metrics::Metrics;
use bindguard::policy::Settings;
use bindguard::server::{self, App, JudgeFn};
use bindguard::tls;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const JSON: &str = "application/json";
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

#[derive(Clone, Copy)]
pub enum Version {
    Http1,
    Http2,
}

pub struct Harness {
    pub app: Arc<App>,
    pub webhook: SocketAddr,
    pub admin: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    http1: HttpsClient,
    http2: HttpsClient,
    _stop: tokio::sync::watch::Sender<bool>,
}

pub async fn start() -> Harness {
    start_with(
        server::DEFAULT_MAX_REVIEWS,
        bindguard::judge::judge_measured,
    )
    .await
}

/// A server with at most `max_reviews` at once, judging with `judge`.
pub async fn start_with(max_reviews: usize, judge: JudgeFn) -> Harness {
    let bundle = tls::generate(&["127.0.0.1".into(), "localhost".into()]).expect("certs");
    let dir = temp_dir("certs");
    tls::write_bundle(&dir, &bundle).expect("write certs");
    let key = tls::load(&dir.join("tls.crt"), &dir.join("tls.key")).expect("load certs");
    serve(
        app(max_reviews, judge),
        tls::Resolver::new(key),
        &[&bundle.ca_pem],
    )
    .await
}

/// A server whose certificate follows `rotation`'s files.
pub async fn start_rotating(rotation: &Rotation) -> Harness {
    let (cert, key) = (rotation.dir.join("tls.crt"), rotation.dir.join("tls.key"));
    let resolver = tls::Resolver::new(tls::load(&cert, &key).expect("load certs"));
    let every = Duration::from_millis(100);
    tokio::spawn(tls::watch(resolver.clone(), cert, key, every, |_| {}));
    let app = app(
        server::DEFAULT_MAX_REVIEWS,
        bindguard::judge::judge_measured,
    );
    let cas = [rotation.old.ca_pem.as_str(), rotation.new.ca_pem.as_str()];
    serve(app, resolver, &cas).await
}

fn app(max_reviews: usize, judge: JudgeFn) -> Arc<App> {
    let stores = files::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster"))
        .expect("examples/cluster loads");
    let view = Arc::new(stores.clone());
    let metrics = Arc::new(Metrics::default());
    let mut app = App::new(
        view,
        Some(stores),
        Settings::default(),
        metrics,
        max_reviews,
    );
    app.judge = judge;
    Arc::new(app)
}

async fn serve(app: Arc<App>, resolver: Arc<tls::Resolver>, cas: &[&str]) -> Harness {
    let config = tls::server_config(resolver).expect("tls config");
    let webhook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (webhook, admin) = (
        webhook_listener.local_addr().unwrap(),
        admin_listener.local_addr().unwrap(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let grace = Duration::from_secs(1);
    let router = server::webhook_router(app.clone());
    tokio::spawn(server::serve_tls(
        webhook_listener,
        config,
        router,
        stopped.clone(),
        grace,
    ));
    let admin_router = server::admin_router(app.clone());
    tokio::spawn(server::serve_plain(
        admin_listener,
        admin_router,
        stopped,
        grace,
    ));
    let tls = client_config(cas);
    Harness {
        app,
        webhook,
        admin,
        http1: client(&tls, Version::Http1),
        http2: client(&tls, Version::Http2),
        tls,
        _stop: stop,
    }
}

pub fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "bindguard-server-test-{}-{what}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn client_config(cas: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

pub fn client(tls: &Arc<rustls::ClientConfig>, version: Version) -> HttpsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((**tls).clone())
        .https_only();
    let mut client = Client::builder(TokioExecutor::new());
    match version {
        Version::Http1 => client.build(builder.enable_http1().build()),
        Version::Http2 => client
            .http2_only(true)
            .build(builder.enable_http2().build()),
    }
}

/// A request body fed chunk by chunk through the returned sender.
pub fn streamed() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (sender, chunks) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), chunks))
    });
    let body = axum::body::Body::from_stream(stream);
    (sender, body.map_err(Into::into).boxed_unsync())
}

pub fn full(body: Vec<u8>) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// POSTs `body` with `client`: (status, the body as JSON or null).
pub async fn post(
    client: &HttpsClient,
    port: u16,
    path: &str,
    ct: &str,
    body: Body,
) -> (u16, Value) {
    let request = hyper::Request::post(format!("https://localhost:{port}{path}"))
        .header("content-type", ct)
        .body(body)
        .unwrap();
    let response = client.request(request).await.expect("HTTPS request");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

impl Harness {
    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        self.post_over(Version::Http1, path, content_type, body)
            .await
    }

    pub async fn post_over(
        &self,
        version: Version,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let client = match version {
            Version::Http1 => &self.http1,
            Version::Http2 => &self.http2,
        };
        let answer = post(client, self.webhook.port(), path, content_type, full(body));
        within(Duration::from_secs(30), "an answer", answer).await
    }

    /// The `response` of a review that must be answered 200 with a well-formed review.
    pub async fn review(&self, path: &str, review: &Value) -> Value {
        let body = serde_json::to_vec(review).unwrap();
        let (status, answer) = self.post(path, JSON, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        answer["response"].clone()
    }

    /// Sends `review` in the background; resolves to the whole answer.
    pub fn spawn_review(&self, path: &str, review: Value) -> tokio::task::JoinHandle<Value> {
        let (client, port, path) = (self.http1.clone(), self.webhook.port(), path.to_owned());
        tokio::spawn(async move {
            let body = full(serde_json::to_vec(&review).unwrap());
            post(&client, port, &path, JSON, body).await.1
        })
    }

    pub async fn until_reviews_in_progress(&self, n: usize) {
        let app = self.app.clone();
        wait_until("reviews to be in progress", Duration::from_secs(10), || {
            let taken = app.max_reviews - app.reviews.available_permits();
            async move { taken == n }
        })
        .await;
    }

    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        within(Duration::from_secs(10), path, http_get(self.admin, path)).await
    }

    /// `/healthz` answers and a good review is still judged.
    pub async fn assert_healthy(&self) {
        assert_eq!(self.admin_get("/healthz").await.0, 200);
        let good = review("healthy", "CREATE", binding("doclet"), Value::Null);
        let response = self.review("/validate", &good).await;
        assert_eq!(response["uid"], "healthy");
        assert_eq!(response["allowed"], true);
    }

    pub async fn tls_stream(
        &self,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        // A resumed session shows the certificate of the session it resumes.
        config.resumption = rustls::client::Resumption::disabled();
        let tcp = tokio::net::TcpStream::connect(self.webhook).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }

    /// The DER of the certificate a fresh handshake is served.
    pub async fn served_certificate(&self) -> Vec<u8> {
        let stream = self.tls_stream(b"http/1.1").await;
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// Declares a 100-byte body to `path` and sends one byte a second; returns the answer.
    pub async fn slow_http1_request(&self, path: &str) -> String {
        let stream = self.tls_stream(b"http/1.1").await;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..99 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if writer.write_all(b" ").await.is_err() {
                    return;
                }
            }
        });
        let mut answer = Vec::new();
        let read = reader.read_to_end(&mut answer);
        let limit = server::BODY_TIMEOUT + Duration::from_secs(10);
        let _ = within(limit, "the slow request to be cut off", read).await;
        trickle.abort();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Over HTTP/2: declares 100 bytes and sends one a second; returns the status.
    pub async fn slow_http2_request(&self) -> u16 {
        let (sender, body) = streamed();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if sender.send(Bytes::from_static(b" ")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let request = hyper::Request::post(format!(
            "https://localhost:{}/validate",
            self.webhook.port()
        ))
        .header("content-type", JSON)
        .header("content-length", "100")
        .body(body)
        .unwrap();
        let limit = server::BODY_TIMEOUT + Duration::from_secs(10);
        let response = within(
            limit,
            "the slow request to be cut off",
            self.http2.request(request),
        )
        .await;
        trickle.abort();
        response.expect("a response").status().as_u16()
    }

    /// Reviews sent one after another, each on a new connection, until stopped.
    pub fn continuous_reviews(&self) -> Traffic {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*self.tls).clone())
                    .https_only()
                    .enable_http1()
                    .build(),
            );
        let traffic = Traffic::default();
        let (shared, port) = (traffic.clone(), self.webhook.port());
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::SeqCst) {
                let good = review("steady", "CREATE", binding("doclet"), Value::Null);
                let request = hyper::Request::post(format!("https://localhost:{port}/validate"))
                    .header("content-type", JSON)
                    .body(full(serde_json::to_vec(&good).unwrap()))
                    .unwrap();
                let outcome = match client.request(request).await {
                    Ok(r) if r.status() == 200 => Ok(()),
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(format!("{e:?}")),
                };
                shared.record(outcome);
            }
        });
        traffic
    }
}

#[derive(Clone, Default)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Traffic {
    fn record(&self, outcome: Result<(), String>) {
        if let Err(failure) = outcome {
            self.failures.lock().unwrap().push(failure);
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
    }

    pub async fn until_answered(&self, n: usize) {
        let answered = self.answered.clone();
        wait_until("reviews to be answered", Duration::from_secs(20), || {
            let done = answered.load(Ordering::SeqCst) >= n;
            async move { done }
        })
        .await;
    }

    /// Waits for `more` answers, stops, and returns (answered, failures).
    pub async fn stop_after_more(self, more: usize) -> (usize, Vec<String>) {
        let target = self.answered.load(Ordering::SeqCst) + more;
        self.until_answered(target).await;
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.failures.lock().unwrap().clone();
        (self.answered.load(Ordering::SeqCst), failures)
    }
}

/// A certificate directory laid out like a mounted Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<timestamp>/`; a swap replaces `..data` atomically, as the kubelet does.
pub struct Rotation {
    pub dir: PathBuf,
    pub old: tls::Bundle,
    pub new: tls::Bundle,
}

impl Rotation {
    pub fn new() -> Rotation {
        let names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let dir = temp_dir("rotation");
        let old = tls::generate(&names).unwrap();
        tls::write_bundle(&dir.join("..2026_11_23_old"), &old).unwrap();
        std::os::unix::fs::symlink("..2026_11_23_old", dir.join("..data")).unwrap();
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file)).unwrap();
        }
        let new = tls::generate(&names).unwrap();
        Rotation { dir, old, new }
    }

    pub fn swap(&self) {
        tls::write_bundle(&self.dir.join("..2026_11_23_new"), &self.new).unwrap();
        std::os::unix::fs::symlink("..2026_11_23_new", self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
    }

    pub fn new_certificate(&self) -> Vec<u8> {
        let der = CertificateDer::pem_slice_iter(self.new.cert_pem.as_bytes()).next();
        der.unwrap().unwrap().to_vec()
    }
}

/// Reviews a test holds in [`crate::holding_judge`], by uid.
pub mod gate {
    use super::*;

    static HELD: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    static RELEASED: Condvar = Condvar::new();

    /// While the returned value lives, a review with its uid waits in the judge.
    pub fn hold(uid: &str) -> Held {
        HELD.lock()
            .unwrap()
            .get_or_insert_default()
            .insert(uid.to_owned());
        Held {
            uid: uid.to_owned(),
        }
    }

    pub struct Held {
        pub uid: String,
    }

    impl Drop for Held {
        fn drop(&mut self) {
            HELD.lock()
                .unwrap()
                .get_or_insert_default()
                .remove(&self.uid);
            RELEASED.notify_all();
        }
    }

    pub fn wait_while_held(uid: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut held = HELD.lock().unwrap();
        while held.as_ref().is_some_and(|h| h.contains(uid)) && Instant::now() < deadline {
            held = RELEASED
                .wait_timeout(held, Duration::from_secs(1))
                .unwrap()
                .0;
        }
    }
}

pub fn uid_of(body: &[u8]) -> String {
    let review: Value = serde_json::from_slice(body).unwrap_or_default();
    review["request"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls `done` until it says true; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `work`, or a panic naming `what` after `limit`.
pub async fn within<T>(limit: Duration, what: &str, work: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, work).await {
        Ok(value) => value,
        Err(_) => panic!("no {what} within {limit:?}"),
    }
}

/// `GET path` over plain HTTP/1.1: (status, whole response text).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
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

pub fn binding(project: &str) -> Value {
    json!({
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ResourceReleaseBinding",
        "metadata": {"name": "doclet-postgres-development", "namespace": "default"},
        "spec": {"owner": {"projectName": project, "resourceName": "doclet-postgres"}, "environment": "development"},
    })
}

pub fn review(uid: &str, operation: &str, object: Value, old: Value) -> Value {
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
