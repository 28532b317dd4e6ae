//! jubectl's offline commands that create, describe and repair a database
//! directory (`init`, `dump-manifest`, `repair`) on real directories: each
//! command's human output and `--json` (snapshots, with run-to-run values
//! redacted) and the documented exit codes.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use jubilant_core::db::{Db, DbOptions, Durability, Value};
use jubilant_core::log::{FRAME_HEADER_BYTES, scan_from, segment_name};
use jubilant_io_real::RealEnv;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Lines whose values differ from run to run, by what they start with
/// after their indentation, and what replaces the value.
const VOLATILE: [(&str, &str); 6] = [
    ("database uuid: ", "[UUID]"),
    ("created: ", "[TIME]"),
    ("TTL calibration: ", "[CALIBRATION]"),
    // Change whenever a schema does, which is not what these tests test.
    ("wire schema hash: ", "[HASH]"),
    ("wal schema hash: ", "[HASH]"),
    ("disk schema hash: ", "[HASH]"),
];

/// `text` with `dir` as `[DIR]` and volatile values replaced.
fn redact(text: &str, dir: &Path) -> String {
    let mut out = String::new();
    for line in text.replace(utf8(dir), "[DIR]").lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let volatile = VOLATILE.iter().find(|(label, _)| body.starts_with(label));
        match volatile {
            Some((label, placeholder)) => {
                let _ = writeln!(out, "{indent}{label}{placeholder}");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// Pretty JSON with `dir` as `[DIR]` and volatile fields replaced.
fn redact_json(stdout: &str, dir: &Path) -> String {
    let mut value: serde_json::Value = serde_json::from_str(stdout).expect("one JSON object");
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    let volatile = key.ends_with("_schema_hash")
                        || key == "database_uuid"
                        || key.starts_with("created_at")
                        || key.starts_with("calibration_");
                    if volatile {
                        *field = serde_json::Value::from("[REDACTED]");
                    } else {
                        walk(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    serde_json::to_string_pretty(&value)
        .expect("printable")
        .replace(utf8(dir), "[DIR]")
}

/// Runs jubectl with `args` and appends the command, its exit code and its
/// output (redacted; JSON pretty-printed) to `transcript`; returns the exit
/// code and the raw stdout.
fn run(transcript: &mut String, dir: &Path, args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = common::jubectl(args);
    let shown = if args.contains(&"--json") && !stdout.is_empty() {
        redact_json(&stdout, dir) + "\n"
    } else {
        redact(&stdout, dir)
    };
    let _ = write!(
        transcript,
        "$ jubectl {}\nexit {code}\n{shown}",
        args.join(" ").replace(utf8(dir), "[DIR]")
    );
    if !stderr.is_empty() {
        let _ = write!(transcript, "stderr: {}", redact(&stderr, dir));
    }
    (code, stdout)
}

#[expect(clippy::disallowed_methods, reason = "the test inspects real files")]
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read")
}

#[expect(clippy::disallowed_methods, reason = "the test damages real files")]
fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write");
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test sets up real directories"
)]
fn mkdir(path: &Path) {
    std::fs::create_dir(path).expect("mkdir");
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test inspects real directories"
)]
fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).expect("list").next().is_none()
}

/// Flips every bit of the byte at `offset` of `path`.
fn flip(path: &Path, offset: usize) {
    let mut bytes = read(path);
    bytes[offset] ^= 0xff;
    write(path, &bytes);
}

/// Sets `keys` (`key-00` ...) to their index, each a `sync` commit.
async fn set_keys(db: &Db<RealEnv>, keys: std::ops::Range<i64>) {
    for i in keys {
        db.set_with(&format!("key-{i:02}"), i, Durability::Sync)
            .await
            .expect("set");
    }
}

