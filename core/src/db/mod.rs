//! The embedded database: a directory holding the tree store, its WAL and
//! its value log, opened with [`Db::open`] on an environment
//! (`jubilant-io-real` in production, `jubilant-io-sim` in the simulator).
//!
//! ```
//! # use jubilant_core::db::{Db, DbOptions, Value};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let env = jubilant_io_real::RealEnv::current();
//! let db = Db::open(env, dir.path(), DbOptions::default()).await?;
//! db.set("greeting", "hello").await?;
//! assert_eq!(db.get("greeting").await?, Some(Value::from("hello")));
//! db.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The top of the engine; each file is one concept:
//! - `options`: [`DbOptions`], how to open and the limits kept;
//! - `open`: recovery on open and the background tasks;
//! - `recovery`: replaying the WAL's committed transactions;
//! - `read`: from a key to its live value (GET, ranges, transactions);
//! - `scan`: paged scans, forward or reverse;
//! - `snapshot`: read views at one LSN, kept by undo images;
//! - `update`: read-modify-write by revision, with bounded retries;
//! - `write`: plain writes as one-op transactions, and the commit path;
//! - `exec`: the transaction executor, the one write path;
//! - `ttl`: the calibrated clock and the sweeper;
//! - `checkpointer`: the one owner of checkpoints;
//! - `backup`: online backup from a pinned checkpoint, offline restore;
//! - `vlog_gc`: value-log garbage collection;
//! - `validate`: the tree page by page, then every value-log pointer.
//!
//! Invariants kept here (see `docs/design.md`, section 6):
//! - **An acknowledged `sync` write survives any crash**; an `async` one
//!   may be lost, but only with every later one (the WAL's group commit).
//! - **Opening after any crash just works**, or refuses with a typed error
//!   when the damage is more than a crash leaves (`recovery`).
//! - **No page reaches `data.pages` before the WAL holds its changes
//!   durably** (the checkpointer waits on the WAL's durable LSN).
//! - **WAL segments go only when the durable checkpoint covers them.**

mod backup;
mod checkpointer;
mod exec;
mod health;
mod open;
mod options;
mod read;
mod recovery;
mod scan;
mod snapshot;
mod ttl;
mod update;
mod validate;
mod vlog_gc;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;

use crate::env::Env;
use crate::lock::LockManager;
use crate::log::Log;
#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;
use crate::store::{CheckpointReport, Store, StoreStats};
use crate::vlog::{Vlog, VlogStats};
use crate::wal::{DurableWatch, GroupCommit, GroupCommitStats};

use checkpointer::Checkpointer;
use exec::TxnCounters;
use ttl::{TtlClock, TtlCounters};
use vlog_gc::VlogGc;

pub use crate::error::DbError;
pub use crate::record::Value;
pub use crate::store::{SNAPSHOTS_LIVE_MAX, SnapshotStats};
pub use crate::wal::{CommitEvent, CommitObserver, Durability, ObserveCommit};
pub use backup::{
    BACKUP_CHUNK_BYTES_MAX, Backup, BackupFile, BackupInfo, BackupWriter, Restored,
    is_backup_file_name, restore,
};
pub use exec::TxnStats;
pub use health::Health;
pub use options::{DbOptions, VALUE_BYTES_LIMIT};
pub use read::RANGE_STEP_KEYS;
pub use recovery::RecoveryReport;
pub use scan::{SCAN_BYTES_DEFAULT, SCAN_LIMIT_DEFAULT, ScanPage, ScanRequest};
pub use snapshot::Snapshot;
pub use ttl::TtlStats;
pub use update::{Transactor, UPDATE_ATTEMPTS_MAX, UpdateError, Updated, compare_and_swap, update};
pub use vlog_gc::VlogGcReport;
pub use write::Write;

/// Figures for INFO.
#[derive(Clone, Debug, Default)]
pub struct DbStats {
    /// The tree store and its cache.
    pub store: StoreStats,
    /// Group commit and the WAL's files.
    pub wal: GroupCommitStats,
    /// The highest LSN known durable.
    pub lsn_durable: u64,
    /// The lock manager.
    pub locks: crate::lock::LockStats,
    /// Expired reads and the sweeper.
    pub ttl: TtlStats,
    /// The value log.
    pub vlog: VlogStats,
    /// Transactions.
    pub txns: TxnStats,
    /// What the last open recovered and repaired.
    pub recovery: RecoveryReport,
    /// Open snapshots and their undo images.
    pub snapshots: SnapshotStats,
}

/// A background task and the switch that stops it.
struct Background<E: Env> {
    task: E::JoinHandle<()>,
    /// Dropping (or firing) it ends the task.
    stop: oneshot::Sender<()>,
}

impl<E: Env> Background<E> {
    /// Stops the task and waits for it to end.
    async fn stop(self) {
        drop(self.stop);
        self.task.await;
    }
}

