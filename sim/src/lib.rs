//! The Jubilant DB deterministic simulator.
//!
//! One seed makes one world ([`jubilant_io_sim::World`]): the real engine
//! code runs over a simulated disk, network and clock; a workload drives it
//! with concurrent clients; a fault schedule drawn from the same seed crashes
//! and kills the node and damages its IO; and the workload's oracles check,
//! after every step and every restart, that nothing acknowledged was lost and
//! nothing never written was returned. The same seed gives the same trace,
//! byte for byte.
//!
//! - [`assertions`]: the simulator refuses to run without them;
//! - [`options`]: what to run (seed, workload, faults, budget);
//! - [`run`](mod@run): runs one seed and catches whatever it throws;
//! - [`workload`]: the workloads and their oracles;
//! - [`report`]: the per-seed result and its JSON line;
//! - [`corpus`]: seeds that once failed, replayed forever.

pub mod assertions;
pub mod corpus;
pub mod options;
pub mod report;
pub mod run;
pub mod workload;

pub use options::{RunOptions, Sabotage, WorkloadName};
pub use report::{Failure, Report};
pub use run::run;
