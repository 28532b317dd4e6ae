//! Why reading a value by its pointer failed.

use std::io;
use std::path::PathBuf;

/// Why a value-log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VlogError {
    /// A file operation failed.
    #[error("reading a value failed: {op} on {path}: {source}")]
    Io {
        /// What the value log was doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The environment's error.
        source: io::Error,
    },
    /// A record does not match its pointer, or is malformed.
    #[error("value record corrupted: WAL segment {segment} offset {offset}: {detail}")]
    Corrupt {
        /// Segment id.
        segment: u32,
        /// Byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

impl VlogError {
    /// Whether the record is damaged or its segment file is gone: a finding
    /// for `validate`, not an I/O failure.
    pub fn is_missing_or_corrupt(&self) -> bool {
        match self {
            VlogError::Corrupt { .. } => true,
            VlogError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
        }
    }

    /// Whether the record's segment file is gone (GC removes a segment
    /// only once nothing reaches it, so only a reader that found its
    /// pointer without a lock can meet this and live).
    pub fn is_missing_segment(&self) -> bool {
        matches!(self, VlogError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}
