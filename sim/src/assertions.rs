//! The simulator refuses to run without assertions (STYLE.md, after
//! TigerBeetle): a world whose engine was built without `debug_assert!`s
//! or integer-overflow checks could pass a seed that corrupts data.
//!
//! Every crate whose code a world runs (the engine, the simulated
//! environment, the server, the client, and the simulator itself) is probed
//! in its own build: the workspace's release profile turns both checks on
//! for each of them (Cargo.toml).

use std::panic;

/// One crate's build, as probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrateChecks {
    /// The crate.
    pub name: &'static str,
    /// Built with `debug_assert!`s on.
    pub debug_assertions: bool,
    /// Built with integer-overflow checks.
    pub overflow_checks: bool,
}

impl CrateChecks {
    /// Both checks are on.
    pub fn on(&self) -> bool {
        self.debug_assertions && self.overflow_checks
    }
}

/// Whether `probe` panics on 255 (overflow checks on) or wraps (off).
/// Silences the panic hook while it runs: call it before any world runs,
/// on one thread.
fn overflow_checked(probe: fn(u8) -> u8) -> bool {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let panicked = panic::catch_unwind(|| probe(std::hint::black_box(u8::MAX))).is_err();
    panic::set_hook(hook);
    panicked
}

/// A crate's name, whether its `debug_assert!`s are on, and its overflow
/// probe.
type Probe = (&'static str, bool, fn(u8) -> u8);

/// Probes every crate a world runs.
pub fn probe() -> Vec<CrateChecks> {
    let crates: [Probe; 5] = [
        (
            "jubilant-core",
            jubilant_core::checks::DEBUG_ASSERTIONS,
            jubilant_core::checks::overflow_probe,
        ),
        (
            "jubilant-io-sim",
            jubilant_io_sim::build_checks::DEBUG_ASSERTIONS,
            jubilant_io_sim::build_checks::overflow_probe,
        ),
        (
            "jubilant-server",
            jubilant_server::build_checks::DEBUG_ASSERTIONS,
            jubilant_server::build_checks::overflow_probe,
        ),
        (
            "jubilant-client",
            jubilant_client::build_checks::DEBUG_ASSERTIONS,
            jubilant_client::build_checks::overflow_probe,
        ),
        ("sim", cfg!(debug_assertions), sim_overflow_probe),
    ];
    crates
        .into_iter()
        .map(|(name, debug_assertions, probe)| CrateChecks {
            name,
            debug_assertions,
            overflow_checks: overflow_checked(probe),
        })
        .collect()
}

#[inline(never)]
fn sim_overflow_probe(x: u8) -> u8 {
    x + 1
}

/// Whether every crate a world runs checks its assertions: probed once per
/// process (the first call must not race a panic elsewhere).
pub fn on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| probe().iter().all(CrateChecks::on))
}

/// `Ok` if every crate a world runs checks its assertions; otherwise why
/// the simulator refuses to run.
pub fn require() -> Result<(), String> {
    let missing: Vec<String> = probe()
        .iter()
        .filter(|checks| !checks.on())
        .map(|checks| {
            let mut off = Vec::new();
            if !checks.debug_assertions {
                off.push("debug assertions");
            }
            if !checks.overflow_checks {
                off.push("overflow checks");
            }
            format!("{} ({} off)", checks.name, off.join(" and "))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refusing to run: a world must check every assertion, but {} built without them. \
         Build with the workspace's dev or release profile (`cargo run --release -p sim`), \
         whose overrides in Cargo.toml turn them on",
        if missing.len() == 1 {
            format!("{} was", missing[0])
        } else {
            format!("{} were", missing.join(", "))
        }
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_build_checks_every_assertion() {
        assert_eq!(super::require(), Ok(()));
        assert_eq!(super::probe().len(), 5);
    }
}
