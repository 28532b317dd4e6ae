//! Group commit (SPEC 7.3): one writer task owns the log and is the only
//! one that changes the tree. Each turn it takes every commit waiting in
//! its queue as one batch, logs them (`Begin`, one `Upsert` or `Tombstone`
//! per change, `Commit`), writes the batch in one call, applies it to the
//! tree in LSN order, answers `async` commits, `fdatasync`s once, and then
//! answers `sync` commits. A batch of `async` commits only is not synced
//! at once: the sync waits until a `sync` commit comes, or
//! `group_commit_max_latency_ms` has passed since the first unsynced
//! batch, or memory presses, so a stream of `async` commits is not paced
//! by the disk.
//!
//! Invariants:
//! - **A `sync` commit is answered only after the sync that covers its
//!   `Commit` record returned.** An `async` commit is answered once its
//!   records are written (accepted); records are written in queue order,
//!   so a crash can lose only a suffix of the commit order, and nothing
//!   older than the latency cap.
//! - **The tree changes in LSN order, and only after the WAL has the
//!   change** (written, not yet durable: the checkpointer waits for
//!   durability through [`DurableWatch`] before writing any page).
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
//! - A batch's records never straddle two segments, so a discard stays
//!   within one file. The queue holds [`QUEUE_REQUESTS_MAX`] requests plus
//!   one per committer waiting to enqueue (each send uses its own sender,
//!   which the channel grants one slot), so it is bounded by the callers'
//!   own concurrency limits; a batch takes at most [`BATCH_REQUESTS_MAX`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use futures::{SinkExt, StreamExt};

use crate::btree::mutator::Mutation;
use crate::db::CommitEvent;
use crate::env::{Env, MonoTime};
use crate::log::{FRAME_HEADER_BYTES, Log, LogError, LogStats};
use crate::sabotage::Sabotage;
use crate::store::{Store, StoreError};
use crate::txn::lock::LockSet;
use crate::vlog::VlogPin;

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
    /// The disk is full: the commit was not applied and never will be.
    /// Writes succeed again once space is freed.
    #[error("disk full: the commit was not applied ({0})")]
    DiskFull(String),
    /// A write or sync failed, or the tree could not take the change: the
    /// engine accepts no writes until reopened, and this commit may or may
    /// not be durable (recovery decides).
    #[error("storage failed; reopen the database to recover: {0}")]
    Failed(String),
    /// The commit's records cannot fit in one WAL segment.
    #[error("commit of {bytes} bytes of WAL records exceeds the limit {max}")]
    TooLarge {
        /// Bytes its frames need.
        bytes: u64,
        /// The most one commit may take.
        max: u64,
    },
    /// The writer task is gone (the database was closed).
    #[error("the WAL writer has stopped")]
    Stopped,
}

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
    /// Payload bytes appended.
    pub bytes: u64,
    /// WAL segments removed because the durable checkpoint covers them.
    pub segments_removed: u64,
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

/// What a successful commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Committed {
    /// The LSN of its `Commit` record: the revision of every key it wrote.
    pub lsn: u64,
    /// Per change, whether it changed the tree.
    pub changed: Vec<bool>,
}

type Reply = oneshot::Sender<Result<Committed, CommitError>>;

/// One commit for the WAL writer.
pub(crate) struct CommitRequest {
    /// The changes, in order.
    pub mutations: Vec<Mutation>,
    /// When to answer.
    pub durability: Durability,
    /// The committer's locks: released by the writer once the commit is
    /// answered, even if the committer stopped waiting (strict 2PL).
    pub locks: Option<LockSet>,
    /// The value-log records the changes point to: held from GC until
    /// the commit is answered (applied, or refused).
    pub pins: Vec<VlogPin>,
    /// Each `Put` keeps the revision in its record instead of taking the
    /// commit's LSN (value-log GC moving a value is not a write).
    pub keep_revisions: bool,
    /// The changes as the commit observer is to see them (values in hand,
    /// not value-log pointers); `None`: as logged.
    pub observed: Option<Vec<Mutation>>,
}

