//! PromiseRevision (`platform.kratix.io/v1alpha1`).

use super::{Context, Request};
use crate::admission::Decision;
use crate::crd::PromiseRevision;

pub fn validate(_request: &Request<PromiseRevision>, _ctx: &Context) -> Decision {
    Decision::default()
}

pub fn mutate(_request: &Request<PromiseRevision>, _ctx: &Context) -> Decision {
    Decision::default()
}
