//! Transactions on this machine's real disk: 4-key read-modify-write
//! transactions (an ADD on each key), uncontended (every client on its own
//! keys) and contended (64 clients over 100 hot keys), `sync` and `async`:
//! commits/s and p50/p99 latency. Then large values (64 KiB and 1 MiB, by
//! 8 clients, `sync`), which go through the value log, in MB/s against the
//! disk's sequential write bandwidth measured in the same run. Last,
//! overwrites of 64 KiB values over a few keys with value-log GC running:
//! MB/s, and how much of the value log on disk is still live at the end.
//!
//!     cargo bench -p jubilant-bench --bench txn
//!
//! Prints a Markdown table; results go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use jubilant_bench::{BenchRng, Run, timed_clients};
use jubilant_core::db::{Db, DbOptions, Durability};
use jubilant_core::env::Clock;
use jubilant_core::txn::{Mode, Txn};
use jubilant_io_real::RealEnv;

/// How long each configuration runs.
const RUN_FOR: Duration = Duration::from_secs(3);
/// Concurrent clients.
const CLIENTS: u64 = 64;
/// Keys per transaction.
const KEYS_PER_TXN: u64 = 4;
/// The hot set of the contended runs.
const HOT_KEYS: u64 = 100;

fn main() {
    let runtime = jubilant_bench::runtime();
    runtime.block_on(async {
        let env = RealEnv::current();
        println!("| workload | durability | commits/s | p50 µs | p99 µs |");
        println!("|---|---|---:|---:|---:|");
        for contended in [false, true] {
            for durability in [Durability::Sync, Durability::Async] {
                let mut run = transactions(&env, contended, durability).await;
                println!(
                    "| {} 4-key transactions, {CLIENTS} clients | {durability:?} | {:.0} | {} | {} |",
                    if contended {
                        "contended (100 hot keys)"
                    } else {
                        "uncontended"
                    },
                    run.rate(),
                    run.percentile(50.0),
                    run.percentile(99.0)
                );
            }
        }
        println!();
        println!("| workload | MB/s | p50 µs | p99 µs |");
        println!("|---|---:|---:|---:|");
        let (mb_s, _) = sequential_bandwidth(&env).await;
        println!("| sequential 1 MiB writes + one fdatasync (the disk) | {mb_s:.0} | | |");
        for value_bytes in [64 * 1024, 1024 * 1024] {
            let mut run = large_values(&env, value_bytes).await;
            let mb_s = run.rate() * value_bytes as f64 / 1e6;
            println!(
                "| sync sets of {} KiB values, {LARGE_CLIENTS} clients | {mb_s:.0} | {} | {} |",
                value_bytes / 1024,
                run.percentile(50.0),
                run.percentile(99.0)
            );
        }
        let (mut run, vlog) = overwrites_with_gc(&env).await;
        let mb_s = run.rate() * OVERWRITE_VALUE_BYTES as f64 / 1e6;
        println!(
            "| sync overwrites of 64 KiB values over {OVERWRITE_KEYS} keys, GC on, {LARGE_CLIENTS} clients | {mb_s:.0} | {} | {} |",
            run.percentile(50.0),
            run.percentile(99.0)
        );
        println!();
        println!(
            "Value log after the overwrites: {:.0} MB written, {:.1} MB on disk in {} segments, \
             {:.1} MB live ({:.0} %); GC moved {} values, removed {} segments ({:.0} MB).",
            (vlog.gc_bytes_reclaimed + vlog.bytes) as f64 / 1e6,
            vlog.bytes as f64 / 1e6,
            vlog.segments,
            vlog.live_bytes as f64 / 1e6,
            vlog.live_ratio() * 100.0,
            vlog.gc_values_relocated,
            vlog.gc_segments_removed,
            vlog.gc_bytes_reclaimed as f64 / 1e6
        );
    });
}

/// Keys the overwrite run cycles through, and its value size.
const OVERWRITE_KEYS: u64 = 64;
const OVERWRITE_VALUE_BYTES: usize = 64 * 1024;

