//! ResourceReleaseBinding (`openchoreo.dev/v1alpha1`): what a binding may be and become.
//!
//! An UPDATE is judged on what it changes: each rule looks only at the fields it reads, and
//! passes when the update leaves them as they were. An object that was already invalid can
//! still have its metadata, finalizers and status changed, and be deleted.

use super::referents::{self, ConfigCheck, Declaring, RETAIN, json_type, pinned};
use super::{Check, Context, Request, pass, patch, run_rules};
use crate::admission::{Cause, Decision, Denial, DenyCode, Operation};
use crate::crd::{
    BindingOwner, KIND_CLUSTER_RESOURCE_TYPE, LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_RESOURCE,
    OutputTemplate, ResolvedResourceOutput, ResourceReleaseBinding,
};
use crate::naming;
use crate::schema::Report;

type Rrb<'a> = Request<'a, ResourceReleaseBinding>;

const CONFIGS: &str = "spec.resourceTypeEnvironmentConfigs";

/// The validating rules, in the order they are judged.
pub fn validate(request: &Rrb, ctx: &Context) -> Decision {
    if request.review.is_status_update() {
        return run_rules(
            request,
            ctx,
            &[outputs_set_exactly_one_source, outputs_match_declared],
        );
    }
    if request.operation() == Operation::Delete {
        return run_rules(request, ctx, &[retain_delete_warns]);
    }
    run_rules(
        request,
        ctx,
        &[
            owner_is_immutable,
            environment_is_immutable,
            required_fields_are_set,
            environment_exists,
            resource_belongs_to_project,
            release_belongs_to_owner,
            environment_configs_match_schema,
            one_binding_per_target,
        ],
    )
}

/// Sets the project, resource and environment labels from the spec, as valid label values.
pub fn mutate(request: &Rrb, _ctx: &Context) -> Decision {
    let Some((binding, raw)) = request.to_mutate() else {
        return Decision::default();
    };
    let spec = &binding.spec;
    let wanted = [
        (LABEL_PROJECT, naming::label_value(&spec.owner.project_name)),
        (
            LABEL_RESOURCE,
            naming::label_value(&spec.owner.resource_name),
        ),
        (LABEL_ENVIRONMENT, naming::label_value(&spec.environment)),
    ];
    let wanted: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Decision {
        patch: patch::set_labels(raw, &wanted),
        ..Decision::default()
    }
}

/// The object written when the part of it that `read` picks is new: always on CREATE, on UPDATE
/// only when that part differs from the stored object.
fn changed<'r, T: PartialEq>(
    request: &'r Rrb,
    read: impl Fn(&ResourceReleaseBinding) -> T,
) -> Option<&'r ResourceReleaseBinding> {
    let written = request.written()?;
    match request.update() {
        Some((new, old)) if read(new) == read(old) => None,
        _ => Some(written),
    }
}

fn show_owner(owner: &BindingOwner) -> String {
    format!(
        "project {:?}, resource {:?}",
        owner.project_name, owner.resource_name
    )
}

/// `ResourceReleaseBinding "name"`: how every message starts.
fn who(request: &Rrb) -> String {
    format!("ResourceReleaseBinding {:?}", request.name())
}

/// `binding "name"`: the short form for warnings, which must stay under 120 characters.
fn short(request: &Rrb) -> String {
    format!("binding {:?}", request.name())
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
            "{}: spec.owner is immutable: it was ({}) and is now ({}); \
             to re-target, delete this binding and create a new one",
            who(request),
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
            "{}: spec.environment is immutable: it was {:?} and is now {:?}; \
             to deploy to another environment, create a new binding for it",
            who(request),
            old.spec.environment,
            new.spec.environment,
        ),
    ))
}

/// Rule 3: owner and environment are named; `retainPolicy`, when set, is Delete or Retain.
/// Each field is judged when it is written anew.
pub fn required_fields_are_set(request: &Rrb, _ctx: &Context) -> Check {
    type Read = fn(&ResourceReleaseBinding) -> &str;
    let required: [(&str, Read, &str); 3] = [
        (
            "spec.owner.projectName",
            |b| &b.spec.owner.project_name,
            "the Project that owns the Resource",
        ),
        (
            "spec.owner.resourceName",
            |b| &b.spec.owner.resource_name,
            "the Resource to deploy",
        ),
        (
            "spec.environment",
            |b| &b.spec.environment,
            "the Environment to deploy to",
        ),
    ];
    for (field, read, meaning) in required {
        let written = changed(request, |b| read(b).to_owned());
        if written.is_some_and(|b| read(b).trim().is_empty()) {
            return Err(Denial::invalid(
                field,
                format!("{}: {field} is empty; set it to {meaning}", who(request)),
            ));
        }
    }
    let Some(binding) = changed(request, |b| b.spec.retain_policy.clone()) else {
        return pass();
    };
    match binding.spec.retain_policy.as_deref() {
        None | Some(referents::DELETE | RETAIN) => pass(),
        Some(other) => Err(Denial::invalid(
            "spec.retainPolicy",
            format!(
                "{}: spec.retainPolicy {other:?} is not a retain policy; \
                 use \"Delete\" or \"Retain\", or leave it unset",
                who(request)
            ),
        )),
    }
}

/// Rule 4: on CREATE, the Environment exists in the binding's namespace.
pub fn environment_exists(request: &Rrb, ctx: &Context) -> Check {
    let (Operation::Create, Some(binding)) = (request.operation(), request.object.as_ref()) else {
        return pass();
    };
    let environment = &binding.spec.environment;
    if ctx
        .view
        .environment(request.namespace(), environment)
        .is_some()
    {
        return pass();
    }
    ctx.missing_reference(
        "spec.environment",
        format!(
            "{}: Environment {environment:?} not found; create it or fix spec.environment",
            short(request)
        ),
    )
}

