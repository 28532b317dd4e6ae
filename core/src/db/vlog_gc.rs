//! Garbage collection of the values kept in old WAL segments (SPEC 6.6,
//! design 11.2).
//!
//! A WAL segment no replay needs stays while the tree points into it
//! (`ValueRetention` in `db/open.rs`, asked by the log at every checkpoint's
//! tidy). A pass (a background task runs one every `vlog_gc_interval_ms`;
//! [`Db::vlog_gc`](super::Db::vlog_gc) runs one on demand) **relocates**
//! the live values of the sparsest retained segment whose live ratio is
//! under the threshold: each still-live value is logged again (into the
//! active segment) by an ordinary commit through the WAL, under the key's
//! exclusive lock, keeping its revision, type and expiry (moving a value
//! is not a write). An expired value is deleted instead. The segment then
//! holds nothing the tree points to, and the log removes it at the tidy
//! of the checkpoint that covers the moves; the pass asks for one.
//!
//! Invariant kept here (with the retention rule): **a segment file is
//! removed only after a durable checkpoint covers the change that made it
//! unreachable.** Removing it one checkpoint early (sabotage
//! `vlog-gc-early`) loses values when a crash takes the moves with it.

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
use crate::vlog::Vlog;
use crate::wal::{CheckpointWanted, CommitRequest, Durability, GroupCommit};

use super::ttl::TtlClock;

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
    /// Switches that break GC on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

/// Which WAL segments no replay needs stay for their values: asked by the
/// log at every tidy (after each durable checkpoint).
///
/// Invariant kept here: **a segment stays while the tree in memory points
/// into it, or the change that took its last pointer out is past the
/// durable checkpoint** (the durable tree may still point there, and a
/// crash would bring that tree back). No new pointer into a segment no
/// replay needs can appear: the writer points only into the segment it
/// logs to, and a replay only into the segments it reads.
pub(crate) struct ValueRetention<E: Env> {
    pub store: Arc<Store<E>>,
    pub vlog: Arc<Vlog<E>>,
    /// Switches that break retention on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

impl<E: Env> crate::log::Retention for ValueRetention<E> {
    fn keeps(&self, id: u64) -> bool {
        // A backup's pin keeps every segment (design 12.1): it copies them.
        if self.store.pinned() {
            return true;
        }
        let Ok(id) = u32::try_from(id) else {
            return false;
        };
        // Broken on purpose (tests only): a release counts as durable once
        // applied, one checkpoint early.
        let durable = if sabotaged!(self, VlogGcEarly) {
            self.store.applied_lsn()
        } else {
            self.store.durable_checkpoint_lsn()
        };
        // Before the counts are built (recovery), everything stays.
        self.store
            .vlog_segment_usage(id)
            .is_none_or(|usage| usage.live_values > 0 || usage.released_lsn > durable)
    }

    fn retained(&self, ids: &[u64]) {
        self.vlog.set_retained(ids);
    }

    fn removing(&self, id: u64) {
        self.vlog.forget(id);
    }
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

    /// One pass: relocates the sparsest retained segment under the
    /// threshold.
    pub(crate) async fn pass(&self) -> Result<VlogGcReport, DbError> {
        let _turn = self.turn.lock().await;
        let mut report = VlogGcReport::default();
        let sparsest = self.sparsest().await?;
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
                // Broken on purpose: the log is asked to remove what it no
                // longer keeps now, before that checkpoint (the retention
                // rule judges releases against the applied LSN).
                let _ = self
                    .wal
                    .tidy(self.store.durable_checkpoint_lsn(), false)
                    .await;
            }
        }
        if report.values_relocated > 0 {
            tracing::debug!(?report, "value-log GC pass");
        }
        Ok(report)
    }

    fn stuck_segments(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        lock(&self.stuck)
    }

    /// The retained segment with the lowest live ratio under the
    /// threshold.
    async fn sparsest(&self) -> Result<Option<u32>, DbError> {
        let threshold = u64::from(self.config.live_pct.min(100));
        let stuck = self.stuck_segments().clone();
        let mut sparsest = None;
        for segment in self.vlog.retained() {
            if stuck.contains(&segment) {
                continue;
            }
            let Some(usage) = self.store.vlog_segment_usage(segment) else {
                continue;
            };
            if usage.live_values == 0 {
                // Nothing to move: the log removes it once a checkpoint
                // covers its last release.
                continue;
            }
            let bytes = self.vlog.segment_bytes(segment).await?;
            if usage.live_bytes * 100 < threshold * bytes {
                // Ratio in parts per million, to compare without floats.
                let ratio = usage.live_bytes * 1_000_000 / bytes.max(1);
                if sparsest.is_none_or(|(best, _)| ratio < best) {
                    sparsest = Some((ratio, segment));
                }
            }
        }
        Ok(sparsest.map(|(_, segment)| segment))
    }

    async fn relocate(&self, segment: u32, report: &mut VlogGcReport) -> Result<(), DbError> {
        let inline_max = self.store.manifest().inline_value_bytes_max as usize;
        let (upserts, _clean) = self
            .vlog
            .upserts_in(segment, inline_max)
            .await
            .map_err(DbError::Log)?;
        // A first look without locks skips the dead records cheaply; the
        // move looks again under the key's lock. (A record that does not
        // verify hides the ones after it: their values stay, and the pass
        // reports the segment stuck.)
        let mut live = Vec::new();
        for (pointer, key) in upserts {
            if self.points_to(&key, &pointer).await?.is_some() {
                live.push((pointer, key));
            }
        }
        for chunk in live.chunks(MOVE_VALUES_MAX) {
            self.move_values(chunk, report).await?;
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

    /// Moves the values of `values` (still live when looked at) in one
    /// commit.
    async fn move_values(
        &self,
        values: &[(VlogPointer, Vec<u8>)],
        report: &mut VlogGcReport,
    ) -> Result<(), DbError> {
        let mut order: Vec<(Vec<u8>, LockMode)> = values
            .iter()
            .map(|(_, key)| (key.clone(), LockMode::Exclusive))
            .collect();
        order.sort();
        order.dedup();
        let locks = self.locks.acquire(&order).await;
        let now_ms = self.clock.now_ms();
        let mut commit = CommitRequest::new(Vec::new(), Durability::Async, now_ms);
        for (pointer, key) in values {
            let Some(record) = self.points_to(key, pointer).await? else {
                continue;
            };
            if record.expired_at(now_ms) {
                report.values_expired += 1;
                commit.mutations.push(Mutation::Delete { key: key.clone() });
                continue;
            }
            let value = self.vlog.read(pointer).await?;
            if value.key != *key {
                // The record verified but logs another key: the tree's
                // pointer is wrong, and moving would make it permanent.
                continue;
            }
            report.values_relocated += 1;
            commit.mutations.push(Mutation::Put {
                key: key.clone(),
                record: Record {
                    value: StoredValue::Inline(value.bytes),
                    ..record
                },
            });
        }
        if commit.mutations.is_empty() {
            return Ok(());
        }
        commit.locks = Some(locks);
        commit.keep_revisions = true;
        self.wal.submit(commit).await?;
        Ok(())
    }
}
