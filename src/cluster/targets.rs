//! ResourceReleaseBindings as the rules and the reconcile loop read them: which binding of which
//! project holds which target (namespace, resource, environment), and whether it is being
//! deleted; for the loop also its release, retain policy, environment configs, generation, our
//! finalizer's place and its conditions in brief ([`super::held`]). Bindings are the kind a
//! platform has most of, so the view keeps a small record per binding filed by target, never
//! the binding itself, and rebuilds a binding holding exactly those facts when asked.

use super::Sink;
use super::held::{Finalizers, Held};
use super::object_key;
use crate::crd::{BindingOwner, RRB_FINALIZER, ResourceReleaseBinding, ResourceReleaseBindingSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use kube::runtime::watcher::Event;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

type Rrb = ResourceReleaseBinding;

/// What is kept of one binding besides its target.
#[derive(Debug)]
struct Record {
    /// Name, project, release, retain policy, configs (compact JSON) and resourceVersion, in
    /// one allocation.
    texts: Texts<6>,
    deleting: Option<Time>,
    /// The rest only the loop reads.
    kept: Kept,
}

const NAME: usize = 0;
const PROJECT: usize = 1;
const RELEASE: usize = 2;
const RETAIN_POLICY: usize = 3;
const CONFIGS: usize = 4;
const RESOURCE_VERSION: usize = 5;

impl Record {
    fn of(binding: &Rrb, name: &str) -> Record {
        let spec = &binding.spec;
        let configs = spec
            .resource_type_environment_configs
            .as_ref()
            .map(|v| v.to_string());
        let texts = Texts::new([
            Some(name),
            Some(&spec.owner.project_name),
            spec.resource_release.as_deref(),
            spec.retain_policy.as_deref(),
            configs.as_deref(),
            binding.metadata.resource_version.as_deref(),
        ]);
        Record {
            texts,
            deleting: binding.metadata.deletion_timestamp.clone(),
            kept: Kept::of(binding),
        }
    }

    fn name(&self) -> &str {
        self.texts.get(NAME).unwrap_or_default()
    }

    fn project(&self) -> &str {
        self.texts.get(PROJECT).unwrap_or_default()
    }
}

/// `N` strings, each possibly absent, in one allocation.
#[derive(Debug)]
struct Texts<const N: usize> {
    all: Box<str>,
    /// Where each string ends in `all`.
    ends: [u32; N],
    /// Bit `i` set: string `i` is there.
    present: u8,
}

impl<const N: usize> Texts<N> {
    fn new(parts: [Option<&str>; N]) -> Self {
        let mut all = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let (mut ends, mut present) = ([0; N], 0);
        for (i, part) in parts.iter().enumerate() {
            if let Some(part) = part {
                all.push_str(part);
                present |= 1 << i;
            }
            // Bounded by the API server's object size limit, far below 4 GiB.
            ends[i] = all.len() as u32;
        }
        Texts {
            all: all.into_boxed_str(),
            ends,
            present,
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let there = self.present & (1 << i) != 0;
        there.then(|| &self.all[start..self.ends[i] as usize])
    }
}

#[derive(Debug)]
struct Kept {
    uid: Uid,
    generation: Option<i64>,
    finalizers: Finalizers,
    conditions: Box<[Held]>,
}

impl Kept {
    fn of(binding: &Rrb) -> Kept {
        let meta = &binding.metadata;
        let conditions = binding.status.iter().flat_map(|s| &s.conditions);
        Kept {
            uid: Uid::of(meta.uid.as_deref()),
            generation: meta.generation,
            finalizers: Finalizers::of(
                meta.finalizers.as_deref().unwrap_or_default(),
                RRB_FINALIZER,
            ),
            conditions: conditions.map(Held::of).collect(),
        }
    }
}

/// A uid in 16 bytes when it is a UUID as the API server writes them (lowercase), else as text.
#[derive(Debug)]
enum Uid {
    Uuid([u8; 16]),
    Text(Option<Box<str>>),
}

impl Uid {
    const DASHES: [usize; 4] = [8, 13, 18, 23];

    fn of(text: Option<&str>) -> Uid {
        text.and_then(Self::uuid)
            .map_or_else(|| Uid::Text(text.map(Box::from)), Uid::Uuid)
    }

    fn uuid(text: &str) -> Option<[u8; 16]> {
        let hex: Vec<u8> = text
            .char_indices()
            .filter(|(i, _)| !Self::DASHES.contains(i))
            .map(|(_, c)| match c {
                '0'..='9' | 'a'..='f' => c.to_digit(16).map(|d| d as u8),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let dashed = Self::DASHES
            .iter()
            .all(|&i| text.as_bytes().get(i) == Some(&b'-'));
        if text.len() != 36 || hex.len() != 32 || !dashed {
            return None;
        }
        let mut bytes = [0; 16];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks(2)) {
            *byte = pair[0] << 4 | pair[1];
        }
        Some(bytes)
    }

    fn text(&self) -> Option<String> {
        match self {
            Uid::Text(text) => text.as_deref().map(String::from),
            Uid::Uuid(bytes) => {
                let mut text = String::with_capacity(36);
                for (i, byte) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        text.push('-');
                    }
                    text.push_str(&format!("{byte:02x}"));
                }
                Some(text)
            }
        }
    }
}

/// A binding as the reconcile loop reads it from the view.
#[derive(Clone, Debug)]
pub struct Books {
    /// Its identity (resourceVersion included), spec (environment configs included) and
    /// deletion; no status.
    pub binding: Rrb,
    pub finalizers: Finalizers,
    pub conditions: Vec<Held>,
}

/// The fields of a kept binding a referent change is matched against.
pub struct Listed<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub project: &'a str,
    pub resource: &'a str,
    pub environment: &'a str,
    pub release: Option<&'a str>,
    pub deleting: bool,
}

