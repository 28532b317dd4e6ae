//! The result of one run: what a person reads and the JSON line a script
//! reads.

use std::collections::BTreeMap;

use jubilant_io_sim::{FaultConfig, FaultCounts};
use serde::Serialize;

/// Why a run failed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The oracle that did not hold (or `panic`).
    pub oracle: String,
    /// What it saw.
    pub message: String,
    /// The last lines of the trace.
    #[serde(skip)]
    pub trace_tail: Vec<String>,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Whether every oracle held.
    pub ok: bool,
    /// Whether the run checked every assertion (debug assertions and
    /// overflow checks in every crate it ran; see `sim::assertions`).
    pub assertions: bool,
    /// The workload.
    pub workload: String,
    /// The sabotage switch (normally `none`).
    pub sabotage: String,
    /// Hash of the whole trace: equal runs have equal hashes.
    pub trace_hash: String,
    /// Trace lines.
    pub trace_lines: u64,
    /// Task polls.
    pub steps: u64,
    /// Simulated time, in milliseconds.
    pub virtual_ms: u64,
    /// Power losses.
    pub crashes: u64,
    /// Process kills.
    pub kills: u64,
    /// Times the engine was (re)opened successfully.
    pub recoveries: u64,
    /// Fault settings used.
    pub faults: BTreeMap<String, f64>,
    /// How often each fault was injected.
    pub injected: BTreeMap<String, u64>,
    /// How many checks each oracle made.
    pub checks: BTreeMap<String, u64>,
    /// Workload figures (records appended, acknowledged, ...).
    pub stats: BTreeMap<String, u64>,
    /// Set when a run's corruption was detected and refused (the run then
    /// ends early, as an operator would have to repair).
    pub corruption_detected: bool,
    /// Whether a second run of the seed gave the same trace (when checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deterministic: Option<bool>,
    /// Why the run failed.
    pub failure: Option<Failure>,
    /// The fault settings as one pinnable string.
    #[serde(skip)]
    pub fault_config: String,
}

impl Report {
    /// An empty report for `seed`, filled in as the run goes.
    pub fn new(seed: u64, workload: String, sabotage: String, faults: &FaultConfig) -> Self {
        Report {
            seed,
            ok: true,
            assertions: crate::assertions::on(),
            workload,
            sabotage,
            trace_hash: String::new(),
            trace_lines: 0,
            steps: 0,
            virtual_ms: 0,
            crashes: 0,
            kills: 0,
            recoveries: 0,
            faults: faults
                .iter()
                .map(|(f, v)| (f.name().to_owned(), v))
                .collect(),
            injected: BTreeMap::new(),
            checks: BTreeMap::new(),
            stats: BTreeMap::new(),
            corruption_detected: false,
            deterministic: None,
            failure: None,
            fault_config: faults.to_string(),
        }
    }

    /// Records the injected fault counts.
    pub fn set_injected(&mut self, counts: &FaultCounts) {
        self.injected = counts
            .iter()
            .map(|(f, n)| (f.name().to_owned(), n))
            .collect();
    }

    /// Adds `n` checks to `oracle`.
    pub fn check(&mut self, oracle: &str, n: u64) {
        *self.checks.entry(oracle.to_owned()).or_default() += n;
    }

    /// Records a failure (the first one wins: later ones are consequences).
    pub fn fail(&mut self, oracle: &str, message: String) {
        if self.failure.is_none() {
            self.ok = false;
            self.failure = Some(Failure {
                oracle: oracle.to_owned(),
                message,
                trace_tail: Vec::new(),
            });
        }
    }

    /// The one-line JSON summary.
    pub fn json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"ok\":false,\"error\":\"{e}\"}}"))
    }

    /// The human header printed before a run.
    pub fn header(seed: u64, workload: &str, faults: &FaultConfig) -> String {
        format!("jubilant-sim seed={seed} workload={workload}\nfaults: {faults}")
    }

    /// The human failure report: seed, faults, oracle, trace tail.
    pub fn failure_text(&self) -> Option<String> {
        let failure = self.failure.as_ref()?;
        let mut text = format!(
            "FAILED seed={} workload={} sabotage={}\nfaults: {}\noracle: {}\n{}\nlast trace lines:\n",
            self.seed,
            self.workload,
            self.sabotage,
            self.fault_config,
            failure.oracle,
            failure.message
        );
        for line in &failure.trace_tail {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!(
            "reproduce: cargo run --release -p sim -- --seed {} --workload {} --faults '{}'{}\n",
            self.seed,
            self.workload,
            self.fault_config,
            if self.sabotage == "none" {
                String::new()
            } else {
                format!(" --sabotage {}", self.sabotage)
            }
        ));
        Some(text)
    }
}
