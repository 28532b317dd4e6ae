//! The write-ahead log's meaning: typed records (`Begin`, `Upsert`,
//! `Tombstone`, `Commit`, `Abort`, `Checkpoint`) carried as the payloads of
//! the [`log`](crate::log) layer's frames.
//!
//! - [`record`](WalRecord): the records and their verified encoding;
//! - group commit: the writer task that batches commits into one
//!   `fdatasync`, applies them to the tree in LSN order and answers each by
//!   its [`Durability`] class ([`GroupCommitStats`] are its counters).
//!
//! The embedded database ([`db`](crate::db)) drives both.

mod group_commit;
mod record;

pub use group_commit::{
    BATCH_REQUESTS_MAX, CommitError, Durability, GroupCommitStats, QUEUE_REQUESTS_MAX,
};
pub(crate) use group_commit::{CommitRequest, Committed, DurableWatch, GroupCommit, WriterConfig};
pub use record::{WalError, WalRecord, WalValue};