#[test]
fn init_creates_an_empty_database_and_never_touches_an_existing_one() {
    let root = tempfile::tempdir().expect("temporary directory");
    let db = root.path().join("db");
    let db_path = utf8(&db);
    let mut transcript = String::new();
    let (code, _) = run(&mut transcript, root.path(), &["init", db_path]);
    assert_eq!(code, 0, "{transcript}");
    let manifest = read(&db.join("MANIFEST"));
    let superblock = read(&db.join("SUPERBLOCK_A"));

    // Again: refused, and nothing changed.
    let (code, _) = run(&mut transcript, root.path(), &["init", db_path]);
    assert_eq!(code, 3);
    assert_eq!(read(&db.join("MANIFEST")), manifest);
    assert_eq!(read(&db.join("SUPERBLOCK_A")), superblock);

    // A directory holding something else is not taken over either.
    let other = root.path().join("other");
    mkdir(&other);
    write(&other.join("notes.txt"), b"mine");
    let (code, _) = run(&mut transcript, root.path(), &["init", utf8(&other)]);
    assert_eq!(code, 3);
    assert_eq!(read(&other.join("notes.txt")), b"mine");

    // Options the engine refuses are bad usage, and create nothing.
    let bad = root.path().join("bad");
    let (code, _) = run(
        &mut transcript,
        root.path(),
        &["init", utf8(&bad), "--page-bytes", "1000"],
    );
    assert_eq!(code, 2);
    assert!(!bad.exists());

    let small = root.path().join("small");
    let args = [
        "--json",
        "init",
        utf8(&small),
        "--page-bytes",
        "8192",
        "--inline-value-bytes-max",
        "100",
    ];
    let (code, stdout) = run(&mut transcript, root.path(), &args);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["page_bytes"], 8192);
    assert_eq!(report["database_uuid"].as_str().map(str::len), Some(36));
    insta::assert_snapshot!(transcript);

    // What init made is a database that opens, empty, and validates.
    let (code, stdout, _) = common::jubectl(&["validate", utf8(&small)]);
    assert_eq!(code, 0, "{stdout}");
    runtime().block_on(async {
        let db = Db::open(RealEnv::current(), &small, DbOptions::default())
            .await
            .expect("open");
        assert_eq!(db.stats().store.keys, 0);
        assert!(!db.stats().recovery.created);
        db.close().await.expect("close");
    });
}

#[test]
fn dump_manifest_prints_every_field_and_exits_1_when_open_would_refuse() {
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = root.path().join("db");
    let path = utf8(&dir);
    runtime().block_on(async {
        let db = Db::open(RealEnv::current(), &dir, DbOptions::default())
            .await
            .expect("open");
        set_keys(&db, 0..20).await;
        db.close().await.expect("close");
    });
    let mut transcript = String::new();
    let (code, _) = run(&mut transcript, root.path(), &["dump-manifest", path]);
    assert_eq!(code, 0, "{transcript}");
    let (code, stdout) = run(
        &mut transcript,
        root.path(),
        &["--json", "dump-manifest", path],
    );
    assert_eq!(code, 0);
    insta::assert_snapshot!(transcript);
    let dump: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let hash = dump["manifest"]["wire_schema_hash"].as_str().expect("hex");
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    // The close checkpointed twice (its own, then the one that lets the
    // WAL restart empty, design 2.5): generation 3, in SUPERBLOCK_A.
    assert_eq!(dump["active"], "SUPERBLOCK_A");

    // The active superblock torn: the other one is active, still exit 0.
    let mut damage = String::new();
    flip(&dir.join("SUPERBLOCK_A"), 20);
    let (code, stdout) = run(&mut damage, root.path(), &["dump-manifest", path]);
    assert_eq!(code, 0, "{damage}");
    assert!(stdout.contains("SUPERBLOCK_A: INVALID: CRC mismatch\n"));
    assert!(stdout.ends_with("active superblock: SUPERBLOCK_B (generation 2)\n"));
    // Both: exit 1.
    flip(&dir.join("SUPERBLOCK_B"), 20);
    let (code, stdout) = run(&mut damage, root.path(), &["dump-manifest", path]);
    assert_eq!(code, 1, "{damage}");
    assert!(stdout.ends_with("active superblock: NONE (neither is valid)\n"));
    let (code, stdout) = run(&mut damage, root.path(), &["--json", "dump-manifest", path]);
    assert_eq!(code, 1);
    let dump: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(dump["ok"], false);
    assert!(dump["active"].is_null());
    // A MANIFEST that does not verify: exit 1.
    flip(&dir.join("MANIFEST"), 40);
    let (code, stdout) = run(&mut damage, root.path(), &["dump-manifest", path]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("MANIFEST: INVALID: CRC mismatch\n"),
        "{stdout}"
    );
    // No database, no directory: exit 3.
    let empty = root.path().join("empty");
    mkdir(&empty);
    let (code, _) = run(&mut damage, root.path(), &["dump-manifest", utf8(&empty)]);
    assert_eq!(code, 3);
    let missing = root.path().join("missing");
    let (code, _) = run(&mut damage, root.path(), &["dump-manifest", utf8(&missing)]);
    assert_eq!(code, 3);
    assert!(!missing.exists(), "read-only");
    insta::assert_snapshot!(damage);
}

