//! The static cluster view: every object found in a folder of manifests.

use super::facts::{Seen, Watched};
use super::{Stores, Writers, put};
use crate::kinds::Kind;
use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};

/// Loads every YAML or JSON manifest under `dir`, recursively. Objects of kinds bindguard does
/// not read are skipped; a document that cannot be read is an error naming file and document.
///
/// Objects are read as the live view reads them ([`Seen`]): only the facts the rules use are
/// decoded and kept. A JSON file is never built into a `Value`: each object's text is read directly.
pub fn load_dir(dir: &Path) -> anyhow::Result<Stores> {
    let (mut writers, stores) = Writers::new(0);
    for file in manifest_files(dir)? {
        if file.extension().and_then(|e| e.to_str()) == Some("json") {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            load_json(&mut writers, &text).with_context(|| format!("{}", file.display()))?;
            continue;
        }
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

/// One JSON document: an object, or a `List` of them.
fn load_json(writers: &mut Writers, text: &str) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Document<'a> {
        #[serde(default)]
        kind: String,
        #[serde(borrow, default)]
        items: Option<Vec<&'a RawValue>>,
    }
    let document: Document = serde_json::from_str(text)?;
    match document.items {
        Some(items) if document.kind.ends_with("List") => {
            for (index, item) in items.iter().enumerate() {
                writers
                    .add_json(item.get())
                    .with_context(|| format!("item {}", index + 1))?;
            }
            Ok(())
        }
        _ => writers.add_json(text),
    }
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

/// The facts of one object, as the live view keeps them; an error naming the field that does
/// not fit.
fn facts<K: Watched>(text: &str) -> anyhow::Result<K> {
    match Seen::<K>::read(text) {
        Seen::Readable(object) => Ok(object),
        Seen::Unreadable { reason, .. } => bail!("{reason}"),
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
        self.add_json(&object.to_string())
    }

    /// Files one object, given as JSON text, under its kind; unknown kinds are skipped.
    pub fn add_json(&mut self, text: &str) -> anyhow::Result<()> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TypeMeta {
            api_version: Option<String>,
            kind: Option<String>,
        }
        let head: TypeMeta = serde_json::from_str(text)?;
        let Some(api_version) = head.api_version else {
            bail!("apiVersion is missing");
        };
        let Some(kind) = head.kind else {
            bail!("kind is missing");
        };
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let Some(known) = Kind::of(group, &kind) else {
            return Ok(());
        };
        match known {
            Kind::Environment => put(&mut self.environments, facts(text)?),
            Kind::Project => put(&mut self.projects, facts(text)?),
            Kind::Resource => put(&mut self.resources, facts(text)?),
            Kind::ResourceType => put(&mut self.resource_types, facts(text)?),
            Kind::ClusterResourceType => put(&mut self.cluster_resource_types, facts(text)?),
            Kind::ResourceRelease => put(&mut self.resource_releases, facts(text)?),
            Kind::ResourceReleaseBinding => put(&mut self.release_bindings, facts(text)?),
            Kind::Promise => put(&mut self.promises, facts(text)?),
            Kind::PromiseRevision => put(&mut self.promise_revisions, facts(text)?),
            Kind::ResourceBinding => put(&mut self.resource_bindings, facts(text)?),
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
