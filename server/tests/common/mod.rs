//! Requests built by hand and responses read raw, for the tests that talk
//! to the server below the client library.

#![allow(dead_code, reason = "each test file uses its own share of these")]
// The launcher drives a real process.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use flatbuffers::FlatBufferBuilder;
use jubilant_schemas::wire;
use jubilant_server::frame::FrameReader;
pub use jubilant_server::frame::encode_frame;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn finish(
    mut b: FlatBufferBuilder<'_>,
    id: u64,
    body_type: wire::RequestBody,
    body: flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
) -> Vec<u8> {
    let root = wire::Request::create(
        &mut b,
        &wire::RequestArgs {
            id,
            body_type,
            body: Some(body),
        },
    );
    wire::finish_request_buffer(&mut b, root);
    encode_frame(b.finished_data())
}

pub fn ping(id: u64) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let body = wire::Ping::create(&mut b, &wire::PingArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::Ping, body)
}

/// A one-key transaction: SET `key` = `value` (when given), then GET it.
pub fn set_get(id: u64, key: &str, value: Option<&str>) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let key = b.create_vector(key.as_bytes());
    let decl = wire::KeyDecl::create(
        &mut b,
        &wire::KeyDeclArgs {
            id: 0,
            mode: wire::Mode::RW,
            key: Some(key),
        },
    );
    let mut ops = Vec::new();
    if let Some(value) = value {
        let bytes = b.create_vector(value.as_bytes());
        let value = wire::Value::create(
            &mut b,
            &wire::ValueArgs {
                type_: wire::ValueType::String,
                bytes: Some(bytes),
                int: 0,
            },
        );
        ops.push(wire::Op::create(
            &mut b,
            &wire::OpArgs {
                kind: wire::OpKind::Set,
                value: Some(value),
                ..wire::OpArgs::default()
            },
        ));
    }
    ops.push(wire::Op::create(
        &mut b,
        &wire::OpArgs {
            kind: wire::OpKind::Get,
            ..wire::OpArgs::default()
        },
    ));
    let (keys, ops) = (b.create_vector(&[decl]), b.create_vector(&ops));
    let txn = wire::Txn::create(
        &mut b,
        &wire::TxnArgs {
            keys: Some(keys),
            ops: Some(ops),
            durability: wire::Durability::Default,
        },
    );
    finish(b, id, wire::RequestBody::Txn, txn.as_union_value())
}

/// Reads `count` responses; returns (id, summary) pairs in arrival order.
pub async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(u64, String)> {
    let mut frames = FrameReader::new(64 << 20);
    let mut out = Vec::new();
    let mut buffer = vec![0u8; 4096];
    while out.len() < count {
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(n > 0, "the server closed the connection early");
        frames.extend(&buffer[..n]);
        while let Some(frame) = frames.next_frame().expect("framing") {
            let response = flatbuffers::root::<wire::Response>(&frame).expect("a response");
            let summary = match response.body_type() {
                wire::ResponseBody::Pong => "pong".to_owned(),
                wire::ResponseBody::TxnResult => {
                    let result = response.body_as_txn_result().expect("body");
                    let results = result.results().expect("results");
                    let last = results.get(results.len() - 1);
                    let value = last
                        .value()
                        .and_then(|v| v.bytes())
                        .map(|b| String::from_utf8_lossy(b.bytes()).into_owned());
                    format!("txn lsn>0:{} get:{value:?}", result.lsn() > 0)
                }
                wire::ResponseBody::Error => {
                    let error = response.body_as_error().expect("body");
                    format!("error {:?}", error.code())
                }
                other => format!("{other:?}"),
            };
            out.push((response.id(), summary));
        }
    }
    out
}

/// Starts the server binary on `data`, listening on a free loopback port,
/// with `extra` arguments, and waits until it listens: then returns it and
/// its address; or, if it exits first, its exit code and what it logged.
/// Its log is drained in the background from then on.
pub fn start_server(data: &Path, extra: &[&str]) -> Result<(Child, SocketAddr), (i32, String)> {
    start_server_with(data, extra, false).map(|(child, addr, _)| (child, addr))
}

/// As [`start_server`], with the RESP listener on a free loopback port too;
/// returns its address as well.
#[allow(dead_code)]
pub fn start_resp_server(
    data: &Path,
    extra: &[&str],
) -> Result<(Child, SocketAddr, SocketAddr), (i32, String)> {
    start_server_with(data, extra, true)
        .map(|(child, addr, resp)| (child, addr, resp.expect("RESP is on")))
}

fn start_server_with(
    data: &Path,
    extra: &[&str],
    resp: bool,
) -> Result<(Child, SocketAddr, Option<SocketAddr>), (i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jubilant-server"))
        .args(["--data-dir", data.to_str().expect("UTF-8 path")])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--resp-listen", if resp { "127.0.0.1:0" } else { "off" }])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut logged = String::new();
    let mut line = String::new();
    let (mut native, mut resp_addr) = (None, None);
    loop {
        line.clear();
        if log.read_line(&mut line).expect("read the log") == 0 {
            let status = child.wait().expect("reap");
            return Err((status.code().unwrap_or(-1), logged));
        }
        logged.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr: SocketAddr = rest
                .split_whitespace()
                .next()
                .expect("an address")
                .parse()
                .expect("a socket address");
            if line.contains("RESP listening on") {
                resp_addr = Some(addr);
            } else {
                native = Some(addr);
            }
            if let Some(native) = native
                && (!resp || resp_addr.is_some())
            {
                std::thread::spawn(move || for _ in log.lines() {});
                return Ok((child, native, resp_addr));
            }
        }
    }
}
