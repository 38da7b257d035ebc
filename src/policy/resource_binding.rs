//! ResourceBinding (`platform.kratix.io/v1alpha1`): one binding per resource request, for life,
//! pinned to a version its Promise has.

use super::{Check, Context, Request, pass, patch, promise_revision, run_rules};
use crate::admission::{Decision, Denial, Operation};
use crate::crd::{LABEL_PROMISE_NAME, LABEL_RESOURCE_NAME, ResourceBinding, VERSION_LATEST};
use crate::naming;
use kube::ResourceExt;
use serde_json::Value;

type Binding<'a> = Request<'a, ResourceBinding>;

/// The validating rules, in the order they are judged.
pub fn validate(request: &Binding, ctx: &Context) -> Decision {
    run_rules(
        request,
        ctx,
        &[
            promise_ref_is_immutable,
            resource_ref_is_immutable,
            resource_in_own_namespace,
            labels_match_spec,
            one_binding_per_request,
            version_exists,
        ],
    )
}

/// Sets the promise and resource labels from the spec and defaults an empty
/// `spec.resourceRef.namespace` to the binding's namespace.
pub fn mutate(request: &Binding, _ctx: &Context) -> Decision {
    let Some((binding, raw)) = request.to_mutate() else {
        return Decision::default();
    };
    let wanted = labels_for(binding);
    let wanted: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ops = patch::set_labels(raw, &wanted);
    ops.extend(default_namespace(raw, namespace_of(request)));
    Decision {
        patch: ops,
        ..Decision::default()
    }
}

/// The labels a binding carries, derived from its spec.
fn labels_for(binding: &ResourceBinding) -> [(&'static str, String); 2] {
    [
        (
            LABEL_PROMISE_NAME,
            naming::label_value(&binding.spec.promise_ref.name),
        ),
        (
            LABEL_RESOURCE_NAME,
            naming::label_value(&binding.spec.resource_ref.name),
        ),
    ]
}

fn default_namespace(raw: &Value, namespace: &str) -> Option<json_patch::PatchOperation> {
    const PATH: &str = "/spec/resourceRef/namespace";
    if namespace.is_empty() {
        return None;
    }
    match raw.pointer(PATH) {
        None => Some(patch::add(PATH, Value::from(namespace))),
        Some(Value::String(s)) if !s.is_empty() => None,
        Some(_) => Some(patch::replace(PATH, Value::from(namespace))),
    }
}

/// The binding's namespace: the request's, else the object's.
fn namespace_of<'a>(request: &'a Binding) -> &'a str {
    let from_object = request
        .object
        .as_ref()
        .or(request.old_object.as_ref())
        .and_then(|b| b.metadata.namespace.as_deref());
    match request.namespace() {
        "" => from_object.unwrap_or_default(),
        ns => ns,
    }
}

/// `spec.resourceRef.namespace`, an empty one read as the binding's own.
fn resource_namespace<'a>(binding: &'a ResourceBinding, own: &'a str) -> &'a str {
    match binding.spec.resource_ref.namespace.as_str() {
        "" => own,
        ns => ns,
    }
}

/// Rule 4a: a binding belongs to one Promise for life.
pub fn promise_ref_is_immutable(request: &Binding, _ctx: &Context) -> Check {
    let Some((new, old)) = request.update() else {
        return pass();
    };
    let (was, is) = (&old.spec.promise_ref.name, &new.spec.promise_ref.name);
    if was == is {
        return pass();
    }
    Err(Denial::invalid(
        "spec.promiseRef",
        format!(
            "ResourceBinding {:?}: spec.promiseRef is immutable: it was {was:?} and is now {is:?}; \
             a binding belongs to one resource request for life: {REBIND}",
            request.name(),
        ),
    ))
}

const REBIND: &str = "to re-bind, delete this binding and let it be recreated, \
                      or create a binding for the other request";

