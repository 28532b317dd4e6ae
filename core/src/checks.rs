//! Which checks a build runs (STYLE.md: assertions are for the simulator
//! above all).
//!
//! - **Cheap assertions** (`assert!`, `debug_assert!`) and integer-overflow
//!   checks are on in every profile of the engine crates: `dev` and `test`
//!   by default, `release` by the workspace's profile overrides. So every
//!   simulated run checks them, and so does the production server (cheap by
//!   rule: nothing worse than a comparison on a hot path).
//! - **Expensive cross-checks** ([`expensive_assert!`](crate::expensive_assert), e.g. a search re-done
//!   by brute force) run only in this crate's unit tests and with the
//!   `expensive-checks` feature, which the simulated environment
//!   (`jubilant-io-sim`) and the simulator turn on, and the server never does.
//!
//! [`declare_build_checks!`](crate::declare_build_checks) gives every crate whose code a simulated world
//! runs a probe of its own build, so the simulator can refuse to run
//! without them.

/// Whether this crate was built with `debug_assert!`s on.
pub const DEBUG_ASSERTIONS: bool = cfg!(debug_assertions);

/// Whether expensive cross-checks ([`expensive_assert!`](crate::expensive_assert)) are compiled in.
pub const EXPENSIVE: bool = cfg!(any(test, feature = "expensive-checks"));

/// Adds one to `x`: panics on 255 when this crate was built with overflow
/// checks, wraps to 0 without them. A probe for the simulator.
#[inline(never)]
pub fn overflow_probe(x: u8) -> u8 {
    x + 1
}

/// `assert!` for checks too slow for production (a brute-force recount):
/// compiled in only when [`EXPENSIVE`] is true.
#[macro_export]
macro_rules! expensive_assert {
    ($($arg:tt)*) => {
        if $crate::checks::EXPENSIVE {
            assert!($($arg)*);
        }
    };
}

/// `assert_eq!` for checks too slow for production: compiled in only when
/// [`EXPENSIVE`] is true.
#[macro_export]
macro_rules! expensive_assert_eq {
    ($($arg:tt)*) => {
        if $crate::checks::EXPENSIVE {
            assert_eq!($($arg)*);
        }
    };
}

/// Declares `pub mod build_checks` in the calling crate: its own
/// `DEBUG_ASSERTIONS` and `overflow_probe`, compiled with that crate's
/// profile (the macro expands there), for the simulator's refusal to run
/// without assertions.
#[macro_export]
macro_rules! declare_build_checks {
    () => {
        /// How this crate was built (the simulator refuses to run
        /// without its assertions; see `jubilant_core::checks`).
        #[doc(hidden)]
        pub mod build_checks {
            /// Whether this crate was built with `debug_assert!`s on.
            pub const DEBUG_ASSERTIONS: bool = cfg!(debug_assertions);

            /// Adds one: panics on 255 with overflow checks, wraps without.
            #[inline(never)]
            pub fn overflow_probe(x: u8) -> u8 {
                x + 1
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_tests_run_every_check() {
        const { assert!(super::DEBUG_ASSERTIONS) };
        const { assert!(super::EXPENSIVE) };
        let probe = std::panic::catch_unwind(|| super::overflow_probe(std::hint::black_box(255)));
        assert!(probe.is_err(), "overflow checks are on in tests");
    }
}
