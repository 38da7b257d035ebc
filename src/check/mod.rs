//! `bindguard check`: judge what a GitOps commit changes, old against new, with the policy the
//! server uses, before it reaches a cluster.
//!
//! Data flows one way: files ([`load`], [`git`]) -> objects paired into changes ([`changes`])
//! -> each change judged against a view of the head ([`view`], [`verdict`], [`crd_rules`]) ->
//! a report ([`report`]). Only [`load::read_tree`], [`git`] and the `--cluster` watch do I/O.

pub mod changes;
pub mod crd_rules;
pub mod git;
pub mod load;
pub mod report;
pub mod verdict;
pub mod view;

use crate::admission::Operation;
use crate::cluster::{ClusterView, Stores, live};
use crate::metrics::Metrics;
use crate::policy::{Context, References, Settings};
use crate::schema::SchemaCache;
use anyhow::{Context as _, bail};
use changes::Change;
use crd_rules::CrdRules;
use load::{Parsed, Source};
use report::{Finding, Output, Severity, Summary};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How an object is known in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub group: String,
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
}

/// One object of one side, with where it is written.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: String,
    /// Where its document starts (1-based).
    pub line: usize,
    pub id: ObjectId,
    pub object: Value,
}

/// Something skipped, said once.
#[derive(Debug, Clone)]
pub struct Note {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl Note {
    pub fn new(file: &str, line: usize, message: &str) -> Note {
        Note {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

/// What `bindguard check` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub base: Option<String>,
    pub cluster: bool,
    pub references: References,
    pub output: Output,
    pub paths: Vec<PathBuf>,
}

/// The report to print, and whether anything was refused.
pub struct Outcome {
    pub report: String,
    pub refused: bool,
}

/// How `check` ends when it does not end cleanly: refused (exit 1) or unable to check (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("the change is refused")]
    Refused,
    #[error("{0:#}")]
    Unable(anyhow::Error),
}

/// How long `--cluster` waits for the first list of every kind.
const LIVE_SYNC: Duration = Duration::from_secs(30);

/// Runs the check; `Err` means it could not be run (unreadable files, no repository, no cluster).
pub fn check(options: &Options) -> anyhow::Result<Outcome> {
    let crd = CrdRules::new();
    let head_sources = load::read_tree(&options.paths)?;
    let head = load::parse_all(&head_sources, &crd)?;
    let base = match &options.base {
        Some(reference) => read_base(reference, &options.paths, &head_sources, &head, &crd)?,
        None => Vec::new(),
    };
    let (base_ix, _) = changes::index(&base);
    let (head_ix, twice) = changes::index(&head.manifests);
    let changes = changes::diff(&base_ix, &head_ix);
    let gone = changes::cascaded(&base_ix, &head_ix);
    let stores = view::head_stores(head.manifests.iter(), &gone);
    let _live;
    let merged;
    let view: &dyn ClusterView = if options.cluster {
        let (runtime, live) = live_stores()?;
        _live = runtime;
        merged = view::Merged {
            head: stores,
            live,
            shadowed: shadowed(&head_ix, &changes),
        };
        &merged
    } else {
        &stores
    };
    let settings = Settings {
        references: options.references,
        ..Settings::default()
    };
    let schemas = SchemaCache::new();
    let judge = verdict::Judge {
        ctx: Context {
            view,
            settings: &settings,
            schemas: &schemas,
            in_place: None,
        },
        crd: &crd,
    };
    let mut findings = judge_all(&judge, &changes, &head_ix);
    findings.extend(duplicates(&twice));
    findings.extend(head.notes.iter().map(note));
    findings.sort_by(|a, b| (&a.file, a.line, a.severity).cmp(&(&b.file, b.line, b.severity)));
    let mut summary = summarize(&changes, head_sources.len(), head.manifests.len());
    report::count(&findings, &mut summary);
    Ok(Outcome {
        report: report::render(options.output, &findings, &summary),
        refused: summary.refused > 0,
    })
}

fn judge_all(
    judge: &verdict::Judge,
    changes: &[Change],
    head: &BTreeMap<&ObjectId, &Manifest>,
) -> Vec<Finding> {
    changes
        .iter()
        .flat_map(|change| judge.change(change, head.contains_key(&change.at().id)))
        .collect()
}

/// The base's objects under `paths`. A file whose text is the same at the head is not parsed
/// again: its objects are the head's.
fn read_base(
    reference: &str,
    paths: &[PathBuf],
    head_sources: &[Source],
    head: &Parsed,
    crd: &CrdRules,
) -> anyhow::Result<Vec<Manifest>> {
    let repo = git::Repo::here()?;
    let commit = repo.commit(reference)?;
    let sources = repo.read(&commit, paths)?;
    let head_texts: HashMap<&str, &str> = head_sources
        .iter()
        .map(|s| (s.display.as_str(), s.text.as_str()))
        .collect();
    let (same, changed): (Vec<Source>, Vec<Source>) = sources
        .into_iter()
        .partition(|s| head_texts.get(s.display.as_str()) == Some(&s.text.as_str()));
    let same: BTreeSet<&str> = same.iter().map(|s| s.display.as_str()).collect();
    let mut manifests: Vec<Manifest> = head
        .manifests
        .iter()
        .filter(|m| same.contains(m.file.as_str()))
        .cloned()
        .collect();
    let parsed = load::parse_all(&changed, crd).map_err(|e| anyhow::anyhow!("{reference}:{e}"))?;
    manifests.extend(parsed.manifests);
    Ok(manifests)
}

/// The live cluster's stores once every kind has been listed, and the runtime that feeds them.
fn live_stores() -> anyhow::Result<(tokio::runtime::Runtime, Stores)> {
    let runtime = tokio::runtime::Runtime::new()?;
    let stores = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("--cluster: connecting to the cluster (kubeconfig or in-cluster)")?;
        let stores = live::start(client, Arc::new(Metrics::default()));
        let started = Instant::now();
        while !stores.is_synced() {
            if started.elapsed() > LIVE_SYNC {
                bail!("--cluster: the cluster did not list every kind within {LIVE_SYNC:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(stores)
    })?;
    Ok((runtime, stores))
}

/// What the live cluster must not answer for: what the head holds and what the change deletes.
fn shadowed(head: &BTreeMap<&ObjectId, &Manifest>, changes: &[Change]) -> BTreeSet<String> {
    let deleted = changes
        .iter()
        .filter(|c| c.operation == Operation::Delete)
        .map(|c| &c.at().id);
    head.keys()
        .copied()
        .chain(deleted)
        .map(|id| view::shadow_key(&id.kind, &id.namespace, &id.name))
        .collect()
}

fn duplicates(twice: &[(&Manifest, &Manifest)]) -> Vec<Finding> {
    twice
        .iter()
        .map(|(again, first)| Finding {
            file: again.file.clone(),
            line: again.line,
            severity: Severity::Error,
            operation: String::new(),
            kind: again.id.kind.clone(),
            namespace: again.id.namespace.clone(),
            name: again.id.name.clone(),
            message: format!(
                "defined twice: also at {}:{}; a GitOps tool cannot apply both",
                first.file, first.line
            ),
        })
        .collect()
}

fn note(note: &Note) -> Finding {
    Finding {
        file: note.file.clone(),
        line: note.line,
        severity: Severity::Notice,
        operation: String::new(),
        kind: String::new(),
        namespace: String::new(),
        name: String::new(),
        message: note.message.clone(),
    }
}

fn summarize(changes: &[Change], files: usize, objects: usize) -> Summary {
    let of = |op: Operation| changes.iter().filter(|c| c.operation == op).count();
    Summary {
        files,
        objects,
        created: of(Operation::Create),
        updated: of(Operation::Update),
        deleted: of(Operation::Delete),
        ..Summary::default()
    }
}
