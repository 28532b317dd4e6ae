//! The embedded database: a directory holding the tree store and its WAL,
//! opened with [`Db::open`] on an environment (`jubilant-io-real` in
//! production, `jubilant-io-sim` in the simulator).
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
//! Invariants kept here (see `docs/design.md`, section 6):
//! - **An acknowledged `sync` write survives any crash**; an `async` one
//!   may be lost, but only with every later one (the WAL's group commit).
//! - **Opening after any crash just works**, or refuses with a typed error
//!   when the damage is more than a crash leaves ([`recovery`](self)).
//! - **No page reaches `data.pages` before the WAL holds its changes
//!   durably** (the checkpointer waits on the WAL's durable LSN).
//! - **WAL segments go only when the durable checkpoint covers them.**

mod error;
mod recovery;
mod ttl;
mod value;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};

use crate::btree::mutator::Mutation;
use crate::btree::{Record, StoredValue};
use crate::env::Env;
use crate::log::{Log, LogConfig};
use crate::sabotage::Sabotage;
use crate::store::{CheckpointReport, Store, StoreError, StoreOptions, StoreStats, ValidateReport};
use crate::txn::lock::{LockManager, LockMode};
use crate::vlog::{Vlog, VlogGc, VlogGcConfig, VlogGcReport, VlogPin};
use crate::wal::{CommitRequest, DurableWatch, GroupCommit, GroupCommitStats, WriterConfig};

pub use crate::wal::Durability;
pub use error::DbError;
pub use recovery::RecoveryReport;
pub use ttl::TtlStats;
pub(crate) use ttl::{TtlClock, expired};
pub use value::Value;

/// How to open (or create) a database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Create the database if the directory holds none.
    pub create_if_missing: bool,
    /// Page size for a new database (ignored when opening one).
    pub page_bytes: u32,
    /// Values longer than this are refused for now (the value log that
    /// will take them is not built yet). Fixed at creation.
    pub inline_value_bytes_max: u32,
    /// Memory budget for cached pages.
    pub cache_bytes: u64,
    /// Durability of calls that do not name one (SPEC 7.3).
    pub durability: Durability,
    /// Size of each WAL segment file (preallocated).
    pub wal_segment_bytes: u64,
    /// A checkpoint starts once this many WAL bytes were written since the
    /// last one was asked for; it bounds recovery time and WAL disk use.
    pub checkpoint_wal_bytes: u64,
    /// Largest value accepted (SPEC 1); values above the inline limit go to
    /// the value log.
    pub value_bytes_max: usize,
    /// Size at which a value-log segment is closed and the next begun.
    pub vlog_segment_bytes: u64,
    /// How often the TTL sweeper runs (0: never; expired keys still read
    /// as missing, they only keep their space).
    pub sweep_interval_ms: u64,
    /// Keys the sweeper looks at per run.
    pub sweep_keys_max: usize,
    /// Value-log GC relocates a sealed segment whose live bytes fall under
    /// this per cent of its size (0: never relocates, only removes
    /// segments nothing points into any more).
    pub vlog_gc_live_pct: u8,
    /// How often value-log GC runs (0: only when [`Db::vlog_gc`] is called).
    pub vlog_gc_interval_ms: u64,
    /// How long written `async` commits may wait for an `fdatasync` when no
    /// `sync` commit asks for one (SPEC 7.3's `group_commit_max_latency_ms`;
    /// 0: every batch is synced at once). A crash may lose that much.
    pub group_commit_max_latency_ms: u64,
    /// How long a transaction may wait for its locks before it gives up
    /// with [`TxnError::Busy`](crate::txn::TxnError::Busy), having written
    /// nothing (0: it waits as long as it takes).
    pub lock_wait_ms_max: u64,
    /// Told of every commit once its records are written to the WAL (not
    /// yet durable), in commit-LSN order, including commits whose write or
    /// apply then failed (they may still be recovered); for change feeds
    /// and the simulator's serializability oracle.
    pub commit_observer: Option<CommitObserver>,
    /// Switches that break the database on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

impl DbOptions {
    /// Default WAL segment size: 64 MiB.
    pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = LogConfig::SEGMENT_BYTES_DEFAULT;
    /// Default checkpoint trigger: 64 MiB of WAL.
    pub const CHECKPOINT_WAL_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

