//! The WAL writer task (SPEC 7.3): it alone owns the log and changes the
//! tree. See the module documentation of [`wal`](super) for the batch
//! cycle and its invariants.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};

use crate::env::{Env, MonoTime};
use crate::log::{FRAME_HEADER_BYTES, Log, LogError, LogMark};
use crate::mutex::lock;
use crate::record::{Mutation, Record, StoredValue, VlogPointer};
use crate::sabotage::sabotaged;
use crate::store::Store;
use crate::vlog::Vlog;

use super::commit::{Job, Request, Tidy, set_revisions};
use super::handle::{CheckpointWanted, GroupCommitStats, WriterConfig};
use super::{
    BATCH_REQUESTS_MAX, CommitError, CommitEvent, Committed, Durability, DurableWatch,
    LSN_AHEAD_MAX, WalRecord,
};
use crate::record::wal::pointer_to;

/// Bytes of a record besides its key and inline value, at most (the
/// FlatBuffer's tables and offsets): sizes the encoding buffer up front.
const RECORD_OVERHEAD_BYTES: usize = 128;

/// One commit's records, encoded back to back.
struct Encoded {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<usize>,
}

impl Encoded {
    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.bytes[start..end])
    }

    fn largest(&self) -> usize {
        self.records().map(<[u8]>::len).max().unwrap_or(0)
    }

    /// The log bytes of the records' frames.
    fn frame_bytes(&self) -> u64 {
        self.bytes.len() as u64 + self.len() as u64 * FRAME_HEADER_BYTES
    }
}

/// A commit whose records are in the log, waiting for its answer.
struct Accepted {
    request: Request,
    lsn: u64,
    /// The changes whose values are over the inline limit, by index, and
    /// the record each value was logged in: the leaf gets the pointer.
    pointers: Vec<(usize, VlogPointer)>,
}

impl Accepted {
    /// A commit none of whose records reached the log.
    fn unlogged(request: Request) -> Self {
        Accepted {
            request,
            lsn: 0,
            pointers: Vec::new(),
        }
    }
}

pub(super) struct Writer<E: Env> {
    env: E,
    /// When the oldest written batch not yet synced was written.
    unsynced_since: Option<MonoTime>,
    /// A wait on the durable LSN began: a deferred sync is due now.
    nudges: mpsc::UnboundedReceiver<()>,
    log: Log<E>,
    store: Arc<Store<E>>,
    /// Values logged over the inline limit are read back through it; it
    /// keeps each one freshly logged in its cache.
    vlog: Arc<Vlog<E>>,
    /// Values longer than this are logged, and the leaf points to their
    /// record (design 11.2).
    inline_max: usize,
    watch: Arc<DurableWatch>,
    stats: Arc<Mutex<GroupCommitStats>>,
    /// Commits taken from the queue that did not fit the last batch's
    /// segment; they open the next batch, in order.
    carry: VecDeque<Request>,
    checkpoint_wanted: mpsc::Sender<CheckpointWanted>,
    wal_bytes_since_request: u64,
    checkpoint_lsn_tidied: u64,
    /// The LSN of the last `Checkpoint` record appended, if the checkpoint
    /// it names covers every record before it: then nothing up to it holds
    /// data a replay needs.
    covered_through: Option<u64>,
    /// Reused for every record a commit logs.
    builder: flatbuffers::FlatBufferBuilder<'static>,
    config: WriterConfig,
}

