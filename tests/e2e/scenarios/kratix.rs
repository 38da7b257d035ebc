//! Kratix: Promise, PromiseRevision and ResourceBinding admission (platform.kratix.io/v1alpha1).

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[];
