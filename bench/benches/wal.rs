//! Durable commits on this machine's real disk, in one run:
//!
//! 1. the physical limit: 4 KiB `pwrite` + `fdatasync` into a preallocated
//!    file, one after the other;
//! 2. `sync` commits through the embedded database (group commit) with 1,
//!    8 and 64 concurrent committers: commits/s, fsyncs/s, mean batch,
//!    p50/p99 commit latency.
//!
//!     cargo bench -p jubilant-bench --bench wal
//!
//! `JUBILANT_WAL_COMMITTERS=64` runs only that committer count (after the
//! raw appends), e.g. to profile it (bench/scripts/flamegraphs.sh).
//!
//! Prints a Markdown table; results go to docs/benchmarks.md. Everything
//! is measured through the environment seam (`io-real`), as the database
//! itself runs.

use std::sync::Arc;
use std::time::Duration;

use jubilant_bench::{BenchRng, Run, VALUE_BYTES, micros_since, timed_clients};
use jubilant_core::db::{Db, DbOptions, Durability};
use jubilant_core::env::{Clock, File, Fs, OpenMode};
use jubilant_io_real::RealEnv;

/// How long each configuration runs.
const RUN_FOR: Duration = Duration::from_secs(4);
/// Concurrent committers measured.
const COMMITTERS: &[usize] = &[1, 8, 64];
/// Size of one raw append.
const APPEND_BYTES: usize = 4096;
/// The raw file is preallocated to this size (zero-filled, synced).
const RAW_FILE_BYTES: u64 = 256 * 1024 * 1024;

fn main() {
    let runtime = jubilant_bench::runtime();
    runtime.block_on(async {
        let env = RealEnv::current();
        println!("| workload | commits/s | fsyncs/s | mean batch | p50 µs | p99 µs |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut raw = raw_appends(&env).await;
        println!(
            "| raw 4 KiB append + fdatasync | {:.0} | {:.0} | 1 | {} | {} |",
            raw.rate(),
            raw.rate(),
            raw.percentile(50.0),
            raw.percentile(99.0)
        );
        let only: Option<usize> = std::env::var("JUBILANT_WAL_COMMITTERS")
            .ok()
            .map(|count| count.parse().expect("JUBILANT_WAL_COMMITTERS is a number"));
        for &committers in COMMITTERS
            .iter()
            .filter(|&&count| only.is_none_or(|only| only == count))
        {
            let (mut run, fsyncs, batches) = sync_commits(&env, committers).await;
            let seconds = run.seconds;
            println!(
                "| sync commits, {committers} committer{} | {:.0} | {:.0} | {:.1} | {} | {} |",
                if committers == 1 { "" } else { "s" },
                run.rate(),
                fsyncs as f64 / seconds,
                run.latencies_us.len() as f64 / batches.max(1) as f64,
                run.percentile(50.0),
                run.percentile(99.0)
            );
        }
    });
}

async fn raw_appends(env: &RealEnv) -> Run {
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let path = dir.path().join("raw.log");
    let file = env
        .open(&path, OpenMode::CreateNew)
        .await
        .expect("create file");
    let zeros = vec![0u8; 1024 * 1024];
    let mut offset = 0;
    while offset < RAW_FILE_BYTES {
        file.write_at(offset, &zeros).await.expect("preallocate");
        offset += zeros.len() as u64;
    }
    file.sync_data().await.expect("sync");
    env.sync_dir(dir.path()).await.expect("sync dir");
    let block = vec![0xa5u8; APPEND_BYTES];
    let start = env.now_mono();
    let mut latencies_us = Vec::new();
    let mut offset = 0;
    while env.now_mono().saturating_since(start) < RUN_FOR && offset < RAW_FILE_BYTES {
        let began = env.now_mono();
        file.write_at(offset, &block).await.expect("write");
        file.sync_data().await.expect("fdatasync");
        latencies_us.push(micros_since(env, began));
        offset += APPEND_BYTES as u64;
    }
    Run {
        latencies_us,
        seconds: env.now_mono().saturating_since(start).as_secs_f64(),
    }
}

async fn sync_commits(env: &RealEnv, committers: usize) -> (Run, u64, u64) {
    // On the working directory's disk, not a tmpfs /tmp.
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let db = Arc::new(
        Db::open(env.clone(), dir.path(), DbOptions::default())
            .await
            .expect("open the database"),
    );
    // Warm up: the first segment's creation is not a commit's cost.
    db.set("warm-up", "x").await.expect("set");
    let before = db.stats().wal;
    let writer = Arc::clone(&db);
    let run = timed_clients(env, committers as u64, RUN_FOR, move |client, n| {
        let db = Arc::clone(&writer);
        async move {
            let key = BenchRng::new((client << 32) + n + 1).key();
            let key = String::from_utf8(key).expect("ASCII key");
            db.set_with(&key, vec![b'v'; VALUE_BYTES], Durability::Sync)
                .await
                .expect("commit");
        }
    })
    .await;
    let after = db.stats().wal;
    let db = Arc::into_inner(db).expect("every committer is done");
    db.close().await.expect("close");
    (
        run,
        after.fsyncs - before.fsyncs,
        after.batches - before.batches,
    )
}
