//! The load generator against servers on loopback: 1 and 50 connections,
//! pipeline depth 1 and 16 (calls in flight per connection), SET (`sync`
//! and `async`) and GET, 3-byte and 1 KiB values over 10,000 keys; ops/s
//! and p50/p99 latency. The same generator drives Jubilant DB (through the
//! Rust client) and, when `JUBILANT_BENCH_REDIS` names one, a Redis server
//! (through a minimal RESP client, `jubilant_bench::resp`) row by row in
//! the same run: `appendfsync always` for `sync` SETs, `everysec` for
//! `async` ones (set by the generator before each row).
//!
//!     bench/scripts/server-compare.sh      # both servers, each its own process
//!     cargo bench -p jubilant-bench --bench server                          # in-process server
//!     cargo bench -p jubilant-bench --bench server -- "SET sync 3 B 50x16"   # matching rows
//!
//! `JUBILANT_BENCH_ADDR` loads a Jubilant DB server running elsewhere (the
//! release binary, in its own process) instead of one in this process.
//! Prints a Markdown table; results go to docs/benchmarks.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jubilant_bench::resp::Resp;
use jubilant_bench::{Run, timed_clients};
use jubilant_core::db::{Durability, Value};
use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;

// The allocator the server binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long each configuration runs.
const RUN_FOR: Duration = Duration::from_secs(2);
/// Keys the load spreads over.
const KEYS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    SetSync,
    SetAsync,
    Get,
}

/// One row's load against Jubilant DB.
async fn run_jubilant(
    env: &RealEnv,
    addr: SocketAddr,
    connections: u64,
    depth: u64,
    load: Load,
    value_bytes: usize,
) -> Run {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(jubilant_client::connect(addr).await.expect("connect"));
    }
    let clients = Arc::new(clients);
    let value = Value::Bytes(vec![0x5a; value_bytes]);
    timed_clients(env, connections * depth, RUN_FOR, move |task, n| {
        let clients = Arc::clone(&clients);
        let value = value.clone();
        async move {
            let client = &clients[(task % connections) as usize];
            let key = format!("key-{}", (task * 7919 + n) % KEYS);
            match load {
                Load::SetSync => {
                    client
                        .set_with(&key, value, Durability::Sync)
                        .await
                        .expect("set");
                }
                Load::SetAsync => {
                    client
                        .set_with(&key, value, Durability::Async)
                        .await
                        .expect("set");
                }
                Load::Get => {
                    client.get(&key).await.expect("get");
                }
            }
        }
    })
    .await
}

/// The same row's load against Redis.
async fn run_redis(
    env: &RealEnv,
    addr: SocketAddr,
    connections: u64,
    depth: u64,
    load: Load,
    value_bytes: usize,
) -> Run {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(Resp::connect(addr).await.expect("connect to redis"));
    }
    let fsync: &[u8] = match load {
        Load::SetAsync => b"everysec",
        _ => b"always",
    };
    clients[0]
        .call(&[b"CONFIG", b"SET", b"appendfsync", fsync])
        .await
        .expect("CONFIG SET appendfsync");
    let clients = Arc::new(clients);
    let value = vec![0x5a; value_bytes];
    timed_clients(env, connections * depth, RUN_FOR, move |task, n| {
        let clients = Arc::clone(&clients);
        let value = value.clone();
        async move {
            let client = &clients[(task % connections) as usize];
            let key = format!("key-{}", (task * 7919 + n) % KEYS);
            match load {
                Load::SetSync | Load::SetAsync => {
                    client
                        .call(&[b"SET", key.as_bytes(), &value])
                        .await
                        .expect("set");
                }
                Load::Get => {
                    client.call(&[b"GET", key.as_bytes()]).await.expect("get");
                }
            }
        }
    })
    .await
}

fn env_addr(name: &str) -> Option<SocketAddr> {
    std::env::var(name).ok().map(|addr| {
        addr.parse()
            .unwrap_or_else(|_| panic!("{name} is host:port"))
    })
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters the rows.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .unwrap_or_default();
    let runtime = jubilant_bench::runtime();
    runtime.block_on(async {
        let env = RealEnv::current();
        let dir = tempfile::tempdir_in(".").expect("temporary directory");
        let config = Config::from_toml("[server]\nport = 0\n[resp]\nlisten = \"off\"")
            .expect("valid")
            .with_overrides(Some(dir.path().to_path_buf()), None)
            .expect("valid");
        let external = env_addr("JUBILANT_BENCH_ADDR");
        let redis = env_addr("JUBILANT_BENCH_REDIS");
        let server = match external {
            Some(_) => None,
            None => Some(runtime::start(env.clone(), config).await.expect("start")),
        };
        let addr = external
            .or(server.as_ref().map(runtime::Running::local_addr))
            .expect("an address");
        // Whose peak RSS to report: the server's process.
        let pid = std::env::var("JUBILANT_BENCH_PID").unwrap_or_else(|_| "self".to_owned());
        print!("| op | value | connections | depth | ops/s | p50 µs | p99 µs | peak RSS MiB |");
        if redis.is_some() {
            print!(" Redis ops/s | Redis p50 µs | Redis p99 µs | ratio |");
        }
        println!();
        println!(
            "|---|---:|---:|---:|---:|---:|---:|---:|{}",
            if redis.is_some() { "---:|---:|---:|---:|" } else { "" }
        );
        for value_bytes in [3, 1024] {
            for load in [Load::SetSync, Load::SetAsync, Load::Get] {
                let op = match load {
                    Load::SetSync => "SET sync",
                    Load::SetAsync => "SET async",
                    Load::Get => "GET",
                };
                for (connections, depth) in [(1, 1), (1, 16), (50, 1), (50, 16)] {
                    let label = format!("{op} {value_bytes} B {connections}x{depth}");
                    if !label.contains(&filter) {
                        continue;
                    }
                    let mut ours =
                        run_jubilant(&env, addr, connections, depth, load, value_bytes).await;
                    print!(
                        "| {op} | {value_bytes} B | {connections} | {depth} | {:.0} | {} | {} | {:.0} |",
                        ours.rate(),
                        ours.percentile(50.0),
                        ours.percentile(99.0),
                        jubilant_bench::proc_status_mib(&pid, "VmHWM:")
                    );
                    if let Some(redis) = redis {
                        let mut theirs =
                            run_redis(&env, redis, connections, depth, load, value_bytes).await;
                        print!(
                            " {:.0} | {} | {} | {:.2} |",
                            theirs.rate(),
                            theirs.percentile(50.0),
                            theirs.percentile(99.0),
                            ours.rate() / theirs.rate()
                        );
                    }
                    println!();
                }
            }
        }
        if let Some(server) = server {
            server.shutdown().await.expect("clean shutdown");
        }
    });
}
