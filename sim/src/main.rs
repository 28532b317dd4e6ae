//! `sim`: run seeded, deterministic simulations of Jubilant DB.
//!
//! ```text
//! cargo run --release -p sim -- --seed 42 --check-determinism
//! cargo run --release -p sim -- --seeds 1..500
//! cargo run --release -p sim -- --replay corpus
//! ```
//!
//! The last line of standard output is always one JSON object: the run's
//! report for a single seed, or a summary for several. The exit code is 0
//! only if every oracle held in every run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sim::report::Report;
use sim::run::run_batch;
use sim::{RunOptions, Sabotage, WorkloadName, corpus};

#[derive(Parser, Debug)]
#[command(
    name = "sim",
    version,
    about = "Deterministic simulation of Jubilant DB: one seed, one world, every fault.",
    after_help = "Seeds: --seed N runs one; --seeds A..B runs A up to B-1 (A..=B includes B).\n\
                  Faults are drawn per seed (swarm testing); pin any with --faults name=value,...\n\
                  The last line of stdout is a JSON object; the exit code is 0 only if every oracle held."
)]
struct Cli {
    /// Run this one seed (42 if no seed, range or corpus is given).
    #[arg(long, conflicts_with_all = ["seeds", "replay"])]
    seed: Option<u64>,
    /// Run a range of seeds: `A..B` (B excluded) or `A..=B`.
    #[arg(long, value_name = "A..B", conflicts_with = "replay")]
    seeds: Option<String>,
    /// Replay every corpus entry (`*.toml`) in this directory.
    #[arg(long, value_name = "DIR")]
    replay: Option<PathBuf>,
    /// The workload the clients run.
    #[arg(long, default_value_t = WorkloadName::default())]
    workload: WorkloadName,
    /// Pin fault settings on top of the seed's draw: `crash=0.001,disk_full=0`.
    /// Repeatable. Names: crash, kill, write_lost, write_torn, dir_op_lost,
    /// fsync_error, read_corrupt, write_misdirected, disk_full, io_error, clock_jump,
    /// net_drop, net_partition, io_latency_us, net_latency_us, write_stale,
    /// write_garbled, bit_rot, disk_filled, disk_cow, sector_unreadable,
    /// accept_error.
    #[arg(long, value_name = "NAME=VALUE,...")]
    faults: Vec<String>,
    /// Switch every fault off (latencies stay small and fixed).
    #[arg(long)]
    no_faults: bool,
    /// Task polls per run before the fault-free liveness phase.
    #[arg(long, default_value_t = RunOptions::STEPS_DEFAULT)]
    steps: u64,
    /// Simulated milliseconds per run before the liveness phase (the run
    /// ends at whichever of --steps and this comes first).
    #[arg(long, value_name = "MS")]
    virtual_ms: Option<u64>,
    /// Run each seed twice and fail if the traces differ.
    #[arg(long)]
    check_determinism: bool,
    /// Echo every trace line to stderr (use with one seed).
    #[arg(long)]
    trace: bool,
    /// Worker threads for several seeds (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print only failures and the final JSON line.
    #[arg(long)]
    quiet: bool,
    /// Break the engine on purpose (tests of the simulator itself).
    #[arg(long, hide = true, default_value = "none")]
    sabotage: Sabotage,
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("--seeds wants A..B or A..=B, got `{text}`");
    let (a, b, inclusive) = if let Some((a, b)) = text.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = text.split_once("..") {
        (a, b, false)
    } else {
        return Err(bad());
    };
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        b.checked_add(1).ok_or_else(bad)?
    } else {
        b
    };
    if end <= a {
        return Err(format!("--seeds `{text}` is empty"));
    }
    Ok(a..end)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("sim: {message}");
            println!("{}", serde_json::json!({ "ok": false, "error": message }));
            ExitCode::from(2)
        }
    }
}

fn options_for(cli: &Cli, seed: u64) -> RunOptions {
    let mut options = RunOptions::new(seed);
    options.workload = cli.workload;
    options.steps = cli.steps;
    options.virtual_ms = cli.virtual_ms;
    options.sabotage = cli.sabotage;
    options.trace_echo = cli.trace;
    if cli.no_faults {
        options.faults = Some(jubilant_io_sim::FaultConfig::none());
    }
    options.pins = cli.faults.clone();
    options
}