impl<E: Env> Writer<E> {
    #[allow(
        clippy::too_many_arguments,
        reason = "called once, by GroupCommit::start, with what the database opened"
    )]
    pub(super) fn new(
        env: E,
        log: Log<E>,
        store: Arc<Store<E>>,
        vlog: Arc<Vlog<E>>,
        watch: Arc<DurableWatch>,
        stats: Arc<Mutex<GroupCommitStats>>,
        checkpoint_wanted: mpsc::Sender<CheckpointWanted>,
        config: WriterConfig,
    ) -> Self {
        let inline_max = store.manifest().inline_value_bytes_max as usize;
        Writer {
            env,
            unsynced_since: None,
            nudges: watch.nudges(),
            log,
            store,
            vlog,
            inline_max,
            watch,
            stats,
            carry: VecDeque::new(),
            checkpoint_wanted,
            wal_bytes_since_request: 0,
            checkpoint_lsn_tidied: 0,
            covered_through: None,
            builder: flatbuffers::FlatBufferBuilder::new(),
            config,
        }
    }

    pub(super) async fn run(mut self, mut jobs: mpsc::Receiver<Job>) -> Log<E> {
        loop {
            let mut batch: Vec<Request> = Vec::new();
            let mut tidies: Vec<Tidy> = Vec::new();
            let mut views = Vec::new();
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
                    Some(Job::Tidy(tidy)) => tidies.push(tidy),
                    Some(Job::CopyView(reply)) => views.push(reply),
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
                    Ok(Job::Tidy(tidy)) => tidies.push(tidy),
                    Ok(Job::CopyView(reply)) => views.push(reply),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write_batch(batch).await;
            }
            self.after_batch().await;
            for tidy in tidies {
                self.tidy(tidy).await;
            }
            for reply in views {
                let view = self.copy_view().await;
                let _ = reply.send(view);
            }
        }
        // Every handle is gone: make what was accepted durable, best effort
        // (an `async` commit was promised nothing more).
        if let Ok(lsn) = self.log.sync().await {
            self.watch.advance(lsn);
        }
        // A segment being prepared in the background is let finish (its
        // `.tmp` file stays for the next open to remove): no task of this
        // database outlives its close.
        self.log.settle().await;
        // Nothing after the last checkpoint record, which a durable
        // checkpoint covers with everything before it: the WAL restarts
        // empty. Then the active segment's preallocated zeros go too (the
        // next open writes them again).
        if let Some(at) = self.covered_through.filter(|at| {
            self.log.next_lsn() == at + 1
                && self.store.durable_checkpoint_lsn() + 1 >= *at
                && self.log.durable_lsn() >= *at
        }) {
            self.restart_empty(at).await;
        }
        self.log.shrink_for_close().await;
        self.watch.stop(CommitError::Stopped);
        lock(&self.stats).log = self.log.stats();
        self.log
    }

    /// At the end, when the last record is the `Checkpoint` record at
    /// `at`, durable, and a durable checkpoint covers everything before
    /// it: the store takes `at` as applied (the record holds no data) and
    /// checkpoints at it, so the WAL can restart empty at `at + 1`, right
    /// after the durable checkpoint as every open requires, and the
    /// segments before go (design 2.5). Best effort: any failure leaves the
    /// log as it was, which is as valid.
    async fn restart_empty(&mut self, at: u64) {
        // Broken on purpose (tests only): no checkpoint at `at`, so the
        // durable checkpoint stays at `at - 1` and the restarted log begins
        // at `at + 1`.
        if sabotaged!(self.config, WalRestartUncovered) {
            self.log.restart_empty_for_close().await;
            return;
        }
        if self.store.apply_unrelieved(&[], at).await.is_err() {
            return;
        }
        let durable = self.log.durable_lsn();
        // The superblock keeps the TTL calibration it has (a reading of 0
        // never lowers it); every commit's reading is already in it.
        let checkpointed = self
            .store
            .checkpoint_after_wal(|| 0, |_| std::future::ready(Ok(durable)))
            .await;
        if checkpointed.is_ok_and(|report| report.checkpoint_lsn == at) {
            self.log.restart_empty_for_close().await;
        }
    }

    fn refusal(&self) -> Option<CommitError> {
        if let Some(reason) = self.log.failure() {
            // Every path that fails the log stops the engine; this is the
            // backstop, so a commit is never refused as failed while
            // health says all is well.
            self.stop(reason);
            return Some(CommitError::Failed(reason.to_owned()));
        }
        self.store.failure().map(CommitError::Failed)
    }

    /// The records of one commit as transaction `txn`, encoded back to back
    /// in one buffer (one allocation for a commit, not one per record).
    fn encode(&mut self, request: &Request, txn: u64) -> Encoded {
        let commit = &request.commit;
        let estimate: usize = commit
            .mutations
            .iter()
            .map(|mutation| {
                RECORD_OVERHEAD_BYTES
                    + mutation.key().len()
                    + match mutation {
                        Mutation::Put { record, .. } => match &record.value {
                            StoredValue::Inline(bytes) => bytes.len(),
                            StoredValue::Vlog(_) => unreachable!("a commit carries values"),
                        },
                        Mutation::Delete { .. } => 0,
                    }
            })
            .sum();
        let mut encoded = Encoded {
            bytes: Vec::with_capacity(estimate + 2 * RECORD_OVERHEAD_BYTES),
            ends: Vec::with_capacity(commit.mutations.len() + 2),
        };
        encoded.push(&WalRecord::Begin { txn }.encode());
        for mutation in &commit.mutations {
            encoded.push(WalRecord::encode_mutation(
                &mut self.builder,
                txn,
                mutation,
                commit.keep_revisions,
            ));
        }
        encoded.push(
            &WalRecord::Commit {
                txn,
                now_ms: commit.now_ms,
            }
            .encode(),
        );
        encoded
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
        let file_bytes_before = self.log.stats().file_bytes;
        let mut mark = self.log.mark();
        let mut requests = batch.into_iter();
        let mut failure: Option<LogError> = None;
        while let Some(request) = requests.next() {
            // The transaction id is its Begin record's LSN: unique forever,
            // so a crashed transaction's records never join a later one.
            let txn = self.log.next_lsn();
            let encoded = self.encode(&request, txn);
            let size = encoded.frame_bytes();
            let records = encoded.len() as u64;
            // The bound a commit meets, named as the user can change it.
            let largest = encoded.largest() as u64;
            let too_large = if largest > u64::from(self.log.record_bytes_max()) {
                Some(CommitError::TooLarge {
                    bytes: largest,
                    max: u64::from(self.log.record_bytes_max()),
                    limit: "the largest WAL record (one key and its inline value)",
                })
            } else if size > self.config.commit_bytes_max {
                Some(CommitError::TooLarge {
                    bytes: size,
                    max: self.config.commit_bytes_max,
                    limit: "max_commit_bytes (the WAL bytes of one commit, held in memory while it is written)",
                })
            } else if records > LSN_AHEAD_MAX {
                Some(CommitError::TooLarge {
                    bytes: records,
                    max: LSN_AHEAD_MAX,
                    limit: "the records one commit may hold (count, not bytes)",
                })
            } else {
                None
            };
            if let Some(error) = too_large {
                let _ = request.reply.send(Err(error));
                continue;
            }
            if txn + records - 1 > self.log.durable_lsn() + LSN_AHEAD_MAX {
                if !accepted.is_empty() {
                    // The rest opens the next batch, after a sync.
                    self.carry.push_back(request);
                    self.carry.extend(requests);
                    break;
                }
                // Revisions stay unique only while no LSN runs further
                // ahead of the durable one than a reopen skips.
                if let Err(error) = self.sync_log().await {
                    accepted.push(Accepted::unlogged(request));
                    self.carry.extend(requests);
                    failure = Some(error);
                    break;
                }
                mark = self.log.mark();
            }
            debug_assert!(txn + records - 1 <= self.log.durable_lsn() + LSN_AHEAD_MAX);
            // A commit larger than a fresh segment's room spans segments:
            // it starts here, and the log rolls over as it fills each one,
            // syncing it. So it opens its own batch: a failure after a
            // rollover discards only what follows the durable point, and
            // no commit before it in the batch may be durable yet answered
            // as refused.
            let spans = size > self.log.segment_room_bytes();
            if !accepted.is_empty() && (spans || size > self.log.room_bytes()) {
                // The rest opens the next batch, in a fresh segment (or,
                // for a spanning commit, in this one's rest).
                self.carry.push_back(request);
                self.carry.extend(requests);
                break;
            }
            if size > self.log.room_bytes() && !spans {
                if let Err(error) = self.log.roll().await {
                    // Nothing of it was appended; the rest may fare better.
                    accepted.push(Accepted::unlogged(request));
                    self.carry.extend(requests);
                    failure = Some(error);
                    break;
                }
                mark = self.log.mark();
            }
            let mut appended = Ok(0);
            let mut pointers = Vec::new();
            // Record 0 is the Begin, then one per change.
            for (index, payload) in encoded.records().enumerate() {
                appended = self.log.append(payload).await.map(|pos| {
                    if let Some(Mutation::Put { record, .. }) =
                        index.checked_sub(1).and_then(|i| request.commit.mutations.get(i))
                        && matches!(&record.value, StoredValue::Inline(bytes) if bytes.len() > self.inline_max)
                    {
                        pointers.push((index - 1, pointer_to(pos, payload.len())));
                    }
                    pos.lsn
                });
                if appended.is_err() {
                    break;
                }
            }
            match appended {
                Ok(lsn) => {
                    debug_assert_eq!(lsn, txn + records - 1);
                    if spans {
                        lock(&self.stats).commits_spanning += 1;
                    }
                    bytes += size;
                    accepted.push(Accepted {
                        request,
                        lsn,
                        pointers,
                    });
                }
                Err(error) => {
                    accepted.push(Accepted::unlogged(request));
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
        // What the checkpoint bounds is the log's size on disk: with small
        // synced batches, block alignment makes that several times the
        // records' bytes.
        self.wal_bytes_since_request += self.log.stats().file_bytes - file_bytes_before;
    }

    /// Tells the observer of commits whose records reached the log file
    /// (every one of them may be recovered), in LSN order, with revisions.
    fn observe(&self, accepted: &[Accepted]) {
        let Some(observer) = &self.config.observer else {
            return;
        };
        for item in accepted.iter().filter(|item| item.lsn > 0) {
            let commit = &item.request.commit;
            let mut mutations = commit.mutations.clone();
            set_revisions(&mut mutations, item.lsn, commit.keep_revisions);
            (observer.0)(CommitEvent::Logged {
                lsn: item.lsn,
                now_ms: commit.now_ms,
                mutations: &mutations,
            });
        }
    }

    /// A batch could not be written: if the log did not fail (disk full, a
    /// rollover that could not prepare its segment), discard it and say so
    /// (definite); otherwise the log failed (outcome unknown).
    async fn refuse(&mut self, mark: LogMark, accepted: Vec<Accepted>, error: LogError) {
        let answer = if error.is_disk_full() || self.log.failure().is_none() {
            // A full disk may leave the zeros over what landed of the
            // records for later; the records are gone from the log either
            // way, unless the log failed.
            let discarded = self.log.discard_since(mark).await;
            if self.log.failure().is_none() {
                if let Some(observer) = &self.config.observer {
                    (observer.0)(CommitEvent::Discarded {
                        from_lsn: mark.lsn(),
                    });
                }
                if error.is_disk_full() {
                    CommitError::DiskFull(error.to_string())
                } else {
                    CommitError::Unavailable(error.to_string())
                }
            } else {
                CommitError::Failed(discarded.err().unwrap_or(error).to_string())
            }
        } else {
            CommitError::Failed(error.to_string())
        };
        if let CommitError::Failed(reason) = &answer {
            self.stop(reason);
        }
        let mut stats = lock(&self.stats);
        if let CommitError::DiskFull(_) = &answer {
            stats.commits_disk_full += accepted.len() as u64;
        }
        stats.log = self.log.stats();
        drop(stats);
        for item in accepted {
            let _ = item.request.reply.send(Err(answer.clone()));
        }
    }

    async fn apply_and_answer(&mut self, accepted: Vec<Accepted>, bytes: u64) {
        let mut waiting: Vec<(Request, Committed)> = Vec::new();
        let mut answered = 0u64;
        let mut lsn_previous = 0;
        // Snapshots' undo images are saved before each apply (design
        // 14.3), all under the turn a snapshot takes its read LSN in: one
        // (uncontended) lock per batch, let go before the batch's sync.
        let turn = self.store.snapshots.turn.lock().await;
        let image_after_apply = self.store.snapshots.image_after_apply;
        for Accepted {
            mut request,
            lsn,
            pointers,
        } in accepted
        {
            debug_assert!(
                lsn > lsn_previous && !sabotaged!(self.config, FalseAssertion),
                "a batch is applied in LSN order ({lsn_previous}, then {lsn})"
            );
            lsn_previous = lsn;
            let mut mutations = std::mem::take(&mut request.commit.mutations);
            // A value over the inline limit stays in its record: the leaf
            // gets the pointer, and the value cache the bytes.
            for (index, pointer) in pointers {
                if let Mutation::Put { key, record } = &mut mutations[index] {
                    let value = std::mem::replace(&mut record.value, StoredValue::Vlog(pointer));
                    if let StoredValue::Inline(bytes) = value {
                        self.vlog
                            .keep_written(&pointer, key, record.value_type, bytes);
                    }
                }
            }
            set_revisions(&mut mutations, lsn, request.commit.keep_revisions);
            if !image_after_apply {
                self.save_images(&mutations, lsn).await;
            }
            let applied = self.store.apply_unrelieved(&mutations, lsn).await;
            if image_after_apply {
                // Broken on purpose: the images hold the new state.
                self.save_images(&mutations, lsn).await;
            }
            let committed = match applied {
                Ok(changed) => Committed { lsn, changed },
                Err(error) => {
                    // The records are in the log and reopening replays
                    // them, but the tree in memory now lacks a logged
                    // commit: a checkpoint past this LSN would lose it for
                    // good. So the store stops, as after any failure.
                    self.store
                        .fail(format!("applying LSN {lsn} failed: {error}"));
                    let _ = request
                        .reply
                        .send(Err(CommitError::Failed(error.to_string())));
                    continue;
                }
            };
            let ack_now = request.commit.durability == Durability::Async
                || sabotaged!(self.config, AckBeforeSync);
            if ack_now {
                answered += 1;
                let _ = request.reply.send(Ok(committed));
            } else {
                waiting.push((request, committed));
            }
        }
        drop(turn);
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
    }

    /// Saves, for every open snapshot that began before `lsn`, the state of
    /// each key of `mutations` it has no image of yet: the key's record as
    /// the tree holds it before the mutations apply, its value read into
    /// memory. A key that cannot be read ends those snapshots instead.
    async fn save_images(&self, mutations: &[Mutation], lsn: u64) {
        let snapshots = &self.store.snapshots;
        if !snapshots.any_open() {
            return;
        }
        for key in snapshots.wanting(mutations.iter().map(Mutation::key), lsn) {
            let image = self.image_of(&key).await;
            snapshots.save(&key, image, lsn);
        }
    }

    /// `key`'s record as the tree holds it now, its value inline.
    async fn image_of(&self, key: &[u8]) -> Result<Option<Record>, String> {
        let Some(mut record) = self.store.get(key).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if let StoredValue::Vlog(pointer) = &record.value {
            let value = self.vlog.read(pointer).await.map_err(|e| e.to_string())?;
            if value.key != key || value.value_type != record.value_type {
                return Err(format!(
                    "the value-log record at segment {} offset {} belongs to another key",
                    pointer.segment, pointer.offset
                ));
            }
            record.value = StoredValue::Inline(value.bytes);
        }
        Ok(Some(record))
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
            // No room to write what waits in the buffer (a checkpoint
            // record, zeros over discarded records): nothing was synced and
            // nothing lost. Waiters hear it; written `async` commits are
            // tried again after the latency cap (or with the next batch).
            Err(error) if error.is_disk_full() && self.log.failure().is_none() => {
                self.watch
                    .refuse_waiting(&CommitError::DiskFull(error.to_string()));
                if !self.config.async_sync_within.is_zero() {
                    self.unsynced_since = Some(self.env.now_mono());
                }
            }
            Err(error) => self.stop(&error.to_string()),
        }
        synced
    }

    /// The WAL failed (a write or sync whose outcome is unknown): every
    /// waiter hears it, and the store, whose failure is the engine's one
    /// fail-stop switch, accepts no more changes until reopened.
    fn stop(&self, reason: &str) {
        self.watch.stop(CommitError::Failed(reason.to_owned()));
        self.store.fail(format!("the WAL failed: {reason}"));
    }

    /// Between batches: ask the checkpointer for a checkpoint when one is
    /// due, and when dirty pages fill the whole cache budget, wait for it
    /// (that is the writers' backpressure: the writer only signals, the
    /// checkpointer alone writes checkpoints).
    async fn after_batch(&mut self) {
        if self.log.failure().is_some() {
            return;
        }
        if self.store.memory_full() {
            // Make everything applied durable first (a deferred `async`
            // sync is due now), so the checkpoint's wait for the WAL is
            // immediate; a failure stops the store.
            if self.unsynced_since.is_some() && self.sync_log().await.is_err() {
                return;
            }
            let (done, checkpointed) = oneshot::channel();
            let wanted = CheckpointWanted { done: Some(done) };
            // A fresh sender always has room; a checkpointer that is gone
            // (the database closing) or a checkpoint that failed drops
            // `done`, and the writer goes on (the store reports a failure).
            if self.checkpoint_wanted.clone().try_send(wanted).is_ok() {
                let _ = checkpointed.await;
            }
        }
        if self.wal_bytes_since_request >= self.config.checkpoint_wal_bytes
            || self.store.memory_pressed()
        {
            // A full channel means a checkpoint is already wanted.
            if self
                .checkpoint_wanted
                .try_send(CheckpointWanted::default())
                .is_ok()
            {
                self.wal_bytes_since_request = 0;
            }
        }
    }

    /// Makes everything written durable (every commit answered so far,
    /// `async` ones included, is then in the view) and lists the files a
    /// backup copies. The caller pinned the store first, so no segment
    /// goes from here on.
    async fn copy_view(&mut self) -> Result<crate::log::LogCopy, CommitError> {
        if let Some(reason) = self.log.failure() {
            return Err(CommitError::Failed(reason.to_owned()));
        }
        self.log.settle_removal().await;
        // Broken on purpose (tests only): what was written but not synced
        // (`async` commits already answered) is left out.
        if sabotaged!(self.config, BackupWithoutSync) {
            return Ok(self.log.copy_view());
        }
        match self.sync_log().await {
            Ok(_) => Ok(self.log.copy_view()),
            Err(error) if error.is_disk_full() && self.log.failure().is_none() => {
                Err(CommitError::DiskFull(error.to_string()))
            }
            Err(error) => Err(CommitError::Failed(error.to_string())),
        }
    }

    /// Logs a `Checkpoint` record for a durable checkpoint and removes the
    /// segments it covers: segment i may go once every record in it is at
    /// or below the durable checkpoint's LSN (SPEC 6.5).
    async fn tidy(&mut self, tidy: Tidy) {
        let Tidy {
            lsn,
            log_record,
            done,
        } = tidy;
        // Paired with the checkpointer, which asks only once the superblock
        // at `lsn` is durable.
        assert!(
            lsn <= self.store.durable_checkpoint_lsn() || sabotaged!(self.config, WalRemovedEarly),
            "WAL segments through LSN {lsn} would go before a durable checkpoint covers them (durable: {})",
            self.store.durable_checkpoint_lsn()
        );
        // A failed log removes nothing more (only reopening can tell what
        // is durable); the checkpoint's caller still hears it is done.
        if self.log.failure().is_none() {
            self.remove_covered(lsn, log_record, done).await;
        } else {
            let _ = done.send(());
        }
    }

    /// [`Writer::tidy`]'s work on a healthy log; `done` is told once the
    /// segments are removed.
    async fn remove_covered(&mut self, lsn: u64, log_record: bool, done: oneshot::Sender<()>) {
        if log_record && lsn > self.checkpoint_lsn_tidied {
            let record = WalRecord::Checkpoint { lsn };
            // Informational (recovery trusts the superblock): it becomes
            // durable with the next batch.
            let at = self.log.next_lsn();
            match self.log.append(&record.encode()).await {
                Ok(_) => {
                    self.checkpoint_lsn_tidied = lsn;
                    self.covered_through = (lsn.saturating_add(1) >= at).then_some(at);
                }
                // Appending may roll the log over, and the old segment's
                // sync may fail: the log has failed, and so has the
                // engine, now, not at the next commit (seed server 640:
                // health said all was well after a commit was refused).
                Err(error) => {
                    if self.log.failure().is_some() {
                        self.stop(&error.to_string());
                        let _ = done.send(());
                        return;
                    }
                }
            }
        }
        // The unlinks and directory syncs run in the background; the
        // checkpoint's caller hears once they are done.
        // Those that stay for their values are open for reads first: GC
        // and INFO need their sizes.
        self.vlog
            .open_segments(&self.log.covered(lsn.saturating_add(1)))
            .await;
        self.log
            .remove_segments_before_in_background(lsn.saturating_add(1), done)
            .await;
        lock(&self.stats).log = self.log.stats();
    }
}
