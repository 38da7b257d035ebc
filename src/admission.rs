//! The admission.k8s.io/v1 wire contract: decode a review, encode its response.
//!
//! Nothing here knows a binding from a promise; [`crate::policy`] decides, this module only
//! speaks the API server's language.

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";
/// The API server keeps at most a few warnings and wants each one short.
pub const MAX_WARNINGS: usize = 8;
pub const MAX_WARNING_CHARS: usize = 119;
/// Nesting the API server accepts in an object, plus the review's own envelope. A review is
/// decoded (and must be dropped) on a stack of [`REVIEW_STACK_BYTES`].
pub const MAX_REVIEW_DEPTH: usize = 10_000 + 16;
/// Stack that decoding, judging and dropping a review of [`MAX_REVIEW_DEPTH`] needs, with room
/// to spare (reserved, committed only as it is used).
pub const REVIEW_STACK_BYTES: usize = 256 << 20;
/// Nesting that any thread's stack handles (serde_json's own default limit).
const SHALLOW_DEPTH: usize = 128;

/// Why a body could not be read as an AdmissionReview at all (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("not an {API_VERSION} {KIND}: {0}")]
    NotAReview(String),
    #[error(
        "body is nested more than {MAX_REVIEW_DEPTH} levels deep; \
         the API server accepts no object nested that deep"
    )]
    TooDeep,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// As the API server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// The part of `request` bindguard reads. Objects stay raw JSON: policy decodes them by kind.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl AdmissionRequest {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    /// The object's name; on CREATE with `generateName` the request carries none.
    pub fn object_name(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        self.object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn is_status_update(&self) -> bool {
        self.sub_resource.as_deref() == Some("status")
    }
}

#[derive(Deserialize)]
struct ReviewEnvelope {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<Value>,
}

/// The envelope decoded straight into its request: the path every review the API server sends
/// takes. When it fails, [`ReviewEnvelope`] decodes again to say exactly what is wrong.
#[derive(Deserialize)]
struct TypedEnvelope<'a> {
    #[serde(rename = "apiVersion", default, borrow)]
    api_version: Cow<'a, str>,
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
    request: Option<AdmissionRequest>,
}

/// How much stack a review needs, measured once per body by [`nesting_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// Any thread's stack decodes, judges and drops it.
    Shallow,
    /// Decode, judge and drop it on a stack of [`REVIEW_STACK_BYTES`].
    Deep,
}

/// How deep `body` nests; deeper than the API server accepts is refused. A single pass without
/// recursion, so any body answers at once.
pub fn nesting_of(body: &[u8]) -> Result<Nesting, ReviewError> {
    shape_of(body).map(|shape| shape.nesting)
}

/// What a body will cost once decoded, read in one pass before it is.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub nesting: Nesting,
    /// Values and keys in it, about: each `{`, `[`, `,` and `:` outside strings.
    pub values: usize,
}

/// Memory a review takes per value of its body while it is decoded and judged, about (its
/// objects decoded, then read as their kinds). Measured: a 3 MB review of 560,000 values, most
/// in one-key maps, peaked 216 MB above an idle process.
pub const BYTES_PER_VALUE: usize = 400;

impl Shape {
    /// Bytes the decoded review will take, about.
    pub fn decoded_bytes(&self) -> usize {
        self.values.saturating_mul(BYTES_PER_VALUE)
    }
}

/// [`nesting_of`], with the number of values.
pub fn shape_of(body: &[u8]) -> Result<Shape, ReviewError> {
    let (depth, values) = nesting(body, MAX_REVIEW_DEPTH);
    let nesting = match depth {
        depth if depth > MAX_REVIEW_DEPTH => return Err(ReviewError::TooDeep),
        depth if depth > SHALLOW_DEPTH => Nesting::Deep,
        _ => Nesting::Shallow,
    };
    Ok(Shape { nesting, values })
}

/// Reads a request body as an AdmissionReview, at any nesting the API server accepts. The
/// result may hold values nested [`MAX_REVIEW_DEPTH`] deep: handle and drop it on a stack of
/// [`REVIEW_STACK_BYTES`], as [`crate::judge::judge`] does.
pub fn decode_review(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    decode_measured(body, nesting_of(body)?)
}

/// [`decode_review`] for a body whose [`Nesting`] is known.
pub fn decode_measured(body: &[u8], nesting: Nesting) -> Result<AdmissionRequest, ReviewError> {
    match nesting {
        // Any thread's stack suffices; growing one costs an mmap per review.
        Nesting::Shallow => decode_envelope(body),
        Nesting::Deep => stacker::maybe_grow(REVIEW_STACK_BYTES / 2, REVIEW_STACK_BYTES, || {
            decode_envelope(body)
        }),
    }
}

