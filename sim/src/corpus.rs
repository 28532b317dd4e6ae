//! The corpus: simulator seeds that once failed, kept as regression probes
//! and replayed by CI on every run.
//!
//! An entry is a small TOML file holding everything needed to rerun the
//! failing world even after the swarm ranges change (the fault settings are
//! stored whole, not re-drawn), plus where and what it caught:
//!
//! ```toml
//! seed = 17
//! workload = "log"
//! steps = 20000
//! faults = "crash=0.002,kill=0,write_lost=0.5,..."
//! commit = "3f2c1ab"
//! caught = "recovery synced before zeroing the torn tail; a kill then resurrected a discarded record"
//! ```

use std::path::{Path, PathBuf};

use jubilant_io_sim::FaultConfig;
use serde::Deserialize;

use crate::options::{RunOptions, Sabotage, WorkloadName};

/// One corpus file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The seed.
    pub seed: u64,
    /// The workload it ran.
    pub workload: WorkloadName,
    /// Its step budget.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Its simulated-time budget in milliseconds, if it had one.
    #[serde(default)]
    pub virtual_ms: Option<u64>,
    /// Its complete fault settings, as `name=value` pairs.
    pub faults: String,
    /// The sabotage switch, if any (normally absent).
    #[serde(default, deserialize_with = "sabotage_from_name")]
    pub sabotage: Sabotage,
    /// The commit the failure was seen on.
    pub commit: String,
    /// One line on what it caught.
    pub caught: String,
}

fn sabotage_from_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Sabotage, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse().map_err(serde::de::Error::custom)
}

fn default_steps() -> u64 {
    RunOptions::STEPS_DEFAULT
}

impl Entry {
    /// The options that replay this entry.
    pub fn options(&self) -> Result<RunOptions, String> {
        let mut faults = FaultConfig::none();
        for pair in self.faults.split(',').filter(|p| !p.trim().is_empty()) {
            faults.pin(pair)?;
        }
        Ok(RunOptions {
            seed: self.seed,
            workload: self.workload,
            faults: Some(faults),
            pins: Vec::new(),
            steps: self.steps,
            virtual_ms: self.virtual_ms,
            sabotage: self.sabotage,
            trace_echo: false,
        })
    }
}

/// Every `*.toml` entry in `dir`, sorted by file name.
pub fn load(dir: &Path) -> Result<Vec<(PathBuf, Entry)>, String> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the simulator binary reads its corpus from the real disk"
    )]
    let listing = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read corpus directory {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            #[expect(
                clippy::disallowed_methods,
                reason = "the simulator binary reads its corpus from the real disk"
            )]
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let entry: Entry =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            entry
                .options()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path, entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_pins_every_fault_and_rejects_unknown_keys() {
        let text = "seed = 9\nworkload = \"log\"\nfaults = \"crash=0.5,kill=0\"\ncommit = \"abc\"\ncaught = \"x\"\n";
        let entry: Entry = toml::from_str(text).expect("valid entry");
        let options = entry.options().expect("valid faults");
        let faults = options.fault_config().expect("faults");
        assert_eq!(faults.get(jubilant_io_sim::Fault::Crash), 0.5);
        assert_eq!(
            faults.get(jubilant_io_sim::Fault::WriteLost),
            0.0,
            "unlisted faults are off, not drawn"
        );
        assert_eq!(options.steps, RunOptions::STEPS_DEFAULT);
        let typo = format!("{text}stesp = 5\n");
        assert!(
            toml::from_str::<Entry>(&typo).is_err(),
            "a misspelt key must not be ignored"
        );
    }
}