impl CommitRequest {
    /// The commit failed with its outcome unknown (recovery may still bring
    /// it back): its value-log records stay safe from GC for good.
    fn keep_pins(&mut self) {
        for pin in self.pins.drain(..) {
            pin.keep();
        }
    }

    /// A plain commit of `mutations`.
    pub(crate) fn new(mutations: Vec<Mutation>, durability: Durability) -> Self {
        CommitRequest {
            mutations,
            durability,
            locks: None,
            pins: Vec::new(),
            keep_revisions: false,
            observed: None,
        }
    }
}

struct Request {
    commit: CommitRequest,
    reply: Reply,
}

enum Job {
    Commit(Request),
    /// Log a `Checkpoint` record for the durable checkpoint and remove the
    /// segments it no longer needs; answered when done.
    Tidy(oneshot::Sender<()>),
}

/// The highest LSN known durable, and the tasks waiting for it to grow.
/// The checkpointer waits here before writing pages (write-ahead rule), and
/// so does a `sync` read.
pub(crate) struct DurableWatch {
    state: Mutex<WatchState>,
}

struct WatchState {
    lsn_durable: u64,
    stopped: Option<CommitError>,
    waiters: Vec<(u64, oneshot::Sender<Result<(), CommitError>>)>,
    /// Tells the writer someone waits, so a deferred sync runs now.
    nudge: Option<mpsc::UnboundedSender<()>>,
}

impl DurableWatch {
    pub(crate) fn new(lsn_durable: u64) -> Self {
        DurableWatch {
            state: Mutex::new(WatchState {
                lsn_durable,
                stopped: None,
                waiters: Vec::new(),
                nudge: None,
            }),
        }
    }

    /// The channel on which every wait that has to wait is announced (for
    /// the writer, replacing any earlier one).
    fn nudges(&self) -> mpsc::UnboundedReceiver<()> {
        let (nudge, nudges) = mpsc::unbounded();
        self.lock().nudge = Some(nudge);
        nudges
    }

