//! OpenChoreo bookkeeping: the ResourceReleaseBinding finalizer, its Synced/Ready conditions
//! recomputed whenever a referent changes, RetainHold on deletion, and bindings deleted with
//! their Resource.

use super::conditions::{
    self, BindingView, Facts, binding_conditions, effective_retain, finalizing, merge, same,
};
use super::{Ctx, Error, on_error};
use crate::crd::*;
use crate::schema::EnvConfigSchema;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

type Rrb = ResourceReleaseBinding;

pub async fn run(ctx: Arc<Ctx>) {
    let c = ctx.client.clone();
    let cfg = watcher::Config::default;
    let controller = Controller::new(Api::<Rrb>::all(c.clone()), cfg());
    let store = controller.store();
    let (s1, s2, s3, s4, s5, s6) = (
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        store,
    );
    controller
        .watches(Api::<Environment>::all(c.clone()), cfg(), move |o| {
            affected(&s1, &o, |b| b.spec.environment == o.name_any())
        })
        .watches(Api::<Resource>::all(c.clone()), cfg(), move |o| {
            affected(&s2, &o, |b| b.spec.owner.resource_name == o.name_any())
        })
        .watches(Api::<ResourceRelease>::all(c.clone()), cfg(), move |o| {
            affected(&s3, &o, |b| {
                b.spec.resource_release.as_deref() == Some(o.name_any().as_str())
            })
        })
        .watches(Api::<Project>::all(c.clone()), cfg(), move |o| {
            affected(&s4, &o, |b| b.spec.owner.project_name == o.name_any())
        })
        .watches(Api::<ResourceType>::all(c.clone()), cfg(), move |o| {
            affected(&s5, &o, |_| true)
        })
        .watches(Api::<ClusterResourceType>::all(c), cfg(), move |_| {
            s6.state()
                .iter()
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .run(
            reconcile,
            |_, e, c: Arc<Ctx>| on_error("ResourceReleaseBinding", e, &c),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// The bindings in `referent`'s namespace that `matches` picks.
fn affected<K: kube::Resource>(
    store: &Store<Rrb>,
    referent: &K,
    matches: impl Fn(&Rrb) -> bool,
) -> Vec<ObjectRef<Rrb>> {
    let ns = referent.meta().namespace.clone();
    store
        .state()
        .into_iter()
        .filter(|b| b.metadata.namespace == ns && matches(b))
        .map(|b| ObjectRef::from_obj(&*b))
        .collect()
}

async fn reconcile(binding: Arc<Rrb>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = binding.namespace().unwrap_or_default();
    let api: Api<Rrb> = Api::namespaced(ctx.client.clone(), &ns);
    let ours = binding.finalizers().iter().any(|f| f == RRB_FINALIZER);
    let action = match (binding.metadata.deletion_timestamp.is_some(), ours) {
        (true, false) => Action::await_change(),
        (true, true) => finalize(&binding, &api, &ctx).await?,
        (false, _) => {
            if !ours {
                set_finalizer(&api, &binding, true).await?;
            }
            let facts = gather(&binding, &ns, &ctx).await?;
            let wanted = binding_conditions(&view(&binding), &facts);
            write_conditions(&api, &binding, wanted).await?;
            Action::requeue(Duration::from_secs(300))
        }
    };
    ctx.metrics.reconcile("ResourceReleaseBinding", "ok");
    Ok(action)
}

fn view(b: &Rrb) -> BindingView {
    BindingView {
        project: b.spec.owner.project_name.clone(),
        resource: b.spec.owner.resource_name.clone(),
        environment: b.spec.environment.clone(),
        release: b.spec.resource_release.clone(),
        generation: b.metadata.generation,
    }
}

/// Adds or removes our finalizer with a JSON patch that tests what it changes, so a concurrent
/// edit of the list fails (and requeues) instead of being overwritten.
async fn set_finalizer(api: &Api<Rrb>, b: &Rrb, present: bool) -> Result<(), Error> {
    let list = b.finalizers();
    let ops = match (present, list.iter().position(|f| f == RRB_FINALIZER)) {
        (true, None) if list.is_empty() => {
            json!([{"op": "add", "path": "/metadata/finalizers", "value": [RRB_FINALIZER]}])
        }
        (true, None) => {
            json!([{"op": "add", "path": "/metadata/finalizers/-", "value": RRB_FINALIZER}])
        }
        (false, Some(i)) => json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": RRB_FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]),
        _ => return Ok(()),
    };
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| Error::Other(e.to_string()))?;
    api.patch(
        &b.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await?;
    Ok(())
}

/// Merges `wanted` into the status conditions; writes nothing when nothing changed.
async fn write_conditions(api: &Api<Rrb>, b: &Rrb, wanted: Vec<Condition>) -> Result<bool, Error> {
    let old = b
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let merged = merge(&old, wanted, &super::now());
    if same(&old, &merged) {
        return Ok(false);
    }
    let patch = json!({"status": {"conditions": merged}});
    api.patch_status(
        &b.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}

async fn finalize(b: &Rrb, api: &Api<Rrb>, ctx: &Ctx) -> Result<Action, Error> {
    let g = b.metadata.generation;
    let already = b.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == conditions::FINALIZING)
    });
    if !already {
        write_conditions(api, b, vec![finalizing("Finalizing", g)]).await?;
    }
    let ns = b.namespace().unwrap_or_default();
    let policy = if b
        .spec
        .retain_policy
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        effective_retain(
            b.spec.retain_policy.as_deref(),
            || Ok::<_, Error>(None),
            || Ok(None),
        )?
    } else {
        let from_release = release(ctx, &ns, b)
            .await
            .map(|r| r.and_then(|r| r.spec.resource_type.spec.retain_policy));
        let from_type = live_type(ctx, &ns, b)
            .await
            .map(|t| t.and_then(|t| t.retain_policy));
        effective_retain(None, || from_release, || from_type)?
    };
    if policy == "Retain" {
        if write_conditions(api, b, vec![finalizing("RetainHold", g)]).await? {
            ctx.event(
                b,
                true,
                "RetainHold",
                conditions::RETAIN_HOLD_MESSAGE.into(),
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    set_finalizer(api, b, false).await?;
    ctx.event(
        b,
        false,
        "Finalized",
        "retainPolicy=Delete; finalizer removed".into(),
    )
    .await;
    Ok(Action::await_change())
}

async fn release(ctx: &Ctx, ns: &str, b: &Rrb) -> Result<Option<ResourceRelease>, Error> {
    match b.spec.resource_release.as_deref().filter(|r| !r.is_empty()) {
        Some(name) => Ok(Api::<ResourceRelease>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await?),
        None => Ok(None),
    }
}

async fn live_type(ctx: &Ctx, ns: &str, b: &Rrb) -> Result<Option<ResourceTypeTemplate>, Error> {
    let resource = Api::<Resource>::namespaced(ctx.client.clone(), ns)
        .get_opt(&b.spec.owner.resource_name)
        .await?;
    let Some(resource) = resource else {
        return Ok(None);
    };
    let t = &resource.spec.type_;
    Ok(if t.kind == KIND_CLUSTER_RESOURCE_TYPE {
        Api::<ClusterResourceType>::all(ctx.client.clone())
            .get_opt(&t.name)
            .await?
            .map(|t| t.spec.template)
    } else {
        Api::<ResourceType>::namespaced(ctx.client.clone(), ns)
            .get_opt(&t.name)
            .await?
            .map(|t| t.spec.template)
    })
}

async fn gather(b: &Rrb, ns: &str, ctx: &Ctx) -> Result<Facts, Error> {
    let c = &ctx.client;
    let release = release(ctx, ns, b).await?;
    let environment = Api::<Environment>::namespaced(c.clone(), ns)
        .get_opt(&b.spec.environment)
        .await?
        .is_some();
    let resource = Api::<Resource>::namespaced(c.clone(), ns)
        .get_opt(&b.spec.owner.resource_name)
        .await?;
    let project = Api::<Project>::namespaced(c.clone(), ns)
        .get_opt(&b.spec.owner.project_name)
        .await?
        .is_some();
    let schema = match release.as_ref() {
        Some(r) => r
            .spec
            .resource_type
            .spec
            .environment_configs_schema()
            .cloned(),
        None => live_type(ctx, ns, b)
            .await?
            .and_then(|t| t.environment_configs_schema().cloned()),
    };
    Ok(Facts {
        release_owner: release.map(|r| (r.spec.owner.project_name, r.spec.owner.resource_name)),
        environment,
        resource_project: resource.map(|r| r.spec.owner.project_name),
        project,
        config_violations: config_violations(
            schema.as_ref(),
            b.spec.resource_type_environment_configs.as_ref(),
        ),
    })
}

/// environmentConfigs checked against `schema` (defaults applied first), as one line each.
pub fn config_violations(schema: Option<&Value>, configs: Option<&Value>) -> Vec<String> {
    let Some(schema) = schema else {
        return Vec::new();
    };
    let compiled = match EnvConfigSchema::compile(schema) {
        Ok(s) => s,
        Err(e) => {
            return vec![format!(
                "the environmentConfigs schema does not compile: {}",
                e.0
            )];
        }
    };
    let empty = json!({});
    compiled
        .validate(configs.unwrap_or(&empty))
        .iter()
        .map(|v| {
            format!(
                "{}: {}",
                v.field("spec.resourceTypeEnvironmentConfigs"),
                v.message
            )
        })
        .collect()
}

/// Deletes the bindings of every Resource that goes. Retain bindings then show RetainHold.
pub async fn cascade_resource_deletion(ctx: Arc<Ctx>) {
    let resources = Api::<Resource>::all(ctx.client.clone());
    watcher(resources, watcher::Config::default())
        .default_backoff()
        .for_each(|event| {
            let ctx = ctx.clone();
            async move {
                if let Ok(watcher::Event::Delete(resource)) = event
                    && let Err(error) = delete_bindings_of(&resource, &ctx).await
                {
                    tracing::warn!(%error, resource = %resource.name_any(), "could not delete the bindings of a deleted Resource");
                }
            }
        })
        .await;
}

async fn delete_bindings_of(resource: &Resource, ctx: &Ctx) -> Result<(), Error> {
    let ns = resource.namespace().unwrap_or_default();
    let api: Api<Rrb> = Api::namespaced(ctx.client.clone(), &ns);
    for b in api.list(&Default::default()).await? {
        if b.spec.owner.resource_name == resource.name_any()
            && b.metadata.deletion_timestamp.is_none()
        {
            api.delete(&b.name_any(), &DeleteParams::default()).await?;
            let note = format!(
                "Resource {:?} was deleted; deleting its binding",
                resource.name_any()
            );
            ctx.event(&b, false, "ResourceDeleted", note).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_with_defaults() {
        let schema = json!({"type": "object", "properties": {"memory": {"type": "string", "default": "256Mi"}}, "required": ["memory"]});
        assert!(config_violations(Some(&schema), None).is_empty());
        let bad = config_violations(Some(&schema), Some(&json!({"memory": 5})));
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with("spec.resourceTypeEnvironmentConfigs.memory"),
            "{bad:?}"
        );
        assert!(config_violations(None, Some(&json!({"x": 1}))).is_empty());
    }
}
