//! Transaction counters, for INFO.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::txn::{TxnError, TxnOutcome};

/// Transaction counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxnStats {
    /// Transactions running now.
    pub active: u64,
    /// Transactions that committed writes.
    pub commits: u64,
    /// Read-only transactions answered.
    pub reads: u64,
    /// Transactions that ended without effect (a failed ASSERT or op, an
    /// invalid request, a storage error).
    pub aborts: u64,
    /// Of those, failed ASSERTs.
    pub assert_failures: u64,
    /// Of those, transactions that waited too long for locks (`Busy`).
    pub busy: u64,
    /// Writing transactions that paused before taking their locks because
    /// dirty pages pressed on the cache budget (design 10.6).
    pub pressure_pauses: u64,
    /// Microseconds those pauses lasted.
    pub pressure_paused_us: u64,
    /// Read-modify-writes (`Db::update`, `Db::compare_and_swap`) that
    /// committed.
    pub updates: u64,
    /// Attempts of `Db::update` tried again because the key changed
    /// between its read and its write.
    pub update_retries: u64,
    /// Read-modify-writes that gave up: `update` after its last attempt,
    /// `compare_and_swap` whose revision did not match.
    pub update_conflicts: u64,
}

#[derive(Default)]
pub(crate) struct TxnCounters {
    active: AtomicU64,
    commits: AtomicU64,
    reads: AtomicU64,
    aborts: AtomicU64,
    assert_failures: AtomicU64,
    busy: AtomicU64,
    pressure_pauses: AtomicU64,
    pressure_paused_us: AtomicU64,
    updates: AtomicU64,
    update_retries: AtomicU64,
    update_conflicts: AtomicU64,
}

impl TxnCounters {
    pub(crate) fn stats(&self) -> TxnStats {
        TxnStats {
            active: self.active.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            aborts: self.aborts.load(Ordering::Relaxed),
            assert_failures: self.assert_failures.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            pressure_pauses: self.pressure_pauses.load(Ordering::Relaxed),
            pressure_paused_us: self.pressure_paused_us.load(Ordering::Relaxed),
            updates: self.updates.load(Ordering::Relaxed),
            update_retries: self.update_retries.load(Ordering::Relaxed),
            update_conflicts: self.update_conflicts.load(Ordering::Relaxed),
        }
    }

    /// Counts a read-modify-write's end: committed, or a conflict it gave
    /// up on; and the attempts it tried again.
    pub(crate) fn updated(&self, committed: bool, retries: u64) {
        let counter = if committed {
            &self.updates
        } else {
            &self.update_conflicts
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.update_retries.fetch_add(retries, Ordering::Relaxed);
    }

    /// Counts a pause of `us` microseconds under dirty-page pressure.
    pub(crate) fn paused(&self, us: u64) {
        self.pressure_pauses.fetch_add(1, Ordering::Relaxed);
        self.pressure_paused_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts a transaction as active until the returned guard is dropped.
    pub(crate) fn begin(&self) -> Active<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    pub(crate) fn ended(&self, outcome: &Result<TxnOutcome, TxnError>) {
        let counter = match outcome {
            Ok(outcome) if outcome.read_only => &self.reads,
            Ok(_) => &self.commits,
            Err(error) => {
                match error {
                    TxnError::AssertFailed { .. } => {
                        self.assert_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    TxnError::Busy { .. } => {
                        self.busy.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                &self.aborts
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running transaction, for the `active` count.
pub(crate) struct Active<'a>(&'a TxnCounters);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        let before = self.0.active.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before > 0, "a transaction ended that never began");
    }
}
