//! Snapshots (design 14.3) over the simulated disk: a read view at one LSN
//! that gets and scans share while writers, value GC and checkpoints go
//! on; bounded, and released on drop.

use std::ops::Bound;
use std::path::PathBuf;
use std::time::Duration;

use jubilant_core::db::{Db, DbError, DbOptions, ScanRequest, Snapshot, Value, Write};
use jubilant_core::env::Clock;
use jubilant_core::wal::Durability;
use jubilant_io_sim::{FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);
const BIG_BYTES: usize = 3000;

fn options() -> DbOptions {
    DbOptions {
        // Small segments and GC only when asked, so moves happen on cue.
        wal_segment_bytes: 24 * 1024,
        value_bytes_max: 8 * 1024,
        vlog_gc_interval_ms: 0,
        vlog_gc_live_pct: 90,
        sweep_interval_ms: 0,
        ..DbOptions::default()
    }
}

fn big(key: usize, version: usize) -> Value {
    let mut value = format!("k{key}-v{version}-");
    while value.len() < BIG_BYTES {
        value.push('x');
    }
    Value::from(value)
}

/// Every entry of `snapshot` between `start` and `end`, paged `limit` at a
/// time, in either direction.
async fn scan_all(
    snapshot: &Snapshot<'_, SimEnv>,
    reverse: bool,
    limit: usize,
) -> Vec<(Vec<u8>, Option<Value>)> {
    let mut request = ScanRequest::new(Bound::Unbounded, Bound::Unbounded);
    request.reverse = reverse;
    request.limit = limit;
    let mut out = Vec::new();
    loop {
        let page = snapshot.scan(&request).await.expect("scan");
        out.extend(page.entries);
        match page.resume_after {
            Some(last) => request.resume_after(last),
            None => return out,
        }
    }
}

