//! Clients that do not play along, against the real server binary: one
//! that never reads its answers, one that asks for too much at once, and a
//! crowd of connections that each send half a frame. The server stays
//! within its memory bound, answers honest clients within seconds, and
//! exits 0 on SIGTERM within its shutdown deadline in each of these states.

// This test drives real processes, sockets and files.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{read_responses, set_get, start_server};
use jubilant_client::{ClientError, ErrorCode};
use jubilant_core::txn::{Mode, Txn};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
/// A value just under the default `value_bytes_max` (8 MiB).
const BIG_VALUE_BYTES: usize = 8 * 1024 * 1024 - 4096;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The resident set of process `pid` (Linux `/proc`).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// One figure of INFO, asked over a fresh connection.
async fn info_figure(addr: SocketAddr, name: &str) -> u64 {
    let client = jubilant_client::connect(addr).await.expect("connect");
    let info = client.info().await.expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {name}:\n{info}"))
}

/// Waits until INFO shows nothing in flight and nothing queued.
async fn settles(addr: SocketAddr, within: Duration) {
    let began = Instant::now();
    loop {
        let (in_flight, queued) = (
            info_figure(addr, "in_flight").await,
            info_figure(addr, "queued_bytes").await,
        );
        // The INFO request itself is the one in flight.
        if in_flight <= 1 && queued == 0 {
            return;
        }
        if began.elapsed() >= within {
            let client = jubilant_client::connect(addr).await.expect("connect");
            let info = client.info().await.expect("INFO");
            panic!(
                "still {in_flight} in flight and {queued} bytes queued after {within:?}:\n{info}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminate_and_wait(child: &mut Child, within: Duration) {
    let began = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "SIGTERM must exit 0, got {status}");
            return;
        }
        if began.elapsed() > within {
            let _ = child.kill();
            panic!("the server did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pipelines `GET big` on `stream` for `duration` without ever reading.
async fn pipeline_without_reading(stream: &mut TcpStream, duration: Duration) -> u64 {
    let began = Instant::now();
    let mut sent = 0;
    while began.elapsed() < duration {
        let frame = set_get(sent + 1, "big", None);
        let left = duration.saturating_sub(began.elapsed());
        match tokio::time::timeout(left, stream.write_all(&frame)).await {
            Ok(Ok(())) => sent += 1,
            // The server stopped reading: TCP pushes back, as it should.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    sent
}

fn store_big_value(addr: SocketAddr, rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let client = jubilant_client::connect(addr).await.expect("connect");
        client
            .set("big", vec![b'x'; BIG_VALUE_BYTES])
            .await
            .expect("store the big value");
    });
}

#[test]
fn a_client_that_never_reads_keeps_the_server_bounded_and_sigterm_still_exits() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut child, addr) = start_server(&dir.path().join("data"), &[]).expect("start");
    let rt = runtime();
    store_big_value(addr, &rt);
    let resting = rss_bytes(child.id());
    let pid = child.id();
    let peak = rt.block_on(async move {
        let mut greedy = TcpStream::connect(addr).await.expect("connect");
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..40 {
                peak = peak.max(rss_bytes(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        });
        let sent = pipeline_without_reading(&mut greedy, Duration::from_secs(4)).await;
        assert!(sent > 10, "the test did not test: {sent} requests sent");
        // Honest clients are still answered meanwhile.
        let answered =
            tokio::time::timeout(Duration::from_secs(2), info_figure(addr, "queued_bytes"))
                .await
                .expect("an honest client is answered within 2 s");
        assert!(answered <= 256 * MIB + 64 * MIB, "queued {answered} bytes");
        let peak = sampler.await.expect("sampler");
        drop(greedy);
        settles(addr, Duration::from_secs(10)).await;
        peak
    });
    let after = rss_bytes(child.id());
    eprintln!(
        "RSS: resting {} MiB, peak {} MiB, after the client left {} MiB",
        resting / MIB,
        peak / MIB,
        after / MIB
    );
    assert!(peak < GIB, "peak RSS {} MiB", peak / MIB);
    assert!(
        after < resting + 160 * MIB,
        "RSS stayed at {} MiB after the client left (resting {} MiB)",
        after / MIB,
        resting / MIB
    );
    // Shutdown with a client that pipelined and does not read.
    let stuck = rt.block_on(async move {
        let mut stuck = TcpStream::connect(addr).await.expect("connect");
        pipeline_without_reading(&mut stuck, Duration::from_secs(1)).await;
        stuck
    });
    terminate_and_wait(&mut child, Duration::from_secs(10 + 5));
    drop(stuck);
}

#[test]
fn a_request_for_more_than_the_response_limit_is_refused_within_a_second() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut child, addr) = start_server(&dir.path().join("data"), &[]).expect("start");
    let rt = runtime();
    store_big_value(addr, &rt);
    rt.block_on(async {
        let client = jubilant_client::connect(addr).await.expect("connect");
        let mut txn = Txn::new();
        let big = txn.key("big", Mode::R);
        for _ in 0..300 {
            txn.get(big);
        }
        let began = Instant::now();
        let refused = client.transaction(&txn).await;
        let took = began.elapsed();
        match refused {
            Err(ClientError::Server { code, message, .. }) => {
                assert_eq!(code, ErrorCode::ResponseTooLarge, "{message}");
                assert!(message.contains("67108864"), "names the limit: {message}");
            }
            other => panic!("expected ResponseTooLarge, got {other:?}"),
        }
        assert!(took < Duration::from_secs(1), "took {took:?}");
        settles(addr, Duration::from_secs(2)).await;
        assert_eq!(info_figure(addr, "responses_too_large").await, 1);
        // Eight of them fit, and are answered.
        let mut txn = Txn::new();
        let big = txn.key("big", Mode::R);
        for _ in 0..7 {
            txn.get(big);
        }
        let outcome = client.transaction(&txn).await.expect("within the limit");
        assert_eq!(outcome.results.len(), 7);
    });
    terminate_and_wait(&mut child, Duration::from_secs(15));
}

fn config_file(dir: &Path, text: &str) -> String {
    let path = dir.join("jubilant.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// Opens `count` connections that each send 3 bytes of a frame's length
/// prefix and then nothing; checks a new client is answered within 2 s (a
/// typed refusal while the slots are held, or PONG), and PONG once
/// `frame_timeout` has passed; returns the crowd, still held.
/// The answer to a probe of a full server: `pong`, the refusal, or
/// `closed` (reset or closed before an answer arrived).
async fn probe_at_capacity(stream: &mut TcpStream) -> String {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) | Err(_) => return "closed".to_owned(),
        Ok(_) => {}
    }
    match read_responses(stream, 1).await.as_slice() {
        [(1, pong)] if pong == "pong" => "pong".to_owned(),
        [(0, refusal)] => refusal.clone(),
        other => format!("{other:?}"),
    }
}

async fn half_open_crowd(addr: SocketAddr, count: u64, frame_timeout: Duration) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&[9, 0, 0]).await.expect("write");
        held.push(stream);
    }
    let began = Instant::now();
    let mut fresh = TcpStream::connect(addr).await.expect("connect");
    // At capacity the ping may be refused before the server reads it: the
    // server lingers 20 ms draining it so the refusal arrives, but on a
    // loaded machine the ping can come later and the close resets it.
    // Refused either way; what must hold is the second probe below.
    let _ = fresh.write_all(&common::ping(1)).await;
    let answer = tokio::time::timeout(Duration::from_secs(2), probe_at_capacity(&mut fresh))
        .await
        .expect("an answer within 2 s");
    assert!(
        answer == "pong" || answer == "error TooManyConnections" || answer == "closed",
        "{answer:?} after {:?}",
        began.elapsed()
    );
    // Once the frame timeout has passed, the half-open ones are gone.
    tokio::time::sleep(frame_timeout + Duration::from_millis(500)).await;
    let mut fresh = TcpStream::connect(addr).await.expect("connect");
    fresh.write_all(&common::ping(2)).await.expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(2), read_responses(&mut fresh, 1))
        .await
        .expect("an answer within 2 s");
    assert_eq!(answer, vec![(2, "pong".to_owned())]);
    // Every one of them was refused or timed out.
    let ended =
        info_figure(addr, "connections_rejected").await + info_figure(addr, "frame_timeouts").await;
    assert!(ended >= count, "{ended} of {count} refused or timed out");
    held
}

