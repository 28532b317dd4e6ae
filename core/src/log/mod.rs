//! The write-ahead log's file layer: framed records in a directory of
//! segment files. It knows nothing of what the records mean.
//!
//! Invariants kept by this module and its children:
//! - **Acknowledged means durable.** [`Log::sync`] returns an LSN only after
//!   every record up to it has been written and `fdatasync`ed, including the
//!   segment file's name (directory sync at creation).
//! - **Nothing returned was never written.** Every record read back passed a
//!   CRC that binds its payload to its segment, offset and LSN
//!   ([`frame`](self)), so a misplaced, stale or torn record is never read as
//!   valid.
//! - **Only a torn tail is repaired; anything else is refused.** Records are
//!   a gap-free LSN sequence across contiguous segments. A record that does
//!   not verify is a torn tail only if nothing valid follows it (no later
//!   segment); otherwise [`Log::open`] fails with [`LogError::Corrupt`]
//!   instead of silently dropping what follows.
//! - **A truncated tail stays dead.** Recovery zeroes every byte after the
//!   last valid record and syncs before appending, so a record discarded by a
//!   crash cannot reappear when new records happen to line up with it.
//! - **A failed sync is fatal.** After an `fdatasync` error the log refuses
//!   writes ([`LogError::Failed`]) until it is reopened; retrying would risk
//!   acknowledging data the kernel already dropped. Disk full during a write
//!   is not fatal: the buffered records stay and the next sync retries them.
//!
//! The byte layout is documented in [`segment`] (the 32-byte segment header)
//! and in the `frame` module (records), and in `docs/design.md`.

mod data_loss;
pub(crate) mod frame;
pub mod loss_history;
mod recovery;
mod scan;
pub mod segment;
mod writer;

use std::io;
use std::path::{Path, PathBuf};

pub use data_loss::DataLoss;
pub use frame::{BATCH_HEADER_BYTES, FRAME_HEADER_BYTES, SKIP_FRAME_BYTES};
pub use recovery::{LogScan, OnDamage, RecoveryReport};
pub(crate) use scan::segment_records;
pub use scan::{Corruption, ScanOutcome, SegmentSummary, Stop, scan, scan_from};
pub use segment::{
    BLOCK_BYTES_MAX, BLOCK_BYTES_MIN, SEGMENT_BYTES_MAX, SEGMENT_HEADER_BYTES, SegmentHeader,
    segment_name,
};
pub use writer::{Log, LogCopy, LogMark, LogStats};

#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;

/// Where a record lives and its log sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordPos {
    /// The record's log sequence number: 1 for the first record ever
    /// written, then +1 per record, with no gaps.
    pub lsn: u64,
    /// Id of the segment file holding it.
    pub segment: u64,
    /// Byte offset of its frame within the segment.
    pub offset: u64,
    /// Its frame's CRC (which binds the payload to segment, offset and
    /// LSN): with the payload's length, what a pointer to the record
    /// checks a read against.
    pub crc: u32,
}

/// How a log is laid out and bounded.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The directory holding the segment files.
    pub dir: PathBuf,
    /// Size of each new segment file, header included. Existing segments
    /// keep the size they were created with.
    pub segment_bytes: u64,
    /// Largest payload one record may carry.
    pub record_bytes_max: u32,
    /// Appended records are buffered up to this many bytes before they are
    /// written, so a batch of records costs one write call.
    pub write_buffer_bytes: usize,
    /// Each batch of records (what one [`Log::write`] or [`Log::sync`]
    /// writes) starts at a multiple of this many bytes in its segment, so
    /// a torn write damages no block holding an earlier batch's records:
    /// the disk's atomic write unit or larger (a power of two from
    /// [`BLOCK_BYTES_MIN`] to [`BLOCK_BYTES_MAX`]). New segments record it.
    pub block_bytes: u32,
    /// The first LSN recovery must replay (0: every record). The scan
    /// reads from the newest segment that starts at or below it; older
    /// segments are not read and may have gaps between them (kept only for
    /// the values they hold, [`Retention`]).
    pub replay_from_lsn: u64,
    /// Switches that break the log on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