/// 8 clients overwrite 64 KiB values of a few keys for [`RUN_FOR`] with
/// small WAL segments and frequent GC; returns the run and the value
/// log's counters at the end.
async fn overwrites_with_gc(env: &RealEnv) -> (Run, jubilant_core::vlog::VlogStats) {
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let options = DbOptions {
        wal_segment_bytes: 8 * 1024 * 1024,
        value_bytes_max: 1024 * 1024,
        vlog_gc_interval_ms: 50,
        checkpoint_wal_bytes: 1024 * 1024,
        ..DbOptions::default()
    };
    let db = Arc::new(
        Db::open(env.clone(), dir.path(), options)
            .await
            .expect("open the database"),
    );
    let writer = Arc::clone(&db);
    let run = timed_clients(env, LARGE_CLIENTS, RUN_FOR, move |client, n| {
        let db = Arc::clone(&writer);
        async move {
            let key =
                (client * OVERWRITE_KEYS / LARGE_CLIENTS) + n % (OVERWRITE_KEYS / LARGE_CLIENTS);
            db.set_with(
                &format!("hot-{key}"),
                vec![n as u8; OVERWRITE_VALUE_BYTES],
                Durability::Sync,
            )
            .await
            .expect("set");
        }
    })
    .await;
    let vlog = db.stats().vlog;
    let db = Arc::into_inner(db).expect("every writer is done");
    db.close().await.expect("close");
    (run, vlog)
}

/// Concurrent writers of large values.
const LARGE_CLIENTS: u64 = 8;
/// Bytes the sequential-bandwidth probe writes.
const SEQUENTIAL_BYTES: u64 = 512 * 1024 * 1024;

async fn sequential_bandwidth(env: &RealEnv) -> (f64, f64) {
    use jubilant_core::env::{File, Fs, OpenMode};
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let file = env
        .open(&dir.path().join("sequential"), OpenMode::CreateNew)
        .await
        .expect("create");
    let chunk = vec![0x5au8; 1024 * 1024];
    let start = env.now_mono();
    let mut offset = 0;
    while offset < SEQUENTIAL_BYTES {
        file.write_at(offset, &chunk).await.expect("write");
        offset += chunk.len() as u64;
    }
    file.sync_data().await.expect("sync");
    let seconds = env.now_mono().saturating_since(start).as_secs_f64();
    (SEQUENTIAL_BYTES as f64 / 1e6 / seconds, seconds)
}

async fn large_values(env: &RealEnv, value_bytes: usize) -> Run {
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let db = Arc::new(
        Db::open(env.clone(), dir.path(), DbOptions::default())
            .await
            .expect("open the database"),
    );
    let writer = Arc::clone(&db);
    let run = timed_clients(env, LARGE_CLIENTS, RUN_FOR, move |client, n| {
        let db = Arc::clone(&writer);
        async move {
            db.set_with(
                &format!("big-{client}-{n}"),
                vec![client as u8; value_bytes],
                Durability::Sync,
            )
            .await
            .expect("set");
        }
    })
    .await;
    let db = Arc::into_inner(db).expect("every writer is done");
    db.close().await.expect("close");
    run
}

async fn transactions(env: &RealEnv, contended: bool, durability: Durability) -> Run {
    // On the working directory's disk, not a tmpfs /tmp.
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let db = Arc::new(
        Db::open(env.clone(), dir.path(), DbOptions::default())
            .await
            .expect("open the database"),
    );
    db.set("warm-up", 0i64).await.expect("set");
    let writer = Arc::clone(&db);
    let run = timed_clients(env, CLIENTS, RUN_FOR, move |client, n| {
        let db = Arc::clone(&writer);
        async move {
            let mut txn = Txn::new();
            let base = BenchRng::new((client << 32) + n + 1).below(HOT_KEYS as usize) as u64;
            for k in 0..KEYS_PER_TXN {
                let key = if contended {
                    // Distinct keys within one transaction.
                    let n = (base + k * (HOT_KEYS / KEYS_PER_TXN)) % HOT_KEYS;
                    format!("hot-{n:03}")
                } else {
                    format!("client-{client:02}-{k}")
                };
                let id = txn.key(key, Mode::RW);
                txn.add(id, if k % 2 == 0 { 1 } else { -1 });
            }
            txn.durability(durability);
            db.transaction(&txn).await.expect("commit");
        }
    })
    .await;
    let db = Arc::into_inner(db).expect("every client is done");
    db.close().await.expect("close");
    run
}
