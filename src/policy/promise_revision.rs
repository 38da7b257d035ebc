//! PromiseRevision (`platform.kratix.io/v1alpha1`): the record of one version of a Promise.

use super::{Check, Context, Request, pass, patch, run_rules};
use crate::admission::{Decision, Denial};
use crate::crd::{LABEL_LATEST_REVISION, LABEL_PROMISE_NAME, PromiseRevision};
use crate::naming;
use kube::ResourceExt;

type Revision<'a> = Request<'a, PromiseRevision>;

/// The validating rules, in the order they are judged.
pub fn validate(request: &Revision, ctx: &Context) -> Decision {
    run_rules(
        request,
        ctx,
        &[
            latest_is_not_deleted,
            promise_ref_is_immutable,
            version_is_immutable,
            promise_name_label_matches,
        ],
    )
}

/// Sets `kratix.io/promise-name` from `spec.promiseRef.name`.
pub fn mutate(request: &Revision, _ctx: &Context) -> Decision {
    let Some((revision, raw)) = request.to_mutate() else {
        return Decision::default();
    };
    let value = naming::label_value(&revision.spec.promise_ref.name);
    let wanted = [(LABEL_PROMISE_NAME, value.as_str())];
    Decision {
        patch: patch::set_labels(raw, &wanted),
        ..Decision::default()
    }
}

/// Whether `revision` is its Promise's latest: labelled so, or `status.latest`.
pub fn is_latest(revision: &PromiseRevision) -> bool {
    revision
        .labels()
        .get(LABEL_LATEST_REVISION)
        .map(String::as_str)
        == Some("true")
        || revision.status.as_ref().is_some_and(|s| s.latest)
}

/// Rule 1: the latest revision goes only with its Promise (or by a controller's hand).
pub fn latest_is_not_deleted(request: &Revision, ctx: &Context) -> Check {
    let Some(revision) = request.old_object.as_ref() else {
        return pass();
    };
    if request.operation() != crate::admission::Operation::Delete || !is_latest(revision) {
        return pass();
    }
    if ctx.is_controller(&request.review.user_info.username) {
        return pass();
    }
    let promise = revision.spec.promise_ref.name.as_str();
    let promise_going = ctx
        .view
        .promise(promise)
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
    if promise_going {
        return pass();
    }
    let field = if revision.labels().contains_key(LABEL_LATEST_REVISION) {
        format!("metadata.labels[{LABEL_LATEST_REVISION}]")
    } else {
        "status.latest".to_string()
    };
    Err(Denial::forbidden(
        &field,
        format!(
            "can not delete the latest PromiseRevision: {:?} is the latest revision of Promise {:?}; \
             delete the Promise to remove it, or install another version of the Promise first",
            revision.name_any(),
            promise,
        ),
    ))
}

/// Rule 2a: a revision records one Promise for life.
pub fn promise_ref_is_immutable(request: &Revision, _ctx: &Context) -> Check {
    let Some((new, old)) = request.update() else {
        return pass();
    };
    let (was, is) = (&old.spec.promise_ref.name, &new.spec.promise_ref.name);
    if was == is {
        return pass();
    }
    Err(Denial::invalid(
        "spec.promiseRef.name",
        format!(
            "PromiseRevision {:?}: spec.promiseRef.name is immutable: it was {was:?} and is now {is:?}; \
             a revision is the record of one version of one Promise: install Promise {is:?} to get revisions of it",
            request.name(),
        ),
    ))
}

/// Rule 2b: a revision records one version for life.
pub fn version_is_immutable(request: &Revision, _ctx: &Context) -> Check {
    let Some((new, old)) = request.update() else {
        return pass();
    };
    let (was, is) = (&old.spec.version, &new.spec.version);
    if was == is {
        return pass();
    }
    Err(Denial::invalid(
        "spec.version",
        format!(
            "PromiseRevision {:?}: spec.version is immutable: it was {was:?} and is now {is:?}; \
             a revision is the record of one version: install the Promise at {is:?} to get its revision",
            request.name(),
        ),
    ))
}

