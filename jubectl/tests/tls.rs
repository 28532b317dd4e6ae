//! TLS on every listener (design 13.3), with certificates `openssl` makes
//! at test time (no key is committed): jubectl and the Rust client over
//! TLS and mTLS, `redis-cli --tls`, redis-py with `ssl=True`, and
//! `openssl s_client`, which must get TLS 1.2 or 1.3 and nothing older.
//! Each failure mode has its case: plaintext to a TLS port, no client
//! certificate, an expired one, one from an unknown CA.
//!
//! `openssl`, `redis-cli` and redis-py are required when
//! `JUBILANT_REQUIRE_REDIS_TOOLS=1` (as `.ci/run` sets it); otherwise a
//! missing one skips its part loudly.

// Drives real processes, files and sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::{jubectl_at, runtime};
use jubilant_io_real::RealEnv;
use jubilant_io_real::tls::{self, TlsFiles, TlsServer};

const REQUIRE_TOOLS: &str = "JUBILANT_REQUIRE_REDIS_TOOLS";

/// Whether `tool --version`-ish runs; if not, fails when tools are
/// required, else says loudly that a part is skipped.
fn have(tool: &str, probe: &[&str]) -> bool {
    let runs = Command::new(tool)
        .args(probe)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        assert!(
            std::env::var(REQUIRE_TOOLS).as_deref() != Ok("1"),
            "{tool} is not available, and {REQUIRE_TOOLS}=1 requires it"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! SKIPPED: {tool} is not available, so part of this test checked NOTHING.\n"
        );
    }
    runs
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Certificates made for one test: a CA, a server certificate for
/// `localhost` and 127.0.0.1, client certificates (valid, expired, and
/// one from another CA).
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make() -> Certs {
        let dir = tempfile::tempdir().expect("temporary directory");
        let at = dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                at,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={ca}"),
                ],
            );
        }
        std::fs::write(
            at.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write");
        std::fs::write(at.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("write");
        for (name, ca, days, ext) in [
            ("server", "ca", "2", "server.ext"),
            ("server2", "other-ca", "2", "server.ext"),
            ("client", "ca", "2", "client.ext"),
            ("expired", "ca", "-1", "client.ext"),
            ("stranger", "other-ca", "2", "client.ext"),
        ] {
            openssl(
                at,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            );
            openssl(
                at,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    days,
                    "-extfile",
                    ext,
                ],
            );
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("UTF-8 path").to_owned()
    }
}

