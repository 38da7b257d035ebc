//! One change -> what the cluster would say: the mutating webhook, the CRD's own rules, then the
//! validating webhook, in the API server's order, through the server's own policy code.

use super::changes::Change;
use super::crd_rules::CrdRules;
use super::report::{Finding, Severity};
use super::{Manifest, ObjectId};
use crate::admission::{AdmissionRequest, Decision, GroupVersionKind, Operation, UserInfo};
use crate::policy::{self, Context, GARBAGE_COLLECTOR, Phase};
use serde_json::Value;

/// Who `bindguard check` acts as: a GitOps tool, not one of the platform's controllers.
pub const CHECK_USER: &str = "bindguard-check";

/// Everything a change is judged with.
pub struct Judge<'a> {
    pub ctx: Context<'a>,
    pub crd: &'a CrdRules,
}

impl Judge<'_> {
    /// The findings about one change.
    pub fn change(&self, change: &Change, still_in_head: bool) -> Vec<Finding> {
        let at = change.at();
        let mut found = Vec::new();
        let mut say = |severity: Severity, message: String| {
            found.push(finding(change, at, severity, message))
        };
        match (change.old, change.new) {
            (Some(old), None) => {
                if change.cascade && still_in_head {
                    say(Severity::Warning, "its Promise is deleted, so the cluster deletes it too; it is still in the files, and applying it again recreates it without its Promise".into());
                }
                let user = if change.cascade {
                    GARBAGE_COLLECTOR
                } else {
                    CHECK_USER
                };
                let old = self.stored(old);
                let review = request(Operation::Delete, &at.id, None, Some(old), user);
                self.validated(&review, &mut say);
            }
            (old, Some(new)) => self.written(change.operation, old, new, &mut say),
            (None, None) => {}
        }
        found
    }

    /// CREATE or UPDATE: mutate, then the CRD's rules, then validate.
    fn written(
        &self,
        operation: Operation,
        old: Option<&Manifest>,
        new: &Manifest,
        say: &mut impl FnMut(Severity, String),
    ) {
        let old = old.map(|m| self.stored(m));
        let (object, patch) = self.mutated(operation, &new.id, new.object.clone(), old.clone());
        for op in &patch {
            say(Severity::Notice, describe(op));
        }
        let refusals = self
            .crd
            .refusals(&new.id.group, &new.id.kind, &object, old.as_ref());
        if !refusals.is_empty() {
            say(
                Severity::Error,
                format!(
                    "the CustomResourceDefinition refuses it: {}",
                    refusals.join("; ")
                ),
            );
            return;
        }
        let review = request(operation, &new.id, Some(object), old, CHECK_USER);
        self.validated(&review, say);
    }

    /// The object after the mutating webhook, and the patch it applied.
    fn mutated(
        &self,
        operation: Operation,
        id: &ObjectId,
        object: Value,
        old: Option<Value>,
    ) -> (Value, Vec<json_patch::PatchOperation>) {
        let review = request(operation, id, Some(object), old, CHECK_USER);
        let decision = policy::decide(Phase::Mutate, &review, &self.ctx);
        let mut object = review.object.unwrap_or_default();
        if json_patch::patch(&mut object, &decision.patch).is_err() {
            return (object, Vec::new());
        }
        (object, decision.patch)
    }

    /// An object of the base as the cluster stores it: after the mutating webhook.
    fn stored(&self, manifest: &Manifest) -> Value {
        self.mutated(
            Operation::Create,
            &manifest.id,
            manifest.object.clone(),
            None,
        )
        .0
    }

    fn validated(&self, review: &AdmissionRequest, say: &mut impl FnMut(Severity, String)) {
        let Decision {
            denial, warnings, ..
        } = policy::decide(Phase::Validate, review, &self.ctx);
        for warning in warnings {
            say(Severity::Warning, warning);
        }
        if let Some(denial) = denial {
            say(Severity::Error, denial.message);
        }
    }
}

fn finding(change: &Change, at: &Manifest, severity: Severity, message: String) -> Finding {
    Finding {
        file: at.file.clone(),
        line: at.line,
        severity,
        operation: format!("{:?}", change.operation).to_uppercase(),
        kind: at.id.kind.clone(),
        namespace: at.id.namespace.clone(),
        name: at.id.name.clone(),
        message,
    }
}

/// The admission request the API server would send for this write.
pub fn request(
    operation: Operation,
    id: &ObjectId,
    object: Option<Value>,
    old: Option<Value>,
    user: &str,
) -> AdmissionRequest {
    let api_version = object
        .as_ref()
        .or(old.as_ref())
        .and_then(|o| o.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
    AdmissionRequest {
        uid: format!("check-{}-{}", id.namespace, id.name),
        kind: GroupVersionKind {
            group: id.group.clone(),
            version: version.to_string(),
            kind: id.kind.clone(),
        },
        sub_resource: None,
        name: id.name.clone(),
        namespace: (!id.namespace.is_empty()).then(|| id.namespace.clone()),
        operation,
        user_info: UserInfo {
            username: user.to_string(),
            ..UserInfo::default()
        },
        object,
        old_object: old,
        dry_run: Some(true),
    }
}

/// `the mutating webhook would add metadata.labels["openchoreo.dev/project"]: "doclet"`.
fn describe(op: &json_patch::PatchOperation) -> String {
    let raw = serde_json::to_value(op).unwrap_or_default();
    let verb = match raw.get("op").and_then(Value::as_str) {
        Some("add") => "add",
        Some("replace") => "set",
        Some("remove") => "remove",
        _ => "change",
    };
    let path = raw.get("path").and_then(Value::as_str).unwrap_or_default();
    let field = path
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".");
    match raw.get("value") {
        Some(value) => format!("the mutating webhook would {verb} {field}: {value}"),
        None => format!("the mutating webhook would {verb} {field}"),
    }
}