#[derive(Default)]
struct Filed {
    /// Records by [`ResourceReleaseBinding::target_key`].
    by_target: HashMap<Arc<str>, Vec<Record>>,
    /// Each binding's target key by `namespace/name`, to refile or forget it.
    by_name: HashMap<Box<str>, Arc<str>>,
}

impl Filed {
    fn insert(&mut self, binding: &Rrb) {
        let (Some(namespace), Some(name)) = (
            binding.metadata.namespace.as_deref(),
            binding.metadata.name.as_deref(),
        ) else {
            return;
        };
        self.remove(namespace, name);
        let spec = &binding.spec;
        let key = Rrb::target_key(namespace, &spec.owner.resource_name, &spec.environment);
        let key = match self.by_target.get_key_value(key.as_str()) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(key),
        };
        let records = self.by_target.entry(key.clone()).or_default();
        records.push(Record::of(binding, name));
        records.shrink_to_fit();
        self.by_name
            .insert(object_key(namespace, name).into_boxed_str(), key);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(key) = self.by_name.remove(object_key(namespace, name).as_str()) else {
            return;
        };
        if let Some(records) = self.by_target.get_mut(&key) {
            records.retain(|r| r.name() != name);
            if records.is_empty() {
                self.by_target.remove(&key);
            }
        }
    }
}

/// The read side: bindings by target.
#[derive(Clone, Default)]
pub struct Targets(Arc<RwLock<Filed>>);

impl Targets {
    /// The bindings in `namespace` of `resource` to `environment`.
    pub fn to(&self, namespace: &str, resource: &str, environment: &str) -> Vec<Arc<Rrb>> {
        let filed = self.0.read().unwrap_or_else(|p| p.into_inner());
        let key = Rrb::target_key(namespace, resource, environment);
        filed
            .by_target
            .get(key.as_str())
            .into_iter()
            .flatten()
            .map(|r| Arc::new(rebuild(r, namespace, resource, environment)))
            .collect()
    }

    /// Every binding in `namespace` (a scan: for the offline check, not the request path).
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<Rrb>> {
        let filed = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut found = Vec::new();
        for (key, records) in &filed.by_target {
            let Some((ns, resource, environment)) = split(key) else {
                continue;
            };
            if ns == namespace {
                found.extend(
                    records
                        .iter()
                        .map(|r| Arc::new(rebuild(r, ns, resource, environment))),
                );
            }
        }
        found
    }

