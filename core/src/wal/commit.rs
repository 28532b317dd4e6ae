//! What a committer hands the WAL writer and what it hears back.

use futures::channel::oneshot;

use crate::lock::LockSet;
use crate::record::Mutation;

/// Commits that may wait in the writer's queue.
pub const QUEUE_REQUESTS_MAX: usize = 1024;
/// Commits taken into one batch at most, so one batch's answers are not
/// held back without bound by a stream of arrivals.
pub const BATCH_REQUESTS_MAX: usize = 4096;
/// The writer never gives a record an LSN more than this far past the
/// durable LSN (it syncs first). So after a crash no LSN past the
/// recovered end plus this was ever handed out, and a reopened database
/// skips that far: an LSN, and so a revision, is never given twice
/// (SPEC 1). It also bounds one commit's records.
pub const LSN_AHEAD_MAX: u64 = 1 << 24;

/// When a commit is answered (SPEC 7.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// After the batch holding the commit record is durable.
    #[default]
    Sync,
    /// Once the commit is accepted into the log; a crash may lose it, but
    /// only together with every later commit.
    Async,
}

/// Why a commit failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The disk is full: the commit was not applied and never will be.
    /// Writes succeed again once space is freed.
    #[error("disk full: the commit was not applied ({0})")]
    DiskFull(String),
    /// Something the commit needed was unavailable for a moment (no file
    /// descriptor for a new WAL segment, a failed write to it before it
    /// was named): the commit was not applied and never will be; the
    /// next one tries again.
    #[error("a resource the commit needed was unavailable; it was not applied ({0})")]
    Unavailable(String),
    /// A write or sync failed, or the tree could not take the change: the
    /// engine accepts no writes until reopened, and this commit may or may
    /// not be durable (recovery decides).
    #[error("storage failed; reopen the database to recover: {0}")]
    Failed(String),
    /// The commit's records cannot be taken: `limit` names the bound.
    #[error("too large for {limit}: the commit needs {bytes}, the limit is {max}")]
    TooLarge {
        /// What it needs (bytes, or records for the record count).
        bytes: u64,
        /// The bound.
        max: u64,
        /// Which bound, in words a user can act on.
        limit: &'static str,
    },
    /// The writer task is gone (the database was closed).
    #[error("the WAL writer has stopped")]
    Stopped,
}

/// What a successful commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Committed {
    /// The LSN of its `Commit` record: the revision of every key it wrote.
    pub lsn: u64,
    /// Per change, whether it changed the tree.
    pub changed: Vec<bool>,
}

pub(super) type Reply = oneshot::Sender<Result<Committed, CommitError>>;

/// One commit for the WAL writer.
pub(crate) struct CommitRequest {
    /// The changes, in order.
    pub mutations: Vec<Mutation>,
    /// When to answer.
    pub durability: Durability,
    /// The committer's locks: released by the writer once the commit is
    /// answered, even if the committer stopped waiting (strict 2PL).
    pub locks: Option<LockSet>,
    /// Each `Put` keeps the revision in its record instead of taking the
    /// commit's LSN (value-log GC moving a value is not a write).
    pub keep_revisions: bool,
    /// Unix ms by the TTL clock when the commit's transaction ran: logged
    /// in its `Commit` record, so TTL time after a crash restarts no
    /// earlier than any durable commit's.
    pub now_ms: u64,
}

impl CommitRequest {
    /// A plain commit of `mutations`, made at `now_ms` by the TTL clock.
    pub(crate) fn new(mutations: Vec<Mutation>, durability: Durability, now_ms: u64) -> Self {
        CommitRequest {
            mutations,
            durability,
            locks: None,
            keep_revisions: false,
            now_ms,
        }
    }
}

/// Gives each `Put` of a commit at `lsn` its revision: the LSN, unless the
/// commit keeps the revisions its records carry.
pub(crate) fn set_revisions(mutations: &mut [Mutation], lsn: u64, keep: bool) {
    for mutation in mutations {
        if let Mutation::Put { record, .. } = mutation
            && !(keep && record.revision != 0)
        {
            record.revision = lsn;
        }
    }
}

/// A commit and where its answer goes.
pub(super) struct Request {
    pub commit: CommitRequest,
    pub reply: Reply,
}

/// A log segment cut: the durable checkpoint covers every record at or
/// below `lsn`.
pub(super) struct Tidy {
    /// The durable checkpoint's LSN.
    pub lsn: u64,
    /// Whether to log a `Checkpoint` record for it (sabotage
    /// `wal-removed-early` only removes, before the checkpoint is durable).
    pub log_record: bool,
    /// Answered once done.
    pub done: oneshot::Sender<()>,
}

/// What the writer's queue carries.
pub(super) enum Job {
    Commit(Request),
    /// Log a `Checkpoint` record for the durable checkpoint and remove the
    /// segments it no longer needs.
    Tidy(Tidy),
    /// Make everything written durable, and answer the files a backup
    /// copies (design 12.2).
    CopyView(oneshot::Sender<Result<crate::log::LogCopy, CommitError>>),
}
