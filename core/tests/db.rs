//! The embedded database over the simulated disk: group commit and its
//! durability classes, recovery, checkpoints and WAL segment removal,
//! failure discipline and disk full.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use jubilant_core::db::{Db, DbError, DbOptions, Durability, Value, Write};
use jubilant_core::store::{FindingKind, validate_dir};
use jubilant_io_sim::{Fault, FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

/// Small segments keep the simulated disk small and make rollovers happen
/// (a value is logged in one record, so it is smaller still).
fn options() -> DbOptions {
    DbOptions {
        wal_segment_bytes: 64 * 1024,
        value_bytes_max: 32 * 1024,
        cache_bytes: 256 * 4096,
        ..DbOptions::default()
    }
}

fn try_open(world: &World) -> Result<Arc<Db<SimEnv>>, DbError> {
    let env = world.env(N);
    world.block_on(N, async move {
        Db::open(env, dir(), options()).await.map(Arc::new)
    })
}

fn open(world: &World) -> Arc<Db<SimEnv>> {
    try_open(world).expect("open the database")
}

fn on<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    world: &World,
    db: &Arc<Db<SimEnv>>,
    f: impl FnOnce(Arc<Db<SimEnv>>) -> F,
) -> T {
    world.block_on(N, f(Arc::clone(db)))
}

fn get(world: &World, db: &Arc<Db<SimEnv>>, key: &str) -> Option<Value> {
    let key = key.to_owned();
    on(
        world,
        db,
        |db| async move { db.get(&key).await.expect("get") },
    )
}

fn set(world: &World, db: &Arc<Db<SimEnv>>, key: &str, value: &str) -> Result<u64, DbError> {
    let (key, value) = (key.to_owned(), value.to_owned());
    on(world, db, |db| async move { db.set(&key, value).await })
}

/// Sets `key-i` for every `i` concurrently; returns each outcome.
fn set_concurrently(
    world: &World,
    db: &Arc<Db<SimEnv>>,
    keys: std::ops::Range<u64>,
    durability: Durability,
) -> Vec<Result<u64, DbError>> {
    on(world, db, |db| async move {
        join_all(keys.map(|i| {
            let db = Arc::clone(&db);
            async move { db.set_with(&format!("key-{i}"), i as i64, durability).await }
        }))
        .await
    })
}

fn wal_segments(world: &World) -> usize {
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::Fs;
        let names = env.list(&dir()).await.expect("list");
        names
            .iter()
            .filter(|name| name.starts_with("wal-") && name.ends_with(".log"))
            .count()
    })
}

#[test]
fn a_lone_committer_pays_one_fsync_per_commit() {
    let world = World::new(1, FaultConfig::none());
    let db = open(&world);
    let mut lsns = Vec::new();
    for i in 0..5 {
        lsns.push(set(&world, &db, &format!("k{i}"), "v").expect("set"));
    }
    // Begin, Upsert, Commit: the commit LSN is the Commit record's.
    assert_eq!(lsns, vec![3, 6, 9, 12, 15]);
    let stats = db.stats().wal;
    assert_eq!((stats.commits, stats.batches, stats.fsyncs), (5, 5, 5));
}

#[test]
fn concurrent_committers_share_fsyncs_and_every_acknowledged_commit_survives_a_power_loss() {
    let world = World::new(2, FaultConfig::none());
    let db = open(&world);
    let outcomes = set_concurrently(&world, &db, 0..64, Durability::Sync);
    let mut lsns: Vec<u64> = outcomes.into_iter().map(|o| o.expect("commit")).collect();
    lsns.sort_unstable();
    lsns.dedup();
    assert_eq!(lsns.len(), 64, "every commit has its own LSN");
    let stats = db.stats().wal;
    assert_eq!(stats.commits, 64);
    assert!(
        stats.fsyncs < 64 / 4,
        "64 committers took {} fsyncs",
        stats.fsyncs
    );
    assert!(stats.batch_commits_max > 4, "{stats:?}");

    drop(db);
    world.crash(N);
    let db = open(&world);
    for i in 0..64 {
        assert_eq!(get(&world, &db, &format!("key-{i}")), Some(Value::Int(i)));
    }
    assert_eq!(db.stats().recovery.txns_replayed, 64);
}

#[test]
fn async_commits_are_answered_before_the_sync_and_lost_only_as_a_suffix() {
    let world = World::new(3, FaultConfig::none());
    let db = open(&world);
    let answered: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    for i in 0..40u64 {
        let db = Arc::clone(&db);
        let answered = Arc::clone(&answered);
        world.spawn(N, "committer", async move {
            if let Ok(lsn) = db
                .set_with(&format!("key-{i}"), i as i64, Durability::Async)
                .await
            {
                answered.lock().expect("lock").push((lsn, i));
            }
        });
    }
    // Lose power, with every unsynced write lost, while batches are still
    // being written.
    for _ in 0..60 {
        world.step();
    }
    let mut acknowledged = answered.lock().expect("lock").clone();
    acknowledged.sort_unstable();
    let mut faults = FaultConfig::none();
    faults.set(Fault::WriteLost, 1.0);
    world.set_faults(faults);
    drop(db);
    world.crash(N);
    world.set_faults(FaultConfig::none());
    let db = open(&world);
    let found: Vec<bool> = acknowledged
        .iter()
        .map(|(_, i)| get(&world, &db, &format!("key-{i}")).is_some())
        .collect();
    assert!(
        !acknowledged.is_empty(),
        "nothing was answered before the crash"
    );
    assert!(
        found.iter().any(|kept| !kept),
        "the power loss lost no acknowledged async commit: the test did not test"
    );
    // The acknowledged commits that survived are the first ones in commit
    // (LSN) order: a suffix was lost, never one in the middle.
    let kept = found.iter().take_while(|kept| **kept).count();
    assert!(
        found[kept..].iter().all(|kept| !kept),
        "a commit was lost before one that survived: {acknowledged:?} {found:?}"
    );
}

#[test]
fn a_failed_fsync_fails_every_waiting_commit_and_every_later_one_until_reopened() {
    let world = World::new(4, FaultConfig::none());
    let db = open(&world);
    set(&world, &db, "before", "1").expect("set");
    let mut faults = FaultConfig::none();
    faults.set(Fault::FsyncError, 1.0);
    world.set_faults(faults);
    let outcomes = set_concurrently(&world, &db, 0..8, Durability::Sync);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(DbError::StorageFailed(_)))),
        "a commit was acknowledged without a durable sync: {outcomes:?}"
    );
    world.set_faults(FaultConfig::none());
    let later = set(&world, &db, "later", "x");
    assert!(matches!(later, Err(DbError::StorageFailed(_))), "{later:?}");
    assert_eq!(db.stats().wal.commits, 1);
    // Health says so, with the reason the writes get.
    let health = db.health();
    assert_eq!(health.failure, db.failure());
    assert!(health.failure.is_some_and(|reason| !reason.is_empty()));
    // Reads of what is durable keep working.
    assert_eq!(get(&world, &db, "before"), Some(Value::from("1")));

    drop(db);
    world.kill(N);
    let db = open(&world);
    assert_eq!(get(&world, &db, "before"), Some(Value::from("1")));
    set(&world, &db, "after", "2").expect("writes work again after reopening");
}

