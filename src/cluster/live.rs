//! The live cluster view: one watch per kind feeding the reflector stores.

use super::{Stores, Writers};
use crate::metrics::Metrics;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Starts a watch per kind and returns the stores they fill. The watches run until the process
/// ends; failures back off and resume.
pub fn start(client: Client, metrics: Arc<Metrics>) -> Stores {
    let (writers, stores) = Writers::new(super::KINDS);
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
    let c = &client;
    let (s, m) = (&stores, &metrics);
    spawn(watch(Api::all(c.clone()), environments, s, m));
    spawn(watch(Api::all(c.clone()), projects, s, m));
    spawn(watch(Api::all(c.clone()), resources, s, m));
    spawn(watch(Api::all(c.clone()), resource_types, s, m));
    spawn(watch(Api::all(c.clone()), cluster_resource_types, s, m));
    spawn(watch(Api::all(c.clone()), resource_releases, s, m));
    spawn(watch(Api::all(c.clone()), release_bindings, s, m));
    spawn(watch(Api::all(c.clone()), promises, s, m));
    spawn(watch(Api::all(c.clone()), promise_revisions, s, m));
    spawn(watch(Api::all(c.clone()), resource_bindings, s, m));
    stores
}

/// Drops what the policy never reads and what would only cost memory.
pub fn strip<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

fn watch<K>(
    api: Api<K>,
    writer: Writer<K>,
    stores: &Stores,
    metrics: &Arc<Metrics>,
) -> futures::stream::BoxStream<'static, ()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let stores = stores.clone();
    let metrics = metrics.clone();
    let mut synced = false;
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip::<K>);
    reflector(writer, events)
        .map(move |event| {
            observe(&kind, event, &mut synced, &stores, &metrics);
        })
        .boxed()
}

fn observe<K: ResourceExt>(
    kind: &str,
    event: watcher::Result<watcher::Event<K>>,
    synced: &mut bool,
    stores: &Stores,
    metrics: &Metrics,
) {
    match event {
        Ok(watcher::Event::InitDone) if !*synced => {
            *synced = true;
            stores.mark_synced();
            tracing::info!(kind, "watch synced");
        }
        Ok(_) => {}
        Err(error) => {
            metrics.watch_restart(kind);
            if is_not_installed(&error) && !*synced {
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
    }
}

fn is_not_installed(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}
