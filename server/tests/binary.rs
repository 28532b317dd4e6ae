//! The `jubilant-server` binary: starts on defaults plus flags, says where it
//! listens, answers, refuses a second server on its directory and a bad
//! configuration with the exit codes it documents, and exits 0 on SIGTERM.

// This test drives a real process over real sockets and files: the
// determinism rules of the library do not apply to it.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flatbuffers::FlatBufferBuilder;
use jubilant_schemas::wire;
use jubilant_server::frame::{FrameReader, encode_frame};

fn server(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jubilant-server"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JUBILANT_CONFIG")
        .env_remove("JUBILANT_DATA_DIR")
        .env_remove("JUBILANT_LISTEN")
        .env_remove("JUBILANT_RESP_LISTEN")
        .env_remove("JUBILANT_ADMIN_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Reads the child's log until `listening on ADDR`; returns the address and
/// the rest of the log as it comes.
fn listening(child: &mut Child) -> (SocketAddr, BufReader<std::process::ChildStderr>) {
    let mut log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            log.read_line(&mut line).expect("read log") > 0,
            "exited before listening"
        );
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().expect("an address");
            return (addr.parse().expect("a socket address"), log);
        }
    }
}

fn ping(stream: &mut TcpStream) -> bool {
    let mut b = FlatBufferBuilder::new();
    let body = wire::Ping::create(&mut b, &wire::PingArgs {}).as_union_value();
    let root = wire::Request::create(
        &mut b,
        &wire::RequestArgs {
            id: 9,
            body_type: wire::RequestBody::Ping,
            body: Some(body),
        },
    );
    wire::finish_request_buffer(&mut b, root);
    stream
        .write_all(&encode_frame(b.finished_data()))
        .expect("write");
    let mut frames = FrameReader::new(1 << 20);
    let mut buffer = [0u8; 256];
    loop {
        let n = stream.read(&mut buffer).expect("read");
        assert!(n > 0, "closed");
        frames.extend(&buffer[..n]);
        if let Some(frame) = frames.next_frame().expect("framing") {
            let response = flatbuffers::root::<wire::Response>(&frame).expect("response");
            return response.id() == 9 && response.body_type() == wire::ResponseBody::Pong;
        }
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("the server did not exit within 30 s");
}

#[test]
fn starts_answers_refuses_a_second_server_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let data = data.to_str().expect("UTF-8 path");
    let mut first = server(&[
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
        "--resp-listen",
        "off",
    ])
    .spawn()
    .expect("start the server");
    let (addr, _log) = listening(&mut first);
    let mut client = TcpStream::connect(addr).expect("connect");
    assert!(ping(&mut client), "PING answered with PONG");

    let second = server(&[
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
        "--resp-listen",
        "off",
    ])
    .output()
    .expect("run a second server");
    assert_eq!(second.status.code(), Some(1), "refused");
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("cannot open the database"), "{message}");

    drop(client);
    terminate(&first);
    let status = wait_exit(&mut first);
    assert!(status.success(), "clean shutdown: {status:?}");
}

#[test]
fn a_bad_configuration_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nprot = 6767\n").expect("write");
    let output = server(&["--config", file.to_str().expect("UTF-8 path")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("prot"), "{message}");
}

#[test]
fn a_taken_resp_port_exits_1_saying_how_to_move_it_and_a_bad_one_exits_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let data = data.to_str().expect("UTF-8 path");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").to_string();
    let output = server(&[
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
        "--resp-listen",
        &port,
    ])
    .output()
    .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("cannot listen for RESP") && message.contains("--resp-listen off"),
        "{message}"
    );
    let output = server(&["--data-dir", data, "--resp-listen", "6379"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "not ADDR:PORT");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("resp.listen"), "{message}");
}

#[test]
fn every_flag_can_come_from_the_environment_and_a_flag_wins() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("from-env");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[storage]\ndurability = \"async\"\n").expect("write");
    let mut child = server(&[])
        .env("JUBILANT_CONFIG", &config)
        .env("JUBILANT_DATA_DIR", &data)
        .env("JUBILANT_LISTEN", "127.0.0.1:1")
        .env("JUBILANT_RESP_LISTEN", "off")
        // The flag wins over its variable (port 1 would fail to bind).
        .args(["--listen", "127.0.0.1:0"])
        .spawn()
        .expect("start the server");
    let (addr, _log) = listening(&mut child);
    let mut client = TcpStream::connect(addr).expect("connect");
    assert!(ping(&mut client), "PING answered with PONG");
    assert!(
        data.join("MANIFEST").exists(),
        "the database is where the environment said"
    );
    drop(client);
    terminate(&child);
    assert!(wait_exit(&mut child).success());
    // A bad value from the environment is a usage error, as the flag's is.
    let output = server(&[])
        .env("JUBILANT_DATA_DIR", &data)
        .env("JUBILANT_RESP_LISTEN", "6379")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}
