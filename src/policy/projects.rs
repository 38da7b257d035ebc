//! Project authorization (`serve --authorize-projects`): which accesses to a project a
//! ResourceReleaseBinding write needs. Pure: the SubjectAccessReviews are asked by the server.
//!
//! A write needs `VERB` on `projects/releasebindings` (group `openchoreo.dev`) named after the
//! binding's `spec.owner.projectName`, in the binding's namespace, where VERB is the operation's
//! (`create`, `update`, `delete`). UPDATE and DELETE are judged by the stored object's owner; an
//! UPDATE that changes the owner needs `update` on both projects.

use super::Context;
use crate::admission::{AdmissionRequest, Operation, UserInfo};
use serde_json::Value;

pub const GROUP: &str = "openchoreo.dev";
pub const RESOURCE: &str = "projects";
pub const SUBRESOURCE: &str = "releasebindings";
const KIND: &str = "ResourceReleaseBinding";

/// One access a write needs: `verb` on the project's releasebindings in `namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    pub verb: &'static str,
    pub namespace: String,
    pub project: String,
}

/// A write allowed by policy that still needs its requester's project access checked.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user: UserInfo,
    pub accesses: Vec<Access>,
}

/// What `request` needs, or `None` when it needs nothing (other kinds, the platform's
/// controllers, a binding without an owner).
pub fn pending(request: &AdmissionRequest, ctx: &Context) -> Option<Pending> {
    if request.kind.group != GROUP || request.kind.kind != KIND {
        return None;
    }
    if ctx.is_controller(&request.user_info.username) {
        return None;
    }
    let accesses = required(request);
    (!accesses.is_empty()).then(|| Pending {
        user: request.user_info.clone(),
        accesses,
    })
}

/// The accesses a binding write needs, by its operation.
pub fn required(request: &AdmissionRequest) -> Vec<Access> {
    let namespace = request.namespace();
    let access = |verb, object: &Option<Value>| {
        owner(object).map(|project| Access {
            verb,
            namespace: namespace.to_string(),
            project,
        })
    };
    let mut accesses: Vec<Access> = match request.operation {
        Operation::Create => access("create", &request.object).into_iter().collect(),
        Operation::Delete => access("delete", &request.old_object).into_iter().collect(),
        Operation::Update => [
            access("update", &request.old_object),
            access("update", &request.object),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Operation::Connect => Vec::new(),
    };
    accesses.dedup();
    accesses
}

fn owner(object: &Option<Value>) -> Option<String> {
    object
        .as_ref()?
        .pointer("/spec/owner/projectName")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// The one-line refusal for `user` lacking `access`.
pub fn refusal(user: &str, access: &Access) -> String {
    format!(
        "user {user:?} may not {} ResourceReleaseBindings of project {:?} in namespace {:?}: \
         it needs {:?} on {RESOURCE}/{SUBRESOURCE} {:?} ({GROUP})",
        access.verb, access.project, access.namespace, access.verb, access.project
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Writers;
    use crate::policy::Settings;
    use crate::schema::SchemaCache;
    use serde_json::json;

    fn request(
        operation: &str,
        user: &str,
        new: Option<&str>,
        old: Option<&str>,
    ) -> AdmissionRequest {
        let object = |p: Option<&str>| p.map(|p| json!({"spec": {"owner": {"projectName": p}}}));
        serde_json::from_value(json!({
            "uid": "u", "name": "b", "namespace": "ns", "operation": operation,
            "kind": {"group": "openchoreo.dev", "version": "v1alpha1", "kind": "ResourceReleaseBinding"},
            "userInfo": {"username": user, "groups": ["g"]},
            "object": object(new), "oldObject": object(old),
        }))
        .unwrap()
    }

    fn needs(r: &AdmissionRequest) -> Vec<(&'static str, String)> {
        let (_, stores) = Writers::new(0);
        let settings = Settings {
            controller_users: vec!["system:serviceaccount:bindguard-system:*".into()],
            ..Settings::default()
        };
        let schemas = SchemaCache::new();
        let ctx = Context {
            view: &stores,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        };
        pending(r, &ctx)
            .map(|p| {
                p.accesses
                    .into_iter()
                    .map(|a| (a.verb, a.project))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn each_operation_is_judged_by_the_owner_it_acts_on() {
        let create = request("CREATE", "alice", Some("alpha"), None);
        assert_eq!(needs(&create), [("create", "alpha".to_string())]);
        // DELETE and UPDATE: the stored owner, not the body's.
        let delete = request("DELETE", "alice", None, Some("alpha"));
        assert_eq!(needs(&delete), [("delete", "alpha".to_string())]);
        let update = request("UPDATE", "alice", Some("alpha"), Some("alpha"));
        assert_eq!(needs(&update), [("update", "alpha".to_string())]);
        let retarget = request("UPDATE", "alice", Some("beta"), Some("alpha"));
        assert_eq!(
            needs(&retarget),
            [
                ("update", "alpha".to_string()),
                ("update", "beta".to_string())
            ]
        );
    }

    #[test]
    fn controllers_other_kinds_and_ownerless_bindings_need_nothing() {
        let sa = "system:serviceaccount:bindguard-system:bindguard";
        assert!(needs(&request("DELETE", sa, None, Some("alpha"))).is_empty());
        let gc = crate::policy::GARBAGE_COLLECTOR;
        assert!(needs(&request("DELETE", gc, None, Some("alpha"))).is_empty());
        assert!(needs(&request("CREATE", "alice", None, None)).is_empty());
        let mut other = request("CREATE", "alice", Some("alpha"), None);
        other.kind.kind = "Resource".into();
        assert!(needs(&other).is_empty());
    }

    #[test]
    fn the_refusal_names_user_verb_and_project() {
        let access = Access {
            verb: "delete",
            namespace: "ns".into(),
            project: "beta".into(),
        };
        let message = refusal("bob", &access);
        assert!(message.starts_with(r#"user "bob" may not delete ResourceReleaseBindings of project "beta" in namespace "ns""#), "{message}");
        assert!(!message.contains('\n'));
    }
}
