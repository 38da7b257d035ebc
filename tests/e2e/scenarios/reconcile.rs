//! The reconcile loop: finalizers, conditions, revisions and bindings kept by bindguard itself.

use super::*;

/// This area's scenarios, in order: `scenario!(function)` for each `fn function(c: &Cluster)`.
pub const SCENARIOS: &[Scenario] = &[];
