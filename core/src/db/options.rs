//! How to open (or create) a database, and the limits it keeps.

use std::path::Path;

use crate::log::LogConfig;
#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;
use crate::store::StoreOptions;
use crate::wal::{CommitObserver, Durability};

/// The largest `value_bytes_max` allowed: a value is logged in one WAL
/// record, and a WAL segment is at most 1 GiB.
pub const VALUE_BYTES_LIMIT: usize = 1 << 30;
/// What a WAL record holds besides its key and value at most: the
/// record's fields.
const RECORD_FIELDS_BYTES: u64 = 256;

/// How to open (or create) a database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Create the database if the directory holds none.
    pub create_if_missing: bool,
    /// Page size for a new database (ignored when opening one).
    pub page_bytes: u32,
    /// Values longer than this stay in their WAL record, and the leaf
    /// points to it. Fixed at creation (ignored when opening a database).
    pub inline_value_bytes_max: u32,
    /// Memory budget for cached pages.
    pub cache_bytes: u64,
    /// A checkpoint cuts `data.pages` when at least this many bytes of
    /// free pages sit at its end.
    pub truncate_tail_bytes_min: u64,
    /// Durability of calls that do not name one (SPEC 7.3).
    pub durability: Durability,
    /// Size of each WAL segment file (preallocated). A value is logged in
    /// one record, so a segment must hold `value_bytes_max` and a key.
    pub wal_segment_bytes: u64,
    /// A checkpoint starts once this many WAL bytes were written since the
    /// last one was asked for; it bounds recovery time and WAL disk use.
    pub checkpoint_wal_bytes: u64,
    /// The most WAL bytes one commit may take (its records, framing
    /// included). A commit may span any number of WAL segments; this bounds
    /// the memory its encoded records take while they are written. A larger
    /// commit is refused with [`DbError::TooLarge`](crate::error::DbError::TooLarge)
    /// naming this option.
    pub max_commit_bytes: u64,
    /// Largest value accepted (SPEC 1); a leaf points to the WAL record of
    /// a value above the inline limit.
    pub value_bytes_max: usize,
    /// How often the TTL sweeper runs (0: never; expired keys still read
    /// as missing, they only keep their space).
    pub sweep_interval_ms: u64,
    /// Keys the sweeper looks at per run.
    pub sweep_keys_max: usize,
    /// Value GC relocates a WAL segment kept for its values whose live
    /// bytes fall under this per cent of its size (0: never relocates; a
    /// segment nothing points into still goes at the next checkpoint).
    pub vlog_gc_live_pct: u8,
    /// How often value-log GC runs (0: only when [`Db::vlog_gc`](super::Db::vlog_gc) is called).
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
    /// Open even if the WAL is damaged where it cannot be a torn tail, by
    /// cutting it there and giving up every commit after the damage
    /// ([`RecoveryReport::data_loss`](super::RecoveryReport::data_loss)
    /// says what). Off, such an open is refused and changes nothing. An
    /// operator's decision, made with `jubectl repair --accept-data-loss`.
    pub accept_data_loss: bool,
    /// Bytes one snapshot's undo images may hold (design 14.3): past them
    /// the snapshot ends and its reads fail
    /// [`DbError::SnapshotEnded`](crate::error::DbError::SnapshotEnded),
    /// never answering wrong. 0: a quarter of `cache_bytes`.
    pub snapshot_bytes_max: u64,
    /// Switches that break the database on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

impl DbOptions {
    /// Default WAL segment size: 64 MiB.
    pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = LogConfig::SEGMENT_BYTES_DEFAULT;
    /// Default checkpoint trigger: 64 MiB of WAL.
    pub const CHECKPOINT_WAL_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
    /// Default bound on one commit's WAL bytes: 1 GiB.
    pub const MAX_COMMIT_BYTES_DEFAULT: u64 = 1 << 30;

    pub(super) fn store_options(&self) -> StoreOptions {
        StoreOptions {
            create_if_missing: self.create_if_missing,
            page_bytes: self.page_bytes,
            inline_value_bytes_max: self.inline_value_bytes_max,
            cache_bytes: self.cache_bytes,
            truncate_tail_bytes_min: self.truncate_tail_bytes_min,
            snapshot_bytes_max: self.snapshot_bytes_max,
            #[cfg(feature = "sabotage")]
            sabotage: self.sabotage,
        }
    }

    pub(super) fn log_config(&self, dir: &Path) -> LogConfig {
        // A record holds one key and one value: it fits a segment after
        // the header's block and a batch header.
        let mut config = LogConfig {
            segment_bytes: self.wal_segment_bytes,
            #[cfg(feature = "sabotage")]
            sabotage: self.sabotage,
            ..LogConfig::new(dir)
        };
        let room = self.wal_segment_bytes.saturating_sub(
            config.first_batch_offset()
                + crate::log::BATCH_HEADER_BYTES
                + crate::log::FRAME_HEADER_BYTES,
        );
        config.record_bytes_max = room.clamp(1, u64::from(u32::MAX)) as u32;
        config
    }

    /// Refuses a `value_bytes_max` whose record (with a key of up to
    /// `key_bytes_max`) a WAL segment of `wal_segment_bytes` cannot hold.
    pub(super) fn check_value_fits_segment(
        &self,
        key_bytes_max: usize,
    ) -> Result<(), crate::error::DbError> {
        let record_max = u64::from(self.log_config(Path::new("")).record_bytes_max);
        let needed = (self.value_bytes_max + key_bytes_max) as u64 + RECORD_FIELDS_BYTES;
        if needed > record_max {
            return Err(crate::error::DbError::Options(format!(
                "value_bytes_max {} needs WAL records of {needed} bytes, and wal_segment_bytes {} \
                 holds records of {record_max}: raise wal_segment_bytes or lower value_bytes_max",
                self.value_bytes_max, self.wal_segment_bytes
            )));
        }
        Ok(())
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
            truncate_tail_bytes_min: store.truncate_tail_bytes_min,
            durability: Durability::Sync,
            wal_segment_bytes: Self::WAL_SEGMENT_BYTES_DEFAULT,
            checkpoint_wal_bytes: Self::CHECKPOINT_WAL_BYTES_DEFAULT,
            max_commit_bytes: Self::MAX_COMMIT_BYTES_DEFAULT,
            // A value is one WAL record, and so fits a 64 MiB segment.
            value_bytes_max: 32 * 1024 * 1024,
            sweep_interval_ms: 1000,
            sweep_keys_max: 1000,
            vlog_gc_live_pct: 50,
            vlog_gc_interval_ms: 1000,
            lock_wait_ms_max: 0,
            group_commit_max_latency_ms: 5,
            commit_observer: None,
            accept_data_loss: false,
            snapshot_bytes_max: store.snapshot_bytes_max,
            #[cfg(feature = "sabotage")]
            sabotage: Sabotage::None,
        }
    }
}
