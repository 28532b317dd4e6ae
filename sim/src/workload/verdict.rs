//! What every storage workload's model records besides the data it models:
//! the first oracle failure, how many checks each oracle made, counters,
//! and the state of the engine under test between restarts.

use std::collections::BTreeMap;

use super::lives::LifeStatus;
use crate::report::Report;

#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// The first oracle that failed, and why.
    pub failure: Option<(&'static str, String)>,
    /// The engine refused damaged data, correctly: the run ends there.
    pub corruption_detected: bool,
    /// The engine stopped accepting work; the node must be restarted.
    pub poisoned: bool,
    /// The last open failed without corruption (an IO error).
    pub open_failed: bool,
    pub recoveries: u64,
    pub checks: BTreeMap<&'static str, u64>,
    pub stats: BTreeMap<&'static str, u64>,
}

impl Verdict {
    /// Records a failure of `oracle`; the first one is the one reported.
    pub(crate) fn fail(&mut self, oracle: &'static str, message: String) {
        if self.failure.is_none() {
            self.failure = Some((oracle, message));
        }
    }

    pub(crate) fn check(&mut self, oracle: &'static str, n: u64) {
        *self.checks.entry(oracle).or_default() += n;
    }

    pub(crate) fn stat(&mut self, name: &'static str, n: u64) {
        *self.stats.entry(name).or_default() += n;
    }

    /// Whether the run is over: an oracle failed or corruption was found.
    pub(crate) fn ended(&self) -> bool {
        self.failure.is_some() || self.corruption_detected
    }

    /// A new life begins: the engine is neither failed nor unopened yet.
    pub(crate) fn begin_life(&mut self) {
        self.poisoned = false;
        self.open_failed = false;
    }

    /// Whether the counter `name` has counted anything.
    pub(crate) fn counted(&self, name: &str) -> bool {
        self.stats.get(name).copied().unwrap_or(0) > 0
    }

    pub(crate) fn status(&self) -> LifeStatus {
        LifeStatus {
            ended: self.ended(),
            poisoned: self.poisoned,
            open_failed: self.open_failed,
            recoveries: self.recoveries,
        }
    }

    /// Copies the verdict into the run's report.
    pub(crate) fn fill(&self, report: &mut Report) {
        if let Some((oracle, message)) = &self.failure {
            report.fail(oracle, message.clone());
        }
        report.recoveries = self.recoveries;
        report.corruption_detected = self.corruption_detected;
        for (name, n) in &self.checks {
            report.check(name, *n);
        }
        for (name, n) in &self.stats {
            report.stats.insert((*name).to_owned(), *n);
        }
    }
}
