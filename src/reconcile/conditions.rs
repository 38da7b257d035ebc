//! Pure condition computation for ResourceReleaseBindings and ResourceBindings: no I/O, no clock.

use crate::cluster::held::{Held, time_of};
use crate::crd::Condition;
use serde_json::json;

pub const SYNCED: &str = "Synced";
pub const RESOURCES_READY: &str = "ResourcesReady";
pub const OUTPUTS_RESOLVED: &str = "OutputsResolved";
pub const READY: &str = "Ready";
pub const FINALIZING: &str = "Finalizing";
pub const VERSION_RESOLVED: &str = "VersionResolved";
/// Kratix's own condition on a ResourceBinding, kept beside ours for tools that wait on it.
pub const UPGRADE_SUCCEEDED: &str = "UpgradeSucceeded";
pub const RETAIN_HOLD_MESSAGE: &str = "retainPolicy=Retain; finalizer held until cleared manually";

pub use crate::policy::referents::Facts;

/// The binding fields the conditions read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BindingView {
    pub project: String,
    pub resource: String,
    pub environment: String,
    pub release: Option<String>,
    pub generation: Option<i64>,
}

fn cond(type_: &str, status: &str, reason: &str, message: String, g: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: None,
        observed_generation: g,
    }
}

/// The first failing Synced check, in upstream's order, with our two checks added.
pub fn sync_failure(b: &BindingView, f: &Facts) -> Option<(&'static str, String)> {
    let Some(release) = b.release.as_deref().filter(|r| !r.is_empty()) else {
        return Some((
            "ResourceReleaseNotSet",
            "spec.resourceRelease is unset; pin a ResourceRelease to deploy this binding".into(),
        ));
    };
    let Some((rel_project, rel_resource)) = &f.release_owner else {
        return Some((
            "ResourceReleaseNotFound",
            format!("ResourceRelease {release:?} not found"),
        ));
    };
    if *rel_project != b.project || *rel_resource != b.resource {
        return Some((
            "InvalidReleaseConfiguration",
            format!(
                "binding owner (project: {:?}, resource: {:?}) does not match ResourceRelease owner (project: {rel_project:?}, resource: {rel_resource:?})",
                b.project, b.resource
            ),
        ));
    }
    if !f.environment {
        let message = format!("Environment {:?} not found", b.environment);
        return Some(("EnvironmentNotFound", message));
    }
    let Some(owner) = &f.resource_project else {
        return Some((
            "ResourceNotFound",
            format!("Resource {:?} not found", b.resource),
        ));
    };
    if *owner != b.project {
        return Some((
            "CrossProjectOwnership",
            format!(
                "Resource {:?} belongs to project {owner:?}, not to the binding's project {:?}",
                b.resource, b.project
            ),
        ));
    }
    if !f.project {
        return Some((
            "ProjectNotFound",
            format!("Project {:?} not found", b.project),
        ));
    }
    if !f.config_violations.is_empty() {
        let message = format!(
            "spec.resourceTypeEnvironmentConfigs does not match the schema: {}",
            f.config_violations.join("; ")
        );
        return Some(("InvalidEnvironmentConfigs", message));
    }
    None
}

/// Synced, ResourcesReady, OutputsResolved and Ready for a binding that is not being deleted.
/// bindguard does not render data-plane resources, so with Synced=True the other two stay
/// Unknown (`NotObserved`) and Ready follows them.
pub fn binding_conditions(b: &BindingView, f: &Facts) -> Vec<Condition> {
    let g = b.generation;
    let (synced, downstream_reason, downstream_message) = match sync_failure(b, f) {
        Some((reason, message)) => (
            cond(SYNCED, "False", reason, message, g),
            "SyncedNotReady",
            "waiting for Synced to become True".to_string(),
        ),
        None => (
            cond(
                SYNCED,
                "True",
                "Synced",
                "binding references resolve".into(),
                g,
            ),
            "NotObserved",
            "bindguard does not render or observe data-plane resources".to_string(),
        ),
    };
    let resources = cond(
        RESOURCES_READY,
        "Unknown",
        downstream_reason,
        downstream_message.clone(),
        g,
    );
    let outputs = cond(
        OUTPUTS_RESOLVED,
        "Unknown",
        downstream_reason,
        downstream_message,
        g,
    );
    let ready = ready_from(&[&synced, &resources, &outputs], g);
    vec![synced, resources, outputs, ready]
}

