//! The one owner of checkpoints (SPEC 6.5, 7.2): whoever asks (the WAL
//! writer when the WAL grew or dirty pages press on the cache, value-log GC,
//! [`Db::checkpoint`](super::Db::checkpoint), closing), a checkpoint is
//! written here, in one order:
//!
//! 1. the store seals the changes applied so far, at LSN `l`;
//! 2. this waits until the WAL is durable through `l` (the write-ahead
//!    rule), and the store checks that before writing its first page;
//! 3. the store writes the pages and the superblock, each made durable;
//! 4. the WAL writer logs a `Checkpoint(l)` record and removes the segments
//!    the durable checkpoint covers.
//!
//! Invariant kept here: **no WAL segment goes before a durable checkpoint
//! covers it**: step 4 is asked for only after step 3 returned (the writer
//! asserts it), except under sabotage `wal-removed-early`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};

use crate::env::{Env, MonoTime};
#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;
use crate::sabotage::sabotaged;
use crate::store::{CheckpointReport, Store, StoreError};
use crate::wal::{CheckpointWanted, CommitError, DurableWatch, GroupCommit};

use super::ttl::TtlClock;

/// The last checkpoint written by this process: when it finished
/// (monotonic nanoseconds plus one; 0 before the first) and the WAL's
/// append bytes when it sealed.
#[derive(Debug, Default)]
pub(crate) struct CheckpointMark {
    finished_nanos: AtomicU64,
    wal_bytes: AtomicU64,
}

impl CheckpointMark {
    fn finished(&self, at: MonoTime, wal_bytes: u64) {
        self.wal_bytes.store(wal_bytes, Ordering::Release);
        self.finished_nanos
            .store(at.as_nanos().saturating_add(1), Ordering::Release);
    }

    /// When the last checkpoint finished, if one has, and the WAL's
    /// append bytes when it sealed (0 before the first).
    pub(crate) fn last(&self) -> (Option<MonoTime>, u64) {
        let nanos = self.finished_nanos.load(Ordering::Acquire);
        let at = nanos.checked_sub(1).map(MonoTime::from_nanos);
        (at, self.wal_bytes.load(Ordering::Acquire))
    }
}

/// Writes checkpoints for one database; cheap to clone.
#[derive(Clone)]
pub(crate) struct Checkpointer<E: Env> {
    pub store: Arc<Store<E>>,
    pub watch: Arc<DurableWatch>,
    pub wal: GroupCommit,
    /// The TTL clock, whose reading each superblock records.
    pub clock: TtlClock<E>,
    /// When the last checkpoint finished, and how far the WAL had grown
    /// when it sealed (for health: how stale the durable tree is).
    pub mark: Arc<CheckpointMark>,
    /// Switches that break checkpoints on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

impl<E: Env> Checkpointer<E> {
    /// Writes a checkpoint now (steps 1 to 3), then asks the WAL writer for
    /// step 4; the receiver is told once that is done too.
    pub(crate) async fn checkpoint(
        &self,
    ) -> Result<(CheckpointReport, oneshot::Receiver<()>), StoreError> {
        // Read before sealing: the bytes after it are at most what the
        // checkpoint does not cover.
        let wal_bytes = self.wal.stats().log.append_bytes;
        let report = self
            .store
            .checkpoint_after_wal(
                || self.clock.now_ms(),
                |lsn| async move {
                    if sabotaged!(self, WalRemovedEarly) {
                        // Broken on purpose: the segments go before the
                        // superblock that covers them is durable.
                        drop(self.wal.tidy(lsn, false));
                    }
                    self.watch.wait(lsn).await.map_err(|error| match error {
                        CommitError::DiskFull(reason) => StoreError::DiskFull { reason },
                        error => StoreError::Failed {
                            reason: error.to_string(),
                        },
                    })?;
                    Ok(self.watch.lsn_durable())
                },
            )
            .await?;
        self.mark.finished(self.clock.env().now_mono(), wal_bytes);
        let tidied = self.wal.tidy(self.store.durable_checkpoint_lsn(), true);
        Ok((report, tidied))
    }

    /// Writes one checkpoint per request until `stop` fires (or its sender
    /// is dropped): the task holds a handle to the WAL writer, so it must
    /// end before the writer can. A failure is recorded in the store (the
    /// next write reports it); a request's `done` is told only of a
    /// checkpoint that succeeded (dropped otherwise).
    pub(crate) async fn run(
        self,
        mut wanted: mpsc::Receiver<CheckpointWanted>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            let request = match select(wanted.next(), &mut stop).await {
                Either::Left((Some(request), _)) => request,
                Either::Left((None, _)) | Either::Right(_) => return,
            };
            if self.store.failure().is_some() {
                continue;
            }
            if self.checkpoint().await.is_ok()
                && let Some(done) = request.done
            {
                let _ = done.send(());
            }
        }
    }
}
