//! Pure policy: one module per kind, `fn(&Request, &Context) -> Decision`.
//!
//! No I/O, no async, no clock. Every rule is a named function returning [`Check`]: the
//! warnings it raises, or the denial that stops the request.

pub mod patch;
pub mod projects;
pub mod promise;
pub mod promise_revision;
pub mod referents;
pub mod release_binding;
pub mod resource_binding;

use crate::admission::{AdmissionRequest, Decision, Denial, DenyCode, Operation};
use crate::cluster::ClusterView;
use crate::kinds::Kind;
use crate::schema::{InPlace, SchemaCache};
use serde::de::DeserializeOwned;

/// What a missing reference means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum References {
    /// Allowed with a warning: GitOps applies objects in any order.
    #[default]
    Warn,
    /// Denied with 422.
    Strict,
}

/// Settings every rule may read.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub references: References,
    /// Identities allowed to do what only the platform's controllers should.
    pub controller_users: Vec<String>,
    /// Whether ResourceReleaseBinding writes need project access ([`projects`]).
    pub authorize_projects: bool,
}

/// The identity Kubernetes' garbage collector acts as.
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// Everything a rule may consult besides the request.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub view: &'a dyn ClusterView,
    pub settings: &'a Settings,
    pub schemas: &'a SchemaCache,
    /// Set when judging on an async worker: schema checks that could be long are left undone
    /// and noted there (see [`InPlace`]).
    pub in_place: Option<&'a InPlace>,
}

/// A rule's outcome: warnings to pass on, or the denial.
pub type Check = Result<Vec<String>, Denial>;

/// Passes with nothing to say.
pub fn pass() -> Check {
    Ok(Vec::new())
}

impl Context<'_> {
    /// A reference to an object not (yet) in the cluster: a warning, or 422 under strict.
    pub fn missing_reference(&self, field: &str, message: String) -> Check {
        match self.settings.references {
            References::Warn => Ok(vec![message]),
            References::Strict => Err(Denial::invalid(
                field,
                format!("{message} (--references strict refuses missing references)"),
            )),
        }
    }

    /// Refuses a request that needs a fact about the `kind` object `name`, which exists but
    /// bindguard could not read (`namespace` is empty for cluster-scoped kinds).
    pub fn require_readable(
        &self,
        who: &str,
        field: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), Denial> {
        let Some(reason) = self.view.unreadable(kind, namespace, name) else {
            return Ok(());
        };
        let place = match namespace {
            "" => String::new(),
            ns => format!(" in namespace {ns}"),
        };
        Err(Denial::forbidden(
            field,
            format!(
                "{who}: {kind} {name:?}{place} could not be read by bindguard ({reason}); \
                 what this request depends on cannot be checked until that {kind} is fixed or \
                 deleted, or {field} names another"
            ),
        ))
    }

    /// Whether `user` is one of the platform's controllers (or the garbage collector). An entry
    /// ending in `*` names every user it prefixes (`system:serviceaccount:<namespace>:*`).
    pub fn is_controller(&self, user: &str) -> bool {
        let named = |entry: &String| match entry.strip_suffix('*') {
            Some(prefix) => user.starts_with(prefix),
            None => entry == user,
        };
        user == GARBAGE_COLLECTOR || self.settings.controller_users.iter().any(named)
    }
}

/// Which webhook is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Validate,
    Mutate,
}

/// An admission request with its objects decoded as `T`.
pub struct Request<'a, T> {
    pub review: &'a AdmissionRequest,
    pub object: Option<T>,
    pub old_object: Option<T>,
}

impl<'a, T: DeserializeOwned> Request<'a, T> {
    /// Decodes both objects; a field that does not fit is a 400 naming it.
    pub fn decode(review: &'a AdmissionRequest) -> Result<Self, Denial> {
        Ok(Request {
            review,
            object: decode_object(review.object.as_ref(), "object")?,
            old_object: decode_object(review.old_object.as_ref(), "oldObject")?,
        })
    }
}

impl<T> Request<'_, T> {
    pub fn operation(&self) -> Operation {
        self.review.operation
    }
    pub fn namespace(&self) -> &str {
        self.review.namespace()
    }
    pub fn name(&self) -> &str {
        self.review.object_name()
    }
    /// The new object and the old one, on UPDATE.
    pub fn update(&self) -> Option<(&T, &T)> {
        match (self.operation(), &self.object, &self.old_object) {
            (Operation::Update, Some(new), Some(old)) => Some((new, old)),
            _ => None,
        }
    }
    /// The object a mutating webhook may patch, decoded and raw: none on DELETE and on status
    /// updates.
    pub fn to_mutate(&self) -> Option<(&T, &serde_json::Value)> {
        if self.review.is_status_update() {
            return None;
        }
        Some((self.written()?, self.review.object.as_ref()?))
    }
    /// The object being created or updated.
    pub fn written(&self) -> Option<&T> {
        match self.operation() {
            Operation::Create | Operation::Update => self.object.as_ref(),
            _ => None,
        }
    }
}