    /// The binding `namespace/name` with everything the loop reads of it.
    pub fn books(&self, namespace: &str, name: &str) -> Option<Books> {
        let filed = self.0.read().unwrap_or_else(|p| p.into_inner());
        let key = filed.by_name.get(object_key(namespace, name).as_str())?;
        let record = filed
            .by_target
            .get(key)?
            .iter()
            .find(|r| r.name() == name)?;
        let (_, resource, environment) = split(key)?;
        let mut binding = rebuild(record, namespace, resource, environment);
        let kept = &record.kept;
        binding.metadata.uid = kept.uid.text();
        binding.metadata.generation = kept.generation;
        let text = |i| record.texts.get(i).map(String::from);
        binding.metadata.resource_version = text(RESOURCE_VERSION);
        let spec = &mut binding.spec;
        spec.resource_release = text(RELEASE);
        spec.retain_policy = text(RETAIN_POLICY);
        spec.resource_type_environment_configs = record
            .texts
            .get(CONFIGS)
            .and_then(|text| serde_json::from_str(text).ok());
        Some(Books {
            binding,
            finalizers: kept.finalizers,
            conditions: kept.conditions.to_vec(),
        })
    }

    /// `namespace/name` of every kept binding `pick` chooses, in `namespace` or in all.
    pub fn names_where(
        &self,
        namespace: Option<&str>,
        pick: &dyn Fn(&Listed) -> bool,
    ) -> Vec<(String, String)> {
        let filed = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut found = Vec::new();
        for (key, records) in &filed.by_target {
            let Some((ns, resource, environment)) = split(key) else {
                continue;
            };
            if namespace.is_some_and(|wanted| wanted != ns) {
                continue;
            }
            for r in records {
                let listed = Listed {
                    namespace: ns,
                    name: r.name(),
                    project: r.project(),
                    resource,
                    environment,
                    release: r.texts.get(RELEASE),
                    deleting: r.deleting.is_some(),
                };
                if pick(&listed) {
                    found.push((ns.to_string(), r.name().to_string()));
                }
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Namespace, resource and environment of a [`ResourceReleaseBinding::target_key`].
fn split(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.split('\0');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// A binding holding exactly the facts the rules read.
fn rebuild(record: &Record, namespace: &str, resource: &str, environment: &str) -> Rrb {
    Rrb {
        metadata: ObjectMeta {
            name: Some(record.name().to_string()),
            namespace: Some(namespace.to_string()),
            deletion_timestamp: record.deleting.clone(),
            ..ObjectMeta::default()
        },
        spec: ResourceReleaseBindingSpec {
            owner: BindingOwner {
                project_name: record.project().to_string(),
                resource_name: resource.to_string(),
            },
            environment: environment.to_string(),
            ..ResourceReleaseBindingSpec::default()
        },
        status: None,
    }
}

/// The write side. A relist is filed apart and replaces everything when it completes, so
/// bindings deleted while the watch was down are forgotten.
#[derive(Default)]
pub struct TargetsWriter {
    shared: Targets,
    relist: Option<Filed>,
}

impl TargetsWriter {
    pub fn as_reader(&self) -> Targets {
        self.shared.clone()
    }

    fn with(&self, f: impl FnOnce(&mut Filed)) {
        f(&mut self.shared.0.write().unwrap_or_else(|p| p.into_inner()));
    }
}

impl Sink<Rrb> for TargetsWriter {
    fn apply_watcher_event(&mut self, event: &Event<Rrb>) {
        match event {
            Event::Apply(binding) => self.with(|filed| filed.insert(binding)),
            Event::Delete(binding) => self.with(|filed| {
                let meta = &binding.metadata;
                if let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
                    filed.remove(ns, name);
                }
            }),
            Event::Init => self.relist = Some(Filed::default()),
            Event::InitApply(binding) => self.relist.get_or_insert_default().insert(binding),
            Event::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                self.with(|filed| *filed = fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterView, Writers};
    use kube::ResourceExt;

    fn binding(name: &str, resource: &str, environment: &str) -> Rrb {
        let mut spec = ResourceReleaseBindingSpec::default();
        spec.owner.project_name = "p".into();
        spec.owner.resource_name = resource.into();
        spec.environment = environment.into();
        spec.resource_release = Some("r1".into());
        let mut b = Rrb::new(name, spec);
        b.metadata.namespace = Some("ns".into());
        b
    }

    fn names(view: &dyn ClusterView, resource: &str, environment: &str) -> Vec<String> {
        let mut names: Vec<String> = view
            .release_bindings_to("ns", resource, environment)
            .iter()
            .map(|b| b.name_any())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn bindings_are_found_by_target_refiled_and_forgotten_when_deleted_or_relisted_away() {
        let (mut writers, stores) = Writers::new(0);
        let keeper = &mut writers.release_bindings;
        for b in [
            binding("a", "db", "dev"),
            binding("b", "db", "dev"),
            binding("c", "db", "prod"),
        ] {
            keeper.apply_watcher_event(&Event::Apply(b));
        }
        assert_eq!(names(&stores, "db", "dev"), ["a", "b"]);
        assert_eq!(names(&stores, "db", "prod"), ["c"]);
        assert!(names(&stores, "cache", "dev").is_empty());
        assert_eq!(stores.release_bindings.len(), 3);

        keeper.apply_watcher_event(&Event::Delete(binding("a", "db", "dev")));
        assert_eq!(names(&stores, "db", "dev"), ["b"]);

        keeper.apply_watcher_event(&Event::Apply(binding("b", "db", "stage")));
        assert!(names(&stores, "db", "dev").is_empty());
        assert_eq!(names(&stores, "db", "stage"), ["b"]);
        keeper.apply_watcher_event(&Event::Delete(binding("b", "db", "stage")));
        assert!(names(&stores, "db", "stage").is_empty());
        keeper.apply_watcher_event(&Event::Apply(binding("b", "db", "dev")));

        // A relist that no longer holds b: forgotten once the relist completes.
        keeper.apply_watcher_event(&Event::Init);
        keeper.apply_watcher_event(&Event::InitApply(binding("c", "db", "prod")));
        assert_eq!(
            names(&stores, "db", "dev"),
            ["b"],
            "kept until the relist is done"
        );
        keeper.apply_watcher_event(&Event::InitDone);
        assert!(names(&stores, "db", "dev").is_empty());
        assert_eq!(names(&stores, "db", "prod"), ["c"]);
        assert_eq!(stores.release_bindings.len(), 1);
    }

    #[test]
    fn packed_texts_read_back_each_part_absent_or_empty() {
        let texts = Texts::new([Some("db-dev"), None, Some(""), Some("Retain"), None]);
        let parts: Vec<Option<&str>> = (0..5).map(|i| texts.get(i)).collect();
        assert_eq!(
            parts,
            [Some("db-dev"), None, Some(""), Some("Retain"), None]
        );
    }

    #[test]
    fn a_uid_reads_back_as_it_was_written() {
        for uid in ["0b8c6f3e-5d2a-4c1b-9e7f-a1b2c3d4e5f6", "not-a-uuid", ""] {
            assert_eq!(Uid::of(Some(uid)).text().as_deref(), Some(uid));
        }
        let upper = "0B8C6F3E-5D2A-4C1B-9E7F-A1B2C3D4E5F6";
        assert!(matches!(Uid::of(Some(upper)), Uid::Text(_)));
        assert_eq!(Uid::of(Some(upper)).text().as_deref(), Some(upper));
        assert!(matches!(
            Uid::of(Some("0b8c6f3e-5d2a-4c1b-9e7f-a1b2c3d4e5f6")),
            Uid::Uuid(_)
        ));
        assert_eq!(Uid::of(None).text(), None);
    }

    #[test]
    fn a_found_binding_holds_the_facts_the_rules_read() {
        let (mut writers, stores) = Writers::new(0);
        let mut dying = binding("a", "db", "dev");
        dying.metadata.deletion_timestamp = Some(Time(Default::default()));
        writers
            .release_bindings
            .apply_watcher_event(&Event::Apply(dying));
        let found = stores.release_bindings_to("ns", "db", "dev");
        let [found] = found.as_slice() else {
            panic!("one binding: {found:?}");
        };
        assert_eq!(found.name_any(), "a");
        assert_eq!(found.namespace().as_deref(), Some("ns"));
        assert_eq!(found.spec.owner.project_name, "p");
        assert_eq!(found.spec.owner.resource_name, "db");
        assert_eq!(found.spec.environment, "dev");
        assert!(found.metadata.deletion_timestamp.is_some());
        let all = stores.release_bindings("ns");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].spec, found.spec);
        assert!(stores.release_bindings("other").is_empty());
    }
}
