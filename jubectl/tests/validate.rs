//! `jubectl validate DIR` on real database directories: clean, damaged,
//! and in use.

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
