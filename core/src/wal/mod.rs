//! The write-ahead log's meaning: typed records (`Begin`, `Upsert`,
//! `Tombstone`, `Commit`, `Abort`, `Checkpoint`) carried as the payloads of
//! the [`log`](crate::log) layer's frames.
//!
//! Group commit, durability classes and recovery build on this module (see
//! the storage engine II issue); today it holds the record codec.

mod record;

pub use record::{WalError, WalRecord, WalValue};
