//! What an operator asks of a running database: has it failed, and how
//! far behind are its durable WAL and its durable tree (the server's
//! `Health` request and INFO's status). Read from counters the engine
//! keeps anyway; taking it never waits for a commit or a checkpoint.

use std::time::Duration;

use crate::env::Env;

use super::Db;

/// A running database's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Why the database stopped accepting writes (a failed `fdatasync`, an
    /// abandoned checkpoint), if it did. It stays so until reopened.
    pub failure: Option<String>,
    /// Commits applied but not yet durable: the newest applied LSN minus
    /// the durable LSN (`async` commits waiting for their batch's fsync).
    pub durable_lsn_lag: u64,
    /// Time since the last checkpoint this process wrote finished; `None`
    /// before its first.
    pub since_checkpoint: Option<Duration>,
    /// WAL bytes appended since the last checkpoint sealed (since open
    /// before the first): about what recovery would replay after a crash.
    pub wal_bytes_since_checkpoint: u64,
}

impl<E: Env> Db<E> {
    /// The database's health now.
    pub fn health(&self) -> Health {
        let (finished, wal_bytes_at) = self.checkpointer.mark.last();
        let now = self.clock.env().now_mono();
        Health {
            failure: self.failure(),
            durable_lsn_lag: self
                .store
                .applied_lsn()
                .saturating_sub(self.watch.lsn_durable()),
            since_checkpoint: finished.map(|at| now.saturating_since(at)),
            wal_bytes_since_checkpoint: self
                .wal
                .stats()
                .log
                .append_bytes
                .saturating_sub(wal_bytes_at),
        }
    }
}
