//! Telling an observer of every commit the writer logs, in LSN order: for
//! change feeds and the simulator's serializability oracle.

use std::sync::Arc;

use crate::record::Mutation;

/// What a [`CommitObserver`] is told.
#[derive(Debug)]
pub enum CommitEvent<'a> {
    /// A commit's records reached the WAL file (not yet durable; its write
    /// or apply may still fail, and it may still be recovered).
    Logged {
        /// Its commit LSN.
        lsn: u64,
        /// The TTL clock's reading its `Commit` record carries.
        now_ms: u64,
        /// Its changes, revisions set.
        mutations: &'a [Mutation],
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