#[test]
fn half_open_connections_past_the_limit_do_not_lock_out_a_new_client() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config_file(
        dir.path(),
        "[server]\nmax_connections = 50\nframe_read_timeout_ms = 1000\n",
    );
    let (mut child, addr) =
        start_server(&dir.path().join("data"), &["--config", &config]).expect("start");
    let rt = runtime();
    let held = rt.block_on(async move {
        let held = half_open_crowd(addr, 60, Duration::from_millis(1000)).await;
        // Hold a new crowd while the server is told to stop.
        let mut again = Vec::new();
        for _ in 0..60 {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(&[9, 0]).await.expect("write");
            again.push(stream);
        }
        (held, again)
    });
    terminate_and_wait(&mut child, Duration::from_secs(15));
    drop(held);
}

#[test]
fn frames_being_read_reserve_their_length_so_request_memory_stays_bounded() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config_file(
        dir.path(),
        "[server]\nrequest_bytes_total_max = 9437184\n[limits]\nframe_bytes_max = 9437184\n",
    );
    let (mut child, addr) =
        start_server(&dir.path().join("data"), &["--config", &config]).expect("start");
    let rt = runtime();
    rt.block_on(async move {
        let value = "v".repeat(6 * 1024 * 1024);
        let (frame_a, frame_b) = (set_get(1, "a", Some(&value)), set_get(2, "b", Some(&value)));
        let half = frame_a.len() / 2;
        let mut a = TcpStream::connect(addr).await.expect("connect");
        let mut b = TcpStream::connect(addr).await.expect("connect");
        a.write_all(&frame_a[..half]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // B's frame does not fit beside A's: its bytes wait in the kernel.
        let _ =
            tokio::time::timeout(Duration::from_millis(500), b.write_all(&frame_b[..half])).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let held = info_figure(addr, "request_bytes").await;
        assert!(
            held <= 9437184 + 64 * 1024,
            "{held} request bytes held, over the budget"
        );
        a.write_all(&frame_a[half..]).await.expect("write");
        assert_eq!(read_responses(&mut a, 1).await.len(), 1, "A is answered");
        // With A answered, B's frame is read and answered too.
        b.write_all(&frame_b[half..]).await.expect("write");
        let answer = tokio::time::timeout(Duration::from_secs(5), read_responses(&mut b, 1))
            .await
            .expect("B is answered once A's bytes are given back");
        assert_eq!(answer[0].0, 2);
        settles(addr, Duration::from_secs(2)).await;
        // Only the INFO request's own bytes.
        assert!(info_figure(addr, "request_bytes").await <= 64);
    });
    terminate_and_wait(&mut child, Duration::from_secs(15));
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config_file(dir.path(), "[server]\nidle_timeout_ms = 300\n");
    let (mut child, addr) =
        start_server(&dir.path().join("data"), &["--config", &config]).expect("start");
    let rt = runtime();
    rt.block_on(async move {
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        let mut busy = TcpStream::connect(addr).await.expect("connect");
        for id in 1..=10 {
            busy.write_all(&common::ping(id)).await.expect("write");
            assert_eq!(read_responses(&mut busy, 1).await.len(), 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A second of pings 100 ms apart kept `busy` open; `idle` is gone.
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(1), {
            use tokio::io::AsyncReadExt;
            idle.read(&mut byte)
        })
        .await
        .expect("closed within a second");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        busy.write_all(&common::ping(11)).await.expect("write");
        assert_eq!(
            read_responses(&mut busy, 1).await,
            vec![(11, "pong".to_owned())]
        );
        assert!(info_figure(addr, "idle_timeouts").await >= 1);
    });
    terminate_and_wait(&mut child, Duration::from_secs(15));
}

/// The soft limit on open files of this process (Linux `/proc`).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn eleven_hundred_half_open_connections_do_not_lock_out_a_new_client() {
    // 1,100 sockets here and as many in the server (a child, with the same
    // limits): the scaled-down test above covers machines that allow less.
    if open_files_limit() < 2_500 {
        eprintln!(
            "open files limited to {}: covered at a smaller scale by half_open_connections_past_the_limit_do_not_lock_out_a_new_client",
            open_files_limit()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config_file(dir.path(), "[server]\nframe_read_timeout_ms = 2000\n");
    let (mut child, addr) =
        start_server(&dir.path().join("data"), &["--config", &config]).expect("start");
    let rt = runtime();
    let held = rt.block_on(half_open_crowd(addr, 1_100, Duration::from_millis(2_000)));
    terminate_and_wait(&mut child, Duration::from_secs(15));
    drop(held);
}