/// Rule 5: the Resource belongs to the binding's project; a mismatch is refused whatever
/// `--references` says, an absent Resource is a missing reference. Judged when the owner is
/// written (on CREATE: an owner change on UPDATE is refused by rule 1 first).
pub fn resource_belongs_to_project(request: &Rrb, ctx: &Context) -> Check {
    let Some(binding) = changed(request, |b| b.spec.owner.clone()) else {
        return pass();
    };
    let owner = &binding.spec.owner;
    let Some(resource) = ctx.view.resource(request.namespace(), &owner.resource_name) else {
        let (ns, name) = (request.namespace(), &owner.resource_name);
        ctx.require_readable(
            &who(request),
            "spec.owner.resourceName",
            "Resource",
            ns,
            name,
        )?;
        return ctx.missing_reference(
            "spec.owner.resourceName",
            format!(
                "{}: Resource {:?} not found; create it or fix spec.owner.resourceName",
                short(request),
                owner.resource_name
            ),
        );
    };
    let actual = &resource.spec.owner.project_name;
    if *actual == owner.project_name {
        return pass();
    }
    Err(Denial::forbidden(
        "spec.owner.projectName",
        format!(
            "{}: spec.owner.projectName is {:?} but Resource {:?} belongs to project {actual:?}; \
             a binding may only deploy a Resource of its own project: set projectName to {actual:?} \
             or bind a Resource of project {:?}",
            who(request),
            owner.project_name,
            owner.resource_name,
            owner.project_name,
        ),
    ))
}

/// Rule 6: a pinned ResourceRelease exists and belongs to the binding's owner. Judged when the
/// pin is written.
pub fn release_belongs_to_owner(request: &Rrb, ctx: &Context) -> Check {
    let Some(binding) = changed(request, |b| pinned(b).map(str::to_owned)) else {
        return pass();
    };
    let Some(name) = pinned(binding) else {
        return pass();
    };
    let Some(release) = ctx.view.resource_release(request.namespace(), name) else {
        let ns = request.namespace();
        ctx.require_readable(
            &who(request),
            "spec.resourceRelease",
            "ResourceRelease",
            ns,
            name,
        )?;
        return ctx.missing_reference(
            "spec.resourceRelease",
            format!(
                "{}: ResourceRelease {name:?} not found; create it or fix spec.resourceRelease",
                short(request)
            ),
        );
    };
    let owner = &binding.spec.owner;
    let theirs = &release.spec.owner;
    if theirs == owner {
        return pass();
    }
    Err(Denial::forbidden(
        "spec.resourceRelease",
        format!(
            "{}: binding owner (project: {:?}, resource: {:?}) does not match ResourceRelease \
             {name:?} owner (project: {:?}, resource: {:?}); pin a release of resource {:?}",
            who(request),
            owner.project_name,
            owner.resource_name,
            theirs.project_name,
            theirs.resource_name,
            owner.resource_name,
        ),
    ))
}

/// Rule 7: `resourceTypeEnvironmentConfigs` is an object that fits the type's schema. Judged
/// when the configs or the pinned release (which decides the schema) are written.
pub fn environment_configs_match_schema(request: &Rrb, ctx: &Context) -> Check {
    let read = |b: &ResourceReleaseBinding| {
        (
            b.spec.resource_type_environment_configs.clone(),
            pinned(b).map(str::to_owned),
        )
    };
    let Some(binding) = changed(request, read) else {
        return pass();
    };
    let configs = binding.spec.resource_type_environment_configs.as_ref();
    if let Some(value) = configs.filter(|v| !v.is_object()) {
        return Err(Denial::invalid(
            CONFIGS,
            format!(
                "{}: {CONFIGS} must be an object of settings, not {}; write it as a map, e.g. {{memory: 512Mi}}",
                who(request),
                json_type(value)
            ),
        ));
    }
    type_path_is_readable(request, ctx, binding)?;
    match referents::check_configs(
        ctx.view,
        ctx.schemas,
        ctx.in_place,
        request.namespace(),
        binding,
    ) {
        ConfigCheck::NoSchema => no_schema(request, binding),
        ConfigCheck::BrokenSchema(declaring, error) => Err(Denial::forbidden(
            CONFIGS,
            format!(
                "{}: the environmentConfigs schema of {} is invalid ({error}), so {CONFIGS} \
                 cannot be checked; ask the platform team to fix {}",
                who(request),
                declaring.describe(),
                declaring.describe(),
            ),
        )),
        ConfigCheck::Checked(_, report) if report.is_empty() => pass(),
        ConfigCheck::Checked(declaring, report) => {
            Err(configs_denial(request, &declaring, &report))
        }
    }
}

fn configs_denial(request: &Rrb, declaring: &Declaring, report: &Report) -> Denial {
    let causes: Vec<Cause> = report
        .violations
        .iter()
        .map(|v| Cause {
            field: v.field(CONFIGS),
            message: v.message.clone(),
        })
        .collect();
    Denial {
        code: DenyCode::Invalid,
        message: format!(
            "{}: {CONFIGS} does not match the environmentConfigs schema of {}: {}; fix these values",
            who(request),
            declaring.describe(),
            report.summary(CONFIGS),
        ),
        causes,
    }
}

/// No schema to check against: nothing to say about empty configs, a warning otherwise.
/// Refuses when the pinned release, the Resource or its type (what the schema is found through)
/// exists but could not be read.
fn type_path_is_readable(
    request: &Rrb,
    ctx: &Context,
    binding: &ResourceReleaseBinding,
) -> Result<(), Denial> {
    let (who, ns) = (who(request), request.namespace());
    if let Some(name) = pinned(binding) {
        ctx.require_readable(&who, "spec.resourceRelease", "ResourceRelease", ns, name)?;
        if ctx.view.resource_release(ns, name).is_some() {
            return Ok(());
        }
    }
    let field = "spec.owner.resourceName";
    let name = &binding.spec.owner.resource_name;
    ctx.require_readable(&who, field, "Resource", ns, name)?;
    let Some(resource) = ctx.view.resource(ns, name) else {
        return Ok(());
    };
    let type_ref = &resource.spec.type_;
    let ns = match type_ref.kind.as_str() {
        KIND_CLUSTER_RESOURCE_TYPE => "",
        _ => ns,
    };
    ctx.require_readable(&who, field, &type_ref.kind, ns, &type_ref.name)
}

fn no_schema(request: &Rrb, binding: &ResourceReleaseBinding) -> Check {
    let configs = binding.spec.resource_type_environment_configs.as_ref();
    if configs
        .and_then(|v| v.as_object())
        .is_none_or(|m| m.is_empty())
    {
        return pass();
    }
    Ok(vec![format!(
        "{}: no environmentConfigs schema found; {CONFIGS} not checked",
        short(request)
    )])
}

