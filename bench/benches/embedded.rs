//! Jubilant DB embedded against other embedded engines, on the same data
//! and the same durability, in one run: redb, LMDB (heed), SQLite
//! (rusqlite, WAL) and fjall (an LSM tree). The workloads follow redb's
//! public benchmark (`lmdb_benchmark.rs` in its repository) so figures are
//! comparable: 24-byte keys, 150-byte random values.
//!
//!     cargo bench -p jubilant-bench --bench embedded
//!     JUBILANT_EMBEDDED_PAIRS=20000 cargo bench -p jubilant-bench --bench embedded   # smoke run
//!     bench/scripts/flamegraphs.sh   # profiles Jubilant DB's workloads
//!
//! Workloads, in order; each runs on every engine, one engine after the
//! other, before the next workload starts (interleaved, so a drift of the
//! machine shows in every engine's rows alike). Each engine reopens its
//! database for each workload and closes it after, so no engine's
//! background work (checkpoints, flushes, compaction) runs while another
//! is measured:
//! 1. bulk load: `JUBILANT_EMBEDDED_PAIRS` pairs (default 1,000,000) in
//!    one commit; right after it, with no explicit checkpoint (users do not
//!    call one), `JUBILANT_EMBEDDED_WRITES` new pairs, each its own synced
//!    commit, timed one by one (p50, p99, max: whatever the engine does in
//!    the background after a load shows here), removed again in one commit
//!    (not timed); then the time to checkpoint what the commits left
//!    in a log into the engine's main structure (n/a where a commit writes
//!    the tree itself: redb, LMDB);
//! 2. individual writes: `JUBILANT_EMBEDDED_WRITES` commits (1,000) of one
//!    pair each, each fsynced;
//! 3. batch writes: `JUBILANT_EMBEDDED_BATCHES` commits (100) of
//!    `JUBILANT_EMBEDDED_BATCH_PAIRS` pairs (100) each;
//! 4. random reads of bulk-loaded keys, cache-resident:
//!    `JUBILANT_EMBEDDED_READS` (as many as pairs) in one read
//!    transaction, after a full scan warmed the cache;
//! 5. random range reads: `JUBILANT_EMBEDDED_RANGES` (half as many as
//!    pairs) ranges of 10 pairs from a random bulk-loaded key;
//! 6. random reads again with the data set 10x the cache (below);
//! 7. removals: the first half of the bulk-loaded pairs in one commit;
//! 8. the size on disk afterwards, once closed: bytes the file system
//!    allocated for the engine's directory (preallocated WAL segments
//!    count, holes do not). The largest files of each engine are listed
//!    under the table.
//!
//! Durability is the same everywhere: every write commit is synced before
//! it returns. Jubilant DB: `Durability::Sync`; redb:
//! `Durability::Immediate`; LMDB: its default (synced commits); SQLite:
//! `journal_mode=WAL`, `synchronous=FULL`; fjall: each batch persisted with
//! `PersistMode::SyncAll`.
//!
//! Caches: every engine that has a cache gets the same budget,
//! `JUBILANT_EMBEDDED_CACHE_MIB` (1024 MiB: more than the data), as
//! Jubilant DB's `DbOptions::cache_bytes`, redb's `set_cache_size`,
//! SQLite's `cache_size` and fjall's `cache_size` (its block cache). LMDB
//! has none: it reads through a memory map. For workload 6 the budget is
//! a tenth of the raw data (`pairs` x 174 bytes / 10, 16.6 MiB at a
//! million pairs; `JUBILANT_EMBEDDED_SMALL_CACHE_MIB` overrides it), so
//! the data set is 10x the cache. That is only the engines' own caches:
//! the OS page cache still holds the files (this machine has 24 GiB and the
//! benchmark does not drop it), so the row measures each engine's cache-miss
//! path (a page read from the page cache, checks, decoding), not the disk;
//! LMDB, whose only cache is the page cache, reads as in workload 4.
//!
//! Other settings are each engine's defaults (Jubilant DB's bulk load is
//! one commit spanning several 64 MiB WAL segments), except: SQLite's table is `WITHOUT ROWID`, keyed by the key,
//! so that one B-tree holds keys and values as in the other engines.
//! `JUBILANT_EMBEDDED_ENGINES=redb,sqlite` runs only those (and Jubilant
//! DB). Every engine works in its own temporary directory under the
//! current directory (the disk, not a tmpfs `/tmp`).
//!
//! Every workload checks what it read against the data written (and each
//! range read against Jubilant DB's); the run ends with the number of
//! checks made. Prints a Markdown table; results go to docs/benchmarks.md.

// A benchmark times with the real clock and reads directories: outside
// the engine's rules.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