#[test]
fn health_counts_the_wal_since_the_last_checkpoint_and_its_age() {
    let world = World::new(6, FaultConfig::none());
    let db = open(&world);
    let fresh = db.health();
    assert_eq!(fresh.failure, None);
    assert_eq!(fresh.durable_lsn_lag, 0);
    let before = fresh.wal_bytes_since_checkpoint;
    for i in 0..20 {
        set(&world, &db, &format!("k{i}"), "a value of some length").expect("set");
    }
    let written = db.health();
    assert!(
        written.wal_bytes_since_checkpoint >= before + 20 * 22,
        "{fresh:?} then {written:?}"
    );
    assert_eq!(
        written.durable_lsn_lag, 0,
        "sync commits are durable when answered"
    );
    on(&world, &db, |db| async move { db.checkpoint().await }).expect("checkpoint");
    let checkpointed = db.health();
    assert!(
        checkpointed.wal_bytes_since_checkpoint < written.wal_bytes_since_checkpoint,
        "{written:?} then {checkpointed:?}"
    );
    assert!(
        checkpointed
            .since_checkpoint
            .is_some_and(|age| age < std::time::Duration::from_millis(100)),
        "{checkpointed:?}"
    );
    let env = world.env(N);
    on(&world, &db, |_| async move {
        use jubilant_core::env::Clock;
        env.sleep(std::time::Duration::from_millis(1500)).await;
    });
    let aged = db
        .health()
        .since_checkpoint
        .expect("a checkpoint was written");
    assert!(aged >= std::time::Duration::from_millis(1500), "{aged:?}");
    // An async commit may be lag (in LSNs) until its batch is durable; a
    // sync commit after it makes everything before it durable.
    let lsn = on(&world, &db, |db| async move {
        db.set_with("async", 1, Durability::Async).await
    })
    .expect("async set");
    assert!(db.health().durable_lsn_lag <= lsn);
    set(&world, &db, "sync", "1").expect("set");
    assert_eq!(db.health().durable_lsn_lag, 0);
}

#[test]
fn recovery_replays_commits_after_the_checkpoint_and_replaying_twice_changes_nothing() {
    let world = World::new(5, FaultConfig::none());
    let db = open(&world);
    for i in 0..20 {
        set(&world, &db, &format!("k{i:02}"), "old").expect("set");
    }
    let report = on(&world, &db, |db| async move {
        db.checkpoint().await.expect("checkpoint")
    });
    assert!(report.wrote);
    for i in 10..30 {
        set(&world, &db, &format!("k{i:02}"), "new").expect("set");
    }
    let deleted = on(&world, &db, |db| async move {
        db.del("k00").await.expect("del")
    });
    assert!(deleted);
    let absent = on(&world, &db, |db| async move {
        db.del("nope").await.expect("del")
    });
    assert!(!absent);
    let expected = |world: &World, db: &Arc<Db<SimEnv>>| {
        assert_eq!(get(world, db, "k00"), None);
        for i in 1..30 {
            let want = if i < 10 { "old" } else { "new" };
            assert_eq!(
                get(world, db, &format!("k{i:02}")),
                Some(Value::from(want)),
                "k{i}"
            );
        }
    };
    drop(db);
    world.crash(N);
    let db = open(&world);
    expected(&world, &db);
    let recovery = db.stats().recovery;
    assert_eq!(recovery.checkpoint_lsn, report.checkpoint_lsn);
    assert_eq!(
        recovery.txns_replayed, 22,
        "20 sets and 2 deletes after the checkpoint"
    );
    // A crash right after recovery (before any checkpoint): the same again.
    drop(db);
    world.crash(N);
    let db = open(&world);
    expected(&world, &db);
    assert_eq!(db.stats().recovery.txns_replayed, 22);
    assert!(
        on(&world, &db, |db| async move {
            db.validate().await.expect("validate")
        })
        .is_ok()
    );
}

#[test]
fn checkpoints_remove_the_wal_segments_they_cover_and_close_leaves_nothing_to_replay() {
    let world = World::new(6, FaultConfig::none());
    // A cache the writes do not press on, so no checkpoint runs before the
    // explicit one.
    let options = DbOptions {
        cache_bytes: 1024 * 4096,
        ..options()
    };
    let env = world.env(N);
    let db = world.block_on(N, async move {
        Db::open(env, dir(), options)
            .await
            .map(Arc::new)
            .expect("open")
    });
    let value = "v".repeat(200);
    for i in 0..1000 {
        set(&world, &db, &format!("k{i:04}"), &value).expect("set");
    }
    let before = wal_segments(&world);
    assert!(
        before > 3,
        "1000 writes of 200 bytes fill several 64 KiB segments"
    );
    let log = db.stats().wal.log;
    assert!(
        log.rollovers_prepared_ahead > 0 && log.rollovers_prepared_ahead <= log.rollovers,
        "the next segment is prepared in the background: {log:?}"
    );
    on(&world, &db, |db| async move {
        db.checkpoint().await.expect("checkpoint")
    });
    let after = wal_segments(&world);
    assert!(
        after == 1 || (after == 2 && log.rollovers_prepared_ahead > 0),
        "only the active segment is still needed, and perhaps the next, \
         installed ahead ({after} segment files)"
    );
    // `before` and `after` count files, the spare installed ahead among
    // them whenever there is one.
    assert!(db.stats().wal.log.segments_removed >= (before - after) as u64);
    let db = Arc::into_inner(db).expect("one handle");
    world.block_on(N, async move { db.close().await.expect("close") });
    let db = open(&world);
    assert_eq!(db.stats().recovery.txns_replayed, 0);
    assert_eq!(get(&world, &db, "k0999"), Some(Value::from(value.as_str())));
}

