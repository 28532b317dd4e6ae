//! `kill -9` of the real server binary while many clients make `sync`
//! writes, then a restart: every acknowledged write is there, and the
//! directory a killed server left passes the offline check `jubectl
//! validate` runs (`validate_dir`: every page, every value-log pointer).

// This test drives real processes, sockets and threads.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};

use jubilant_core::db::{Durability, Value};
use jubilant_core::store::validate_dir;
use jubilant_io_real::RealEnv;

const CLIENTS: usize = 16;
const ACKS_BEFORE_KILL: usize = 300;
const ROUNDS: usize = 2;

fn start(data: &str) -> (Child, SocketAddr) {
    common::start_server(std::path::Path::new(data), &[])
        .unwrap_or_else(|(code, log)| panic!("the server exited ({code}) before listening:\n{log}"))
}

#[test]
fn every_acknowledged_sync_write_survives_kill_9() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let data = data.to_str().expect("UTF-8 path").to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    for round in 0..ROUNDS {
        let (mut server, addr) = start(&data);
        let writers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let acked = Arc::clone(&acked);
                runtime.spawn(async move {
                    let Ok(connection) = jubilant_client::connect(addr).await else {
                        return;
                    };
                    for n in 0i64.. {
                        let key = format!("r{round}-c{client}-{n}");
                        match connection.set_with(&key, n, Durability::Sync).await {
                            Ok(_) => acked
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((key, n)),
                            // The server was killed: the outcome is unknown.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        let target = (round + 1) * ACKS_BEFORE_KILL;
        while acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
            < target
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        server.kill().expect("SIGKILL");
        server.wait().expect("reap");
        for writer in writers {
            runtime.block_on(writer).expect("writer task");
        }
        let report = runtime
            .block_on(validate_dir(
                &RealEnv::new(runtime.handle().clone()),
                std::path::Path::new(&data),
                |_, _| {},
            ))
            .expect("validate the killed server's directory");
        assert_eq!(report.findings_count, 0, "{:?}", report.findings);
    }
    let (mut server, addr) = start(&data);
    let acked = acked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(acked.len() >= ROUNDS * ACKS_BEFORE_KILL);
    runtime.block_on(async {
        let client = jubilant_client::connect(addr).await.expect("connect");
        for (key, n) in &acked {
            let found = client.get(key).await.expect("get").map(|(value, _)| value);
            assert_eq!(found, Some(Value::Int(*n)), "acknowledged {key} lost");
        }
    });
    server.kill().expect("stop");
    server.wait().expect("reap");
}
