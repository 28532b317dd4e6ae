//! The data every engine gets, generated once per run from fixed seeds:
//! 24-byte keys and 150-byte values (redb's benchmark's sizes), the same
//! pairs in the same order for every engine.

use jubilant_bench::{BenchRng, VALUE_BYTES};

use super::config::Config;
use super::engine::{Pair, Tally};

/// Pairs each range read returns (as in redb's benchmark).
pub const RANGE_PAIRS: usize = 10;

pub struct Data {
    /// Loaded by the bulk load, in this order.
    pub bulk: Vec<Pair>,
    /// One per individual durable write.
    pub individual: Vec<Pair>,
    /// Written one commit each right after the bulk load, then removed
    /// again (their own stream: the other pairs are as before).
    pub after_bulk: Vec<Pair>,
    /// One inner vector per batch commit.
    pub batches: Vec<Vec<Pair>>,
    /// Bulk-loaded keys the random reads look up, with repeats.
    pub reads: Vec<Vec<u8>>,
    /// What the random reads must return.
    pub reads_expected: Tally,
    /// Bulk-loaded keys the range reads start at.
    pub range_starts: Vec<Vec<u8>>,
    /// The bulk-loaded keys removed: the first half loaded.
    pub removals: Vec<Vec<u8>>,
}

impl Data {
    pub fn generate(config: &Config) -> Self {
        let mut rng = BenchRng::new(0x0e3b_edde_d000_0001);
        let mut pairs =
            |count: usize| -> Vec<Pair> { (0..count).map(|_| pair(&mut rng)).collect() };
        let bulk = pairs(config.pairs);
        let individual = pairs(config.individual_writes);
        let batches = (0..config.batches)
            .map(|_| pairs(config.batch_pairs))
            .collect();
        let mut after = BenchRng::new(0x0e3b_edde_d000_0003);
        let after_bulk = (0..config.individual_writes)
            .map(|_| pair(&mut after))
            .collect();
        let mut pick = BenchRng::new(0x0e3b_edde_d000_0002);
        let mut reads_expected = Tally::default();
        let reads = (0..config.reads)
            .map(|_| {
                let (key, value) = &bulk[pick.below(bulk.len())];
                reads_expected.add(value);
                key.clone()
            })
            .collect();
        let range_starts = (0..config.ranges)
            .map(|_| bulk[pick.below(bulk.len())].0.clone())
            .collect();
        let removals = bulk[..bulk.len() / 2]
            .iter()
            .map(|(key, _)| key.clone())
            .collect();
        Data {
            bulk,
            individual,
            after_bulk,
            batches,
            reads,
            reads_expected,
            range_starts,
            removals,
        }
    }

    /// Pairs written before the removals.
    pub fn written(&self) -> u64 {
        (self.bulk.len() + self.individual.len() + self.batches.iter().map(Vec::len).sum::<usize>())
            as u64
    }
}

/// A random key and a random (incompressible) value.
fn pair(rng: &mut BenchRng) -> Pair {
    let key = rng.key();
    let mut value = Vec::with_capacity(VALUE_BYTES);
    while value.len() < VALUE_BYTES {
        let word = rng.next_u64().to_le_bytes();
        let take = word.len().min(VALUE_BYTES - value.len());
        value.extend_from_slice(&word[..take]);
    }
    (key, value)
}
