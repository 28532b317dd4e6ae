//! Values kept in old WAL segments (design 11.2) over the simulated disk:
//! live-byte counts that follow the tree, retention of the segments a
//! checkpoint covers while they hold live values, relocation that keeps
//! values and revisions, and removal only once a durable checkpoint covers
//! the moves.

use std::path::PathBuf;
use std::sync::Arc;

use jubilant_core::db::VlogGcReport;
use jubilant_core::db::{Db, DbOptions, Value};
use jubilant_core::txn::{Mode, OpResult, Txn};
use jubilant_io_sim::{FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);
const VALUE_BYTES: usize = 3000;

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

/// Small WAL segments (five one-value commits each: a commit's batch takes
/// a 4 KiB block) and GC only when asked, so each step is the test's.
fn options() -> DbOptions {
    DbOptions {
        wal_segment_bytes: 24 * 1024,
        value_bytes_max: 8 * 1024,
        vlog_gc_interval_ms: 0,
        sweep_interval_ms: 0,
        ..DbOptions::default()
    }
}

fn open(world: &World) -> Arc<Db<SimEnv>> {
    let env = world.env(N);
    world
        .block_on(N, async move { Db::open(env, dir(), options()).await })
        .map(Arc::new)
        .expect("open the database")
}

fn on<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    world: &World,
    db: &Arc<Db<SimEnv>>,
    f: impl FnOnce(Arc<Db<SimEnv>>) -> F,
) -> T {
    world.block_on(N, f(Arc::clone(db)))
}

fn big(key: usize, version: usize) -> String {
    let mut value = format!("k{key}-v{version}-");
    while value.len() < VALUE_BYTES {
        value.push((b'a' + (key % 26) as u8) as char);
    }
    value
}

fn set(world: &World, db: &Arc<Db<SimEnv>>, key: usize, value: String) -> u64 {
    on(world, db, move |db| async move {
        db.set(&format!("big{key:02}"), value).await.expect("set")
    })
}

fn set_ttl(world: &World, db: &Arc<Db<SimEnv>>, key: usize, value: String, ttl_ms: u64) {
    on(world, db, move |db| async move {
        let mut txn = Txn::new();
        let id = txn.key(format!("big{key:02}"), Mode::RW);
        txn.set_ttl(id, value, ttl_ms);
        db.transaction(&txn).await.expect("set with TTL")
    });
}

/// The value and revision of `big{key}`.
fn read(world: &World, db: &Arc<Db<SimEnv>>, key: usize) -> Option<(Value, u64)> {
    on(world, db, move |db| async move {
        let mut txn = Txn::new();
        let id = txn.key(format!("big{key:02}"), Mode::R);
        txn.get(id);
        let outcome = db.transaction(&txn).await.expect("read");
        match outcome.results.as_slice() {
            [OpResult::Get(found)] => found.clone(),
            other => panic!("unexpected results {other:?}"),
        }
    })
}

fn gc(world: &World, db: &Arc<Db<SimEnv>>) -> VlogGcReport {
    on(
        world,
        db,
        |db| async move { db.vlog_gc().await.expect("gc") },
    )
}

fn checkpoint(world: &World, db: &Arc<Db<SimEnv>>) {
    on(world, db, |db| async move {
        db.checkpoint().await.expect("checkpoint")
    });
}

/// Alternates checkpoints and GC passes until a pass finds nothing to do,
/// then checkpoints once more (its tidy removes what the last moves
/// emptied).
fn collect_all(world: &World, db: &Arc<Db<SimEnv>>) {
    for _ in 0..40 {
        checkpoint(world, db);
        if gc(world, db) == VlogGcReport::default() {
            break;
        }
    }
    checkpoint(world, db);
}

fn segment_exists(world: &World, segment: u32) -> bool {
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::Fs;
        let names = env.list(&dir()).await.expect("list");
        names.contains(&jubilant_core::log::segment_name(u64::from(segment)))
    })
}

fn assert_clean(world: &World, db: &Arc<Db<SimEnv>>, pointers: u64) {
    let report = on(world, db, |db| async move {
        db.validate().await.expect("validate")
    });
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(report.vlog_pointers, pointers);
}

