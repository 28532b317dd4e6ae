//! The admin HTTP listener of the real `jubilant-server` binary, through
//! real `curl` and `promtool check metrics`: `/metrics` is valid Prometheus
//! text with every INFO figure, typed; `/healthz` and `/readyz` answer
//! 200; anything else is refused with its status; off by default.
//!
//! `curl` and `promtool` (Debian `curl`, `prometheus`) are required when
//! `JUBILANT_REQUIRE_REDIS_TOOLS=1` (as `.ci/run` sets it); otherwise a
//! missing one skips the test loudly.

// Drives a real process, real sockets and real tools.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// A server that exits before it listens fails the test; the process is gone.
#![allow(clippy::zombie_processes)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REQUIRE_TOOLS: &str = "JUBILANT_REQUIRE_REDIS_TOOLS";

/// Whether `tool` runs; if not, fails when tools are required, else says
/// loudly that the test is skipped.
fn have(tool: &str, install: &str) -> bool {
    if Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
    {
        return true;
    }
    assert!(
        std::env::var(REQUIRE_TOOLS).as_deref() != Ok("1"),
        "{tool} is not available, and {REQUIRE_TOOLS}=1 requires it: {install}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED: {tool} is not available, so this test checked NOTHING. Install it: {install}\n"
    );
    false
}

/// Starts the server with the admin listener on a free port; returns it
/// and the admin address from its log.
fn start(data: &std::path::Path) -> (Child, SocketAddr) {
    start_with(data, &[])
}

/// As [`start`], with `extra` arguments.
fn start_with(data: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jubilant-server"))
        .args(["--data-dir", data.to_str().expect("UTF-8 path")])
        .args(["--listen", "127.0.0.1:0", "--resp-listen", "off"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(log.read_line(&mut line).expect("log") > 0, "exited early");
        if let Some(rest) = line.split("admin HTTP listening on ").nth(1) {
            let addr = rest.split_whitespace().next().expect("an address");
            // Keep draining the log so the server never blocks on it.
            std::thread::spawn(move || for _ in log.lines() {});
            return (child, addr.parse().expect("an address"));
        }
    }
}

/// `curl` of `path`: the status code and the body.
fn curl(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    curl_with(addr, method, path, &[])
}

/// As [`curl`], with `extra` arguments.
fn curl_with(addr: SocketAddr, method: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["--silent", "--max-time", "10", "--request", method])
        .args(extra)
        .args(["--write-out", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let (body, code) = text.rsplit_once('\n').expect("a status line");
    (code.parse().expect("a status"), body.to_owned())
}

#[test]
fn metrics_pass_promtool_and_probes_answer_through_curl() {
    if !have("curl", "apt-get install curl") || !have("promtool", "apt-get install prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut server, admin) = start(&dir.path().join("data"));

    let (code, body) = curl(admin, "GET", "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = curl(admin, "GET", "/readyz");
    assert_eq!((code, body.as_str()), (200, "ready\n"));
    let (code, metrics) = curl(admin, "GET", "/metrics");
    assert_eq!(code, 200);
    for wanted in [
        "# TYPE jubilant_wal_commits_total counter",
        "# TYPE jubilant_cache_bytes gauge",
        "jubilant_server_status_ok 1",
        "# TYPE jubilant_server_uptime_seconds gauge",
        "# TYPE jubilant_limits_frame_read_timeout_seconds gauge",
        "# TYPE jubilant_request_duration_seconds histogram",
        "# TYPE jubilant_commit_duration_seconds histogram",
        "jubilant_build_info{format=",
    ] {
        assert!(metrics.contains(wanted), "{wanted} missing:\n{metrics}");
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write");
    let checked = check.wait_with_output().expect("promtool");
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    assert_eq!(curl(admin, "GET", "/nothing").0, 404);
    assert_eq!(curl(admin, "POST", "/metrics").0, 405);

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..300 {
        if let Some(status) = server.try_wait().expect("wait") {
            assert!(status.success(), "clean shutdown: {status:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    panic!("the server did not exit within 30 s");
}

#[test]
fn with_metrics_auth_metrics_need_a_user_whose_acl_allows_info_and_probes_stay_open() {
    if !have("curl", "apt-get install curl") {
        return;
    }
    use argon2::password_hash::{PasswordHasher, SaltString};
    let dir = tempfile::tempdir().expect("temporary directory");
    let salt = SaltString::from_b64("dGVzdHNhbHR0ZXN0c2FsdA").expect("salt");
    let hash = |password: &[u8]| {
        argon2::Argon2::default()
            .hash_password(password, &salt)
            .expect("hash")
            .to_string()
    };
    let config = format!(
        "[admin]\nmetrics_auth = true\n\
         [[users]]\nname = \"scraper\"\npassword_hash = \"{}\"\nacl = \"on +info\"\n\
         [[users]]\nname = \"app\"\npassword_hash = \"{}\"\nacl = \"on ~* +@all -@dangerous\"\n",
        hash(b"scrape"),
        hash(b"app")
    );
    let config_path = dir.path().join("jubilant.toml");
    std::fs::write(&config_path, config).expect("write the config");
    let config_arg = config_path.to_str().expect("UTF-8 path");
    let (mut child, addr) = start_with(&dir.path().join("data"), &["--config", config_arg]);
    let (code, body) = curl(addr, "GET", "/metrics");
    assert_eq!(code, 401, "{body}");
    let headers = Command::new("curl")
        .args(["--silent", "--max-time", "10", "--include"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("run curl");
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(headers.contains("WWW-Authenticate: Basic"), "{headers}");
    let (code, body) = curl_with(addr, "GET", "/metrics", &["--user", "scraper:wrong"]);
    assert_eq!(code, 401, "{body}");
    let (code, body) = curl_with(addr, "GET", "/metrics", &["--user", "app:app"]);
    assert_eq!(code, 403, "INFO is @dangerous: {body}");
    let (code, body) = curl_with(addr, "GET", "/metrics", &["--user", "scraper:scrape"]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("jubilant_auth_denied_by_acl_total 1"),
        "{body}"
    );
    assert!(body.contains("jubilant_auth_failures_total 1"), "{body}");
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(curl(addr, "GET", probe).0, 200, "{probe} needs no user");
    }
    let _ = child.kill();
    let _ = child.wait();
}
