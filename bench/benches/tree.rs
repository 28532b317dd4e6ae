//! Cache-resident tree operations: random point reads and random inserts
//! on a store whose every page is in the cache, on the real disk
//! environment (`io-real`). Nothing here waits for the disk: the cache is
//! large enough that no memory-pressure checkpoint runs while measuring.
//!
//!     cargo bench -p jubilant-bench --bench tree
//!
//! Results: docs/benchmarks.md.

use divan::Bencher;
use divan::counter::ItemsCount;
use jubilant_bench::Fixture;

fn main() {
    divan::main();
}

/// Keys in the tree before measuring.
const SIZES: &[usize] = &[100_000, 1_000_000];
/// Operations per timed sample.
const BATCH: usize = 1_000;
/// A cache far larger than the data (about 300 MB at a million keys), so
/// dirty pages never reach half of it.
const CACHE_BYTES: u64 = 4 << 30;

#[divan::bench(args = SIZES, sample_count = 100, sample_size = 5)]
fn get_random(bencher: Bencher, n: usize) {
    let mut fixture = Fixture::loaded(n, CACHE_BYTES);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| assert_eq!(fixture.get_random(BATCH), BATCH));
}

#[divan::bench(args = SIZES, sample_count = 100, sample_size = 1)]
fn insert_random(bencher: Bencher, n: usize) {
    let mut fixture = Fixture::loaded(n, CACHE_BYTES);
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| fixture.insert(BATCH));
}
