//! ResourceBinding (`platform.kratix.io/v1alpha1`).

use super::{Context, Request};
use crate::admission::Decision;
use crate::crd::ResourceBinding;

pub fn validate(_request: &Request<ResourceBinding>, _ctx: &Context) -> Decision {
    Decision::default()
}

pub fn mutate(_request: &Request<ResourceBinding>, _ctx: &Context) -> Decision {
    Decision::default()
}