#[test]
fn disk_full_is_a_definite_refusal_and_writes_succeed_once_space_is_back() {
    let world = World::new(7, FaultConfig::none());
    let db = open(&world);
    set(&world, &db, "a", "1").expect("set");
    let mut faults = FaultConfig::none();
    faults.set(Fault::DiskFull, 0.3);
    world.set_faults(faults);
    let (mut applied, mut refused) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let key = format!("k{i:02}");
        match set(&world, &db, &key, "v") {
            Ok(_) => applied.push(key),
            Err(DbError::DiskFull(_)) => refused.push(key),
            Err(other) => panic!("disk full must not fail the database: {other}"),
        }
    }
    assert!(
        !refused.is_empty() && !applied.is_empty(),
        "the test did not test"
    );
    for key in &refused {
        assert_eq!(
            get(&world, &db, key),
            None,
            "a refused write is not applied"
        );
    }
    world.set_faults(FaultConfig::none());
    set(&world, &db, "c", "3").expect("writes succeed once space is back");
    assert_eq!(db.stats().wal.commits_disk_full, refused.len() as u64);

    drop(db);
    world.crash(N);
    let db = open(&world);
    for key in &applied {
        assert_eq!(get(&world, &db, key), Some(Value::from("v")));
    }
    for key in &refused {
        assert_eq!(
            get(&world, &db, key),
            None,
            "a refused write never comes back"
        );
    }
    assert_eq!(get(&world, &db, "c"), Some(Value::from("3")));
}

#[test]
fn a_disk_that_stays_full_refuses_writes_and_checkpoints_without_failing_the_database() {
    let mut faults = FaultConfig::none();
    faults.set(Fault::DiskCow, 1.0);
    let world = World::new(8, faults);
    let db = open(&world);
    let before: Vec<String> = (0..50).map(|i| format!("before-{i:03}")).collect();
    for key in &before {
        set(&world, &db, key, "v").expect("set");
    }
    // Another tenant takes all but one block; on a copy-on-write disk even
    // the preallocated WAL segment cannot be rewritten.
    world.fill_disk(N, 4096, false);
    let mut refused = 0;
    for i in 0..200 {
        match set(&world, &db, &format!("during-{i:03}"), "v") {
            Ok(_) => {}
            Err(DbError::DiskFull(_)) => refused += 1,
            Err(other) => panic!("a full disk must not fail the database: {other}"),
        }
    }
    assert!(refused > 0, "the disk never filled up");
    match on(&world, &db, |db| async move { db.checkpoint().await }) {
        Err(DbError::DiskFull(_)) => {}
        Ok(report) => panic!("a checkpoint found room on a full disk: {report:?}"),
        Err(other) => panic!("a checkpoint without room must wait, not fail: {other}"),
    }
    assert_eq!(db.failure(), None, "nothing failed");
    assert!(db.stats().store.checkpoints_out_of_space >= 1);
    assert!(world.give_back_space(N));
    set(&world, &db, "after", "v").expect("writes succeed once space is back");
    let report = on(&world, &db, |db| async move { db.checkpoint().await }).expect("checkpoint");
    assert!(report.wrote);
    assert_eq!(db.failure(), None);

    drop(db);
    world.crash(N);
    let db = open(&world);
    for key in before.iter().map(String::as_str).chain(["after"]) {
        assert_eq!(get(&world, &db, key), Some(Value::from("v")), "{key}");
    }
}

#[test]
fn atomic_writes_and_typed_values_round_trip() {
    let world = World::new(8, FaultConfig::none());
    let db = open(&world);
    let lsn = on(&world, &db, |db| async move {
        let writes = vec![
            Write::Set {
                key: "s".into(),
                value: Value::from("text"),
            },
            Write::Set {
                key: "b".into(),
                value: Value::from(vec![0u8, 255]),
            },
            Write::Set {
                key: "i".into(),
                value: Value::Int(-7),
            },
            Write::Del { key: "gone".into() },
        ];
        db.write(writes, Durability::Async).await.expect("write")
    });
    assert_eq!(lsn, 6, "Begin, 4 changes, Commit");
    assert_eq!(get(&world, &db, "s"), Some(Value::from("text")));
    assert_eq!(get(&world, &db, "b"), Some(Value::Bytes(vec![0, 255])));
    assert_eq!(get(&world, &db, "i"), Some(Value::Int(-7)));
}

/// `count` sets of `key-j` to `value_bytes` bytes of `fill`: one commit's
/// worth of WAL far larger than the tests' 64 KiB segments.
fn big_commit(count: usize, value_bytes: usize, fill: u8) -> Vec<Write> {
    (0..count)
        .map(|j| Write::Set {
            key: format!("big-{j:04}").into_bytes(),
            value: Value::Bytes(vec![fill; value_bytes]),
        })
        .collect()
}

fn write_big(world: &World, db: &Arc<Db<SimEnv>>, fill: u8) -> Result<u64, DbError> {
    on(world, db, move |db| async move {
        db.write(big_commit(600, 400, fill), Durability::Sync).await
    })
}

/// What every `big-j` key holds: one fill byte for all of them (a commit
/// is all or nothing), or none.
fn big_fill(world: &World, db: &Arc<Db<SimEnv>>) -> Option<u8> {
    let fills: Vec<Option<u8>> = (0..600)
        .map(|j| match get(world, db, &format!("big-{j:04}")) {
            None => None,
            Some(Value::Bytes(bytes)) => {
                assert_eq!(bytes.len(), 400);
                Some(bytes[0])
            }
            Some(other) => panic!("big-{j:04} holds {other:?}"),
        })
        .collect();
    assert!(
        fills.iter().all(|fill| *fill == fills[0]),
        "a commit was applied in part: {fills:?}"
    );
    fills[0]
}

/// A commit larger than a WAL segment (about 290 KB into 64 KiB segments)
/// spans segments: it is acknowledged, survives a power loss whole, and
/// the commits around it are unaffected.
#[test]
fn a_commit_larger_than_a_segment_spans_segments_and_survives_a_power_loss() {
    let world = World::new(10, FaultConfig::none());
    let db = open(&world);
    set(&world, &db, "before", "1").expect("set");
    let rollovers = db.stats().wal.log.rollovers;
    write_big(&world, &db, 7).expect("a spanning commit");
    let stats = db.stats().wal;
    assert_eq!(stats.commits_spanning, 1);
    assert!(stats.log.rollovers - rollovers >= 4, "{stats:?}");
    set(&world, &db, "after", "2").expect("set");
    drop(db);
    world.crash(N);
    let db = open(&world);
    assert_eq!(big_fill(&world, &db), Some(7));
    assert_eq!(get(&world, &db, "before"), Some(Value::from("1")));
    assert_eq!(get(&world, &db, "after"), Some(Value::from("2")));
    assert_eq!(db.stats().recovery.txns_dropped, 0);
}

