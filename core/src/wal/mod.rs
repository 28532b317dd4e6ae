//! The write-ahead log's meaning and its one writer.
//!
//! - [`record`](WalRecord): the typed records (`Begin`, `Upsert`,
//!   `Tombstone`, `Commit`, `Abort`, `Checkpoint`) carried as the payloads
//!   of the [`log`](crate::log) layer's frames, and their verified encoding;
//! - `commit`: what a committer hands the writer ([`Durability`],
//!   [`CommitError`]);
//! - `handle`: the committers' cheap handle to the writer's bounded queue
//!   ([`GroupCommitStats`] are its counters);
//! - `writer`: the task that owns the log;
//! - `durable`: the durable LSN and the tasks waiting on it;
//! - `observer`: who is told of each commit ([`CommitObserver`]).
//!
//! **Group commit** (SPEC 7.3): one writer task owns the log and is the only
//! one that changes the tree. Each turn it takes every commit waiting in
//! its queue as one batch, logs them (`Begin`, one `Upsert` or `Tombstone`
//! per change, `Commit`), writes the batch in one call, applies it to the
//! tree in LSN order, answers `async` commits, `fdatasync`s once, and then
//! answers `sync` commits. A batch of `async` commits only is not synced
//! at once: the sync waits until a `sync` commit comes, or
//! `group_commit_max_latency_ms` has passed since the first unsynced
//! batch, or memory presses, so a stream of `async` commits is not paced
//! by the disk. Between batches it asks the database's checkpointer for a
//! checkpoint when one is due, and removes the segments a durable
//! checkpoint covers when the checkpointer says so: it never writes a
//! checkpoint itself.
//!
//! Invariants kept here:
//! - **A `sync` commit is answered only after the sync that covers its
//!   `Commit` record returned.** An `async` commit is answered once its
//!   records are written (accepted); records are written in queue order,
//!   so a crash can lose only a suffix of the commit order, and nothing
//!   older than the latency cap.
//! - **The tree changes in LSN order, and only after the WAL has the
//!   change** (written, not yet durable: the checkpointer waits for
//!   durability through the durable watch before writing any page).
//! - **No open snapshot sees a change after its read LSN.** Before it
//!   applies a commit, the writer saves each changed key's old state into
//!   every open snapshot that began before it (design 14.3), under the
//!   turn a snapshot takes its read LSN in.
//! - **A batch never waits for company.** It closes as soon as the writer
//!   is free and the queue is empty: a lone committer pays one fsync, and
//!   while one fsync runs the next batch gathers by itself. So
//!   `group_commit_max_latency_ms` is never reached by waiting.
//! - **Disk full is a definite "no".** If writing a batch hits disk full,
//!   its records are discarded from the log ([`Log::discard_since`]: what
//!   landed is zeroed and synced) before its committers hear
//!   [`CommitError::DiskFull`]; none of them is applied, and the next batch
//!   tries again.
//! - **After a failed write or sync, nothing more is accepted.** Every
//!   committer waiting and every later one gets [`CommitError::Failed`]:
//!   its commit may or may not be durable, and only reopening can tell.
//! - **A segment goes only when a durable checkpoint covers it.**
//! - A batch's records never straddle two segments, so a discard stays
//!   within one file. The queue holds [`QUEUE_REQUESTS_MAX`] requests plus
//!   one per committer waiting to enqueue (each send uses its own sender,
//!   which the channel grants one slot), so it is bounded by the callers'
//!   own concurrency limits; a batch takes at most [`BATCH_REQUESTS_MAX`].
//!
//! [`Log::discard_since`]: crate::log::Log::discard_since

mod commit;
mod durable;
mod handle;
mod observer;
mod writer;

pub(crate) use crate::record::wal::pointer_to;
pub use crate::record::wal::{WalError, WalRecord};
pub use commit::{BATCH_REQUESTS_MAX, CommitError, Durability, LSN_AHEAD_MAX, QUEUE_REQUESTS_MAX};
pub(crate) use commit::{CommitRequest, Committed, set_revisions};
pub(crate) use durable::DurableWatch;
pub use handle::GroupCommitStats;
pub(crate) use handle::{CheckpointWanted, GroupCommit, WriterConfig};
pub use observer::{CommitEvent, CommitObserver, ObserveCommit};
