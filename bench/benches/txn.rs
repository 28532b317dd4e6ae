//! Transactions on this machine's real disk: 4-key read-modify-write
//! transactions (an ADD on each key), uncontended (every client on its own
//! keys) and contended (64 clients over 100 hot keys), `sync` and `async`:
//! commits/s and p50/p99 latency.
//!
//!     cargo bench -p jubilant-bench --bench txn
//!
//! Prints a Markdown table; results go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use jubilant_bench::{BenchRng, Run, micros_since};
use jubilant_core::db::{Db, DbOptions, Durability};
use jubilant_core::env::{Clock, Spawn};
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
    });
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
    let start = env.now_mono();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (db, task_env) = (Arc::clone(&db), env.clone());
            env.spawn("client", async move {
                let env = task_env;
                let mut rng = BenchRng::new(client + 1);
                let mut latencies = Vec::new();
                while env.now_mono().saturating_since(start) < RUN_FOR {
                    let mut txn = Txn::new();
                    let base = rng.below(HOT_KEYS as usize) as u64;
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
                    let began = env.now_mono();
                    db.transaction(&txn).await.expect("commit");
                    latencies.push(micros_since(&env, began));
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await);
    }
    let seconds = env.now_mono().saturating_since(start).as_secs_f64();
    let db = Arc::into_inner(db).expect("every client is done");
    db.close().await.expect("close");
    Run {
        latencies_us,
        seconds,
    }
}