/// A database as a crash leaves it, with one of everything open repairs:
/// a torn last WAL record (its transaction then has no commit), leftover
/// temporary files, a torn older superblock, and a WAL segment kept for a
/// value nothing references any more.
fn crashed_database(dir: &Path) {
    runtime().block_on(async {
        let options = DbOptions {
            // One commit per segment (a header block and one batch block).
            wal_segment_bytes: 8192,
            value_bytes_max: 2048,
            vlog_gc_interval_ms: 0,
            sweep_interval_ms: 0,
            ..DbOptions::default()
        };
        let db = Db::open(RealEnv::current(), dir, options)
            .await
            .expect("open");
        // One large value per WAL segment.
        for (key, fill) in [("big-a", "a"), ("big-b", "b")] {
            db.set_with(key, fill.repeat(2000), Durability::Sync)
                .await
                .expect("set");
        }
        set_keys(&db, 0..10).await;
        db.checkpoint().await.expect("checkpoint");
        // Segment 1, kept for big-a's value, is now referenced by nothing
        // (but the durable checkpoint's tree still points there).
        db.set_with("big-a", "small now", Durability::Sync)
            .await
            .expect("set");
        set_keys(&db, 10..15).await;
        // Dropped, not closed: no checkpoint, as in a crash.
        drop(db);
    });
    let mut last = None;
    runtime().block_on(async {
        // The newest segment holds the last record (older ones are kept
        // for their values, with gaps between them).
        scan_from(&RealEnv::current(), dir, u64::MAX, |pos, payload| {
            last = Some((pos, payload.len()));
        })
        .await
        .expect("scan")
    });
    let (pos, len) = last.expect("records");
    let at = pos.offset + FRAME_HEADER_BYTES + len as u64 - 1;
    flip(&dir.join(segment_name(pos.segment)), at as usize);
    // Generation 2 (the checkpoint) is in B; A holds generation 1.
    flip(&dir.join("SUPERBLOCK_A"), 20);
    write(&dir.join("SUPERBLOCK_A.tmp"), b"half a superblock");
    write(&dir.join("wal-000099.log.tmp"), b"half a segment");
}

#[test]
fn repair_reports_each_action_and_then_finds_nothing_to_repair() {
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = root.path().join("db");
    let path = utf8(&dir);
    crashed_database(&dir);
    let mut transcript = String::new();
    let (code, _) = run(&mut transcript, root.path(), &["repair", path]);
    assert_eq!(code, 0, "{transcript}");
    let (code, stdout) = run(&mut transcript, root.path(), &["--json", "repair", path]);
    assert_eq!(code, 0, "{transcript}");
    let again: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(again["actions_count"], 0, "{transcript}");
    let (code, stdout) = run(&mut transcript, root.path(), &["repair", path]);
    assert_eq!(code, 0);
    assert!(stdout.ends_with("nothing to repair\n"), "{stdout}");
    insta::assert_snapshot!(transcript);

    let (code, stdout, _) = common::jubectl(&["validate", path]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!dir.join("SUPERBLOCK_A.tmp").exists());
    assert!(!dir.join(segment_name(1)).exists());
    // Everything committed is there but the transaction whose commit
    // record was torn.
    runtime().block_on(async {
        let db = Db::open(RealEnv::current(), &dir, DbOptions::default())
            .await
            .expect("open");
        assert_eq!(db.stats().recovery.txns_replayed, 0, "repair checkpointed");
        assert_eq!(db.get("key-13").await.expect("get"), Some(Value::Int(13)));
        assert_eq!(db.get("key-14").await.expect("get"), None);
        assert_eq!(
            db.get("big-b").await.expect("get"),
            Some(Value::from("b".repeat(2000)))
        );
        assert_eq!(
            db.get("big-a").await.expect("get"),
            Some(Value::from("small now"))
        );
        db.close().await.expect("close");
    });
}