/// Writes 30 values, then overwrites all but every fifth: the first
/// segments are left mostly dead. Returns the survivors' revisions.
fn fragment(world: &World, db: &Arc<Db<SimEnv>>) -> Vec<(usize, u64)> {
    let mut kept = Vec::new();
    for key in 0..30 {
        let revision = set(world, db, key, big(key, 0));
        if key % 5 == 0 {
            kept.push((key, revision));
        }
    }
    for key in (0..30).filter(|key| key % 5 != 0) {
        set(world, db, key, big(key, 1));
    }
    kept
}

#[test]
fn a_checkpoint_keeps_segments_with_live_values_and_removes_the_rest() {
    let world = World::new(21, FaultConfig::none());
    let db = open(&world);
    fragment(&world, &db);
    assert_eq!(db.stats().vlog.segments, 0, "every segment is replayed");
    checkpoint(&world, &db);
    let stats = db.stats().vlog;
    // 54 commits in 11 segments, each covered one holding a survivor.
    assert!(stats.segments >= 8, "{stats:?}");
    assert!(
        stats.live_bytes > 0 && stats.bytes > stats.live_bytes,
        "{stats:?}"
    );
    // big00 is in the oldest retained segment; deleting it takes one
    // frame's bytes off its count.
    on(&world, &db, |db| async move {
        db.del("big00").await.expect("del")
    });
    let deleted = db.stats().vlog;
    let frame = stats.live_bytes - deleted.live_bytes;
    assert!(frame > VALUE_BYTES as u64 && frame < 2 * VALUE_BYTES as u64);
    drop(db);
    world.crash(N);
    let db = open(&world);
    let reopened = db.stats().vlog;
    assert_eq!(reopened.segments, stats.segments, "{reopened:?}");
    assert_eq!(reopened.live_bytes, deleted.live_bytes, "{reopened:?}");
}

#[test]
fn gc_moves_live_values_keeping_revisions_and_removes_segments_after_a_checkpoint() {
    let world = World::new(22, FaultConfig::none());
    let db = open(&world);
    let kept = fragment(&world, &db);
    checkpoint(&world, &db);
    let before = db.stats().vlog;
    assert!(before.segments >= 2, "{before:?}");

    // Relocation alone removes nothing: no durable checkpoint covers it.
    let first = gc(&world, &db);
    assert!(first.segment_relocated.is_some(), "{first:?}");
    assert!(first.values_relocated >= 1, "{first:?}");
    gc(&world, &db);
    let relocated = db.stats().vlog;
    assert_eq!(relocated.gc_segments_removed, 0, "{relocated:?}");
    assert_eq!(relocated.segments, before.segments, "{relocated:?}");

    // Alternate checkpoints and passes until nothing is left to do.
    collect_all(&world, &db);
    let after = db.stats().vlog;
    assert!(
        after.gc_bytes_reclaimed > 0 && after.gc_segments_removed > 0,
        "{after:?}"
    );
    assert!(after.segments < before.segments, "{before:?} -> {after:?}");
    assert!(
        after.live_ratio() > before.live_ratio() || after.segments == 0,
        "{before:?} -> {after:?}"
    );

    // Values and revisions as written, now and after a power loss.
    for &(key, revision) in &kept {
        assert_eq!(
            read(&world, &db, key),
            Some((Value::from(big(key, 0).as_str()), revision))
        );
    }
    assert_clean(&world, &db, 30);
    drop(db);
    world.crash(N);
    let db = open(&world);
    for &(key, revision) in &kept {
        assert_eq!(
            read(&world, &db, key),
            Some((Value::from(big(key, 0).as_str()), revision))
        );
    }
    for key in (0..30).filter(|key| key % 5 != 0) {
        assert_eq!(
            read(&world, &db, key).map(|(value, _)| value),
            Some(Value::from(big(key, 1).as_str()))
        );
    }
    assert_clean(&world, &db, 30);
}

#[test]
fn a_crash_before_the_checkpoint_leaves_the_old_segment_in_place() {
    let world = World::new(23, FaultConfig::none());
    let db = open(&world);
    let kept = fragment(&world, &db);
    checkpoint(&world, &db);
    let report = gc(&world, &db);
    let emptied = report.segment_relocated.expect("a sparse segment");
    assert!(report.values_relocated > 0, "{report:?}");
    // The emptied segment stays through further passes: no durable
    // checkpoint covers the moves yet.
    gc(&world, &db);
    assert_eq!(db.stats().vlog.gc_segments_removed, 0);
    assert!(
        segment_exists(&world, emptied),
        "removed before a checkpoint"
    );
    // A power loss may take the (async) moves; the old segment must then be
    // there for the pointers recovery restores.
    drop(db);
    world.crash(N);
    let db = open(&world);
    assert!(segment_exists(&world, emptied), "gone after the crash");
    for &(key, revision) in &kept {
        assert_eq!(
            read(&world, &db, key),
            Some((Value::from(big(key, 0).as_str()), revision))
        );
    }
    assert_clean(&world, &db, 30);
}

