//! The errors of the embedded API ([`DbError`]), gathered from every layer
//! below it: the database and the transaction types above both speak it.

use crate::log::LogError;
use crate::record::ValueMalformed;
use crate::store::StoreError;
use crate::vlog::VlogError;
use crate::wal::{CommitError, WalError};

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The tree store failed, refused the input (an empty or too long key,
    /// a too large value), or found damage.
    #[error(transparent)]
    Store(StoreError),
    /// The WAL's files failed or hold damage that is not a torn tail.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A value could not be read where its pointer says (an I/O error, or
    /// a WAL record that does not match the pointer).
    #[error(transparent)]
    Vlog(VlogError),
    /// A WAL record passed its checksum but is not a valid record.
    #[error("WAL record at LSN {lsn}: {error}")]
    Record {
        /// The record's LSN.
        lsn: u64,
        /// What is wrong with it.
        error: WalError,
    },
    /// The WAL does not cover what the checkpoint needs (records after the
    /// checkpoint LSN are gone): opening would silently lose commits.
    #[error("the WAL is missing records the database needs: {0}")]
    WalMissing(String),
    /// The disk is full: the write was not applied and never will be.
    /// Writes succeed again once space is freed.
    #[error("disk full: the write was not applied ({0})")]
    DiskFull(String),
    /// Something the write needed was unavailable for a moment (such as a
    /// file descriptor): the write was not applied and may be retried.
    #[error("a resource the write needed was unavailable; it was not applied ({0})")]
    Unavailable(String),
    /// A write or sync failed: the database accepts no writes until it is
    /// reopened, and this write may or may not be durable (recovery decides).
    #[error("storage failed; reopen the database to recover: {0}")]
    StorageFailed(String),
    /// The write's WAL records exceed what one commit may take; `limit`
    /// names the bound it met.
    #[error(
        "too large for {limit}: the commit needs {bytes}, the limit is {max}; nothing was written"
    )]
    TooLarge {
        /// What it needs (bytes, or records for the record count).
        bytes: u64,
        /// The bound.
        max: u64,
        /// Which bound, in words a user can act on.
        limit: &'static str,
    },
    /// The write waited longer than `lock_wait_ms_max` for its keys' locks
    /// (transactions held them): nothing was written; it may be retried.
    #[error(
        "busy: waited {waited_ms} ms for locks held by other transactions; nothing was written"
    )]
    Busy {
        /// How long it waited.
        waited_ms: u64,
    },
    /// The options cannot work.
    #[error("invalid options: {0}")]
    Options(String),
    /// The database has been closed.
    #[error("the database is closed")]
    Closed,
    /// Another backup holds the pin; one runs at a time.
    #[error("a backup is already running; one runs at a time")]
    BackupInProgress,
    /// A backup or restore could not read its source or write its copy.
    #[error("backup: {0}")]
    Backup(String),
    /// A value read from disk does not match its type.
    #[error(
        "the value of key {} is malformed: {reason}",
        crate::record::Escaped(key)
    )]
    ValueMalformed {
        /// The key.
        key: Vec<u8>,
        /// What is wrong.
        reason: ValueMalformed,
    },
    /// A snapshot can no longer answer (design 14.3): its undo images
    /// passed `snapshot_bytes_max`, or a key it needed could not be kept.
    /// Take a new snapshot; this one never answers wrong instead.
    #[error("the snapshot at read LSN {read_lsn} has ended: {reason}")]
    SnapshotEnded {
        /// The snapshot's read LSN.
        read_lsn: u64,
        /// Why it ended.
        reason: String,
    },
    /// [`SNAPSHOTS_LIVE_MAX`](crate::store::SNAPSHOTS_LIVE_MAX) snapshots
    /// are open already.
    #[error("{open} snapshots are open, the most a database keeps: drop one first")]
    TooManySnapshots {
        /// How many are open.
        open: usize,
    },
}

impl From<StoreError> for DbError {
    fn from(error: StoreError) -> Self {
        if error.is_disk_full() {
            DbError::DiskFull(error.to_string())
        } else {
            DbError::Store(error)
        }
    }
}

impl From<VlogError> for DbError {
    fn from(error: VlogError) -> Self {
        DbError::Vlog(error)
    }
}

impl From<CommitError> for DbError {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::DiskFull(reason) => DbError::DiskFull(reason),
            CommitError::Unavailable(reason) => DbError::Unavailable(reason),
            CommitError::Failed(reason) => DbError::StorageFailed(reason),
            CommitError::TooLarge { bytes, max, limit } => DbError::TooLarge { bytes, max, limit },
            CommitError::Stopped => DbError::Closed,
        }
    }
}

impl DbError {
    /// `key`'s value read from disk does not make a value of its type.
    pub fn malformed(key: &[u8], reason: ValueMalformed) -> Self {
        DbError::ValueMalformed {
            key: key.to_vec(),
            reason,
        }
    }

    /// Whether stored data was found damaged (as opposed to an I/O error,
    /// bad input, or a full disk).
    pub fn is_corruption(&self) -> bool {
        match self {
            DbError::Store(error) => error.is_corruption(),
            DbError::Log(LogError::Corrupt(_)) | DbError::Record { .. } => true,
            DbError::WalMissing(_) | DbError::ValueMalformed { .. } => true,
            DbError::Vlog(VlogError::Corrupt { .. }) => true,
            _ => false,
        }
    }
}