/// A close compacts a file that removals left mostly free (design 5.9):
/// the tail the removal's copies went to moves down and is cut, and the
/// data survives the reopen.
#[test]
fn a_close_gives_back_the_space_a_large_removal_left() {
    let world = World::new(14, FaultConfig::none());
    let db = open(&world);
    let writes = |range: std::ops::Range<usize>, delete: bool| -> Vec<Write> {
        range
            .map(|i| {
                let key = format!("key-{i:05}").into_bytes();
                if delete {
                    Write::Del { key }
                } else {
                    Write::Set {
                        key,
                        value: Value::Bytes(vec![7; 150]),
                    }
                }
            })
            .collect()
    };
    let load = writes(0..12000, false);
    on(&world, &db, move |db| async move {
        db.write(load, Durability::Sync).await.expect("load");
        db.checkpoint().await.expect("checkpoint");
    });
    let loaded = db.stats().store.page_count;
    let removal: Vec<Write> = writes(0..12000, true).into_iter().step_by(2).collect();
    on(&world, &db, move |db| async move {
        db.write(removal, Durability::Sync).await.expect("remove");
    });
    on(&world, &db, |db| async move {
        db.checkpoint().await.expect("checkpoint");
    });
    let grown = db.stats().store.page_count;
    assert!(
        grown > loaded * 3 / 2,
        "{loaded} pages grew only to {grown}"
    );
    let db = Arc::into_inner(db).expect("one handle");
    world.block_on(N, async move { db.close().await.expect("close") });
    let db = open(&world);
    let stats = db.stats().store;
    assert!(
        stats.page_count <= loaded + loaded / 10,
        "{} pages after the close, {grown} before, {loaded} loaded",
        stats.page_count
    );
    for i in [0, 1, 2, 3, 11998, 11999] {
        let found = get(&world, &db, &format!("key-{i:05}"));
        assert_eq!(found.is_some(), i % 2 == 1, "key {i}");
    }
}

/// A close leaves no segment prepared ahead behind: the directory holds
/// the segments the log needs and nothing segment-sized besides.
#[test]
fn a_close_removes_the_segment_prepared_ahead() {
    let world = World::new(13, FaultConfig::none());
    let db = open(&world);
    let mut last = 0;
    for i in 0..40 {
        last = set(&world, &db, &format!("k{i:03}"), &"v".repeat(200)).expect("set");
    }
    assert!(db.stats().wal.log.rollovers >= 1, "the segments filled up");
    let db = Arc::into_inner(db).expect("one handle");
    world.block_on(N, async move { db.close().await.expect("close") });
    let env = world.env(N);
    let names = world.block_on(N, async move {
        use jubilant_core::env::Fs;
        env.list(&dir()).await.expect("list")
    });
    assert!(
        !names.iter().any(|name| name.ends_with(".tmp")),
        "{names:?}"
    );
    // The active segment keeps its records and a zero block, not the
    // preallocated rest; the next open writes it out to full size again.
    let segment_len = |world: &World| {
        let env = world.env(N);
        world.block_on(N, async move {
            use jubilant_core::env::{File, Fs, OpenMode};
            let names = env.list(&dir()).await.expect("list");
            let name = names
                .iter()
                .filter(|name| name.starts_with("wal-") && name.ends_with(".log"))
                .max()
                .expect("a segment")
                .clone();
            let file = env
                .open(&dir().join(name), OpenMode::Existing)
                .await
                .expect("open");
            file.len().await.expect("len")
        })
    };
    let closed = segment_len(&world);
    // The close's checkpoint covers every commit: the WAL restarted empty
    // in one segment of a block past its header.
    assert_eq!(wal_segments(&world), 1);
    assert_eq!(closed, 8 * 1024, "the closed segment keeps {closed} bytes");
    let db = open(&world);
    assert_eq!(segment_len(&world), 64 * 1024);
    for i in 0..40 {
        assert_eq!(
            get(&world, &db, &format!("k{i:03}")),
            Some(Value::from("v".repeat(200)))
        );
    }
    let after = set(&world, &db, "after", "1").expect("set");
    assert!(after > last, "revisions go on from {last}, not {after}");
    drop(db);
    world.crash(N);
    let db = open(&world);
    assert_eq!(get(&world, &db, "after"), Some(Value::from("1")));
}

/// A spanning commit whose last records never became durable (its
/// `Commit` torn, as a crash mid-write leaves it) is dropped whole at
/// recovery, though the segments before hold its other records.
#[test]
fn a_spanning_commit_whose_commit_record_is_torn_is_dropped_whole() {
    let world = World::new(11, FaultConfig::none());
    let db = open(&world);
    write_big(&world, &db, 1).expect("a spanning commit");
    write_big(&world, &db, 2).expect("a spanning commit");
    drop(db);
    world.kill(N);
    tear_last_record(&world);
    let db = open(&world);
    let recovery = db.stats().recovery;
    assert_eq!(recovery.txns_dropped, 1, "{recovery:?}");
    assert!(recovery.torn_tail.is_some());
    assert_eq!(big_fill(&world, &db), Some(1), "the first commit, whole");
}

/// A spanning commit that meets a full disk after some of its segments
/// were synced is refused definitely: what the rollovers made durable is
/// kept (its LSNs are never given out again) but never applied, recovery
/// drops it, and every acknowledged commit survives a power loss.
#[test]
fn disk_full_in_the_middle_of_a_spanning_commit_is_a_definite_refusal() {
    let mut dropped_after_rollover = false;
    for seed in 0..40 {
        let world = World::new(100 + seed, FaultConfig::none());
        let db = open(&world);
        let mut faults = FaultConfig::none();
        faults.set(Fault::DiskFull, 0.02);
        world.set_faults(faults);
        let mut last_applied = None;
        let mut refused = 0;
        for fill in 1..=6 {
            match write_big(&world, &db, fill) {
                Ok(_) => last_applied = Some(fill),
                Err(DbError::DiskFull(_) | DbError::Unavailable(_)) => refused += 1,
                Err(other) => panic!("disk full must not fail the database: {other}"),
            }
            assert_eq!(big_fill(&world, &db), last_applied, "seed {seed}");
        }
        world.set_faults(FaultConfig::none());
        let lsn = set(&world, &db, "after", "v").expect("writes succeed once space is back");
        drop(db);
        world.crash(N);
        let db = open(&world);
        assert_eq!(big_fill(&world, &db), last_applied, "seed {seed}");
        assert_eq!(get(&world, &db, "after"), Some(Value::from("v")));
        let recovery = db.stats().recovery;
        assert!(recovery.lsn_end >= lsn, "seed {seed}: {recovery:?}");
        if refused > 0 && recovery.txns_dropped > 0 {
            dropped_after_rollover = true;
            break;
        }
    }
    assert!(
        dropped_after_rollover,
        "no seed refused a commit after a rollover had synced part of it"
    );
}