    /// Whether anyone waits for an LSN not yet durable.
    fn awaited(&self) -> bool {
        !self.lock().waiters.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The highest LSN known durable.
    pub(crate) fn lsn_durable(&self) -> u64 {
        self.lock().lsn_durable
    }

    /// Returns once everything up to `lsn` is durable, or the error that
    /// means it may never be.
    pub(crate) async fn wait(&self, lsn: u64) -> Result<(), CommitError> {
        let answer = {
            let mut state = self.lock();
            if state.lsn_durable >= lsn {
                return Ok(());
            }
            if let Some(error) = &state.stopped {
                return Err(error.clone());
            }
            let (tell, answer) = oneshot::channel();
            state.waiters.push((lsn, tell));
            if let Some(nudge) = &state.nudge {
                let _ = nudge.unbounded_send(());
            }
            answer
        };
        answer.await.unwrap_or(Err(CommitError::Stopped))
    }

    fn advance(&self, lsn: u64) {
        let mut state = self.lock();
        assert!(lsn >= state.lsn_durable, "the durable LSN never moves back");
        state.lsn_durable = lsn;
        let waiters = std::mem::take(&mut state.waiters);
        for (want, tell) in waiters {
            if want <= lsn {
                let _ = tell.send(Ok(()));
            } else {
                state.waiters.push((want, tell));
            }
        }
    }

    fn stop(&self, error: CommitError) {
        let mut state = self.lock();
        for (_, tell) in state.waiters.drain(..) {
            let _ = tell.send(Err(error.clone()));
        }
        state.stopped.get_or_insert(error);
    }
}

/// How the writer behaves, fixed when it starts.
pub(crate) struct WriterConfig {
    /// WAL bytes after which the writer asks for a checkpoint.
    pub checkpoint_wal_bytes: u64,
    /// Told of each commit as it is applied.
    pub observer: Option<crate::db::CommitObserver>,
    /// How long written `async` commits may wait for a sync when no `sync`
    /// commit asks for one (zero: every batch is synced at once).
    pub async_sync_within: std::time::Duration,
    /// Switches that break the writer on purpose (tests only).
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
    /// `store`, publishes durability on `watch`, and sends on
    /// `checkpoint_wanted` when the WAL or dirty pages have grown enough for
    /// a checkpoint. `remove_before` (sabotage only) lowers the bar for
    /// removing segments.
    pub(crate) fn start<E: Env>(
        env: &E,
        log: Log<E>,
        store: Arc<Store<E>>,
        watch: Arc<DurableWatch>,
        checkpoint_wanted: mpsc::Sender<()>,
        remove_before: Arc<AtomicU64>,
        config: WriterConfig,
    ) -> (GroupCommit, E::JoinHandle<Log<E>>) {
        let (queue, jobs) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let stats = Arc::new(Mutex::new(GroupCommitStats::default()));
        let writer = Writer {
            env: env.clone(),
            unsynced_since: None,
            nudges: watch.nudges(),
            log,
            store,
            watch,
            stats: Arc::clone(&stats),
            carry: VecDeque::new(),
            checkpoint_wanted,
            remove_before,
            wal_bytes_since_request: 0,
            checkpoint_lsn_tidied: 0,
            config,
        };
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
    ) -> Result<Committed, CommitError> {
        let mut commit = CommitRequest::new(mutations, durability);
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

    /// Logs a `Checkpoint` record for the durable checkpoint and removes
    /// the WAL segments it no longer needs.
    pub(crate) async fn tidy(&self) -> Result<(), CommitError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .clone()
            .send(Job::Tidy(reply))
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        *lock(&self.stats)
    }
}

/// Gives each `Put` of a commit at `lsn` its revision: the LSN, unless the
/// commit keeps the revisions its records carry.
fn set_revisions(mutations: &mut [Mutation], lsn: u64, keep: bool) {
    for mutation in mutations {
        if let Mutation::Put { record, .. } = mutation
            && !(keep && record.revision != 0)
        {
            record.revision = lsn;
        }
    }
}

fn lock(stats: &Mutex<GroupCommitStats>) -> MutexGuard<'_, GroupCommitStats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A commit whose records are in the log, waiting for its answer.
struct Accepted {
    request: Request,
    lsn: u64,
}

struct Writer<E: Env> {
    env: E,
    /// When the oldest written batch not yet synced was written.
    unsynced_since: Option<MonoTime>,
    /// A wait on the durable LSN began: a deferred sync is due now.
    nudges: mpsc::UnboundedReceiver<()>,
    log: Log<E>,
    store: Arc<Store<E>>,
    watch: Arc<DurableWatch>,
    stats: Arc<Mutex<GroupCommitStats>>,
    /// Commits taken from the queue that did not fit the last batch's
    /// segment; they open the next batch, in order.
    carry: VecDeque<Request>,
    checkpoint_wanted: mpsc::Sender<()>,
    remove_before: Arc<AtomicU64>,
    wal_bytes_since_request: u64,
    checkpoint_lsn_tidied: u64,
    config: WriterConfig,
}

impl<E: Env> Writer<E> {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) -> Log<E> {
        loop {
            let mut batch: Vec<Request> = Vec::new();
            let mut tidies: Vec<oneshot::Sender<()>> = Vec::new();
            if self.carry.is_empty() {
                let job = match self.sync_due_in() {
                    None => jobs.next().await,
                    Some(wait) => {
                        let env = self.env.clone();
                        let next = std::pin::pin!(jobs.next());
                        let timer = std::pin::pin!(env.sleep(wait));
                        let nudged = std::pin::pin!(self.nudges.next());
                        match select(next, select(timer, nudged)).await {
                            Either::Left((job, _)) => job,
                            Either::Right(_) => {
                                // The latency cap, or someone waits for
                                // durability: nothing else will sync the
                                // `async` commits written. A failure is
                                // published on the watch.
                                let _ = self.sync_log().await;
                                continue;
                            }
                        }
                    }
                };
                match job {
                    Some(Job::Commit(request)) => batch.push(request),
                    Some(Job::Tidy(reply)) => tidies.push(reply),
                    None => break,
                }
            }
            while batch.len() < BATCH_REQUESTS_MAX {
                if let Some(request) = self.carry.pop_front() {
                    batch.push(request);
                    continue;
                }
                match jobs.try_recv() {
                    Ok(Job::Commit(request)) => batch.push(request),
                    Ok(Job::Tidy(reply)) => tidies.push(reply),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write_batch(batch).await;
            }
            self.after_batch(!tidies.is_empty()).await;
            for reply in tidies {
                let _ = reply.send(());
            }
        }
        // Every handle is gone: make what was accepted durable, best effort
        // (an `async` commit was promised nothing more).
        if let Ok(lsn) = self.log.sync().await {
            self.watch.advance(lsn);
        }
        self.watch.stop(CommitError::Stopped);
        lock(&self.stats).log = self.log.stats();
        self.log
    }

