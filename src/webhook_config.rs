//! The ValidatingWebhookConfiguration and MutatingWebhookConfiguration that point the API
//! server at bindguard.

use crate::kinds::{self, Judged};
use serde_json::{Value, json};

pub const NAME: &str = "bindguard";
/// The refusing rules: `failurePolicy: Fail`, so nothing they guard slips by while bindguard is
/// down.
pub const VALIDATING_WEBHOOK: &str = "validate.bindguard.dev";
/// The rules that only ever warn: `failurePolicy: Ignore`, so an outage never blocks them.
pub const WARNING_WEBHOOK: &str = "warn.bindguard.dev";
pub const MUTATING_WEBHOOK: &str = "mutate.bindguard.dev";
/// bindguard's own namespace: never sent to the webhook, so it can always be repaired.
pub const OWN_NAMESPACE: &str = "bindguard-system";
pub const TIMEOUT_SECONDS: u64 = 5;

/// Where the API server reaches the webhook.
pub enum Target {
    /// A Service `namespace/name` on port 443.
    Service { namespace: String, name: String },
    /// A base URL; `/validate` and `/mutate` are appended.
    Url(String),
}

impl Target {
    /// Reads `NS/NAME` as a Service target.
    pub fn service(spec: &str) -> anyhow::Result<Target> {
        match spec.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Target::Service {
                    namespace: ns.into(),
                    name: name.into(),
                })
            }
            _ => anyhow::bail!("--service must be NAMESPACE/NAME, got {spec:?}"),
        }
    }

    fn client_config(&self, path: &str, ca_bundle: Option<&str>) -> Value {
        let mut config = match self {
            Target::Service { namespace, name } => {
                json!({"service": {"namespace": namespace, "name": name, "path": path, "port": 443}})
            }
            Target::Url(base) => json!({"url": format!("{}{path}", base.trim_end_matches('/'))}),
        };
        if let Some(ca) = ca_bundle {
            config["caBundle"] = json!(ca);
        }
        config
    }
}

/// Both configurations; `ca_bundle` is the base64 PEM CA, or `None` for cert-manager injection.
pub fn configurations(target: &Target, ca_bundle: Option<&str>) -> [Value; 2] {
    let validating = webhook(
        VALIDATING_WEBHOOK,
        target.client_config("/validate", ca_bundle),
        validating_rules(),
        "Fail",
    );
    let warning = webhook(
        WARNING_WEBHOOK,
        target.client_config("/warn", ca_bundle),
        warning_rules(),
        "Ignore",
    );
    let mut mutating = webhook(
        MUTATING_WEBHOOK,
        target.client_config("/mutate", ca_bundle),
        mutating_rules(),
        "Fail",
    );
    mutating["reinvocationPolicy"] = json!("Never");
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": NAME},
            "webhooks": [validating, warning],
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": NAME},
            "webhooks": [mutating],
        }),
    ]
}

fn webhook(name: &str, client_config: Value, rules: Value, failure_policy: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": client_config,
        "rules": rules,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": [OWN_NAMESPACE],
        }]},
    })
}

/// One rule per kind `operations` picks operations of, in the table's order.
fn rules(operations: impl Fn(&Judged) -> &'static [&'static str], status: bool) -> Value {
    let rules: Vec<Value> = kinds::all()
        .iter()
        .filter(|k| !operations(&k.judged).is_empty())
        .map(|k| {
            let mut resources = vec![k.plural.clone()];
            if status && k.judged.status {
                resources.push(format!("{}/status", k.plural));
            }
            json!({
                "apiGroups": [k.group],
                "apiVersions": [k.version],
                "resources": resources,
                "operations": operations(&k.judged),
                "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            })
        })
        .collect();
    Value::Array(rules)
}

/// Every operation a rule can refuse ([`Judged::refuse`], status writes included).
fn validating_rules() -> Value {
    rules(|j| j.refuse, true)
}

/// Operations whose rules only warn ([`Judged::warn`]).
fn warning_rules() -> Value {
    rules(|j| j.warn, false)
}

fn mutating_rules() -> Value {
    rules(|j| j.mutate, false)
}

/// The cert-manager variant: no caBundle, an annotation asks cert-manager to inject it.
pub fn cert_manager_variant(target: &Target, certificate: &str) -> [Value; 2] {
    let mut configs = configurations(target, None);
    for config in &mut configs {
        config["metadata"]["annotations"] = json!({"cert-manager.io/inject-ca-from": certificate});
    }
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (resource, operation) pairs a validating webhook is called for.
    fn calls(webhook: &Value) -> Vec<(String, String)> {
        let mut calls = Vec::new();
        for rule in webhook["rules"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for operation in rule["operations"].as_array().unwrap() {
                    let pair = (resource.to_string(), operation.to_string());
                    calls.push(pair);
                }
            }
        }
        calls
    }

    #[test]
    fn refusing_rules_fail_closed_and_warning_rules_fail_open_without_overlap() {
        let [validating, _] = configurations(&Target::Url("https://x".into()), None);
        let [refusing, warning] = [&validating["webhooks"][0], &validating["webhooks"][1]];
        assert_eq!(refusing["failurePolicy"], "Fail");
        assert_eq!(refusing["clientConfig"]["url"], "https://x/validate");
        assert_eq!(warning["failurePolicy"], "Ignore");
        assert_eq!(warning["clientConfig"]["url"], "https://x/warn");
        let (refused, warned) = (calls(refusing), calls(warning));
        assert!(warned.iter().all(|call| !refused.contains(call)));
        assert!(warned.contains(&("\"promises\"".into(), "\"UPDATE\"".into())));
        assert!(refused.contains(&("\"promiserevisions\"".into(), "\"DELETE\"".into())));
    }
}