/// A server speaking TLS on its native and RESP listeners (mTLS with
/// `mtls`), with `extra_toml`; its directory, runtime and TLS.
fn start_tls(
    certs: &Certs,
    mtls: bool,
    extra_toml: &str,
) -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    jubilant_server::runtime::Running<RealEnv>,
    Arc<TlsServer>,
) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = runtime();
    let files = TlsFiles {
        cert_file: certs.path("server.pem"),
        key_file: certs.path("server.key"),
        ca_file: mtls.then(|| certs.path("ca.pem")),
    };
    let server_tls = TlsServer::new(tls::server_config(&files).expect("TLS configuration"));
    let config = jubilant_server::config::Config::from_toml(&format!(
        "[server]\nport = 0\n[resp]\nlisten = \"127.0.0.1:0\"\n{extra_toml}"
    ))
    .expect("valid")
    .with_overrides(Some(dir.path().to_path_buf()), None)
    .expect("valid");
    let server = runtime
        .block_on(async {
            let env = RealEnv::current().with_tls_server(Arc::clone(&server_tls));
            jubilant_server::runtime::start(env, config).await
        })
        .expect("start");
    (dir, runtime, server, server_tls)
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .expect("run the command")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_listener_speaks_tls_only_and_real_clients_get_through() {
    if !have("openssl", &["version"]) {
        return;
    }
    let certs = Certs::make();
    let (_dir, _runtime, server, server_tls) = start_tls(&certs, false, "");
    let native = server.local_addr().to_string();
    let resp = server.resp_addr().expect("RESP is on");
    let ca = certs.arg("ca.pem");
    // jubectl: over TLS it works; in plaintext it gets nothing.
    let (code, out, err) = jubectl_at(Some(&native), &["--tls-ca", &ca, "set", "k", "v"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = jubectl_at(Some(&native), &["--tls-ca", &ca, "get", "k"]);
    assert_eq!((code, out.trim()), (0, "v"), "{err}");
    let (code, out, err) = jubectl_at(Some(&native), &["--timeout", "5", "get", "k"]);
    assert_ne!(code, 0, "plaintext to a TLS port was answered: {out}{err}");
    // A certificate that does not chain to the CA the client trusts.
    let other = certs.arg("other-ca.pem");
    let (code, out, err) = jubectl_at(Some(&native), &["--tls-ca", &other, "get", "k"]);
    assert_ne!(code, 0, "an untrusted server was believed: {out}{err}");
    // TLS 1.2 and 1.3 only.
    let port = resp.port().to_string();
    let connect = format!("127.0.0.1:{port}");
    for (version, accepted) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let output = run(Command::new("openssl")
            .args(["s_client", "-connect", &connect, version, "-CAfile", &ca]));
        let said = text(&output);
        // "New, TLSv1.3, Cipher is ...": what the handshake agreed.
        let protocol = said
            .lines()
            .find_map(|line| line.strip_prefix("New, "))
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_default()
            .to_owned();
        let handshaken = said.contains("Verify return code: 0 (ok)")
            && matches!(protocol.as_str(), "TLSv1.2" | "TLSv1.3");
        assert_eq!(handshaken, accepted, "openssl s_client {version}: {said}");
    }
    if have("redis-cli", &["--version"]) {
        let cli = |tls: bool, args: &[&str]| {
            let mut command = Command::new("redis-cli");
            command.args(["-h", "127.0.0.1", "-p", &port]);
            if tls {
                command.args(["--tls", "--cacert", &ca]);
            }
            text(&run(command.args(args)))
        };
        assert_eq!(cli(true, &["SET", "r", "1"]), "OK\n");
        assert_eq!(cli(true, &["GET", "k"]), "v\n");
        assert!(
            !cli(false, &["PING"]).contains("PONG"),
            "plaintext was answered"
        );
    }
    let python = std::env::var_os("JUBILANT_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/redis-venv/bin/python"),
        PathBuf::from,
    );
    if have(
        python.to_str().expect("UTF-8 path"),
        &["-c", "import redis"],
    ) {
        let script = format!(
            "import redis\n\
             r = redis.Redis(host='localhost', port={port}, ssl=True, ssl_ca_certs='{ca}')\n\
             assert r.get('k') == b'v'\n\
             print('ok')\n"
        );
        let output = run(Command::new(&python).args(["-c", &script]));
        assert!(output.status.success(), "redis-py: {}", text(&output));
    }
    // A reload (what SIGHUP does) serves the new certificate to the next
    // connection.
    let files = TlsFiles {
        cert_file: certs.path("server2.pem"),
        key_file: certs.path("server2.key"),
        ca_file: None,
    };
    server_tls.reload(tls::server_config(&files).expect("TLS configuration"));
    let (code, out, err) = jubectl_at(Some(&native), &["--tls-ca", &other, "get", "k"]);
    assert_eq!((code, out.trim()), (0, "v"), "after the reload: {err}");
    let (code, out, err) = jubectl_at(Some(&native), &["--tls-ca", &ca, "get", "k"]);
    assert_ne!(code, 0, "the old certificate after the reload: {out}{err}");
    drop(server);
}

#[test]
fn with_a_ca_file_only_clients_with_a_valid_certificate_get_in() {
    if !have("openssl", &["version"]) {
        return;
    }
    let certs = Certs::make();
    let (_dir, _runtime, server, _) = start_tls(&certs, true, "");
    let native = server.local_addr().to_string();
    let ca = certs.arg("ca.pem");
    let with = |name: &str, args: &[&str]| {
        let (cert, key) = (
            certs.arg(&format!("{name}.pem")),
            certs.arg(&format!("{name}.key")),
        );
        let mut all = vec![
            "--timeout",
            "5",
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        all.extend_from_slice(args);
        jubectl_at(Some(&native), &all)
    };
    let (code, out, err) = with("client", &["set", "m", "1"]);
    assert_eq!(code, 0, "a valid client certificate: {out}{err}");
    for refused in ["expired", "stranger"] {
        let (code, out, err) = with(refused, &["get", "m"]);
        assert_ne!(code, 0, "{refused} client certificate let in: {out}{err}");
    }
    let (code, out, err) = jubectl_at(
        Some(&native),
        &["--timeout", "5", "--tls-ca", &ca, "get", "m"],
    );
    assert_ne!(code, 0, "no client certificate let in: {out}{err}");
    if have("redis-cli", &["--version"]) {
        let port = server.resp_addr().expect("RESP is on").port().to_string();
        let output = run(Command::new("redis-cli").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--tls",
            "--cacert",
            &ca,
            "--cert",
            &certs.arg("client.pem"),
            "--key",
            &certs.arg("client.key"),
            "GET",
            "m",
        ]));
        assert_eq!(text(&output), "1\n");
    }
    drop(server);
}