/// A commit over `max_commit_bytes` is refused naming that option, and
/// writes nothing; smaller commits go on.
#[test]
fn a_commit_over_max_commit_bytes_is_refused_naming_the_option() {
    let world = World::new(12, FaultConfig::none());
    let env = world.env(N);
    let db = world.block_on(N, async move {
        let options = DbOptions {
            max_commit_bytes: 100_000,
            ..options()
        };
        Db::open(env, dir(), options).await.map(Arc::new)
    });
    let db = db.expect("open");
    match write_big(&world, &db, 1) {
        Err(DbError::TooLarge { bytes, max, limit }) => {
            assert!(bytes > max, "{bytes} <= {max}");
            assert_eq!(max, 100_000);
            assert!(limit.contains("max_commit_bytes"), "{limit}");
        }
        other => panic!("a 290 KB commit over a 100 KB bound: {other:?}"),
    }
    assert_eq!(big_fill(&world, &db), None, "nothing was written");
    set(&world, &db, "small", "fits").expect("a small commit goes on");
}

/// Keys are any bytes (SPEC 1): NUL, 0xff and invalid UTF-8 included,
/// ordered bytewise, through the WAL, a checkpoint, a large value in the
/// value log, and recovery.
#[test]
fn binary_keys_are_ordered_bytewise_and_survive_recovery() {
    let world = World::new(9, FaultConfig::none());
    let db = open(&world);
    let keys: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0x00, 0x00],
        b"a\x00b".to_vec(),
        vec![0x7f],
        vec![0xc3, 0x28],
        vec![0xff],
        vec![0xff, 0xff, 0x00],
    ];
    let written = keys.clone();
    on(&world, &db, |db| async move {
        for (i, key) in written.iter().enumerate() {
            let value = if i == 4 {
                Value::Bytes(vec![7; 4000])
            } else {
                Value::Int(i as i64)
            };
            db.set(key, value).await.expect("set");
        }
        db.checkpoint().await.expect("checkpoint");
        db.del([0xff]).await.expect("del");
    });
    drop(db);
    world.crash(N);
    let db = open(&world);
    let entries = on(&world, &db, |db| async move {
        db.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 100)
            .await
            .expect("range")
    });
    let expected: Vec<Vec<u8>> = keys.into_iter().filter(|key| key != &[0xff]).collect();
    let found: Vec<Vec<u8>> = entries.iter().map(|(key, _)| key.clone()).collect();
    assert_eq!(found, expected, "every key but the deleted one, bytewise");
    assert_eq!(entries[4].1, Value::Bytes(vec![7; 4000]));
    assert_eq!(entries[0].1, Value::Int(0));
}

#[test]
fn bad_input_is_refused_before_it_reaches_the_wal() {
    let world = World::new(9, FaultConfig::none());
    let db = open(&world);
    assert!(matches!(set(&world, &db, "", "v"), Err(DbError::Store(_))));
    let long_key = "k".repeat(10_000);
    assert!(matches!(
        set(&world, &db, &long_key, "v"),
        Err(DbError::Store(_))
    ));
    let huge = "v".repeat(options().value_bytes_max + 1);
    assert!(matches!(
        set(&world, &db, "k", &huge),
        Err(DbError::Store(_))
    ));
    assert_eq!(db.stats().wal.batches, 0, "nothing reached the WAL");
}

#[test]
fn a_missing_wal_segment_is_refused_rather_than_silently_losing_commits() {
    let world = World::new(10, FaultConfig::none());
    let db = open(&world);
    let value = "v".repeat(200);
    for i in 0..600 {
        set(&world, &db, &format!("k{i:04}"), &value).expect("set");
    }
    drop(db);
    world.kill(N);
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::Fs;
        let path = dir().join(jubilant_core::log::segment_name(1));
        env.remove(&path).await.expect("remove");
        env.sync_dir(&dir()).await.expect("sync");
    });
    let refused = try_open(&world).err();
    assert!(
        matches!(refused, Some(DbError::WalMissing(_))),
        "{refused:?}"
    );
}

#[test]
fn dirty_pages_never_outgrow_the_cache_budget_for_long() {
    // A slow disk: checkpoints take long while async committers keep going.
    let mut faults = FaultConfig::none();
    faults.set(Fault::IoLatencyUs, 3000.0);
    let world = World::new(11, faults);
    let env = world.env(N);
    let options = DbOptions {
        cache_bytes: 64 * 4096,
        // Every batch synced, as the bound below was measured: deferred
        // `async` syncs make batches larger, and a larger batch dirties
        // more pages before the writer's own checkpoint stops it.
        group_commit_max_latency_ms: 0,
        ..options()
    };
    let db = world.block_on(N, async move {
        Db::open(env, dir(), options)
            .await
            .map(Arc::new)
            .expect("open")
    });
    let mut dirty_max = 0;
    for round in 0..80u64 {
        on(&world, &db, |db| async move {
            join_all((0..32u64).map(|i| {
                let db = Arc::clone(&db);
                async move {
                    let key = format!("k{:05}", (round * 32 + i) * 7919 % 5000);
                    db.set_with(&key, "v".repeat(300), Durability::Async)
                        .await
                        .expect("set")
                }
            }))
            .await
        });
        dirty_max = dirty_max.max(db.stats().store.cache.dirty_pages * 4096);
    }
    let stats = db.stats().store;
    assert!(stats.checkpoints > 0, "{stats:?}");
    // The writer checkpoints itself after any batch that leaves dirty pages
    // filling the budget, so they exceed it by at most the pages one batch
    // dirtied: a batch holds at most the 32 committers' sets, each dirtying
    // a leaf, a few of them splitting one (this run: 95 pages of 64; without
    // that backpressure it reaches 122).
    assert!(
        dirty_max <= stats.cache.budget_bytes + 40 * 4096,
        "dirty pages reached {dirty_max} bytes of a {} budget",
        stats.cache.budget_bytes
    );
    // Before that, dirty pages over half the budget slowed the writing
    // transactions down in proportion (design 10.6), at most 2 ms each.
    let txns = db.stats().txns;
    assert!(txns.pressure_pauses > 0, "{txns:?}");
    assert!(
        txns.pressure_paused_us <= txns.pressure_pauses * 2000,
        "{txns:?}"
    );
}

#[test]
fn large_values_live_in_their_wal_records_cost_one_fsync_and_survive_crashes() {
    let world = World::new(12, FaultConfig::none());
    let db = open(&world);
    let big = |i: usize| format!("{i}-").repeat(3000);
    for i in 0..20 {
        let fsyncs = db.stats().wal.fsyncs;
        set(&world, &db, &format!("big{i:02}"), &big(i)).expect("set");
        assert_eq!(db.stats().wal.fsyncs, fsyncs + 1, "one fsync per commit");
    }
    set(&world, &db, "small", "s").expect("set");
    drop(db);
    world.crash(N);
    let db = open(&world);
    for i in 0..20 {
        assert_eq!(
            get(&world, &db, &format!("big{i:02}")),
            Some(Value::from(big(i).as_str())),
        );
    }
    // Through a checkpoint too: the tree keeps only pointers.
    on(&world, &db, |db| async move {
        db.checkpoint().await.expect("checkpoint")
    });
    drop(db);
    world.crash(N);
    let db = open(&world);
    assert_eq!(
        get(&world, &db, "big07"),
        Some(Value::from(big(7).as_str()))
    );
    assert_eq!(get(&world, &db, "small"), Some(Value::from("s")));
}

