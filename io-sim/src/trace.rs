//! The world's trace: every decision and effect, hashed as it happens.
//!
//! Invariant kept here: two runs of the same seed produce the same sequence
//! of trace lines, so the same `trace_hash`; the first line that differs is
//! where determinism broke. Only the last [`TAIL_LINES`] lines are kept in
//! memory (for the failure report); all of them go into the hash, and can be
//! echoed to stderr while debugging a seed.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};

/// How many trailing lines a failure report shows.
pub const TAIL_LINES: usize = 64;

/// An incrementally hashed log of what happened in a world.
pub struct Trace {
    hasher: blake3::Hasher,
    tail: VecDeque<String>,
    lines: u64,
    echo: bool,
    line: String,
}

impl Trace {
    pub(crate) fn new() -> Self {
        Trace {
            hasher: blake3::Hasher::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
            lines: 0,
            echo: false,
            line: String::new(),
        }
    }

    /// Appends one line, prefixed with the virtual time in microseconds.
    pub(crate) fn record(&mut self, now_nanos: u64, args: fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{:>10}us ", now_nanos / 1_000);
        let _ = self.line.write_fmt(args);
        self.line.push('\n');
        self.hasher.update(self.line.as_bytes());
        self.lines += 1;
        if self.echo {
            eprint!("{}", self.line);
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(self.line.trim_end().to_owned());
    }

    pub(crate) fn set_echo(&mut self, echo: bool) {
        self.echo = echo;
    }

    /// The hash of every line so far, as 16 hex digits (64 bits are plenty
    /// to tell runs apart, and short enough to read).
    pub(crate) fn hash(&self) -> String {
        let digest = self.hasher.finalize();
        digest.to_hex()[..16].to_owned()
    }

    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    pub(crate) fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}
