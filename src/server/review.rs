//! One webhook call: read the body within its deadline, judge it under the concurrency limit
//! (where it arrives when its work is known to be short, else off the async workers), and answer
//! before the API server gives up, even when judging cannot finish (busy, too slow, or a panic).

use super::App;
use super::authorize::{self, Authorizer};
use super::duration;
use crate::admission::{self, Nesting, ReviewError, Shape};
use crate::head::Head;
use crate::judge::{Judged, ProjectCheck};
use crate::metrics::RequestLabels;
use crate::policy::Phase;
use crate::schema::InPlace;
use crate::webhook_config::TIMEOUT_SECONDS;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The largest AdmissionReview accepted; the API server's own limit is about 3 MiB per object.
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;
/// A request body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which webhook is calling, and what bindguard answers when it cannot judge in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Refusing rules (`failurePolicy: Fail`): unjudged means refused.
    Validate,
    /// Warning-only rules (`failurePolicy: Ignore`): unjudged means allowed, with a warning.
    Warn,
    /// Labels and defaults (`failurePolicy: Fail`): unjudged means refused.
    Mutate,
}

impl Route {
    fn phase(self) -> Phase {
        match self {
            Route::Validate | Route::Warn => Phase::Validate,
            Route::Mutate => Phase::Mutate,
        }
    }
}

/// Why a request got no judgement.
#[derive(Debug, Clone, Copy)]
enum Unjudged {
    Busy,
    /// No room in the decoded-review budget by the deadline.
    NoRoom,
    TimedOut(Duration),
    Panicked,
}

/// Answers one webhook call.
pub async fn handle(
    route: Route,
    app: Arc<App>,
    query: Option<String>,
    headers: HeaderMap,
    mut request: Body,
) -> Response {
    let started = Instant::now();
    let budget = budget(query.as_deref());
    if !is_json(&headers) {
        let message = "content type must be application/json";
        return malformed(&app, StatusCode::UNSUPPORTED_MEDIA_TYPE, message, started);
    }
    let within = budget.min(BODY_TIMEOUT);
    let (body, read) = match read_body(&app, &headers, &mut request, started, within).await {
        Ok(read) => read,
        Err(unread) => return not_read(&app, unread, started),
    };
    let shape = match shape_of(&body).await {
        Ok(shape) => shape,
        // Too deep to decode: refused here, not handed to the blocking pool to find out again.
        Err(error) => {
            let (response, verdict, _) = respond(&body, Err(error));
            app.metrics.request(&verdict, started.elapsed());
            return response;
        }
    };
    let Ok(decoded) = decoding_room(&app, &shape, started + within).await else {
        return unjudged(route, &app, &body, Unjudged::NoRoom, started);
    };
    let held: Held = (read, decoded);
    let answer = answer(
        route,
        app.clone(),
        body.clone(),
        shape,
        held,
        started,
        budget,
    );
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(response) => response,
        Err(_) => unjudged(route, &app, &body, Unjudged::Panicked, started),
    }
}

/// [`admission::shape_of`] `body`: on this worker when it is small, else on the blocking pool
/// (a scan of megabytes takes milliseconds).
async fn shape_of(body: &Bytes) -> Result<Shape, ReviewError> {
    if body.len() <= IN_PLACE_BODY_BYTES {
        return admission::shape_of(body);
    }
    let body = body.clone();
    let scan = tokio::task::spawn_blocking(move || admission::shape_of(&body));
    let unmeasured = |e: tokio::task::JoinError| ReviewError::NotJson(format!("not measured: {e}"));
    scan.await.unwrap_or_else(|e| Err(unmeasured(e)))
}

/// The room a review holds in the body budgets (read, decoded) until judging ends, even past
/// its deadline.
type Held = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

