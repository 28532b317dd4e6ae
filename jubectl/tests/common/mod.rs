//! Running the jubectl binary from the integration tests.

use std::process::{Command, Output};

/// What a run of jubectl did: exit code, stdout, stderr.
pub type Ran = (i32, String, String);

fn ran(output: Output) -> Ran {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// jubectl with `args`, and `JUBILANT_ADDR` set to `addr` when given.
pub fn jubectl_at(addr: Option<&str>, args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jubectl"));
    if let Some(addr) = addr {
        command.env("JUBILANT_ADDR", addr);
    }
    ran(command.args(args).output().expect("run jubectl"))
}

/// jubectl with `args`.
#[allow(dead_code, reason = "not every test file runs offline commands")]
pub fn jubectl(args: &[&str]) -> Ran {
    jubectl_at(None, args)
}

/// jubectl with `args` at `addr`, `input` on its standard input.
#[allow(dead_code, reason = "only the online tests pipe input")]
pub fn jubectl_with_input(addr: &str, args: &[&str], input: &str) -> Ran {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_jubectl"))
        .env("JUBILANT_ADDR", addr)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    ran(child.wait_with_output().expect("wait"))
}

/// A server on a free loopback port (RESP off) with `extra_toml` added to
/// its configuration, its directory and runtime.
#[allow(dead_code, reason = "only the online tests start a server")]
pub fn start_server(
    extra_toml: &str,
) -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    jubilant_server::runtime::Running<jubilant_io_real::RealEnv>,
) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = runtime();
    let server = start_in(&runtime, dir.path(), extra_toml);
    (dir, runtime, server)
}

/// A two-worker runtime for servers and clients in tests.
#[allow(dead_code, reason = "only the online tests start a server")]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server on `runtime` for the database in `dir`, as [`start_server`].
#[allow(dead_code, reason = "only the online tests start a server")]
pub fn start_in(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    extra_toml: &str,
) -> jubilant_server::runtime::Running<jubilant_io_real::RealEnv> {
    let config = jubilant_server::config::Config::from_toml(&format!(
        "[server]\nport = 0\n[resp]\nlisten = \"off\"\n{extra_toml}"
    ))
    .expect("valid")
    .with_overrides(Some(dir.to_path_buf()), None)
    .expect("valid");
    runtime
        .block_on(async {
            jubilant_server::runtime::start(jubilant_io_real::RealEnv::current(), config).await
        })
        .expect("start")
}