fn decode_envelope(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    deserializer.disable_recursion_limit();
    let typed = TypedEnvelope::deserialize(&mut deserializer)
        .and_then(|envelope| deserializer.end().map(|()| envelope));
    match typed {
        Ok(TypedEnvelope {
            api_version,
            kind,
            request: Some(request),
        }) if api_version == API_VERSION && kind == KIND => {
            check_request(&request)?;
            Ok(request)
        }
        _ => decode_explained(body),
    }
}

/// Decodes in two steps, envelope then request, so that a failure names its field.
fn decode_explained(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let envelope: ReviewEnvelope = from_slice_unbounded(body).map_err(|error| {
        match (error.classify(), json_type_of(body)) {
            (serde_json::error::Category::Data, Some(other)) if other != "object" => {
                ReviewError::NotAReview(format!("the body is a JSON {other}, not an object"))
            }
            _ => ReviewError::NotJson(error.to_string()),
        }
    })?;
    if envelope.api_version != API_VERSION || envelope.kind != KIND {
        return Err(ReviewError::NotAReview(format!(
            "apiVersion {:?}, kind {:?}",
            envelope.api_version, envelope.kind
        )));
    }
    let request = envelope
        .request
        .ok_or_else(|| ReviewError::NotAReview("request is missing".into()))?;
    let request: AdmissionRequest = serde_path_to_error::deserialize(request)
        .map_err(|e| ReviewError::NotAReview(format!("request.{}: {}", e.path(), e.inner())))?;
    check_request(&request)?;
    Ok(request)
}

/// What JSON value `body` starts with, by its first byte.
fn json_type_of(body: &[u8]) -> Option<&'static str> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    Some(match first {
        b'{' => "object",
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "boolean",
        b'n' => "null",
        _ => "number",
    })
}

/// The API server always sends a `uid` (the answer must echo it), `object` on CREATE and UPDATE
/// and `oldObject` on UPDATE and DELETE; a review without them is not one it sent.
fn check_request(request: &AdmissionRequest) -> Result<(), ReviewError> {
    if request.uid.is_empty() {
        return Err(ReviewError::NotAReview(
            "request.uid is empty; the answer must echo it".into(),
        ));
    }
    let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
    let (needs_object, needs_old) = match request.operation {
        Operation::Create => (true, false),
        Operation::Update => (true, true),
        Operation::Delete => (false, true),
        Operation::Connect => (false, false),
    };
    let missing = if needs_object && !present(&request.object) {
        "object"
    } else if needs_old && !present(&request.old_object) {
        "oldObject"
    } else {
        return Ok(());
    };
    Err(ReviewError::NotAReview(format!(
        "request.{missing} is missing or null on {:?}",
        request.operation
    )))
}

/// Parses JSON without serde_json's nesting limit of 128; [`nesting_of`] bounds it.
fn from_slice_unbounded<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    deserializer.disable_recursion_limit();
    T::deserialize(&mut deserializer).and_then(|value| deserializer.end().map(|()| value))
}

/// How deep arrays and objects in `body` nest, counted up to `limit + 1` (the scan stops there),
/// and how many `{`, `[`, `,` and `:` it holds outside strings.
fn nesting(body: &[u8], limit: usize) -> (usize, usize) {
    let (mut depth, mut deepest, mut at, mut values) = (0usize, 0usize, 0usize, 0usize);
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => at = after_string(body, at),
            b'{' | b'[' => {
                values += 1;
                depth += 1;
                deepest = deepest.max(depth);
                if depth > limit {
                    return (depth, values);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' | b':' => values += 1,
            _ => {}
        }
    }
    (deepest, values)
}

/// Where the string whose contents start at `at` ends (just past its closing quote).
fn after_string(body: &[u8], mut at: usize) -> usize {
    while let Some(found) = body
        .get(at..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        at += found + 1;
        if body[at - 1] == b'"' {
            return at;
        }
        at += 1; // the escaped byte
    }
    body.len()
}

/// How a refusal is classified on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyCode {
    /// 400: the object could not be read as its kind.
    BadRequest,
    /// 403: a policy refusal.
    Forbidden,
    /// 422: a bad value.
    Invalid,
}

impl DenyCode {
    pub fn http(self) -> u16 {
        match self {
            DenyCode::BadRequest => 400,
            DenyCode::Forbidden => 403,
            DenyCode::Invalid => 422,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            DenyCode::BadRequest => "BadRequest",
            DenyCode::Forbidden => "Forbidden",
            DenyCode::Invalid => "Invalid",
        }
    }

