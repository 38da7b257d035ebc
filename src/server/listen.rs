//! Accepting connections and ending them: timeouts for slow or idle clients, and a shutdown
//! that stops accepting, closes idle connections and lets in-flight requests finish.

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/1.1: a request's headers must arrive within this, counted from the end of the previous
/// request (so it is also the keep-alive idle limit).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in progress for this long is closed (HTTP/2 GOAWAY).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A new connection whose first request has not begun by then is closed: a client that stops
/// in the HTTP/2 preface or its first headers holds nothing longer than [`HEADER_TIMEOUT`].
pub const FIRST_REQUEST_TIMEOUT: Duration = HEADER_TIMEOUT;
/// How long an idle connection may take to close once asked (an HTTP/2 peer that never
/// answers the GOAWAY's ping would otherwise hold it until the keep-alive timeout).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// HTTP/2: ping a quiet connection this often, and drop it when a ping goes unanswered for
/// [`PING_TIMEOUT`].
const PING_INTERVAL: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// HTTP/2 flow control: a stream whose body waits for room in the body budget holds at most its
/// window of data, and all of them together never fill the connection's window, so the bodies
/// being read always get theirs.
const STREAM_WINDOW: u32 = 64 << 10;
const CONNECTION_WINDOW: u32 = MAX_STREAMS_PER_CONNECTION * STREAM_WINDOW + (1 << 20);

/// Serves `router` over TLS until `stop` turns true, then drains (see [`drain`]).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    accept_until_stopped(
        listener,
        stop,
        grace,
        move |stream, conn| {
            let acceptor = acceptor.clone();
            async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => conn.serve(tls).await,
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        },
        router,
    )
    .await;
}

/// Serves `router` over plain HTTP until `stop` turns true, then drains (see [`drain`]).
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    accept_until_stopped(
        listener,
        stop,
        grace,
        |stream, conn| conn.serve(stream),
        router,
    )
    .await;
}

/// One accepted connection, ready to be served once its transport is set up.
pub struct Connection {
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    /// Dropped when the connection ends; the accept loop counts the live ones through it.
    _alive: mpsc::Sender<()>,
}

async fn accept_until_stopped<F, Fut>(
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    grace: Duration,
    setup: F,
    router: Router,
) where
    F: Fn(TcpStream, Connection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let builder = Arc::new(builder());
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // An answer can leave in more than one TLS record; without this the second
                    // waits for the client's delayed ACK (40 ms on Linux).
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "TCP_NODELAY not set");
                    }
                    let conn = Connection {
                        router: router.clone(),
                        builder: builder.clone(),
                        stop: stop.clone(),
                        _alive: alive.clone(),
                    };
                    tokio::spawn(setup(stream, conn));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stop_requested(&mut stopped) => break,
        }
    }
    drop((listener, alive));
    drain(&mut all_closed, grace).await;
}

/// Resolves once `stop` turns true or its sender is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Waits until every connection has ended, or `grace` has passed.
async fn drain(all_closed: &mut mpsc::Receiver<()>, grace: Duration) {
    if tokio::time::timeout(grace, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the shutdown grace period; closing them"
        );
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    builder
}

impl Connection {
    /// Serves HTTP on `io` until the client leaves, the connection idles out, or shutdown
    /// closes it; shutdown and idling let a request in progress finish first.
    pub async fn serve<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let (router, counted) = (self.router.clone(), activity.clone());
        let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
            let busy = counted.begin();
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let builder = self.builder.clone();
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(conn);
        let mut closing = false;
        // An idle connection asked to close is dropped if its peer never answers the GOAWAY.
        let mut dropped_at = None;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = stop_requested(&mut self.stop), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = activity.idle_for(FIRST_REQUEST_TIMEOUT, IDLE_TIMEOUT), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    dropped_at = Some(Instant::now() + IDLE_CLOSE_GRACE);
                }
                () = sleep_until_some(dropped_at) => {
                    tracing::debug!("an idle connection did not close in time; dropping it");
                    return;
                }
            }
        }
    }
}

/// Resolves at `at`, or never.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Requests in progress on a connection, and since when it has had none.
struct Activity {
    state: Mutex<Requests>,
}

struct Requests {
    open: usize,
    /// When the last request ended, or the connection began.
    since: Instant,
    any: bool,
}

/// One request in progress; ends when dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        let state = Requests {
            open: 0,
            since: Instant::now(),
            any: false,
        };
        Activity {
            state: Mutex::new(state),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.update(|requests| {
            requests.open += 1;
            requests.any = true;
        });
        Busy(self.clone())
    }

    fn update(&self, f: impl FnOnce(&mut Requests)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// When the connection went idle and whether it has had a request, or `None` while a
    /// request is in progress.
    fn idle_since(&self) -> Option<(Instant, bool)> {
        let requests = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (requests.open == 0).then_some((requests.since, requests.any))
    }

    /// Resolves once the connection has had no request in progress for `limit`, or none at all
    /// for `first`.
    async fn idle_for(&self, first: Duration, limit: Duration) {
        loop {
            let wake = match self.idle_since() {
                Some((since, any)) => {
                    let limit = if any { limit } else { first };
                    if since.elapsed() >= limit {
                        return;
                    }
                    since + limit
                }
                None => Instant::now() + limit,
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|requests| {
            requests.open = requests.open.saturating_sub(1);
            requests.since = Instant::now();
        });
    }
}
