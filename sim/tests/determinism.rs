//! The same seed gives the same world, byte for byte; different seeds give
//! different worlds.

use std::process::Command;

use sim::{RunOptions, WorkloadName};

fn options(seed: u64, workload: WorkloadName) -> RunOptions {
    let mut options = RunOptions::new(seed);
    options.steps = 5_000;
    options.workload = workload;
    options
}

#[test]
fn a_batch_of_log_seeds_replays_with_identical_trace_hashes() {
    batch_replays_identically(WorkloadName::Log);
}

#[test]
fn a_batch_of_tree_seeds_replays_with_identical_trace_hashes() {
    batch_replays_identically(WorkloadName::Tree);
}

#[test]
fn a_batch_of_db_seeds_replays_with_identical_trace_hashes() {
    batch_replays_identically(WorkloadName::Db);
}

#[test]
fn a_batch_of_bank_seeds_replays_with_identical_trace_hashes() {
    batch_replays_identically(WorkloadName::Bank);
}

fn batch_replays_identically(workload: WorkloadName) {
    let runs: Vec<RunOptions> = (1..=24).map(|seed| options(seed, workload)).collect();
    let first = sim::run::run_batch(&runs, 2, false).expect("valid options");
    let second = sim::run::run_batch(&runs, 1, false).expect("valid options");
    for (a, b) in first.iter().zip(&second) {
        assert!(a.ok, "seed {} failed: {:?}", a.seed, a.failure);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {} diverged", a.seed);
        assert_eq!(
            (a.steps, a.trace_lines, a.crashes),
            (b.steps, b.trace_lines, b.crashes)
        );
    }
    let distinct: std::collections::BTreeSet<_> =
        first.iter().map(|r| r.trace_hash.clone()).collect();
    assert_eq!(
        distinct.len(),
        first.len(),
        "different seeds must give different traces"
    );
}

/// Runs the binary and returns its last stdout line as JSON.
fn sim_json(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("run sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "sim {args:?} failed:\n{stdout}");
    serde_json::from_str(stdout.lines().last().expect("some output")).expect("last line is JSON")
}

#[test]
fn separate_processes_agree_on_a_seed_and_differ_across_seeds() {
    let a = sim_json(&["--seed", "42", "--steps", "5000"]);
    let b = sim_json(&["--seed", "42", "--steps", "5000"]);
    let c = sim_json(&["--seed", "43", "--steps", "5000"]);
    assert_eq!(a["trace_hash"], b["trace_hash"]);
    assert_eq!(a["steps"], b["steps"]);
    assert_ne!(a["trace_hash"], c["trace_hash"]);
}

#[test]
fn one_seed_prints_a_header_and_ends_with_the_json_summary() {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["--seed", "7", "--steps", "3000", "--check-determinism"])
        .output()
        .expect("run sim");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("jubilant-sim seed=7 workload=bank"));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("faults: crash=")),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("JSON");
    for key in [
        "seed",
        "ok",
        "trace_hash",
        "steps",
        "crashes",
        "faults",
        "injected",
        "checks",
    ] {
        assert!(!json[key].is_null(), "summary lacks `{key}`: {json}");
    }
    assert_eq!(json["seed"], 7);
    assert_eq!(json["ok"], true);
    assert_eq!(json["deterministic"], true);
    assert!(json["faults"]["crash"].is_number());
}

#[test]
fn the_default_batch_names_the_six_transaction_oracles_with_their_checks() {
    let json = sim_json(&["--seeds", "1..4", "--steps", "3000", "--quiet"]);
    for oracle in [
        "serializability",
        "durability",
        "conservation",
        "ttl",
        "vlog_pointers_resolve",
        "liveness",
    ] {
        assert!(
            json["checks"][oracle].is_u64(),
            "the summary lacks `{oracle}`: {json}"
        );
    }
    assert!(
        json["checks"]["serializability"].as_u64() > Some(0),
        "{json}"
    );
}

#[test]
fn pinned_faults_override_the_seed_and_bad_pins_are_usage_errors() {
    let json = sim_json(&[
        "--seed",
        "5",
        "--steps",
        "2000",
        "--faults",
        "crash=0,kill=0,fsync_error=0,disk_filled=0",
    ]);
    assert_eq!(json["faults"]["crash"], 0.0);
    assert_eq!(
        json["crashes"].as_u64(),
        Some(2),
        "only the two crashes of the fault-free final phase"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["--faults", "meteor=1"])
        .output()
        .expect("run sim");
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("JSON");
    assert_eq!(last["ok"], false);
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown fault `meteor`"))
    );
}

#[test]
fn the_help_names_every_fault() {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("--help")
        .output()
        .expect("run sim");
    let help = String::from_utf8_lossy(&output.stdout).replace(char::is_whitespace, "");
    for fault in jubilant_io_sim::Fault::ALL {
        assert!(
            help.contains(fault.name()),
            "`sim --help` does not name fault {}",
            fault.name()
        );
    }
}
