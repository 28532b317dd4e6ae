//! Transactions on this machine's real disk: 4-key read-modify-write
//! transactions (an ADD on each key), uncontended (every client on its own
//! keys) and contended (64 clients over 100 hot keys), `sync` and `async`:
//! commits/s and p50/p99 latency. Then large values (64 KiB and 1 MiB, by
//! 8 clients, `sync`), which go through the value log, in MB/s against the
//! disk's sequential write bandwidth measured in the same run.
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
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
    });
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
