//! The live cluster view: one watch per kind feeding the reflector stores. Each object is read
//! through [`Seen`], so one that cannot be decoded is recorded as unreadable instead of failing
//! its kind's list or watch.

use super::facts::{Seen, Watched};
use super::{Announcer, Changed, Sink, Stores, Unreadable, Unreadables, Writers, object_key};
use crate::kinds::Kind;
use crate::metrics::Metrics;
use futures::StreamExt;
use kube::api::{Api, ObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};
use kube::{Client, Resource};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Starts a watch per kind and returns the stores they fill. The watches run until the process
/// ends; failures back off and resume.
pub fn start(client: Client, metrics: Arc<Metrics>) -> Stores {
    let (writers, mut stores) = Writers::new(super::KINDS);
    stores.changed = Some(Announcer::new(super::CHANGES_BUFFERED));
    let Writers {
        environments,
        projects,
        resources,
        resource_types,
        cluster_resource_types,
        resource_releases,
        release_bindings,
        promises,
        promise_revisions,
        resource_bindings,
    } = writers;
    let spawn = |stream: futures::stream::BoxStream<'static, ()>| {
        tokio::spawn(stream.for_each(|_| async {}));
    };
    let (c, s, m) = (&client, &stores, &metrics);
    spawn(watch(c, environments, s, m));
    spawn(watch(c, projects, s, m));
    spawn(watch(c, resources, s, m));
    spawn(watch(c, resource_types, s, m));
    spawn(watch(c, cluster_resource_types, s, m));
    spawn(watch(c, resource_releases, s, m));
    spawn(watch(c, release_bindings, s, m));
    spawn(watch(c, promises, s, m));
    spawn(watch(c, promise_revisions, s, m));
    spawn(watch(c, resource_bindings, s, m));
    stores
}

fn watch<K: Watched>(
    client: &Client,
    writer: impl Sink<K>,
    stores: &Stores,
    metrics: &Arc<Metrics>,
) -> futures::stream::BoxStream<'static, ()> {
    let api: Api<Seen<K>> = Api::all(client.clone());
    let kind = K::KIND.name();
    let stores = stores.clone();
    let mut feed = Feed {
        kind: K::KIND,
        changed: stores.changed.clone(),
        writer: Box::new(writer),
        unreadable: stores.unreadable.clone(),
        listing: HashMap::new(),
        present: K::KIND.deletion_cascades().then(Present::default),
        metrics: metrics.clone(),
    };
    let metrics = metrics.clone();
    let mut synced = false;
    watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |event| match event {
            Ok(event) => {
                let done = matches!(event, Event::InitDone);
                feed.apply(event);
                if done && !synced {
                    synced = true;
                    stores.mark_synced();
                    tracing::info!(kind, "watch synced");
                }
            }
            Err(error) => failed(kind, &error, &mut synced, &stores, &metrics),
        })
        .boxed()
}

/// Applies one kind's watch events to its store and to the record of unreadable objects.
struct Feed<K: Watched> {
    kind: Kind,
    /// Told of every object applied, after the store has it.
    changed: Option<Announcer>,
    writer: Box<dyn Sink<K>>,
    unreadable: Unreadables,
    /// The unreadable objects of the list in progress.
    listing: HashMap<String, Unreadable>,
    /// For a kind whose deletions cascade: which objects exist, to tell which ones a relist no
    /// longer shows (deleted while the watch was down).
    present: Option<Present>,
    metrics: Arc<Metrics>,
}

/// `(namespace, name)` of an object.
type ObjectId = (Option<String>, String);

/// The objects of a kind the watch has shown, and those of the list in progress.
#[derive(Default)]
struct Present {
    known: HashSet<ObjectId>,
    listing: HashSet<ObjectId>,
}

impl Present {
    /// Follows `event`; on a completed list, returns the objects it no longer shows.
    fn follow<K: Watched>(&mut self, event: &Event<Seen<K>>) -> Vec<ObjectId> {
        let id = |seen: &Seen<K>| {
            let meta = seen.meta();
            (
                meta.namespace.clone(),
                meta.name.clone().unwrap_or_default(),
            )
        };
        match event {
            Event::Init => self.listing.clear(),
            Event::InitApply(seen) => {
                self.listing.insert(id(seen));
            }
            Event::InitDone => {
                let listed = std::mem::take(&mut self.listing);
                let known = std::mem::replace(&mut self.known, listed);
                return known.difference(&self.known).cloned().collect();
            }
            Event::Apply(seen) => {
                self.known.insert(id(seen));
            }
            Event::Delete(seen) => {
                self.known.remove(&id(seen));
            }
        }
        Vec::new()
    }
}