/// Rule 4b: a binding belongs to one resource request for life.
pub fn resource_ref_is_immutable(request: &Binding, _ctx: &Context) -> Check {
    let Some((new, old)) = request.update() else {
        return pass();
    };
    let own = namespace_of(request);
    let show = |b: &ResourceBinding| {
        format!(
            "{}/{}",
            resource_namespace(b, own),
            b.spec.resource_ref.name
        )
    };
    let (was, is) = (show(old), show(new));
    if was == is {
        return pass();
    }
    Err(Denial::invalid(
        "spec.resourceRef",
        format!(
            "ResourceBinding {:?}: spec.resourceRef is immutable: it was {was} and is now {is}; \
             a binding belongs to one resource request for life: {REBIND}",
            request.name(),
        ),
    ))
}

/// Rule 5: the request lives in the binding's namespace. An update that does not change the
/// namespace is not refused for it (the binding may predate the rule).
pub fn resource_in_own_namespace(request: &Binding, _ctx: &Context) -> Check {
    let Some(binding) = request.written() else {
        return pass();
    };
    let own = namespace_of(request);
    let named = resource_namespace(binding, own);
    let unchanged = request
        .update()
        .is_some_and(|(_, old)| resource_namespace(old, own) == named);
    if named == own || unchanged {
        return pass();
    }
    Err(Denial::invalid(
        "spec.resourceRef.namespace",
        format!(
            "ResourceBinding {:?}: spec.resourceRef.namespace is {named:?} but the binding is in \
             {own:?}; a binding lives beside its resource request: create it in {named:?} instead",
            request.name(),
        ),
    ))
}

/// Rule 8: the promise and resource labels, when present, agree with the spec. An update that
/// leaves a label as it was is not refused for it.
pub fn labels_match_spec(request: &Binding, _ctx: &Context) -> Check {
    let Some(binding) = request.written() else {
        return pass();
    };
    let labels = binding.labels();
    let old_labels = request.update().map(|(_, old)| old.labels());
    for (key, wanted) in labels_for(binding) {
        let kept = old_labels.is_some_and(|old| old.get(key) == labels.get(key));
        match labels.get(key) {
            Some(label) if *label != wanted && !kept => {
                return Err(Denial::invalid(
                    &format!("metadata.labels[{key}]"),
                    format!(
                        "ResourceBinding {:?}: label {key} is {label:?} but the spec says {wanted:?}; \
                         set the label to {wanted:?} or remove it (bindguard sets it)",
                        request.name(),
                    ),
                ));
            }
            _ => {}
        }
    }
    pass()
}

/// Rule 6: one binding per resource request; a second one is refused.
pub fn one_binding_per_request(request: &Binding, ctx: &Context) -> Check {
    let (Operation::Create, Some(binding)) = (request.operation(), request.object.as_ref()) else {
        return pass();
    };
    let own = namespace_of(request);
    let promise = &binding.spec.promise_ref.name;
    let resource = &binding.spec.resource_ref.name;
    let namespace = resource_namespace(binding, own);
    let candidates = ctx.view.resource_bindings_for(namespace, promise, resource);
    let existing = candidates.into_iter().find(|b| {
        let ns = b.namespace().unwrap_or_default();
        b.name_any() != request.name()
            && b.spec.promise_ref.name == *promise
            && b.spec.resource_ref.name == *resource
            && resource_namespace(b, &ns) == namespace
    });
    let Some(existing) = existing else {
        return pass();
    };
    Err(Denial::forbidden(
        "spec.resourceRef",
        format!(
            "found multiple ResourceBindings for Resource {resource} in namespace {namespace};\
             there should be one ResourceBinding per Resource: {:?} already binds it to Promise \
             {promise:?}; change spec.version of {:?} instead",
            existing.name_any(),
            existing.name_any(),
        ),
    ))
}