/// An open database. Every method takes `&self` and may run concurrently;
/// close it with [`Db::close`] (dropping it also stops its tasks, without
/// a final checkpoint).
pub struct Db<E: Env> {
    dir: PathBuf,
    pub(crate) store: Arc<Store<E>>,
    pub(crate) wal: GroupCommit,
    pub(crate) watch: Arc<DurableWatch>,
    pub(crate) locks: LockManager,
    /// The wall clock TTLs are judged by, calibrated at open (SPEC 3).
    pub(crate) clock: TtlClock<E>,
    pub(crate) ttl: Arc<TtlCounters>,
    pub(crate) txns: TxnCounters,
    pub(crate) vlog: Arc<Vlog<E>>,
    pub(crate) value_bytes_max: usize,
    pub(crate) lock_wait_max: Option<Duration>,
    pub(crate) durability: Durability,
    checkpointer: Checkpointer<E>,
    gc: VlogGc<E>,
    writer: E::JoinHandle<Log<E>>,
    checkpoints: Background<E>,
    sweeper: Option<Background<E>>,
    gc_task: Option<Background<E>>,
    recovery: RecoveryReport,
    /// Switches that break the database on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub(crate) sabotage: Sabotage,
}

impl<E: Env> Db<E> {
    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unix milliseconds now, by the calibration taken at open.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Writes a checkpoint now (copy-on-write pages, then a superblock, each
    /// made durable), after the WAL is durable up to what it holds; then
    /// removes the WAL segments it makes unnecessary.
    pub async fn checkpoint(&self) -> Result<CheckpointReport, DbError> {
        let (report, tidied) = self.checkpointer.checkpoint().await?;
        tidied.await.map_err(|_| DbError::Closed)?;
        Ok(report)
    }

    /// The checkpoints a close runs: one (which also makes free what the
    /// last commits freed), and while any tail worth a cut is free or
    /// pending (`truncate_tail_bytes_min`, not the quarter of the file
    /// checkpoints wait for, design 5.9) more, each moving a step of the
    /// tail down, until one moves nothing; then one to cut what the last
    /// moves freed. Bounded by the file's page count over the step.
    async fn close_checkpoints(&self) -> Result<(), DbError> {
        self.checkpoint().await?;
        self.store.set_compacting();
        let steps_max =
            self.store.stats().page_count / crate::store::RELOCATE_STEP_PAGES as u64 + 2;
        let mut steps = 0;
        while steps < steps_max && self.store.worth_relocating() {
            steps += 1;
            if self.checkpoint().await?.pages_relocated == 0 {
                break;
            }
        }
        if steps > 0 {
            // The last moves' old ids are pending until the checkpoint
            // above is durable; this one cuts them.
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Runs one value garbage-collection pass now (see [`VlogGcReport`]):
    /// moves the live values out of the sparsest WAL segment kept only for
    /// its values, under the `vlog_gc_live_pct` threshold. The log removes
    /// that segment at the tidy of the checkpoint that covers the moves.
    pub async fn vlog_gc(&self) -> Result<VlogGcReport, DbError> {
        self.gc.pass().await
    }

    /// Counters and sizes, for INFO.
    pub fn stats(&self) -> DbStats {
        DbStats {
            store: self.store.stats(),
            wal: self.wal.stats(),
            lsn_durable: self.watch.lsn_durable(),
            locks: self.locks.stats(),
            ttl: self.ttl.stats(),
            vlog: VlogStats {
                live_bytes: self.store.vlog_live_bytes_in(&self.vlog.retained()),
                ..self.vlog.stats()
            },
            txns: self.txns.stats(),
            recovery: self.recovery.clone(),
            snapshots: self.snapshot_stats(),
        }
    }

    /// Why the database stopped accepting writes, if it did: the tree
    /// could not take a change or a checkpoint was abandoned (the store), or
    /// a WAL write or sync failed. Cheap when it has not failed (two atomic
    /// loads), so a server can ask on every request.
    pub fn failure(&self) -> Option<String> {
        self.store.failure().or_else(|| self.watch.failure())
    }

    /// Recomputes what the engine keeps incrementally (the page cache's
    /// charged and dirty bytes, its clock ring and dirty sets) and panics
    /// on a mismatch: an expensive cross-check the simulator runs between
    /// steps.
    pub fn check_invariants(&self) {
        self.store.check_invariants();
        self.store.snapshots.check_invariants();
    }

    /// Checkpoints (so the next open has nothing to replay), stops the
    /// background tasks and releases the directory. A database that failed
    /// earlier is closed all the same, and the error says why
    /// ([`DbError::StorageFailed`]): what it acknowledged is durable only
    /// as far as the next open's recovery finds.
    pub async fn close(mut self) -> Result<(), DbError> {
        // Background work first, so nothing commits after the checkpoint.
        for task in [self.sweeper.take(), self.gc_task.take()]
            .into_iter()
            .flatten()
        {
            task.stop().await;
        }
        // A database that failed closes too, but says so: what it
        // acknowledged may not all be durable, and only reopening tells.
        let checkpointed = match self.store.failure() {
            None => self.close_checkpoints().await,
            Some(reason) => Err(DbError::StorageFailed(reason)),
        };
        let Db {
            wal,
            writer,
            checkpointer,
            checkpoints,
            gc,
            ..
        } = self;
        // Every handle to the writer goes, and the writer with them.
        checkpoints.stop().await;
        drop(checkpointer);
        drop(gc);
        drop(wal);
        drop(writer.await);
        checkpointed
    }
}
