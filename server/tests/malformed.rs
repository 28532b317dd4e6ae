//! Malformed input from several connections at once — random bytes, zero
//! and huge lengths, truncated frames, valid FlatBuffers with wrong fields,
//! invalid UTF-8 keys, unknown key ids — while a well-behaved client keeps
//! being served, and nothing is half-applied.

// This test plays several real clients on tokio at once.
#![allow(clippy::disallowed_methods)]

use flatbuffers::FlatBufferBuilder;
use jubilant_core::db::Value;
use jubilant_io_real::RealEnv;
use jubilant_schemas::wire;
use jubilant_server::config::Config;
use jubilant_server::frame::encode_frame;
use jubilant_server::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A transaction request with one key (raw bytes) and one op naming
/// `key_id`.
fn txn(id: u64, key: &[u8], key_id: u32, kind: wire::OpKind) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let key = b.create_vector(key);
    let decl = wire::KeyDecl::create(
        &mut b,
        &wire::KeyDeclArgs {
            id: 0,
            mode: wire::Mode::RW,
            key: Some(key),
        },
    );
    let op = wire::Op::create(
        &mut b,
        &wire::OpArgs {
            kind,
            key_id,
            delta: 1,
            ..wire::OpArgs::default()
        },
    );
    let (keys, ops) = (b.create_vector(&[decl]), b.create_vector(&[op]));
    let body = wire::Txn::create(
        &mut b,
        &wire::TxnArgs {
            keys: Some(keys),
            ops: Some(ops),
            durability: wire::Durability::Default,
        },
    );
    let root = wire::Request::create(
        &mut b,
        &wire::RequestArgs {
            id,
            body_type: wire::RequestBody::Txn,
            body: Some(body.as_union_value()),
        },
    );
    wire::finish_request_buffer(&mut b, root);
    b.finished_data().to_vec()
}

/// Sends `bytes` and ends the stream, then reads until the server closes
/// or `answers` error codes arrived; returns the codes.
async fn send(
    addr: std::net::SocketAddr,
    bytes: Vec<u8>,
    answers: usize,
) -> Vec<(u64, wire::ErrorCode)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&bytes).await.expect("write");
    // End of stream: the server answers what it could read, then closes.
    stream.shutdown().await.expect("shutdown");
    let mut frames = jubilant_server::frame::FrameReader::new(1 << 20);
    let mut codes = Vec::new();
    let mut buffer = vec![0u8; 4096];
    while codes.len() < answers {
        let n = stream.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        frames.extend(&buffer[..n]);
        while let Ok(Some(frame)) = frames.next_frame() {
            let response = flatbuffers::root::<wire::Response>(&frame).expect("a response");
            let code = response
                .body_as_error()
                .map_or(wire::ErrorCode::Internal, |e| e.code());
            codes.push((response.id(), code));
        }
    }
    // Answers come in completion order; ids say which is which.
    codes.sort_by_key(|(id, _)| *id);
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_or_a_close_while_a_good_client_is_served() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = Config::from_toml(
        "[server]\nport = 0\n[resp]\nlisten = \"off\"\n[limits]\nframe_bytes_max = 65536",
    )
    .expect("valid")
    .with_overrides(Some(dir.path().to_path_buf()), None)
    .expect("valid");
    let server = runtime::start(RealEnv::current(), config)
        .await
        .expect("start");
    let addr = server.local_addr();
    let good = jubilant_client::connect(addr).await.expect("connect");
    let good_task = tokio::spawn({
        let good = good.clone();
        async move {
            for n in 0..200i64 {
                good.set("good", n)
                    .await
                    .expect("the good client is served");
                assert_eq!(
                    good.get("good").await.expect("get").map(|(v, _)| v),
                    Some(Value::Int(n))
                );
            }
        }
    });

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let mut attacks = Vec::new();
    // Random payloads in valid frames: each answered InvalidRequest.
    let mut framed = Vec::new();
    for len in [1, 7, 8, 64, 1000] {
        framed.extend(encode_frame(&random(len)));
    }
    attacks.push(tokio::spawn(send(addr, framed, 5)));
    // Raw random bytes: some length prefix is over the limit: closed.
    attacks.push(tokio::spawn(send(addr, random(4096), usize::MAX)));
    // A zero length, a huge one, a truncated frame: closed.
    attacks.push(tokio::spawn(send(
        addr,
        0u32.to_le_bytes().to_vec(),
        usize::MAX,
    )));
    attacks.push(tokio::spawn(send(
        addr,
        u32::MAX.to_le_bytes().to_vec(),
        usize::MAX,
    )));
    let mut truncated = encode_frame(&txn(1, b"k", 0, wire::OpKind::Get));
    truncated.truncate(truncated.len() - 3);
    attacks.push(tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&truncated).await.expect("write");
        drop(stream);
        Vec::new()
    }));
    // Valid FlatBuffers with wrong fields: typed errors, nothing applied.
    let mut wrong = Vec::new();
    // Keys are any bytes, but no longer than a page allows.
    wrong.extend(encode_frame(&txn(
        11,
        &[0xff; 10_000],
        0,
        wire::OpKind::Add,
    )));
    wrong.extend(encode_frame(&txn(12, b"bad", 7, wire::OpKind::Add)));
    wrong.extend(encode_frame(&txn(13, b"bad", 0, wire::OpKind(200))));
    wrong.extend(encode_frame(&txn(14, b"", 0, wire::OpKind::Add)));
    let codes = send(addr, wrong, 4).await;
    assert_eq!(
        codes,
        vec![
            (11, wire::ErrorCode::KeyTooLarge),
            (12, wire::ErrorCode::UnknownKeyId),
            (13, wire::ErrorCode::InvalidRequest),
            (14, wire::ErrorCode::KeyEmpty),
        ]
    );
    let random_codes = attacks.remove(0).await.expect("task");
    assert_eq!(random_codes, vec![(0, wire::ErrorCode::InvalidRequest); 5]);
    for attack in attacks {
        attack.await.expect("task");
    }
    good_task.await.expect("the good client finished");
    assert_eq!(
        good.get("bad").await.expect("get"),
        None,
        "nothing half-applied"
    );
    server.shutdown().await.expect("clean shutdown");
}