/// Ready=True when all are True; otherwise the first failing condition's status, reason, message.
pub fn ready_from(parts: &[&Condition], g: Option<i64>) -> Condition {
    match parts.iter().find(|c| c.status != "True") {
        None => cond(READY, "True", "Ready", "all conditions are True".into(), g),
        Some(c) => cond(READY, &c.status, &c.reason, c.message.clone(), g),
    }
}

/// `Finalizing=True` with `reason` (`Finalizing` or `RetainHold`).
pub fn finalizing(reason: &str, g: Option<i64>) -> Condition {
    let message = if reason == "RetainHold" {
        RETAIN_HOLD_MESSAGE.to_string()
    } else {
        "cleaning up before deletion".to_string()
    };
    cond(FINALIZING, "True", reason, message, g)
}

/// Replaces the conditions of the same types in `old`, keeping `lastTransitionTime` where the
/// status did not change and stamping `now` where it did. Other condition types are kept.
pub fn merge(old: &[Condition], new: Vec<Condition>, now: &str) -> Vec<Condition> {
    let mut out: Vec<Condition> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.type_ == o.type_))
        .cloned()
        .collect();
    for mut c in new {
        let previous = old.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => Some(now.to_string()),
        };
        out.push(c);
    }
    out
}

/// How to bring a binding's conditions, as the view holds them, to what is wanted.
#[derive(Debug, PartialEq)]
pub enum StatusWrite {
    /// A merge patch setting the whole list: the binding has no conditions yet.
    Whole(serde_json::Value),
    /// A JSON patch replacing each changed condition where it sits (after testing its type,
    /// so a list reordered meanwhile fails instead of being overwritten) and appending new
    /// ones; every other condition is left as it is.
    Steps(Vec<serde_json::Value>),
}

/// The write that brings `held` to `wanted`, with `lastTransitionTime` kept where the status
/// did not change and `now` where it did, and what the view will hold after it; `None` when
/// every wanted condition is held already.
pub fn status_write(
    held: &[Held],
    wanted: Vec<Condition>,
    now: &str,
) -> Option<(StatusWrite, Vec<Held>)> {
    let mut after = held.to_vec();
    let mut merged = Vec::new();
    let mut steps = Vec::new();
    for mut c in wanted {
        let at = held.iter().position(|h| h.type_.is(&c.type_));
        // Kept only when it reads as a time: an unreadable one is replaced by now, once.
        c.last_transition_time = match at.map(|i| held[i]).and_then(|h| Some((h, h.since?))) {
            Some((h, since)) if h.status.is(&c.status) => time_of(since),
            _ => Some(now.to_string()),
        };
        let now_held = Held::of(&c);
        match at {
            Some(i) if held[i].digest == now_held.digest => {}
            Some(i) => {
                let path = format!("/status/conditions/{i}");
                steps.push(json!({"op": "test", "path": format!("{path}/type"), "value": c.type_}));
                steps.push(json!({"op": "replace", "path": path, "value": c}));
                after[i] = now_held;
            }
            None => {
                steps.push(json!({"op": "add", "path": "/status/conditions/-", "value": c}));
                after.push(now_held);
            }
        }
        merged.push(c);
    }
    if steps.is_empty() {
        return None;
    }
    let write = match held.is_empty() {
        true => StatusWrite::Whole(json!({"status": {"conditions": merged}})),
        false => StatusWrite::Steps(steps),
    };
    Some((write, after))
}

