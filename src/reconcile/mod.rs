//! The bookkeeping loops: Kratix revisions and bindings, OpenChoreo binding finalizers and
//! conditions. Leader-elected; controllers run only while this replica holds the Lease.

pub mod conditions;
pub mod kratix;
pub mod leader;
pub mod openchoreo;
pub mod promote;

use crate::cluster::ClusterView;
use crate::metrics::Metrics;
use crate::schema::SchemaCache;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::sync::Arc;
use std::time::Duration;

/// What every reconcile shares.
pub struct Ctx {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The same cluster view admission reads: facts come from here, not from API reads.
    pub view: Arc<dyn ClusterView>,
    pub schemas: SchemaCache,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

impl Ctx {
    /// Publishes an Event on `object`; a failure is logged, never fatal.
    pub async fn event<K>(&self, object: &K, warning: bool, reason: &str, note: String)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.event_ref(&object.object_ref(&()), warning, reason, note)
            .await;
    }

    pub async fn event_ref(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }
}

/// The current time as Kubernetes writes it in conditions.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Requeue with backoff on error: counted, logged, retried after a while.
pub fn on_error(kind: &str, error: &Error, ctx: &Ctx) -> Action {
    ctx.metrics.reconcile(kind, "error");
    tracing::warn!(kind, %error, "reconcile failed; requeueing");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the loop until the process ends: follow until leading, then run the controllers while
/// renewing; a lost lease stops them and goes back to following.
pub async fn run(client: Client, metrics: Arc<Metrics>, view: Arc<dyn ClusterView>) {
    let mut elector = leader::Elector::new(client.clone());
    let reporter = Reporter {
        controller: "bindguard".into(),
        instance: Some(elector.identity.clone()),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics,
        view,
        schemas: SchemaCache::new(),
    });
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let leading = match elector.try_lead().await {
            Ok(leading) => leading,
            Err(error) => {
                tracing::warn!(%error, "lease renewal failed");
                false
            }
        };
        match (leading, running.is_some()) {
            (true, false) => {
                tracing::info!(identity = %elector.identity, "leading: starting controllers");
                running = Some(tokio::spawn(controllers(ctx.clone())));
            }
            (false, true) => {
                tracing::warn!("lost the lease: stopping controllers");
                if let Some(task) = running.take() {
                    task.abort();
                }
            }
            _ => {}
        }
        let pause = if leading {
            leader::RENEW_EVERY
        } else {
            Duration::from_secs(2)
        };
        tokio::time::sleep(pause).await;
    }
}

async fn controllers(ctx: Arc<Ctx>) {
    tokio::join!(
        kratix::run(ctx.clone()),
        openchoreo::run(ctx.clone()),
        openchoreo::cascade_resource_deletion(ctx),
    );
}
