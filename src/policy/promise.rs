//! Promise (`platform.kratix.io/v1alpha1`): warnings on surprising version moves.

use super::{Check, Context, Request, pass, promise_revision, run_rules};
use crate::admission::{Decision, Operation};
use crate::crd::Promise;
use crate::naming;
use kube::ResourceExt;

type PromiseRequest<'a> = Request<'a, Promise>;

/// The validating rules: all only warn.
pub fn validate(request: &PromiseRequest, ctx: &Context) -> Decision {
    let rules = [downgrade_warns, unnamable_version_warns, unserved_api_warns];
    run_rules(request, ctx, &rules)
}

pub fn mutate(_request: &PromiseRequest, _ctx: &Context) -> Decision {
    Decision::default()
}

/// The version a Promise request writes, from its `kratix.io/promise-version` label.
fn version_of(promise: &Promise) -> String {
    naming::promise_version(Some(promise.labels()))
}

/// A version as semver, after an optional leading `v`; `None` when it does not parse.
pub fn semantic(version: &str) -> Option<semver::Version> {
    semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).ok()
}

/// Rule 9a: installing a lower version than the latest makes it the latest (install order
/// wins, as the seed warns).
pub fn downgrade_warns(request: &PromiseRequest, ctx: &Context) -> Check {
    let Some(promise) = request.written() else {
        return pass();
    };
    let version = version_of(promise);
    let revisions = ctx.view.promise_revisions(&promise.name_any());
    let Some(latest) = revisions.iter().find(|r| promise_revision::is_latest(r)) else {
        return pass();
    };
    let current = &latest.spec.version;
    match (semantic(&version), semantic(current)) {
        (Some(new), Some(old)) if new < old => Ok(vec![format!(
            "Promise {:?}: {version} is lower than latest {current} but becomes the latest revision",
            promise.name_any(),
        )]),
        _ => pass(),
    }
}

/// Rule 9b: a version that is not usable in an object name gets a hashed revision name; so does
/// one whose seed name another Promise's revision already holds.
pub fn unnamable_version_warns(request: &PromiseRequest, ctx: &Context) -> Check {
    let Some(promise) = request.written() else {
        return pass();
    };
    let version = version_of(promise);
    let unchanged = request
        .update()
        .is_some_and(|(_, old)| version_of(old) == version);
    if request.operation() == Operation::Update && unchanged {
        return pass();
    }
    let name = promise.name_any();
    let revision = naming::revision_name(&name, &version, &known_revisions(ctx, &name, &version));
    let plain = format!("{name}-{version}");
    let seed = naming::seed_revision_name(&name, &version);
    if revision == plain {
        return pass();
    }
    if seed != plain {
        return Ok(vec![format!(
            "Promise {name:?}: version {version:?} is not valid in an object name; its revision is {revision:?}"
        )]);
    }
    if revision == seed {
        return pass();
    }
    Ok(vec![format!(
        "Promise {name:?}: revision name {seed:?} is taken; its revision is {revision:?}"
    )])
}

/// A `spec.api` that names no kind the loop can serve (a CRD's `spec.group`,
/// `spec.names.kind`, `spec.names.plural` and a served version, as strings): its requests would
/// get no bindings, silently.
pub fn unserved_api_warns(request: &PromiseRequest, _: &Context) -> Check {
    let Some(promise) = request.written() else {
        return pass();
    };
    match promise.spec.api() {
        Some(api) if crate::reconcile::requests::offered_api(api).is_none() => Ok(vec![format!(
            "Promise {:?}: spec.api names no kind to serve; its requests get no ResourceBindings",
            promise.name_any()
        )]),
        _ => pass(),
    }
}

/// The revisions that can decide the name of `promise`'s revision at `version`: its own, and
/// those of every Promise whose revisions could hold the seed's name.
pub fn known_revisions(ctx: &Context, promise: &str, version: &str) -> Vec<naming::RevisionId> {
    let seed = naming::seed_revision_name(promise, version);
    let mut owners: Vec<&str> = naming::possible_owners(&seed).collect();
    if !owners.contains(&promise) {
        owners.push(promise);
    }
    owners
        .into_iter()
        .flat_map(|owner| ctx.view.promise_revisions(owner))
        .map(|r| naming::RevisionId {
            name: r.name_any(),
            promise: r.spec.promise_ref.name.clone(),
            version: r.spec.version.clone(),
        })
        .collect()
}