#[test]
fn a_damaged_value_in_a_segment_kept_for_its_values_reads_as_corrupt_never_as_data() {
    let world = World::new(13, FaultConfig::none());
    let db = open(&world);
    let big = "x".repeat(5000);
    set(&world, &db, "a", &big).expect("set");
    set(&world, &db, "b", &big).expect("set");
    // Past the checkpoint, segment 1 holds no record a replay needs: it
    // stays for the values, and recovery no longer reads it.
    let filler = "f".repeat(3000);
    for i in 0..40 {
        set(&world, &db, &format!("f{i:02}"), &filler).expect("set");
    }
    on(&world, &db, |db| async move {
        db.checkpoint().await.expect("checkpoint")
    });
    assert!(db.stats().vlog.segments >= 1, "{:?}", db.stats().vlog);
    drop(db);
    world.kill(N);
    // A flipped byte inside a's value (the first commit's record).
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::{File, Fs, OpenMode};
        let path = dir().join(jubilant_core::log::segment_name(1));
        let file = env.open(&path, OpenMode::Existing).await.expect("open");
        file.write_at(4096 + 400, b"Y").await.expect("write");
        file.sync_data().await.expect("sync");
    });
    let db = open(&world);
    let read = on(&world, &db, |db| async move { db.get("a").await });
    let error = read.expect_err("a damaged value is an error");
    assert!(error.is_corruption(), "{error}");
    assert_eq!(get(&world, &db, "b"), Some(Value::from(big.as_str())));
}

#[test]
fn offline_validate_follows_every_value_log_pointer_and_changes_nothing() {
    let world = World::new(14, FaultConfig::none());
    let db = open(&world);
    for key in ["a", "b", "c"] {
        set(&world, &db, key, &key.repeat(2000)).expect("set");
    }
    set(&world, &db, "small", "s").expect("set");
    let db = Arc::into_inner(db).expect("one handle");
    world.block_on(N, async move { db.close().await.expect("close") });
    let env = world.env(N);
    let validate = || {
        let env = env.clone();
        world.block_on(N, async move {
            validate_dir(&env, &dir(), |_, _| {})
                .await
                .expect("validate_dir")
        })
    };
    let report = validate();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.vlog_pointers, 3);

    // A flipped byte inside a's value: one finding, and the segment is
    // left exactly as found.
    let segment = dir().join(jubilant_core::log::segment_name(1));
    let read_segment = || {
        let (env, segment) = (env.clone(), segment.clone());
        world.block_on(N, async move {
            use jubilant_core::env::{File, Fs, OpenMode};
            let file = env.open(&segment, OpenMode::Existing).await.expect("open");
            let len = file.len().await.expect("len");
            file.read_at(0, len as usize).await.expect("read")
        })
    };
    world.block_on(N, {
        let (env, segment) = (env.clone(), segment.clone());
        async move {
            use jubilant_core::env::{File, Fs, OpenMode};
            let file = env.open(&segment, OpenMode::Existing).await.expect("open");
            file.write_at(4096 + 400, b"Y").await.expect("write");
            file.sync_data().await.expect("sync");
        }
    });
    let damaged = read_segment();
    let report = validate();
    assert_eq!(report.vlog_pointers, 3);
    assert!(
        matches!(report.findings.as_slice(), [finding]
            if finding.kind == FindingKind::VlogPointer
                && finding.page.is_some()
                && finding.detail.starts_with("key \"a\"")),
        "{report:?}"
    );
    assert!(read_segment() == damaged, "validate changed the segment");

    // The segment gone: every pointer into it is a finding.
    world.block_on(N, {
        let (env, segment) = (env.clone(), segment.clone());
        async move {
            use jubilant_core::env::Fs;
            env.remove(&segment).await.expect("remove");
        }
    });
    let report = validate();
    assert_eq!(report.findings_count, 3, "{report:?}");
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind == FindingKind::VlogPointer && f.detail.contains("missing")),
        "{report:?}"
    );
}

/// Flips the last byte of the WAL's last record (a commit), as a crash
/// mid-write can leave it; the node must be down.
fn tear_last_record(world: &World) {
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::{File, Fs, OpenMode};
        use jubilant_core::log::{FRAME_HEADER_BYTES, scan, segment_name};
        let mut last = None;
        scan(&env, &dir(), |pos, payload| {
            last = Some((pos, payload.len()))
        })
        .await
        .expect("scan");
        let (pos, len) = last.expect("records");
        let file = env
            .open(&dir().join(segment_name(pos.segment)), OpenMode::Existing)
            .await
            .expect("open");
        let at = pos.offset + FRAME_HEADER_BYTES + len as u64 - 1;
        let byte = file.read_at(at, 1).await.expect("read")[0];
        file.write_at(at, &[!byte]).await.expect("write");
        file.sync_data().await.expect("sync");
    });
}

#[test]
fn a_transaction_without_its_commit_is_dropped_once_not_at_every_open() {
    let world = World::new(15, FaultConfig::none());
    let db = open(&world);
    set(&world, &db, "kept", "1").expect("set");
    set(&world, &db, "torn", "2").expect("set");
    drop(db);
    world.kill(N);
    // Tear the last record, the commit of "torn", as a crash mid-write can.
    tear_last_record(&world);
    let db = open(&world);
    let recovery = db.stats().recovery;
    assert_eq!(recovery.txns_dropped, 1, "{recovery:?}");
    assert!(recovery.torn_tail.is_some());
    assert_eq!(get(&world, &db, "torn"), None);
    assert_eq!(get(&world, &db, "kept"), Some(Value::from("1")));
    let db = Arc::into_inner(db).expect("one handle");
    world.block_on(N, async move { db.close().await.expect("close") });

    // The close's checkpoint covers the dropped records: nothing to repair.
    let db = open(&world);
    let recovery = db.stats().recovery;
    assert_eq!(recovery.repair_actions(), 0, "{recovery:?}");
    assert_eq!(recovery.txns_replayed, 0);
    assert_eq!(get(&world, &db, "kept"), Some(Value::from("1")));
}

