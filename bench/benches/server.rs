//! The load generator against the server on loopback: 1 and 50
//! connections, pipeline depth 1 and 16 (calls in flight per connection),
//! SET (`sync` and `async`) and GET, 3-byte and 1 KiB values; ops/s,
//! p50/p99 latency, and the process's peak RSS (server and load generator
//! share the process: an upper bound for the server's).
//!
//!     cargo bench -p jubilant-bench --bench server
//!     cargo bench -p jubilant-bench --bench server -- "SET sync 3 B 50x16"   # matching rows
//!
//! Prints a Markdown table; results go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

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

/// Peak resident set size of this process, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    // A benchmark reading /proc about itself: outside the engine's rules.
    #[allow(clippy::disallowed_methods)]
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn run(
    env: &RealEnv,
    addr: std::net::SocketAddr,
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
        let config = Config::from_toml("[server]\nport = 0")
            .expect("valid")
            .with_overrides(Some(dir.path().to_path_buf()), None)
            .expect("valid");
        // JUBILANT_BENCH_ADDR: load a server running elsewhere (its own
        // process, e.g. the release binary) instead of one in this process.
        let external: Option<std::net::SocketAddr> = std::env::var("JUBILANT_BENCH_ADDR")
            .ok()
            .map(|addr| addr.parse().expect("JUBILANT_BENCH_ADDR is host:port"));
        let server = match external {
            Some(_) => None,
            None => Some(runtime::start(env.clone(), config).await.expect("start")),
        };
        let addr = external.or(server.as_ref().map(runtime::Running::local_addr)).expect("an address");
        println!("| op | value | connections | depth | ops/s | p50 µs | p99 µs | peak RSS MiB |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
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
                    let mut result = run(&env, addr, connections, depth, load, value_bytes).await;
                    println!(
                        "| {op} | {value_bytes} B | {connections} | {depth} | {:.0} | {} | {} | {:.0} |",
                        result.rate(),
                        result.percentile(50.0),
                        result.percentile(99.0),
                        peak_rss_mib()
                    );
                }
            }
        }
        if let Some(server) = server {
            server.shutdown().await.expect("clean shutdown");
        }
    });
}
