//! Leader election with a `coordination.k8s.io/v1` Lease: acquire or renew with a
//! resourceVersion-guarded replace, so only one replica's controllers write.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Error};

pub const LEASE_NAME: &str = "bindguard-reconcile";
/// How long a Lease holds without renewal before another replica may take it.
pub const LEASE_SECONDS: i32 = 15;
/// The leader stops acting when no renewal has succeeded for this long: well inside
/// `LEASE_SECONDS`, so it has stopped before anyone else can take over.
pub const RENEW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// How often the leader renews and a follower tries to acquire.
pub const RETRY_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

// A leader notices a missed deadline at most one retry period late: still inside the lease.
const _: () = assert!(RENEW_DEADLINE.as_secs() + RETRY_PERIOD.as_secs() < LEASE_SECONDS as u64);

/// This replica's identity: POD_NAME, else hostname and pid.
pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "bindguard".into());
    format!("{host}-{}", std::process::id())
}

/// POD_NAMESPACE, else `bindguard-system`.
pub fn preferred_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "bindguard-system".into())
}

pub struct Elector {
    client: Client,
    namespace: String,
    pub identity: String,
}

/// What to do with the lease we read, as a pure decision.
#[derive(Debug, PartialEq)]
pub enum Step {
    Renew,
    TakeOver,
    Follow,
}

/// Whether `me` may hold `spec` at `now`.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else {
        return Step::TakeOver;
    };
    if spec.holder_identity.as_deref() == Some(me) {
        return Step::Renew;
    }
    let seconds = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS);
    let expired = match &spec.renew_time {
        Some(MicroTime(t)) => *t + SignedDuration::from_secs(i64::from(seconds)) < now,
        None => true,
    };
    if expired || spec.holder_identity.as_deref().unwrap_or("").is_empty() {
        Step::TakeOver
    } else {
        Step::Follow
    }
}

/// The spec that gives up `spec` when `me` holds it: no holder, a one-second duration renewed
/// `now`; `None` when someone else holds it.
pub fn released(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Option<LeaseSpec> {
    let spec = spec?;
    if spec.holder_identity.as_deref() != Some(me) {
        return None;
    }
    Some(LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..spec.clone()
    })
}

impl Elector {
    pub fn new(client: Client) -> Self {
        Elector {
            client,
            namespace: preferred_namespace(),
            identity: identity(),
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` while leading. A conflict means someone else
    /// wrote first: not leading this round.
    pub async fn try_lead(&mut self) -> Result<bool, Error> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let now = Timestamp::now();
        let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
            return self.create(now).await;
        };
        let step = decide(lease.spec.as_ref(), &self.identity, now);
        if step == Step::Follow {
            return Ok(false);
        }
        let spec = lease.spec.get_or_insert_with(Default::default);
        if step == Step::TakeOver {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(LEASE_SECONDS);
        spec.renew_time = Some(MicroTime(now));
        match api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this replica holds it: no holder, expired at once, so the next
    /// follower to try takes it.
    pub async fn release(&self) -> Result<(), Error> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        let Some(spec) = released(lease.spec.as_ref(), &self.identity, Timestamp::now()) else {
            return Ok(());
        };
        lease.spec = Some(spec);
        api.replace(LEASE_NAME, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    async fn create(&mut self, now: Timestamp) -> Result<bool, Error> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(Error::Api(s)) if s.code == 409 => Ok(false),
            Err(Error::Api(s)) if s.code == 404 && self.namespace != "default" => {
                tracing::warn!(namespace = %self.namespace, "lease namespace does not exist; using default");
                self.namespace = "default".into();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }
    }

    #[test]
    fn holder_renews_others_follow_until_expiry() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "me", now), Step::TakeOver);
        assert_eq!(decide(Some(&spec("me", now)), "me", now), Step::Renew);
        assert_eq!(decide(Some(&spec("other", now)), "me", now), Step::Follow);
        let old = now - SignedDuration::from_secs(60);
        assert_eq!(decide(Some(&spec("other", old)), "me", now), Step::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once_and_only_the_holder_releases() {
        let now = Timestamp::now();
        assert_eq!(released(Some(&spec("other", now)), "me", now), None);
        assert_eq!(released(None, "me", now), None);
        let given_up = released(Some(&spec("me", now)), "me", now).unwrap();
        assert_eq!(given_up.holder_identity, None);
        assert_eq!(decide(Some(&given_up), "next", now), Step::TakeOver);
    }
}
