//! jubectl's online commands against a real server on loopback: every
//! command's human output (a snapshot), `--json`, `JUBILANT_ADDR`, and the
//! documented exit codes.

// Real processes, sockets and clocks: the determinism rules of the
// library do not apply here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fmt::Write as _;

use jubilant_io_real::RealEnv;
use jubilant_server::runtime;

/// A server on a free loopback port (RESP off), its directory and runtime.
fn start_server() -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    runtime::Running<RealEnv>,
) {
    common::start_server("")
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

#[test]
fn every_online_command_round_trips_with_stable_output_and_exit_codes() {
    let (_dir, runtime, server) = start_server();
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
        &["--hex", "set", "00ff0a", "7", "--type", "int"],
        &["--hex", "get", "00ff0a"],
        &["--hex", "del", "00ff0a"],
        &["--hex", "get", "00ff0a"],
        &["--hex", "get", "zz"],
    ] {
        record(&mut transcript, args, common::jubectl_at(Some(&addr), args));
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
        // A misspelled field (`ttl` for `ttl_ms`) is refused, not ignored.
        (
            &["txn"][..],
            r#"{"keys": [{"id": 0, "mode": "RW", "key": "fresh"}],
                "ops": [{"op": "SET", "key": 0, "value": "v", "ttl": 1000}]}"#,
        ),
    ] {
        record(
            &mut txns,
            args,
            common::jubectl_with_input(&addr, args, input),
        );
    }
    insta::assert_snapshot!(txns);
    // Nothing of the refused transaction was written.
    let (code, _, _) = common::jubectl_at(Some(&addr), &["get", "fresh"]);
    assert_eq!(code, 1);
    // `txn --help` shows the format.
    let (code, stdout, _) = common::jubectl(&["txn", "--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ASSERT_REVISION_EQ \"revision\"") && stdout.contains("never ignored"),
        "{stdout}"
    );

    let (code, stdout, _) = common::jubectl_at(Some(&addr), &["info"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("# Server\nversion:"), "{stdout}");
    let (code, stdout, _) = common::jubectl_at(Some(&addr), &["--json", "info"]);
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    // Figures are typed: numbers are JSON numbers, text stays text.
    assert!(info["wal"]["commits"].is_u64(), "{info}");
    assert!(info["server"]["version"].is_string(), "{info}");
    let (code, stdout, _) = common::jubectl_at(Some(&addr), &["checkpoint"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("checkpoint at LSN "), "{stdout}");
    // Health after that checkpoint: ok, nothing waiting for a sync, a
    // checkpoint age; its JSON typed.
    let (code, stdout, _) = common::jubectl_at(Some(&addr), &["health"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with("status: ok\ndurable_lsn_lag: 0\ncheckpoint_age_ms: "),
        "{stdout}"
    );
    let (code, stdout, _) = common::jubectl_at(Some(&addr), &["--json", "health"]);
    assert_eq!(code, 0);
    let health: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["reason"], "");
    assert!(health["checkpoint_age_ms"].is_u64(), "{health}");
    assert!(health["wal_bytes_since_checkpoint"].is_u64(), "{health}");
    assert_eq!(info["server"]["status"], "ok", "{info}");

    runtime.block_on(server.shutdown()).expect("clean shutdown");
    // No server: an operating error.
    let (code, _, stderr) = common::jubectl_at(Some(&addr), &["ping"]);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn scan_lists_a_range_in_pages_forward_and_back_with_its_flags() {
    let (_dir, runtime, server) = start_server();
    let addr = server.local_addr().to_string();
    // 2,500 keys: more than one page of the server's default 1,000.
    let client = runtime
        .block_on(jubilant_client::connect(server.local_addr()))
        .expect("connect");
    runtime.block_on(async {
        for i in 0..2500 {
            client
                .set(format!("user:{i:05}"), format!("v{i}"))
                .await
                .expect("set");
        }
        client.set("other", "x").await.expect("set");
    });
    let run = |args: &[&str]| common::jubectl_at(Some(&addr), args);

    let (code, stdout, stderr) = run(&["scan", "--prefix", "user:"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2500, "every key once, across pages");
    assert_eq!(
        lines[0], "\"user:00000\" v0",
        "keys quoted as redis-cli shows them"
    );
    assert_eq!(lines[2499], "\"user:02499\" v2499");
    assert!(
        lines.windows(2).all(|pair| pair[0] < pair[1]),
        "in key order"
    );

    let (code, stdout, _) = run(&["scan", "--reverse", "--keys-only", "--limit", "3"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "\"user:02499\"\n\"user:02498\"\n\"user:02497\"\n");

    let (code, stdout, _) = run(&["scan", "--from", "user:00010", "--to", "user:00013"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "\"user:00010\" v10\n\"user:00011\" v11\n\"user:00012\" v12\n"
    );

    let (code, stdout, _) = run(&["--json", "scan", "--prefix", "oth"]);
    assert_eq!(code, 0);
    let page: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(page["count"], 1);
    assert_eq!(page["more"], false);
    assert_eq!(page["entries"][0]["key"], "other");
    assert_eq!(page["entries"][0]["key_hex"], "6f74686572");
    assert_eq!(page["entries"][0]["value"]["value"], "x");
    let (code, stdout, _) = run(&["--json", "scan", "--limit", "2"]);
    assert_eq!(code, 0);
    let page: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        (page["count"].as_u64(), page["more"].as_bool()),
        (Some(2), Some(true))
    );

    // The client's stream: every key once, fetched a page at a time.
    let streamed = runtime.block_on(async {
        use futures::StreamExt;
        let mut request = jubilant_client::ScanRequest::new(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
        );
        request.within_prefix(b"user:");
        request.limit = 300;
        request.reverse = true;
        client
            .scan(request)
            .map(|entry| entry.expect("entry").0)
            .collect::<Vec<_>>()
            .await
    });
    assert_eq!(streamed.len(), 2500);
    assert_eq!(streamed[0], b"user:02499");
    runtime.block_on(server.shutdown()).expect("clean shutdown");
}

#[test]
fn a_host_name_resolves_and_a_silent_server_times_out() {
    let (_dir, runtime, server) = start_server();
    // A name, resolved by the system's resolver.
    let by_name = format!("localhost:{}", server.local_addr().port());
    let (code, stdout, stderr) = common::jubectl_at(Some(&by_name), &["ping"]);
    assert_eq!((code, stdout.as_str()), (0, "PONG\n"), "{stderr}");
    runtime.block_on(server.shutdown()).expect("clean shutdown");

    // A listener that accepts and never answers: the request times out
    // (exit 3), within about the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("address").to_string();
    let began = std::time::Instant::now();
    let (code, _, stderr) = common::jubectl_at(Some(&addr), &["--timeout", "0.5", "ping"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no answer within 500ms"), "{stderr}");
    assert!(began.elapsed() < std::time::Duration::from_secs(5));
    drop(silent);

    // Not HOST:PORT, a name that does not resolve, a bad timeout.
    let (code, _, stderr) = common::jubectl_at(Some("no-port"), &["ping"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("give HOST:PORT"), "{stderr}");
    let (code, _, stderr) = common::jubectl_at(Some("no-such-host.invalid:6767"), &["ping"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("cannot resolve"), "{stderr}");
    let (code, _, _) = common::jubectl_at(Some(&addr), &["--timeout", "0", "ping"]);
    assert_eq!(code, 2);
}

#[test]
fn hash_password_makes_a_users_entry_and_user_and_password_get_in() {
    let (code, hash, stderr) =
        common::jubectl_with_input("127.0.0.1:1", &["hash-password"], "s3cret\n");
    assert_eq!(code, 0, "{stderr}");
    let hash = hash.trim_end().to_owned();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let (code, _, _) = common::jubectl_with_input("127.0.0.1:1", &["hash-password"], "\n");
    assert_eq!(code, 2, "an empty password is refused");

    let (_dir, runtime, server) = common::start_server(&format!(
        "[[users]]\nname = \"ops\"\npassword_hash = \"{hash}\"\n"
    ));
    let addr = server.local_addr().to_string();
    let run = |args: &[&str]| common::jubectl_at(Some(&addr), args);
    let (code, stdout, _) = run(&["ping"]);
    assert_eq!((code, stdout.as_str()), (0, "PONG\n"), "PING needs no user");
    let (code, _, stderr) = run(&["get", "k"]);
    assert_eq!(code, 4, "refused: {stderr}");
    assert!(stderr.contains("AuthRequired"), "{stderr}");
    let (code, _, stderr) = run(&["--user", "ops", "--password", "wrong", "get", "k"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("WrongPass"), "{stderr}");
    let (code, _, stderr) = run(&["--user", "ops", "--password", "s3cret", "set", "k", "v"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run(&["--user", "ops", "--password", "s3cret", "get", "k"]);
    assert_eq!((code, stdout.as_str()), (0, "v\n"));
    let (code, _, stderr) = run(&["--user", "ops", "get", "k"]);
    assert_eq!(code, 2, "a user without a password: {stderr}");
    runtime.block_on(server.shutdown()).expect("clean shutdown");
}