/// Whether two condition lists say the same thing (order-insensitive).
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len() && a.iter().all(|c| b.contains(c))
}

/// Kratix's UpgradeSucceeded condition for a binding whose version resolved to `resolved`, or
/// failed to (`wanted` is what it asked for): the loop applies a version as soon as it resolves.
pub fn upgrade(resolved: Option<&str>, wanted: &str, g: Option<i64>) -> Condition {
    match resolved {
        Some(v) => {
            let message = format!("version {v:?} is applied");
            cond(UPGRADE_SUCCEEDED, "True", "UpgradeComplete", message, g)
        }
        None => {
            let message =
                format!("version {wanted:?} has no PromiseRevision; see {VERSION_RESOLVED}");
            cond(UPGRADE_SUCCEEDED, "False", "UpgradeFailed", message, g)
        }
    }
}

/// The VersionResolved condition for a ResourceBinding: `Ok(version)` resolved, or the
/// condition saying which versions exist.
pub fn resolve_version(
    promise: &str,
    wanted: &str,
    versions: &[String],
    latest: Option<&str>,
    g: Option<i64>,
) -> (Condition, Option<String>) {
    let resolved = if wanted == crate::crd::VERSION_LATEST {
        latest.map(str::to_string)
    } else {
        versions.iter().find(|v| *v == wanted).cloned()
    };
    match resolved {
        Some(v) => {
            let message = format!("version {wanted:?} resolves to PromiseRevision version {v:?}");
            (
                cond(VERSION_RESOLVED, "True", "RevisionFound", message, g),
                Some(v),
            )
        }
        None => {
            let existing = if versions.is_empty() {
                "none".to_string()
            } else {
                versions.join(", ")
            };
            let message = format!(
                "no PromiseRevision of Promise {promise:?} has version {wanted:?}; versions that exist: {existing}"
            );
            (
                cond(VERSION_RESOLVED, "False", "RevisionNotFound", message, g),
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> BindingView {
        BindingView {
            project: "p".into(),
            resource: "r".into(),
            environment: "e".into(),
            release: Some("r-1".into()),
            generation: Some(3),
        }
    }

    fn facts() -> Facts {
        Facts {
            release_owner: Some(("p".into(), "r".into())),
            environment: true,
            resource_project: Some("p".into()),
            project: true,
            config_violations: vec![],
        }
    }

    fn reason(b: &BindingView, f: &Facts) -> String {
        let c = binding_conditions(b, f);
        c[0].reason.clone()
    }

    #[test]
    fn each_reason_in_upstream_order() {
        let b = binding();
        let unset = BindingView {
            release: None,
            ..binding()
        };
        assert_eq!(reason(&unset, &Facts::default()), "ResourceReleaseNotSet");
        let c = binding_conditions(&unset, &facts());
        assert_eq!(
            c[0].message,
            "spec.resourceRelease is unset; pin a ResourceRelease to deploy this binding"
        );
        let f = Facts {
            release_owner: None,
            ..Facts::default()
        };
        assert_eq!(reason(&b, &f), "ResourceReleaseNotFound");
        let f = Facts {
            release_owner: Some(("p2".into(), "r2".into())),
            ..Facts::default()
        };
        let c = binding_conditions(&b, &f);
        assert_eq!(c[0].reason, "InvalidReleaseConfiguration");
        assert_eq!(
            c[0].message,
            r#"binding owner (project: "p", resource: "r") does not match ResourceRelease owner (project: "p2", resource: "r2")"#
        );
        let f = Facts {
            environment: false,
            resource_project: None,
            ..facts()
        };
        let c = binding_conditions(&b, &f);
        assert_eq!(
            (c[0].reason.as_str(), c[0].message.as_str()),
            ("EnvironmentNotFound", r#"Environment "e" not found"#)
        );
        let f = Facts {
            resource_project: None,
            project: false,
            ..facts()
        };
        assert_eq!(reason(&b, &f), "ResourceNotFound");
        let f = Facts {
            resource_project: Some("q".into()),
            ..facts()
        };
        assert_eq!(reason(&b, &f), "CrossProjectOwnership");
        let f = Facts {
            project: false,
            ..facts()
        };
        assert_eq!(reason(&b, &f), "ProjectNotFound");
        let f = Facts {
            config_violations: vec![".memory: bad".into()],
            ..facts()
        };
        assert_eq!(reason(&b, &f), "InvalidEnvironmentConfigs");
    }

    #[test]
    fn not_synced_makes_downstream_unknown_and_ready_copies_it() {
        let c = binding_conditions(
            &binding(),
            &Facts {
                environment: false,
                ..facts()
            },
        );
        assert_eq!(c[1].status, "Unknown");
        assert_eq!(c[1].reason, "SyncedNotReady");
        assert_eq!(c[2].reason, "SyncedNotReady");
        assert_eq!(
            (c[3].status.as_str(), c[3].reason.as_str()),
            ("False", "EnvironmentNotFound")
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn synced_leaves_downstream_not_observed() {
        let c = binding_conditions(&binding(), &facts());
        assert_eq!(
            (c[0].status.as_str(), c[0].reason.as_str()),
            ("True", "Synced")
        );
        assert_eq!(c[1].reason, "NotObserved");
        assert_eq!(
            (c[3].status.as_str(), c[3].reason.as_str()),
            ("Unknown", "NotObserved")
        );
        let t = |s: &str| cond("X", s, "R", String::new(), None);
        assert_eq!(ready_from(&[&t("True"), &t("True")], None).status, "True");
    }

    #[test]
    fn transition_time_moves_only_with_status() {
        let first = merge(&[], binding_conditions(&binding(), &facts()), "t1");
        assert!(
            first
                .iter()
                .all(|c| c.last_transition_time.as_deref() == Some("t1"))
        );
        let again = merge(&first, binding_conditions(&binding(), &facts()), "t2");
        assert!(same(&first, &again));
        let changed = merge(
            &first,
            binding_conditions(
                &binding(),
                &Facts {
                    project: false,
                    ..facts()
                },
            ),
            "t3",
        );
        let synced = changed
            .iter()
            .find(|c| c.type_ == SYNCED)
            .map(|c| c.last_transition_time.clone());
        assert_eq!(synced, Some(Some("t3".into())));
        let resources = changed
            .iter()
            .find(|c| c.type_ == RESOURCES_READY)
            .map(|c| c.last_transition_time.clone());
        assert_eq!(resources, Some(Some("t1".into())));
        let kept = merge(&[finalizing("Finalizing", None)], vec![], "t");
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn versions_resolve_or_name_what_exists() {
        let vs = vec!["v0.1.0".to_string(), "v0.2.0".to_string()];
        let (c, v) = resolve_version("redis", "latest", &vs, Some("v0.2.0"), None);
        assert_eq!((c.status.as_str(), v.as_deref()), ("True", Some("v0.2.0")));
        let (c, v) = resolve_version("redis", "v0.1.0", &vs, Some("v0.2.0"), None);
        assert_eq!(v.as_deref(), Some("v0.1.0"));
        assert_eq!(c.reason, "RevisionFound");
        let (c, v) = resolve_version("redis", "v9", &vs, None, None);
        assert_eq!((c.reason.as_str(), v), ("RevisionNotFound", None));
        assert!(c.message.contains("\"v9\"") && c.message.contains("v0.1.0, v0.2.0"));
        let applied = upgrade(Some("v0.2.0"), "latest", Some(3));
        let read = |c: &Condition| (c.type_.clone(), c.status.clone(), c.reason.clone());
        assert_eq!(
            read(&applied),
            (
                "UpgradeSucceeded".into(),
                "True".into(),
                "UpgradeComplete".into()
            )
        );
        assert_eq!(applied.observed_generation, Some(3));
        let failed = upgrade(None, "v9", None);
        assert_eq!(
            read(&failed),
            (
                "UpgradeSucceeded".into(),
                "False".into(),
                "UpgradeFailed".into()
            )
        );
    }

    const T1: &str = "2026-12-07T10:00:00Z";
    const T2: &str = "2026-12-07T11:00:00Z";

    fn whole(write: StatusWrite) -> Vec<Condition> {
        let StatusWrite::Whole(patch) = write else {
            panic!("a whole list: {write:?}");
        };
        serde_json::from_value(patch["status"]["conditions"].clone()).unwrap()
    }

    fn steps_values(write: &StatusWrite) -> Vec<serde_json::Value> {
        let StatusWrite::Steps(ops) = write else {
            panic!("steps: {write:?}");
        };
        let ops = ops.iter();
        ops.filter_map(|op| op.get("value").cloned()).collect()
    }

    fn steps(write: StatusWrite) -> Vec<(String, String)> {
        let StatusWrite::Steps(ops) = write else {
            panic!("steps: {write:?}");
        };
        let ops = ops.iter();
        ops.map(|op| {
            (
                op["op"].as_str().unwrap().into(),
                op["path"].as_str().unwrap().into(),
            )
        })
        .collect()
    }

    #[test]
    fn a_status_write_carries_times_over_and_touches_only_what_changed() {
        let first = binding_conditions(&binding(), &facts());
        let (write, held) = status_write(&[], first.clone(), T1).expect("no conditions yet");
        let written = whole(write);
        assert_eq!(written.len(), 4);
        assert!(
            written
                .iter()
                .all(|c| c.last_transition_time.as_deref() == Some(T1))
        );
        assert_eq!(held, written.iter().map(Held::of).collect::<Vec<_>>());
        assert_eq!(status_write(&held, first, T2), None, "nothing changed");

        // Someone else's condition first: ours are addressed where they sit.
        let foreign = Condition {
            type_: "Deployed".into(),
            status: "True".into(),
            ..Condition::default()
        };
        let mut shifted = vec![Held::of(&foreign)];
        shifted.extend(&held);
        let no_project = Facts {
            project: false,
            ..facts()
        };
        let (write, after) =
            status_write(&shifted, binding_conditions(&binding(), &no_project), T2).unwrap();
        let changed = |i: usize| {
            let path = format!("/status/conditions/{i}");
            [
                ("test".into(), format!("{path}/type")),
                ("replace".into(), path),
            ]
        };
        let expected: Vec<(String, String)> = [1, 2, 3, 4].into_iter().flat_map(changed).collect();
        assert_eq!(
            steps(write),
            expected,
            "Synced, both Unknowns' reasons, Ready"
        );
        assert_eq!(after[0], shifted[0], "the foreign condition is untouched");
        let unknown = after[2];
        assert_eq!(unknown.since, held[1].since, "status unchanged: time kept");
        assert_ne!(
            after[1].since, held[0].since,
            "Synced turned False: time now"
        );

        let mut timeless = finalizing("RetainHold", None);
        timeless.last_transition_time = Some("0001-01-01T00:00:00Z".into());
        let unreadable = [Held::of(&timeless)];
        let (write, _) = status_write(&unreadable, vec![timeless.clone()], T2).expect("rewritten");
        let Some(rewritten) = steps_values(&write).pop() else {
            panic!("a replace: {write:?}");
        };
        assert_eq!(
            rewritten["lastTransitionTime"], T2,
            "an unreadable time becomes now"
        );

        let (write, after) =
            status_write(&after, vec![finalizing("RetainHold", None)], T2).unwrap();
        let add = ("add".to_string(), "/status/conditions/-".to_string());
        assert_eq!(steps(write), [add]);
        assert!(after[5].reason.is("RetainHold"));
    }
}
