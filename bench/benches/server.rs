//! The load generator against the server on loopback: 1 and 50
//! connections, pipeline depth 1 and 16 (calls in flight per connection),
//! SET (`sync` and `async`) and GET, 3-byte and 1 KiB values; ops/s,
//! p50/p99 latency, and the process's peak RSS (server and load generator
//! share the process: an upper bound for the server's).
//!
//!     cargo bench -p jubilant-bench --bench server
//!
//! Prints a Markdown table; results go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use jubilant_bench::{Run, timed_clients};
use jubilant_core::db::{Durability, Value};
use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;

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
    let runtime = jubilant_bench::runtime();
    runtime.block_on(async {
        let env = RealEnv::current();
        let dir = tempfile::tempdir_in(".").expect("temporary directory");
        let config = Config::from_toml("[server]\nport = 0")
            .expect("valid")
            .with_overrides(Some(dir.path().to_path_buf()), None)
            .expect("valid");
        let server = runtime::start(env.clone(), config).await.expect("start");
        let addr = server.local_addr();
        println!("| op | value | connections | depth | ops/s | p50 µs | p99 µs | peak RSS MiB |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for value_bytes in [3, 1024] {
            for load in [Load::SetSync, Load::SetAsync, Load::Get] {
                for (connections, depth) in [(1, 1), (1, 16), (50, 1), (50, 16)] {
                    let mut result = run(&env, addr, connections, depth, load, value_bytes).await;
                    println!(
                        "| {} | {value_bytes} B | {connections} | {depth} | {:.0} | {} | {} | {:.0} |",
                        match load {
                            Load::SetSync => "SET sync",
                            Load::SetAsync => "SET async",
                            Load::Get => "GET",
                        },
                        result.rate(),
                        result.percentile(50.0),
                        result.percentile(99.0),
                        peak_rss_mib()
                    );
                }
            }
        }
        server.shutdown().await.expect("clean shutdown");
    });
}