    fn sabotage(&self) -> Sabotage {
        #[cfg(feature = "sabotage")]
        return self.sabotage;
        #[cfg(not(feature = "sabotage"))]
        Sabotage::None
    }

    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            create_if_missing: self.create_if_missing,
            page_bytes: self.page_bytes,
            inline_value_bytes_max: self.inline_value_bytes_max,
            cache_bytes: self.cache_bytes,
            #[cfg(feature = "sabotage")]
            sabotage: self.sabotage,
        }
    }

    fn log_config(&self, dir: &Path) -> LogConfig {
        // A record holds one key and one inline value: far less than a
        // segment, which only has to hold one commit.
        let room = self
            .wal_segment_bytes
            .saturating_sub(crate::log::SEGMENT_HEADER_BYTES + crate::log::FRAME_HEADER_BYTES);
        LogConfig {
            segment_bytes: self.wal_segment_bytes,
            record_bytes_max: room.clamp(1, u64::from(LogConfig::RECORD_BYTES_MAX_DEFAULT)) as u32,
            #[cfg(feature = "sabotage")]
            sabotage: self.sabotage,
            ..LogConfig::new(dir)
        }
    }
}

impl Default for DbOptions {
    fn default() -> Self {
        let store = StoreOptions::default();
        DbOptions {
            create_if_missing: store.create_if_missing,
            page_bytes: store.page_bytes,
            inline_value_bytes_max: store.inline_value_bytes_max,
            cache_bytes: store.cache_bytes,
            durability: Durability::Sync,
            wal_segment_bytes: Self::WAL_SEGMENT_BYTES_DEFAULT,
            checkpoint_wal_bytes: Self::CHECKPOINT_WAL_BYTES_DEFAULT,
            value_bytes_max: 64 * 1024 * 1024,
            vlog_segment_bytes: 64 * 1024 * 1024,
            sweep_interval_ms: 1000,
            sweep_keys_max: 1000,
            vlog_gc_live_pct: 50,
            vlog_gc_interval_ms: 1000,
            lock_wait_ms_max: 0,
            group_commit_max_latency_ms: 5,
            commit_observer: None,
            #[cfg(feature = "sabotage")]
            sabotage: Sabotage::None,
        }
    }
}

/// What a [`CommitObserver`] is told.
#[derive(Debug)]
pub enum CommitEvent<'a> {
    /// A commit's records reached the WAL file (not yet durable; its write
    /// or apply may still fail, and it may still be recovered).
    Logged {
        /// Its commit LSN.
        lsn: u64,
        /// Its changes, revisions set.
        mutations: &'a [crate::store::Mutation],
    },
    /// Every commit logged at or after `from_lsn` was discarded (disk full):
    /// it will never be recovered, and its LSNs are given out again.
    Discarded {
        /// The first discarded LSN.
        from_lsn: u64,
    },
}

/// A function told of each commit as the WAL writer logs it, in LSN order.
/// It runs on the writer's task, so it must be quick and must not block.
#[derive(Clone)]
pub struct CommitObserver(pub Arc<ObserveCommit>);

/// The signature of a [`CommitObserver`].
pub type ObserveCommit = dyn Fn(CommitEvent<'_>) + Send + Sync;

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}

/// The largest `value_bytes_max` allowed: a value-log record's length is
/// a `u32`, with room for its header.
pub const VALUE_BYTES_LIMIT: usize = 1 << 30;

/// Keys read per step when `validate` follows value-log pointers.
const VALIDATE_SCAN_KEYS: usize = 1024;

/// Most entries [`Db::range`] takes from the tree per step: one step holds
/// the store's lock while it walks cached pages, so a long range lets
/// writers in between steps.
pub const RANGE_STEP_KEYS: usize = 1024;

