//! Group commit (SPEC 7.3): one writer task owns the log, takes every
//! commit waiting in its queue as one batch, appends their records in
//! queue order, `fdatasync`s once, and then answers each committer.
//!
//! Invariants:
//! - **A `sync` commit is answered only after the sync that covers its
//!   `Commit` record returned.** An `async` commit is answered once its
//!   records are appended (accepted); the same batch's sync makes it durable
//!   shortly after, and since records are appended in queue order, a crash
//!   can lose only a suffix of the commit order.
//! - **A batch never waits for company.** It closes as soon as the writer is
//!   free and the queue is empty: a lone committer pays one fsync, and while
//!   one fsync runs the next batch gathers by itself.
//! - **After a failed write or sync, nothing more is accepted.** The log
//!   refuses further writes; every committer waiting and every later one
//!   gets the error (only reopening can tell what is durable).
//! - The queue is bounded ([`QUEUE_REQUESTS_MAX`]): committers beyond it
//!   wait to enqueue rather than grow memory without bound.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};

use crate::env::Env;
use crate::log::{Log, LogError};

use super::WalRecord;

/// Commits that may wait in the writer's queue.
pub const QUEUE_REQUESTS_MAX: usize = 1024;
/// Commits taken into one batch at most, so one batch's answers are not
/// held back without bound by a stream of arrivals.
pub const BATCH_REQUESTS_MAX: usize = 4096;

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
    /// The log refused the records (too large, disk full, failed earlier).
    #[error("WAL: {0}")]
    Log(String),
    /// The writer task is gone (the WAL was closed).
    #[error("the WAL writer has stopped")]
    Stopped,
    /// A commit needs at least one record.
    #[error("a commit needs at least one record")]
    Empty,
}

impl From<LogError> for CommitError {
    fn from(error: LogError) -> Self {
        CommitError::Log(error.to_string())
    }
}

/// Group-commit counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Commits answered successfully.
    pub commits: u64,
    /// Batches written.
    pub batches: u64,
    /// `fdatasync` calls made for batches.
    pub fsyncs: u64,
    /// The most commits in one batch.
    pub batch_commits_max: u64,
    /// Payload bytes appended.
    pub bytes: u64,
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

struct Request {
    payloads: Vec<Vec<u8>>,
    durability: Durability,
    reply: oneshot::Sender<Result<u64, CommitError>>,
}

/// A handle committers share; cloning it is cheap. Dropping every handle
/// stops the writer, which then returns the log.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Request>,
    stats: Arc<Mutex<GroupCommitStats>>,
}

impl GroupCommit {
    /// Starts the writer task on `env`, which takes ownership of `log`
    /// until every handle is dropped; its join handle then yields the log.
    pub fn start<E: Env>(env: &E, log: Log<E>) -> (GroupCommit, E::JoinHandle<Log<E>>) {
        let (queue, requests) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let stats = Arc::new(Mutex::new(GroupCommitStats::default()));
        let writer = env.spawn("wal-writer", write(log, requests, Arc::clone(&stats)));
        (GroupCommit { queue, stats }, writer)
    }

    /// Appends `records` as one unit and returns the LSN of the last one
    /// (the commit LSN), answering as `durability` says.
    pub async fn commit(
        &self,
        records: &[WalRecord],
        durability: Durability,
    ) -> Result<u64, CommitError> {
        if records.is_empty() {
            return Err(CommitError::Empty);
        }
        let (reply, answer) = oneshot::channel();
        let request = Request {
            payloads: records.iter().map(WalRecord::encode).collect(),
            durability,
            reply,
        };
        self.queue
            .clone()
            .send(request)
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }

    /// The counters so far.
    pub fn stats(&self) -> GroupCommitStats {
        *lock(&self.stats)
    }
}

fn lock(stats: &Mutex<GroupCommitStats>) -> MutexGuard<'_, GroupCommitStats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writer task: one batch per turn until every handle is gone.
async fn write<E: Env>(
    mut log: Log<E>,
    mut requests: mpsc::Receiver<Request>,
    stats: Arc<Mutex<GroupCommitStats>>,
) -> Log<E> {
    while let Some(first) = requests.next().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_REQUESTS_MAX {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        write_batch(&mut log, batch, &stats).await;
    }
    log
}

async fn write_batch<E: Env>(
    log: &mut Log<E>,
    batch: Vec<Request>,
    stats: &Mutex<GroupCommitStats>,
) {
    let mut waiting: Vec<(oneshot::Sender<Result<u64, CommitError>>, u64)> = Vec::new();
    let mut answered = 0u64;
    let mut bytes = 0u64;
    for request in batch {
        let mut last = Ok(0);
        for payload in &request.payloads {
            last = log.append(payload).await.map(|pos| pos.lsn);
            if last.is_err() {
                break;
            }
            bytes += payload.len() as u64;
        }
        match (last, request.durability) {
            (Err(error), _) => {
                // Records appended before the error carry no Commit (it is
                // always last), so recovery ignores them.
                let _ = request.reply.send(Err(error.into()));
            }
            (Ok(lsn), Durability::Async) => {
                answered += 1;
                let _ = request.reply.send(Ok(lsn));
            }
            (Ok(lsn), Durability::Sync) => waiting.push((request.reply, lsn)),
        }
    }
    if answered == 0 && waiting.is_empty() {
        return;
    }
    let synced = log.sync().await;
    let mut stats = lock(stats);
    stats.batches += 1;
    stats.bytes += bytes;
    if synced.is_ok() {
        stats.fsyncs += 1;
    }
    match synced {
        Ok(durable) => {
            for (reply, lsn) in waiting {
                debug_assert!(lsn <= durable, "answered before durable");
                answered += 1;
                let _ = reply.send(Ok(lsn));
            }
        }
        Err(error) => {
            let error = CommitError::from(error);
            for (reply, _) in waiting {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
    stats.commits += answered;
    stats.batch_commits_max = stats.batch_commits_max.max(answered);
}
