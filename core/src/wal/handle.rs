//! The committers' side of group commit: a cheap handle to the writer's
//! bounded queue, and the writer's fixed configuration.

use std::sync::{Arc, Mutex};

use futures::SinkExt;
use futures::channel::{mpsc, oneshot};

use crate::env::Env;
use crate::lock::LockSet;
use crate::log::{Log, LogStats};
use crate::mutex::lock;
use crate::record::Mutation;
#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;
use crate::store::Store;

use super::commit::{Job, Request, Tidy};
use super::writer::Writer;
use super::{
    CommitError, CommitObserver, CommitRequest, Committed, Durability, DurableWatch,
    QUEUE_REQUESTS_MAX,
};

/// Group-commit counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Commits answered successfully.
    pub commits: u64,
    /// Commits refused because the disk was full.
    pub commits_disk_full: u64,
    /// Batches written.
    pub batches: u64,
    /// `fdatasync` calls made for batches.
    pub fsyncs: u64,
    /// The most commits in one batch.
    pub batch_commits_max: u64,
    /// Commits whose records were larger than one WAL segment's room, so
    /// they spanned segments.
    pub commits_spanning: u64,
    /// Payload bytes appended.
    pub bytes: u64,
    /// The log's own counters.
    pub log: LogStats,
}

impl GroupCommitStats {
    /// Mean commits per batch.
    pub fn batch_commits_mean(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.commits as f64 / self.batches as f64
        }
    }
}

/// A request for a checkpoint, from the writer (the WAL grew, or dirty
/// pages press on the cache) or value-log GC, to the database's
/// checkpointer, which alone writes checkpoints.
#[derive(Debug, Default)]
pub(crate) struct CheckpointWanted {
    /// Told once a checkpoint written after this request is durable (the
    /// writer waits on it when dirty pages fill the whole cache: that is
    /// the writers' backpressure).
    pub done: Option<oneshot::Sender<()>>,
}

/// How the writer behaves, fixed when it starts.
pub(crate) struct WriterConfig {
    /// WAL bytes after which the writer asks for a checkpoint.
    pub checkpoint_wal_bytes: u64,
    /// The most WAL bytes one commit may take (its records are encoded in
    /// memory before they are written).
    pub commit_bytes_max: u64,
    /// Told of each commit as it is applied.
    pub observer: Option<CommitObserver>,
    /// How long written `async` commits may wait for a sync when no `sync`
    /// commit asks for one (zero: every batch is synced at once).
    pub async_sync_within: std::time::Duration,
    /// Switches that break the writer on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

/// A handle committers share; cloning it is cheap. Dropping every handle
/// stops the writer, which then syncs and returns the log.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
    stats: Arc<Mutex<GroupCommitStats>>,
}

impl GroupCommit {
    /// Starts the writer task on `env`. It owns `log` until every handle is
    /// dropped (its join handle then yields the log), applies commits to
    /// `store` (values over the inline limit as pointers read through
    /// `vlog`), publishes durability on `watch`, and asks for checkpoints
    /// on `checkpoint_wanted`.
    pub(crate) fn start<E: Env>(
        env: &E,
        log: Log<E>,
        store: Arc<Store<E>>,
        vlog: Arc<crate::vlog::Vlog<E>>,
        watch: Arc<DurableWatch>,
        checkpoint_wanted: mpsc::Sender<CheckpointWanted>,
        config: WriterConfig,
    ) -> (GroupCommit, E::JoinHandle<Log<E>>) {
        let (queue, jobs) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let stats = Arc::new(Mutex::new(GroupCommitStats::default()));
        let writer = Writer::new(
            env.clone(),
            log,
            store,
            vlog,
            watch,
            Arc::clone(&stats),
            checkpoint_wanted,
            config,
        );
        let task = env.spawn("wal-writer", writer.run(jobs));
        (GroupCommit { queue, stats }, task)
    }

    /// Logs `mutations` as one transaction, applies them, and answers as
    /// `durability` says. The mutations must have passed the store's checks
    /// and have UTF-8 keys. `locks` are held until the answer is sent, even
    /// if this future is dropped before it arrives.
    pub(crate) async fn commit(
        &self,
        mutations: Vec<Mutation>,
        durability: Durability,
        locks: Option<LockSet>,
        now_ms: u64,
    ) -> Result<Committed, CommitError> {
        let mut commit = CommitRequest::new(mutations, durability, now_ms);
        commit.locks = locks;
        self.submit(commit).await
    }

    /// Commits `commit` and waits for its answer.
    pub(crate) async fn submit(&self, commit: CommitRequest) -> Result<Committed, CommitError> {
        let (reply, answer) = oneshot::channel();
        let request = Request { commit, reply };
        self.queue
            .clone()
            .send(Job::Commit(request))
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }

    /// Has the writer remove the WAL segments a durable checkpoint at `lsn`
    /// covers, after logging a `Checkpoint` record for it if `log_record`.
    /// Queued without waiting (each call sends on its own sender, which the
    /// channel always has room for); the returned receiver is told once
    /// it is done.
    pub(crate) fn tidy(&self, lsn: u64, log_record: bool) -> oneshot::Receiver<()> {
        let (done, tidied) = oneshot::channel();
        let job = Job::Tidy(Tidy {
            lsn,
            log_record,
            done,
        });
        // A fresh sender's slot is always free; a stopped writer has
        // nothing left to tidy (the receiver then reports it cancelled).
        let _ = self.queue.clone().try_send(job);
        tidied
    }

    /// Has the writer make everything written durable and list the WAL
    /// files a backup copies (design 12.2). The store must be pinned.
    pub(crate) async fn copy_view(&self) -> Result<crate::log::LogCopy, CommitError> {
        let (reply, view) = oneshot::channel();
        self.queue
            .clone()
            .send(Job::CopyView(reply))
            .await
            .map_err(|_| CommitError::Stopped)?;
        view.await.map_err(|_| CommitError::Stopped)?
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        *lock(&self.stats)
    }
}