#[test]
fn a_snapshot_reads_one_lsn_through_writes_gc_and_checkpoints() {
    let world = World::new(7, FaultConfig::none());
    let env = world.env(N);
    world.block_on(N, async move {
        let db = Db::open(env, PathBuf::from("/db"), options())
            .await
            .expect("open");
        for key in 0..12 {
            db.set(format!("big{key:02}"), big(key, 0))
                .await
                .expect("set");
            db.set(format!("small{key:02}"), key as i64)
                .await
                .expect("set");
        }
        let before: Vec<(Vec<u8>, Option<Value>)> = (0..12)
            .flat_map(|key| {
                [
                    (format!("big{key:02}").into_bytes(), Some(big(key, 0))),
                    (
                        format!("small{key:02}").into_bytes(),
                        Some(Value::Int(key as i64)),
                    ),
                ]
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let snapshot = db.snapshot().await.expect("snapshot");
        let read_lsn = snapshot.read_lsn();
        assert_eq!(db.stats().snapshots.live, 1);

        // Writers change every key: overwrite, delete, add new ones.
        for key in 0..12 {
            if key % 3 == 0 {
                db.del(format!("big{key:02}")).await.expect("del");
            } else {
                db.set(format!("big{key:02}"), big(key, 1))
                    .await
                    .expect("set");
            }
            db.write(
                vec![
                    Write::Set {
                        key: format!("small{key:02}").into_bytes(),
                        value: Value::Int(100 + key as i64),
                    },
                    Write::Set {
                        key: format!("new{key:02}").into_bytes(),
                        value: Value::from("fresh"),
                    },
                ],
                Durability::Sync,
            )
            .await
            .expect("write");
        }
        // Value GC moves what is left of the old values and a checkpoint
        // lets the log remove their segments: the images keep the bytes.
        for _ in 0..4 {
            db.vlog_gc().await.expect("gc");
            db.checkpoint().await.expect("checkpoint");
        }
        let removed = db.stats().wal.log.segments_removed;
        assert!(
            removed > 0,
            "the segments that logged the old values are gone"
        );
        assert_eq!(
            snapshot.get("big03").await.expect("get"),
            Some(big(3, 0)),
            "a key deleted since reads as it was"
        );
        assert_eq!(snapshot.get("big04").await.expect("get"), Some(big(4, 0)));
        assert_eq!(snapshot.get("new01").await.expect("get"), None);
        let (value, revision) = snapshot
            .get_with_revision("small05")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(value, Value::Int(5));
        assert!(revision <= read_lsn);
        for limit in [1, 5, 1000] {
            assert_eq!(
                scan_all(&snapshot, false, limit).await,
                before,
                "limit {limit}"
            );
            let mut reversed = before.clone();
            reversed.reverse();
            assert_eq!(
                scan_all(&snapshot, true, limit).await,
                reversed,
                "limit {limit}"
            );
        }
        let stats = db.stats().snapshots;
        assert!(stats.image_bytes > 12 * BIG_BYTES as u64, "{stats:?}");
        assert_eq!(stats.oldest_read_lsn, read_lsn);
        db.check_invariants();
        // The database itself reads the present.
        assert_eq!(db.get("big04").await.expect("get"), Some(big(4, 1)));
        drop(snapshot);
        let stats = db.stats().snapshots;
        assert_eq!((stats.live, stats.image_bytes), (0, 0));
        db.close().await.expect("close");
    });
}

#[test]
fn a_snapshot_past_its_bound_ends_and_never_answers_wrong() {
    let world = World::new(8, FaultConfig::none());
    let env = world.env(N);
    world.block_on(N, async move {
        let options = DbOptions {
            snapshot_bytes_max: 2 * BIG_BYTES as u64,
            ..options()
        };
        let db = Db::open(env, PathBuf::from("/db"), options)
            .await
            .expect("open");
        for key in 0..4 {
            db.set(format!("big{key}"), big(key, 0)).await.expect("set");
        }
        let snapshot = db.snapshot().await.expect("snapshot");
        db.set("big0", big(0, 1)).await.expect("set");
        assert_eq!(snapshot.get("big0").await.expect("get"), Some(big(0, 0)));
        for key in 1..4 {
            db.set(format!("big{key}"), big(key, 1)).await.expect("set");
        }
        let ended = snapshot.get("big0").await.expect_err("ended");
        assert!(matches!(ended, DbError::SnapshotEnded { .. }), "{ended}");
        let request = ScanRequest::new(Bound::Unbounded, Bound::Unbounded);
        assert!(matches!(
            snapshot.scan(&request).await,
            Err(DbError::SnapshotEnded { .. })
        ));
        let stats = db.stats().snapshots;
        assert_eq!((stats.ended_too_old, stats.image_bytes), (1, 0));
        // A new snapshot reads again.
        let again = db.snapshot().await.expect("snapshot");
        assert_eq!(again.get("big3").await.expect("get"), Some(big(3, 1)));
        drop((snapshot, again));
        db.close().await.expect("close");
    });
}

#[test]
fn a_snapshot_judges_expiry_at_its_own_clock() {
    let world = World::new(9, FaultConfig::none());
    let env = world.env(N);
    world.block_on(N, async move {
        let db = Db::open(env.clone(), PathBuf::from("/db"), options())
            .await
            .expect("open");
        db.write(
            vec![Write::SetTtl {
                key: b"lease".to_vec(),
                value: Value::from("held"),
                ttl_ms: 1000,
            }],
            Durability::Sync,
        )
        .await
        .expect("set with TTL");
        let snapshot = db.snapshot().await.expect("snapshot");
        env.sleep(Duration::from_secs(2)).await;
        assert_eq!(db.get("lease").await.expect("get"), None);
        assert_eq!(
            snapshot.get("lease").await.expect("get"),
            Some(Value::from("held")),
            "the snapshot's clock stopped when it began"
        );
        let later = db.snapshot().await.expect("snapshot");
        assert_eq!(later.get("lease").await.expect("get"), None);
        drop((snapshot, later));
        db.close().await.expect("close");
    });
}

#[test]
fn a_snapshot_scan_pages_through_keys_deleted_and_added_since() {
    let world = World::new(10, FaultConfig::none());
    let env = world.env(N);
    world.block_on(N, async move {
        let db = Db::open(env, PathBuf::from("/db"), options())
            .await
            .expect("open");
        let writes = |keys: std::ops::Range<u32>, value: Option<i64>| {
            keys.map(|i| match value {
                Some(value) => Write::Set {
                    key: format!("k{i:04}").into_bytes(),
                    value: Value::Int(value),
                },
                None => Write::Del {
                    key: format!("k{i:04}").into_bytes(),
                },
            })
            .collect::<Vec<_>>()
        };
        db.write(writes(0..300, Some(1)), Durability::Sync)
            .await
            .expect("write");
        let snapshot = db.snapshot().await.expect("snapshot");
        // Every key the snapshot shows is gone from the tree, and the tree
        // holds as many it must hide.
        db.write(writes(0..300, None), Durability::Sync)
            .await
            .expect("delete");
        db.write(writes(1000..1300, Some(2)), Durability::Sync)
            .await
            .expect("write");
        let expected: Vec<(Vec<u8>, Option<Value>)> = (0..300)
            .map(|i| (format!("k{i:04}").into_bytes(), Some(Value::Int(1))))
            .collect();
        for limit in [1, 7, 1000] {
            assert_eq!(scan_all(&snapshot, false, limit).await, expected);
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(scan_all(&snapshot, true, limit).await, reversed);
        }
        drop(snapshot);
        db.close().await.expect("close");
    });
}