#[test]
fn repair_refuses_what_it_cannot_repair_and_never_creates_a_database() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut transcript = String::new();
    let missing = root.path().join("missing");
    let (code, _) = run(&mut transcript, root.path(), &["repair", utf8(&missing)]);
    assert_eq!(code, 3);
    assert!(!missing.exists());
    let empty = root.path().join("empty");
    mkdir(&empty);
    let (code, _) = run(&mut transcript, root.path(), &["repair", utf8(&empty)]);
    assert_eq!(code, 3);
    assert!(is_empty_dir(&empty));

    let dir = root.path().join("db");
    let runtime = runtime();
    let db = runtime
        .block_on(async { Db::open(RealEnv::current(), &dir, DbOptions::default()).await })
        .expect("open");
    // In use by another process (here, this test): refused.
    let (code, _) = run(&mut transcript, root.path(), &["repair", utf8(&dir)]);
    assert_eq!(code, 3);
    runtime.block_on(db.close()).expect("close");
    // Damage open refuses: a finding, exit 1.
    flip(&dir.join("MANIFEST"), 40);
    let (code, _) = run(&mut transcript, root.path(), &["repair", utf8(&dir)]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(transcript);
}

#[test]
fn damage_in_acknowledged_wal_records_is_refused_until_the_loss_is_accepted() {
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = root.path().join("db");
    let path = utf8(&dir);
    let last_revision = runtime().block_on(async {
        let db = Db::open(RealEnv::current(), &dir, DbOptions::default())
            .await
            .expect("create");
        set_keys(&db, 0..19).await;
        let last = db
            .set_with("key-19", 19, Durability::Sync)
            .await
            .expect("set");
        // Dropped, not closed: no checkpoint, as in a crash.
        drop(db);
        last
    });
    // A byte inside the records of the sixth commit's batch (each sync
    // commit is one batch, on its own 4 KiB block); the fourteen synced
    // after it prove it was durable.
    let wal = dir.join(segment_name(1));
    flip(&wal, 6 * 4096 + 40);
    let before = read(&wal);
    let mut transcript = String::new();
    let (code, _) = run(&mut transcript, root.path(), &["repair", path]);
    assert_eq!(code, 1, "{transcript}");
    assert_eq!(read(&wal), before, "a refused repair changes nothing");
    let (code, stdout) = run(
        &mut transcript,
        root.path(),
        &["repair", "--accept-data-loss", path],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(stdout.contains("gave up every commit from LSN"), "{stdout}");
    insta::assert_snapshot!(transcript);
    runtime().block_on(async {
        let db = Db::open(RealEnv::current(), &dir, DbOptions::default())
            .await
            .expect("a plain open works after the cut");
        // Every commit before the damaged one is there; none after it.
        assert_eq!(db.get("key-04").await.expect("get"), Some(Value::Int(4)));
        assert_eq!(db.get("key-05").await.expect("get"), None);
        assert_eq!(db.get("key-19").await.expect("get"), None);
        // A revision handed out now is past every one the cut gave up.
        let revision = db
            .set_with("after", 1, Durability::Sync)
            .await
            .expect("writes go on");
        assert!(revision > last_revision, "{revision} <= {last_revision}");
        // The loss stays on record for the database's life.
        let history = db.stats().recovery.loss_history;
        assert_eq!(history.cuts, 1);
        assert!(history.durable_lsns_lost > 0, "{history:?}");
        db.close().await.expect("close");
    });
    let (code, stdout) = run(&mut transcript, root.path(), &["validate", path]);
    assert_eq!(code, 0, "a recorded loss is no inconsistency: {stdout}");
    assert!(stdout.contains("accepted data loss: 1 cut(s)"), "{stdout}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_itself() {
    let (code, script, stderr) = common::jubectl(&["completions", "bash"]);
    assert_eq!(code, 0, "{stderr}");
    // Every subcommand completes, and the script is valid bash.
    for command in ["txn", "dump-wal", "validate", "completions"] {
        assert!(script.contains(command), "{command} missing");
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("jubectl.bash");
    #[allow(clippy::disallowed_methods, reason = "a test's own scratch file")]
    std::fs::write(&file, &script).expect("write");
    #[allow(clippy::disallowed_methods, reason = "bash checks the script")]
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .expect("run bash");
    assert!(checked.success(), "bash -n refused the completion script");
    for shell in ["zsh", "fish"] {
        let (code, script, _) = common::jubectl(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(script.contains("jubectl"), "{shell}");
    }
    let (code, _, _) = common::jubectl(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is bad usage");
    let (code, page, _) = common::jubectl(&["man"]);
    assert_eq!(code, 0);
    assert!(page.contains(".TH jubectl 1"), "{page}");
    assert!(page.contains("Administer Jubilant DB"), "{page}");
}
