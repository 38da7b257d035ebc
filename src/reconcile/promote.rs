//! `bindguard promote RESOURCE --env ENV`: pin an environment's binding to the Resource's latest
//! release, as `occ resource promote` does.

use crate::crd::{Resource, ResourceReleaseBinding};
use anyhow::bail;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The release to pin, or upstream's message when the Resource has none.
pub fn latest_release(resource: &str, object: Option<&Resource>) -> anyhow::Result<String> {
    match object
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.latest_release.as_ref())
        .map(|l| l.name.clone())
        .filter(|n| !n.is_empty())
    {
        Some(name) => Ok(name),
        None => bail!("resource {resource:?} has no released versions yet"),
    }
}

/// The binding of `resource` in `env`, or upstream's message when there is none.
pub fn binding_for<'a>(
    resource: &str,
    env: &str,
    bindings: &'a [ResourceReleaseBinding],
) -> anyhow::Result<&'a ResourceReleaseBinding> {
    match bindings
        .iter()
        .find(|b| b.spec.owner.resource_name == resource && b.spec.environment == env)
    {
        Some(b) => Ok(b),
        None => bail!(
            "no ResourceReleaseBinding found for resource {resource:?} in environment {env:?}"
        ),
    }
}

/// Pins the binding and returns `(binding, release)`.
pub async fn promote(
    client: Client,
    ns: &str,
    resource: &str,
    env: &str,
) -> anyhow::Result<(String, String)> {
    let found = Api::<Resource>::namespaced(client.clone(), ns)
        .get_opt(resource)
        .await?;
    let release = latest_release(resource, found.as_ref())?;
    let api: Api<ResourceReleaseBinding> = Api::namespaced(client, ns);
    let bindings = api.list(&Default::default()).await?.items;
    let binding = binding_for(resource, env, &bindings)?.name_any();
    let patch = json!({"spec": {"resourceRelease": release}});
    api.patch(&binding, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok((binding, release))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::*;

    #[test]
    fn upstream_messages() {
        let bare = Resource::new("x", ResourceSpec::default());
        let err = latest_release("x", Some(&bare)).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("resource \"x\" has no released versions yet".to_string())
        );
        let mut released = bare.clone();
        released.status = Some(ResourceStatus {
            latest_release: Some(LatestRelease {
                name: "x-abc".into(),
                hash: String::new(),
            }),
            conditions: vec![],
        });
        assert_eq!(
            latest_release("x", Some(&released)).ok(),
            Some("x-abc".to_string())
        );
        let err = binding_for("x", "e", &[])
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "no ResourceReleaseBinding found for resource \"x\" in environment \"e\""
                    .to_string()
            )
        );
        let mut spec = ResourceReleaseBindingSpec::default();
        spec.owner.resource_name = "x".into();
        spec.environment = "e".into();
        let b = ResourceReleaseBinding::new("x-e", spec);
        assert!(binding_for("x", "e", std::slice::from_ref(&b)).is_ok());
    }
}
