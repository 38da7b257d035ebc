//! bindguard: admission webhook and reconcile loop that keep Kratix and OpenChoreo bindings honest.

pub mod admission;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod crd;
pub mod head;
pub mod judge;
pub mod kinds;
pub mod logs;
pub mod metrics;
pub mod naming;
pub mod policy;
pub mod reconcile;
pub mod schema;
pub mod server;
pub mod tls;
pub mod webhook_config;
