//! Opening a database (SPEC 7.4): recovery from any crash, then the
//! background tasks (WAL writer, checkpointer, TTL sweeper, value-log GC).
//!
//! Invariant kept here: **every check that can refuse runs before the
//! database accepts a write**: the MANIFEST and superblocks (store), the
//! WAL's records (replay), and that the WAL reaches the checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};

use crate::env::Env;
use crate::error::DbError;
use crate::lock::LockManager;
use crate::log::{Log, LogScan, OnDamage};
use crate::store::Store;
use crate::vlog::Vlog;
use crate::wal::{DurableWatch, GroupCommit, LSN_AHEAD_MAX, WriterConfig};

use super::checkpointer::Checkpointer;
use super::exec::TxnCounters;
use super::options::{DbOptions, VALUE_BYTES_LIMIT};
use super::recovery::{RecoveryReport, Replay};
use super::ttl::{Sweeper, TtlClock, TtlCounters};
use super::vlog_gc::{ValueRetention, VlogGc, VlogGcConfig};
use super::{Background, Db};

impl<E: Env> Db<E> {
    /// Opens the database in `dir` (creating it if asked), recovering from
    /// any crash: the durable checkpoint, then the WAL's committed
    /// transactions after it, with a torn WAL tail cut off (SPEC 7.4, 8).
    pub async fn open(env: E, dir: impl AsRef<Path>, options: DbOptions) -> Result<Self, DbError> {
        let dir = dir.as_ref().to_path_buf();
        if options.value_bytes_max > VALUE_BYTES_LIMIT {
            return Err(DbError::Options(format!(
                "value_bytes_max {} exceeds what one WAL record holds ({VALUE_BYTES_LIMIT})",
                options.value_bytes_max
            )));
        }
        let (store, mut log, recovery) = recover(&env, &dir, &options).await?;
        let vlog = Vlog::new(env.clone(), dir.clone());
        // Values read by pointer are cached within a quarter of the cache
        // budget, and the page cache counts them against the same budget.
        let values_charged = Arc::new(AtomicU64::new(0));
        vlog.cache_values(
            options.cache_bytes / 4,
            Arc::clone(&values_charged),
            crate::sabotage::sabotaged!(options, ValueCacheByOffset),
        );
        store.share_cache_budget(values_charged);
        let store = Arc::new(store);
        let vlog = Arc::new(vlog);
        // WAL segments no replay needs stay while the tree points into them.
        log.set_retention(Arc::new(ValueRetention {
            store: Arc::clone(&store),
            vlog: Arc::clone(&vlog),
            #[cfg(feature = "sabotage")]
            sabotage: options.sabotage,
        }));
        vlog.learn_sizes().await;
        let watch = Arc::new(DurableWatch::new(log.durable_lsn()));
        // One pending request is enough: a checkpoint wanted while one is
        // queued is covered by it.
        let (checkpoint_wanted, wanted) = mpsc::channel(0);
        let (wal, writer) = GroupCommit::start(
            &env,
            log,
            Arc::clone(&store),
            Arc::clone(&vlog),
            Arc::clone(&watch),
            checkpoint_wanted.clone(),
            WriterConfig {
                checkpoint_wal_bytes: options.checkpoint_wal_bytes,
                commit_bytes_max: options.max_commit_bytes,
                observer: options.commit_observer.clone(),
                async_sync_within: Duration::from_millis(options.group_commit_max_latency_ms),
                #[cfg(feature = "sabotage")]
                sabotage: options.sabotage,
            },
        );
        let ttl_floor_ms = if crate::sabotage::sabotaged!(options, TtlFloorIgnored) {
            0
        } else {
            recovery.ttl_floor_ms
        };
        let clock = TtlClock::calibrate(env.clone(), ttl_floor_ms);
        let checkpointer = Checkpointer {
            store: Arc::clone(&store),
            watch: Arc::clone(&watch),
            wal: wal.clone(),
            clock: clock.clone(),
            mark: Arc::default(),
            #[cfg(feature = "sabotage")]
            sabotage: options.sabotage,
        };
        let checkpoints = Background::spawn(&env, "checkpointer", |stop| {
            checkpointer.clone().run(wanted, stop)
        });
        let locks = LockManager::new(
            #[cfg(feature = "sabotage")]
            options.sabotage,
        );
        let ttl = Arc::new(TtlCounters::default());
        let sweeper = (options.sweep_interval_ms > 0).then(|| {
            let sweeper = Sweeper {
                store: Arc::clone(&store),
                wal: wal.clone(),
                locks: locks.clone(),
                clock: clock.clone(),
                counters: Arc::clone(&ttl),
                interval: Duration::from_millis(options.sweep_interval_ms),
                keys_per_run: options.sweep_keys_max.max(1),
            };
            Background::spawn(&env, "ttl-sweeper", |stop| sweeper.run(stop))
        });
        let gc = VlogGc {
            store: Arc::clone(&store),
            wal: wal.clone(),
            locks: locks.clone(),
            vlog: Arc::clone(&vlog),
            clock: clock.clone(),
            checkpoint_wanted,
            config: VlogGcConfig {
                live_pct: options.vlog_gc_live_pct,
                interval: Duration::from_millis(options.vlog_gc_interval_ms),
                #[cfg(feature = "sabotage")]
                sabotage: options.sabotage,
            },
            turn: Arc::default(),
            stuck: Arc::default(),
        };
        let gc_task = (options.vlog_gc_interval_ms > 0).then(|| {
            let task = gc.clone();
            let env_for_gc = env.clone();
            Background::spawn(&env, "vlog-gc", move |stop| task.run(env_for_gc, stop))
        });
        Ok(Db {
            dir,
            store,
            wal,
            watch,
            locks,
            clock,
            ttl,
            txns: TxnCounters::default(),
            vlog,
            value_bytes_max: options.value_bytes_max,
            lock_wait_max: (options.lock_wait_ms_max > 0)
                .then(|| Duration::from_millis(options.lock_wait_ms_max)),
            durability: options.durability,
            checkpointer,
            gc,
            writer,
            checkpoints,
            sweeper,
            gc_task,
            recovery,
            #[cfg(feature = "sabotage")]
            sabotage: options.sabotage,
        })
    }
}

