//! What one simulator run is asked to do.

use std::fmt;
use std::str::FromStr;

pub use jubilant_core::sabotage::Sabotage;
use jubilant_io_sim::{FaultConfig, SimRng, Stream};

/// The workloads the simulator knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadName {
    /// Clients append records to the WAL's log-file layer with random sync
    /// points and segment removals, through crashes and disk faults.
    Log,
    /// Clients exchange frames with an echo server over the simulated
    /// network, through latency, drops, partitions and server kills.
    Echo,
    /// Writers, readers and a checkpointer work on the B+Tree store through
    /// crashes, torn, dropped and misdirected writes and bad reads.
    Tree,
    /// Committers write through the embedded database (WAL, group commit,
    /// sync and async durability, checkpoints, segment removal, TTLs,
    /// value-log GC, recovery) through every disk fault; checks each
    /// committer's keys against its own history.
    Db,
    /// Clients run transfers, guarded transfers, audits and note updates
    /// (large values, TTLs) as transactions over hot and cold keys while
    /// the sweeper and value-log GC run; checks serializability, TTLs,
    /// conservation, durability and value-log pointers against the exact
    /// commit history. The default: the most complete workload.
    #[default]
    Bank,
    /// The bank through the real server and client library: clients on
    /// their own nodes reach the database node over the simulated network
    /// (latency, resets, partitions); answers lost with a connection leave
    /// their transactions possibly committed, and every bank oracle must
    /// hold.
    Server,
    /// The db workload plus online backups taken while it runs: each copy
    /// must open, validate, and hold every transaction acknowledged before
    /// it began.
    Backup,
}

impl fmt::Display for WorkloadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadName::Log => "log",
            WorkloadName::Echo => "echo",
            WorkloadName::Tree => "tree",
            WorkloadName::Db => "db",
            WorkloadName::Bank => "bank",
            WorkloadName::Server => "server",
            WorkloadName::Backup => "backup",
        })
    }
}

impl FromStr for WorkloadName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "log" => Ok(WorkloadName::Log),
            "echo" => Ok(WorkloadName::Echo),
            "tree" => Ok(WorkloadName::Tree),
            "db" => Ok(WorkloadName::Db),
            "bank" => Ok(WorkloadName::Bank),
            "server" => Ok(WorkloadName::Server),
            "backup" => Ok(WorkloadName::Backup),
            other => Err(format!(
                "unknown workload `{other}`; known: log, echo, tree, db, bank, server, backup"
            )),
        }
    }
}

/// Everything that determines one run. Two runs with equal options produce
/// the same trace.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The world's seed.
    pub seed: u64,
    /// What the clients do.
    pub workload: WorkloadName,
    /// The faults, if fixed; otherwise drawn from the seed (swarm) and then
    /// adjusted by `pins`.
    pub faults: Option<FaultConfig>,
    /// `name=value` overrides applied on top of the faults.
    pub pins: Vec<String>,
    /// Task polls before the run winds down (then a fault-free phase checks
    /// liveness).
    pub steps: u64,
    /// Simulated milliseconds before the run winds down, if bounded (the
    /// run ends at whichever of `steps` and this comes first).
    pub virtual_ms: Option<u64>,
    /// A switch that breaks the engine on purpose.
    pub sabotage: Sabotage,
    /// Echo every trace line to stderr.
    pub trace_echo: bool,
}

impl RunOptions {
    /// Default polls per run.
    pub const STEPS_DEFAULT: u64 = 20_000;

    /// Defaults for `seed`.
    pub fn new(seed: u64) -> Self {
        RunOptions {
            seed,
            workload: WorkloadName::Log,
            faults: None,
            pins: Vec::new(),
            steps: Self::STEPS_DEFAULT,
            virtual_ms: None,
            sabotage: Sabotage::None,
            trace_echo: false,
        }
    }

    /// Whether the budget is spent after `steps` polls at virtual time
    /// `now_ms`.
    pub fn budget_spent(&self, steps: u64, now_ms: u64) -> bool {
        steps >= self.steps || self.virtual_ms.is_some_and(|max| now_ms >= max)
    }

    /// The fault configuration this run uses.
    pub fn fault_config(&self) -> Result<FaultConfig, String> {
        let mut config = match &self.faults {
            Some(config) => config.clone(),
            None => FaultConfig::swarm(&mut SimRng::new(self.seed, Stream::Swarm)),
        };
        for pin in &self.pins {
            for part in pin.split(',').filter(|p| !p.trim().is_empty()) {
                config.pin(part)?;
            }
        }
        Ok(config)
    }
}
