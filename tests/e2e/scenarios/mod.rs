//! The scenarios, one file per area. To add one: write `fn name(c: &Cluster)` in the area's file
//! and list it in that file's `SCENARIOS` with `scenario!(name)`. A scenario panics to fail; it
//! works in a namespace of its own (`c.kubectl.create_namespace(...)`) so scenarios cannot
//! disturb each other, and it leaves the webhooks registered (see `Cluster::without_webhooks`).
//! To wait for the reconcile loop, poll with `crate::wait::until` (a deadline, never a sleep).

mod authorize;
mod check;
mod demo;
mod deploy;
mod kratix;
mod kratix_loop;
mod leader;
mod openchoreo;
mod privilege;
mod reconcile;
mod updates;
mod view;

// What every area file needs, through its `use super::*`.
pub use crate::cluster::Cluster;
pub use crate::kubectl::{Kubectl, Output, assert_denied};

/// A named scenario.
pub struct Scenario {
    /// `e2e::scenarios::<area>::<function>`, from [`scenario!`].
    path: &'static str,
    pub run: fn(&Cluster),
}

impl Scenario {
    pub const fn new(path: &'static str, run: fn(&Cluster)) -> Scenario {
        Scenario { path, run }
    }

    /// `<area>::<function>`: what is printed and what filters match.
    pub fn name(&self) -> &'static str {
        self.path
            .split_once("scenarios::")
            .map_or(self.path, |(_, name)| name)
    }
}

/// `scenario!(function)` registers `function` under `<area>::<function>`.
macro_rules! scenario {
    ($f:ident) => {
        $crate::scenarios::Scenario::new(concat!(module_path!(), "::", stringify!($f)), $f)
    };
}
use scenario;

/// Every scenario, in the order they run.
pub fn all() -> Vec<&'static Scenario> {
    let areas = [
        deploy::SCENARIOS,
        openchoreo::SCENARIOS,
        kratix::SCENARIOS,
        kratix_loop::SCENARIOS,
        leader::SCENARIOS,
        reconcile::SCENARIOS,
        updates::SCENARIOS,
        view::SCENARIOS,
        check::SCENARIOS,
        authorize::SCENARIOS,
        demo::SCENARIOS,
        privilege::SCENARIOS,
    ];
    areas.into_iter().flatten().collect()
}