impl<K: Watched> Feed<K> {
    /// Stores the event, then announces it: an applied or deleted object by name, a completed
    /// list as the kind relisted (its objects are only in the store from then on).
    fn apply(&mut self, event: Event<Seen<K>>) {
        let announced = match &event {
            Event::Apply(seen) => Some((seen, false)),
            Event::Delete(seen) => Some((seen, true)),
            Event::Init | Event::InitApply(_) | Event::InitDone => None,
        }
        .and_then(|(seen, gone)| {
            let meta = seen.meta();
            let lookup = match seen {
                Seen::Readable(object) => object.lookup_key(),
                Seen::Unreadable { .. } => None,
            };
            Some((meta.namespace.clone(), meta.name.clone()?, gone, lookup))
        });
        let relisted = matches!(event, Event::InitDone);
        let vanished = match &mut self.present {
            Some(present) => present.follow(&event),
            None => Vec::new(),
        };
        self.store(event);
        let Some(changed) = &self.changed else {
            return;
        };
        for (namespace, name) in vanished {
            tracing::info!(
                kind = self.kind.name(),
                namespace,
                name,
                "deleted while the watch was down"
            );
            changed.announce(Changed {
                kind: self.kind,
                namespace,
                name,
                gone: true,
                relisted: false,
                lookup: None,
            });
        }
        if let Some((namespace, name, gone, lookup)) = announced {
            changed.announce(Changed {
                kind: self.kind,
                namespace,
                name,
                gone,
                relisted: false,
                lookup,
            });
        } else if relisted {
            changed.announce(Changed {
                kind: self.kind,
                namespace: None,
                name: String::new(),
                gone: false,
                relisted: true,
                lookup: None,
            });
        }
    }

    fn store(&mut self, event: Event<Seen<K>>) {
        match event {
            Event::Init => {
                self.listing.clear();
                self.writer.apply_watcher_event(&Event::Init);
            }
            Event::InitApply(Seen::Readable(object)) => {
                self.writer.apply_watcher_event(&Event::InitApply(object));
            }
            Event::InitApply(Seen::Unreadable { metadata, reason }) => {
                let (key, entry) = record_of(&metadata, reason);
                self.listing.insert(key, entry);
            }
            Event::InitDone => {
                self.writer.apply_watcher_event(&Event::InitDone);
                let listed = std::mem::take(&mut self.listing);
                for (key, entry) in self.unreadable.replace(self.kind.name(), listed) {
                    self.report(&key, &entry);
                }
            }
            Event::Apply(Seen::Readable(object)) => {
                self.unreadable
                    .forget(self.kind.name(), &key_of(object.meta()));
                self.writer.apply_watcher_event(&Event::Apply(object));
            }
            Event::Apply(seen @ Seen::Unreadable { .. }) => {
                let placeholder = seen.clone().into_object();
                if let Seen::Unreadable { metadata, reason } = seen {
                    let (key, entry) = record_of(&metadata, reason);
                    if self
                        .unreadable
                        .record(self.kind.name(), key.clone(), entry.clone())
                    {
                        self.report(&key, &entry);
                    }
                }
                self.writer.apply_watcher_event(&Event::Delete(placeholder));
            }
            Event::Delete(seen) => {
                self.unreadable
                    .forget(self.kind.name(), &key_of(seen.meta()));
                self.writer
                    .apply_watcher_event(&Event::Delete(seen.into_object()));
            }
        }
    }

    /// Says once per object version that it cannot be read; never its contents.
    fn report(&self, key: &str, entry: &Unreadable) {
        self.metrics.unreadable_object(self.kind.name());
        tracing::warn!(
            kind = self.kind.name(),
            object = key,
            uid = entry.uid,
            resource_version = entry.resource_version,
            reason = entry.reason,
            "object cannot be read; rules that need it refuse until it is fixed or deleted"
        );
    }
}

fn key_of(meta: &ObjectMeta) -> String {
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    object_key(namespace, meta.name.as_deref().unwrap_or_default())
}

fn record_of(metadata: &ObjectMeta, reason: String) -> (String, Unreadable) {
    let entry = Unreadable {
        uid: metadata.uid.clone().unwrap_or_default(),
        resource_version: metadata.resource_version.clone().unwrap_or_default(),
        reason,
    };
    (key_of(metadata), entry)
}

