//! The run's sizes and caches, from `JUBILANT_EMBEDDED_*` environment
//! variables (see the top of `embedded.rs`).

use jubilant_bench::{KEY_BYTES, VALUE_BYTES};

use super::engine::Kind;

/// The smallest cache any engine is given: Jubilant DB's floor of 64
/// 4 KiB pages (`StoreOptions::CACHE_PAGES_MIN`).
const CACHE_BYTES_MIN: u64 = 64 * 4096;

pub struct Config {
    /// Pairs bulk-loaded in one commit.
    pub pairs: usize,
    /// Individual durable writes, one pair per commit.
    pub individual_writes: usize,
    /// Batch commits, and pairs in each.
    pub batches: usize,
    pub batch_pairs: usize,
    /// Random point reads per read workload.
    pub reads: usize,
    /// Random range reads.
    pub ranges: usize,
    /// The cache of every workload but one: larger than the data.
    pub cache_bytes: u64,
    /// The cache of the reads of a data set 10x the cache.
    pub cache_bytes_small: u64,
    /// The engines run, Jubilant DB always first.
    pub engines: Vec<Kind>,
}

/// `name`'s value as a number (`_` separators allowed), or `default`.
fn number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    }
}

fn count(name: &str, default: usize) -> usize {
    usize::try_from(number(name, default as u64)).expect("a 64-bit machine")
}

impl Config {
    pub fn from_env() -> Self {
        let pairs = count("JUBILANT_EMBEDDED_PAIRS", 1_000_000).max(2);
        let data_bytes = (pairs * (KEY_BYTES + VALUE_BYTES)) as u64;
        let engines = match std::env::var("JUBILANT_EMBEDDED_ENGINES") {
            Ok(list) => Kind::ALL
                .into_iter()
                .filter(|kind| {
                    *kind == Kind::Jubilant
                        || list
                            .split(',')
                            .any(|id| id.trim().eq_ignore_ascii_case(kind.id()))
                })
                .collect(),
            Err(_) => Kind::ALL.to_vec(),
        };
        Config {
            pairs,
            individual_writes: count("JUBILANT_EMBEDDED_WRITES", 1_000),
            batches: count("JUBILANT_EMBEDDED_BATCHES", 100),
            batch_pairs: count("JUBILANT_EMBEDDED_BATCH_PAIRS", 100),
            reads: count("JUBILANT_EMBEDDED_READS", pairs),
            ranges: count("JUBILANT_EMBEDDED_RANGES", pairs / 2),
            cache_bytes: number("JUBILANT_EMBEDDED_CACHE_MIB", 1024) << 20,
            cache_bytes_small: match std::env::var("JUBILANT_EMBEDDED_SMALL_CACHE_MIB") {
                Ok(_) => number("JUBILANT_EMBEDDED_SMALL_CACHE_MIB", 0) << 20,
                Err(_) => data_bytes / 10,
            }
            .max(CACHE_BYTES_MIN),
            engines,
        }
    }
}