#[test]
fn async_commits_are_not_paced_by_fsyncs_but_become_durable_within_the_cap() {
    let mut faults = FaultConfig::none();
    // A disk whose syncs take a while, as real ones do.
    faults.set(Fault::IoLatencyUs, 500.0);
    let world = World::new(21, faults);
    let db = open(&world);
    let env = world.env(N);
    let lsn = on(&world, &db, |db| async move {
        let mut lsn = 0;
        for n in 0..200u64 {
            lsn = db
                .set_with(&format!("k{n}"), n as i64, Durability::Async)
                .await
                .expect("set");
        }
        lsn
    });
    let stats = db.stats();
    assert!(
        stats.wal.fsyncs * 4 < stats.wal.batches,
        "one lone async committer should not pay an fsync per batch: {:?}",
        stats.wal
    );
    // With nothing else happening, the cap (5 ms by default) syncs them.
    world.block_on(N, async move {
        use jubilant_core::env::Clock;
        env.sleep(std::time::Duration::from_millis(20)).await;
    });
    assert!(
        db.stats().lsn_durable >= lsn,
        "{:?}",
        db.stats().lsn_durable
    );
    // A sync commit covers the async ones before it at once.
    let sync_lsn = on(&world, &db, |db| async move {
        db.set_with("async-then", 1i64, Durability::Async)
            .await
            .expect("set");
        db.set_with("sync", 2i64, Durability::Sync)
            .await
            .expect("set")
    });
    assert!(db.stats().lsn_durable >= sync_lsn);
}

/// Opens with the TTL sweeper off, so only reads find expired keys.
fn open_without_sweeper(world: &World) -> Arc<Db<SimEnv>> {
    let env = world.env(N);
    let options = DbOptions {
        sweep_interval_ms: 0,
        ..options()
    };
    world.block_on(N, async move {
        Db::open(env, dir(), options)
            .await
            .map(Arc::new)
            .expect("open the database")
    })
}

fn range(
    world: &World,
    db: &Arc<Db<SimEnv>>,
    start: std::ops::Bound<&str>,
    end: std::ops::Bound<&str>,
    limit: usize,
) -> Vec<(String, Value)> {
    let start = start.map(|key| key.as_bytes().to_vec());
    let end = end.map(|key| key.as_bytes().to_vec());
    let entries = on(world, db, |db| async move {
        db.range(
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
            limit,
        )
        .await
        .expect("range")
    });
    entries
        .into_iter()
        .map(|(key, value)| (String::from_utf8(key).expect("test keys are text"), value))
        .collect()
}

fn keys_of(entries: &[(String, Value)]) -> Vec<&str> {
    entries.iter().map(|(key, _)| key.as_str()).collect()
}

#[test]
fn range_reads_live_keys_in_order_within_its_bounds_and_limit() {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let world = World::new(21, FaultConfig::none());
    let db = open_without_sweeper(&world);
    let big = "large-".repeat(200);
    let big_value = big.clone();
    on(&world, &db, |db| async move {
        let mut writes: Vec<Write> = (0..10)
            .rev()
            .filter(|i| *i != 5)
            .map(|i| Write::Set {
                key: format!("k{i:02}").into_bytes(),
                value: Value::Int(i),
            })
            .collect();
        // Past the inline limit: stored in the value log.
        writes.push(Write::Set {
            key: "k05".into(),
            value: Value::from(big_value),
        });
        writes.push(Write::SetTtl {
            key: "k03".into(),
            value: Value::Int(3),
            ttl_ms: 10,
        });
        db.write(writes, Durability::Sync).await.expect("write");
        db.del("k07").await.expect("del");
    });
    world.block_on(N, {
        let env = world.env(N);
        async move {
            use jubilant_core::env::Clock;
            env.sleep(std::time::Duration::from_millis(50)).await;
        }
    });

    let all = range(&world, &db, Unbounded, Unbounded, 100);
    assert_eq!(
        keys_of(&all),
        ["k00", "k01", "k02", "k04", "k05", "k06", "k08", "k09"],
        "ascending, without the expired k03 and the deleted k07"
    );
    assert_eq!(all[0].1, Value::Int(0));
    assert_eq!(all[4].1, Value::from(big.as_str()), "the value log is read");
    assert_eq!(
        db.stats().ttl.reaped,
        1,
        "a sync range deletes what expired"
    );

    let bounded = range(&world, &db, Included("k02"), Excluded("k06"), 100);
    assert_eq!(keys_of(&bounded), ["k02", "k04", "k05"]);
    let limited = range(&world, &db, Excluded("k02"), Included("k09"), 2);
    assert_eq!(
        keys_of(&limited),
        ["k04", "k05"],
        "the limit counts live keys"
    );
    let tail = range(&world, &db, Included("k08"), Unbounded, 10);
    assert_eq!(keys_of(&tail), ["k08", "k09"]);
    assert!(range(&world, &db, Unbounded, Unbounded, 0).is_empty());
    assert!(range(&world, &db, Included("k06"), Excluded("k02"), 10).is_empty());
    assert!(range(&world, &db, Included("k05"), Excluded("k05"), 10).is_empty());
}

#[test]
fn a_range_longer_than_one_step_misses_no_key() {
    use jubilant_core::db::RANGE_STEP_KEYS;
    use std::ops::Bound::Unbounded;
    let world = World::new(22, FaultConfig::none());
    let db = open_without_sweeper(&world);
    let count = 2 * RANGE_STEP_KEYS + 7;
    on(&world, &db, move |db| async move {
        // In commits small enough for the test's 64 KiB WAL segments.
        let keys: Vec<usize> = (0..count).collect();
        for chunk in keys.chunks(256) {
            let writes = chunk
                .iter()
                .map(|i| Write::Set {
                    key: format!("key-{i:05}").into_bytes(),
                    value: Value::Int(*i as i64),
                })
                .collect();
            db.write(writes, Durability::Async).await.expect("write");
        }
    });
    let all = range(&world, &db, Unbounded, Unbounded, count + 10);
    assert_eq!(all.len(), count);
    for (i, (key, value)) in all.iter().enumerate() {
        assert_eq!(key, &format!("key-{i:05}"));
        assert_eq!(value, &Value::Int(i as i64));
    }
    let most = range(&world, &db, Unbounded, Unbounded, RANGE_STEP_KEYS + 1);
    assert_eq!(most.len(), RANGE_STEP_KEYS + 1);
    assert_eq!(
        most.last().map(|(key, _)| key.clone()),
        Some(format!("key-{RANGE_STEP_KEYS:05}"))
    );
}

#[test]
fn a_failed_fsync_of_a_large_value_stops_every_write_until_reopened() {
    let world = World::new(6, FaultConfig::none());
    let db = open(&world);
    set(&world, &db, "before", "1").expect("set");
    let mut faults = FaultConfig::none();
    faults.set(Fault::FsyncError, 1.0);
    world.set_faults(faults);
    // Above the inline limit: the value stays in its WAL record, and the
    // batch's one fdatasync fails.
    let large = set(&world, &db, "large", &"x".repeat(4096));
    assert!(matches!(large, Err(DbError::StorageFailed(_))), "{large:?}");
    world.set_faults(FaultConfig::none());
    // A small `async` write needs no fsync at all, yet it is refused: one
    // failed fsync anywhere stops the engine (SPEC 7.3).
    let small = on(&world, &db, |db| async move {
        db.set_with("small", "y", Durability::Async).await
    });
    assert!(matches!(small, Err(DbError::StorageFailed(_))), "{small:?}");
    let why = db.failure().expect("the database says it failed");
    assert!(why.contains("the WAL failed"), "{why}");
    // Reads of what is durable keep working.
    assert_eq!(get(&world, &db, "before"), Some(Value::from("1")));

    drop(db);
    world.kill(N);
    let db = open(&world);
    // Never acknowledged: recovery may or may not find it.
    let recovered = get(&world, &db, "large");
    assert!(
        recovered.is_none() || recovered == Some(Value::from("x".repeat(4096).as_str())),
        "{recovered:?}"
    );
    set(&world, &db, "after", "2").expect("writes work again after reopening");
}