/// Judges `body` if a review slot is free, answering by `started + budget` either way.
async fn answer(
    route: Route,
    app: Arc<App>,
    body: Bytes,
    shape: Shape,
    held: Held,
    started: Instant,
    budget: Duration,
) -> Response {
    let deadline = started + budget;
    // A deep review waits for its slot before it takes a review slot, never holding one idle.
    let deep = match shape.nesting {
        Nesting::Deep => {
            let slot = app.deep_reviews.clone().acquire_owned();
            match tokio::time::timeout_at(deadline, slot).await {
                Ok(Ok(slot)) => Some(slot),
                Ok(Err(_)) | Err(_) => {
                    let why = Unjudged::TimedOut(budget);
                    return unjudged(route, &app, &body, why, started);
                }
            }
        }
        Nesting::Shallow => None,
    };
    let Ok(permit) = app.reviews.clone().try_acquire_owned() else {
        return unjudged(route, &app, &body, Unjudged::Busy, started);
    };
    let phase = route.phase();
    let answered = match shape.nesting {
        Nesting::Shallow if body.len() <= IN_PLACE_BODY_BYTES => judge_in_place(&app, phase, &body),
        _ => None,
    };
    let (response, verdict, project_check) = match answered {
        Some(answered) => {
            drop(permit);
            answered
        }
        None => {
            let held = (permit, deep, held);
            let task = judge_off_thread(phase, app.clone(), (body.clone(), shape.nesting), held);
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(answered)) => answered,
                Ok(Err(_)) => return unjudged(route, &app, &body, Unjudged::Panicked, started),
                Err(_) => return unjudged(route, &app, &body, Unjudged::TimedOut(budget), started),
            }
        }
    };
    let (response, verdict) = match (route, project_check, &app.authorizer) {
        (Route::Validate | Route::Warn, Some(check), Some(authorizer)) => {
            let span = check.head.span();
            let asked = authorize(authorizer.as_ref(), check, deadline, response, verdict);
            tracing::Instrument::instrument(asked, span).await
        }
        (_, _, _) => (response, verdict),
    };
    app.metrics.request(&verdict, started.elapsed());
    response
}

/// Reviews at most this large and nested no deeper than any thread's stack handles are judged
/// where they arrive: their work is bounded by their size (tens of microseconds), less than a
/// trip to the blocking pool and back costs in thread switches. A schema check that could be
/// long is not done there ([`InPlace`]): that review, and everything else, is judged off the
/// async workers, within the deadline.
const IN_PLACE_BODY_BYTES: usize = 64 * 1024;

/// Judges on this async worker; `None` when a schema check was left for the blocking pool.
fn judge_in_place(app: &App, phase: Phase, body: &[u8]) -> Option<Answered> {
    let in_place = InPlace::default();
    let judged = (app.judge)(phase, body, Nesting::Shallow, &app.context(Some(&in_place)));
    (!in_place.deferred()).then(|| respond(body, judged))
}

type Verdict = RequestLabels;

/// Keeps `response` when the requester has the project access the write needs; otherwise (or
/// when that cannot be found out by `deadline`) refuses with 403.
async fn authorize(
    authorizer: &dyn Authorizer,
    check: ProjectCheck,
    deadline: Instant,
    response: Response,
    verdict: Verdict,
) -> (Response, Verdict) {
    let asked = authorize::check(authorizer, &check.pending);
    let message = match tokio::time::timeout_at(deadline, asked).await {
        Ok(Ok(None)) => return (response, verdict),
        Ok(Ok(Some(refusal))) => {
            let user = &check.pending.user.username;
            tracing::info!(%user, rule = "project-access", "denied");
            refusal
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "project access could not be checked; refusing");
            format!("bindguard could not check project access, so the write is refused: {error}")
        }
        Err(_) => {
            tracing::warn!("project access was not answered in time; refusing");
            "bindguard could not check project access in time, so the write is refused".into()
        }
    };
    let refused = json_text(check.refusal(message));
    let verdict = RequestLabels {
        verdict: "denied".into(),
        rule: "project-access".into(),
        ..verdict
    };
    (refused, verdict)
}

/// Judges on the blocking pool; the permits are held until judging ends, even past the
/// deadline, so abandoned work still counts against the limits.
fn judge_off_thread(
    phase: Phase,
    app: Arc<App>,
    (body, nesting): (Bytes, Nesting),
    permits: impl Send + 'static,
) -> tokio::task::JoinHandle<Answered> {
    tokio::task::spawn_blocking(move || {
        let _permits = permits;
        let judged = (app.judge)(phase, &body, nesting, &app.context(None));
        respond(&body, judged)
    })
}

type Answered = (Response, Verdict, Option<ProjectCheck>);

fn respond(body: &[u8], judged: Result<Judged, ReviewError>) -> Answered {
    match judged {
        Ok(judged) => {
            log_verdict(&judged);
            let verdict = RequestLabels {
                kind: judged.head.kind,
                operation: judged.head.operation,
                verdict: judged.verdict.into(),
                rule: judged.rule,
            };
            let response = json_text(judged.response);
            (response, verdict, judged.project_check)
        }
        Err(error) => {
            let _entered = Head::peek(body).span().entered();
            tracing::info!(code = 400, "refused: not an AdmissionReview");
            tracing::debug!(%error, "why it is not an AdmissionReview");
            let response = error_response(StatusCode::BAD_REQUEST, &error.to_string());
            (response, RequestLabels::unjudged("", "", "malformed"), None)
        }
    }
}