/// Rule 8: one binding per (project, resource, environment) in a namespace. A binding that is
/// being deleted no longer occupies its target.
pub fn one_binding_per_target(request: &Rrb, ctx: &Context) -> Check {
    let (Operation::Create, Some(binding)) = (request.operation(), request.object.as_ref()) else {
        return pass();
    };
    let spec = &binding.spec;
    let existing = ctx
        .view
        .release_bindings_to(
            request.namespace(),
            &spec.owner.resource_name,
            &spec.environment,
        )
        .into_iter()
        .find(|other| {
            other.metadata.name.as_deref() != Some(request.name())
                && other.metadata.deletion_timestamp.is_none()
                && other.spec.owner == spec.owner
                && other.spec.environment == spec.environment
        });
    let Some(existing) = existing else {
        return pass();
    };
    Err(Denial::forbidden(
        "spec.environment",
        format!(
            "{}: ResourceReleaseBinding {:?} already binds resource {:?} of project {:?} to \
             environment {:?}; edit that binding instead of creating a second one",
            who(request),
            existing.metadata.name.as_deref().unwrap_or_default(),
            spec.owner.resource_name,
            spec.owner.project_name,
            spec.environment,
        ),
    ))
}

/// The `status.outputs` entries a write publishes anew, with their index: every one on CREATE;
/// on UPDATE those not published exactly so before, so an entry that was already there (from
/// before a rule existed) never blocks a write that adds or changes another.
fn written_outputs<'r>(request: &'r Rrb) -> Vec<(usize, &'r ResolvedResourceOutput)> {
    fn outputs(binding: &ResourceReleaseBinding) -> &[ResolvedResourceOutput] {
        binding.status.as_ref().map_or(&[], |s| &s.outputs)
    }
    let Some(written) = request.written() else {
        return Vec::new();
    };
    let before = request.update().map_or(&[][..], |(_, old)| outputs(old));
    outputs(written)
        .iter()
        .enumerate()
        .filter(|(_, output)| !before.contains(output))
        .collect()
}

/// The source kinds an output may have.
const SOURCES: [&str; 3] = ["value", "secretKeyRef", "configMapKeyRef"];

/// Which of value / secretKeyRef / configMapKeyRef a published output sets.
fn sources_of(output: &ResolvedResourceOutput) -> Vec<&'static str> {
    let set = [
        output.value.is_some(),
        output.secret_key_ref.is_some(),
        output.config_map_key_ref.is_some(),
    ];
    SOURCES
        .iter()
        .zip(set)
        .filter_map(|(name, set)| set.then_some(*name))
        .collect()
}

/// The source kind an output template declares.
fn declared_source(template: &OutputTemplate) -> Option<&'static str> {
    let set = [
        template.value.is_some(),
        template.secret_key_ref.is_some(),
        template.config_map_key_ref.is_some(),
    ];
    SOURCES
        .iter()
        .zip(set)
        .find_map(|(name, set)| set.then_some(*name))
}

/// Rule 9a: every `status.outputs` entry sets exactly one of its three sources.
pub fn outputs_set_exactly_one_source(request: &Rrb, _ctx: &Context) -> Check {
    for (index, output) in written_outputs(request) {
        let set = sources_of(output).len();
        if set != 1 {
            return Err(Denial::invalid(
                &format!("status.outputs[{index}]"),
                format!(
                    "{}: status.outputs[{index}] ({:?}) sets {set} of value, secretKeyRef and \
                     configMapKeyRef; set exactly one",
                    who(request),
                    output.name
                ),
            ));
        }
    }
    pass()
}

/// Rule 9b: each output corresponds to one the type declares, with the declared source kind.
/// A secret published as a literal is a 403: sensitive material never appears in status.
pub fn outputs_match_declared(request: &Rrb, ctx: &Context) -> Check {
    let outputs = written_outputs(request);
    let Some(binding) = request.written().filter(|_| !outputs.is_empty()) else {
        return pass();
    };
    let Some(declaring) = Declaring::find(ctx.view, request.namespace(), binding) else {
        return pass();
    };
    for (index, output) in outputs {
        check_output(request, &declaring, index, output)?;
    }
    pass()
}

fn check_output(
    request: &Rrb,
    declaring: &Declaring,
    index: usize,
    output: &ResolvedResourceOutput,
) -> Check {
    let field = format!("status.outputs[{index}]");
    let name = &output.name;
    let Some(template) = declaring.template().output(name) else {
        let declared: Vec<String> = declaring
            .template()
            .outputs
            .iter()
            .map(|o| format!("{:?}", o.name))
            .collect();
        let declared = match declared.is_empty() {
            true => "none".to_string(),
            false => declared.join(", "),
        };
        return Err(Denial::invalid(
            &field,
            format!(
                "{}: {field} ({name:?}) is not an output {} declares (declared: {declared}); \
                 publish only declared outputs",
                who(request),
                declaring.describe(),
            ),
        ));
    };
    let sources = sources_of(output);
    let (Some(wanted), [published]) = (declared_source(template), sources.as_slice()) else {
        return pass();
    };
    if wanted == *published {
        return pass();
    }
    if wanted == "secretKeyRef" && *published == "value" {
        return Err(Denial::forbidden(
            &field,
            format!(
                "{}: {field} ({name:?}) is a literal value, but {} declares it a \
                 secretKeyRef output: sensitive material never appears in status.outputs; \
                 publish a secretKeyRef instead",
                who(request),
                declaring.describe(),
            ),
        ));
    }
    Err(Denial::invalid(
        &field,
        format!(
            "{}: {field} ({name:?}) is published as a {published}, but {} declares it a \
             {wanted} output; publish it as {wanted}",
            who(request),
            declaring.describe(),
        ),
    ))
}

