//! `bindguard promote RESOURCE --env ENV`: pin an environment's binding to the Resource's latest
//! release, as `occ resource promote` does.

use crate::cluster::facts::Seen;
use crate::crd::{LatestRelease, Resource, ResourceReleaseBinding};
use anyhow::bail;
use kube::api::{Api, GetParams, Patch};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;

/// The part of a Resource this command reads; every other field is skipped unparsed, so deeply
/// nested parameters never fail it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    #[serde(default)]
    status: Option<ReleasedStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReleasedStatus {
    #[serde(default)]
    latest_release: Option<LatestRelease>,
}

/// The release to pin, or upstream's message when the Resource has none.
pub fn latest_release(resource: &str, object: Option<&Released>) -> anyhow::Result<String> {
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
    let found = get_released(&client, ns, resource).await?;
    let release = latest_release(resource, found.as_ref())?;
    // Bindings are read through the view's tolerant decoding, for the same reason.
    let bindings: Vec<ResourceReleaseBinding> =
        Api::<Seen<ResourceReleaseBinding>>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|seen| match seen {
                Seen::Readable(binding) => Some(binding),
                Seen::Unreadable { .. } => None,
            })
            .collect();
    let binding = binding_for(resource, env, &bindings)?.name_any();
    let patch = json!({"spec": {"resourceRelease": release}});
    let to = super::Target {
        namespace: Some(ns),
        name: &binding,
        status: false,
    };
    super::patch_version::<ResourceReleaseBinding, _>(&client, to, &Patch::Merge(&patch)).await?;
    Ok((binding, release))
}

/// The Resource's release facts, or `None` when it does not exist.
async fn get_released(client: &Client, ns: &str, name: &str) -> anyhow::Result<Option<Released>> {
    let url = <Resource as kube::Resource>::url_path(&(), Some(ns));
    let get = kube::core::Request::new(url).get(name, &GetParams::default())?;
    match client.request_text(get).await {
        Ok(text) => Ok(Some(serde_json::from_str(&text)?)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::*;

    #[test]
    fn upstream_messages() {
        let bare: Released = serde_json::from_str(r#"{"spec":{"parameters":{"a":1}}}"#).unwrap();
        let err = latest_release("x", Some(&bare)).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("resource \"x\" has no released versions yet".to_string())
        );
        let released: Released = serde_json::from_str(
            r#"{"status":{"latestRelease":{"name":"x-abc"},"conditions":[]}}"#,
        )
        .unwrap();
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