/// Denials at info with who and which field, never the object or the message (either may
/// quote values); everything else at debug.
fn log_verdict(judged: &Judged) {
    let head = &judged.head;
    let Some(denial) = &judged.denial else {
        // The level, not `enabled!`: a filter on the span's fields can only match inside it.
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            let _entered = head.span().entered();
            tracing::debug!(verdict = judged.verdict, "reviewed");
        }
        return;
    };
    let _entered = head.span().entered();
    let field = denial.causes.first().map(|c| admission::capped(&c.field));
    let code = denial.code.http();
    tracing::info!(user = %head.user, field = field.as_deref().unwrap_or_default(), code, "denied");
}

/// A 200 answer whose body is JSON text already.
fn json_text(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn unjudged(route: Route, app: &App, body: &[u8], why: Unjudged, started: Instant) -> Response {
    let head = Head::peek(body);
    let span = head.span();
    let _entered = span.enter();
    let label = match why {
        Unjudged::Busy => {
            tracing::warn!(
                limit = app.max_reviews,
                "refused: too many reviews in progress"
            );
            "busy"
        }
        Unjudged::NoRoom => {
            tracing::warn!("refused: the reviews being judged leave no room to decode this one");
            "busy"
        }
        Unjudged::TimedOut(budget) => {
            tracing::warn!(
                ?budget,
                "judging did not finish within the API server's timeout"
            );
            "timeout"
        }
        Unjudged::Panicked => {
            tracing::error!("the review handler panicked");
            "error"
        }
    };
    let labels = RequestLabels::unjudged(&head.kind, &head.operation, label);
    app.metrics.request(&labels, started.elapsed());
    let response = match route {
        Route::Warn => allowed_unchecked(&head.uid, why),
        Route::Validate | Route::Mutate => refused(&head.uid, app, why),
    };
    Json(response).into_response()
}

fn refused(uid: &str, app: &App, why: Unjudged) -> Value {
    let (code, reason, message) = match why {
        Unjudged::Busy => (
            429,
            "TooManyRequests",
            format!(
                "bindguard is judging its limit of {} requests at once; retry shortly",
                app.max_reviews
            ),
        ),
        Unjudged::NoRoom => (
            429,
            "TooManyRequests",
            "bindguard is judging as many large reviews as its memory budget allows; retry shortly"
                .into(),
        ),
        Unjudged::TimedOut(budget) => (
            504,
            "Timeout",
            format!("bindguard could not judge this request within {budget:?}; retry shortly"),
        ),
        Unjudged::Panicked => (
            500,
            "InternalError",
            "bindguard could not judge this request (internal error); it has been logged".into(),
        ),
    };
    let status = json!({"metadata": {}, "status": "Failure", "code": code, "reason": reason, "message": message});
    review(json!({"uid": uid, "allowed": false, "status": status}))
}

fn allowed_unchecked(uid: &str, why: Unjudged) -> Value {
    let cause = match why {
        Unjudged::Busy | Unjudged::NoRoom => "was too busy",
        Unjudged::TimedOut(_) => "ran out of time",
        Unjudged::Panicked => "failed (internal error)",
    };
    let warning = format!("bindguard {cause} to check this request; allowed without its warnings");
    review(json!({"uid": uid, "allowed": true, "warnings": [warning]}))
}

fn review(response: Value) -> Value {
    json!({"apiVersion": admission::API_VERSION, "kind": admission::KIND, "response": response})
}

fn malformed(app: &App, code: StatusCode, message: &str, started: Instant) -> Response {
    tracing::info!(code = code.as_u16(), "refused a malformed webhook call");
    tracing::debug!(message, "why the webhook call is malformed");
    let labels = RequestLabels::unjudged("", "", "malformed");
    app.metrics.request(&labels, started.elapsed());
    error_response(code, message)
}

fn error_response(code: StatusCode, message: &str) -> Response {
    (code, Json(admission::error_body(message))).into_response()
}

/// Why a body was not read.
enum Unread {
    Malformed(StatusCode, String),
    /// The bodies held already leave no room for this one by the deadline.
    NoRoom,
    /// The body stopped arriving: the client went away, or broke the HTTP framing.
    Broken(String),
}

/// Reads the whole body, refusing one over [`BODY_LIMIT`] (413) or not received `within` of
/// `started` (408). Its size is taken from the app's body budget before it is read (its
/// declared length first, then as it arrives), waiting for room as long; the returned permit
/// holds it.
async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: &mut Body,
    started: Instant,
    within: Duration,
) -> Result<(Bytes, OwnedSemaphorePermit), Unread> {
    let until = started + within;
    let too_large = || {
        let message = format!("request body is larger than {BODY_LIMIT} bytes");
        Unread::Malformed(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let not_in_time = || {
        let message = format!("request body not received within {within:?}");
        Unread::Malformed(StatusCode::REQUEST_TIMEOUT, message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let mut held = room(app, kib(declared.unwrap_or(0) as usize), until).await?;
    let mut read = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut limited = Limited::new(body, BODY_LIMIT);
    loop {
        let frame = match tokio::time::timeout_at(until, limited.frame()).await {
            Err(_) => return Err(not_in_time()),
            Ok(None) => return Ok((Bytes::from(read), held)),
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(error))) if error.is::<LengthLimitError>() => return Err(too_large()),
            Ok(Some(Err(error))) => return Err(Unread::Broken(error.to_string())),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = kib(read.len() + data.len());
        if needed > held.num_permits() {
            held.merge(room(app, needed - held.num_permits(), until).await?);
        }
        read.extend_from_slice(&data);
    }
}

/// Reviews estimated to decode to less than this take no room in the decoded-review budget:
/// the review slots bound them (32 x 256 KiB), and they never queue behind a large one.
const SMALL_DECODED_BYTES: usize = 256 << 10;

/// Takes what the decoded review will take from the decoding budget (all of it at most, so that
/// any review can be judged, alone), waiting until `until` for room; nothing for a small review.
/// A budget of its own: bodies being read never wait for it, so none holds the other up.
async fn decoding_room(
    app: &App,
    shape: &Shape,
    until: Instant,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    if shape.decoded_bytes() < SMALL_DECODED_BYTES {
        return Ok(None);
    }
    let needed = kib(shape.decoded_bytes()).min(app.budget_kib);
    take(&app.decoded_kib, needed, until)
        .await
        .map(Some)
        .ok_or(())
}

/// KiB, rounded up, and at least one.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

/// Takes `kib` KiB from the body budget, waiting until `until` for room.
async fn room(app: &App, kib: usize, until: Instant) -> Result<OwnedSemaphorePermit, Unread> {
    take(&app.body_kib, kib, until).await.ok_or(Unread::NoRoom)
}

/// Takes `kib` KiB from `budget`, waiting until `until` for room.
async fn take(budget: &Arc<Semaphore>, kib: usize, until: Instant) -> Option<OwnedSemaphorePermit> {
    let wanted = u32::try_from(kib).unwrap_or(u32::MAX);
    let taken = budget.clone().acquire_many_owned(wanted);
    tokio::time::timeout_at(until, taken).await.ok()?.ok()
}

/// The answer to a body that was not read, counted and logged by why.
fn not_read(app: &App, unread: Unread, started: Instant) -> Response {
    let (code, label, message) = match unread {
        Unread::Malformed(code, message) => return malformed(app, code, &message, started),
        // Most likely to nobody: the client is gone. Not a malformed review.
        Unread::Broken(error) => {
            tracing::debug!(%error, "the request body could not be read to its end");
            let message = format!("reading the body: {error}");
            (StatusCode::BAD_REQUEST, "aborted", message)
        }
        // Without its uid no review can be answered: the API server applies the failure policy.
        Unread::NoRoom => {
            tracing::warn!("refused: the review bodies held already leave no room for this one");
            let message = "bindguard is holding as many review bodies as it may; retry shortly";
            (StatusCode::TOO_MANY_REQUESTS, "busy", message.to_owned())
        }
    };
    let labels = RequestLabels::unjudged("", "", label);
    app.metrics.request(&labels, started.elapsed());
    error_response(code, &message)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// How long judging may take: most of the API server's `?timeout=`, leaving it time to read
/// the answer; the configured webhook timeout when the parameter is missing.
pub fn budget(query: Option<&str>) -> Duration {
    let timeout = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(|value| duration::parse(value).ok())
        .unwrap_or(Duration::from_secs(TIMEOUT_SECONDS));
    (timeout.min(Duration::from_secs(30)) * 4 / 5).max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_the_api_server_time_to_read_the_answer() {
        assert_eq!(budget(Some("timeout=10s")), Duration::from_secs(8));
        assert_eq!(budget(Some("x=1&timeout=5s")), Duration::from_secs(4));
        assert_eq!(budget(None), Duration::from_secs(TIMEOUT_SECONDS) * 4 / 5);
        assert_eq!(budget(Some("timeout=bogus")), budget(None));
        assert_eq!(budget(Some("timeout=10m")), Duration::from_secs(24));
        assert_eq!(budget(Some("timeout=1ms")), Duration::from_millis(100));
    }
}
