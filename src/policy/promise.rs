//! Promise (`platform.kratix.io/v1alpha1`).

use super::{Context, Request};
use crate::admission::Decision;
use crate::crd::Promise;

pub fn validate(_request: &Request<Promise>, _ctx: &Context) -> Decision {
    Decision::default()
}

pub fn mutate(_request: &Request<Promise>, _ctx: &Context) -> Decision {
    Decision::default()
}