#[test]
fn expired_values_are_deleted_rather_than_moved() {
    let world = World::new(24, FaultConfig::none());
    let db = open(&world);
    for key in 0..30 {
        set_ttl(&world, &db, key, big(key, 0), 1_000);
    }
    // Most of the first segments die; the rest of their values expire.
    for key in (0..30).filter(|key| key % 5 != 0) {
        set(&world, &db, key, big(key, 1));
    }
    checkpoint(&world, &db);
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::Clock;
        env.sleep(std::time::Duration::from_millis(2_000)).await;
    });
    let report = gc(&world, &db);
    assert!(report.values_expired > 0, "{report:?}");
    assert_eq!(report.values_relocated, 0, "{report:?}");
    assert_eq!(read(&world, &db, 0), None);
}

#[test]
fn a_segment_with_a_damaged_record_is_moved_once_and_then_left_alone() {
    let world = World::new(25, FaultConfig::none());
    let db = open(&world);
    fragment(&world, &db);
    checkpoint(&world, &db);
    drop(db);
    world.kill(N);
    // Damage the first value of the first segment (big00's, still live;
    // the segment is kept for its values, so recovery does not read it):
    // GC cannot read past it, so the segment cannot be emptied.
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::{File, Fs, OpenMode};
        let path = dir().join(jubilant_core::log::segment_name(1));
        let file = env.open(&path, OpenMode::Existing).await.expect("open");
        file.write_at(4096 + 200, b"Y").await.expect("write");
        file.sync_data().await.expect("sync");
    });
    let db = open(&world);
    let mut relocated = Vec::new();
    for _ in 0..40 {
        checkpoint(&world, &db);
        let report = gc(&world, &db);
        relocated.extend(report.segment_relocated);
        if report == VlogGcReport::default() {
            break;
        }
    }
    assert_eq!(
        relocated.iter().filter(|&&segment| segment == 1).count(),
        1,
        "segment 1 read once, not every pass: {relocated:?}"
    );
    assert!(
        gc(&world, &db) == VlogGcReport::default(),
        "GC settles: {relocated:?}"
    );
}

#[test]
fn sealed_segments_are_opened_once_values_are_cached_and_both_go_with_the_segment() {
    let world = World::new(31, FaultConfig::none());
    let db = open(&world);
    let kept = fragment(&world, &db);
    checkpoint(&world, &db);
    drop(db);
    world.kill(N);
    // Reopened: no segment is open for reads yet.
    let db = open(&world);
    let before = db.stats().vlog;
    for _ in 0..3 {
        for &(key, revision) in &kept {
            assert_eq!(
                read(&world, &db, key),
                Some((Value::from(big(key, 0).as_str()), revision))
            );
        }
    }
    let after = db.stats().vlog;
    let opened = after.segment_opens - before.segment_opens;
    assert!(
        opened <= kept.len() as u64,
        "three rounds of reads open each segment once at most: {after:?}"
    );
    // The first round reads the files; the value cache answers the rest.
    assert_eq!(after.reads - before.reads, kept.len() as u64, "{after:?}");
    assert_eq!(after.value_cache_hits, 2 * kept.len() as u64, "{after:?}");
    assert!(after.value_cache_bytes > 0);
    // GC moves the survivors and removes the segments, descriptors and
    // all; reads then find the values where they moved.
    collect_all(&world, &db);
    let collected = db.stats().vlog;
    assert!(collected.gc_segments_removed > 0);
    // The moved values were cached as they were logged, in place of the
    // removed segments' entries: no more bytes than before.
    assert!(
        collected.value_cache_bytes <= after.value_cache_bytes,
        "values of removed segments leave the cache: {after:?} -> {collected:?}"
    );
    for &(key, revision) in &kept {
        assert_eq!(
            read(&world, &db, key),
            Some((Value::from(big(key, 0).as_str()), revision))
        );
    }
    let reread = db.stats().vlog;
    assert_eq!(
        reread.reads, collected.reads,
        "moved values read from the cache"
    );
    assert_clean(&world, &db, 30);
}
