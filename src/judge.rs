//! One review, start to end: bytes -> AdmissionReview -> policy decision -> response review.
//! The server and `bindguard review` both come through here.

use crate::admission::{
    self, Decision, Denial, DenyCode, Nesting, Operation, ReviewError, Subject,
};
use crate::head::Head;
use crate::policy::projects::{self, Pending};
use crate::policy::{self, Context, Phase};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What one judged review produced, for the response and for metrics.
pub struct Judged {
    /// The response review, as JSON text.
    pub response: Vec<u8>,
    /// Who asked for what: the review's identity, for logs and metrics.
    pub head: Head,
    pub verdict: &'static str,
    /// Why the request was refused, if it was.
    pub denial: Option<Denial>,
    /// What metrics count as the refusing rule ([`Decision::rule`]).
    pub rule: String,
    /// Allowed by policy, but the requester's project access is still to be checked
    /// (`--authorize-projects`).
    pub project_check: Option<ProjectCheck>,
}

/// A write whose requester's project access the server asks the API server about.
pub struct ProjectCheck {
    pub pending: Pending,
    operation: Operation,
    pub head: Head,
}

impl Judged {
    /// The response review decoded, for tools and tests.
    pub fn response_json(&self) -> Value {
        serde_json::from_slice(&self.response).unwrap_or_default()
    }
}

impl ProjectCheck {
    /// The response refusing the write (403) with `message`, as JSON text.
    pub fn refusal(&self, message: String) -> Vec<u8> {
        let decision = Decision {
            denial: Some(Denial::forbidden("spec.owner.projectName", message)),
            ..Decision::default()
        };
        let subject = Subject {
            name: &self.head.name,
            group: &self.head.group,
            kind: &self.head.kind,
        };
        admission::encode_response(&self.head.uid, Some(self.operation), &subject, &decision)
    }
}

/// Judges one request body. `Err` means the body was not an AdmissionReview at all.
///
/// A deeply nested body is judged on a stack of its own, sized for the deepest object the API
/// server sends: decoding, cloning, comparing and dropping such objects recurses once per level.
pub fn judge(phase: Phase, body: &[u8], ctx: &Context) -> Result<Judged, ReviewError> {
    judge_measured(phase, body, admission::nesting_of(body)?, ctx)
}

/// [`judge`] for a body whose [`Nesting`] is known (the server measures it as it arrives).
pub fn judge_measured(
    phase: Phase,
    body: &[u8],
    nesting: Nesting,
    ctx: &Context,
) -> Result<Judged, ReviewError> {
    match nesting {
        Nesting::Deep => stacker::grow(admission::REVIEW_STACK_BYTES, || {
            judge_here(phase, body, Nesting::Deep, ctx)
        }),
        Nesting::Shallow => judge_here(phase, body, Nesting::Shallow, ctx),
    }
}

fn judge_here(
    phase: Phase,
    body: &[u8],
    nesting: Nesting,
    ctx: &Context,
) -> Result<Judged, ReviewError> {
    let request = admission::decode_measured(body, nesting)?;
    let head = Head::of(&request);
    let decision = catch_unwind(AssertUnwindSafe(|| policy::decide(phase, &request, ctx)))
        .unwrap_or_else(|_| internal_error(&head));
    let subject = Subject {
        name: request.object_name(),
        group: &request.kind.group,
        kind: &request.kind.kind,
    };
    let response =
        admission::encode_response(&request.uid, Some(request.operation), &subject, &decision);
    let checks_projects = ctx.settings.authorize_projects && phase == Phase::Validate;
    let project_check = (checks_projects && decision.allowed())
        .then(|| projects::pending(&request, ctx))
        .flatten()
        .map(|pending| ProjectCheck {
            pending,
            operation: request.operation,
            head: head.clone(),
        });
    Ok(Judged {
        response,
        head,
        verdict: decision.label(),
        rule: decision.rule(),
        denial: decision.denial,
        project_check,
    })
}

fn internal_error(head: &Head) -> Decision {
    head.span()
        .in_scope(|| tracing::error!("policy panicked; refusing the request"));
    Decision {
        denial: Some(Denial::new(
            DenyCode::BadRequest,
            "",
            "bindguard could not judge this request (internal error); it has been logged",
        )),
        ..Decision::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Writers;
    use crate::policy::Settings;
    use crate::schema::SchemaCache;
    use std::thread;

    /// A binding CREATE whose environmentConfigs hold an object nested `levels` deep, written as
    /// text so that the test itself never builds (or drops) a deep value.
    fn deep_review(levels: usize) -> Vec<u8> {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{
            "uid":"u-deep","kind":{{"group":"openchoreo.dev","version":"v1alpha1",
            "kind":"ResourceReleaseBinding"}},"name":"b","namespace":"ns","operation":"CREATE",
            "userInfo":{{"username":"alice"}},"object":{{"apiVersion":"openchoreo.dev/v1alpha1",
            "kind":"ResourceReleaseBinding","metadata":{{"name":"b","namespace":"ns"}},
            "spec":{{"owner":{{"projectName":"p","resourceName":"r"}},"environment":"dev",
            "resourceTypeEnvironmentConfigs":{deep}}}}}}}}}"#
        )
        .into_bytes()
    }

    /// Judges on a thread with Rust's default 2 MiB stack, as a server worker would.
    fn judge_on_small_stack(body: Vec<u8>) -> Result<(bool, String), String> {
        thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let (_, stores) = Writers::new(0);
                let settings = Settings::default();
                let schemas = SchemaCache::new();
                let ctx = Context {
                    view: &stores,
                    settings: &settings,
                    schemas: &schemas,
                    in_place: None,
                };
                judge(Phase::Validate, &body, &ctx)
                    .map(|judged| {
                        let response = &judged.response_json()["response"];
                        (response["allowed"] == true, response.to_string())
                    })
                    .map_err(|error| error.to_string())
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow")
    }

    #[test]
    fn deep_objects_the_api_server_accepts_are_judged() {
        for levels in [150, 10_000] {
            let judged = judge_on_small_stack(deep_review(levels));
            let (allowed, response) = judged.unwrap_or_else(|e| panic!("{levels}: {e}"));
            assert!(allowed, "{levels} levels: {response}");
        }
    }

    #[test]
    fn absurdly_deep_bodies_are_refused_clearly() {
        let refused = judge_on_small_stack(deep_review(100_000));
        let error = refused.expect_err("refused");
        assert!(error.contains("nested more than"), "{error}");
    }
}
