//! One flipped byte in acknowledged data, with the real server binary:
//! after `kill -9` and the flip, the restart either refuses, naming the
//! file and offset, with every file byte-identical, or opens with every
//! acknowledged write readable. It never opens short.

// This test drives real processes, sockets and files.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;

use jubilant_core::db::{Durability, Value};

/// Starts the server and waits until it listens, or until it exits: then
/// returns its exit status and everything it logged.
fn start(data: &Path) -> Result<(Child, SocketAddr), (i32, String)> {
    common::start_server(data, &[])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every file in `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).expect("read"))
        })
        .collect()
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

/// Writes `values` with `sync` durability, one commit each, then kills the
/// server with SIGKILL. Returns what was acknowledged.
fn write_then_kill(
    data: &Path,
    values: impl Iterator<Item = (String, Value)>,
) -> Vec<(String, Value)> {
    let (mut server, addr) = start(data).expect("the first start");
    let acked = runtime().block_on(async {
        let client = jubilant_client::connect(addr).await.expect("connect");
        let mut acked = Vec::new();
        for (key, value) in values {
            client
                .set_with(&key, value.clone(), Durability::Sync)
                .await
                .expect("an acknowledged sync SET");
            acked.push((key, value));
        }
        acked
    });
    server.kill().expect("SIGKILL");
    server.wait().expect("reap");
    acked
}

/// Restarts after the damage and checks the verdict: a refusal naming
/// `file` that changed no byte, or every acknowledged write readable.
/// Returns whether it refused.
fn restart_and_check(data: &Path, file: &str, acked: &[(String, Value)]) -> bool {
    let before = files(data);
    match start(data) {
        Err((code, logged)) => {
            assert_ne!(code, 0, "{logged}");
            assert!(logged.contains(file), "the refusal names {file}: {logged}");
            assert!(logged.contains("offset"), "and the offset: {logged}");
            assert!(
                files(data) == before,
                "a refused open changed the files: {logged}"
            );
            // A second start refuses the same way: nothing was repaired.
            let (_, again) = start(data).expect_err("refuses again");
            assert!(again.contains(file), "{again}");
            true
        }
        Ok((mut server, addr)) => {
            runtime().block_on(async {
                let client = jubilant_client::connect(addr).await.expect("connect");
                for (key, value) in acked {
                    let found = client.get(key).await.expect("get").map(|(v, _)| v);
                    assert_eq!(found.as_ref(), Some(value), "acknowledged {key} lost");
                }
            });
            server.kill().expect("stop");
            server.wait().expect("reap");
            false
        }
    }
}

#[test]
fn a_flipped_byte_in_acknowledged_wal_records_is_refused_not_cut() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let acked = write_then_kill(
        &data,
        (0..200).map(|i| (format!("k{i}"), Value::String(format!("v{i}")))),
    );
    // 100 bytes into the records: the first batch starts at the first
    // 4 KiB block after the segment header's.
    flip(&data.join("wal-000001.log"), 4096 + 100);
    let refused = restart_and_check(&data, "wal-000001.log", &acked);
    assert!(
        refused,
        "199 later synced batches prove the damaged record was durable"
    );
}

#[test]
fn a_flipped_byte_in_an_acknowledged_large_value_is_refused_not_cut() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let acked = write_then_kill(
        &data,
        (0..50).map(|i| (format!("big{i}"), Value::Bytes(vec![i as u8; 2048]))),
    );
    // Inside the first value: values over the inline limit stay in their
    // WAL records, which recovery replays.
    flip(&data.join("wal-000001.log"), 4096 + 200);
    let refused = restart_and_check(&data, "wal-000001.log", &acked);
    assert!(
        refused,
        "49 later synced batches prove the damaged record was durable"
    );
}
