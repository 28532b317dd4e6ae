//! The world's randomness: one ChaCha seed, independent streams per use.
//!
//! Invariant kept here: every random choice in a world comes from a
//! `SimRng` derived from the world's seed, so a seed names one run. Each
//! subsystem (scheduler, disk, network, workload, faults) draws from its own
//! stream, so adding a draw in one does not reshuffle the others' choices.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Stream ids, one per subsystem drawing from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Drawing the swarm fault configuration.
    Swarm = 1,
    /// The executor's choice of the next task.
    Scheduler = 2,
    /// Disk latencies and disk faults.
    Disk = 3,
    /// Network latencies and network faults.
    Net = 4,
    /// The simulator driver's fault schedule (crashes, clock jumps).
    Faults = 5,
    /// Workload choices (what clients do).
    Workload = 6,
    /// Workload settings added after the workload's seeds were in the
    /// corpus, drawn here so those seeds keep their worlds.
    Settings = 7,
    /// The server workload's hostile clients (added after its seeds were in
    /// the corpus).
    Hostile = 8,
}

/// A seeded ChaCha8 random number generator with the helpers the simulator
/// needs.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// The stream `stream` of seed `seed`.
    pub fn new(seed: u64, stream: Stream) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream as u64);
        SimRng { inner }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random bits: exactly representable, uniform.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (0 never draws, so a disabled fault does
    /// not consume randomness and perturb other choices).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.unit() < p)
    }

    /// A uniform integer in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no values");
        // Lemire's multiply-shift; the tiny bias is irrelevant here and the
        // result is deterministic, which is what matters.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform integer in `[lo, hi]`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below(hi - lo + 1)
    }

    /// A float in `[lo, hi]`, uniform on a log scale (for probabilities
    /// spanning orders of magnitude).
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        assert!(lo > 0.0 && lo <= hi, "log_uniform needs 0 < lo <= hi");
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_give_the_same_numbers() {
        let mut a = SimRng::new(7, Stream::Disk);
        let mut b = SimRng::new(7, Stream::Disk);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        let first = |seed, stream| SimRng::new(seed, stream).next_u64();
        assert_ne!(first(7, Stream::Disk), first(7, Stream::Net));
        assert_ne!(first(7, Stream::Disk), first(8, Stream::Disk));
    }

    #[test]
    fn helpers_stay_in_range() {
        let mut rng = SimRng::new(1, Stream::Workload);
        for _ in 0..1000 {
            assert!(rng.below(10) < 10);
            let v = rng.between(5, 9);
            assert!((5..=9).contains(&v));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            let l = rng.log_uniform(1e-4, 1e-2);
            assert!((1e-4..=1e-2 + 1e-12).contains(&l));
        }
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
    }
}