#[test]
fn a_value_a_failed_fsync_took_from_the_cache_reads_as_the_failure_not_as_damage() {
    // Seed backup 41340200: an `async` commit (there, a GC move) logged a
    // large value and was applied; the batch's fsync failed and the kernel
    // dropped the unsynced bytes. The tree in memory still points at them.
    // At the value limit, over an eighth of the value cache's budget: the
    // value is not kept in memory, so a read goes to the file.
    let large = |fill: char| fill.to_string().repeat(32 * 1024);
    let (mut failures, mut kept) = (0, 0);
    // Room for both values in the first segment: no rollover needs a sync.
    let options = DbOptions {
        wal_segment_bytes: 256 * 1024,
        ..options()
    };
    let open = |world: &World| {
        let (env, options) = (world.env(N), options.clone());
        world
            .block_on(N, async move { Db::open(env, dir(), options).await })
            .map(Arc::new)
            .expect("open")
    };
    for seed in 0..24 {
        let world = World::new(seed, FaultConfig::none());
        let db = open(&world);
        set(&world, &db, "large", &large('a')).expect("set");
        // The failed sync loses every unsynced write; the kernel keeps the
        // pages or evicts them (the simulator picks).
        let mut faults = FaultConfig::none();
        faults.set(Fault::FsyncError, 1.0);
        faults.set(Fault::WriteLost, 1.0);
        world.set_faults(faults);
        let value = large('b');
        on(&world, &db, |db| async move {
            db.set_with("large", value, Durability::Async).await
        })
        .expect("an async commit is answered before its sync");
        // Waits for that batch's failed sync (and fails itself).
        let synced = set(&world, &db, "other", "1");
        assert!(
            matches!(synced, Err(DbError::StorageFailed(_))),
            "{synced:?}"
        );
        world.set_faults(FaultConfig::none());
        let read = on(&world, &db, |db| async move {
            db.get_with("large", Durability::Async).await
        });
        match read {
            Ok(Some(found)) => {
                assert_eq!(found, Value::from(large('b').as_str()));
                kept += 1;
            }
            // Never "corrupted": nothing was damaged.
            Err(DbError::StorageFailed(_)) => failures += 1,
            other => panic!("seed {seed}: {other:?}"),
        }
        drop(db);
        world.kill(N);
        let db = open(&world);
        let recovered = get(&world, &db, "large");
        assert!(
            recovered == Some(Value::from(large('a').as_str()))
                || recovered == Some(Value::from(large('b').as_str())),
            "seed {seed}: {recovered:?}"
        );
    }
    assert!(
        failures > 0 && kept > 0,
        "{failures} reads failed, {kept} found the value: the test did not test both"
    );
}

#[test]
fn a_scan_pages_forward_and_back_within_a_prefix_and_bounds_each_page() {
    use jubilant_core::db::{ScanPage, ScanRequest};
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let world = World::new(23, FaultConfig::none());
    let db = open_without_sweeper(&world);
    on(&world, &db, |db| async move {
        let mut writes: Vec<Write> = (0..40)
            .map(|i| Write::Set {
                key: format!("user:{i:03}").into_bytes(),
                value: Value::from("v".repeat(100)),
            })
            .collect();
        writes.push(Write::Set {
            key: "other".into(),
            value: Value::Int(1),
        });
        writes.push(Write::SetTtl {
            key: "user:020x".into(),
            value: Value::Int(3),
            ttl_ms: 10,
        });
        db.write(writes, Durability::Sync).await.expect("write");
    });
    world.block_on(N, {
        let env = world.env(N);
        async move {
            use jubilant_core::env::Clock;
            env.sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let page = |request: ScanRequest| -> ScanPage {
        on(
            &world,
            &db,
            move |db| async move { db.scan(&request).await },
        )
        .expect("scan")
    };
    // Every page of 7, forward then reverse: each key exactly once, in
    // order, the expired one and the key outside the prefix left out.
    for reverse in [false, true] {
        let mut request = ScanRequest::new(Unbounded, Unbounded);
        request.within_prefix(b"user:");
        request.reverse = reverse;
        request.limit = 7;
        let mut keys = Vec::new();
        let mut pages = 0;
        loop {
            let got = page(request.clone());
            pages += 1;
            assert!(got.entries.len() <= 7);
            keys.extend(got.entries.iter().map(|(key, value)| {
                assert_eq!(value.as_ref(), Some(&Value::from("v".repeat(100))));
                String::from_utf8(key.clone()).expect("UTF-8")
            }));
            match got.resume_after {
                Some(last) => request.resume_after(last),
                None => break,
            }
        }
        let mut wanted: Vec<String> = (0..40).map(|i| format!("user:{i:03}")).collect();
        if reverse {
            wanted.reverse();
        }
        assert_eq!(keys, wanted, "reverse {reverse}");
        assert!((6..=7).contains(&pages), "{pages} pages");
    }
    // The byte bound ends a page after the entry that crosses it (never
    // an empty page); keys only reads no value.
    let mut request = ScanRequest::new(Included(b"user:".to_vec()), Unbounded);
    request.bytes_max = 250;
    let got = page(request.clone());
    assert_eq!(got.entries.len(), 3, "108 bytes an entry");
    assert_eq!(got.resume_after, Some(b"user:002".to_vec()));
    request.bytes_max = 1;
    assert_eq!(page(request.clone()).entries.len(), 1);
    // The byte bound crossed by the range's last entry ends the range too:
    // no empty page after it.
    let mut last = ScanRequest::new(
        Included(b"user:039".to_vec()),
        Excluded(b"user:04".to_vec()),
    );
    last.bytes_max = 1;
    let got = page(last);
    assert_eq!((got.entries.len(), got.resume_after), (1, None));
    request.keys_only = true;
    request.bytes_max = 1 << 20;
    request.end = Excluded(b"user:003".to_vec());
    let got = page(request);
    assert_eq!(got.entries.len(), 3);
    assert!(got.entries.iter().all(|(_, value)| value.is_none()));
    assert_eq!(got.resume_after, None, "the range is done");
}
