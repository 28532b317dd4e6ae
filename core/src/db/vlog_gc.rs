//! Value-log garbage collection (SPEC 6.6).
//!
//! A pass (a background task runs one every `vlog_gc_interval_ms`;
//! [`Db::vlog_gc`](super::Db::vlog_gc) runs one on demand):
//! 1. **Removes** every sealed segment that nothing can reach: the tree
//!    points into it no more ([`VlogUsage`](super::VlogUsage)), no commit in
//!    flight does ([`VlogPin`](super::VlogPin)), and the durable checkpoint
//!    is at or past the LSN that took the last pointer out, so neither the
//!    durable tree nor any WAL record recovery would replay names it.
//! 2. **Relocates** the live values of the sparsest sealed segment whose
//!    live ratio is under the threshold: each still-live value is appended
//!    again (to the active segment) and its key rewritten by an ordinary
//!    commit through the WAL, under the key's exclusive lock, keeping its
//!    revision, type and expiry (moving a value is not a write). An expired
//!    value is deleted instead. The segment is then empty and goes in a
//!    later pass, once a checkpoint covers the moves; the pass asks for one.
//!
//! Invariant kept here: **a segment file is removed only after a durable
//! checkpoint covers the change that made it unreachable.** Removing it
//! one checkpoint early (sabotage `vlog-gc-early`) loses values when a crash
//! takes the moves with it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};

use crate::env::Env;
use crate::error::DbError;
use crate::lock::{LockManager, LockMode};
use crate::mutex::lock;
use crate::record::{Mutation, Record, StoredValue, VlogPointer};
#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;
use crate::sabotage::sabotaged;
use crate::store::Store;
use crate::vlog::{Vlog, VlogValue};
use crate::wal::{CheckpointWanted, CommitRequest, Durability, GroupCommit};

use super::ttl::TtlClock;
use super::vlog_write_error;

/// Bytes of a segment read at a time while relocating.
const READ_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Values moved per commit (and keys locked at once).
const MOVE_VALUES_MAX: usize = 64;

/// How GC behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VlogGcConfig {
    /// A sealed segment whose live bytes are under this per cent of its
    /// bytes is relocated.
    pub live_pct: u8,
    /// Time between background passes.
    pub interval: Duration,
    /// A commit observer wants values, not pointers.
    pub observed: bool,
    /// Switches that break GC on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

/// What one GC pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlogGcReport {
    /// The segment whose live values were moved out, if any.
    pub segment_relocated: Option<u32>,
    /// Values moved.
    pub values_relocated: u64,
    /// Expired values deleted instead of moved.
    pub values_expired: u64,
    /// Segment files removed.
    pub segments_removed: u64,
    /// Bytes those files held.
    pub bytes_reclaimed: u64,
}

/// What GC works with (shared with the database).
pub(crate) struct VlogGc<E: Env> {
    pub store: Arc<Store<E>>,
    pub wal: GroupCommit,
    pub locks: LockManager,
    pub vlog: Arc<Vlog<E>>,
    pub clock: TtlClock<E>,
    pub checkpoint_wanted: mpsc::Sender<CheckpointWanted>,
    pub config: VlogGcConfig,
    /// One pass at a time.
    pub turn: Arc<futures::lock::Mutex<()>>,
    /// Segments a pass could not empty (a record that does not verify hides
    /// the ones after it): not read again until reopen, so a damaged
    /// segment is not re-read every pass.
    pub stuck: Arc<std::sync::Mutex<BTreeSet<u32>>>,
}

impl<E: Env> Clone for VlogGc<E> {
    fn clone(&self) -> Self {
        VlogGc {
            store: Arc::clone(&self.store),
            wal: self.wal.clone(),
            locks: self.locks.clone(),
            vlog: Arc::clone(&self.vlog),
            clock: self.clock.clone(),
            checkpoint_wanted: self.checkpoint_wanted.clone(),
            config: self.config,
            turn: Arc::clone(&self.turn),
            stuck: Arc::clone(&self.stuck),
        }
    }
}

impl<E: Env> VlogGc<E> {
    /// Runs a pass every interval until `stop` fires (or its sender is
    /// dropped).
    pub(crate) async fn run(self, env: E, mut stop: oneshot::Receiver<()>) {
        loop {
            let sleep = std::pin::pin!(env.sleep(self.config.interval));
            match select(sleep, &mut stop).await {
                Either::Left(((), _)) => {}
                Either::Right(_) => return,
            }
            if self.store.failure().is_some() {
                continue;
            }
            if let Err(error) = self.pass().await {
                // The store or WAL failed, or a file operation did: the next
                // pass tries again, and writes report a lasting failure.
                tracing::warn!(%error, "value-log GC pass failed");
            }
        }
    }

    /// One pass: removes what nothing reaches, then relocates the sparsest
    /// segment under the threshold.
    pub(crate) async fn pass(&self) -> Result<VlogGcReport, DbError> {
        let _turn = self.turn.lock().await;
        let mut report = VlogGcReport::default();
        self.remove_unreachable(&mut report).await?;
        let sparsest = self.sparsest();
        let moved = match sparsest {
            Some(segment) => {
                report.segment_relocated = Some(segment);
                self.relocate(segment, &mut report).await
            }
            None => Ok(()),
        };
        // Counted even when a move failed part way: what moved, moved.
        self.vlog.count_gc(
            report.values_relocated,
            report.values_expired,
            self.clock.now_ms(),
        );
        moved?;
        if let Some(segment) = sparsest {
            if self
                .store
                .vlog_segment_usage(segment)
                .is_some_and(|usage| usage.live_values > 0)
            {
                tracing::warn!(
                    segment,
                    "value-log GC could not move every live value (a record does not verify)"
                );
                self.stuck_segments().insert(segment);
            }
            // The segment goes once a checkpoint covers the moves.
            let _ = self
                .checkpoint_wanted
                .clone()
                .try_send(CheckpointWanted::default());
            if sabotaged!(self.config, VlogGcEarly) {
                self.remove_unreachable(&mut report).await?;
            }
        }
        if report.segments_removed > 0 || report.values_relocated > 0 {
            tracing::debug!(?report, "value-log GC pass");
        }
        Ok(report)
    }