/// Rule 7: `spec.version` is `latest` or the version of one of the Promise's revisions that is
/// not being deleted (deleting a revision deletes the requests pinned to it).
pub fn version_exists(request: &Binding, ctx: &Context) -> Check {
    let Some(binding) = request.written() else {
        return pass();
    };
    let unchanged = request
        .update()
        .is_some_and(|(_, old)| old.spec.version == binding.spec.version);
    let version = &binding.spec.version;
    if unchanged || version == VERSION_LATEST {
        return pass();
    }
    let promise = &binding.spec.promise_ref.name;
    let revisions = ctx.view.promise_revisions(promise);
    let matching: Vec<_> = revisions
        .iter()
        .filter(|r| r.spec.version == *version)
        .collect();
    if matching
        .iter()
        .any(|r| r.metadata.deletion_timestamp.is_none())
    {
        return pass();
    }
    if let Some(going) = matching.first() {
        return Err(revision_going(request, promise, version, &going.name_any()));
    }
    if let Some(warning) = revision_on_its_way(request, ctx, version) {
        return Ok(vec![warning]);
    }
    if revisions.is_empty() {
        return unknown_promise(request, ctx, version);
    }
    Err(not_a_version(request, promise, version, &revisions))
}

fn revision_going(request: &Binding, promise: &str, version: &str, revision: &str) -> Denial {
    Denial::invalid(
        "spec.version",
        format!(
            "ResourceBinding {:?}: PromiseRevision {revision:?} (version {version:?} of Promise \
             {promise:?}) is being deleted, and the requests pinned to it with it: set \
             spec.version to another version or to {VERSION_LATEST}",
            request.name(),
        ),
    )
}

fn not_a_version(
    request: &Binding,
    promise: &str,
    version: &str,
    revisions: &[std::sync::Arc<crate::crd::PromiseRevision>],
) -> Denial {
    let mut known: Vec<String> = revisions
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .map(|r| {
            let mark = if promise_revision::is_latest(r) {
                " (latest)"
            } else {
                ""
            };
            format!("{}{mark}", r.spec.version)
        })
        .collect();
    known.sort();
    Denial::invalid(
        "spec.version",
        format!(
            "ResourceBinding {:?}: spec.version {version:?} is not a version of Promise {promise:?}; \
             it has {}: set spec.version to one of them or to {VERSION_LATEST}",
            request.name(),
            known.join(", "),
        ),
    )
}

/// The Promise is installed at `version` but the loop has not created its revision yet (GitOps
/// applies the Promise and the binding together): allowed, with a warning.
fn revision_on_its_way(request: &Binding, ctx: &Context, version: &str) -> Option<String> {
    let binding = request.written()?;
    let promise = &binding.spec.promise_ref.name;
    let installed = ctx.view.promise(promise)?;
    if installed.metadata.deletion_timestamp.is_some()
        || naming::promise_version(Some(installed.labels())) != version
    {
        return None;
    }
    Some(format!(
        "ResourceBinding {:?}: the PromiseRevision of {promise:?} {version} is not created yet",
        request.name()
    ))
}

