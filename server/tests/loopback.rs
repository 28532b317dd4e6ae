//! The server on real loopback sockets: pipelined requests answered by id,
//! invalid requests answered with typed errors on a connection that stays
//! usable, a lost framing closing only its own connection, and a graceful
//! shutdown that keeps what was acknowledged.

use std::net::SocketAddr;

use flatbuffers::FlatBufferBuilder;
use jubilant_io_real::RealEnv;
use jubilant_schemas::wire;
use jubilant_server::config::Config;
use jubilant_server::frame::{FrameReader, encode_frame};
use jubilant_server::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(dir: &std::path::Path) -> Config {
    Config::from_toml("[server]\nport = 0")
        .expect("valid")
        .with_overrides(Some(dir.to_path_buf()), None)
        .expect("valid")
}

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

fn ping(id: u64) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let body = wire::Ping::create(&mut b, &wire::PingArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::Ping, body)
}

/// A one-key transaction: SET `key` = `value` (when given), then GET it.
fn set_get(id: u64, key: &str, value: Option<&str>) -> Vec<u8> {
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
async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(u64, String)> {
    let mut frames = FrameReader::new(1 << 20);
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

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_by_id_and_bad_input_stays_local() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = runtime::start(RealEnv::current(), config(dir.path()))
        .await
        .expect("start");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the real port is reported");

    let mut client = connect(addr).await;
    // Three requests before reading any answer, then garbage.
    let mut batch = ping(1);
    batch.extend(set_get(2, "greeting", Some("hello")));
    batch.extend(set_get(3, "other", Some("x")));
    batch.extend(encode_frame(b"definitely not a flatbuffer"));
    client.write_all(&batch).await.expect("write");
    let mut answers = read_responses(&mut client, 4).await;
    answers.sort();
    assert_eq!(
        answers,
        vec![
            (0, "error InvalidRequest".to_owned()),
            (1, "pong".to_owned()),
            (2, "txn lsn>0:true get:Some(\"hello\")".to_owned()),
            (3, "txn lsn>0:true get:Some(\"x\")".to_owned()),
        ]
    );
    // The connection still serves after the invalid request.
    client
        .write_all(&set_get(4, "greeting", None))
        .await
        .expect("write");
    assert_eq!(
        read_responses(&mut client, 1).await,
        vec![(4, "txn lsn>0:true get:Some(\"hello\")".to_owned())]
    );

    // A length over the limit closes that connection only.
    let mut rogue = connect(addr).await;
    rogue
        .write_all(&u32::MAX.to_le_bytes())
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    assert_eq!(rogue.read(&mut byte).await.expect("read"), 0, "closed");
    client.write_all(&ping(5)).await.expect("write");
    assert_eq!(
        read_responses(&mut client, 1).await,
        vec![(5, "pong".to_owned())]
    );
    drop(client);

    server.shutdown().await.expect("clean shutdown");

    // Everything acknowledged is there after a restart.
    let server = runtime::start(RealEnv::current(), config(dir.path()))
        .await
        .expect("restart");
    let mut client = connect(server.local_addr()).await;
    client
        .write_all(&set_get(6, "greeting", None))
        .await
        .expect("write");
    assert_eq!(
        read_responses(&mut client, 1).await,
        vec![(6, "txn lsn>0:true get:Some(\"hello\")".to_owned())]
    );
    drop(client);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = runtime::start(RealEnv::current(), config(dir.path()))
        .await
        .expect("start");
    let second = runtime::start(RealEnv::current(), config(dir.path())).await;
    let error = second.err().expect("refused").to_string();
    assert!(error.contains("cannot open the database"), "{error}");
    first.shutdown().await.expect("clean shutdown");
}
