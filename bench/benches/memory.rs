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
//!
//! With `JUBILANT_MEMORY_SERVER=ADDR` and `JUBILANT_BENCH_PID=PID` it loads
//! the same amount of pairs into a server running elsewhere (started with
//! `[storage] cache_bytes` = the budget; `bench/scripts/server-memory.sh`
//! does both) through 32 connections and reports that process's peak RSS
//! instead.
//!
//! The allocator decides much of the figure: glibc gives each thread that
//! allocates its own arena, and memory freed in one arena is not reused by
//! another, so a work-stealing runtime's threads each grow to the working
//! set. `MALLOC_ARENA_MAX=2` bounds that (docs/benchmarks.md has both).

use jubilant_bench::{BenchRng, KEY_BYTES, VALUE_BYTES, proc_status_mib};
use jubilant_core::db::{Db, DbOptions, Durability, Value, Write};
use jubilant_core::env::Spawn;
use jubilant_io_real::RealEnv;

/// Pairs per commit while loading.
const PAIRS_PER_COMMIT: usize = 1_000;
/// Random reads after the load.
const READS: usize = 200_000;
/// The allowance over the cache budget (issue 7's target).
const ALLOWANCE_MIB: f64 = 64.0;

fn key_string(rng: &mut BenchRng) -> String {
    String::from_utf8(rng.key()).expect("benchmark keys are ASCII")
}

/// The next pair of the generator `rng`.
fn pair(rng: &mut BenchRng) -> (String, Vec<u8>) {
    let key = key_string(rng);
    let mut value = vec![0u8; VALUE_BYTES];
    for byte in &mut value {
        *byte = rng.next_u64() as u8;
    }
    (key, value)
}

/// The key a random read asks for: even reads replay `written` (a key that
/// was loaded, spread over the whole tree), odd ones draw a fresh key of
/// the same shape from `fresh` (a miss walks as deep as a hit).
fn read_key(n: usize, written: &mut BenchRng, fresh: &mut BenchRng) -> String {
    if n.is_multiple_of(2) {
        pair(written).0
    } else {
        key_string(fresh)
    }
}

/// Connections (each with its own generator) loading a server.
const SERVER_CONNECTIONS: u64 = 32;

/// Loads `pairs` into the server at `addr`, reads, and returns the peak RSS
/// of process `pid` and how many reads found their key.
async fn load_server(addr: std::net::SocketAddr, pid: &str, pairs: usize) -> (f64, usize) {
    let env = RealEnv::current();
    let mut tasks = Vec::new();
    for connection in 0..SERVER_CONNECTIONS {
        let share = pairs / SERVER_CONNECTIONS as usize
            + usize::from((connection as usize) < pairs % SERVER_CONNECTIONS as usize);
        tasks.push(env.spawn("load", async move {
            let client = jubilant_client::connect(addr).await.expect("connect");
            let mut rng = BenchRng::new(1_000 + connection);
            for _ in 0..share {
                let (key, value) = pair(&mut rng);
                client
                    .set_with(&key, Value::Bytes(value), Durability::Async)
                    .await
                    .expect("set");
            }
            client.checkpoint().await.expect("checkpoint");
            // Reads: this connection's keys replayed, and fresh ones.
            let mut written = BenchRng::new(1_000 + connection);
            let mut fresh = BenchRng::new(connection + 1);
            let mut found = 0;
            for n in 0..READS / SERVER_CONNECTIONS as usize {
                let key = read_key(n, &mut written, &mut fresh);
                if client.get(&key).await.expect("get").is_some() {
                    found += 1;
                }
            }
            found
        }));
    }
    let mut found = 0;
    for task in tasks {
        found += task.await;
    }
    (proc_status_mib(pid, "VmHWM:"), found)
}

fn print_table(cache_mib: u64, pairs: usize, cache_used: &str, peak_mib: f64, before_mib: f64) {
    let grown = peak_mib - before_mib;
    println!(
        "| cache budget MiB | data MiB | pairs | cache used MiB | peak RSS MiB | RSS before MiB | peak - before MiB | target (budget + 64 MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {cache_mib} | {:.0} | {pairs} | {cache_used} | {peak_mib:.1} | {before_mib:.1} | {grown:.1} | {} |",
        (pairs * (KEY_BYTES + VALUE_BYTES)) as f64 / f64::from(1 << 20),
        if grown <= cache_mib as f64 + ALLOWANCE_MIB {
            "met"
        } else {
            "missed"
        }
    );
}

fn main() {
    let cache_mib: u64 = std::env::var("JUBILANT_MEMORY_CACHE_MIB")
        .ok()
        .and_then(|mib| mib.parse().ok())
        .unwrap_or(32);
    let cache_bytes = cache_mib << 20;
    let pairs = (10 * cache_bytes) as usize / (KEY_BYTES + VALUE_BYTES);
    let runtime = jubilant_bench::runtime();
    if let Ok(addr) = std::env::var("JUBILANT_MEMORY_SERVER") {
        let addr = addr.parse().expect("JUBILANT_MEMORY_SERVER is ADDR:PORT");
        let pid = std::env::var("JUBILANT_BENCH_PID").expect("JUBILANT_BENCH_PID names the server");
        // What the server holds before the load (its data directory empty).
        let before_mib = proc_status_mib(&pid, "VmHWM:");
        let (peak_mib, found) = runtime.block_on(load_server(addr, &pid, pairs));
        print_table(cache_mib, pairs, "-", peak_mib, before_mib);
        eprintln!("{found} of {READS} reads found their key");
        return;
    }
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let before_mib = proc_status_mib("self", "VmRSS:");
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
                    let (key, value) = pair(&mut rng);
                    Write::Set {
                        key: key.into_bytes(),
                        value: Value::Bytes(value),
                    }
                })
                .collect();
            db.write(writes, Durability::Async).await.expect("write");
            written += n;
        }
        db.checkpoint().await.expect("checkpoint");
        let loaded_mib = proc_status_mib("self", "VmRSS:");
        let mut found = 0;
        let (mut written_again, mut fresh) = (BenchRng::new(7), BenchRng::new(11));
        for n in 0..READS {
            let key = read_key(n, &mut written_again, &mut fresh);
            if db.get(&key).await.expect("get").is_some() {
                found += 1;
            }
        }
        eprintln!("RSS after the load and checkpoint: {loaded_mib:.1} MiB");
        let cache_used = db.stats().store.cache.bytes as f64 / f64::from(1 << 20);
        let peak = proc_status_mib("self", "VmHWM:");
        db.close().await.expect("close");
        (peak, cache_used, found)
    });
    print_table(
        cache_mib,
        pairs,
        &format!("{cache_used_mib:.1}"),
        peak_mib,
        before_mib,
    );
    eprintln!("{reads_found} of {READS} reads found their key");
}
