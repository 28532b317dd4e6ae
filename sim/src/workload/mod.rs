//! Workloads: what the simulated clients do, and the model each checks the
//! engine against. Every workload states its own oracles and counts how
//! many checks each made.

pub mod echo;
pub mod log;
mod log_model;