    fn refusal(&self) -> Option<CommitError> {
        if let Some(reason) = self.log.failure() {
            return Some(CommitError::Failed(reason.to_owned()));
        }
        self.store.failure().map(CommitError::Failed)
    }

    /// The frames of one commit as transaction `txn`, and their bytes.
    fn encode(request: &Request, txn: u64) -> (Vec<Vec<u8>>, u64) {
        let commit = &request.commit;
        let mut payloads = Vec::with_capacity(commit.mutations.len() + 2);
        payloads.push(WalRecord::Begin { txn }.encode());
        for mutation in &commit.mutations {
            payloads.push(WalRecord::for_mutation(txn, mutation, commit.keep_revisions).encode());
        }
        payloads.push(WalRecord::Commit { txn }.encode());
        let bytes = payloads
            .iter()
            .map(|p| FRAME_HEADER_BYTES + p.len() as u64)
            .sum();
        (payloads, bytes)
    }

    async fn write_batch(&mut self, batch: Vec<Request>) {
        if let Some(error) = self.refusal() {
            for request in batch {
                let _ = request.reply.send(Err(error.clone()));
            }
            return;
        }
        let mut accepted: Vec<Accepted> = Vec::with_capacity(batch.len());
        let mut bytes = 0u64;
        let mut mark = self.log.mark();
        let mut requests = batch.into_iter();
        let mut failure: Option<LogError> = None;
        while let Some(request) = requests.next() {
            // The transaction id is its Begin record's LSN: unique forever,
            // so a crashed transaction's records never join a later one.
            let txn = self.log.next_lsn();
            let (payloads, size) = Self::encode(&request, txn);
            let too_large = payloads
                .iter()
                .any(|p| p.len() > self.log.record_bytes_max() as usize)
                || size > self.log.segment_room_bytes();
            if too_large {
                let max = self
                    .log
                    .segment_room_bytes()
                    .min(u64::from(self.log.record_bytes_max()));
                let _ = request
                    .reply
                    .send(Err(CommitError::TooLarge { bytes: size, max }));
                continue;
            }
            if size > self.log.room_bytes() {
                if !accepted.is_empty() {
                    // The rest opens the next batch, in a fresh segment.
                    self.carry.push_back(request);
                    self.carry.extend(requests);
                    break;
                }
                if let Err(error) = self.log.roll().await {
                    // Nothing of it was appended; the rest may fare better.
                    accepted.push(Accepted { request, lsn: 0 });
                    self.carry.extend(requests);
                    failure = Some(error);
                    break;
                }
                mark = self.log.mark();
            }
            let mut appended = Ok(0);
            for payload in &payloads {
                appended = self.log.append(payload).await.map(|pos| pos.lsn);
                if appended.is_err() {
                    break;
                }
            }
            match appended {
                Ok(lsn) => {
                    debug_assert_eq!(lsn, txn + payloads.len() as u64 - 1);
                    bytes += size;
                    accepted.push(Accepted { request, lsn });
                }
                Err(error) => {
                    accepted.push(Accepted { request, lsn: 0 });
                    self.carry.extend(requests);
                    failure = Some(error);
                    break;
                }
            }
        }
        if failure.is_none() && accepted.is_empty() {
            // Every request was refused before it was logged.
            return;
        }
        if failure.is_none()
            && let Err(error) = self.log.write().await
        {
            failure = Some(error);
        }
        // Whatever reached the file may survive a crash, even if the write
        // failed: observers hear of it now (and of a discard, below).
        self.observe(&accepted);
        match failure {
            Some(error) => self.refuse(mark, accepted, error).await,
            None => self.apply_and_answer(accepted, bytes).await,
        }
    }

