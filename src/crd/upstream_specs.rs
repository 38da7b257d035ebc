//! Schemas of specs bindguard keeps but barely reads (Promise, Environment, Project), written as
//! strictly as upstream's CRDs so the API server refuses the same unknown fields.
//! `tests/crds.rs` compares them with the pinned upstream copies.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

fn kept_object() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of pipelines: objects kept as they are.
fn pipelines() -> Value {
    json!({"type": "array", "items": {"type": "object"}, "x-kubernetes-preserve-unknown-fields": true})
}

fn workflow_pair() -> Value {
    json!({"type": "object", "properties": {"configure": pipelines(), "delete": pipelines()}})
}

/// `Promise.spec`, and the copy of it in `PromiseRevision.spec.promiseSpec`.
pub fn promise_spec(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "properties": {
            "api": kept_object(),
            "dependencies": {"type": "array", "items": kept_object()},
            "destinationSelectors": {"type": "array", "items": {
                "type": "object",
                "properties": {"matchLabels": {"type": "object", "additionalProperties": string()}},
            }},
            "requiredPromises": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": string(), "version": string()},
            }},
            "workflows": {
                "type": "object",
                "properties": {
                    "config": {"type": "object", "properties": {
                        "pipelineNamespace": string(),
                        "reconciliationInterval": string(),
                    }},
                    "promise": workflow_pair(),
                    "resource": workflow_pair(),
                },
            },
        },
    })
}

/// A gateway listener: host and port, optionally a listener name.
fn listener() -> Value {
    json!({
        "type": "object",
        "required": ["host", "port"],
        "properties": {
            "host": string(),
            "listenerName": string(),
            "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
        },
    })
}

fn gateway_endpoint() -> Value {
    json!({
        "type": "object",
        "required": ["name", "namespace"],
        "properties": {
            "name": string(),
            "namespace": string(),
            "http": listener(),
            "https": listener(),
            "tls": listener(),
        },
    })
}

fn gateway_direction() -> Value {
    json!({"type": "object", "properties": {"external": gateway_endpoint(), "internal": gateway_endpoint()}})
}

/// `Environment.spec`.
pub fn environment_spec(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-validations": [{
            "rule": "!has(oldSelf.dataPlaneRef) || oldSelf.dataPlaneRef == self.dataPlaneRef",
            "message": "dataPlaneRef is immutable once set",
        }],
        "properties": {
            "dataPlaneRef": {
                "type": "object",
                "required": ["kind", "name"],
                "properties": {
                    "kind": {"type": "string", "enum": ["DataPlane", "ClusterDataPlane"]},
                    "name": string(),
                },
            },
            "gateway": {"type": "object", "properties": {
                "egress": gateway_direction(),
                "ingress": gateway_direction(),
            }},
            "isProduction": {"type": "boolean"},
        },
    })
}

/// `Project.spec`.
pub fn project_spec(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "required": ["deploymentPipelineRef", "type"],
        "properties": {
            "deploymentPipelineRef": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "kind": {"type": "string", "enum": ["DeploymentPipeline"], "default": "DeploymentPipeline"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 63},
                },
            },
            "parameters": {"x-kubernetes-preserve-unknown-fields": true},
            "type": {
                "type": "object",
                "required": ["name"],
                "x-kubernetes-validations": [{
                    "rule": "self == oldSelf",
                    "message": "spec.type cannot be changed after creation",
                }],
                "properties": {
                    "kind": {"type": "string", "enum": ["ProjectType", "ClusterProjectType"], "default": "ProjectType"},
                    "name": {"type": "string", "minLength": 1, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                },
            },
        },
    })
}
