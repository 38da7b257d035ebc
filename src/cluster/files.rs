//! The static cluster view: every object found in a folder of manifests.

use super::{Stores, Writers, put};
use crate::crd::*;
use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Loads every YAML or JSON manifest under `dir`, recursively. Objects of kinds bindguard does
/// not read are skipped; a document that cannot be read is an error naming file and document.
pub fn load_dir(dir: &Path) -> anyhow::Result<Stores> {
    let (mut writers, stores) = Writers::new(0);
    for file in manifest_files(dir)? {
        for (index, doc) in read_documents(&file)?.into_iter().enumerate() {
            for object in list_items(doc) {
                writers
                    .add(object)
                    .with_context(|| format!("{}: document {}", file.display(), index + 1))?;
            }
        }
    }
    Ok(stores)
}

/// Manifest files under `dir` in a stable order.
pub fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).with_context(|| format!("{}", current.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if is_manifest(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The documents of one file; empty documents are dropped.
pub fn read_documents(file: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    parse_documents(
        &text,
        file.extension().and_then(|e| e.to_str()) == Some("json"),
    )
    .with_context(|| format!("{}", file.display()))
}

/// Parses JSON, or multi-document YAML.
pub fn parse_documents(text: &str, json: bool) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = if json {
        vec![serde_json::from_str(text)?]
    } else {
        serde_saphyr::from_multiple(text)?
    };
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// A `kind: List` (or `*List`) document's items; any other document as it is.
fn list_items(doc: Value) -> Vec<Value> {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match (is_list, doc.get("items")) {
        (true, Some(Value::Array(items))) => items.clone(),
        _ => vec![doc],
    }
}

/// Decodes `value` as `K`, naming the field that does not fit.
pub fn decode<K: DeserializeOwned>(value: Value) -> anyhow::Result<K> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{path}: {}", e.into_inner())
    })
}

impl Writers {
    /// Files one object under its kind; unknown kinds are skipped.
    pub fn add(&mut self, object: Value) -> anyhow::Result<()> {
        let Some(api_version) = object.get("apiVersion").and_then(Value::as_str) else {
            bail!("apiVersion is missing");
        };
        let Some(kind) = object.get("kind").and_then(Value::as_str) else {
            bail!("kind is missing");
        };
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        match (group, kind) {
            (OPENCHOREO_GROUP, "Environment") => put(&mut self.environments, decode(object)?),
            (OPENCHOREO_GROUP, "Project") => put(&mut self.projects, decode(object)?),
            (OPENCHOREO_GROUP, "Resource") => put(&mut self.resources, decode(object)?),
            (OPENCHOREO_GROUP, "ResourceType") => put(&mut self.resource_types, decode(object)?),
            (OPENCHOREO_GROUP, "ClusterResourceType") => {
                put(&mut self.cluster_resource_types, decode(object)?)
            }
            (OPENCHOREO_GROUP, "ResourceRelease") => {
                put(&mut self.resource_releases, decode(object)?)
            }
            (OPENCHOREO_GROUP, "ResourceReleaseBinding") => {
                put(&mut self.release_bindings, decode(object)?)
            }
            (KRATIX_GROUP, "Promise") => put(&mut self.promises, decode(object)?),
            (KRATIX_GROUP, "PromiseRevision") => put(&mut self.promise_revisions, decode(object)?),
            (KRATIX_GROUP, "ResourceBinding") => put(&mut self.resource_bindings, decode(object)?),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterView;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bindguard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn loads_multi_document_yaml_json_and_lists_recursively() {
        let dir = temp_dir("load");
        write(
            &dir,
            "a.yaml",
            "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata: {name: dev, namespace: default}\nspec: {}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        );
        write(
            &dir,
            "nested/b.json",
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"platform.kratix.io/v1alpha1","kind":"Promise","metadata":{"name":"redis"},"spec":{}}]}"#,
        );
        write(&dir, "notes.txt", "ignored");
        let stores = load_dir(&dir).unwrap();
        assert!(stores.environment("default", "dev").is_some());
        assert!(stores.promise("redis").is_some());
        assert!(stores.is_synced());
    }

    #[test]
    fn a_malformed_document_names_file_document_and_field() {
        let dir = temp_dir("bad");
        write(
            &dir,
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata: {name: b, namespace: default}\nspec: {environment: dev}\n",
        );
        let error = format!("{:#}", load_dir(&dir).err().expect("must fail"));
        assert!(error.contains("bad.yaml"), "{error}");
        assert!(error.contains("document 2"), "{error}");
        assert!(error.contains("spec"), "{error}");
        assert!(error.contains("owner"), "{error}");
    }

    #[test]
    fn broken_yaml_and_missing_dir_are_errors() {
        let dir = temp_dir("broken");
        write(&dir, "x.yaml", "a: [unclosed\n");
        assert!(load_dir(&dir).is_err());
        assert!(load_dir(&dir.join("absent")).is_err());
    }
}
