//! The ValidatingWebhookConfiguration and MutatingWebhookConfiguration that point the API
//! server at bindguard.

use serde_json::{Value, json};

pub const NAME: &str = "bindguard";
pub const VALIDATING_WEBHOOK: &str = "validate.bindguard.dev";
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
    );
    let mut mutating = webhook(
        MUTATING_WEBHOOK,
        target.client_config("/mutate", ca_bundle),
        mutating_rules(),
    );
    mutating["reinvocationPolicy"] = json!("Never");
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": NAME},
            "webhooks": [validating],
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": NAME},
            "webhooks": [mutating],
        }),
    ]
}

fn webhook(name: &str, client_config: Value, rules: Value) -> Value {
    json!({
        "name": name,
        "clientConfig": client_config,
        "rules": rules,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": [OWN_NAMESPACE],
        }]},
    })
}

fn rule(group: &str, resources: &[&str], operations: &[&str], scope: &str) -> Value {
    json!({
        "apiGroups": [group],
        "apiVersions": ["v1alpha1"],
        "resources": resources,
        "operations": operations,
        "scope": scope,
    })
}

fn validating_rules() -> Value {
    json!([
        rule(
            "openchoreo.dev",
            &["resourcereleasebindings", "resourcereleasebindings/status"],
            &["CREATE", "UPDATE", "DELETE"],
            "Namespaced"
        ),
        rule(
            "platform.kratix.io",
            &["promiserevisions", "promises"],
            &["CREATE", "UPDATE", "DELETE"],
            "Cluster"
        ),
        rule(
            "platform.kratix.io",
            &["resourcebindings"],
            &["CREATE", "UPDATE"],
            "Namespaced"
        ),
    ])
}

fn mutating_rules() -> Value {
    json!([
        rule(
            "openchoreo.dev",
            &["resourcereleasebindings"],
            &["CREATE", "UPDATE"],
            "Namespaced"
        ),
        rule(
            "platform.kratix.io",
            &["promiserevisions"],
            &["CREATE", "UPDATE"],
            "Cluster"
        ),
        rule(
            "platform.kratix.io",
            &["resourcebindings"],
            &["CREATE", "UPDATE"],
            "Namespaced"
        ),
    ])
}

/// The cert-manager variant: no caBundle, an annotation asks cert-manager to inject it.
pub fn cert_manager_variant(target: &Target, certificate: &str) -> [Value; 2] {
    let mut configs = configurations(target, None);
    for config in &mut configs {
        config["metadata"]["annotations"] = json!({"cert-manager.io/inject-ca-from": certificate});
    }
    configs
}
