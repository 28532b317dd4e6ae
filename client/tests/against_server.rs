//! The client against a real server on loopback: every command, pipelined
//! concurrent calls on one connection, typed errors, and `Closed` once the
//! server is gone.

use futures::future::join_all;
use jubilant_client::{ClientError, ErrorCode};
use jubilant_core::db::{Durability, Value};
use jubilant_core::record::ValueType;
use jubilant_core::txn::{Mode, OpResult, Ttl, Txn};
use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;

fn config(dir: &std::path::Path) -> Config {
    Config::from_toml("[server]\nport = 0\n[resp]\nlisten = \"off\"")
        .expect("valid")
        .with_overrides(Some(dir.to_path_buf()), None)
        .expect("valid")
}

/// A server on loopback with its data in `dir`, and a client of it.
async fn started(dir: &std::path::Path) -> (runtime::Running<RealEnv>, jubilant_client::Client) {
    let server = runtime::start(RealEnv::current(), config(dir))
        .await
        .expect("start");
    let client = jubilant_client::connect(server.local_addr())
        .await
        .expect("connect");
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_round_trips_and_calls_pipeline() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, client) = started(dir.path()).await;

    client.ping().await.expect("ping");
    client.set("greeting", "hello").await.expect("set");
    let (value, revision) = client.get("greeting").await.expect("get").expect("found");
    assert_eq!(value, Value::from("hello"));
    assert!(revision > 0);
    assert_eq!(client.get("absent").await.expect("get"), None);
    assert_eq!(client.add("counter", 5).await.expect("add"), 5);
    assert_eq!(client.add("counter", -2).await.expect("add"), 3);
    assert_eq!(client.ttl("counter").await.expect("ttl"), Ttl::NoExpiry);
    assert!(client.expire("counter", 60_000).await.expect("expire"));
    assert!(matches!(client.ttl("counter").await.expect("ttl"), Ttl::Ms(ms) if ms <= 60_000));
    assert!(client.persist("counter").await.expect("persist"));
    client
        .set_ttl("short", Value::Bytes(vec![1, 2, 3]), 60_000)
        .await
        .expect("set with TTL");
    let lsn = client
        .set_with("big", Value::Bytes(vec![7; 100_000]), Durability::Sync)
        .await
        .expect("a value-log value");
    assert!(lsn > revision);
    assert_eq!(
        client.get("big").await.expect("get").map(|(v, _)| v),
        Some(Value::Bytes(vec![7; 100_000]))
    );
    assert!(client.del("greeting").await.expect("del"));
    assert!(!client.del("greeting").await.expect("del"));

    // Many calls in flight on one connection, answered by id.
    let calls = (0..200i64).map(|i| {
        let client = client.clone();
        async move {
            client.set(&format!("k{i}"), i).await.expect("set");
            client.get(&format!("k{i}")).await.expect("get")
        }
    });
    for (i, found) in join_all(calls).await.into_iter().enumerate() {
        assert_eq!(found.map(|(v, _)| v), Some(Value::Int(i as i64)));
    }

    // A guarded transfer whose ASSERT fails reports op, type and revision.
    let mut txn = Txn::new();
    let a = txn.key("k1", Mode::RW);
    txn.assert_revision_eq(a, 1).add(a, 1);
    match client.transaction(&txn).await {
        Err(ClientError::Server {
            code,
            op,
            found_type,
            revision,
            ..
        }) => {
            assert_eq!(code, ErrorCode::AssertFailed);
            assert_eq!(op, Some(0));
            assert_eq!(found_type, Some(ValueType::Int64));
            assert!(revision > 1);
        }
        other => panic!("expected AssertFailed, got {other:?}"),
    }
    let error = client.add("big", 1).await.expect_err("not an int");
    assert!(
        matches!(
            error,
            ClientError::Server {
                code: ErrorCode::NotAnInt,
                ..
            }
        ),
        "{error}"
    );
    let mut txn = Txn::new();
    let r = txn.key("k1", Mode::R);
    txn.get(r).add(r, 1);
    let error = client.transaction(&txn).await.expect_err("write to R");
    assert!(
        matches!(
            error,
            ClientError::Server {
                code: ErrorCode::WriteToReadKey,
                op: Some(1),
                ..
            }
        ),
        "{error}"
    );
    let mut txn = Txn::new();
    let a = txn.key("k1", Mode::RW);
    txn.get(a).add(a, 10);
    let outcome = client.transaction(&txn).await.expect("transaction");
    assert_eq!(outcome.results[1], OpResult::Add(11));

    let info = client.info().await.expect("info");
    assert!(info.starts_with("# Server\n"), "{info}");
    assert!(info.contains("\n# Vlog\n"), "{info}");
    assert!(client.checkpoint().await.expect("checkpoint") >= outcome.lsn);

    server.shutdown().await.expect("clean shutdown");
    let error = client.ping().await.expect_err("the server is gone");
    assert!(matches!(error, ClientError::Closed(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_compare_and_swap_lose_no_increment_over_the_network() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, client) = started(dir.path()).await;
    let revision = client.set("hits", 0i64).await.expect("set");
    assert_eq!(
        client.get("hits").await.expect("get").map(|(_, r)| r),
        Some(revision),
        "set answers the revision get reports"
    );
    // Eight updaters on one pipelined connection, colliding: a lost
    // increment shows as a total under 80.
    let updaters = (0..8).map(|_| {
        let client = client.clone();
        async move {
            for _ in 0..10 {
                client
                    .update("hits", |old| {
                        Some(Value::Int(old.and_then(Value::as_int).unwrap_or(0) + 1))
                    })
                    .await
                    .expect("update");
            }
        }
    });
    join_all(updaters).await;
    let (value, revision) = client.get("hits").await.expect("get").expect("found");
    assert_eq!(value, Value::Int(80), "no increment lost");
    let swapped = client
        .compare_and_swap("hits", revision, Some(Value::Int(0)))
        .await
        .expect("swap at the revision read");
    let stale = client
        .compare_and_swap("hits", revision, Some(Value::Int(99)))
        .await;
    assert!(
        matches!(stale, Err(jubilant_core::db::UpdateError::Conflict { found, .. }) if found == swapped.revision),
        "{stale:?}"
    );
    server.shutdown().await.expect("clean shutdown");
}
