//! One `Kv` trait, two stores: the same code against the embedded `Db`
//! and against a remote server through `Client` answers the same.

use jubilant::{Kv, Mode, Txn, Value};
use jubilant_io_real::RealEnv;
use jubilant_server::config::Config;
use jubilant_server::runtime;

/// Everything a `Kv` offers, checked the same way on any store.
async fn exercise(store: &impl Kv) -> Vec<(Vec<u8>, Value)> {
    let revision = store.set("k:1", "one").await.expect("set");
    assert_eq!(
        store.get("k:1").await.expect("get"),
        Some((Value::from("one"), revision)),
        "set answers the revision get reports"
    );
    assert_eq!(store.get("k:missing").await.expect("get"), None);
    for i in 2..=9 {
        store.set(format!("k:{i}"), i).await.expect("set");
    }
    store.set("other", 0).await.expect("set");
    assert!(store.del("k:9").await.expect("del"));
    assert!(!store.del("k:9").await.expect("del"));

    let bump =
        |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
    let updated = store.update("k:2", bump).await.expect("update");
    assert_eq!(updated.value, Some(Value::Int(3)));
    let swapped = store.compare_and_swap("k:3", 0, Some(Value::Int(0))).await;
    assert!(
        matches!(swapped, Err(jubilant::Error::Conflict { found, .. }) if found > 0),
        "{swapped:?}"
    );

    let mut txn = Txn::new();
    let (a, b) = (txn.key("k:4", Mode::RW), txn.key("k:5", Mode::RW));
    txn.add(a, -4).add(b, 4);
    assert!(store.transaction(&txn).await.expect("transaction").lsn > revision);

    // Both ends of a prefix range, in small pages, meet in the middle.
    let mut range = store.prefix("k:").page_keys(2);
    let (mut low, mut high) = (Vec::new(), Vec::new());
    loop {
        match range.next().await {
            Some(entry) => low.push(entry.expect("page")),
            None => break,
        }
        match range.next_back().await {
            Some(entry) => high.push(entry.expect("page")),
            None => break,
        }
    }
    high.reverse();
    low.extend(high);
    let all = store.range("k:".."k;").collect().await.expect("range");
    assert_eq!(low, all);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_db_and_the_remote_client_answer_alike() {
    let embedded_dir = tempfile::tempdir().expect("temporary directory");
    let db = jubilant::open(embedded_dir.path()).await.expect("open");
    let embedded = exercise(&db).await;

    let server_dir = tempfile::tempdir().expect("temporary directory");
    let config = Config::from_toml("[server]\nport = 0\n[resp]\nlisten = \"off\"")
        .expect("valid")
        .with_overrides(Some(server_dir.path().to_path_buf()), None)
        .expect("valid");
    let server = runtime::start(RealEnv::current(), config)
        .await
        .expect("start");
    let client = jubilant::connect(server.local_addr())
        .await
        .expect("connect");
    let remote = exercise(&client).await;

    assert_eq!(embedded, remote);
    assert_eq!(
        embedded.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        (1..=8)
            .map(|i| format!("k:{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    server.shutdown().await.expect("clean shutdown");
    db.close().await.expect("close");
}

#[test]
fn a_blocking_snapshot_holds_while_another_thread_writes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = jubilant::blocking::open(dir.path()).expect("open");
    for i in 0..100 {
        db.set(format!("n:{i:03}"), i).expect("set");
    }
    let snapshot = db.snapshot().expect("snapshot");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..100 {
                db.set(format!("n:{i:03}"), -1).expect("overwrite");
            }
            db.del("n:050").expect("del");
        });
    });
    let values: Vec<i64> = snapshot
        .prefix("n:")
        .map(|entry| entry.expect("page").1.as_int().expect("an integer"))
        .collect();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
    let newest: Vec<i64> = db
        .prefix("n:")
        .rev()
        .take(2)
        .map(|entry| entry.expect("page").1.as_int().expect("an integer"))
        .collect();
    assert_eq!(newest, vec![-1, -1]);
    assert_eq!(db.stats().snapshots.live, 1);
    drop(snapshot);
    assert_eq!(db.stats().snapshots.live, 0);
    db.close().expect("close");
}
