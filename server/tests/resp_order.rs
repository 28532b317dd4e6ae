//! The RESP listener in process, on loopback: one connection's pipelined
//! commands take effect in the order sent and are answered in that order,
//! while several connections share group commits; lost framing closes
//! only its own connection; a server at its limits says so in Redis's
//! words.

use std::net::SocketAddr;

use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(dir: &std::path::Path, extra: &str) -> Config {
    Config::from_toml(&format!(
        "[server]\nport = 0\n[resp]\nlisten = \"127.0.0.1:0\"\n{extra}"
    ))
    .expect("valid")
    .with_overrides(Some(dir.to_path_buf()), None)
    .expect("valid")
}

fn encode(commands: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in commands {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    out
}

fn words(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_owned).collect()
}

async fn replies(stream: &mut TcpStream, count: usize) -> Vec<OwnedFrame> {
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while out.len() < count {
        if let Some((frame, used)) = decode(&buffer).expect("a valid reply") {
            buffer.drain(..used);
            out.push(frame);
            continue;
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed after {} of {count} replies", out.len());
        buffer.extend_from_slice(&chunk[..n]);
    }
    out
}

fn bulk(text: &str) -> OwnedFrame {
    OwnedFrame::BulkString(text.as_bytes().to_vec())
}

async fn start(dir: &std::path::Path, extra: &str) -> (runtime::Running<RealEnv>, SocketAddr) {
    let server = runtime::start(RealEnv::current(), config(dir, extra))
        .await
        .expect("start");
    let addr = server.resp_addr().expect("RESP is on");
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_takes_effect_in_order_and_is_answered_in_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, addr) = start(dir.path(), "").await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // 3 x 600 commands in one write: a write then a read of the same key
    // (the read must see it), a counter on one key, a MULTI every so often.
    let mut commands = Vec::new();
    let mut expected = Vec::new();
    for i in 0..600 {
        let key = format!("k{}", i % 7);
        commands.push(words(&format!("SET {key} v{i}")));
        expected.push(OwnedFrame::SimpleString(b"OK".to_vec()));
        commands.push(words(&format!("GET {key}")));
        expected.push(bulk(&format!("v{i}")));
        if i % 40 == 0 {
            // INCR on a decimal string falls back to read-then-commit: the
            // GET after it must still see the increment.
            commands.push(words(&format!("SET n{i} 10")));
            commands.push(words(&format!("INCR n{i}")));
            commands.push(words(&format!("GET n{i}")));
            expected.push(OwnedFrame::SimpleString(b"OK".to_vec()));
            expected.push(OwnedFrame::Integer(11));
            expected.push(bulk("11"));
        }
        if i % 50 == 0 {
            commands.push(words("MULTI"));
            commands.push(words("INCR counter"));
            commands.push(words(&format!("APPEND {key} !")));
            commands.push(words("EXEC"));
            expected.push(OwnedFrame::SimpleString(b"OK".to_vec()));
            expected.push(OwnedFrame::SimpleString(b"QUEUED".to_vec()));
            expected.push(OwnedFrame::SimpleString(b"QUEUED".to_vec()));
            expected.push(OwnedFrame::Array(vec![
                OwnedFrame::Integer(i64::from(i) + 1),
                OwnedFrame::Integer(format!("v{i}!").len() as i64),
            ]));
        } else {
            commands.push(words("INCR counter"));
            expected.push(OwnedFrame::Integer(i64::from(i) + 1));
        }
    }
    stream.write_all(&encode(&commands)).await.expect("write");
    let got = replies(&mut stream, expected.len()).await;
    for (n, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "reply {n} ({:?})", commands[n]);
    }
    drop(stream);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_aborts_exec_when_another_connection_wrote_and_lost_framing_closes_one_connection() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, addr) = start(dir.path(), "").await;
    let mut a = TcpStream::connect(addr).await.expect("connect");
    let mut b = TcpStream::connect(addr).await.expect("connect");
    a.write_all(&encode(&[words("WATCH x"), words("GET x")]))
        .await
        .expect("write");
    assert_eq!(
        replies(&mut a, 2).await,
        vec![OwnedFrame::SimpleString(b"OK".to_vec()), OwnedFrame::Null]
    );
    b.write_all(&encode(&[words("SET x from-b")]))
        .await
        .expect("write");
    replies(&mut b, 1).await;
    a.write_all(&encode(&[
        words("MULTI"),
        words("SET x from-a"),
        words("EXEC"),
        words("GET x"),
    ]))
    .await
    .expect("write");
    let got = replies(&mut a, 4).await;
    assert_eq!(got[2], OwnedFrame::Null, "EXEC aborted: x changed");
    assert_eq!(got[3], bulk("from-b"));
    // Garbage framing on b: a protocol error, then b is closed; a serves on.
    b.write_all(b"*1\r\n+GET\r\n").await.expect("write");
    let got = replies(&mut b, 1).await;
    assert!(
        matches!(&got[0], OwnedFrame::Error(text) if text.starts_with("ERR Protocol error")),
        "{got:?}"
    );
    let mut rest = Vec::new();
    let n = b.read_to_end(&mut rest).await.expect("read to EOF");
    assert_eq!(n, 0, "closed after the error");
    a.write_all(&encode(&[words("PING")])).await.expect("write");
    assert_eq!(
        replies(&mut a, 1).await,
        vec![OwnedFrame::SimpleString(b"PONG".to_vec())]
    );
    drop((a, b));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_client_is_told_in_redis_words() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = runtime::start(
        RealEnv::current(),
        Config::from_toml(
            "[server]\nport = 0\nmax_connections = 1\n[resp]\nlisten = \"127.0.0.1:0\"",
        )
        .expect("valid")
        .with_overrides(Some(dir.path().to_path_buf()), None)
        .expect("valid"),
    )
    .await
    .expect("start");
    let addr = server.resp_addr().expect("RESP is on");
    let mut first = TcpStream::connect(addr).await.expect("connect");
    first
        .write_all(&encode(&[words("PING")]))
        .await
        .expect("write");
    replies(&mut first, 1).await;
    let mut second = TcpStream::connect(addr).await.expect("connect");
    let mut text = Vec::new();
    second.read_to_end(&mut text).await.expect("read to EOF");
    assert_eq!(text, b"-ERR max number of clients reached\r\n");
    drop(first);
    server.shutdown().await.expect("clean shutdown");
}