fn failed(
    kind: &str,
    error: &watcher::Error,
    synced: &mut bool,
    stores: &Stores,
    metrics: &Metrics,
) {
    metrics.watch_restart(kind);
    if is_not_installed(error) && !*synced {
        *synced = true;
        stores.mark_synced();
        tracing::warn!(
            kind,
            "CRD not installed; treating {kind} as empty until it is"
        );
    } else {
        tracing::warn!(kind, %error, "watch failed; backing off");
    }
}

fn is_not_installed(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterView;
    use crate::crd::Resource as ChoreoResource;
    use crate::kinds::Family;
    use serde_json::json;

    fn seen(name: &str, project: serde_json::Value, version: &str) -> Seen<ChoreoResource> {
        let object = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                                         "resourceVersion": version},
                            "spec": {"owner": {"projectName": project}, "type": {"name": "t"}}});
        Seen::read(&object.to_string())
    }

    fn feed<K: Watched>(stores: &Stores, writer: crate::cluster::Keeper<K>) -> Feed<K> {
        Feed {
            kind: K::KIND,
            changed: stores.changed.clone(),
            writer: Box::new(writer),
            unreadable: stores.unreadable.clone(),
            listing: HashMap::new(),
            present: K::KIND.deletion_cascades().then(Present::default),
            metrics: Arc::new(Metrics::default()),
        }
    }

    #[test]
    fn a_relist_announces_the_objects_it_no_longer_shows_as_deleted_and_keeps_them() {
        let (writers, mut stores) = Writers::new(0);
        stores.changed = Some(Announcer::new(8));
        let mut deletions = stores.deletions().expect("a live view announces deletions");
        let mut feed = feed(&stores, writers.resources);
        let list = |feed: &mut Feed<ChoreoResource>, names: &[&str]| {
            feed.apply(Event::Init);
            for name in names {
                feed.apply(Event::InitApply(seen(name, json!("doclet"), "1")));
            }
            feed.apply(Event::InitDone);
        };
        list(&mut feed, &["a", "b"]);
        assert!(
            deletions.try_recv().is_err(),
            "the first list deletes nothing"
        );
        feed.apply(Event::Apply(seen("c", json!(12), "2")));
        feed.apply(Event::Apply(seen("d", json!("doclet"), "3")));
        feed.apply(Event::Delete(seen("d", json!("doclet"), "4")));
        assert_eq!(deletions.try_recv().map(|d| d.name).ok(), Some("d".into()));
        list(&mut feed, &["a"]);
        let mut gone: Vec<String> = std::iter::from_fn(|| deletions.try_recv().ok())
            .inspect(|d| assert!(d.gone && d.kind == Kind::Resource))
            .map(|d| d.name)
            .collect();
        gone.sort();
        assert_eq!(
            gone,
            ["b", "c"],
            "an unreadable one too; never one deleted already"
        );
        assert!(stores.resource("ns", "b").is_none());
        let recent = |since| -> Vec<String> {
            let recent = stores.recent_deletions(since).into_iter();
            recent.map(|d| d.name).collect()
        };
        assert_eq!(recent(None).len(), 3);
        assert_eq!(recent(None)[0], "d");
        assert!(recent(Some(std::time::Instant::now())).is_empty());
    }

    fn reported(feed: &Feed<ChoreoResource>) -> bool {
        let text = feed.metrics.render(&[]);
        text.contains("bindguard_unreadable_objects_total{kind=\"Resource\"} 1\n")
    }

    #[test]
    fn an_unreadable_object_is_recorded_once_and_the_rest_of_the_list_is_kept() {
        let (writers, stores) = Writers::new(0);
        let mut feed = feed(&stores, writers.resources);
        for _ in 0..2 {
            feed.apply(Event::Init);
            feed.apply(Event::InitApply(seen("good", json!("doclet"), "1")));
            feed.apply(Event::InitApply(seen("bad", json!(12), "1")));
            feed.apply(Event::InitDone);
        }
        assert!(stores.resource("ns", "good").is_some());
        assert!(stores.resource("ns", "bad").is_none());
        let reason = stores
            .unreadable("Resource", "ns", "bad")
            .expect("recorded");
        assert!(reason.contains("spec.owner.projectName"), "{reason}");
        assert!(stores.unreadable("Resource", "ns", "good").is_none());
        assert!(reported(&feed), "reported once, not once per list");
    }

    #[test]
    fn an_object_turning_unreadable_leaves_the_store_and_returns_when_fixed() {
        let (writers, stores) = Writers::new(0);
        let mut feed = feed(&stores, writers.resources);
        feed.apply(Event::Apply(seen("r", json!("doclet"), "1")));
        feed.apply(Event::Apply(seen("r", json!({"nested": true}), "2")));
        assert!(stores.resource("ns", "r").is_none());
        assert!(stores.unreadable("Resource", "ns", "r").is_some());
        assert!(reported(&feed));
        feed.apply(Event::Apply(seen("r", json!("billing"), "3")));
        assert_eq!(
            stores.resource("ns", "r").unwrap().spec.owner.project_name,
            "billing"
        );
        assert!(stores.unreadable("Resource", "ns", "r").is_none());
        feed.apply(Event::Apply(seen("r", json!(1), "4")));
        feed.apply(Event::Delete(seen("r", json!(1), "4")));
        assert!(stores.unreadable("Resource", "ns", "r").is_none());
        assert!(stores.resource("ns", "r").is_none());
    }

    #[test]
    fn every_applied_object_is_announced_after_the_store_has_it() {
        let (writers, mut stores) = Writers::new(0);
        stores.changed = Some(Announcer::new(8));
        let mut changes = stores
            .changes(Family::OpenChoreo)
            .expect("a live view announces changes");
        let mut kratix = stores.changes(Family::Kratix).expect("on two channels");
        let mut deletions = stores.deletions().expect("and deletions");
        let mut feed = feed(&stores, writers.resources);
        feed.apply(Event::Init);
        feed.apply(Event::InitApply(seen("listed", json!("doclet"), "1")));
        feed.apply(Event::InitDone);
        feed.apply(Event::Apply(seen("r", json!("doclet"), "2")));
        feed.apply(Event::Apply(seen("r", json!(12), "3")));
        feed.apply(Event::Delete(seen("r", json!(12), "3")));
        let relist = changes.try_recv().expect("the completed list");
        assert!(relist.relisted && relist.name.is_empty() && relist.kind == Kind::Resource);
        let mut names = Vec::new();
        while let Ok(change) = changes.try_recv() {
            assert_eq!(change.kind, Kind::Resource);
            assert_eq!(change.namespace.as_deref(), Some("ns"));
            assert!(!change.relisted);
            names.push((change.name, change.gone));
        }
        let said = |name: &str, gone| (name.to_string(), gone);
        let expected = [said("r", false), said("r", false), said("r", true)];
        assert_eq!(
            names, expected,
            "listed objects only as the relist; unreadable versions too; only the Delete is gone"
        );
        let deleted = deletions
            .try_recv()
            .expect("the deletion, on its own channel");
        assert_eq!((deleted.name.as_str(), deleted.gone), ("r", true));
        assert!(deletions.try_recv().is_err(), "nothing else");
        assert!(
            kratix.try_recv().is_err(),
            "a Resource is not a Kratix kind"
        );
        assert!(stores.resource("ns", "listed").is_some());
    }

    #[test]
    fn a_deleted_binding_is_announced_with_the_request_it_bound() {
        let (writers, mut stores) = Writers::new(0);
        stores.changed = Some(Announcer::new(8));
        let mut changes = stores
            .changes(Family::Kratix)
            .expect("a live view announces changes");
        let mut openchoreo = stores.changes(Family::OpenChoreo).expect("two channels");
        let mut feed = feed(&stores, writers.resource_bindings);
        let binding = json!({"metadata": {"name": "cache-x1", "namespace": "ns"},
            "spec": {"promiseRef": {"name": "redis"}, "resourceRef": {"name": "cache"}, "version": "v1"}});
        let read = || Seen::<crate::crd::ResourceBinding>::read(&binding.to_string());
        feed.apply(Event::Apply(read()));
        feed.apply(Event::Delete(read()));
        let key = crate::crd::ResourceBinding::request_key("ns", "redis", "cache");
        for gone in [false, true] {
            let change = changes.try_recv().expect("announced");
            assert_eq!((change.gone, change.lookup.as_deref()), (gone, Some(&*key)));
        }
        assert!(stores.resource_binding("ns", "cache-x1").is_none());
        assert!(
            openchoreo.try_recv().is_err(),
            "a Kratix binding is not an OpenChoreo kind"
        );
    }
}