    /// Tells the observer of commits whose records reached the log file
    /// (every one of them may be recovered), in LSN order, with revisions.
    fn observe(&self, accepted: &[Accepted]) {
        let Some(observer) = &self.config.observer else {
            return;
        };
        for item in accepted.iter().filter(|item| item.lsn > 0) {
            let commit = &item.request.commit;
            let mut mutations = commit
                .observed
                .clone()
                .unwrap_or_else(|| commit.mutations.clone());
            set_revisions(&mut mutations, item.lsn, commit.keep_revisions);
            (observer.0)(CommitEvent::Logged {
                lsn: item.lsn,
                mutations: &mutations,
            });
        }
    }

    /// A batch could not be written: on disk full, discard it and say so
    /// (definite); otherwise the log failed (outcome unknown).
    async fn refuse(
        &mut self,
        mark: crate::log::LogMark,
        accepted: Vec<Accepted>,
        error: LogError,
    ) {
        let answer = if error.is_disk_full() {
            match self.log.discard_since(mark).await {
                Ok(()) => {
                    if let Some(observer) = &self.config.observer {
                        (observer.0)(CommitEvent::Discarded {
                            from_lsn: mark.lsn(),
                        });
                    }
                    CommitError::DiskFull(error.to_string())
                }
                Err(discard) => CommitError::Failed(discard.to_string()),
            }
        } else {
            CommitError::Failed(error.to_string())
        };
        if let CommitError::Failed(_) = &answer {
            self.watch.stop(answer.clone());
        }
        let mut stats = lock(&self.stats);
        if let CommitError::DiskFull(_) = &answer {
            stats.commits_disk_full += accepted.len() as u64;
        }
        stats.log = self.log.stats();
        drop(stats);
        for mut item in accepted {
            if let CommitError::Failed(_) = &answer {
                item.request.commit.keep_pins();
            }
            let _ = item.request.reply.send(Err(answer.clone()));
        }
    }