/// One change of an atomic [`Db::write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Value,
    },
    /// Set `key` to `value`, expiring after `ttl_ms` milliseconds.
    SetTtl {
        /// The key.
        key: String,
        /// Its new value.
        value: Value,
        /// Time to live, in milliseconds from the commit.
        ttl_ms: u64,
    },
    /// Delete `key` (nothing happens if it is absent).
    Del {
        /// The key.
        key: String,
    },
}

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
    pub locks: crate::txn::LockStats,
    /// Expired reads and the sweeper.
    pub ttl: TtlStats,
    /// The value log.
    pub vlog: crate::vlog::VlogStats,
    /// Transactions.
    pub txns: crate::txn::TxnStats,
    /// What the last open recovered and repaired.
    pub recovery: RecoveryReport,
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
    pub(crate) clock: ttl::TtlClock<E>,
    pub(crate) ttl: Arc<ttl::TtlCounters>,
    pub(crate) txns: crate::txn::TxnCounters,
    pub(crate) vlog: Arc<Vlog<E>>,
    pub(crate) value_bytes_max: usize,
    pub(crate) lock_wait_max: Option<std::time::Duration>,
    sweeper: Option<(E::JoinHandle<()>, oneshot::Sender<()>)>,
    gc: VlogGc<E>,
    gc_task: Option<(E::JoinHandle<()>, oneshot::Sender<()>)>,
    /// A commit observer is told values, so commits keep a copy of them.
    observed: bool,
    writer: E::JoinHandle<Log<E>>,
    checkpointer: E::JoinHandle<()>,
    checkpoint_wanted: mpsc::Sender<()>,
    remove_before: Arc<AtomicU64>,
    pub(crate) durability: Durability,
    pub(crate) sabotage: Sabotage,
    recovery: RecoveryReport,
}