fn decode_object<T: DeserializeOwned>(
    value: Option<&serde_json::Value>,
    what: &str,
) -> Result<Option<T>, Denial> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    // Tracking the path costs a wrapper per value: decode without it, and again with it only
    // to name the field that does not fit.
    if let Ok(decoded) = T::deserialize(value) {
        return Ok(Some(decoded));
    }
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|e| {
            let field = e.path().to_string();
            let message = format!("{what}.{field} cannot be read: {}", e.inner());
            Denial::new(DenyCode::BadRequest, &field, message)
        })
}

/// Runs `rules` in order: the first denial stops the request, warnings add up.
pub fn run_rules<T>(
    request: &Request<T>,
    ctx: &Context,
    rules: &[fn(&Request<T>, &Context) -> Check],
) -> Decision {
    let mut decision = Decision::default();
    for rule in rules {
        match rule(request, ctx) {
            Ok(warnings) => decision.warnings.extend(warnings),
            Err(denial) => {
                return Decision {
                    denial: Some(denial),
                    ..Decision::default()
                };
            }
        }
    }
    decision
}

/// Judges one admission request. Kinds bindguard does not guard are allowed untouched.
pub fn decide(phase: Phase, review: &AdmissionRequest, ctx: &Context) -> Decision {
    let kind = Kind::of(&review.kind.group, &review.kind.kind);
    match (kind, phase) {
        (Some(Kind::ResourceReleaseBinding), Phase::Validate) => {
            with_decoded(review, |r| release_binding::validate(r, ctx))
        }
        (Some(Kind::ResourceReleaseBinding), Phase::Mutate) => {
            with_decoded(review, |r| release_binding::mutate(r, ctx))
        }
        (Some(Kind::PromiseRevision), Phase::Validate) => {
            with_decoded(review, |r| promise_revision::validate(r, ctx))
        }
        (Some(Kind::PromiseRevision), Phase::Mutate) => {
            with_decoded(review, |r| promise_revision::mutate(r, ctx))
        }
        (Some(Kind::ResourceBinding), Phase::Validate) => {
            with_decoded(review, |r| resource_binding::validate(r, ctx))
        }
        (Some(Kind::ResourceBinding), Phase::Mutate) => {
            with_decoded(review, |r| resource_binding::mutate(r, ctx))
        }
        (Some(Kind::Promise), Phase::Validate) => {
            with_decoded(review, |r| promise::validate(r, ctx))
        }
        _ => Decision::default(),
    }
}

fn with_decoded<'a, T: DeserializeOwned>(
    review: &'a AdmissionRequest,
    judge: impl FnOnce(&Request<'a, T>) -> Decision,
) -> Decision {
    if is_bookkeeping(review) {
        return Decision::default();
    }
    match Request::decode(review) {
        Ok(request) => judge(&request),
        Err(_) if review.operation == Operation::Delete => Decision {
            warnings: vec![format!(
                "{} {:?} could not be read by bindguard; its deletion is not judged",
                review.kind.kind,
                review.object_name()
            )],
            ..Decision::default()
        },
        Err(_) if changes_only_metadata_of_unreadable::<T>(review) => Decision {
            warnings: vec![format!(
                "{} {:?} could not be read by bindguard; this update changes only its \
                 metadata and is not judged",
                review.kind.kind,
                review.object_name()
            )],
            ..Decision::default()
        },
        Err(denial) => Decision {
            denial: Some(denial),
            ..Decision::default()
        },
    }
}

/// An UPDATE of an object that could not be read before either, which changes only its
/// metadata (labels, say): refusing it would refuse the object's old state, not the update.
/// Spec and status writes are still judged (a status may publish outputs the rules guard).
fn changes_only_metadata_of_unreadable<T: DeserializeOwned>(review: &AdmissionRequest) -> bool {
    let (Operation::Update, Some(new), Some(old)) =
        (review.operation, &review.object, &review.old_object)
    else {
        return false;
    };
    let same = |field: &str| new.get(field) == old.get(field);
    same("spec") && same("status") && T::deserialize(old).is_err()
}

/// An UPDATE that changes nothing any rule reads: only metadata other than labels (finalizers,
/// annotations, owner references) moved. It is never refused, whatever the stored object is:
/// this is how legacy objects lose their finalizers and how Terminating objects go away.
fn is_bookkeeping(review: &AdmissionRequest) -> bool {
    if review.operation != Operation::Update {
        return false;
    }
    let (Some(new), Some(old)) = (review.object.as_ref(), review.old_object.as_ref()) else {
        return false;
    };
    let (Some(new), Some(old)) = (new.as_object(), old.as_object()) else {
        return false;
    };
    let labels = |o: &serde_json::Map<String, serde_json::Value>| {
        o.get("metadata")
            .and_then(|m| m.get("labels"))
            .cloned()
            .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
    };
    let keys_equal = new.len() == old.len()
        && new
            .iter()
            .all(|(k, v)| k == "metadata" || old.get(k) == Some(v));
    keys_equal && labels(new) == labels(old)
}