/// Rule 3: `kratix.io/promise-name`, when set, names `spec.promiseRef.name` (as
/// [`naming::label_value`] writes it; the mutating webhook sets it when missing). An update
/// that leaves the label as it was is not refused for it.
pub fn promise_name_label_matches(request: &Revision, _ctx: &Context) -> Check {
    let Some(revision) = request.written() else {
        return pass();
    };
    let wanted = &naming::label_value(&revision.spec.promise_ref.name);
    let label = revision.labels().get(LABEL_PROMISE_NAME);
    let kept = request
        .update()
        .is_some_and(|(_, old)| old.labels().get(LABEL_PROMISE_NAME) == label);
    match label {
        Some(label) if label != wanted && !kept => Err(Denial::invalid(
            &format!("metadata.labels[{LABEL_PROMISE_NAME}]"),
            format!(
                "PromiseRevision {:?}: label {LABEL_PROMISE_NAME} is {label:?} but spec.promiseRef.name \
                 is {wanted:?}; set the label to {wanted:?} or remove it (bindguard sets it)",
                request.name(),
            ),
        )),
        _ => pass(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{AdmissionRequest, DenyCode};
    use crate::policy::promise::fixtures::*;
    use serde_json::{Value, json};

    fn revision(name: &str, promise: &str, version: &str, labels: Value, latest: bool) -> Value {
        json!({
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "PromiseRevision",
            "metadata": {"name": name, "labels": labels},
            "spec": {"promiseRef": {"name": promise}, "version": version},
            "status": {"latest": latest},
        })
    }

    fn latest() -> Value {
        revision(
            "redis-v0.2.0",
            "redis",
            "v0.2.0",
            json!({"kratix.io/promise-name": "redis", "kratix.io/latest-revision": "true"}),
            true,
        )
    }

    fn judge(review: &AdmissionRequest, world: &World) -> Decision {
        world.with_ctx(|ctx| validate(&Request::decode(review).unwrap(), ctx))
    }

    #[test]
    fn latest_revision_delete() {
        let status_only = revision("redis-v0.2.0", "redis", "v0.2.0", json!({}), true);
        let label_only = revision(
            "redis-v0.2.0",
            "redis",
            "v0.2.0",
            json!({"kratix.io/latest-revision": "true"}),
            false,
        );
        let old = revision("redis-v0.1.0", "redis", "v0.1.0", json!({}), false);
        let cases: Vec<(&str, Value, &str, World, Option<DenyCode>)> = vec![
            (
                "latest by label and status",
                latest(),
                "alice",
                World::redis(),
                Some(DenyCode::Forbidden),
            ),
            (
                "latest by status",
                status_only,
                "alice",
                World::redis(),
                Some(DenyCode::Forbidden),
            ),
            (
                "latest by label",
                label_only,
                "alice",
                World::redis(),
                Some(DenyCode::Forbidden),
            ),
            ("not latest", old, "alice", World::redis(), None),
            (
                "garbage collector",
                latest(),
                crate::policy::GARBAGE_COLLECTOR,
                World::redis(),
                None,
            ),
            (
                "controller user",
                latest(),
                CONTROLLER,
                World::redis(),
                None,
            ),
            ("promise gone", latest(), "alice", World::default(), None),
            (
                "promise being deleted",
                latest(),
                "alice",
                World::redis_deleting(),
                None,
            ),
        ];
        for (name, old, user, world, expected) in cases {
            let review = delete("PromiseRevision", "", old, user);
            let decision = judge(&review, &world);
            assert_eq!(decision.denial.as_ref().map(|d| d.code), expected, "{name}");
        }
    }

    #[test]
    fn latest_revision_delete_message_names_revision_promise_and_way_out() {
        let decision = judge(
            &delete("PromiseRevision", "", latest(), "alice"),
            &World::redis(),
        );
        let message = decision.denial.unwrap().message;
        assert!(
            message.starts_with("can not delete the latest PromiseRevision"),
            "{message}"
        );
        for needle in [
            "\"redis-v0.2.0\"",
            "Promise \"redis\"",
            "delete the Promise",
            "another version",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }

    #[test]
    fn identity_is_immutable() {
        let labels = json!({"kratix.io/promise-name": "redis"});
        let old = revision("redis-v0.1.0", "redis", "v0.1.0", labels.clone(), false);
        let other_labels = json!({"kratix.io/promise-name": "cache"});
        let cases = [
            (
                "unchanged",
                revision("redis-v0.1.0", "redis", "v0.1.0", labels.clone(), true),
                None,
            ),
            (
                "version",
                revision("redis-v0.1.0", "redis", "v0.3.0", labels.clone(), false),
                Some("spec.version"),
            ),
            (
                "promise",
                revision("redis-v0.1.0", "cache", "v0.1.0", other_labels, false),
                Some("spec.promiseRef.name"),
            ),
        ];
        for (name, new, field) in cases {
            let review = update("PromiseRevision", "", new, old.clone());
            let denial = judge(&review, &World::redis()).denial;
            assert_eq!(
                denial.as_ref().map(|d| d.code),
                field.map(|_| DenyCode::Invalid),
                "{name}"
            );
            assert_eq!(
                denial.map(|d| d.causes[0].field.clone()).as_deref(),
                field,
                "{name}"
            );
        }
    }

    #[test]
    fn promise_name_label() {
        let cases = [
            ("matches", json!({"kratix.io/promise-name": "redis"}), false),
            ("missing: the mutating webhook sets it", json!({}), false),
            ("wrong", json!({"kratix.io/promise-name": "cache"}), true),
        ];
        for (name, labels, denied) in cases {
            let object = revision("redis-v0.3.0", "redis", "v0.3.0", labels, false);
            let decision = judge(&create("PromiseRevision", "", object), &World::redis());
            assert_eq!(decision.denial.is_some(), denied, "{name}");
        }
    }

    #[test]
    fn an_unchanged_label_is_not_refused_and_long_names_are_shortened() {
        let stale = json!({"kratix.io/promise-name": "cache"});
        let old = revision("redis-v0.1.0", "redis", "v0.1.0", stale.clone(), false);
        let new = revision("redis-v0.1.0", "redis", "v0.1.0", stale, true);
        let decision = judge(&update("PromiseRevision", "", new, old), &World::redis());
        assert!(decision.allowed(), "{:?}", decision.denial);
        let long = "p".repeat(80);
        let value = naming::label_value(&long);
        let labelled = revision(
            "x",
            &long,
            "v1",
            json!({"kratix.io/promise-name": value}),
            false,
        );
        let decision = judge(&create("PromiseRevision", "", labelled), &World::redis());
        assert!(decision.allowed(), "{:?}", decision.denial);
        let bare = revision("x", &long, "v1", json!({}), false);
        let review = create("PromiseRevision", "", bare.clone());
        let decision =
            World::redis().with_ctx(|ctx| mutate(&Request::decode(&review).unwrap(), ctx));
        let patched = apply_patch(&bare, &decision.patch);
        assert_eq!(
            patched["metadata"]["labels"]["kratix.io/promise-name"],
            json!(value)
        );
    }

    #[test]
    fn controller_users_may_be_prefixes() {
        let mut world = World::redis();
        world.settings.controller_users =
            vec!["system:serviceaccount:kratix-platform-system:*".into()];
        let kratix =
            "system:serviceaccount:kratix-platform-system:kratix-platform-controller-manager";
        let review = delete("PromiseRevision", "", latest(), kratix);
        assert!(judge(&review, &world).allowed());
        let other = "system:serviceaccount:kratix-platform-system-2:x";
        let review = delete("PromiseRevision", "", latest(), other);
        assert!(!judge(&review, &world).allowed());
    }

    #[test]
    fn mutate_sets_the_promise_name_label_once() {
        let object = revision("redis-v0.3.0", "redis", "v0.3.0", json!({"a": "b"}), false);
        let review = create("PromiseRevision", "", object.clone());
        let decision =
            World::redis().with_ctx(|ctx| mutate(&Request::decode(&review).unwrap(), ctx));
        let patched = apply_patch(&object, &decision.patch);
        assert_eq!(
            patched["metadata"]["labels"]["kratix.io/promise-name"],
            "redis"
        );
        assert_eq!(patched["metadata"]["labels"]["a"], "b");
        let again = create("PromiseRevision", "", patched);
        let decision =
            World::redis().with_ctx(|ctx| mutate(&Request::decode(&again).unwrap(), ctx));
        assert!(decision.patch.is_empty());
        let gone = delete("PromiseRevision", "", object, "alice");
        let decision = World::redis().with_ctx(|ctx| mutate(&Request::decode(&gone).unwrap(), ctx));
        assert!(decision.patch.is_empty());
    }
}
