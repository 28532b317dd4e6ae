//! The production environment on real temporary directories and sockets.

use std::net::SocketAddr;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::env::{Clock, File, Fs, Listener, Net, OpenMode, Spawn};
use jubilant_core::log::{Log, LogConfig};
use jubilant_io_real::RealEnv;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn files_write_read_sync_and_grow() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let env = RealEnv::current();
        let path = dir.path().join("f");
        let file = env.open(&path, OpenMode::CreateNew).await.expect("create");
        file.write_at(4, b"data").await.expect("write past the end");
        file.sync_data().await.expect("fdatasync");
        assert_eq!(file.len().await.expect("len"), 8);
        assert_eq!(
            file.read_at(0, 100).await.expect("read"),
            b"\0\0\0\0data",
            "short read at EOF, zeros in the gap"
        );
        file.set_len(2).await.expect("truncate");
        assert_eq!(file.len().await.expect("len"), 2);
        let again = env
            .open(&path, OpenMode::CreateNew)
            .await
            .expect_err("exists");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        let missing = env
            .open(&dir.path().join("nope"), OpenMode::Existing)
            .await
            .expect_err("missing");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn directories_list_rename_remove_and_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let env = RealEnv::current();
        let sub = dir.path().join("a/b");
        env.create_dir_all(&sub).await.expect("mkdir -p");
        for name in ["z", "x", "y"] {
            env.open(&sub.join(name), OpenMode::CreateNew)
                .await
                .expect("create");
        }
        env.create_dir_all(&sub.join("subdir"))
            .await
            .expect("nested dir");
        env.rename(&sub.join("z"), &sub.join("w"))
            .await
            .expect("rename");
        env.remove(&sub.join("x")).await.expect("remove");
        env.sync_dir(&sub).await.expect("fsync dir");
        assert_eq!(
            env.list(&sub).await.expect("list"),
            ["w", "y"],
            "sorted, files only"
        );
    });
}

#[test]
fn a_locked_directory_refuses_a_second_lock_until_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let env = RealEnv::current();
        let lock = env.lock_dir(dir.path()).await.expect("first lock");
        let err = env.lock_dir(dir.path()).await.expect_err("second lock");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        drop(lock);
        env.lock_dir(dir.path()).await.expect("lock after release");
    });
}

#[test]
fn clocks_advance_and_sleep_waits() {
    runtime().block_on(async {
        let env = RealEnv::current();
        let start = env.now_mono();
        env.sleep(Duration::from_millis(20)).await;
        assert!(env.now_mono().saturating_since(start) >= Duration::from_millis(20));
        assert!(
            env.now_wall_ms() > 1_700_000_000_000,
            "the wall clock is in Unix milliseconds"
        );
    });
}

#[test]
fn spawned_tasks_return_values_and_propagate_panics() {
    runtime().block_on(async {
        let env = RealEnv::current();
        assert_eq!(env.spawn("adder", async { 40 + 2 }).await, 42);
    });
    let caught = std::panic::catch_unwind(|| {
        runtime().block_on(async {
            let env = RealEnv::current();
            env.spawn("panicker", async { panic!("boom") }).await;
        })
    });
    assert!(
        caught.is_err(),
        "the task's panic reaches the awaiting task"
    );
}

#[test]
fn tcp_echo_over_loopback() {
    runtime().block_on(async {
        let env = RealEnv::current();
        let listener = env
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_ne!(addr.port(), 0, "the real port is reported");
        let server = env.spawn("echo", async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 5];
            stream.read_exact(&mut buf).await.expect("read");
            stream.write_all(&buf).await.expect("write");
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut client, b"hello")
            .await
            .expect("send");
        let mut back = [0u8; 5];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut back)
            .await
            .expect("receive");
        assert_eq!(&back, b"hello");
        server.await;
    });
}

#[test]
fn the_log_runs_on_real_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = dir.path().join("wal");
    let mut config = LogConfig::new(&wal);
    config.block_bytes = 512;
    config.segment_bytes = 4096;
    config.record_bytes_max = 256;
    runtime().block_on(async {
        let env = RealEnv::current();
        let (mut log, report) = Log::open(env.clone(), config.clone(), |_, _| {})
            .await
            .expect("create");
        assert!(report.created);
        for i in 0..100u32 {
            log.append(format!("record {i} {:>60}", "padding").as_bytes())
                .await
                .expect("append");
        }
        assert_eq!(log.sync().await.expect("sync"), 100);
        assert!(log.segment_ids().count() > 1, "4 KiB segments roll over");
        drop(log);
        let mut seen = Vec::new();
        let (_, report) = Log::open(env, config, |pos, p| seen.push((pos.lsn, p.to_vec())))
            .await
            .expect("reopen");
        assert_eq!(report.records, 100);
        assert_eq!(seen.len(), 100);
        assert_eq!(
            seen[99],
            (100, format!("record 99 {:>60}", "padding").into_bytes())
        );
    });
}
