//! Manifests as text -> objects with the file and line they start at. Pure, except
//! [`read_tree`], which reads the work tree.

use super::crd_rules::CrdRules;
use super::{Manifest, Note, ObjectId};
use anyhow::{Context as _, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A file's text and the names it goes by.
#[derive(Debug, Clone)]
pub struct Source {
    /// As reports show it (relative to where bindguard runs).
    pub display: String,
    pub text: String,
}

/// The objects and notes of some files.
#[derive(Debug, Default)]
pub struct Parsed {
    pub manifests: Vec<Manifest>,
    pub notes: Vec<Note>,
}

/// A document that is not YAML or JSON: exit 2, naming file and line.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Whether a file name looks like a manifest.
pub fn is_manifest_name(path: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Parses every file; the first malformed document stops it.
pub fn parse_all(sources: &[Source], scopes: &CrdRules) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    for source in sources {
        parse_file(source, scopes, &mut parsed)?;
    }
    Ok(parsed)
}

/// Parses one file into `into`: YAML (multi-document) or JSON, `List`s unpacked.
pub fn parse_file(source: &Source, scopes: &CrdRules, into: &mut Parsed) -> Result<(), ParseError> {
    let file = &source.display;
    if !is_manifest_name(file) {
        into.notes.push(Note::new(
            file,
            1,
            "skipped: not a .yaml, .yml or .json file",
        ));
        return Ok(());
    }
    let documents = if file.ends_with(".json") {
        vec![(first_line(&source.text), parse_json(file, &source.text)?)]
    } else {
        parse_yaml(file, &source.text)?
    };
    let before = (into.manifests.len(), into.notes.len());
    for (line, document) in documents {
        add_document(file, line, document, scopes, into);
    }
    if (into.manifests.len(), into.notes.len()) == before && !source.text.trim().is_empty() {
        into.notes.push(Note::new(
            file,
            1,
            "skipped: no Kubernetes manifest in this file",
        ));
    }
    Ok(())
}

fn parse_json(file: &str, text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError {
        file: file.to_string(),
        line: e.line(),
        message: format!("not valid JSON: {e}"),
    })
}

/// The line (1-based) of the first character that is not blank.
fn first_line(text: &str) -> usize {
    text.lines().position(|l| !l.trim().is_empty()).unwrap_or(0) + 1
}

/// Each YAML document of `text` with the line it starts at; empty documents are dropped.
pub fn parse_yaml(file: &str, text: &str) -> Result<Vec<(usize, Value)>, ParseError> {
    let mut documents = Vec::new();
    for (offset, chunk) in split_documents(text) {
        let Some(start) = content_line(&chunk) else {
            continue;
        };
        let value: Value = serde_saphyr::from_str(&chunk).map_err(|e| ParseError {
            file: file.to_string(),
            line: offset + e.location().map_or(start, |l| l.line() as usize),
            message: format!("not valid YAML: {}", first_sentence(&e.to_string())),
        })?;
        if !value.is_null() {
            documents.push((offset + start, value));
        }
    }
    Ok(documents)
}

fn first_sentence(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_string()
}

