//! The HTTPS webhook listener and the plain-HTTP admin listener: routes, readiness, shutdown.

pub mod authorize;
mod duration;
mod listen;
mod review;

pub use duration::parse as parse_duration;
pub use listen::{FIRST_REQUEST_TIMEOUT, HEADER_TIMEOUT, IDLE_TIMEOUT, serve_plain, serve_tls};
pub use review::{BODY_LIMIT, BODY_TIMEOUT, Route, budget};

use crate::admission::{Nesting, ReviewError};
use crate::cluster::{ClusterView, Stores};
use crate::judge::Judged;
use crate::metrics::Metrics;
use crate::policy::{Context, Phase, Settings};
use crate::schema::{InPlace, SchemaCache};
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Reviews judged at once unless `--max-concurrent-reviews` says otherwise.
pub const DEFAULT_MAX_REVIEWS: usize = 32;
/// MiB of review bodies held at once (being read or judged) unless `--max-review-mib` says
/// otherwise, and as many of decoded reviews: well inside the Deployment's 512 MiB.
pub const DEFAULT_MAX_REVIEW_MIB: u32 = 16;
/// Reviews nested deeper than 128 levels judged at once: one at the API server's limit of
/// 10,000 levels touches about 30 MB of its own stack while it is decoded and judged.
pub const DEEP_REVIEWS_AT_ONCE: usize = 2;

/// Turns a request body into a judged review; [`crate::judge::judge`] in production.
pub type JudgeFn = fn(Phase, &[u8], Nesting, &Context) -> Result<Judged, ReviewError>;

/// What every handler shares.
pub struct App {
    pub view: Arc<dyn ClusterView>,
    pub stores: Option<Stores>,
    pub settings: Settings,
    pub schemas: SchemaCache,
    pub metrics: Arc<Metrics>,
    pub tls_ready: AtomicBool,
    /// Set on SIGTERM: `/readyz` answers 503 so endpoints stop routing here.
    pub draining: AtomicBool,
    pub judge: JudgeFn,
    /// Permits for reviews being judged; when none is left a review is refused at once.
    pub reviews: Arc<Semaphore>,
    pub max_reviews: usize,
    /// KiB of request bodies held at once; a body waits for its share before it is read.
    pub body_kib: Arc<Semaphore>,
    /// KiB of decoded reviews held at once (estimated from their bodies); a body waits for its
    /// share before it is decoded.
    pub decoded_kib: Arc<Semaphore>,
    /// The size of each of those two budgets.
    pub budget_kib: usize,
    /// Permits for reviews nested deeper than any thread's stack handles, each judged on a
    /// stack of its own that may touch megabytes; they wait for one until their deadline.
    pub deep_reviews: Arc<Semaphore>,
    /// Asks whether a requester may act on a project (`--authorize-projects`).
    pub authorizer: Option<Arc<dyn authorize::Authorizer>>,
}

impl App {
    /// An app judging with [`crate::judge::judge`], at most `max_reviews` at once.
    pub fn new(
        view: Arc<dyn ClusterView>,
        stores: Option<Stores>,
        settings: Settings,
        metrics: Arc<Metrics>,
        max_reviews: usize,
    ) -> App {
        App {
            view,
            stores,
            settings,
            schemas: SchemaCache::new(),
            metrics,
            tls_ready: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            judge: crate::judge::judge_measured,
            reviews: Arc::new(Semaphore::new(max_reviews)),
            max_reviews,
            body_kib: Arc::new(Semaphore::new(0)),
            decoded_kib: Arc::new(Semaphore::new(0)),
            budget_kib: 0,
            deep_reviews: Arc::new(Semaphore::new(DEEP_REVIEWS_AT_ONCE)),
            authorizer: None,
        }
        .with_body_budget(DEFAULT_MAX_REVIEW_MIB)
    }

    /// Holds at most `mib` MiB of request bodies, and as many of decoded reviews, at once.
    pub fn with_body_budget(mut self, mib: u32) -> App {
        self.budget_kib = mib as usize * 1024;
        self.body_kib = Arc::new(Semaphore::new(self.budget_kib));
        self.decoded_kib = Arc::new(Semaphore::new(self.budget_kib));
        self
    }

    fn context<'a>(&'a self, in_place: Option<&'a InPlace>) -> Context<'a> {
        Context {
            view: self.view.as_ref(),
            settings: &self.settings,
            schemas: &self.schemas,
            in_place,
        }
    }
}

/// The webhook routes: `/validate` (refusing rules), `/warn` (warning-only rules) and `/mutate`.
pub fn webhook_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/warn", post(warn))
        .route("/mutate", post(mutate))
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

async fn validate(app: State<Arc<App>>, q: RawQuery, h: HeaderMap, body: Body) -> Response {
    review::handle(Route::Validate, app.0, q.0, h, body).await
}

async fn warn(app: State<Arc<App>>, q: RawQuery, h: HeaderMap, body: Body) -> Response {
    review::handle(Route::Warn, app.0, q.0, h, body).await
}

async fn mutate(app: State<Arc<App>>, q: RawQuery, h: HeaderMap, body: Body) -> Response {
    review::handle(Route::Mutate, app.0, q.0, h, body).await
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let tls = app.tls_ready.load(Ordering::SeqCst);
    let synced = app.view.is_synced();
    let draining = app.draining.load(Ordering::SeqCst);
    let body = format!("tls: {tls}, cluster view synced: {synced}, draining: {draining}\n");
    let code = if tls && synced && !draining {
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

/// Marks the app not ready and keeps serving for `delay`, so the Service's endpoints drop
/// this pod before it stops accepting. A second signal cuts the delay short.
pub async fn drain(app: &App, delay: Duration) {
    app.draining.store(true, Ordering::SeqCst);
    tracing::info!(
        ?delay,
        "termination requested: /readyz answers 503; serving through the drain delay"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = termination() => tracing::info!("second termination signal: ending the drain delay"),
    }
    tracing::info!("no longer accepting connections; finishing requests in progress");
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