    fn cause_type(self) -> &'static str {
        match self {
            DenyCode::BadRequest => "FieldValueInvalid",
            DenyCode::Forbidden => "FieldValueForbidden",
            DenyCode::Invalid => "FieldValueInvalid",
        }
    }
}

/// One field a refusal is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub field: String,
    pub message: String,
}

/// A refusal: the one line kubectl shows, and the fields it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: DenyCode,
    pub message: String,
    pub causes: Vec<Cause>,
}

impl Denial {
    pub fn new(code: DenyCode, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Denial {
            code,
            causes: vec![Cause {
                field: field.to_string(),
                message: message.clone(),
            }],
            message,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(DenyCode::Invalid, field, message)
    }

    pub fn forbidden(field: &str, message: impl Into<String>) -> Self {
        Self::new(DenyCode::Forbidden, field, message)
    }
}

/// What the API server is told: allowed or not, why, warnings, and a JSON Patch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub denial: Option<Denial>,
    pub warnings: Vec<String>,
    pub patch: Vec<json_patch::PatchOperation>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }

    pub fn label(&self) -> &'static str {
        match (
            &self.denial,
            self.patch.is_empty(),
            self.warnings.is_empty(),
        ) {
            (Some(_), _, _) => "denied",
            (None, false, _) => "patched",
            (None, true, false) => "warned",
            (None, true, true) => "allowed",
        }
    }

    /// For metrics: the field the refusing rule guards, cut to two segments without indexes
    /// (user-chosen keys never become labels); `unreadable` when the object could not be
    /// decoded; empty when nothing was refused.
    pub fn rule(&self) -> String {
        let Some(denial) = &self.denial else {
            return String::new();
        };
        if denial.code == DenyCode::BadRequest {
            return "unreadable".into();
        }
        let field = denial
            .causes
            .first()
            .map(|c| c.field.as_str())
            .unwrap_or_default();
        field
            .split('.')
            .take(2)
            .map(|segment| segment.split('[').next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Identifies the object a response speaks of, for `status.details`.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub group: &'a str,
    pub kind: &'a str,
}

/// Builds the response review for `uid`, as JSON text. DELETE never carries a patch.
pub fn encode_response(
    uid: &str,
    operation: Option<Operation>,
    subject: &Subject,
    verdict: &Decision,
) -> Vec<u8> {
    let patchable = verdict.allowed() && operation != Some(Operation::Delete);
    let patch = (patchable && !verdict.patch.is_empty()).then(|| {
        let patch = serde_json::to_vec(&verdict.patch).unwrap_or_else(|_| b"[]".to_vec());
        base64::engine::general_purpose::STANDARD.encode(patch)
    });
    let review = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response: ResponseOut {
            uid,
            allowed: verdict.allowed(),
            status: verdict.denial.as_ref().map(|d| StatusOut::of(d, subject)),
            warnings: clean_warnings(&verdict.warnings),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
        },
    };
    serde_json::to_vec(&review).unwrap_or_default()
}

/// The response review as the API server reads it; written straight to text.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
}

/// A `metav1.Status` of failure.
#[derive(Serialize)]
struct StatusOut<'a> {
    metadata: Empty,
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: Cow<'a, str>,
    details: DetailsOut<'a>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct DetailsOut<'a> {
    name: &'a str,
    group: &'a str,
    kind: &'a str,
    causes: Vec<CauseOut<'a>>,
}

#[derive(Serialize)]
struct CauseOut<'a> {
    reason: &'static str,
    message: Cow<'a, str>,
    field: Cow<'a, str>,
}

/// The most of a refusal's message (or field path) the answer carries: rules quote the
/// object's values, and a value may be megabytes long.
pub const MESSAGE_BYTES: usize = 4096;

/// `text`, cut to [`MESSAGE_BYTES`] at a character boundary, saying how much was cut.
pub fn capped(text: &str) -> Cow<'_, str> {
    if text.len() <= MESSAGE_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    Cow::Owned(format!("{}… ({cut} more bytes not shown)", &text[..end]))
}