    async fn apply_and_answer(&mut self, accepted: Vec<Accepted>, bytes: u64) {
        let mut waiting: Vec<(Request, Committed)> = Vec::new();
        let mut answered = 0u64;
        for Accepted { mut request, lsn } in accepted {
            let mut mutations = std::mem::take(&mut request.commit.mutations);
            set_revisions(&mut mutations, lsn, request.commit.keep_revisions);
            let committed = match self.store.apply_unrelieved(&mutations, lsn).await {
                Ok(changed) => Committed { lsn, changed },
                Err(error) => {
                    // The records are in the log and reopening replays
                    // them, but the tree in memory now lacks a logged
                    // commit: a checkpoint past this LSN would lose it for
                    // good. So the store stops, as after any failure.
                    self.store
                        .fail(format!("applying LSN {lsn} failed: {error}"));
                    request.commit.keep_pins();
                    let _ = request
                        .reply
                        .send(Err(CommitError::Failed(error.to_string())));
                    continue;
                }
            };
            let ack_now = request.commit.durability == Durability::Async
                || self.config.sabotage == Sabotage::AckBeforeSync;
            if ack_now {
                answered += 1;
                let _ = request.reply.send(Ok(committed));
            } else {
                waiting.push((request, committed));
            }
        }
        let synced = if waiting.is_empty() && self.may_defer_sync() {
            // Only `async` commits: their sync may wait (see the module).
            self.unsynced_since.get_or_insert(self.env.now_mono());
            None
        } else {
            Some(self.sync_log().await)
        };
        let mut stats = lock(&self.stats);
        stats.batches += 1;
        stats.bytes += bytes;
        stats.log = self.log.stats();
        match synced.unwrap_or(Ok(0)) {
            Ok(durable) => {
                for (request, committed) in waiting {
                    debug_assert!(committed.lsn <= durable, "answered before durable");
                    answered += 1;
                    let _ = request.reply.send(Ok(committed));
                }
            }
            Err(error) => {
                let error = CommitError::Failed(error.to_string());
                for (request, _) in waiting {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
        stats.commits += answered;
        stats.batch_commits_max = stats.batch_commits_max.max(answered);
        drop(stats);
        self.wal_bytes_since_request += bytes;
    }

    /// Whether a batch of `async` commits may leave its sync for later: the
    /// cap is on, and the oldest unsynced batch is younger than it.
    fn may_defer_sync(&self) -> bool {
        let within = self.config.async_sync_within;
        !within.is_zero()
            && !self.watch.awaited()
            && self
                .unsynced_since
                .is_none_or(|since| self.env.now_mono().saturating_since(since) < within)
    }

    /// How long until written `async` commits must be synced, if any wait.
    fn sync_due_in(&self) -> Option<std::time::Duration> {
        let since = self.unsynced_since?;
        let waited = self.env.now_mono().saturating_since(since);
        Some(self.config.async_sync_within.saturating_sub(waited))
    }

    /// Syncs the log and publishes the durable LSN (or the failure, after
    /// which nothing more is accepted).
    async fn sync_log(&mut self) -> Result<u64, LogError> {
        self.unsynced_since = None;
        // This sync answers every wait announced so far.
        while self.nudges.try_recv().is_ok() {}
        let synced = self.log.sync().await;
        match &synced {
            Ok(lsn) => {
                self.watch.advance(*lsn);
                lock(&self.stats).fsyncs += 1;
            }
            Err(error) => self.watch.stop(CommitError::Failed(error.to_string())),
        }
        synced
    }

    /// Between batches: ask for a checkpoint when one is due (or write one
    /// now when dirty pages fill the cache budget: that is the writers'
    /// backpressure), and remove the segments the durable checkpoint no
    /// longer needs (after logging a `Checkpoint` record for it, when
    /// `tidy` asks for one).
    async fn after_batch(&mut self, tidy: bool) {
        if self.log.failure().is_some() {
            return;
        }
        if self.store.memory_full() {
            // Make everything applied durable first (a deferred `async`
            // sync is due now), so the wait inside is immediate; a failure
            // stops the store.
            if self.unsynced_since.is_some() && self.sync_log().await.is_err() {
                return;
            }
            let watch = Arc::clone(&self.watch);
            let _ = self
                .store
                .checkpoint_after_wal(|lsn| async move {
                    watch.wait(lsn).await.map_err(|error| StoreError::Failed {
                        reason: error.to_string(),
                    })
                })
                .await;
        }
        if self.wal_bytes_since_request >= self.config.checkpoint_wal_bytes
            || self.store.memory_pressed()
        {
            // A full channel means a checkpoint is already wanted.
            if self.checkpoint_wanted.try_send(()).is_ok() {
                self.wal_bytes_since_request = 0;
            }
        }
        let checkpoint_lsn = self.store.durable_checkpoint_lsn();
        if tidy && checkpoint_lsn > self.checkpoint_lsn_tidied {
            let record = WalRecord::Checkpoint {
                lsn: checkpoint_lsn,
            };
            // Informational (recovery trusts the superblock): it becomes
            // durable with the next batch.
            if self.log.append(&record.encode()).await.is_ok() {
                self.checkpoint_lsn_tidied = checkpoint_lsn;
            }
        }
        // Segment i may go once every record in it is at or below the
        // durable checkpoint's LSN (SPEC 6.5).
        let before = checkpoint_lsn
            .max(self.remove_before.load(Ordering::Relaxed))
            .saturating_add(1);
        if let Ok(removed) = self.log.remove_segments_before(before).await {
            lock(&self.stats).segments_removed += removed;
        }
    }
}
