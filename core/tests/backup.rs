//! Online backup and offline restore over the simulated disk (design 12):
//! a backup holds the database as of its start while writers, checkpoints
//! and value-log GC change the source; one runs at a time; its pin is
//! released with it; a restore never overwrites a database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jubilant_core::db::{BackupWriter, Db, DbError, DbOptions, Value, restore};
use jubilant_io_sim::{FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);

fn options() -> DbOptions {
    DbOptions {
        wal_segment_bytes: 64 * 1024,
        value_bytes_max: 32 * 1024,
        cache_bytes: 256 * 4096,
        vlog_gc_live_pct: 90,
        ..DbOptions::default()
    }
}

/// Values alternate between inline ones and ones the WAL holds (over the
/// 512-byte inline limit), so the copy needs both pages and segments.
fn value(round: u64, i: u64) -> Value {
    let text = format!("round {round} key {i} ");
    if i.is_multiple_of(3) {
        Value::from(text.repeat(40))
    } else {
        Value::from(text)
    }
}

async fn write_round(db: &Db<SimEnv>, round: u64, keys: u64) {
    for i in 0..keys {
        db.set(format!("key-{i:04}"), value(round, i))
            .await
            .expect("set");
    }
}

async fn expect_round(db: &Db<SimEnv>, round: u64, keys: u64) {
    for i in 0..keys {
        let key = format!("key-{i:04}");
        assert_eq!(
            db.get(&key).await.expect("get"),
            Some(value(round, i)),
            "{key} in the copy"
        );
    }
}

async fn open(env: &SimEnv, dir: &Path) -> Db<SimEnv> {
    Db::open(env.clone(), dir, options()).await.expect("open")
}

#[test]
fn a_backup_holds_the_database_as_of_its_start_while_writers_checkpoints_and_gc_change_it() {
    let world = World::new(31, FaultConfig::none());
    let env = world.env(N);
    world.block_on(N, async move {
        let source = PathBuf::from("/db");
        let db = open(&env, &source).await;
        write_round(&db, 1, 300).await;
        db.checkpoint().await.expect("checkpoint");
        // Some commits after the checkpoint: the copy replays them.
        for i in 0..40 {
            db.set(format!("key-{i:04}"), value(2, i))
                .await
                .expect("set");
        }
        let backup = db.backup().await.expect("backup");
        assert!(
            backup.end_lsn() >= backup.checkpoint_lsn(),
            "the copy replays from its checkpoint up to its end"
        );
        assert!(matches!(db.backup().await, Err(DbError::BackupInProgress)));
        // The source moves on: every key rewritten, pages freed and
        // reused, segments covered and collected.
        for round in 3..6 {
            write_round(&db, round, 300).await;
            db.checkpoint().await.expect("checkpoint");
            db.vlog_gc().await.expect("gc");
        }
        let stats = db.stats().store;
        assert_eq!(stats.pinned_generation, backup.generation());
        assert!(stats.pinned_pages > 0, "pages freed after the pin are kept");
        let writer = BackupWriter::create(env.clone(), "/backup")
            .await
            .expect("backup dir");
        writer.copy_all(&backup).await.expect("copy");
        drop(backup);
        let stats = db.stats().store;
        assert_eq!((stats.pinned_generation, stats.pinned_pages), (0, 0));
        // The pin is gone: the next checkpoint frees what it held.
        db.checkpoint().await.expect("checkpoint");
        assert_eq!(db.stats().store.pending_free_pages, 0);

        let copy = open(&env, Path::new("/backup")).await;
        let report = copy.validate().await.expect("validate");
        assert!(report.is_ok(), "{:?}", report.findings);
        for i in 0..40 {
            let key = format!("key-{i:04}");
            assert_eq!(copy.get(&key).await.expect("get"), Some(value(2, i)));
        }
        for i in 40..300 {
            let key = format!("key-{i:04}");
            assert_eq!(copy.get(&key).await.expect("get"), Some(value(1, i)));
        }
        copy.close().await.expect("close copy");
        expect_round(&db, 5, 300).await;
        db.close().await.expect("close");
    });
}

#[test]
fn a_restore_installs_a_backup_and_never_overwrites_a_database() {
    let world = World::new(32, FaultConfig::none());
    let env = world.env(N);
    world.block_on(N, async move {
        let db = Arc::new(open(&env, Path::new("/db")).await);
        write_round(&db, 1, 120).await;
        let backup = db.backup().await.expect("backup");
        BackupWriter::create(env.clone(), "/backup")
            .await
            .expect("backup dir")
            .copy_all(&backup)
            .await
            .expect("copy");
        drop(backup);
        assert!(
            BackupWriter::create(env.clone(), "/backup").await.is_err(),
            "a second copy into the same directory is refused"
        );
        let refused = restore(env.clone(), "/backup", "/db").await;
        assert!(
            matches!(&refused, Err(DbError::Backup(message)) if message.contains("already holds")),
            "{refused:?}"
        );
        let restored = restore(env.clone(), "/backup", "/restored")
            .await
            .expect("restore");
        assert_eq!(restored.keys, 120);
        let copy = open(&env, Path::new("/restored")).await;
        expect_round(&copy, 1, 120).await;
        copy.close().await.expect("close copy");
        let not_a_backup = restore(env.clone(), "/nowhere-empty", "/other").await;
        assert!(not_a_backup.is_err());
    });
}