/// No revision of the Promise is known: its version is unchecked until they arrive.
fn unknown_promise(request: &Binding, ctx: &Context, version: &str) -> Check {
    let Some(binding) = request.written() else {
        return pass();
    };
    let promise = &binding.spec.promise_ref.name;
    let what = if ctx.view.promise(promise).is_some() {
        format!("Promise {promise:?} has no revisions yet")
    } else {
        format!("Promise {promise:?} is not known")
    };
    ctx.missing_reference(
        "spec.version",
        format!(
            "ResourceBinding {:?}: {what}; spec.version {version:?} is unchecked",
            request.name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{AdmissionRequest, DenyCode};
    use crate::policy::promise::fixtures::*;
    use serde_json::json;

    fn judge(review: &AdmissionRequest, world: &World) -> Decision {
        world.with_ctx(|ctx| validate(&Request::decode(review).unwrap(), ctx))
    }

    fn code(decision: &Decision) -> Option<DenyCode> {
        decision.denial.as_ref().map(|d| d.code)
    }

    fn field(decision: &Decision) -> Option<String> {
        decision.denial.as_ref().map(|d| d.causes[0].field.clone())
    }

    /// A binding for another request, so the one-per-request rule stays out of the way.
    fn other(version: &str) -> Value {
        binding_of("other-redis-1", "redis", "other", "default", version)
    }

    #[test]
    fn refs_are_immutable() {
        let old = binding();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut b = binding();
            f(&mut b);
            b
        };
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            ("unchanged", old.clone(), None),
            (
                "version bump",
                edit(&|b| b["spec"]["version"] = json!("v0.2.0")),
                None,
            ),
            (
                "namespace emptied",
                edit(&|b| b["spec"]["resourceRef"]["namespace"] = json!("")),
                None,
            ),
            (
                "promise",
                edit(&|b| {
                    b["spec"]["promiseRef"]["name"] = json!("cache");
                    b["metadata"]["labels"]["kratix.io/promise-name"] = json!("cache");
                }),
                Some("spec.promiseRef"),
            ),
            (
                "resource",
                edit(&|b| {
                    b["spec"]["resourceRef"]["name"] = json!("other");
                    b["metadata"]["labels"]["kratix.io/resource-name"] = json!("other");
                }),
                Some("spec.resourceRef"),
            ),
        ];
        for (name, new, expected) in cases {
            let decision = judge(
                &update("ResourceBinding", "default", new, old.clone()),
                &World::redis(),
            );
            assert_eq!(field(&decision).as_deref(), expected, "{name}");
            if expected.is_some() {
                assert_eq!(code(&decision), Some(DenyCode::Invalid), "{name}");
                let message = &decision.denial.unwrap().message;
                assert!(message.contains("delete this binding"), "{message}");
            }
        }
    }

    #[test]
    fn resource_namespace_is_the_bindings() {
        let cases = [
            ("same", "default", None),
            ("empty", "", None),
            ("other", "prod", Some("spec.resourceRef.namespace")),
        ];
        for (name, ns, expected) in cases {
            let object = binding_of("mine", "redis", "mine", ns, "v0.1.0");
            let decision = judge(
                &create("ResourceBinding", "default", object),
                &World::redis(),
            );
            assert_eq!(field(&decision).as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn one_binding_per_request() {
        let cases: Vec<(&str, Value, Option<DenyCode>)> = vec![
            (
                "second binding",
                binding_of("example-redis-2", "redis", "example", "default", "v0.1.0"),
                Some(DenyCode::Forbidden),
            ),
            (
                "second, namespace defaulted",
                binding_of("example-redis-2", "redis", "example", "", "v0.1.0"),
                Some(DenyCode::Forbidden),
            ),
            ("same object", binding(), None),
            ("other request", other("v0.1.0"), None),
            (
                "other promise",
                binding_of("example-cache", "cache", "example", "default", "latest"),
                None,
            ),
        ];
        for (name, object, expected) in cases {
            let decision = judge(
                &create("ResourceBinding", "default", object),
                &World::redis(),
            );
            assert_eq!(code(&decision), expected, "{name}: {:?}", decision.denial);
        }
        let second = binding_of("example-redis-2", "redis", "example", "default", "v0.1.0");
        let message = judge(
            &create("ResourceBinding", "default", second),
            &World::redis(),
        )
        .denial
        .unwrap()
        .message;
        assert!(
            message.starts_with(
                "found multiple ResourceBindings for Resource example in namespace default;\
                 there should be one ResourceBinding per Resource: \"example-redis-e7f90\""
            ),
            "{message}"
        );
    }

    #[test]
    fn version_names_a_revision() {
        let redis = World::redis;
        let cases: Vec<(&str, Value, World, Option<DenyCode>, usize)> = vec![
            ("existing", other("v0.1.0"), redis(), None, 0),
            ("latest word", other("latest"), redis(), None, 0),
            (
                "unknown",
                other("v9.9.9"),
                redis(),
                Some(DenyCode::Invalid),
                0,
            ),
            ("empty", other(""), redis(), Some(DenyCode::Invalid), 0),
            (
                "promise unknown",
                other("v9.9.9"),
                World::default(),
                None,
                1,
            ),
            (
                "promise unknown, strict",
                other("v9.9.9"),
                World::default().strict(),
                Some(DenyCode::Invalid),
                0,
            ),
            (
                "promise without revisions, its version",
                other("v0.2.0"),
                World::with(Some(promise("v0.2.0", false)), &[], &[]),
                None,
                1,
            ),
            (
                "promise just installed at a new version",
                other("v0.3.0"),
                World::with(Some(promise("v0.3.0", false)), &revisions(), &[]),
                None,
                1,
            ),
            (
                "revision being deleted",
                other("v0.1.0"),
                World::with(Some(promise("v0.2.0", false)), &deleting_v010(), &[]),
                Some(DenyCode::Invalid),
                0,
            ),
            (
                "promise without revisions, other version",
                other("v0.1.0"),
                World::with(Some(promise("v0.2.0", false)), &[], &[]),
                None,
                1,
            ),
        ];
        for (name, object, world, expected, warnings) in cases {
            let decision = judge(&create("ResourceBinding", "default", object), &world);
            assert_eq!(code(&decision), expected, "{name}: {:?}", decision.denial);
            assert_eq!(
                decision.warnings.len(),
                warnings,
                "{name}: {:?}",
                decision.warnings
            );
        }
        let decision = judge(
            &create("ResourceBinding", "default", other("v9.9.9")),
            &redis(),
        );
        assert_eq!(
            decision.denial.unwrap().message,
            "ResourceBinding \"other-redis-1\": spec.version \"v9.9.9\" is not a version of Promise \
             \"redis\"; it has v0.1.0, v0.2.0 (latest): set spec.version to one of them or to latest"
        );
    }

    fn deleting_v010() -> Vec<Value> {
        let mut all = revisions();
        all[0]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        all
    }

    #[test]
    fn pinning_a_revision_being_deleted_is_refused_saying_why() {
        let world = World::with(Some(promise("v0.2.0", false)), &deleting_v010(), &[]);
        let decision = judge(
            &create("ResourceBinding", "default", other("v0.1.0")),
            &world,
        );
        assert_eq!(
            decision.denial.unwrap().message,
            "ResourceBinding \"other-redis-1\": PromiseRevision \"redis-v0.1.0\" (version \"v0.1.0\" \
             of Promise \"redis\") is being deleted, and the requests pinned to it with it: set \
             spec.version to another version or to latest"
        );
        let fresh = judge(
            &create("ResourceBinding", "default", other("v0.3.0")),
            &World::with(Some(promise("v0.3.0", false)), &revisions(), &[]),
        );
        assert_eq!(
            fresh.warnings,
            [
                "ResourceBinding \"other-redis-1\": the PromiseRevision of \"redis\" v0.3.0 is not created yet"
            ]
        );
    }

    #[test]
    fn an_update_is_judged_on_what_it_changes() {
        let mut elsewhere = other("v0.1.0");
        elsewhere["spec"]["resourceRef"]["namespace"] = json!("prod");
        let mut relabelled = elsewhere.clone();
        relabelled["metadata"]["labels"]["team"] = json!("a");
        let world = World::redis();
        let metadata_only = judge(
            &update("ResourceBinding", "default", relabelled, elsewhere.clone()),
            &world,
        );
        assert!(metadata_only.allowed(), "{:?}", metadata_only.denial);
        let mut terminating = elsewhere.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        terminating["metadata"]["finalizers"] = json!(["example.com/legacy"]);
        terminating["metadata"]["labels"]["kratix.io/resource-name"] = json!("stale");
        let mut released = terminating.clone();
        released["metadata"]["finalizers"] = json!([]);
        let finalizer_removed = judge(
            &update("ResourceBinding", "default", released, terminating),
            &world,
        );
        assert!(
            finalizer_removed.allowed(),
            "{:?}",
            finalizer_removed.denial
        );
        let mut wrong_label = other("v0.1.0");
        wrong_label["metadata"]["labels"]["kratix.io/resource-name"] = json!("stale");
        let label_changed = judge(
            &update("ResourceBinding", "default", wrong_label, other("v0.1.0")),
            &world,
        );
        assert_eq!(
            field(&label_changed).as_deref(),
            Some("metadata.labels[kratix.io/resource-name]")
        );
        let deleted = judge(
            &delete("ResourceBinding", "default", elsewhere, "alice"),
            &world,
        );
        assert!(deleted.allowed());
    }

    #[test]
    fn long_names_are_labelled_with_the_shortened_value() {
        let long = "r".repeat(70);
        let object = binding_of("long-redis-1", "redis", &long, "default", "v0.1.0");
        let mut bare = object.clone();
        bare["metadata"]["labels"] = json!({});
        let patched = apply_patch(&bare, &mutate_of(bare.clone(), "CREATE").patch);
        let label = patched["metadata"]["labels"]["kratix.io/resource-name"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(label, naming::label_value(&long));
        assert!(label.len() <= naming::MAX_LABEL_VALUE);
        let decision = judge(
            &create("ResourceBinding", "default", patched),
            &World::redis(),
        );
        assert!(decision.allowed(), "{:?}", decision.denial);
    }

    #[test]
    fn version_is_checked_on_update_only_when_it_changes() {
        let mut stale = other("v0.0.1");
        let world = World::redis();
        let unchanged = judge(
            &update("ResourceBinding", "default", stale.clone(), stale.clone()),
            &world,
        );
        assert!(unchanged.allowed());
        stale["spec"]["version"] = json!("v0.0.2");
        let changed = judge(
            &update("ResourceBinding", "default", stale, other("v0.0.1")),
            &world,
        );
        assert_eq!(field(&changed).as_deref(), Some("spec.version"));
    }

    #[test]
    fn labels_match_the_spec_when_present() {
        let mut wrong_promise = other("v0.1.0");
        wrong_promise["metadata"]["labels"]["kratix.io/promise-name"] = json!("cache");
        let mut wrong_resource = other("v0.1.0");
        wrong_resource["metadata"]["labels"]["kratix.io/resource-name"] = json!("example");
        let mut absent = other("v0.1.0");
        absent["metadata"]["labels"] = json!({});
        let cases = [
            ("right", other("v0.1.0"), None),
            ("absent", absent, None),
            (
                "wrong promise",
                wrong_promise,
                Some("metadata.labels[kratix.io/promise-name]"),
            ),
            (
                "wrong resource",
                wrong_resource,
                Some("metadata.labels[kratix.io/resource-name]"),
            ),
        ];
        for (name, object, expected) in cases {
            let decision = judge(
                &create("ResourceBinding", "default", object),
                &World::redis(),
            );
            assert_eq!(field(&decision).as_deref(), expected, "{name}");
        }
    }

    fn mutate_of(object: Value, operation: &str) -> Decision {
        let review = match operation {
            "DELETE" => delete("ResourceBinding", "default", object, "alice"),
            _ => create("ResourceBinding", "default", object),
        };
        World::redis().with_ctx(|ctx| mutate(&Request::decode(&review).unwrap(), ctx))
    }

    #[test]
    fn mutate_sets_labels_and_namespace_minimally() {
        let mut bare = other("v0.1.0");
        bare["metadata"]["labels"] = json!({"team": "a", "kratix.io/promise-name": "wrong"});
        bare["spec"]["resourceRef"] = json!({"name": "other"});
        let patched = apply_patch(&bare, &mutate_of(bare.clone(), "CREATE").patch);
        assert_eq!(
            patched["metadata"]["labels"],
            json!({"team": "a", "kratix.io/promise-name": "redis", "kratix.io/resource-name": "other"})
        );
        assert_eq!(patched["spec"]["resourceRef"]["namespace"], "default");
        assert!(mutate_of(patched, "CREATE").patch.is_empty(), "idempotent");
        let mut empty_ns = other("v0.1.0");
        empty_ns["spec"]["resourceRef"]["namespace"] = json!("");
        let ops = mutate_of(empty_ns.clone(), "CREATE").patch;
        assert_eq!(ops.len(), 1);
        assert_eq!(
            apply_patch(&empty_ns, &ops)["spec"]["resourceRef"]["namespace"],
            "default"
        );
        assert!(mutate_of(bare, "DELETE").patch.is_empty());
    }
}
