//! The HTTPS webhook listener and the plain-HTTP admin listener.

use crate::admission::error_body;
use crate::cluster::{ClusterView, Stores};
use crate::judge::judge;
use crate::metrics::Metrics;
use crate::policy::{Context, Phase, Settings};
use crate::schema::SchemaCache;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The largest AdmissionReview accepted; the API server's own limit is about 3 MiB per object.
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What every handler shares.
pub struct App {
    pub view: Arc<dyn ClusterView>,
    pub stores: Option<Stores>,
    pub settings: Settings,
    pub schemas: SchemaCache,
    pub metrics: Arc<Metrics>,
    pub tls_ready: AtomicBool,
}

impl App {
    fn context(&self) -> Context<'_> {
        Context {
            view: self.view.as_ref(),
            settings: &self.settings,
            schemas: &self.schemas,
        }
    }
}

/// The webhook routes.
pub fn webhook_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

/// The admin routes.
pub fn admin_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn validate(state: State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    review(Phase::Validate, state, headers, body)
}

async fn mutate(state: State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    review(Phase::Mutate, state, headers, body)
}

fn review(phase: Phase, State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        let message = "content type must be application/json";
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(error_body(message)),
        )
            .into_response();
    }
    let started = Instant::now();
    match judge(phase, &body, &app.context()) {
        Ok(judged) => {
            let took = started.elapsed();
            app.metrics
                .request(&judged.kind, &judged.operation, judged.verdict, took);
            tracing::debug!(
                kind = judged.kind,
                operation = judged.operation,
                verdict = judged.verdict,
                ?took,
                "reviewed"
            );
            Json(judged.response).into_response()
        }
        Err(error) => {
            app.metrics.request("", "", "malformed", started.elapsed());
            (
                StatusCode::BAD_REQUEST,
                Json(error_body(&error.to_string())),
            )
                .into_response()
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let tls = app.tls_ready.load(Ordering::SeqCst);
    let synced = app.view.is_synced();
    let body = format!("tls: {tls}, cluster view synced: {synced}\n");
    let code = if tls && synced {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let sizes = app
        .stores
        .as_ref()
        .map(|s| s.sizes().to_vec())
        .unwrap_or_default();
    let text = app.metrics.render(&sizes);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves HTTPS on `listener` until `shutdown` turns true, then drains open connections.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (acceptor, router, builder) = (acceptor.clone(), router.clone(), builder.clone());
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                            return;
                        };
                        let service = TowerToHyperService::new(router);
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    });
                }
                Err(error) => tracing::warn!(%error, "accept failed"),
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Serves plain HTTP on `listener` until `shutdown` turns true.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(%error, "admin listener failed");
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
