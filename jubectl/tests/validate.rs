//! `jubectl validate DIR` on real database directories: clean, damaged
//! (pages and value-log records), and in use.

mod common;

use std::path::Path;

use jubilant_core::db::{Db, DbOptions};
use jubilant_io_real::RealEnv;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A database of a few thousand keys, closed (so checkpointed).
fn populate(dir: &Path) {
    runtime().block_on(async {
        let db = Db::open(RealEnv::current(), dir, DbOptions::default())
            .await
            .expect("open");
        for i in 0..3000 {
            db.set_with(
                &format!("key-{i:05}"),
                i as i64,
                jubilant_core::db::Durability::Async,
            )
            .await
            .expect("set");
        }
        db.close().await.expect("close");
    });
}

#[test]
fn a_clean_database_validates_and_damage_is_a_finding() {
    let dir = tempfile::tempdir().expect("temporary directory");
    populate(dir.path());
    let path = dir.path().to_str().expect("UTF-8 path");
    let (code, stdout, stderr) = common::jubectl(&["validate", path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("3000 keys") && stdout.ends_with("ok\n"),
        "{stdout}"
    );
    let (code, stdout, _) = common::jubectl(&["--json", "validate", path]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["ok"], true);
    assert_eq!(report["keys"], 3000);

    // Flip bytes in the middle of every tree page after the first.
    let pages = dir.path().join("data.pages");
    // A test damaging a file on purpose: outside the engine's rules.
    #[allow(clippy::disallowed_methods)]
    let mut bytes = std::fs::read(&pages).expect("read");
    for page in 1..bytes.len() / 4096 {
        bytes[page * 4096 + 2048] ^= 0xff;
    }
    #[allow(clippy::disallowed_methods)]
    std::fs::write(&pages, &bytes).expect("write");
    let (code, stdout, stderr) = common::jubectl(&["validate", path]);
    assert_eq!(code, 1, "{stdout}{stderr}");
}

#[test]
fn a_database_in_use_is_an_operating_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    populate(dir.path());
    let runtime = runtime();
    let db = runtime
        .block_on(async { Db::open(RealEnv::current(), dir.path(), DbOptions::default()).await })
        .expect("open");
    let (code, _, stderr) = common::jubectl(&["validate", dir.path().to_str().expect("UTF-8")]);
    assert_eq!(code, 3, "{stderr}");
    drop(db);
}

/// A closed database with `count` values too large for a leaf, each in the
/// value log, and one small one.
fn populate_large(dir: &Path, count: usize) {
    runtime().block_on(async {
        let db = Db::open(RealEnv::current(), dir, DbOptions::default())
            .await
            .expect("open");
        for i in 0..count {
            let value = format!("{i:03}-").repeat(500);
            db.set_with(
                &format!("large-{i:03}"),
                value,
                jubilant_core::db::Durability::Async,
            )
            .await
            .expect("set");
        }
        db.set("small", "s").await.expect("set");
        db.close().await.expect("close");
    });
}

#[test]
fn value_log_pointers_are_followed_and_a_damaged_record_is_a_finding() {
    let dir = tempfile::tempdir().expect("temporary directory");
    populate_large(dir.path(), 5);
    let path = dir.path().to_str().expect("UTF-8 path");
    let mut transcript = String::new();
    let mut run = |args: &[&str]| {
        let (code, stdout, stderr) = common::jubectl(args);
        transcript.push_str(&format!(
            "$ jubectl {}\nexit {code}\n{stdout}{stderr}",
            args.join(" ")
        ));
        (code, stdout)
    };
    let (code, stdout) = run(&["validate", path]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout) = run(&["--json", "validate", path]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["vlog_pointers"], 5);

    // One flipped byte in the third value (each commit's batch starts at a
    // 4 KiB block of WAL segment 1, after the header's block).
    let segment = dir.path().join(jubilant_core::log::segment_name(1));
    #[expect(clippy::disallowed_methods, reason = "the test damages a real file")]
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[3 * 4096 + 1000] ^= 0x01;
    #[expect(clippy::disallowed_methods, reason = "the test damages a real file")]
    std::fs::write(&segment, &bytes).expect("write");
    let (code, stdout) = run(&["validate", path]);
    assert_eq!(code, 1, "{stdout}");
    let (code, stdout) = run(&["--json", "validate", path]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["findings_count"], 1);
    assert_eq!(report["findings"][0]["kind"], "VlogPointer");
    insta::assert_snapshot!(transcript.replace(path, "[DIR]"));
    // Read-only: the damaged segment is as it was.
    #[expect(clippy::disallowed_methods, reason = "the test inspects a real file")]
    let after = std::fs::read(&segment).expect("read");
    assert!(after == bytes, "validate changed the segment");
}
