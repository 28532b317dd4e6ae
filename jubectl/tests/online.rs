//! jubectl's online commands against a real server on loopback: every
//! command's human output (a snapshot), `--json`, `JUBILANT_ADDR`, and the
//! documented exit codes.

use std::fmt::Write as _;
use std::process::Command;

use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;

fn jubectl(addr: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_jubectl"))
        .env("JUBILANT_ADDR", addr)
        .args(args)
        .output()
        .expect("run jubectl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Appends one command and what it did to a transcript.
fn record(transcript: &mut String, args: &[&str], (code, stdout, stderr): (i32, String, String)) {
    let _ = write!(
        transcript,
        "$ jubectl {}\nexit {code}\n{stdout}{}",
        args.join(" "),
        if stderr.is_empty() {
            String::new()
        } else {
            format!("stderr: {stderr}")
        }
    );
}

fn jubectl_with_input(addr: &str, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_jubectl"))
        .env("JUBILANT_ADDR", addr)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run jubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_online_command_round_trips_with_stable_output_and_exit_codes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::from_toml("[server]\nport = 0")
        .expect("valid")
        .with_overrides(Some(dir.path().to_path_buf()), None)
        .expect("valid");
    let server = runtime
        .block_on(async { runtime::start(RealEnv::current(), config).await })
        .expect("start");
    let addr = server.local_addr().to_string();

    let mut transcript = String::new();
    for args in [
        &["ping"][..],
        &["set", "greeting", "hello"],
        &["get", "greeting"],
        &["set", "n", "41", "--type", "int", "--durability", "async"],
        &["add", "n", "1"],
        &["add", "n", "-2"],
        &["set", "raw", "00ff10", "--type", "bytes"],
        &["get", "raw"],
        &["set", "session", "s", "--ttl-ms", "3600000"],
        &["persist", "session"],
        &["ttl", "session"],
        &["expire", "session", "3600000"],
        &["del", "greeting"],
        &["del", "greeting"],
        &["get", "greeting"],
        &["ttl", "greeting"],
        &["add", "raw", "1"],
        &["set", "n", "not-a-number", "--type", "int"],
        &["--json", "get", "n"],
        &["--json", "del", "nothing"],
    ] {
        record(&mut transcript, args, jubectl(&addr, args));
    }
    insta::assert_snapshot!(transcript);

    // A transaction from standard input; then one whose ASSERT fails.
    let transfer = r#"{"keys": [{"id": 0, "mode": "RW", "key": "n"},
                                {"id": 1, "mode": "RW", "key": "m"}],
                       "ops": [{"op": "GET", "key": 0},
                               {"op": "ADD", "key": 0, "delta": -5},
                               {"op": "ADD", "key": 1, "delta": 5},
                               {"op": "TTL", "key": 1}]}"#;
    let guarded = r#"{"keys": [{"id": 0, "mode": "RW", "key": "n"}],
                      "ops": [{"op": "ASSERT_INT_EQ", "key": 0, "value": 1},
                              {"op": "DEL", "key": 0}]}"#;
    let mut txns = String::new();
    for (args, input) in [
        (&["txn"][..], transfer),
        (&["--json", "txn", "-"][..], transfer),
        (&["txn"][..], guarded),
        (
            &["txn"][..],
            "{\"keys\": [], \"ops\": [{\"op\": \"FLY\", \"key\": 0}]}",
        ),
    ] {
        record(&mut txns, args, jubectl_with_input(&addr, args, input));
    }
    insta::assert_snapshot!(txns);

    let (code, stdout, _) = jubectl(&addr, &["info"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("# Server\nversion:"), "{stdout}");
    let (code, stdout, _) = jubectl(&addr, &["--json", "info"]);
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(info["wal"]["commits"].is_string(), "{info}");
    let (code, stdout, _) = jubectl(&addr, &["checkpoint"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("checkpoint at LSN "), "{stdout}");

    runtime.block_on(server.shutdown()).expect("clean shutdown");
    // No server: an operating error.
    let (code, _, stderr) = jubectl(&addr, &["ping"]);
    assert_eq!(code, 3, "{stderr}");
}
