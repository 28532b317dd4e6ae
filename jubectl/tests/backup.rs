//! `jubectl backup` of a running server while a writer keeps committing,
//! then `jubectl validate` and `jubectl restore` of the copy, and a server
//! started on the restored directory: every commit answered before the
//! backup began is there. Also: one backup at a time, a pin released after
//! its timeout, and directories that are never overwritten.

// Real processes, sockets and clocks: the determinism rules of the
// library do not apply here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use jubilant_client::{ClientError, ErrorCode};
use jubilant_io_real::RealEnv;
use jubilant_server::runtime;

fn runtime() -> tokio::runtime::Runtime {
    common::runtime()
}

fn start(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    extra_toml: &str,
) -> runtime::Running<RealEnv> {
    common::start_in(runtime, dir, extra_toml)
}

fn value(i: u64) -> String {
    // Every fourth value is over the inline limit: the WAL holds it.
    if i.is_multiple_of(4) {
        format!("{i:06}-").repeat(200)
    } else {
        format!("v{i}")
    }
}

#[test]
fn a_backup_taken_while_writers_run_restores_every_commit_answered_before_it() {
    let root = tempfile::tempdir().expect("temporary directory");
    let runtime = runtime();
    let server = start(&runtime, &root.path().join("data"), "");
    let addr = server.local_addr().to_string();
    let client = runtime
        .block_on(jubilant_client::connect(server.local_addr()))
        .expect("connect");
    runtime.block_on(async {
        for i in 0..2000 {
            client
                .set(format!("key:{i:05}"), value(i))
                .await
                .expect("set");
        }
    });
    // A writer that keeps committing through the backup, counting what
    // was answered.
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, answered, stop) = (client.clone(), Arc::clone(&answered), Arc::clone(&stop));
        runtime.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                client
                    .set(format!("live:{n:06}"), value(n))
                    .await
                    .expect("set");
                n += 1;
                answered.store(n, Ordering::Release);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let answered_before = answered.load(Ordering::Acquire);
    assert!(answered_before > 0, "the writer runs");
    let backup = root.path().join("backup");
    let backup_arg = backup.to_str().expect("UTF-8");
    let (code, stdout, stderr) = common::jubectl_at(Some(&addr), &["--json", "backup", backup_arg]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(summary["keys"].as_u64().expect("keys") >= 2000 + answered_before);
    assert!(backup.join("MANIFEST").exists());
    assert!(
        !root.path().join("backup.tmp").exists(),
        "renamed when whole"
    );
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    runtime.block_on(writer).expect("writer");
    let answered_after = answered.load(Ordering::Acquire);
    assert!(
        answered_after > answered_before,
        "writes ran during the backup"
    );

    let info = runtime.block_on(client.info()).expect("info");
    assert!(info.contains("# Backup\nrunning:0\n"), "{info}");
    assert!(info.contains("\nstarted:1\nended:1\nexpired:0\n"), "{info}");

    // The copy is a database on its own.
    let (code, _, stderr) = common::jubectl(&["validate", backup_arg]);
    assert_eq!(code, 0, "{stderr}");
    // Neither the backup nor a restore overwrites anything.
    let (code, _, stderr) = common::jubectl_at(Some(&addr), &["backup", backup_arg]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    let data = root.path().join("data");
    let (code, _, stderr) =
        common::jubectl(&["restore", backup_arg, data.to_str().expect("UTF-8")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("already holds"), "{stderr}");
    runtime.block_on(server.shutdown()).expect("clean shutdown");

    let restored = root.path().join("restored");
    let restored_arg = restored.to_str().expect("UTF-8");
    let (code, stdout, stderr) = common::jubectl(&["restore", backup_arg, restored_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("restored "), "{stdout}");

    // A server on the restored directory has every commit answered before
    // the backup began, and nothing never written.
    let server = start(&runtime, &restored, "");
    let client = runtime
        .block_on(jubilant_client::connect(server.local_addr()))
        .expect("connect");
    runtime.block_on(async {
        for i in 0..2000 {
            let (found, _) = client
                .get(format!("key:{i:05}"))
                .await
                .expect("get")
                .expect("present");
            assert_eq!(found, value(i).into());
        }
        for n in 0..answered_after {
            let found = client.get(format!("live:{n:06}")).await.expect("get");
            match found {
                Some((found, _)) => assert_eq!(found, value(n).into()),
                None => assert!(
                    n >= answered_before,
                    "live:{n:06} answered before the backup"
                ),
            }
        }
    });
    runtime.block_on(server.shutdown()).expect("clean shutdown");
}

#[test]
fn one_backup_runs_at_a_time_and_an_idle_one_is_ended_by_the_server() {
    let root = tempfile::tempdir().expect("temporary directory");
    let runtime = runtime();
    let server = start(
        &runtime,
        &root.path().join("data"),
        "[storage]\nbackup_pin_timeout_ms = 300\n",
    );
    let addr = server.local_addr().to_string();
    let client = runtime
        .block_on(jubilant_client::connect(server.local_addr()))
        .expect("connect");
    runtime.block_on(async {
        client.set("a", "1").await.expect("set");
        let begun = client.backup_begin().await.expect("begin");
        assert!(begun.info.files.iter().any(|file| file.name == "MANIFEST"));
        let refused = client.backup_begin().await;
        assert!(
            matches!(
                refused,
                Err(ClientError::Server {
                    code: ErrorCode::BackupInProgress,
                    ..
                })
            ),
            "{refused:?}"
        );
        let chunk = client
            .backup_read(begun.backup, 0, 0, 16)
            .await
            .expect("read");
        assert_eq!(&chunk[..8], b"JUBMANIF");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let expired = client.backup_read(begun.backup, 0, 0, 16).await;
        assert!(
            matches!(
                expired,
                Err(ClientError::Server {
                    code: ErrorCode::NoSuchBackup,
                    ..
                })
            ),
            "{expired:?}"
        );
        let info = client.info().await.expect("info");
        assert!(info.contains("\nexpired:1\n"), "{info}");
        assert!(
            info.contains("# Backup\nrunning:0\npinned_generation:0\npinned_pages:0\n"),
            "{info}"
        );
    });
    // With the pin gone, the next backup runs.
    let backup = root.path().join("backup");
    let (code, _, stderr) =
        common::jubectl_at(Some(&addr), &["backup", backup.to_str().expect("UTF-8")]);
    assert_eq!(code, 0, "{stderr}");
    runtime.block_on(server.shutdown()).expect("clean shutdown");
}
