//! Running one seed: build the world, run the workload, catch panics, fill
//! in the report.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use jubilant_core::mutex::lock;
use jubilant_io_sim::World;

use crate::options::{RunOptions, WorkloadName};
use crate::report::Report;
use crate::workload;

thread_local! {
    /// The message of the last panic on this thread, captured by the hook so
    /// a panicking seed is reported like any other failure.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is inside a world, where a panic is a finding to
    /// report, not a crash of the simulator to print.
    static IN_WORLD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
static HOOK: Once = Once::new();

fn install_panic_hook() {
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_WORLD.with(std::cell::Cell::get) {
                default(info);
                return;
            }
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_owned(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default(),
            };
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{message}{location}")));
            if std::env::var_os("SIM_PANIC_BACKTRACE").is_some() {
                default(info);
            }
        }));
    });
}

/// Runs one seed to the end and reports what happened. Fails only when the
/// options themselves are invalid.
pub fn run(options: &RunOptions) -> Result<Report, String> {
    let faults = options.fault_config()?;
    install_panic_hook();
    let mut report = Report::new(
        options.seed,
        options.workload.to_string(),
        options.sabotage.to_string(),
        &faults,
    );
    let world = World::new(options.seed, faults);
    world.set_trace_echo(options.trace_echo);
    IN_WORLD.with(|flag| flag.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match options.workload {
        WorkloadName::Log => workload::log::run(&world, options, &mut report),
        WorkloadName::Echo => workload::echo::run(&world, options, &mut report),
        WorkloadName::Tree => workload::tree::run(&world, options, &mut report),
        WorkloadName::Db => workload::db::run(&world, options, &mut report),
        WorkloadName::Backup => workload::db::run_backup(&world, options, &mut report),
        WorkloadName::Bank => workload::bank::run(&world, options, &mut report),
        WorkloadName::Server => workload::bank::run_server(&world, options, &mut report),
    }));
    IN_WORLD.with(|flag| flag.set(false));
    if outcome.is_err() {
        let message = LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| "unknown panic".to_owned());
        report.fail("panic", message);
    }
    report.trace_hash = world.trace_hash();
    report.trace_lines = world.trace_lines();
    report.virtual_ms = world.now().as_nanos() / 1_000_000;
    report.set_injected(&world.fault_counts());
    if let Some(failure) = report.failure.as_mut() {
        failure.trace_tail = world.trace_tail();
    }
    Ok(report)
}

/// Runs every option set, on up to `jobs` threads, and returns the reports
/// in the order given. With `check_determinism`, each seed runs twice and
/// the report says whether both traces were equal (a difference fails it).
pub fn run_batch(
    runs: &[RunOptions],
    jobs: usize,
    check_determinism: bool,
) -> Result<Vec<Report>, String> {
    for options in runs {
        options.fault_config()?;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Report>>> =
        runs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || loop {
        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(options) = runs.get(index) else {
            return;
        };
        let report = run_checked(options, check_determinism);
        *lock(&results[index]) = Some(report);
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "seeds are independent worlds; each runs on one thread"
    )]
    std::thread::scope(|scope| {
        for _ in 1..jobs.max(1) {
            scope.spawn(work);
        }
        work();
    });
    Ok(results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .expect("every run was taken by a worker")
        })
        .collect())
}

/// Runs once, or twice comparing traces.
fn run_checked(options: &RunOptions, check_determinism: bool) -> Report {
    let mut report = run(options).expect("options were validated");
    if check_determinism {
        let again = run(options).expect("options were validated");
        let same = again.trace_hash == report.trace_hash
            && again.steps == report.steps
            && again.trace_lines == report.trace_lines
            && again.ok == report.ok;
        report.deterministic = Some(same);
        if !same {
            report.fail(
                "determinism",
                format!(
                    "two runs of seed {} differ: trace {} ({} lines, {} steps) vs {} ({} lines, {} steps)",
                    options.seed,
                    report.trace_hash,
                    report.trace_lines,
                    report.steps,
                    again.trace_hash,
                    again.trace_lines,
                    again.steps
                ),
            );
        }
    }
    report
}