/// Recovery (SPEC 7.4, 8), in the order that keeps every refusal before
/// any repair: the store as of its durable checkpoint; the WAL read
/// without a change, from the segment holding the first LSN after the
/// checkpoint (older segments hold only values, design 11.2); the check
/// that the WAL reaches the checkpoint; the value usage counted from the
/// durable tree; the WAL's committed transactions after the checkpoint
/// redone in LSN order, in memory (reading, and so verifying, every page
/// they reach); only then the repairs (the superblock made durable again,
/// the WAL's torn tail), and an LSN skip past the previous life.
async fn recover<E: Env>(
    env: &E,
    dir: &Path,
    options: &DbOptions,
) -> Result<(Store<E>, Log<E>, RecoveryReport), DbError> {
    let (mut store, opened) =
        Store::open_deferred(env.clone(), dir, options.store_options()).await?;
    options.check_value_fits_segment(store.key_bytes_max())?;
    let checkpoint_lsn = opened.superblock.checkpoint_lsn;
    let inline_max = store.manifest().inline_value_bytes_max as usize;
    let mut replay = Replay::new(checkpoint_lsn, inline_max);
    let on_damage = if options.accept_data_loss {
        OnDamage::Cut
    } else {
        OnDamage::Refuse
    };
    let mut log_config = options.log_config(dir);
    log_config.replay_from_lsn = checkpoint_lsn + 1;
    let log_scan = LogScan::read_with(
        env.clone(),
        log_config,
        |pos, payload| replay.visit(pos, payload),
        on_damage,
    )
    .await?;
    if let Some(error) = replay.error.take() {
        return Err(error);
    }
    // Everything below the log's next LSN is durable or was skipped.
    let lsn_covered = log_scan.next_lsn() - 1;
    // A cut the operator accepted may end the WAL below the checkpoint:
    // the checkpoint holds everything up to it, and the loss is what came
    // after.
    let cut = log_scan.data_loss().is_some();
    if log_scan.first_lsn() > checkpoint_lsn + 1 || (lsn_covered < checkpoint_lsn && !cut) {
        return Err(DbError::WalMissing(format!(
            "the checkpoint is at LSN {checkpoint_lsn} but the WAL holds LSNs {} to {lsn_covered}",
            log_scan.first_lsn()
        )));
    }
    // Counted from the durable tree before the replay, which then keeps
    // the counts exact.
    store.count_vlog_usage().await?;
    // The committed transactions after the checkpoint, redone in LSN
    // order in memory: the pages they reach are read and verified now, so
    // a damaged one refuses the open before anything is written. (What a
    // replay dirties is bounded by the WAL since the checkpoint; the
    // memory-pressure checkpoint waits for the repairs.)
    let mut txns_replayed = 0;
    let mut mutations_replayed = 0;
    for (lsn, mutations) in std::mem::take(&mut replay.committed) {
        store.apply_unrelieved(&mutations, lsn).await?;
        txns_replayed += 1;
        mutations_replayed += mutations.len() as u64;
    }
    // Every check passed: the repairs may write.
    store.secure_superblock().await?;
    let (mut log, log_report) = log_scan.repair().await?;
    // Every replayed record is durable (the repairs made sure), so the
    // store may now checkpoint under memory pressure without the WAL.
    store.relieve_memory_pressure().await;
    // The database's state is the one as of its last durable record (an
    // LSN skip after it holds no change).
    let lsn_end = replay.lsn_last.max(checkpoint_lsn);
    let mut report = RecoveryReport {
        created: opened.created,
        checkpoint_lsn,
        records_read: replay.records_read,
        txns_dropped: replay.dropped(),
        lsn_end,
        torn_tail: log_report.torn_tail.clone(),
        tail_bytes_zeroed: log_report.tail_bytes_zeroed,
        temp_files_removed: log_report.temp_files_removed
            + u64::from(log_report.spare_removed.is_some()),
        store_files_removed: opened.leftovers_removed.clone(),
        superblocks_invalid: opened.superblocks_invalid.clone(),
        read_retries: log_report.read_retries,
        data_loss: log_report.data_loss.clone(),
        loss_history: crate::log::loss_history::read(env, dir).await?,
        ttl_floor_ms: opened
            .superblock
            .calibration_wall_unix_ms
            .max(replay.now_ms_max),
        ..RecoveryReport::default()
    };
    report.txns_replayed = txns_replayed;
    report.mutations_replayed = mutations_replayed;
    if report.txns_dropped > 0 {
        // The dropped transactions' records stay in the WAL and nothing
        // can commit them now (new records get later LSNs). Unless the
        // next checkpoint covers them, every later open would find,
        // drop and count them again.
        store.recovered_through(lsn_end);
    }
    // Revisions are unique forever (SPEC 1): the previous life may have
    // handed out LSNs a crash then lost (`async` commits), but none past
    // the recovered end plus `LSN_AHEAD_MAX` (the writer syncs first), so
    // this life starts past them, durably, before it hands out any.
    if !opened.created && !crate::sabotage::sabotaged!(options, LsnReuse) {
        // After a cut, also past every LSN the removed part may have held:
        // each of its records took at least one LSN's worth of bytes, and
        // each LSN skip in it (one per batch at most) jumped at most
        // `LSN_AHEAD_MAX`.
        let lost = log_report.data_loss.as_ref().map_or(0, |loss| {
            loss.records_max
                .saturating_add(loss.skips_max.saturating_mul(LSN_AHEAD_MAX))
        });
        let past = log.next_lsn().max(checkpoint_lsn + 1).saturating_add(lost);
        log.skip_to(past.saturating_add(LSN_AHEAD_MAX)).await?;
        log.sync().await?;
    }
    report.lsn_restart = log.next_lsn();
    report.log(dir);
    Ok((store, log, report))
}

impl<E: Env> Background<E> {
    /// Spawns the task `make(stop)` returns; it must end once `stop` fires
    /// or its sender is dropped.
    fn spawn<F>(env: &E, name: &'static str, make: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Background {
            task: env.spawn(name, make(stopped)),
            stop,
        }
    }
}