/// The harness's parts, one per file under `embedded/`: an adapter per
/// engine behind one trait, the data, the configuration and the report.
mod embedded {
    pub mod config;
    pub mod data;
    pub mod disk;
    pub mod engine;
    pub mod fjall;
    pub mod jubilant;
    pub mod lmdb;
    pub mod redb;
    pub mod report;
    pub mod sqlite;
}

use std::time::Instant;

use embedded::config::Config;
use embedded::data::{Data, RANGE_PAIRS};
use embedded::disk;
use embedded::engine::{Engine, Kind, Tally};
use embedded::report::{Figure, Report};

/// Files listed per engine under the table.
const FILES_LISTED: usize = 3;

fn main() {
    let config = Config::from_env();
    eprintln!("generating {} pairs", config.pairs);
    let data = Data::generate(&config);
    let mut bench = Bench::new(&config);
    let pairs = config.pairs;

    bench.each("bulk load", config.cache_bytes, |kind, engine, report| {
        let seconds = timed(|| engine.insert(&data.bulk));
        report.add(
            &format!("bulk load: {pairs} pairs, 1 commit"),
            kind,
            Figure::Ms(seconds * 1e3),
        );
        let mut latencies: Vec<f64> = data
            .after_bulk
            .iter()
            .map(|pair| timed(|| engine.insert(std::slice::from_ref(pair))))
            .collect();
        let keys: Vec<Vec<u8>> = data.after_bulk.iter().map(|(key, _)| key.clone()).collect();
        engine.remove(&keys);
        latencies.sort_by(f64::total_cmp);
        let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] * 1e3;
        for (name, figure) in [
            ("p50", quantile(0.5)),
            ("p99", quantile(0.99)),
            ("max", quantile(1.0)),
        ] {
            report.add(
                &format!("commits of 1 pair right after the bulk load: {name}"),
                kind,
                Figure::Ms(figure),
            );
        }
        let mut checkpointed = false;
        let seconds = timed(|| checkpointed = engine.checkpoint());
        report.add(
            "checkpoint after the bulk load",
            kind,
            if checkpointed {
                Figure::Ms(seconds * 1e3)
            } else {
                Figure::NotApplicable
            },
        );
    });

    let workload = format!(
        "individual writes: {} commits of 1 pair",
        data.individual.len()
    );
    bench.each(&workload, config.cache_bytes, |kind, engine, report| {
        let seconds = timed(|| {
            for pair in &data.individual {
                engine.insert(std::slice::from_ref(pair));
            }
        });
        let rate = data.individual.len() as f64 / seconds;
        report.add(&workload, kind, Figure::Rate(rate, "commits"));
    });

    let workload = format!(
        "batch writes: {} commits of {} pairs",
        config.batches, config.batch_pairs
    );
    bench.each(&workload, config.cache_bytes, |kind, engine, report| {
        let seconds = timed(|| {
            for batch in &data.batches {
                engine.insert(batch);
            }
        });
        let rate = (config.batches * config.batch_pairs) as f64 / seconds;
        report.add(&workload, kind, Figure::Rate(rate, "pairs"));
    });

    let written = data.written();
    let workload = format!(
        "random reads, cache-resident ({:.0} MiB cache)",
        disk::mib(config.cache_bytes)
    );
    bench.each(&workload, config.cache_bytes, |kind, engine, report| {
        let warm = engine.scan_all();
        check(warm.pairs == written, kind, "the scan reads every pair");
        let mut tally = Tally::default();
        let seconds = timed(|| tally = engine.get_many(&data.reads));
        check(tally == data.reads_expected, kind, "reads find every value");
        let rate = data.reads.len() as f64 / seconds;
        report.add(&workload, kind, Figure::Rate(rate, "reads"));
    });

    let workload = format!("random range reads of {RANGE_PAIRS} pairs");
    let mut expected_ranges: Option<Tally> = None;
    bench.each(&workload, config.cache_bytes, |kind, engine, report| {
        engine.scan_all();
        let mut tally = Tally::default();
        let seconds = timed(|| tally = engine.ranges(&data.range_starts, RANGE_PAIRS));
        let expected = *expected_ranges.get_or_insert(tally);
        check(
            tally == expected,
            kind,
            "ranges read what Jubilant DB's did",
        );
        check(
            tally.pairs > (data.range_starts.len() * (RANGE_PAIRS - 1)) as u64,
            kind,
            "ranges are full but near the end",
        );
        let rate = data.range_starts.len() as f64 / seconds;
        report.add(&workload, kind, Figure::Rate(rate, "ranges"));
    });

    let workload = format!(
        "random reads, data 10x the cache ({:.1} MiB cache)",
        disk::mib(config.cache_bytes_small)
    );
    bench.each(
        &workload,
        config.cache_bytes_small,
        |kind, engine, report| {
            let warm = engine.scan_all();
            check(warm.pairs == written, kind, "the scan reads every pair");
            let mut tally = Tally::default();
            let seconds = timed(|| tally = engine.get_many(&data.reads));
            check(tally == data.reads_expected, kind, "reads find every value");
            let rate = data.reads.len() as f64 / seconds;
            report.add(&workload, kind, Figure::Rate(rate, "reads"));
        },
    );

    let workload = format!("removals: {} pairs, 1 commit", data.removals.len());
    bench.each(&workload, config.cache_bytes, |kind, engine, report| {
        let seconds = timed(|| engine.remove(&data.removals));
        report.add(&workload, kind, Figure::Ms(seconds * 1e3));
    });

    let mut listed = Vec::new();
    for (kind, dir) in &bench.slots {
        let files = disk::files(dir.path());
        let bytes = files.iter().map(|file| file.bytes).sum();
        bench.report.add(
            "size on disk after the removals",
            *kind,
            Figure::Mib(disk::mib(bytes)),
        );
        let largest: Vec<String> = files
            .iter()
            .take(FILES_LISTED)
            .map(|file| format!("{} {}", file.name, disk::size_text(file.bytes)))
            .collect();
        listed.push(format!("{}: {}", kind.name(), largest.join(", ")));
    }

    // What is left must be exactly what was not removed.
    let remaining = written - data.removals.len() as u64;
    let probe = &data.removals[..data.removals.len().min(10_000)];
    bench.each("(check)", config.cache_bytes, |kind, engine, _| {
        check(
            engine.scan_all().pairs == remaining,
            kind,
            "removals leave the rest",
        );
        check(
            engine.get_many(probe).pairs == 0,
            kind,
            "removed keys are gone",
        );
    });

    println!(
        "{} pairs bulk-loaded, {} individual and {} x {} batch writes, {} reads, {} ranges; \
         cache {:.0} MiB, small cache {:.1} MiB; every commit synced.",
        config.pairs,
        config.individual_writes,
        config.batches,
        config.batch_pairs,
        config.reads,
        config.ranges,
        disk::mib(config.cache_bytes),
        disk::mib(config.cache_bytes_small),
    );
    println!();
    bench.report.print();
    println!();
    println!("Largest files after the removals:");
    for line in listed {
        println!("- {line}");
    }
    println!();
    println!(
        "{} checks passed.",
        CHECKS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// The engines, each with its own directory, and the rows measured.
struct Bench {
    slots: Vec<(Kind, tempfile::TempDir)>,
    report: Report,
}

impl Bench {
    fn new(config: &Config) -> Self {
        let slots = config
            .engines
            .iter()
            .map(|kind| {
                // On the working directory's disk, not a tmpfs /tmp.
                let dir = tempfile::Builder::new()
                    .prefix(&format!(".embedded-{}-", kind.id()))
                    .tempdir_in(".")
                    .expect("temporary directory");
                (*kind, dir)
            })
            .collect();
        Bench {
            slots,
            report: Report::default(),
        }
    }

    /// Runs `workload` on each engine in turn, each opened with
    /// `cache_bytes` of cache before and closed after.
    fn each(
        &mut self,
        workload: &str,
        cache_bytes: u64,
        mut run: impl FnMut(Kind, &mut dyn Engine, &mut Report),
    ) {
        eprintln!("{workload}");
        let marks = std::env::var_os("JUBILANT_EMBEDDED_MARKS").is_some();
        for (kind, dir) in &self.slots {
            let mut engine = kind.open(dir.path(), cache_bytes);
            let start = Instant::now();
            run(*kind, engine.as_mut(), &mut self.report);
            if marks {
                eprintln!(
                    "mark\t{}\t{workload}\t{:.6}\t{:.6}",
                    kind.name(),
                    monotonic_seconds(start),
                    monotonic_seconds(Instant::now())
                );
            }
            engine.close();
        }
    }
}

/// An instant as CLOCK_MONOTONIC seconds, the clock `perf record -k
/// CLOCK_MONOTONIC` stamps samples with, so a profile of the whole run can
/// be cut into workloads (`perf script --time`). Linux's `Instant` is that
/// clock and shows its `timespec` in its debug form.
fn monotonic_seconds(instant: Instant) -> f64 {
    let shown = format!("{instant:?}");
    let field = |name: &str| -> f64 {
        shown
            .split(name)
            .nth(1)
            .and_then(|rest| {
                rest.trim_start_matches([':', ' '])
                    .split([',', ' ', '}'])
                    .next()
            })
            .and_then(|number| number.parse().ok())
            .unwrap_or(0.0)
    };
    field("tv_sec") + field("tv_nsec") / 1e9
}

/// Seconds `work` took.
fn timed(work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_secs_f64()
}

static CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Asserts what a workload read: a wrong answer makes its figure
/// meaningless.
fn check(holds: bool, kind: Kind, what: &str) {
    assert!(holds, "{}: check failed: {what}", kind.name());
    CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