/// Shared test fixtures for the Kratix policies: a cluster holding the seed's redis Promise.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::admission::AdmissionRequest;
    use crate::cluster::{Stores, Writers, files::decode, put};
    use crate::policy::{Context, References, Settings};
    use crate::schema::SchemaCache;
    use serde_json::{Value, json};

    pub const CONTROLLER: &str = "system:serviceaccount:kratix:ctl";

    /// A static cluster and the settings to judge with.
    pub struct World {
        pub stores: Stores,
        pub settings: Settings,
    }

    impl Default for World {
        fn default() -> Self {
            World {
                stores: Writers::new(0).1,
                settings: Settings {
                    controller_users: vec![CONTROLLER.into()],
                    ..Settings::default()
                },
            }
        }
    }

    impl World {
        /// The objects of `examples/cluster/kratix.yaml`, with the Promise as `promise`.
        pub fn with(promise: Option<Value>, revisions: &[Value], bindings: &[Value]) -> World {
            let (mut writers, stores) = Writers::new(0);
            if let Some(p) = promise {
                put(&mut writers.promises, decode(p).unwrap());
            }
            for r in revisions {
                put(&mut writers.promise_revisions, decode(r.clone()).unwrap());
            }
            for b in bindings {
                put(&mut writers.resource_bindings, decode(b.clone()).unwrap());
            }
            World {
                stores,
                ..World::default()
            }
        }

        pub fn redis() -> World {
            Self::with(Some(promise("v0.2.0", false)), &revisions(), &[binding()])
        }

        pub fn redis_deleting() -> World {
            Self::with(Some(promise("v0.2.0", true)), &revisions(), &[binding()])
        }

        pub fn strict(mut self) -> World {
            self.settings.references = References::Strict;
            self
        }

        pub fn with_ctx<R>(&self, f: impl FnOnce(&Context) -> R) -> R {
            let schemas = SchemaCache::new();
            f(&Context {
                view: &self.stores,
                settings: &self.settings,
                schemas: &schemas,
                in_place: None,
            })
        }
    }

    pub fn promise(version: &str, deleting: bool) -> Value {
        let mut p = json!({
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Promise",
            "metadata": {"name": "redis", "labels": {"kratix.io/promise-version": version}},
            "spec": {},
        });
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        p
    }

    pub fn revisions() -> Vec<Value> {
        let revision = |version: &str, latest: bool| {
            let mut labels = json!({"kratix.io/promise-name": "redis"});
            if latest {
                labels["kratix.io/latest-revision"] = json!("true");
            }
            json!({
                "apiVersion": "platform.kratix.io/v1alpha1",
                "kind": "PromiseRevision",
                "metadata": {"name": format!("redis-{version}"), "labels": labels},
                "spec": {"promiseRef": {"name": "redis"}, "version": version},
                "status": {"latest": latest},
            })
        };
        vec![revision("v0.1.0", false), revision("v0.2.0", true)]
    }

    /// A ResourceBinding in `default`.
    pub fn binding_of(name: &str, promise: &str, resource: &str, ns: &str, version: &str) -> Value {
        json!({
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "ResourceBinding",
            "metadata": {"name": name, "namespace": "default", "labels": {
                "kratix.io/promise-name": promise, "kratix.io/resource-name": resource}},
            "spec": {"promiseRef": {"name": promise},
                     "resourceRef": {"name": resource, "namespace": ns}, "version": version},
        })
    }

    /// The seed's binding: `example-redis-e7f90`, redis request `example`, pinned to v0.1.0.
    pub fn binding() -> Value {
        binding_of(
            "example-redis-e7f90",
            "redis",
            "example",
            "default",
            "v0.1.0",
        )
    }

    fn review(
        kind: &str,
        ns: &str,
        operation: &str,
        object: Value,
        old: Value,
        user: &str,
    ) -> AdmissionRequest {
        let name = object
            .pointer("/metadata/name")
            .or_else(|| old.pointer("/metadata/name"))
            .cloned()
            .unwrap_or(json!(""));
        serde_json::from_value(json!({
            "uid": "u-1",
            "kind": {"group": "platform.kratix.io", "version": "v1alpha1", "kind": kind},
            "name": name,
            "namespace": ns,
            "operation": operation,
            "userInfo": {"username": user},
            "object": object,
            "oldObject": old,
        }))
        .unwrap()
    }

    pub fn create(kind: &str, ns: &str, object: Value) -> AdmissionRequest {
        review(kind, ns, "CREATE", object, Value::Null, "alice")
    }

    pub fn update(kind: &str, ns: &str, object: Value, old: Value) -> AdmissionRequest {
        review(kind, ns, "UPDATE", object, old, "alice")
    }

    pub fn delete(kind: &str, ns: &str, old: Value, user: &str) -> AdmissionRequest {
        review(kind, ns, "DELETE", Value::Null, old, user)
    }

    pub fn apply_patch(object: &Value, ops: &[json_patch::PatchOperation]) -> Value {
        let mut out = object.clone();
        json_patch::patch(&mut out, ops).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::{Value, json};

    fn judge(object: Value, old: Option<Value>, world: &World) -> Decision {
        let review = match old {
            Some(old) => update("Promise", "", object, old),
            None => create("Promise", "", object),
        };
        world.with_ctx(|ctx| validate(&Request::decode(&review).unwrap(), ctx))
    }

    #[test]
    fn an_api_that_names_no_kind_warns() {
        let crd = |kind: Value| {
            json!({"spec": {"group": "kv.dev", "names": {"kind": kind, "plural": "kvs"},
                   "versions": [{"name": "v1", "served": true, "storage": true}]}})
        };
        let with_api = |api: Option<Value>| {
            let mut p = promise("v0.2.0", false);
            if let Some(api) = api {
                p["spec"]["api"] = api;
            }
            p
        };
        let cases = [
            (Some(crd(json!("Kv"))), 0),
            (None, 0),
            (Some(crd(json!(false))), 1),
            (Some(json!({"foo": "bar"})), 1),
        ];
        for (api, warnings) in cases {
            let decision = judge(with_api(api.clone()), None, &World::redis());
            assert!(decision.allowed());
            assert_eq!(
                decision.warnings.len(),
                warnings,
                "{api:?}: {:?}",
                decision.warnings
            );
        }
        let decision = judge(with_api(Some(json!(7))), None, &World::redis());
        assert!(
            decision.warnings[0].contains("spec.api names no kind"),
            "{decision:?}"
        );
    }

    #[test]
    fn downgrade_warns() {
        let cases = [
            ("same as latest", "v0.2.0", 0),
            ("upgrade", "v0.3.0", 0),
            ("downgrade", "v0.1.0", 1),
            ("downgrade without v", "0.1.0", 1),
            ("not semver", "blue", 0),
            ("not set", "", 0),
        ];
        for (name, version, warnings) in cases {
            let new = promise(version, false);
            let decision = judge(new, Some(promise("v0.2.0", false)), &World::redis());
            assert!(decision.allowed(), "{name}");
            assert_eq!(
                decision.warnings.len(),
                warnings,
                "{name}: {:?}",
                decision.warnings
            );
        }
        let decision = judge(promise("v0.1.0", false), None, &World::redis());
        let warning = &decision.warnings[0];
        assert_eq!(
            warning,
            "Promise \"redis\": v0.1.0 is lower than latest v0.2.0 but becomes the latest revision"
        );
        assert!(warning.chars().count() < 120);
        let nothing_known = judge(promise("v0.1.0", false), None, &World::default());
        assert!(nothing_known.warnings.is_empty());
    }

    #[test]
    fn unnamable_version_warns_with_the_revision_name() {
        let long = "v".repeat(250);
        let cases = [
            ("plain", "v1.0.0", None),
            (
                "capitals",
                "V1.0.0",
                Some(naming::seed_revision_name("redis", "V1.0.0")),
            ),
            (
                "build metadata",
                "v1.0.0+build.5",
                Some(naming::seed_revision_name("redis", "v1.0.0+build.5")),
            ),
            (
                "too long",
                long.as_str(),
                Some(naming::seed_revision_name("redis", &long)),
            ),
        ];
        for (name, version, revision) in cases {
            let decision = judge(promise(version, false), None, &World::default());
            match revision {
                None => assert!(
                    decision.warnings.is_empty(),
                    "{name}: {:?}",
                    decision.warnings
                ),
                Some(revision) => {
                    let warning = &decision.warnings[0];
                    assert!(
                        warning.contains(&format!("{revision:?}")),
                        "{name}: {warning}"
                    );
                    assert!(
                        revision.starts_with("redis-") && revision.len() == 11,
                        "{revision}"
                    );
                }
            }
        }
        let unchanged = judge(
            promise("V1", false),
            Some(promise("V1", false)),
            &World::default(),
        );
        assert!(
            unchanged.warnings.is_empty(),
            "an unchanged version is not repeated"
        );
        let changed = judge(
            promise("V1", false),
            Some(promise("v1", false)),
            &World::default(),
        );
        assert_eq!(changed.warnings.len(), 1);
    }

    #[test]
    fn a_seed_name_held_by_another_promise_warns_with_the_fallback() {
        let held = serde_json::json!({
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "PromiseRevision",
            "metadata": {"name": "redis-ha-v1"},
            "spec": {"promiseRef": {"name": "redis"}, "version": "ha-v1"},
        });
        let world = World::with(None, &[held], &[]);
        let mut ha = promise("v1", false);
        ha["metadata"]["name"] = serde_json::json!("redis-ha");
        let decision = judge(ha, None, &world);
        let expected = naming::revision_name(
            "redis-ha",
            "v1",
            &[naming::RevisionId {
                name: "redis-ha-v1".into(),
                promise: "redis".into(),
                version: "ha-v1".into(),
            }],
        );
        assert_eq!(
            decision.warnings,
            vec![format!(
                "Promise \"redis-ha\": revision name \"redis-ha-v1\" is taken; its revision is {expected:?}"
            )]
        );
        let own = judge(promise("ha-v1", false), None, &world);
        assert!(own.warnings.is_empty(), "{:?}", own.warnings);
    }

    #[test]
    fn the_unnamable_warning_fits_for_a_plain_promise_name() {
        let decision = judge(promise("v1.0.0+build.5", false), None, &World::default());
        assert!(
            decision.warnings[0].chars().count() < 120,
            "{}",
            decision.warnings[0]
        );
    }
}