/// What the log's owner says about segments no replay needs any more
/// (design 11.2, the WAL is the value log): such a segment may still hold
/// values the tree points to, and then stays (*retained*) until it holds
/// none.
///
/// Invariant the owner keeps: **`keeps` answers true for every segment a
/// durable state may still point into** (the tree in memory, the durable
/// checkpoint, or a WAL record a replay would redo).
pub trait Retention: Send + Sync {
    /// Whether segment `id`, whose records no replay needs, must stay for
    /// the values it holds.
    fn keeps(&self, id: u64) -> bool;
    /// The segments kept only for their values, oldest first, after a
    /// change.
    fn retained(&self, ids: &[u64]);
    /// Segment `id` is about to be removed: readers let go of it.
    fn removing(&self, id: u64);
}

impl LogConfig {
    /// Default segment size: 64 MiB.
    pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
    /// Default record limit: 1 MiB (a database sets its own from the
    /// segment size: a record holds a whole value).
    pub const RECORD_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
    /// Default write buffer: 1 MiB.
    pub const WRITE_BUFFER_BYTES_DEFAULT: usize = 1024 * 1024;
    /// Default block: 4 KiB, the page of common SSDs and filesystems.
    pub const BLOCK_BYTES_DEFAULT: u32 = 4096;

    /// The defaults, for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: Self::SEGMENT_BYTES_DEFAULT,
            record_bytes_max: Self::RECORD_BYTES_MAX_DEFAULT,
            write_buffer_bytes: Self::WRITE_BUFFER_BYTES_DEFAULT,
            block_bytes: Self::BLOCK_BYTES_DEFAULT,
            replay_from_lsn: 0,
            #[cfg(feature = "sabotage")]
            sabotage: Sabotage::None,
        }
    }

    /// Where the first batch of a new segment starts: the first block
    /// after the segment header's.
    pub fn first_batch_offset(&self) -> u64 {
        SEGMENT_HEADER_BYTES.next_multiple_of(u64::from(self.block_bytes))
    }

    pub(crate) fn validate(&self) -> Result<(), LogError> {
        if self.record_bytes_max == 0 {
            return Err(LogError::Config(
                "record_bytes_max must be at least 1".to_owned(),
            ));
        }
        if !segment::block_bytes_valid(self.block_bytes) {
            return Err(LogError::Config(format!(
                "block_bytes {} is not a power of two from {BLOCK_BYTES_MIN} to {BLOCK_BYTES_MAX}",
                self.block_bytes
            )));
        }
        // The header's block, then one batch of one record of the largest
        // size.
        let smallest = self.first_batch_offset()
            + BATCH_HEADER_BYTES
            + FRAME_HEADER_BYTES
            + u64::from(self.record_bytes_max);
        if self.segment_bytes > SEGMENT_BYTES_MAX {
            return Err(LogError::Config(format!(
                "segment_bytes {} exceeds the maximum {SEGMENT_BYTES_MAX}",
                self.segment_bytes
            )));
        }
        if self.segment_bytes < smallest {
            return Err(LogError::Config(format!(
                "segment_bytes {} cannot hold a header block and one batch of one record of \
                 record_bytes_max {} (needs at least {smallest})",
                self.segment_bytes, self.record_bytes_max
            )));
        }
        Ok(())
    }
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file or directory operation failed.
    #[error("log I/O failed: {op} on {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the environment returned.
        source: io::Error,
    },
    /// An earlier failure (a failed sync, or a write error other than disk
    /// full) left the on-disk state unknown; reopen the log to recover.
    #[error("the log failed earlier and accepts no writes until reopened: {reason}")]
    Failed {
        /// The failure that stopped the log.
        reason: String,
    },
    /// The log holds damage that is not a torn tail; opening it would lose
    /// or invent records, so it is refused.
    #[error("log corrupted: {0}")]
    Corrupt(Corruption),
    /// A record is bigger than `record_bytes_max`.
    #[error("record of {len} bytes exceeds record_bytes_max {max}")]
    RecordTooLarge {
        /// The record's payload length.
        len: usize,
        /// The configured limit.
        max: u32,
    },
    /// Empty payloads cannot be framed (a zero length marks the end of a
    /// segment).
    #[error("a log record must not be empty")]
    RecordEmpty,
    /// The configuration cannot work.
    #[error("invalid log configuration: {0}")]
    Config(String),
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether this is the disk running out of space: an error for the
    /// writer that hit it, not a failure of the log.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if crate::env::is_out_of_space(source))
    }
}
