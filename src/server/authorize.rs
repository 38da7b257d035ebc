//! Asking the API server whether a requester may act on a project (`--authorize-projects`):
//! one SubjectAccessReview per access, answers cached briefly.

use crate::admission::UserInfo;
use crate::policy::projects::{self, Access, Pending};
use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Answers kept at most; the cache is emptied when full.
const CACHE_ENTRIES: usize = 10_000;

/// Whether `user` has `access`. `Err` when it could not be found out.
pub trait Authorizer: Send + Sync {
    fn allows<'a>(
        &'a self,
        user: &'a UserInfo,
        access: &'a Access,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// The refusal for the first access `pending` lacks, `None` when it has them all.
pub async fn check(
    authorizer: &dyn Authorizer,
    pending: &Pending,
) -> Result<Option<String>, String> {
    for access in &pending.accesses {
        if !authorizer.allows(&pending.user, access).await? {
            return Ok(Some(projects::refusal(&pending.user.username, access)));
        }
    }
    Ok(None)
}

/// Asks the API server with a SubjectAccessReview.
pub struct SubjectAccessReviews {
    api: Api<SubjectAccessReview>,
}

impl SubjectAccessReviews {
    pub fn new(client: kube::Client) -> Self {
        SubjectAccessReviews {
            api: Api::all(client),
        }
    }
}

/// The SubjectAccessReview asking whether `user` has `access`.
pub fn review_of(user: &UserInfo, access: &Access) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.username.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(projects::GROUP.into()),
                resource: Some(projects::RESOURCE.into()),
                subresource: Some(projects::SUBRESOURCE.into()),
                name: Some(access.project.clone()),
                namespace: Some(access.namespace.clone()),
                verb: Some(access.verb.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

impl Authorizer for SubjectAccessReviews {
    fn allows<'a>(
        &'a self,
        user: &'a UserInfo,
        access: &'a Access,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let answer = self
                .api
                .create(&PostParams::default(), &review_of(user, access))
                .await
                .map_err(|e| format!("SubjectAccessReview failed: {e}"))?;
            Ok(answer.status.is_some_and(|s| s.allowed))
        })
    }
}

type Key = (UserInfo, Access);

/// Reuses answers of `inner` for [`CACHE_TTL`]; failures are never cached.
pub struct Cached {
    inner: Arc<dyn Authorizer>,
    ttl: Duration,
    answers: Mutex<HashMap<Key, (bool, Instant)>>,
}

impl Cached {
    pub fn new(inner: Arc<dyn Authorizer>, ttl: Duration) -> Self {
        Cached {
            inner,
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &Key) -> Option<bool> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let (allowed, at) = answers.get(key)?;
        (at.elapsed() < self.ttl).then_some(*allowed)
    }

    fn remember(&self, key: Key, allowed: bool) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= CACHE_ENTRIES {
            answers.clear();
        }
        answers.insert(key, (allowed, Instant::now()));
    }
}

impl Authorizer for Cached {
    fn allows<'a>(
        &'a self,
        user: &'a UserInfo,
        access: &'a Access,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let key = (user.clone(), access.clone());
            if let Some(allowed) = self.cached(&key) {
                return Ok(allowed);
            }
            let allowed = self.inner.allows(user, access).await?;
            self.remember(key, allowed);
            Ok(allowed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Allows `alice` on project `alpha` only; counts the questions; fails for `broken`.
    #[derive(Default)]
    struct Static {
        asked: AtomicUsize,
    }

    impl Authorizer for Static {
        fn allows<'a>(
            &'a self,
            user: &'a UserInfo,
            access: &'a Access,
        ) -> BoxFuture<'a, Result<bool, String>> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let answer = match (user.username.as_str(), access.project.as_str()) {
                ("broken", _) => Err("unreachable".to_string()),
                (user, project) => Ok(user == "alice" && project == "alpha"),
            };
            Box::pin(async move { answer })
        }
    }

    fn pending(user: &str, projects: &[&str]) -> Pending {
        Pending {
            user: UserInfo {
                username: user.into(),
                ..UserInfo::default()
            },
            accesses: projects
                .iter()
                .map(|p| Access {
                    verb: "update",
                    namespace: "ns".into(),
                    project: p.to_string(),
                })
                .collect(),
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn every_access_is_needed() {
        let authorizer = Static::default();
        assert_eq!(
            run(check(&authorizer, &pending("alice", &["alpha"]))),
            Ok(None)
        );
        let refused = run(check(&authorizer, &pending("alice", &["alpha", "beta"])));
        let message = refused.unwrap().expect("refused");
        assert!(message.contains(r#"project "beta""#), "{message}");
        assert!(run(check(&authorizer, &pending("broken", &["alpha"]))).is_err());
    }

    #[test]
    fn answers_are_reused_until_they_expire_and_failures_never_are() {
        let inner = Arc::new(Static::default());
        let cached = Cached::new(inner.clone(), Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(run(check(&cached, &pending("alice", &["alpha"]))), Ok(None));
            assert!(
                run(check(&cached, &pending("bob", &["alpha"])))
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(inner.asked.load(Ordering::SeqCst), 2);
        for _ in 0..2 {
            assert!(run(check(&cached, &pending("broken", &["alpha"]))).is_err());
        }
        assert_eq!(inner.asked.load(Ordering::SeqCst), 4);
        let expired = Cached::new(inner.clone(), Duration::ZERO);
        run(check(&expired, &pending("alice", &["alpha"]))).unwrap();
        run(check(&expired, &pending("alice", &["alpha"]))).unwrap();
        assert_eq!(inner.asked.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn the_review_asks_about_the_projects_releasebindings() {
        let user = UserInfo {
            username: "alice".into(),
            groups: vec!["team-a".into()],
            ..UserInfo::default()
        };
        let access = Access {
            verb: "delete",
            namespace: "ns".into(),
            project: "alpha".into(),
        };
        let review = serde_json::to_value(review_of(&user, &access)).unwrap();
        assert_eq!(review["spec"]["user"], "alice");
        assert_eq!(review["spec"]["groups"][0], "team-a");
        let attributes = &review["spec"]["resourceAttributes"];
        assert_eq!(attributes["group"], "openchoreo.dev");
        assert_eq!(attributes["resource"], "projects");
        assert_eq!(attributes["subresource"], "releasebindings");
        assert_eq!(attributes["name"], "alpha");
        assert_eq!(attributes["namespace"], "ns");
        assert_eq!(attributes["verb"], "delete");
    }
}
