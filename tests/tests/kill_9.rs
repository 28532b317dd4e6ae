//! `kill -9` during load, then restart: every acknowledged record is there.
//!
//! The writer runs in a child process: this very test binary, re-executed to
//! run the ignored test `child_writer` with `JUBILANT_CHILD_WAL` set. It
//! appends records whose payload names their LSN, syncs every few records,
//! and prints `ACK <lsn>` after each sync returns. The parent waits for
//! some acknowledgements, sends SIGKILL, reopens the log, and checks that
//! every acknowledged LSN came back with the payload written for it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use jubilant_core::log::{Log, LogConfig};
use jubilant_io_real::RealEnv;

const CHILD_ENV: &str = "JUBILANT_CHILD_WAL";
const ROUNDS: usize = 4;
const ACKS_BEFORE_KILL: u64 = 40;

fn config(dir: &Path) -> LogConfig {
    let mut config = LogConfig::new(dir);
    // Small segments: rollovers happen during the test, so a kill can land
    // in the middle of one.
    config.segment_bytes = 16 * 1024;
    config.record_bytes_max = 256;
    config
}

fn payload(lsn: u64) -> Vec<u8> {
    format!("record for LSN {lsn} {}", "x".repeat((lsn % 97) as usize)).into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The writer. Does nothing unless started by the parent test.
#[test]
#[ignore = "run only as the child process of kill_9_during_sync_writes_loses_nothing_acknowledged"]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    runtime().block_on(async {
        let (mut log, _) = Log::open(RealEnv::current(), config(&dir), |_, _| {})
            .await
            .expect("child open");
        // Sync after batches of 1 to 7 records, varying with the LSN.
        let mut since_sync = 0;
        let mut batch = 1;
        loop {
            let lsn = log.next_lsn();
            let pos = log.append(&payload(lsn)).await.expect("append");
            assert_eq!(pos.lsn, lsn);
            since_sync += 1;
            if since_sync >= batch {
                batch = 1 + lsn % 7;
                let durable = log.sync().await.expect("sync");
                // Straight to the file descriptor: the test harness captures
                // `println!`, and the parent must see each ACK as it happens.
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {durable}").expect("report ACK");
                out.flush().expect("flush ACK");
                since_sync = 0;
            }
        }
    });
}

/// Recovers the log and checks it against the highest acknowledged LSN.
/// Returns how many records it holds.
fn recover_and_check(dir: &Path, acked: u64) -> u64 {
    runtime().block_on(async {
        let mut records = Vec::new();
        let (_log, report) = Log::open(RealEnv::current(), config(dir), |pos, p| {
            records.push((pos.lsn, p.to_vec()))
        })
        .await
        .expect("recovery must always open after a kill");
        for (index, (lsn, bytes)) in records.iter().enumerate() {
            assert_eq!(*lsn, index as u64 + 1, "LSNs are gap-free from 1");
            assert_eq!(
                bytes,
                &payload(*lsn),
                "LSN {lsn} holds what was written for it"
            );
        }
        let last = records.last().map_or(0, |(lsn, _)| *lsn);
        assert!(
            last >= acked,
            "acknowledged LSN {acked} lost: recovery ends at {last} ({report:?})"
        );
        last
    })
}

#[test]
fn kill_9_during_sync_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut acked = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut acks_this_round = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read writer output");
            if let Some(lsn) = line.strip_prefix("ACK ") {
                acked = lsn.trim().parse().expect("ACK carries an LSN");
                acks_this_round += 1;
                if acks_this_round == ACKS_BEFORE_KILL + round as u64 * 13 {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        assert!(
            !status.success(),
            "the writer must have been killed, not finished"
        );
        let recovered = recover_and_check(dir.path(), acked);
        assert!(recovered >= acked);
    }
    assert!(
        acked > ROUNDS as u64 * ACKS_BEFORE_KILL,
        "the writer made progress across restarts"
    );
}
