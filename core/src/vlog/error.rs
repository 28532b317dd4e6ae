//! Why a value-log operation failed.

use std::io;
use std::path::PathBuf;

/// Why a value-log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VlogError {
    /// A file operation failed.
    #[error("value log I/O failed: {op} on {path}: {source}")]
    Io {
        /// What the value log was doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The environment's error.
        source: io::Error,
    },
    /// A record does not match its pointer, or is malformed.
    #[error("value log corrupted: segment {segment} offset {offset}: {detail}")]
    Corrupt {
        /// Segment id.
        segment: u32,
        /// Byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// Records a durable commit refers to no longer verify (found at open):
    /// damage, not a torn tail. Nothing was changed; `jubectl repair
    /// --accept-data-loss` can cut there.
    #[error("value log damaged: {path} at offset {offset}: {detail}")]
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// Where its valid records stop.
        offset: u64,
        /// What is referenced there.
        detail: String,
    },
    /// A write or sync failed earlier; reopen.
    #[error("the value log failed earlier and accepts no writes until reopened: {0}")]
    Failed(String),
}

impl VlogError {
    /// Whether the record is damaged or its segment file is gone: a finding
    /// for `validate`, not an I/O failure.
    pub fn is_missing_or_corrupt(&self) -> bool {
        match self {
            VlogError::Corrupt { .. } | VlogError::Damaged { .. } => true,
            VlogError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            VlogError::Failed(_) => false,
        }
    }

    /// Whether the record's segment file is gone (GC removes a segment
    /// only once nothing reaches it, so only a reader that found its
    /// pointer without a lock can meet this and live).
    pub fn is_missing_segment(&self) -> bool {
        matches!(self, VlogError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether this is the disk running out of space: an error for the
    /// writer that hit it, not a failure of the log.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, VlogError::Io { source, .. } if crate::env::is_out_of_space(source))
    }
}