impl<E: Env> Db<E> {
    /// Opens the database in `dir` (creating it if asked), recovering from
    /// any crash: the durable checkpoint, then the WAL's committed
    /// transactions after it, with a torn WAL tail cut off (SPEC 7.4, 8).
    pub async fn open(env: E, dir: impl AsRef<Path>, options: DbOptions) -> Result<Self, DbError> {
        let dir = dir.as_ref().to_path_buf();
        if options.value_bytes_max > VALUE_BYTES_LIMIT {
            return Err(DbError::Options(format!(
                "value_bytes_max {} exceeds what one value-log record holds ({VALUE_BYTES_LIMIT})",
                options.value_bytes_max
            )));
        }
        let (store, opened) = Store::open(env.clone(), &dir, options.store_options()).await?;
        let checkpoint_lsn = opened.superblock.checkpoint_lsn;
        let vlog = Arc::new(Vlog::open(env.clone(), &dir, options.vlog_segment_bytes).await?);
        let mut replay = recovery::Replay::new(checkpoint_lsn);
        let (log, log_report) = Log::open(env.clone(), options.log_config(&dir), |pos, payload| {
            replay.visit(pos, payload)
        })
        .await?;
        if let Some(error) = replay.error.take() {
            return Err(error);
        }
        let lsn_end = log.next_lsn() - 1;
        if log.first_lsn() > checkpoint_lsn + 1 || lsn_end < checkpoint_lsn {
            return Err(DbError::WalMissing(format!(
                "the checkpoint is at LSN {checkpoint_lsn} but the WAL holds LSNs {} to {lsn_end}",
                log.first_lsn()
            )));
        }
        let mut report = RecoveryReport {
            created: opened.created,
            checkpoint_lsn,
            records_read: replay.records_read,
            txns_dropped: replay.dropped(),
            lsn_end,
            torn_tail: log_report.torn_tail.clone(),
            tail_bytes_zeroed: log_report.tail_bytes_zeroed,
            temp_files_removed: log_report.temp_files_removed,
            store_files_removed: opened.leftovers_removed.clone(),
            superblocks_invalid: opened.superblocks_invalid.clone(),
            read_retries: log_report.read_retries,
            ..RecoveryReport::default()
        };
        for (lsn, mutations) in std::mem::take(&mut replay.committed) {
            // Every replayed record is durable, so the store may checkpoint
            // under memory pressure without waiting for the WAL.
            store.apply(&mutations, lsn).await?;
            report.txns_replayed += 1;
            report.mutations_replayed += mutations.len() as u64;
        }
        if report.txns_dropped > 0 {
            // The dropped transactions' records stay in the WAL and nothing
            // can commit them now (new records get later LSNs). Unless the
            // next checkpoint covers them, every later open would find,
            // drop and count them again.
            store.recovered_through(lsn_end);
        }
        log_recovery(&dir, &report);
        if vlog.stats().bytes > 0 {
            store.count_vlog_usage().await?;
        } else {
            store.start_empty_vlog_usage();
        }

        let store = Arc::new(store);
        let watch = Arc::new(DurableWatch::new(log.durable_lsn()));
        let remove_before = Arc::new(AtomicU64::new(0));
        // One pending request is enough: a checkpoint wanted while one is
        // queued is covered by it.
        let (checkpoint_wanted, wanted) = mpsc::channel(0);
        let sabotage = options.sabotage();
        let (wal, writer) = GroupCommit::start(
            &env,
            log,
            Arc::clone(&store),
            Arc::clone(&watch),
            checkpoint_wanted.clone(),
            Arc::clone(&remove_before),
            WriterConfig {
                checkpoint_wal_bytes: options.checkpoint_wal_bytes,
                observer: options.commit_observer.clone(),
                async_sync_within: std::time::Duration::from_millis(
                    options.group_commit_max_latency_ms,
                ),
                sabotage,
            },
        );
        let checkpointer = env.spawn(
            "checkpointer",
            checkpoint_when_wanted(
                Arc::clone(&store),
                Arc::clone(&watch),
                Arc::clone(&remove_before),
                sabotage,
                wanted,
            ),
        );
        let locks = LockManager::default();
        let clock = ttl::TtlClock::calibrate(env.clone());
        let ttl = Arc::new(ttl::TtlCounters::default());
        let sweeper = (options.sweep_interval_ms > 0).then(|| {
            let (stop, stopped) = oneshot::channel();
            let sweeper = ttl::Sweeper {
                store: Arc::clone(&store),
                wal: wal.clone(),
                locks: locks.clone(),
                clock: clock.clone(),
                counters: Arc::clone(&ttl),
                interval: std::time::Duration::from_millis(options.sweep_interval_ms),
                keys_per_run: options.sweep_keys_max.max(1),
            };
            (env.spawn("ttl-sweeper", sweeper.run(stopped)), stop)
        });
        let observed = options.commit_observer.is_some();
        let gc = VlogGc {
            store: Arc::clone(&store),
            wal: wal.clone(),
            locks: locks.clone(),
            vlog: Arc::clone(&vlog),
            clock: clock.clone(),
            checkpoint_wanted: checkpoint_wanted.clone(),
            config: VlogGcConfig {
                live_pct: options.vlog_gc_live_pct,
                interval: std::time::Duration::from_millis(options.vlog_gc_interval_ms),
                observed,
                sabotage,
            },
            turn: Arc::default(),
            stuck: Arc::default(),
        };
        let gc_task = (options.vlog_gc_interval_ms > 0).then(|| {
            let (stop, stopped) = oneshot::channel();
            let task = gc.clone().run(env.clone(), stopped);
            (env.spawn("vlog-gc", task), stop)
        });
        Ok(Db {
            gc,
            gc_task,
            observed,
            txns: crate::txn::TxnCounters::default(),
            vlog,
            value_bytes_max: options.value_bytes_max,
            lock_wait_max: (options.lock_wait_ms_max > 0)
                .then(|| std::time::Duration::from_millis(options.lock_wait_ms_max)),
            clock,
            ttl,
            sweeper,
            dir,
            store,
            wal,
            watch,
            locks,
            writer,
            checkpointer,
            checkpoint_wanted,
            remove_before,
            durability: options.durability,
            sabotage,
            recovery: report,
        })
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The value of `key`, if it has one, read with the default durability.
    pub async fn get(&self, key: &str) -> Result<Option<Value>, DbError> {
        self.get_with(key, self.durability).await
    }

    /// The value of `key`. With [`Durability::Sync`] it returns only once
    /// what it read is durable (SPEC 7.3), so it never shows a write a crash
    /// could still take back.
    pub async fn get_with(
        &self,
        key: &str,
        durability: Durability,
    ) -> Result<Option<Value>, DbError> {
        let now_ms = self.now_ms();
        let mut retried = false;
        let record = loop {
            match self.store.get(key.as_bytes()).await? {
                Some(record) if !self.expired_now(&record, now_ms) => {
                    match self.resolve(key, record).await {
                        Ok(record) => break Some(record),
                        // Read without a lock, the pointer may have been
                        // moved by GC and its segment removed since.
                        Err(DbError::Vlog(error)) if error.is_missing_segment() && !retried => {
                            retried = true;
                        }
                        Err(error) => return Err(error),
                    }
                }
                Some(_) if durability == Durability::Sync => {
                    self.reap(vec![key.to_owned()]).await?;
                    break None;
                }
                _ => break None,
            }
        };
        if durability == Durability::Sync {
            // A value read is as durable as its revision; an absence may be
            // an undurable delete, anything applied so far.
            let lsn = match &record {
                Some(record) => record.revision,
                None => self.store.applied_lsn(),
            };
            self.watch.wait(lsn).await?;
        }
        record.map(|r| Value::from_record(key, r)).transpose()
    }

    /// Up to `limit` keys from `start` to `end`, ascending, with their
    /// values (value-log pointers read and checked like [`Db::get`]'s);
    /// expired keys are left out. Read with the default durability: under
    /// [`Durability::Sync`] it returns only once everything it read is
    /// durable, and expired keys it saw are deleted durably first (one
    /// commit per step), as a `sync` GET does.
    ///
    /// Not a snapshot: each key is read as of some moment during the call,
    /// and a concurrent commit may show only in part (the transaction
    /// layer's locks isolate readers that need it). The caller's `limit`
    /// bounds what the answer holds; the tree is walked in steps of at
    /// most [`RANGE_STEP_KEYS`] entries.
    pub async fn range(
        &self,
        start: Bound<&str>,
        end: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>, DbError> {
        let mut out = Vec::new();
        let mut query = crate::store::RangeQuery {
            start: start.map(|key| key.as_bytes().to_vec()),
            end: end.map(|key| key.as_bytes().to_vec()),
            reverse: false,
            limit: 0,
        };
        let now_ms = self.now_ms();
        while out.len() < limit {
            query.limit = (limit - out.len()).min(RANGE_STEP_KEYS);
            let entries = self.store.range(&query).await?;
            let complete = entries.len() < query.limit;
            if let Some((last, _)) = entries.last() {
                query.start = Bound::Excluded(last.clone());
            }
            let mut expired_keys = Vec::new();
            for (key, record) in entries {
                let key = String::from_utf8(key).map_err(|error| {
                    DbError::Store(StoreError::Corrupt {
                        file: crate::store::PAGES_FILE,
                        detail: format!("a key is not UTF-8: {error}"),
                    })
                })?;
                if self.expired_now(&record, now_ms) {
                    expired_keys.push(key);
                } else if let Some(record) = self.resolve_read(&key, record).await? {
                    let value = Value::from_record(&key, record)?;
                    out.push((key, value));
                }
            }
            // Reaped step by step, so one commit deletes at most a step's keys.
            if self.durability == Durability::Sync && !expired_keys.is_empty() {
                self.reap(expired_keys).await?;
            }
            if complete {
                break;
            }
        }
        debug_assert!(out.len() <= limit);
        debug_assert!(out.windows(2).all(|pair| pair[0].0 < pair[1].0));
        if self.durability == Durability::Sync {
            // Every record read carries a revision at or below this.
            self.watch.wait(self.store.applied_lsn()).await?;
        }
        Ok(out)
    }

    /// `record`, read for `key` without a lock, with its value in hand; a
    /// value-log pointer whose segment GC removed meanwhile is read again
    /// once from the tree (`None`: the key is gone or expired since).
    async fn resolve_read(&self, key: &str, record: Record) -> Result<Option<Record>, DbError> {
        match self.resolve(key, record).await {
            Ok(record) => Ok(Some(record)),
            Err(DbError::Vlog(error)) if error.is_missing_segment() => {
                match self.store.get(key.as_bytes()).await? {
                    Some(record) if !expired(&record, self.now_ms()) => {
                        self.resolve(key, record).await.map(Some)
                    }
                    _ => Ok(None),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Sets `key` to `value` with the default durability; returns the
    /// commit LSN (the key's new revision).
    pub async fn set(&self, key: &str, value: impl Into<Value>) -> Result<u64, DbError> {
        self.set_with(key, value, self.durability).await
    }

    /// Sets `key` to `value`, answering as `durability` says.
    pub async fn set_with(
        &self,
        key: &str,
        value: impl Into<Value>,
        durability: Durability,
    ) -> Result<u64, DbError> {
        let write = Write::Set {
            key: key.to_owned(),
            value: value.into(),
        };
        self.write(vec![write], durability).await
    }

    /// Deletes `key` with the default durability; returns whether it
    /// existed.
    pub async fn del(&self, key: &str) -> Result<bool, DbError> {
        self.del_with(key, self.durability).await
    }

    /// Deletes `key`, answering as `durability` says; returns whether it
    /// existed.
    pub async fn del_with(&self, key: &str, durability: Durability) -> Result<bool, DbError> {
        let write = Write::Del {
            key: key.to_owned(),
        };
        let committed = self.commit(vec![write], durability).await?;
        Ok(committed.changed.first().copied().unwrap_or(false))
    }

    /// Applies `writes` as one atomic commit: after any crash, all of them
    /// or none are there. Returns the commit LSN.
    pub async fn write(&self, writes: Vec<Write>, durability: Durability) -> Result<u64, DbError> {
        Ok(self.commit(writes, durability).await?.lsn)
    }

    /// Deletes those of `keys` that are still expired, durably, before a
    /// `sync` read that saw them expired answers: a wall clock set back
    /// across a restart could otherwise make them readable again (SPEC 3:
    /// an expired key never reappears).
    pub(crate) async fn reap(&self, mut keys: Vec<String>) -> Result<(), DbError> {
        keys.sort();
        keys.dedup();
        let order: Vec<(Vec<u8>, LockMode)> = keys
            .iter()
            .map(|key| (key.as_bytes().to_vec(), LockMode::Exclusive))
            .collect();
        let locks = self.locks.acquire(&order).await;
        let now_ms = self.now_ms();
        let mut deletes = Vec::new();
        for key in keys {
            let still = self.store.get(key.as_bytes()).await?;
            if still.is_some_and(|record| expired(&record, now_ms)) {
                deletes.push(Mutation::Delete {
                    key: key.into_bytes(),
                });
            }
        }
        if deletes.is_empty() {
            return Ok(());
        }
        self.ttl.reaped(deletes.len() as u64);
        self.wal
            .commit(deletes, Durability::Sync, Some(locks))
            .await?;
        Ok(())
    }

    /// Unix milliseconds now, by the calibration taken at open.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Whether `record` reads as missing now; counts it if so.
    pub(crate) fn expired_now(&self, record: &crate::btree::Record, now_ms: u64) -> bool {
        let gone = expired(record, now_ms);
        if gone {
            self.ttl.expired_read();
        }
        gone
    }

    async fn commit(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<crate::wal::Committed, DbError> {
        // Writes take exclusive locks like any transaction, so a plain SET
        // cannot slip between a transaction's read and its write.
        let mut keys: Vec<(Vec<u8>, LockMode)> = writes
            .iter()
            .map(|write| match write {
                Write::Set { key, .. } | Write::SetTtl { key, .. } | Write::Del { key } => {
                    (key.as_bytes().to_vec(), LockMode::Exclusive)
                }
            })
            .collect();
        keys.sort();
        keys.dedup();
        let locks = self.locks.acquire(&keys).await;
        self.commit_locked(writes, durability, locks).await
    }

    async fn commit_locked(
        &self,
        writes: Vec<Write>,
        durability: Durability,
        locks: crate::txn::lock::LockSet,
    ) -> Result<crate::wal::Committed, DbError> {
        let now_ms = self.now_ms();
        let mutations: Vec<Mutation> = writes
            .into_iter()
            .map(|write| match write {
                Write::Set { key, value } => Mutation::Put {
                    key: key.into_bytes(),
                    record: value.into_record(0),
                },
                Write::SetTtl { key, value, ttl_ms } => {
                    let mut record = value.into_record(0);
                    record.expires_at_ms = Some(now_ms.saturating_add(ttl_ms));
                    Mutation::Put {
                        key: key.into_bytes(),
                        record,
                    }
                }
                Write::Del { key } => Mutation::Delete {
                    key: key.into_bytes(),
                },
            })
            .collect();
        if mutations.is_empty() {
            return Ok(crate::wal::Committed {
                lsn: self.store.applied_lsn(),
                changed: Vec::new(),
            });
        }
        self.commit_mutations(mutations, durability, Some(locks))
            .await
    }

    /// Commits `mutations` (their keys locked by `locks`) through the WAL,
    /// values too large for a leaf first moved to the value log.
    pub(crate) async fn commit_mutations(
        &self,
        mut mutations: Vec<Mutation>,
        durability: Durability,
        locks: Option<crate::txn::lock::LockSet>,
    ) -> Result<crate::wal::Committed, DbError> {
        let observed = self.observed.then(|| mutations.clone());
        let pins = self.spill_large_values(&mut mutations).await?;
        self.store.check_mutations(&mutations)?;
        let mut commit = CommitRequest::new(mutations, durability);
        commit.locks = locks;
        commit.pins = pins;
        commit.observed = observed;
        Ok(self.wal.submit(commit).await?)
    }

    /// Moves every value too large for a leaf to the value log and makes
    /// those records durable, before the commit that refers to them goes
    /// to the WAL (SPEC 6.6). The pins keep GC off the records until the
    /// commit is answered.
    async fn spill_large_values(
        &self,
        mutations: &mut [Mutation],
    ) -> Result<Vec<VlogPin>, DbError> {
        let inline_max = self.store.manifest().inline_value_bytes_max as usize;
        let mut pins = Vec::new();
        for mutation in mutations.iter_mut() {
            let Mutation::Put { key, record } = mutation else {
                continue;
            };
            let StoredValue::Inline(bytes) = &record.value else {
                continue;
            };
            if bytes.len() <= inline_max {
                continue;
            }
            if bytes.len() > self.value_bytes_max {
                return Err(DbError::Store(StoreError::ValueTooLarge {
                    len: bytes.len(),
                    max: self.value_bytes_max,
                }));
            }
            let key = std::str::from_utf8(key).map_err(|_| {
                DbError::Store(StoreError::Corrupt {
                    file: "value log",
                    detail: "a key to spill is not UTF-8".to_owned(),
                })
            })?;
            let (pointer, pin) = self.vlog.append(key, record.value_type, bytes).await?;
            record.value = StoredValue::Vlog(pointer);
            pins.push(pin);
        }
        if !pins.is_empty() {
            self.vlog.sync().await?;
        }
        Ok(pins)
    }

    /// `record` with its value in hand: a value-log pointer is read and
    /// checked against the key it was written for.
    pub(crate) async fn resolve(&self, key: &str, mut record: Record) -> Result<Record, DbError> {
        if let StoredValue::Vlog(pointer) = &record.value {
            let value = self.vlog.read(pointer).await?;
            if value.key != key || value.value_type != record.value_type {
                return Err(DbError::Vlog(crate::vlog::VlogError::Corrupt {
                    segment: pointer.segment,
                    offset: pointer.offset,
                    detail: format!("the record holds key {:?}, not {key:?}", value.key),
                }));
            }
            record.value = StoredValue::Inline(value.bytes);
        }
        Ok(record)
    }

    /// Writes a checkpoint now (copy-on-write pages, then a superblock, each
    /// made durable), after the WAL is durable up to what it holds; then
    /// removes the WAL segments it makes unnecessary.
    pub async fn checkpoint(&self) -> Result<CheckpointReport, DbError> {
        let report =
            checkpoint(&self.store, &self.watch, &self.remove_before, self.sabotage).await?;
        self.wal.tidy().await?;
        Ok(report)
    }

    /// Checks the durable tree page by page (see [`ValidateReport`]), then
    /// follows every value-log pointer in the tree to its record.
    pub async fn validate(&self) -> Result<ValidateReport, DbError> {
        let mut report = self.store.validate(|_, _| {}).await?;
        let mut query = crate::store::RangeQuery::all(VALIDATE_SCAN_KEYS);
        loop {
            let entries = self.store.range(&query).await?;
            for (key, record) in &entries {
                let StoredValue::Vlog(pointer) = &record.value else {
                    continue;
                };
                report.vlog_pointers += 1;
                let key_text = String::from_utf8_lossy(key);
                match self.resolve(&key_text, record.clone()).await {
                    Ok(_) => {}
                    // Unless GC moved the value meanwhile.
                    Err(DbError::Vlog(error))
                        if error.is_missing_or_corrupt()
                            && self.store.get(key).await?.as_ref() == Some(record) =>
                    {
                        report.find(
                            None,
                            crate::store::FindingKind::VlogPointer,
                            format!("key {key_text:?} -> {pointer:?}: {error}"),
                        );
                    }
                    Err(DbError::Vlog(error)) if error.is_missing_or_corrupt() => {}
                    Err(error) => return Err(error),
                }
            }
            match entries.last() {
                Some((last, _)) if entries.len() == VALIDATE_SCAN_KEYS => {
                    query.start = Bound::Excluded(last.clone());
                }
                _ => break,
            }
        }
        Ok(report)
    }

    /// Runs one value-log garbage-collection pass now (see
    /// [`VlogGcReport`]): removes the segments a durable checkpoint has made
    /// unreachable, then moves the live values out of the sparsest segment
    /// under the `vlog_gc_live_pct` threshold. That segment goes in a later
    /// pass, after the next checkpoint.
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
            vlog: crate::vlog::VlogStats {
                live_bytes: self.store.vlog_live_bytes(),
                ..self.vlog.stats()
            },
            txns: self.txns.stats(),
            recovery: self.recovery.clone(),
        }
    }

    /// Why the database stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<String> {
        self.store.failure()
    }

    /// Checkpoints (so the next open has nothing to replay), stops the
    /// background tasks and releases the directory.
    pub async fn close(mut self) -> Result<(), DbError> {
        // Background work first, so nothing commits after the checkpoint.
        for (task, stop) in [self.sweeper.take(), self.gc_task.take()]
            .into_iter()
            .flatten()
        {
            drop(stop);
            task.await;
        }
        let checkpointed = if self.store.failure().is_none() {
            self.checkpoint().await.map(|_| ())
        } else {
            Ok(())
        };
        let Db {
            wal,
            writer,
            checkpointer,
            checkpoint_wanted,
            gc,
            ..
        } = self;
        drop(gc);
        drop(wal);
        drop(checkpoint_wanted);
        drop(writer.await);
        checkpointer.await;
        checkpointed
    }
}

/// Writes tracing lines for what recovery repaired.
fn log_recovery(dir: &Path, report: &RecoveryReport) {
    if let Some((segment, offset, reason)) = &report.torn_tail {
        tracing::warn!(
            dir = %dir.display(),
            segment,
            offset,
            reason = reason.as_str(),
            bytes_zeroed = report.tail_bytes_zeroed,
            "repair: cut a torn WAL tail"
        );
    }
    if report.temp_files_removed > 0 {
        tracing::warn!(
            dir = %dir.display(),
            files = report.temp_files_removed,
            "repair: removed unfinished WAL segment files"
        );
    }
    if !report.store_files_removed.is_empty() {
        tracing::warn!(
            dir = %dir.display(),
            files = ?report.store_files_removed,
            "repair: removed leftover files of an interrupted rename or creation"
        );
    }
    if !report.superblocks_invalid.is_empty() {
        tracing::warn!(
            dir = %dir.display(),
            files = ?report.superblocks_invalid,
            "a superblock file holds no valid superblock; opened from the other"
        );
    }
    if report.txns_dropped > 0 {
        tracing::info!(
            dir = %dir.display(),
            txns = report.txns_dropped,
            "repair: dropped transactions the WAL holds no commit for"
        );
    }
    tracing::info!(
        dir = %dir.display(),
        checkpoint_lsn = report.checkpoint_lsn,
        txns_replayed = report.txns_replayed,
        lsn_end = report.lsn_end,
        "recovered"
    );
}

/// A checkpoint that waits for the WAL before writing pages.
async fn checkpoint<E: Env>(
    store: &Store<E>,
    watch: &DurableWatch,
    remove_before: &AtomicU64,
    sabotage: Sabotage,
) -> Result<CheckpointReport, StoreError> {
    store
        .checkpoint_after_wal(|lsn| async move {
            if sabotage == Sabotage::WalRemovedEarly {
                remove_before.fetch_max(lsn, Ordering::Relaxed);
            }
            watch.wait(lsn).await.map_err(|error| StoreError::Failed {
                reason: error.to_string(),
            })
        })
        .await
}

/// The background checkpointer: one checkpoint per request from the WAL
/// writer (WAL grown or dirty pages pressing on the cache), until the
/// database is dropped.
async fn checkpoint_when_wanted<E: Env>(
    store: Arc<Store<E>>,
    watch: Arc<DurableWatch>,
    remove_before: Arc<AtomicU64>,
    sabotage: Sabotage,
    mut wanted: mpsc::Receiver<()>,
) {
    while wanted.next().await.is_some() {
        if store.failure().is_none() {
            // A failure is recorded in the store; the next write reports it.
            let _ = checkpoint(&store, &watch, &remove_before, sabotage).await;
        }
    }
}
