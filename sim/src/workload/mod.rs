//! Workloads: what the simulated clients do, and the model each checks the
//! engine against. Every workload states its own oracles and counts how
//! many checks each made.

mod backup;
pub mod bank;

pub mod db;
mod db_model;
mod db_snapshot;
mod db_update;
pub mod echo;
mod lives;
pub mod log;
mod log_model;
pub mod tree;
mod tree_model;
mod verdict;

use jubilant_io_sim::{Step, World};

use crate::report::Report;

/// Steps `world` once while clients should be running, counting polls in
/// `steps`. Returns `false`, failing `liveness`, if the world went quiet:
/// every task is waiting on something that will never happen.
pub(crate) fn step_while_running(world: &World, steps: &mut u64, report: &mut Report) -> bool {
    match world.step() {
        Step::Polled => *steps += 1,
        Step::Advanced => {}
        Step::Idle => {
            report.fail(
                "liveness",
                "the world went quiet while clients should be running".to_owned(),
            );
            return false;
        }
    }
    true
}