fn run(cli: &Cli) -> Result<bool, String> {
    sim::assertions::require()?;
    let mut labels = Vec::new();
    let runs: Vec<RunOptions> = if let Some(dir) = &cli.replay {
        let entries = corpus::load(dir)?;
        if entries.is_empty() {
            return Err(format!("no corpus entries (*.toml) in {}", dir.display()));
        }
        entries
            .into_iter()
            .map(|(path, entry)| {
                labels.push(format!("{} (caught: {})", path.display(), entry.caught));
                entry.options()
            })
            .collect::<Result<_, _>>()?
    } else if let Some(range) = &cli.seeds {
        parse_seeds(range)?
            .map(|seed| options_for(cli, seed))
            .collect()
    } else {
        vec![options_for(cli, cli.seed.unwrap_or(42))]
    };
    let single = runs.len() == 1 && cli.replay.is_none();
    if single {
        let faults = runs[0].fault_config()?;
        println!(
            "{}",
            Report::header(runs[0].seed, &runs[0].workload.to_string(), &faults)
        );
    }
    let jobs = cli
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (reports, elapsed) =
        timed(|| run_batch(&runs, if single { 1 } else { jobs }, cli.check_determinism));
    let reports = reports?;

    for (index, report) in reports.iter().enumerate() {
        if let Some(text) = report.failure_text() {
            if let Some(label) = labels.get(index) {
                println!("corpus entry {label}");
            }
            print!("{text}");
        } else if !cli.quiet && !single {
            let label = labels
                .get(index)
                .map(|l| format!(" {l}"))
                .unwrap_or_default();
            println!(
                "seed {:>6} ok  steps={} crashes={} kills={} recoveries={} trace={}{label}",
                report.seed,
                report.steps,
                report.crashes,
                report.kills,
                report.recoveries,
                report.trace_hash
            );
        }
    }
    let all_ok = reports.iter().all(|r| r.ok);
    if single {
        let report = &reports[0];
        if !cli.quiet {
            println!(
                "{} in {:.2}s: {} steps, {} crashes, {} kills, {} recoveries, {} ms simulated",
                if report.ok { "ok" } else { "FAILED" },
                elapsed.as_secs_f64(),
                report.steps,
                report.crashes,
                report.kills,
                report.recoveries,
                report.virtual_ms
            );
        }
        println!("{}", report.json());
    } else {
        println!("{}", summary(&reports, elapsed));
    }
    Ok(all_ok)
}

/// Runs `f` and measures its wall-clock time (the simulator reporting its
/// own speed; nothing inside a world sees this clock).
#[expect(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "measures the simulator's own speed"
)]
fn timed<T>(f: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let started = std::time::Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// The JSON summary of several runs.
fn summary(reports: &[Report], elapsed: std::time::Duration) -> serde_json::Value {
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let mut seeds_injected: BTreeMap<String, u64> = BTreeMap::new();
    let mut checks: BTreeMap<String, u64> = BTreeMap::new();
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    for report in reports {
        for (name, n) in &report.injected {
            *injected.entry(name.clone()).or_default() += n;
            *seeds_injected.entry(name.clone()).or_default() += u64::from(*n > 0);
        }
        for (name, n) in &report.checks {
            *checks.entry(name.clone()).or_default() += n;
        }
        for (name, n) in &report.stats {
            *stats.entry(name.clone()).or_default() += n;
        }
    }
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let failed: Vec<u64> = reports.iter().filter(|r| !r.ok).map(|r| r.seed).collect();
    serde_json::json!({
        "ok": failed.is_empty(),
        "assertions": reports.iter().all(|r| r.assertions),
        "seeds": reports.len(),
        "first_seed": reports.first().map(|r| r.seed),
        "last_seed": reports.last().map(|r| r.seed),
        "failed": failed,
        "steps": steps,
        "crashes": reports.iter().map(|r| r.crashes).sum::<u64>(),
        "kills": reports.iter().map(|r| r.kills).sum::<u64>(),
        "recoveries": reports.iter().map(|r| r.recoveries).sum::<u64>(),
        "corruption_detected": reports.iter().filter(|r| r.corruption_detected).count(),
        "deterministic": reports.iter().all(|r| r.deterministic != Some(false)),
        "wall_seconds": (secs * 1000.0).round() / 1000.0,
        "seeds_per_minute": (reports.len() as f64 * 60.0 / secs).round(),
        "steps_per_second": (steps as f64 / secs).round(),
        "injected": injected,
        "seeds_with_fault": seeds_injected,
        "checks": checks,
        "stats": stats,
    })
}