/// The text of each document, with the number of lines before it. A `---` line starts a
/// document (its rest belongs to the new one); a `...` line ends one.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut chunks = vec![(0, String::new())];
    for (index, line) in text.lines().enumerate() {
        let marker = |m: &str| {
            line.strip_prefix(m)
                .filter(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        };
        if let Some(rest) = marker("---") {
            chunks.push((index, format!("{rest}\n")));
        } else if marker("...").is_some() {
            chunks.push((index + 1, String::new()));
        } else if let Some((_, chunk)) = chunks.last_mut() {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    chunks
}

/// The 1-based line, within a chunk, of its first line that is not blank or a comment.
fn content_line(chunk: &str) -> Option<usize> {
    chunk
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|i| i + 1)
}

/// Files a document's objects (a `List`'s items, each at the document's line).
fn add_document(file: &str, line: usize, document: Value, scopes: &CrdRules, into: &mut Parsed) {
    let is_list = document
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    let objects = match (is_list, document.get("items")) {
        (true, Some(Value::Array(items))) => items.clone(),
        _ => vec![document],
    };
    for object in objects {
        match manifest(file, line, object, scopes) {
            Ok(m) => into.manifests.push(m),
            Err(message) => into.notes.push(Note::new(file, line, &message)),
        }
    }
}

/// One object as a [`Manifest`]; a namespaced kind of ours without a namespace is put in
/// `default`, a cluster-scoped one loses any namespace it was given.
fn manifest(
    file: &str,
    line: usize,
    mut object: Value,
    scopes: &CrdRules,
) -> Result<Manifest, String> {
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (Some(api_version), Some(kind)) = (text(&object, "/apiVersion"), text(&object, "/kind"))
    else {
        return Err("skipped: not a Kubernetes manifest (no apiVersion and kind)".into());
    };
    let Some(name) = text(&object, "/metadata/name").filter(|n| !n.is_empty()) else {
        return Err(format!(
            "skipped: {kind} without metadata.name cannot be paired or applied"
        ));
    };
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    let mut namespace = text(&object, "/metadata/namespace").unwrap_or_default();
    match scopes.namespaced(&group, &kind) {
        Some(true) if namespace.is_empty() => {
            namespace = "default".into();
            object["metadata"]["namespace"] = Value::String(namespace.clone());
        }
        Some(false) if !namespace.is_empty() => {
            namespace.clear();
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
        }
        _ => {}
    }
    let id = ObjectId {
        group,
        kind,
        namespace,
        name,
    };
    Ok(Manifest {
        file: file.to_string(),
        line,
        id,
        object,
    })
}

/// Reads every manifest under `paths` from the work tree, recursively, in a stable order.
/// A file named explicitly is read whatever its name; in folders only manifests are.
pub fn read_tree(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or directory", path.display());
        }
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("{}: cannot be read", file.display()))?;
            Ok(Source {
                display: display(&file),
                text,
            })
        })
        .collect()
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if is_manifest_name(&path.to_string_lossy()) {
            files.push(path);
        }
    }
    Ok(())
}

/// A path as reports show it: without a leading `./`.
pub fn display(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, text: &str) -> Result<Parsed, ParseError> {
        let source = Source {
            display: file.into(),
            text: text.into(),
        };
        parse_all(&[source], &CrdRules::new())
    }

    #[test]
    fn documents_start_at_their_first_content_line() {
        let text = "# header\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\n# c\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n--- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n...\n";
        let parsed = parse("a.yaml", text).unwrap();
        let lines: Vec<(usize, &str)> = parsed
            .manifests
            .iter()
            .map(|m| (m.line, m.id.name.as_str()))
            .collect();
        assert_eq!(lines, [(2, "a"), (8, "b"), (11, "c")]);
    }

    #[test]
    fn malformed_yaml_names_the_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [unclosed\n";
        let error = parse("bad.yaml", text).unwrap_err();
        assert_eq!(error.file, "bad.yaml");
        assert!((5..=7).contains(&error.line), "{error}");
    }

    #[test]
    fn namespaces_follow_the_scope_of_our_kinds() {
        let text = "apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata: {name: dev}\n---\napiVersion: platform.kratix.io/v1alpha1\nkind: Promise\nmetadata: {name: redis, namespace: x}\n";
        let parsed = parse("a.yaml", text).unwrap();
        assert_eq!(parsed.manifests[0].id.namespace, "default");
        assert_eq!(
            parsed.manifests[0].object["metadata"]["namespace"],
            "default"
        );
        assert_eq!(parsed.manifests[1].id.namespace, "");
    }

    #[test]
    fn what_is_not_a_manifest_is_a_note() {
        let parsed = parse("values.yaml", "replicas: 3\n").unwrap();
        assert!(parsed.manifests.is_empty());
        assert!(
            parsed
                .notes
                .iter()
                .any(|n| n.message.contains("not a Kubernetes manifest"))
        );
        let parsed = parse("README.md", "# hi").unwrap();
        assert!(parsed.notes[0].message.contains("not a .yaml"));
    }
}
