//! The errors of the tree store.

use std::io;
use std::path::{Path, PathBuf};

use crate::page::PageError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("store I/O failed: {op} on {path}: {source}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the environment returned.
        source: io::Error,
    },
    /// A page failed verification: its bytes are not what was written there.
    #[error("page corrupted: {0}")]
    Page(#[from] PageError),
    /// A MANIFEST or superblock file, or the store's files as a whole, are
    /// not in a state the store ever leaves them in.
    #[error("{file} corrupted: {detail}")]
    Corrupt {
        /// The file (or "data.pages", "superblocks").
        file: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The database was written by an incompatible format version.
    #[error(
        "format major version {found} is not supported (this build reads major {supported}); use a matching Jubilant DB release"
    )]
    VersionMismatch {
        /// Major version in the MANIFEST.
        found: u16,
        /// Major version this build reads.
        supported: u16,
    },
    /// No database exists in the directory and creation was not asked for.
    #[error("no database in {path} (no MANIFEST); create one first")]
    NotFound {
        /// The directory.
        path: PathBuf,
    },
    /// The directory holds files that are not a Jubilant DB database.
    #[error("{path} is not empty and holds no MANIFEST: refusing to create a database over {file}")]
    NotADatabase {
        /// The directory.
        path: PathBuf,
        /// One of the files found.
        file: String,
    },
    /// The disk had no room for what a checkpoint needed first (the WAL
    /// could not be made durable through the checkpoint's LSN): nothing was
    /// written, and the next checkpoint tries again.
    #[error("disk full: {reason}")]
    DiskFull {
        /// What ran out of room.
        reason: String,
    },
    /// An earlier failure (a failed sync or write) left the on-disk state
    /// unknown; reopen the store to recover from what is durable.
    #[error("the store failed earlier and accepts no writes until reopened: {reason}")]
    Failed {
        /// The failure that stopped the store.
        reason: String,
    },
    /// A key longer than the page size allows.
    #[error("key of {len} bytes exceeds the maximum of {max} for this page size")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Keys are one byte or more.
    #[error("keys must not be empty")]
    KeyEmpty,
    /// An inline value above the database's inline threshold.
    #[error("inline value of {len} bytes exceeds the inline maximum of {max}")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `apply` was given an LSN below one already applied.
    #[error("LSN {lsn} is below LSN {applied}, already applied")]
    LsnOutOfOrder {
        /// The LSN given.
        lsn: u64,
        /// The highest LSN applied.
        applied: u64,
    },
    /// The options cannot work.
    #[error("invalid store options: {0}")]
    Options(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(file: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            file,
            detail: detail.into(),
        }
    }

    /// Whether the disk (or a quota) was out of space for a write: nothing
    /// durable changed, and the write may succeed once space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => crate::env::is_out_of_space(source),
            StoreError::DiskFull { .. } => true,
            _ => false,
        }
    }

    /// Whether the error says stored data is damaged (as opposed to an I/O
    /// failure, a refused request, or a stopped store).
    pub fn is_corruption(&self) -> bool {
        matches!(self, StoreError::Page(_) | StoreError::Corrupt { .. })
    }
}
