//! `jubectl dump-wal` against WAL directories written by the real log.

mod common;

use std::path::Path;

use jubilant_core::log::{BATCH_HEADER_BYTES, Log, LogConfig, segment_name};
use jubilant_io_real::RealEnv;

/// Writes `count` records into a log with 1024-byte segments in `dir`.
fn write_log(dir: &Path, count: u32) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut config = LogConfig::new(dir);
        // The header's block and one 512-byte block for batches.
        config.block_bytes = 512;
        config.segment_bytes = 1024;
        config.record_bytes_max = 128;
        let (mut log, _) = Log::open(RealEnv::current(), config, |_, _| {})
            .await
            .expect("open");
        for i in 0..count {
            log.append(format!("record number {i:02}, padded to a fixed length").as_bytes())
                .await
                .expect("append");
        }
        log.sync().await.expect("sync");
    });
}

#[test]
fn dump_wal_lists_segments_and_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 12);
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, stdout, stderr) = common::jubectl(&["dump-wal", path]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!(stdout.replace(path, "[DIR]"));
}

#[test]
fn dump_wal_json_is_one_object_for_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 12);
    let (code, stdout, _) =
        common::jubectl(&["dump-wal", dir.path().to_str().expect("utf-8"), "--json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).expect("valid JSON");
    assert_eq!(value["record_count"], 12);
    assert_eq!(value["next_lsn"], 13);
    assert_eq!(value["records"].as_array().map(Vec::len), Some(12));
    assert!(value["corruption"].is_null());
}

#[test]
fn dump_wal_reports_corruption_with_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 12);
    // Damage the first record of the first segment; later segments exist,
    // so this cannot be a torn tail.
    let first = dir.path().join(segment_name(1));
    #[expect(
        clippy::disallowed_methods,
        reason = "the test damages a real file on purpose"
    )]
    let mut bytes = std::fs::read(&first).expect("read segment");
    bytes[(BATCH_HEADER_BYTES + 512) as usize + 10] ^= 0xff;
    #[expect(
        clippy::disallowed_methods,
        reason = "the test damages a real file on purpose"
    )]
    std::fs::write(&first, bytes).expect("write segment");
    let (code, stdout, _) =
        common::jubectl(&["dump-wal", dir.path().to_str().expect("utf-8"), "--summary"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("CORRUPTION"), "{stdout}");
    assert!(stdout.contains("not a torn tail"), "{stdout}");
}

#[test]
fn dump_wal_of_a_missing_directory_is_an_operating_error() {
    let (code, _, stderr) = common::jubectl(&["dump-wal", "/nonexistent/jubilant/wal"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("/nonexistent/jubilant/wal"), "{stderr}");
}

#[test]
fn unknown_commands_are_usage_errors() {
    let (code, _, stderr) = common::jubectl(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}
