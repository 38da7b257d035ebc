//! One review, start to end: bytes -> AdmissionReview -> policy decision -> response review.
//! The server and `bindguard review` both come through here.

use crate::admission::{self, Decision, Denial, DenyCode, ReviewError, Subject};
use crate::policy::{self, Context, Phase};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What one judged review produced, for the response and for metrics.
pub struct Judged {
    pub response: Value,
    pub kind: String,
    pub operation: String,
    pub verdict: &'static str,
}

/// Judges one request body. `Err` means the body was not an AdmissionReview at all.
pub fn judge(phase: Phase, body: &[u8], ctx: &Context) -> Result<Judged, ReviewError> {
    let request = admission::decode_review(body)?;
    let decision = catch_unwind(AssertUnwindSafe(|| policy::decide(phase, &request, ctx)))
        .unwrap_or_else(|_| internal_error());
    let subject = Subject {
        name: request.object_name(),
        group: &request.kind.group,
        kind: &request.kind.kind,
    };
    let response =
        admission::encode_response(&request.uid, Some(request.operation), &subject, &decision);
    Ok(Judged {
        response,
        kind: request.kind.kind.clone(),
        operation: format!("{:?}", request.operation).to_uppercase(),
        verdict: decision.label(),
    })
}

fn internal_error() -> Decision {
    tracing::error!("policy panicked; refusing the request");
    Decision {
        denial: Some(Denial::new(
            DenyCode::BadRequest,
            "",
            "bindguard could not judge this request (internal error); it has been logged",
        )),
        ..Decision::default()
    }
}
