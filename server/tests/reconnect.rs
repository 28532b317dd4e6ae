//! The Rust client's reconnect rule (`connect_with`): a call made after
//! the connection was lost goes out on a new one (a real server that went
//! away and came back on the same port); a read whose answer was lost is
//! repeated, a write's is not (a peer that reads each request and hangs
//! up, counting connections); the attempts are bounded.

// A real server, a hand-made peer on a thread, real sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jubilant_client::{ClientError, ClientOptions, RECONNECT_ATTEMPTS};
use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime::{self, Running};

fn start(rt: &tokio::runtime::Runtime, data: &std::path::Path, port: u16) -> Running<RealEnv> {
    let config = Config::from_toml(&format!(
        "[server]\nport = {port}\n[resp]\nlisten = \"off\""
    ))
    .expect("valid")
    .with_overrides(Some(data.to_path_buf()), None)
    .expect("valid");
    rt.block_on(async { runtime::start(RealEnv::current(), config).await })
        .expect("start")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

const OPTIONS: ClientOptions = ClientOptions {
    connect_timeout: Duration::from_secs(5),
    request_timeout: Some(Duration::from_secs(5)),
    credentials: None,
};

#[test]
fn a_call_after_the_connection_was_lost_goes_out_on_a_new_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rt = runtime();
    let _entered = rt.enter();
    let server = start(&rt, dir.path(), 0);
    let port = server.local_addr().port();
    let client = rt
        .block_on(jubilant_client::connect_with(
            &RealEnv::current(),
            &format!("localhost:{port}"),
            OPTIONS,
        ))
        .expect("connect");
    rt.block_on(client.set("k", "v1")).expect("set");

    // The server goes away; the client sees its connection close.
    rt.block_on(server.shutdown()).expect("clean shutdown");
    std::thread::sleep(Duration::from_millis(200));
    // A write made now was never sent: it waits for a new connection (the
    // server is back within the backoff) and goes out once.
    let writer = client.clone();
    let write = rt.spawn(async move { writer.set("k", "v2").await });
    std::thread::sleep(Duration::from_millis(20));
    let server = start(&rt, dir.path(), port);
    rt.block_on(write)
        .expect("task")
        .expect("the write went out on a new connection");
    let (value, _) = rt.block_on(client.get("k")).expect("get").expect("present");
    assert_eq!(value, jubilant_core::db::Value::from("v2"));
    rt.block_on(server.shutdown()).expect("clean shutdown");
}

#[test]
fn a_lost_read_is_repeated_and_a_lost_write_is_not() {
    // A peer that reads each request and hangs up without an answer.
    let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = peer.local_addr().expect("address").to_string();
    let accepted = Arc::new(AtomicU64::new(0));
    {
        let accepted = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in peer.incoming() {
                let Ok(mut stream) = stream else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
            }
        });
    }
    let rt = runtime();
    let _entered = rt.enter();
    let client = rt
        .block_on(jubilant_client::connect_with(
            &RealEnv::current(),
            &addr,
            OPTIONS,
        ))
        .expect("connect");

    // The write was sent and its answer lost: not repeated.
    let write = rt.block_on(client.set("k", "v"));
    assert!(matches!(write, Err(ClientError::Closed(_))), "{write:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "no new connection for a sent write"
    );

    // The read dials again and is repeated, a bounded number of times.
    let read = rt.block_on(client.get("k"));
    assert!(matches!(read, Err(ClientError::Closed(_))), "{read:?}");
    let after_read = accepted.load(Ordering::SeqCst);
    assert_eq!(after_read, 1 + u64::from(RECONNECT_ATTEMPTS));

    // A write on the dead connection was never sent: it dials once and
    // goes out once (then its answer is lost, and it is not repeated).
    let write = rt.block_on(client.set("k", "v"));
    assert!(matches!(write, Err(ClientError::Closed(_))), "{write:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), after_read + 1);
}