impl<'a> StatusOut<'a> {
    fn of(denial: &'a Denial, subject: &Subject<'a>) -> Self {
        let causes = denial.causes.iter().map(|c| CauseOut {
            reason: denial.code.cause_type(),
            message: capped(&c.message),
            field: capped(&c.field),
        });
        let message = match denial.message.trim() {
            "" => Cow::Borrowed("refused by bindguard"),
            _ => capped(&denial.message),
        };
        StatusOut {
            metadata: Empty {},
            status: "Failure",
            code: denial.code.http(),
            reason: denial.code.reason(),
            message,
            details: DetailsOut {
                name: subject.name,
                group: subject.group,
                kind: subject.kind,
                causes: causes.collect(),
            },
        }
    }
}

/// At most [`MAX_WARNINGS`], each printable and short.
pub fn clean_warnings(warnings: &[String]) -> Vec<String> {
    warnings
        .iter()
        .take(MAX_WARNINGS)
        .map(|w| {
            let printable: String = w
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            if printable.chars().count() > MAX_WARNING_CHARS {
                let cut: String = printable.chars().take(MAX_WARNING_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                printable
            }
        })
        .collect()
}

/// The JSON error body for a request that is not an AdmissionReview at all.
pub fn error_body(message: &str) -> Value {
    json!({ "error": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
            .unwrap()
    }

    fn response_of(
        uid: &str,
        op: Option<Operation>,
        subject: &Subject,
        verdict: &Decision,
    ) -> Value {
        serde_json::from_slice(&encode_response(uid, op, subject, verdict)).expect("JSON")
    }

    fn minimal_request() -> Value {
        json!({"uid": "u-1", "kind": {"group": "g", "version": "v1", "kind": "K"}, "operation": "CREATE", "object": {}})
    }

    #[test]
    fn refuses_a_review_without_the_objects_its_operation_carries() {
        let mut create = minimal_request();
        create["object"] = Value::Null;
        let error = decode_review(&review(create)).unwrap_err().to_string();
        assert!(error.contains("request.object is missing"), "{error}");
        let mut delete = minimal_request();
        delete["operation"] = json!("DELETE");
        let error = decode_review(&review(delete)).unwrap_err().to_string();
        assert!(error.contains("request.oldObject is missing"), "{error}");
    }

    #[test]
    fn decodes_a_minimal_request() {
        let request = decode_review(&review(minimal_request())).unwrap();
        assert_eq!(request.uid, "u-1");
        assert_eq!(request.operation, Operation::Create);
    }

    #[test]
    fn rejects_what_is_not_a_review() {
        let cases: [&[u8]; 4] = [
            b"not json",
            br#"{"apiVersion":"v1","kind":"Pod"}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#,
        ];
        for body in cases {
            assert!(
                decode_review(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let request = minimal_request();
        let v1beta1 =
            json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": KIND, "request": request});
        let error = decode_review(v1beta1.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("v1beta1"), "{error}");
        let mut bad_uid = minimal_request();
        bad_uid["uid"] = json!(7);
        let error = decode_review(&review(bad_uid)).unwrap_err();
        assert!(error.to_string().contains("request.uid"), "{error}");
        let mut empty_uid = minimal_request();
        empty_uid["uid"] = json!("");
        let error = decode_review(&review(empty_uid)).unwrap_err();
        assert!(
            error.to_string().contains("request.uid is empty"),
            "{error}"
        );
    }

    #[test]
    fn a_body_that_is_json_but_no_object_is_named_by_its_type() {
        let cases: [(&[u8], &str); 4] = [
            (b" [1, 2]", "the body is a JSON array, not an object"),
            (br#""review""#, "the body is a JSON string, not an object"),
            (b"null", "the body is a JSON null, not an object"),
            (b"12", "the body is a JSON number, not an object"),
        ];
        for (body, expected) in cases {
            let error = decode_review(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        let error = decode_review(b"nope").unwrap_err();
        assert!(matches!(error, ReviewError::NotJson(_)), "{error}");
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        let cases: [(&[u8], usize); 7] = [
            (br#"{"a":[1,{"b":2}]}"#, 3),
            (br#"{"a":"[[[[{{{{"}"#, 1),
            (br#"{"a":"\"[[[["}"#, 1),
            (br#"{"a":"\\",  "b":[[1]]}"#, 3),
            (b"[[[]]][[[]]]", 3),
            (br#"[["\"#, 2),
            (br#"[["\\"], ["#, 2),
        ];
        for (body, depth) in cases {
            let text = String::from_utf8_lossy(body);
            assert_eq!(nesting(body, 100).0, depth, "{text}");
            assert_eq!(nesting(body, depth - 1).0, depth, "{text}");
        }
    }

    #[test]
    fn values_are_counted_outside_strings() {
        let shape = shape_of(br#"{"a":[1,{"b":2}],"c":"{[,:]}"}"#).unwrap();
        assert_eq!(shape.values, 8);
        assert_eq!(shape.decoded_bytes(), 8 * BYTES_PER_VALUE);
    }

    #[test]
    fn deep_reviews_decode_and_deeper_ones_are_refused() {
        let at = |levels: usize| {
            let object = format!("{}null{}", "[".repeat(levels), "]".repeat(levels));
            let request = minimal_request().to_string();
            let request = request.replacen('{', &format!(r#"{{"object":{object},"#), 1);
            format!(r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","request":{request}}}"#)
        };
        let request = decode_review(at(5_000).as_bytes()).expect("decodes");
        stacker::grow(REVIEW_STACK_BYTES, || drop(request));
        let refused = decode_review(at(MAX_REVIEW_DEPTH).as_bytes());
        assert!(matches!(refused, Err(ReviewError::TooDeep)));
    }

    #[test]
    fn denial_carries_code_reason_and_causes() {
        let verdict = Decision {
            denial: Some(Denial::invalid("spec.owner", "spec.owner is immutable")),
            ..Decision::default()
        };
        let subject = Subject {
            name: "b",
            group: "openchoreo.dev",
            kind: "ResourceReleaseBinding",
        };
        let out = response_of("u-1", Some(Operation::Update), &subject, &verdict);
        let response = &out["response"];
        assert_eq!(out["apiVersion"], API_VERSION);
        assert_eq!(response["uid"], "u-1");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 422);
        assert_eq!(response["status"]["reason"], "Invalid");
        assert_eq!(
            response["status"]["details"]["causes"][0]["field"],
            "spec.owner"
        );
        assert_eq!(response["status"]["status"], "Failure");
        assert_eq!(response["status"]["metadata"], json!({}));
        assert_eq!(response["status"]["message"], "spec.owner is immutable");
        assert_eq!(response["status"]["details"]["name"], "b");
        assert_eq!(
            response["status"]["details"]["causes"][0]["reason"],
            "FieldValueInvalid"
        );
        assert!(response.get("patch").is_none());
        assert!(response.get("warnings").is_none());
    }

    #[test]
    fn long_messages_and_fields_are_cut() {
        let value = "é".repeat(1 << 20);
        let verdict = Decision {
            denial: Some(Denial::forbidden(
                &format!("spec.{value}"),
                format!("projectName is {value:?}"),
            )),
            ..Decision::default()
        };
        let encoded = encode_response("u", None, &Subject::default(), &verdict);
        assert!(encoded.len() < 4 * MESSAGE_BYTES, "{} bytes", encoded.len());
        let out: Value = serde_json::from_slice(&encoded).unwrap();
        let status = &out["response"]["status"];
        let message = status["message"].as_str().unwrap();
        assert!(message.starts_with("projectName is \"éé"), "{message:.40}");
        assert!(message.ends_with("more bytes not shown)"), "{message:.40}");
        let field = status["details"]["causes"][0]["field"].as_str().unwrap();
        assert!(field.len() <= MESSAGE_BYTES + 40, "{}", field.len());
        let short = Decision {
            denial: Some(Denial::forbidden("spec.x", "short")),
            ..Decision::default()
        };
        let out = response_of("u", None, &Subject::default(), &short);
        assert_eq!(out["response"]["status"]["message"], "short");
    }

    #[test]
    fn patch_is_base64_json_patch_and_never_on_delete() {
        let op: json_patch::PatchOperation =
            serde_json::from_value(json!({"op": "add", "path": "/metadata/labels", "value": {}}))
                .unwrap();
        let verdict = Decision {
            patch: vec![op],
            ..Decision::default()
        };
        let out = response_of("u", Some(Operation::Create), &Subject::default(), &verdict);
        let encoded = out["response"]["patch"]
            .as_str()
            .expect("patch is a string");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let ops: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(ops[0]["op"], "add");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let out = response_of("u", Some(Operation::Delete), &Subject::default(), &verdict);
        assert!(out["response"].get("patch").is_none());
        assert!(out["response"].get("patchType").is_none());
    }

    #[test]
    fn warnings_are_few_short_and_printable() {
        let many: Vec<String> = (0..20)
            .map(|i| format!("w{i}\n{}", "x".repeat(300)))
            .collect();
        let cleaned = clean_warnings(&many);
        assert_eq!(cleaned.len(), MAX_WARNINGS);
        assert!(
            cleaned
                .iter()
                .all(|w| w.chars().count() <= MAX_WARNING_CHARS)
        );
        assert!(cleaned.iter().all(|w| !w.chars().any(char::is_control)));
    }
}