/// Rule 10: deleting a binding whose effective policy is Retain is allowed, with a warning that
/// it will be held. The policy is the one the loop applies.
pub fn retain_delete_warns(request: &Rrb, ctx: &Context) -> Check {
    let (Operation::Delete, Some(binding)) = (request.operation(), request.old_object.as_ref())
    else {
        return pass();
    };
    if referents::effective_retain_policy(ctx.view, request.namespace(), binding) != RETAIN {
        return pass();
    }
    let held =
        "stays Terminating (Finalizing/RetainHold) with data-plane state until retainPolicy=Delete";
    let named = format!("{} {held}", request.name());
    // Warnings are cut at MAX_WARNING_CHARS: the way out matters more than the name.
    match named.chars().count() <= crate::admission::MAX_WARNING_CHARS {
        true => Ok(vec![named]),
        false => Ok(vec![format!("the binding {held}")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::AdmissionRequest;
    use crate::cluster::files::{decode, parse_documents};
    use crate::cluster::{Stores, Writers, put};
    use crate::policy::{References, Settings};
    use crate::schema::{InPlace, SchemaCache};
    use serde_json::{Value, json};

    /// The doclet world: two projects, two environments, a postgres type (and a cluster-wide
    /// one, and a broken one), Resources of each, a release of doclet-postgres, one binding.
    const WORLD: &str = r##"
kind: Environment
metadata: {name: development, namespace: ns}
spec: {}
---
kind: Environment
metadata: {name: production, namespace: ns}
spec: {}
---
kind: ResourceType
metadata: {name: postgres, namespace: ns, uid: t1, resourceVersion: "1"}
spec:
  environmentConfigs:
    openAPIV3Schema:
      type: object
      additionalProperties: false
      properties:
        memory: {type: string, pattern: "^[0-9]+(Mi|Gi)$", default: 256Mi}
        tier: {type: string, enum: [standard, premium], default: standard}
        storage: {$ref: "#/$defs/storage"}
      $defs:
        storage:
          type: object
          required: [size]
          properties:
            size: {type: string, pattern: "^[0-9]+Gi$"}
  outputs:
    - {name: host, value: "h"}
    - name: password
      secretKeyRef: {name: s, key: password}
---
kind: ResourceType
metadata: {name: broken, namespace: ns, uid: t2, resourceVersion: "1"}
spec:
  environmentConfigs:
    openAPIV3Schema: {type: 12}
---
kind: ResourceType
metadata: {name: schemaless, namespace: ns, uid: t3, resourceVersion: "1"}
spec: {}
---
kind: ResourceType
metadata: {name: keeper, namespace: ns, uid: t4, resourceVersion: "1"}
spec:
  retainPolicy: Retain
  outputs:
    - {name: endpoint, value: "e"}
    - name: settings
      configMapKeyRef: {name: c, key: k}
---
kind: Resource
metadata: {name: kept, namespace: ns}
spec: {owner: {projectName: doclet}, type: {kind: ResourceType, name: keeper}}
---
kind: ClusterResourceType
metadata: {name: bucket, uid: c1, resourceVersion: "1"}
spec:
  environmentConfigs:
    openAPIV3Schema:
      type: object
      properties:
        versioned: {type: boolean}
---
kind: Resource
metadata: {name: pg, namespace: ns}
spec: {owner: {projectName: doclet}, type: {kind: ResourceType, name: postgres}}
---
kind: Resource
metadata: {name: billing-db, namespace: ns}
spec: {owner: {projectName: billing}, type: {kind: ResourceType, name: postgres}}
---
kind: Resource
metadata: {name: odd, namespace: ns}
spec: {owner: {projectName: doclet}, type: {kind: ResourceType, name: broken}}
---
kind: Resource
metadata: {name: plain, namespace: ns}
spec: {owner: {projectName: doclet}, type: {kind: ResourceType, name: schemaless}}
---
kind: Resource
metadata: {name: files, namespace: ns}
spec: {owner: {projectName: doclet}, type: {kind: ClusterResourceType, name: bucket}}
---
kind: ResourceRelease
metadata: {name: pg-r1, namespace: ns, uid: r1, resourceVersion: "1"}
spec:
  owner: {projectName: doclet, resourceName: pg}
  resourceType:
    name: postgres
    spec:
      retainPolicy: Retain
      environmentConfigs:
        openAPIV3Schema:
          type: object
          properties:
            memory: {type: string, pattern: "^[0-9]+Gi$"}
      outputs:
        - name: password
          secretKeyRef: {name: s, key: password}
---
kind: ResourceRelease
metadata: {name: billing-db-r1, namespace: ns, uid: r2, resourceVersion: "1"}
spec:
  owner: {projectName: billing, resourceName: billing-db}
  resourceType: {name: postgres}
---
kind: ResourceReleaseBinding
metadata: {name: pg-development, namespace: ns}
spec:
  owner: {projectName: doclet, resourceName: pg}
  environment: development
"##;

    fn world() -> Stores {
        let (mut w, stores) = Writers::new(0);
        for doc in parse_documents(WORLD, false).unwrap() {
            let kind = doc["kind"].as_str().unwrap().to_string();
            match kind.as_str() {
                "Environment" => put(&mut w.environments, decode(doc).unwrap()),
                "ResourceType" => put(&mut w.resource_types, decode(doc).unwrap()),
                "ClusterResourceType" => put(&mut w.cluster_resource_types, decode(doc).unwrap()),
                "Resource" => put(&mut w.resources, decode(doc).unwrap()),
                "ResourceRelease" => put(&mut w.resource_releases, decode(doc).unwrap()),
                "ResourceReleaseBinding" => put(&mut w.release_bindings, decode(doc).unwrap()),
                other => panic!("fixture kind {other}"),
            }
        }
        stores
    }

    /// A binding `name` in namespace ns; `spec` is merged over a valid pg/production spec.
    fn binding(name: &str, spec: Value) -> Value {
        let mut full = json!({"owner": {"projectName": "doclet", "resourceName": "pg"},
                              "environment": "production"});
        if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                full.insert(k.clone(), v.clone());
            }
        }
        json!({"apiVersion": "openchoreo.dev/v1alpha1", "kind": "ResourceReleaseBinding",
               "metadata": {"name": name, "namespace": "ns"}, "spec": full})
    }

    fn review(op: &str, object: Value, old: Value, sub: Option<&str>) -> AdmissionRequest {
        let name = object
            .pointer("/metadata/name")
            .or(old.pointer("/metadata/name"))
            .cloned()
            .unwrap_or_default();
        serde_json::from_value(json!({
            "uid": "u", "operation": op, "name": name, "namespace": "ns", "subResource": sub,
            "kind": {"group": "openchoreo.dev", "version": "v1alpha1", "kind": "ResourceReleaseBinding"},
            "object": object, "oldObject": old,
        }))
        .unwrap()
    }

    /// Runs `f` with the doclet world and `references`.
    fn in_world<R>(references: References, f: impl FnOnce(&Context) -> R) -> R {
        let stores = world();
        let settings = Settings {
            references,
            ..Settings::default()
        };
        let schemas = SchemaCache::new();
        f(&Context {
            view: &stores,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        })
    }

    fn judge_with(review: &AdmissionRequest, references: References) -> Decision {
        in_world(references, |ctx| {
            validate(&Request::decode(review).unwrap(), ctx)
        })
    }

    fn create(spec: Value) -> Decision {
        judge_with(
            &review("CREATE", binding("b", spec), Value::Null, None),
            References::Warn,
        )
    }

    fn update(old: Value, new: Value) -> Decision {
        let r = review("UPDATE", binding("b", new), binding("b", old), None);
        judge_with(&r, References::Warn)
    }

    /// Denied with `code`, the message naming the binding and containing `says`, cause `field`.
    #[track_caller]
    fn assert_denied(decision: &Decision, code: DenyCode, field: &str, says: &str) {
        let denial = decision.denial.as_ref().expect("a denial");
        assert_eq!(denial.code, code, "{denial:?}");
        assert!(denial.causes.iter().any(|c| c.field == field), "{denial:?}");
        assert!(denial.message.contains(says), "{}", denial.message);
        assert!(
            denial.message.starts_with("ResourceReleaseBinding \"b\"")
                || denial.message.starts_with("binding \"b\""),
            "{}",
            denial.message
        );
    }

    #[track_caller]
    fn assert_clean(decision: &Decision) {
        assert!(decision.allowed(), "{:?}", decision.denial);
        assert!(decision.warnings.is_empty(), "{:?}", decision.warnings);
    }

    #[test]
    fn rule1_owner_is_immutable() {
        let old = json!({});
        assert_clean(&update(old.clone(), json!({"retainPolicy": "Retain"})));
        let moved = json!({"owner": {"projectName": "billing", "resourceName": "billing-db"}});
        let d = update(old, moved);
        assert_denied(
            &d,
            DenyCode::Invalid,
            "spec.owner",
            "it was (project \"doclet\", resource \"pg\") and is now (project \"billing\"",
        );
    }

    #[test]
    fn rule2_environment_is_immutable() {
        let d = update(json!({}), json!({"environment": "development"}));
        assert_denied(
            &d,
            DenyCode::Invalid,
            "spec.environment",
            "it was \"production\" and is now \"development\"",
        );
    }

    #[test]
    fn rule3_required_fields_and_retain_policy() {
        let cases = [
            (
                json!({"owner": {"projectName": "", "resourceName": "pg"}}),
                "spec.owner.projectName",
            ),
            (
                json!({"owner": {"projectName": "doclet", "resourceName": " "}}),
                "spec.owner.resourceName",
            ),
            (json!({"environment": ""}), "spec.environment"),
            (json!({"retainPolicy": "Keep"}), "spec.retainPolicy"),
        ];
        for (spec, field) in cases {
            assert_denied(&create(spec), DenyCode::Invalid, field, field);
        }
        for policy in ["Delete", "Retain"] {
            assert_clean(&create(json!({"retainPolicy": policy})));
        }
        let d = update(json!({}), json!({"retainPolicy": "Forever"}));
        assert_denied(
            &d,
            DenyCode::Invalid,
            "spec.retainPolicy",
            "use \"Delete\" or \"Retain\"",
        );
    }

    #[test]
    fn rule4_environment_must_exist_on_create() {
        assert_clean(&create(json!({})));
        let d = create(json!({"environment": "staging"}));
        assert!(d.allowed());
        assert_eq!(
            d.warnings,
            ["binding \"b\": Environment \"staging\" not found; create it or fix spec.environment"]
        );
        let r = review(
            "CREATE",
            binding("b", json!({"environment": "staging"})),
            Value::Null,
            None,
        );
        let strict = judge_with(&r, References::Strict);
        assert_denied(
            &strict,
            DenyCode::Invalid,
            "spec.environment",
            "--references strict",
        );
    }

    #[test]
    fn rule5_resource_belongs_to_the_binding_project() {
        let stolen = json!({"owner": {"projectName": "doclet", "resourceName": "billing-db"}});
        let d = create(stolen.clone());
        assert_denied(
            &d,
            DenyCode::Forbidden,
            "spec.owner.projectName",
            "Resource \"billing-db\" belongs to project \"billing\"",
        );
        let r = review("CREATE", binding("b", stolen), Value::Null, None);
        assert_eq!(
            judge_with(&r, References::Strict).denial.unwrap().code,
            DenyCode::Forbidden
        );
        // An UPDATE is judged on what it changes: the Resource changed hands after the
        // binding was made, and the binding's retainPolicy may still be set.
        let d = update(
            json!({"owner": {"projectName": "doclet", "resourceName": "billing-db"}}),
            json!({"owner": {"projectName": "doclet", "resourceName": "billing-db"}, "retainPolicy": "Retain"}),
        );
        assert_clean(&d);
        let absent = create(json!({"owner": {"projectName": "doclet", "resourceName": "ghost"}}));
        assert!(absent.allowed());
        assert_eq!(
            absent.warnings,
            [
                "binding \"b\": Resource \"ghost\" not found; create it or fix spec.owner.resourceName"
            ]
        );
        // A metadata-only update (finalizers) is never blocked by references.
        let ghost = json!({"owner": {"projectName": "doclet", "resourceName": "ghost"}});
        let r = review(
            "UPDATE",
            binding("b", ghost.clone()),
            binding("b", ghost),
            None,
        );
        assert_clean(&judge_with(&r, References::Strict));
    }

    #[test]
    fn rule6_pinned_release_belongs_to_the_owner() {
        assert_clean(&create(json!({"resourceRelease": "pg-r1"})));
        let d = create(json!({"resourceRelease": "billing-db-r1"}));
        assert_denied(
            &d,
            DenyCode::Forbidden,
            "spec.resourceRelease",
            "binding owner (project: \"doclet\", resource: \"pg\") does not match ResourceRelease \"billing-db-r1\" owner (project: \"billing\", resource: \"billing-db\")",
        );
        let d = update(
            json!({"resourceRelease": "pg-r1"}),
            json!({"resourceRelease": "billing-db-r1"}),
        );
        assert_eq!(d.denial.unwrap().code, DenyCode::Forbidden);
        let d = create(json!({"resourceRelease": "pg-r9"}));
        assert!(d.allowed());
        assert!(
            d.warnings[0].contains("ResourceRelease \"pg-r9\" not found"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn rule7_environment_configs_match_the_schema() {
        assert_clean(&create(
            json!({"resourceTypeEnvironmentConfigs": {"memory": "1Gi", "storage": {"size": "5Gi"}}}),
        ));
        let d = create(json!({"resourceTypeEnvironmentConfigs": "big"}));
        assert_denied(
            &d,
            DenyCode::Invalid,
            CONFIGS,
            "must be an object of settings, not a string",
        );
        let bad = json!({"resourceTypeEnvironmentConfigs": {"memory": "lots", "tier": "gold", "storage": {}, "extra": 1}});
        let denial = create(bad.clone()).denial.unwrap();
        assert_eq!(denial.code, DenyCode::Invalid);
        let fields: Vec<&str> = denial.causes.iter().map(|c| c.field.as_str()).collect();
        for expected in [
            "spec.resourceTypeEnvironmentConfigs.memory",
            "spec.resourceTypeEnvironmentConfigs.tier",
            "spec.resourceTypeEnvironmentConfigs.storage.size",
            "spec.resourceTypeEnvironmentConfigs.extra",
        ] {
            assert!(fields.contains(&expected), "{fields:?}");
        }
        assert!(fields.len() >= 4, "every violation is a cause: {fields:?}");
        assert!(
            denial.message.contains("ResourceType \"postgres\""),
            "{}",
            denial.message
        );
        // Unchanged configs on UPDATE are not re-judged.
        assert!(update(bad.clone(), bad).allowed());
        // Pinned release: its snapshot wins over the live type.
        let d = create(
            json!({"resourceRelease": "pg-r1", "resourceTypeEnvironmentConfigs": {"memory": "512Mi"}}),
        );
        assert_denied(
            &d,
            DenyCode::Invalid,
            "spec.resourceTypeEnvironmentConfigs.memory",
            "ResourceRelease \"pg-r1\"",
        );
        // Changing the pinned release re-judges the configs.
        let d = update(
            json!({"resourceTypeEnvironmentConfigs": {"memory": "512Mi"}}),
            json!({"resourceTypeEnvironmentConfigs": {"memory": "512Mi"}, "resourceRelease": "pg-r1"}),
        );
        assert!(!d.allowed());
        // A ClusterResourceType.
        let files = json!({"owner": {"projectName": "doclet", "resourceName": "files"}});
        let mut spec = files.clone();
        spec["resourceTypeEnvironmentConfigs"] = json!({"versioned": "yes"});
        assert_denied(
            &create(spec),
            DenyCode::Invalid,
            "spec.resourceTypeEnvironmentConfigs.versioned",
            "ClusterResourceType \"bucket\"",
        );
        // A broken schema names the type; no schema warns.
        let odd = json!({"owner": {"projectName": "doclet", "resourceName": "odd"}, "resourceTypeEnvironmentConfigs": {"a": 1}});
        assert_denied(
            &create(odd),
            DenyCode::Forbidden,
            CONFIGS,
            "schema of ResourceType \"broken\" is invalid",
        );
        let plain = json!({"owner": {"projectName": "doclet", "resourceName": "plain"}, "resourceTypeEnvironmentConfigs": {"a": 1}});
        let d = create(plain);
        assert!(d.allowed());
        assert!(d.warnings[0].contains("no environmentConfigs schema found"));
    }

    #[test]
    fn rule7_schema_is_compiled_once_per_identity() {
        let stores = world();
        let settings = Settings::default();
        let schemas = SchemaCache::new();
        let ctx = Context {
            view: &stores,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        };
        for memory in ["1Gi", "2Gi", "nope"] {
            let r = review(
                "CREATE",
                binding(
                    "b",
                    json!({"resourceTypeEnvironmentConfigs": {"memory": memory}}),
                ),
                Value::Null,
                None,
            );
            let _ = validate(&Request::decode(&r).unwrap(), &ctx);
        }
        assert_eq!(schemas.len(), 1);
    }

    #[test]
    fn rule7_judged_in_place_defers_until_the_schema_is_compiled_then_gives_the_same_answer() {
        let stores = world();
        let settings = Settings::default();
        let schemas = SchemaCache::new();
        let judge = |in_place: Option<&InPlace>| {
            let ctx = Context {
                view: &stores,
                settings: &settings,
                schemas: &schemas,
                in_place,
            };
            let spec = json!({"resourceTypeEnvironmentConfigs": {"memory": "nope"}});
            let r = review("CREATE", binding("b", spec), Value::Null, None);
            validate(&Request::decode(&r).unwrap(), &ctx)
        };
        let first = InPlace::default();
        judge(Some(&first));
        assert!(
            first.deferred(),
            "an uncompiled schema is not compiled in place"
        );
        let whole = judge(None);
        assert!(!whole.allowed());
        let again = InPlace::default();
        let in_place = judge(Some(&again));
        assert!(
            !again.deferred(),
            "a compiled, small schema is checked in place"
        );
        assert_eq!(in_place.denial, whole.denial);
    }

    #[test]
    fn rule8_one_binding_per_target() {
        let d = create(json!({"environment": "development"}));
        assert_denied(
            &d,
            DenyCode::Forbidden,
            "spec.environment",
            "ResourceReleaseBinding \"pg-development\" already binds",
        );
        let same = review(
            "CREATE",
            binding("pg-development", json!({"environment": "development"})),
            Value::Null,
            None,
        );
        assert!(judge_with(&same, References::Warn).allowed());
    }

    fn status_update(outputs: Value, spec: Value) -> Decision {
        let mut new = binding("b", spec.clone());
        new["status"] = json!({"outputs": outputs});
        judge_with(
            &review("UPDATE", new, binding("b", spec), Some("status")),
            References::Warn,
        )
    }

    #[test]
    fn rule9_status_outputs() {
        let good = json!([{"name": "host", "value": "h"}, {"name": "password", "secretKeyRef": {"name": "s", "key": "k"}}]);
        assert_clean(&status_update(good, json!({})));
        let two = json!([{"name": "host", "value": "h"}, {"name": "x", "value": "v", "configMapKeyRef": {"name": "c", "key": "k"}}]);
        assert_denied(
            &status_update(two, json!({})),
            DenyCode::Invalid,
            "status.outputs[1]",
            "sets 2 of value",
        );
        let none = json!([{"name": "x"}]);
        assert_denied(
            &status_update(none, json!({})),
            DenyCode::Invalid,
            "status.outputs[0]",
            "sets 0 of value",
        );
        let leak =
            json!([{"name": "host", "value": "h"}, {"name": "password", "value": "hunter2"}]);
        assert_denied(
            &status_update(leak.clone(), json!({})),
            DenyCode::Forbidden,
            "status.outputs[1]",
            "ResourceType \"postgres\" declares it a secretKeyRef",
        );
        // The release's snapshot declares only the password.
        let leak = json!([{"name": "password", "value": "hunter2"}]);
        assert_denied(
            &status_update(leak, json!({"resourceRelease": "pg-r1"})),
            DenyCode::Forbidden,
            "status.outputs[0]",
            "ResourceRelease \"pg-r1\"",
        );
        // An entry published before (a legacy literal password) does not block adding another;
        // publishing it anew does.
        let mut old = binding("b", json!({}));
        old["status"] = json!({"outputs": [{"name": "password", "value": "hunter2"}]});
        let mut new = old.clone();
        new["status"]["outputs"] =
            json!([{"name": "password", "value": "hunter2"}, {"name": "host", "value": "h"}]);
        let added = review("UPDATE", new.clone(), old.clone(), Some("status"));
        assert_clean(&judge_with(&added, References::Warn));
        new["status"]["outputs"][0]["value"] = json!("hunter3");
        let changed = review("UPDATE", new, old, Some("status"));
        assert_denied(
            &judge_with(&changed, References::Warn),
            DenyCode::Forbidden,
            "status.outputs[0]",
            "declares it a secretKeyRef",
        );
        // Spec rules are skipped: a status update of a binding whose Environment is gone is fine.
        let gone = json!({"environment": "staging", "owner": {"projectName": "doclet", "resourceName": "ghost"}});
        assert_clean(&status_update(json!([]), gone));
    }

    /// An object stored with a field of the wrong type (a CRD looser than ours) can still have
    /// its labels changed; a spec or status change still has to be readable.
    #[test]
    fn an_unreadable_binding_can_be_labelled_but_not_respecced_nor_restatused() {
        let judge_with = |review: &AdmissionRequest, references| {
            in_world(references, |ctx| {
                crate::policy::decide(crate::policy::Phase::Validate, review, ctx)
            })
        };
        let mut old = binding("b", json!({}));
        old["spec"]["environment"] = json!({"name": "development"});
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({"team": "a"});
        let decision = judge_with(
            &review("UPDATE", labelled, old.clone(), None),
            References::Warn,
        );
        assert!(decision.allowed(), "{decision:?}");
        assert!(
            decision.warnings[0].contains("is not judged"),
            "{decision:?}"
        );
        let mut status = old.clone();
        status["status"] = json!({"outputs": [{"name": "password", "value": "hunter2"}]});
        let status = review("UPDATE", status, old.clone(), Some("status"));
        let decision = judge_with(&status, References::Warn);
        assert!(
            !decision.allowed(),
            "a status write is still judged: {decision:?}"
        );
        let mut respecced = old.clone();
        respecced["spec"]["environment"] = json!({"name": "production"});
        let decision = judge_with(&review("UPDATE", respecced, old, None), References::Warn);
        assert_eq!(decision.denial.map(|d| d.code), Some(DenyCode::BadRequest));
    }

    fn delete(spec: Value) -> Decision {
        judge_with(
            &review("DELETE", Value::Null, binding("b", spec), None),
            References::Warn,
        )
    }

    #[test]
    fn rule10_deleting_a_retained_binding_warns() {
        assert_clean(&delete(json!({})));
        assert_clean(&delete(
            json!({"retainPolicy": "Delete", "resourceRelease": "pg-r1"}),
        ));
        let kept = json!({"owner": {"projectName": "doclet", "resourceName": "kept"}});
        let mut kept_delete = kept.clone();
        kept_delete["retainPolicy"] = json!("Delete");
        assert_clean(&delete(kept_delete));
        for spec in [
            json!({"retainPolicy": "Retain"}),
            json!({"resourceRelease": "pg-r1"}),
            // Unpinned: the live type's policy applies, as it does for the loop.
            kept,
        ] {
            let d = delete(spec);
            assert!(d.allowed());
            assert_eq!(
                d.warnings,
                [
                    "b stays Terminating (Finalizing/RetainHold) with data-plane state until retainPolicy=Delete"
                ]
            );
        }
        let long = "payments-postgres-production-eu-west-1";
        let old = binding(long, json!({"retainPolicy": "Retain"}));
        let d = judge_with(&review("DELETE", Value::Null, old, None), References::Warn);
        assert_eq!(
            d.warnings,
            [
                "the binding stays Terminating (Finalizing/RetainHold) with data-plane state until retainPolicy=Delete"
            ],
            "a long name would push the way out past the cut"
        );
    }

    #[test]
    fn mutate_labels_only_spec_writes() {
        let stores = world();
        let settings = Settings::default();
        let schemas = SchemaCache::new();
        let ctx = Context {
            view: &stores,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        };
        let run = |r: &AdmissionRequest| mutate(&Request::decode(r).unwrap(), &ctx);
        let created = run(&review(
            "CREATE",
            binding("b", json!({})),
            Value::Null,
            None,
        ));
        assert_eq!(created.patch.len(), 1);
        let mut labelled = binding("b", json!({}));
        labelled["metadata"]["labels"] =
            json!({LABEL_PROJECT: "doclet", LABEL_RESOURCE: "pg", LABEL_ENVIRONMENT: "production"});
        assert!(
            run(&review("UPDATE", labelled.clone(), labelled, None))
                .patch
                .is_empty()
        );
        let bare = binding("b", json!({}));
        assert!(
            run(&review(
                "UPDATE",
                bare.clone(),
                bare.clone(),
                Some("status")
            ))
            .patch
            .is_empty()
        );
        assert!(
            run(&review("DELETE", Value::Null, bare, None))
                .patch
                .is_empty()
        );
    }
    /// `binding("b", spec)` marked as being deleted, with our finalizer.
    fn terminating(spec: Value) -> Value {
        let mut b = binding("b", spec);
        b["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:00:00Z");
        b["metadata"]["finalizers"] = json!(["openchoreo.dev/resourcereleasebinding-cleanup"]);
        b
    }

    /// Through `policy::decide`, as the server judges: the generic update guards apply.
    fn decide_with(review: &AdmissionRequest, references: References) -> Decision {
        in_world(references, |ctx| {
            crate::policy::decide(crate::policy::Phase::Validate, review, ctx)
        })
    }

    #[test]
    fn an_update_is_judged_on_what_it_changes() {
        // Legacy: created while the webhook was down, with a blank resource name and a
        // Resource of another project.
        let legacy =
            json!({"owner": {"projectName": "doclet", "resourceName": ""}, "environment": "gone"});
        let old = terminating(legacy.clone());
        let mut released = old.clone();
        released["metadata"]["finalizers"] = json!([]);
        for references in [References::Warn, References::Strict] {
            let r = review("UPDATE", released.clone(), old.clone(), None);
            assert_clean(&decide_with(&r, references));
        }
        // Labels, annotations and owner references on a legacy object.
        let stolen = json!({"owner": {"projectName": "doclet", "resourceName": "billing-db"}});
        let mut labelled = binding("b", stolen.clone());
        labelled["metadata"]["labels"] = json!({"team": "a"});
        labelled["metadata"]["annotations"] = json!({"note": "x"});
        let r = review("UPDATE", labelled, binding("b", stolen.clone()), None);
        assert_clean(&decide_with(&r, References::Strict));
        // Status of a legacy object.
        let mut status = binding("b", stolen.clone());
        status["status"] = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "x", "message": ""}]});
        let r = review("UPDATE", status, binding("b", stolen), Some("status"));
        assert_clean(&decide_with(&r, References::Strict));
        // A DELETE of an object that cannot even be read is not refused.
        let mut unreadable = binding("b", json!({}));
        unreadable["spec"]["owner"] = json!("doclet/pg");
        let r = review("DELETE", Value::Null, unreadable, None);
        assert!(decide_with(&r, References::Strict).allowed());
        // What the update does change is still judged: an empty name written anew.
        let d = update(json!({}), json!({"retainPolicy": "Sometimes"}));
        assert!(!d.allowed());
    }

    #[test]
    fn the_retain_flip_always_works() {
        // Resource, Environment and release gone, under strict; and a Resource now of
        // another project.
        let gone = json!({"owner": {"projectName": "doclet", "resourceName": "ghost"},
                          "environment": "staging", "resourceRelease": "ghost-r1", "retainPolicy": "Retain"});
        let moved = json!({"owner": {"projectName": "doclet", "resourceName": "billing-db"}, "retainPolicy": "Retain"});
        for spec in [gone, moved] {
            let mut flipped = spec.clone();
            flipped["retainPolicy"] = json!("Delete");
            let r = review("UPDATE", terminating(flipped), terminating(spec), None);
            assert_clean(&decide_with(&r, References::Strict));
        }
    }

    #[test]
    fn a_terminating_binding_no_longer_occupies_its_target() {
        let stores = world();
        // pg-development exists and is live: a second binding is refused (rule8 test); when it
        // is being deleted, a new one is allowed.
        let mut dying = binding("pg-development", json!({"environment": "development"}));
        dying["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:00:00Z");
        let (mut writers, view) = Writers::new(0);
        for e in stores.environments.state() {
            put(&mut writers.environments, (*e).clone());
        }
        for r in stores.resources.state() {
            put(&mut writers.resources, (*r).clone());
        }
        put(&mut writers.release_bindings, decode(dying).unwrap());
        let settings = Settings::default();
        let schemas = SchemaCache::new();
        let ctx = Context {
            view: &view,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        };
        let r = review(
            "CREATE",
            binding("pg-development-2", json!({"environment": "development"})),
            Value::Null,
            None,
        );
        assert_clean(&validate(&Request::decode(&r).unwrap(), &ctx));
    }

    #[test]
    fn outputs_match_what_the_type_declares() {
        let kept = json!({"owner": {"projectName": "doclet", "resourceName": "kept"}});
        let good = json!([{"name": "endpoint", "value": "e"}, {"name": "settings", "configMapKeyRef": {"name": "c", "key": "k"}}]);
        assert_clean(&status_update(good, kept.clone()));
        let undeclared = json!([{"name": "password", "value": "p"}]);
        assert_denied(
            &status_update(undeclared, kept.clone()),
            DenyCode::Invalid,
            "status.outputs[0]",
            "is not an output ResourceType \"keeper\" declares (declared: \"endpoint\", \"settings\")",
        );
        let wrong_kind = json!([{"name": "settings", "value": "inline"}]);
        assert_denied(
            &status_update(wrong_kind, kept.clone()),
            DenyCode::Invalid,
            "status.outputs[0]",
            "is published as a value, but ResourceType \"keeper\" declares it a configMapKeyRef output",
        );
        let as_secret = json!([{"name": "endpoint", "secretKeyRef": {"name": "s", "key": "k"}}]);
        assert_denied(
            &status_update(as_secret, kept),
            DenyCode::Invalid,
            "status.outputs[0]",
            "declares it a value output",
        );
    }

    #[test]
    fn long_names_become_valid_label_values() {
        let long = "r".repeat(80);
        let r = review(
            "CREATE",
            binding(
                "b",
                json!({"owner": {"projectName": "doclet", "resourceName": long}}),
            ),
            Value::Null,
            None,
        );
        let d = in_world(References::Warn, |ctx| {
            mutate(&Request::decode(&r).unwrap(), ctx)
        });
        let mut object = r.object.clone().unwrap();
        json_patch::patch(&mut object, &d.patch).unwrap();
        let label = object["metadata"]["labels"][LABEL_RESOURCE]
            .as_str()
            .unwrap();
        assert_eq!(label, crate::naming::label_value(&long));
        assert!(label.len() <= 63, "{label}");
    }
}
