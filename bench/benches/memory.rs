//! Resident memory of the embedded database with a data set ten times its
//! cache budget (issue 7: peak RSS at most `cache_bytes` + 64 MiB). Loads
//! `10 x cache_bytes` of pairs (24-byte keys, 150-byte values, commits of
//! 1,000 pairs), then reads random keys, and reports the process's peak
//! RSS (`VmHWM`) over the RSS it had before opening the database.
//!
//!     cargo bench -p jubilant-bench --bench memory
//!     JUBILANT_MEMORY_CACHE_MIB=64 cargo bench -p jubilant-bench --bench memory
//!
//! The pairs are generated as they are written (the benchmark keeps only
//! the RNG's state, not the data), so the process's memory is the
//! database's. Prints a Markdown table; results go to docs/benchmarks.md.

// A benchmark reads /proc about itself: outside the engine's rules.
#![allow(clippy::disallowed_methods)]

use jubilant_bench::{BenchRng, KEY_BYTES, VALUE_BYTES};
use jubilant_core::db::{Db, DbOptions, Durability, Value, Write};
use jubilant_io_real::RealEnv;

/// Pairs per commit while loading.
const PAIRS_PER_COMMIT: usize = 1_000;
/// Random reads after the load.
const READS: usize = 200_000;
/// The allowance over the cache budget (issue 7's target).
const ALLOWANCE_MIB: f64 = 64.0;

/// A line of /proc/self/status, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn key_string(rng: &mut BenchRng) -> String {
    String::from_utf8(rng.key()).expect("benchmark keys are ASCII")
}

fn main() {
    let cache_mib: u64 = std::env::var("JUBILANT_MEMORY_CACHE_MIB")
        .ok()
        .and_then(|mib| mib.parse().ok())
        .unwrap_or(32);
    let cache_bytes = cache_mib << 20;
    let pairs = (10 * cache_bytes) as usize / (KEY_BYTES + VALUE_BYTES);
    let runtime = jubilant_bench::runtime();
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let before_mib = status_mib("VmRSS:");
    let (peak_mib, cache_used_mib, reads_found) = runtime.block_on(async {
        let env = RealEnv::current();
        let options = DbOptions {
            cache_bytes,
            ..DbOptions::default()
        };
        let db = Db::open(env, dir.path(), options).await.expect("open");
        let mut rng = BenchRng::new(7);
        let mut written = 0;
        while written < pairs {
            let n = PAIRS_PER_COMMIT.min(pairs - written);
            let writes = (0..n)
                .map(|_| {
                    let key = key_string(&mut rng);
                    let mut value = vec![0u8; VALUE_BYTES];
                    for byte in &mut value {
                        *byte = rng.next_u64() as u8;
                    }
                    Write::Set {
                        key,
                        value: Value::Bytes(value),
                    }
                })
                .collect();
            db.write(writes, Durability::Async).await.expect("write");
            written += n;
        }
        db.checkpoint().await.expect("checkpoint");
        let loaded_mib = status_mib("VmRSS:");
        // Random reads: half of them keys written (the generator replayed:
        // keys are random, so these are spread over the whole tree), half
        // fresh keys of the same shape (a miss walks as deep as a hit).
        let mut found = 0;
        let mut written_again = BenchRng::new(7);
        let mut fresh = BenchRng::new(11);
        for n in 0..READS {
            let key = if n % 2 == 0 {
                let key = key_string(&mut written_again);
                for _ in 0..VALUE_BYTES {
                    let _ = written_again.next_u64();
                }
                key
            } else {
                key_string(&mut fresh)
            };
            if db.get(&key).await.expect("get").is_some() {
                found += 1;
            }
        }
        eprintln!("RSS after the load and checkpoint: {loaded_mib:.1} MiB");
        let cache_used = db.stats().store.cache.bytes as f64 / f64::from(1 << 20);
        let peak = status_mib("VmHWM:");
        db.close().await.expect("close");
        (peak, cache_used, found)
    });
    let grown = peak_mib - before_mib;
    println!(
        "| cache budget MiB | data MiB | pairs | cache used MiB | peak RSS MiB | RSS before open MiB | peak - before MiB | target (budget + 64 MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {cache_mib} | {:.0} | {pairs} | {cache_used_mib:.1} | {peak_mib:.1} | {before_mib:.1} | {grown:.1} | {} |",
        (pairs * (KEY_BYTES + VALUE_BYTES)) as f64 / f64::from(1 << 20),
        if grown <= cache_mib as f64 + ALLOWANCE_MIB {
            "met"
        } else {
            "missed"
        }
    );
    eprintln!("{reads_found} of {READS} reads found their key");
}