    /// The LSN at or below which a release no longer reaches any durable
    /// state.
    fn unreachable_at_or_below(&self) -> u64 {
        if sabotaged!(self.config, VlogGcEarly) {
            self.store.applied_lsn()
        } else {
            self.store.durable_checkpoint_lsn()
        }
    }

    async fn remove_unreachable(&self, report: &mut VlogGcReport) -> Result<(), DbError> {
        let bound = self.unreachable_at_or_below();
        // Listed before the counts are read: a segment unpinned now gets no
        // new pointer (appends go to the active segment only).
        let unreachable: Vec<u32> = self
            .vlog
            .sealed_unpinned()
            .into_iter()
            .filter(|(segment, _)| {
                self.store
                    .vlog_segment_usage(*segment)
                    .is_some_and(|usage| usage.live_values == 0 && usage.released_lsn <= bound)
            })
            .map(|(segment, _)| segment)
            .collect();
        if unreachable.is_empty() {
            return Ok(());
        }
        report.bytes_reclaimed += self.vlog.remove_segments(&unreachable).await?;
        report.segments_removed += unreachable.len() as u64;
        Ok(())
    }

    fn stuck_segments(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        lock(&self.stuck)
    }

    /// The sealed segment with the lowest live ratio under the threshold.
    fn sparsest(&self) -> Option<u32> {
        let threshold = u64::from(self.config.live_pct.min(100));
        let stuck = self.stuck_segments().clone();
        self.vlog
            .sealed_unpinned()
            .into_iter()
            .filter(|(segment, _)| !stuck.contains(segment))
            .filter_map(|(segment, bytes)| {
                let usage = self.store.vlog_segment_usage(segment)?;
                let sparse = usage.live_values > 0 && usage.live_bytes * 100 < threshold * bytes;
                // Ratio in parts per million, to compare without floats.
                sparse.then(|| (usage.live_bytes * 1_000_000 / bytes.max(1), segment))
            })
            .min()
            .map(|(_, segment)| segment)
    }

    async fn relocate(&self, segment: u32, report: &mut VlogGcReport) -> Result<(), DbError> {
        let mut offset = Some(0);
        while let Some(at) = offset {
            let (records, next) = self.vlog.read_records(segment, at, READ_BYTES_MAX).await?;
            offset = next;
            // A first look without locks skips the dead records cheaply;
            // the move looks again under the key's lock.
            let mut live = Vec::new();
            for (pointer, value) in records {
                if self.points_to(&value.key, &pointer).await?.is_some() {
                    live.push((pointer, value));
                }
            }
            for chunk in live.chunks(MOVE_VALUES_MAX) {
                self.move_values(chunk, report).await?;
            }
        }
        Ok(())
    }

    /// `key`'s record if it still points to `pointer`.
    async fn points_to(
        &self,
        key: &[u8],
        pointer: &VlogPointer,
    ) -> Result<Option<Record>, DbError> {
        let record = self.store.get(key).await?;
        Ok(record.filter(|record| record.value == StoredValue::Vlog(*pointer)))
    }

    /// Moves `values` (still live when looked at) in one commit.
    async fn move_values(
        &self,
        values: &[(VlogPointer, VlogValue)],
        report: &mut VlogGcReport,
    ) -> Result<(), DbError> {
        let mut order: Vec<(Vec<u8>, LockMode)> = values
            .iter()
            .map(|(_, value)| (value.key.clone(), LockMode::Exclusive))
            .collect();
        order.sort();
        order.dedup();
        let locks = self.locks.acquire(&order).await;
        let now_ms = self.clock.now_ms();
        let mut commit = CommitRequest::new(Vec::new(), Durability::Async, now_ms);
        let mut observed = Vec::new();
        for (pointer, value) in values {
            let Some(record) = self.points_to(&value.key, pointer).await? else {
                continue;
            };
            let key = value.key.clone();
            if record.expired_at(now_ms) {
                report.values_expired += 1;
                observed.push(Mutation::Delete { key: key.clone() });
                commit.mutations.push(Mutation::Delete { key });
                continue;
            }
            let (moved, pin) = self
                .vlog
                .append(&value.key, record.value_type, &value.bytes)
                .await
                .map_err(|error| vlog_write_error(&self.store, &self.vlog, error))?;
            commit.pins.push(pin);
            report.values_relocated += 1;
            if self.config.observed {
                observed.push(Mutation::Put {
                    key: key.clone(),
                    record: Record {
                        value: StoredValue::Inline(value.bytes.clone()),
                        ..record.clone()
                    },
                });
            }
            commit.mutations.push(Mutation::Put {
                key,
                record: Record {
                    value: StoredValue::Vlog(moved),
                    ..record
                },
            });
        }
        if commit.mutations.is_empty() {
            return Ok(());
        }
        if !commit.pins.is_empty() {
            self.vlog
                .sync()
                .await
                .map_err(|error| vlog_write_error(&self.store, &self.vlog, error))?;
        }
        commit.locks = Some(locks);
        commit.keep_revisions = true;
        commit.observed = self.config.observed.then_some(observed);
        self.wal.submit(commit).await?;
        Ok(())
    }
}
