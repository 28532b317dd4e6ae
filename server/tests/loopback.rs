//! The server on real loopback sockets: pipelined requests answered by id,
//! invalid requests answered with typed errors on a connection that stays
//! usable, a lost framing closing only its own connection, and a graceful
//! shutdown that keeps what was acknowledged.

mod common;

use std::net::SocketAddr;

use common::{encode_frame, ping, read_responses, set_get};
use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(dir: &std::path::Path) -> Config {
    Config::from_toml("[server]\nport = 0\n[resp]\nlisten = \"off\"")
        .expect("valid")
        .with_overrides(Some(dir.to_path_buf()), None)
        .expect("valid")
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

    // A length over the limit is answered `FrameTooLarge` (id 0), and that
    // connection only is closed.
    let mut rogue = connect(addr).await;
    rogue
        .write_all(&u32::MAX.to_le_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_responses(&mut rogue, 1).await,
        vec![(0, "error FrameTooLarge".to_owned())]
    );
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
