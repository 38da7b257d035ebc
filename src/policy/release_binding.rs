//! ResourceReleaseBinding (`openchoreo.dev/v1alpha1`): what a binding may be and become.

use super::{Check, Context, Request, pass, patch, run_rules};
use crate::admission::{Decision, Denial};
use crate::crd::{
    BindingOwner, LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_RESOURCE, ResourceReleaseBinding,
};

type Rrb<'a> = Request<'a, ResourceReleaseBinding>;

/// The validating rules, in the order they are judged.
pub fn validate(request: &Rrb, ctx: &Context) -> Decision {
    run_rules(
        request,
        ctx,
        &[owner_is_immutable, environment_is_immutable],
    )
}

/// Sets the project, resource and environment labels from the spec.
pub fn mutate(request: &Rrb, _ctx: &Context) -> Decision {
    let (Some(binding), Some(raw)) = (request.written(), request.review.object.as_ref()) else {
        return Decision::default();
    };
    let spec = &binding.spec;
    let wanted = [
        (LABEL_PROJECT, spec.owner.project_name.as_str()),
        (LABEL_RESOURCE, spec.owner.resource_name.as_str()),
        (LABEL_ENVIRONMENT, spec.environment.as_str()),
    ];
    Decision {
        patch: patch::set_labels(raw, &wanted),
        ..Decision::default()
    }
}

fn show_owner(owner: &BindingOwner) -> String {
    format!(
        "project {:?}, resource {:?}",
        owner.project_name, owner.resource_name
    )
}

/// Rule 1: `spec.owner` never changes; re-targeting means a new binding.
pub fn owner_is_immutable(request: &Rrb, _ctx: &Context) -> Check {
    let Some((new, old)) = request.update() else {
        return pass();
    };
    if new.spec.owner == old.spec.owner {
        return pass();
    }
    Err(Denial::invalid(
        "spec.owner",
        format!(
            "ResourceReleaseBinding {:?}: spec.owner is immutable: it was ({}) and is now ({}); \
             to re-target, delete this binding and create a new one",
            request.name(),
            show_owner(&old.spec.owner),
            show_owner(&new.spec.owner),
        ),
    ))
}

/// Rule 2: `spec.environment` never changes.
pub fn environment_is_immutable(request: &Rrb, _ctx: &Context) -> Check {
    let Some((new, old)) = request.update() else {
        return pass();
    };
    if new.spec.environment == old.spec.environment {
        return pass();
    }
    Err(Denial::invalid(
        "spec.environment",
        format!(
            "ResourceReleaseBinding {:?}: spec.environment is immutable: it was {:?} and is now {:?}; \
             to deploy to another environment, create a new binding for it",
            request.name(),
            old.spec.environment,
            new.spec.environment,
        ),
    ))
}
