//! What a WAL rollover costs the commits that meet it, on this machine's
//! real disk: 8 committers write `sync` commits of 400-byte values into
//! 16 MiB segments for a fixed time (many rollovers), and the run reports
//! commits/s, rollovers (and how many found the next segment prepared
//! ahead), and the commit latency p50, p99, p99.9 and max. A rollover that
//! zero-fills and syncs a new segment on the commit path shows as the max.
//!
//!     cargo bench -p jubilant-bench --bench rollover
//!
//! Results go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use jubilant_bench::timed_clients;
use jubilant_core::db::{Db, DbOptions, Durability};
use jubilant_io_real::RealEnv;

const RUN_FOR: Duration = Duration::from_secs(8);
const COMMITTERS: u64 = 8;
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
const VALUE_BYTES: usize = 400;

fn main() {
    let runtime = jubilant_bench::runtime();
    runtime.block_on(async {
        let env = RealEnv::current();
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = DbOptions {
            wal_segment_bytes: SEGMENT_BYTES,
            durability: Durability::Sync,
            ..DbOptions::default()
        };
        let db = Arc::new(
            Db::open(env.clone(), dir.path(), options)
                .await
                .expect("open"),
        );
        let value = vec![7u8; VALUE_BYTES];
        let mut run = timed_clients(&env, COMMITTERS, RUN_FOR, {
            let db = Arc::clone(&db);
            move |client, n| {
                let (db, value) = (Arc::clone(&db), value.clone());
                async move {
                    db.set(format!("c{client:02}-{n:09}"), value)
                        .await
                        .expect("set");
                }
            }
        })
        .await;
        let stats = db.stats().wal.log;
        println!(
            "| commits/s | rollovers | prepared ahead | p50 µs | p99 µs | p99.9 µs | max µs |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        let rate = run.rate();
        println!(
            "| {rate:.0} | {} | {} | {} | {} | {} | {} |",
            stats.rollovers,
            stats.rollovers_prepared_ahead,
            run.percentile(50.0),
            run.percentile(99.0),
            run.percentile(99.9),
            run.percentile(100.0)
        );
        let db = Arc::into_inner(db).expect("one handle");
        db.close().await.expect("close");
    });
}
