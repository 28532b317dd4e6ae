//! The transaction executor (SPEC 2, 4): validate the key table and ops,
//! lock the keys in bytewise order, run the ops on an overlay over the
//! tree, and commit the overlay's changes through the WAL as one unit (or,
//! if any op fails, nothing). Every write reaches the database through
//! here: the server's requests, [`Db::transaction`], and the plain
//! [`Db::set`]/[`Db::del`]/[`Db::write`] calls, which are one-op
//! transactions.
//!
//! Invariants kept here:
//! - **Rejected before anything runs.** An empty or too long key, a key or
//!   id declared twice, an op naming an unknown id, or a write to an `R`
//!   key fails the transaction before a lock is taken (`validate`).
//! - **All or nothing.** Writes go to an overlay; only when every op has
//!   passed (every ASSERT held) are they handed to the WAL, as one
//!   transaction. A failed ASSERT leaves no trace.
//! - **Serializable.** Locks are taken in bytewise key order and released
//!   only after the commit is answered (after its fsync for `sync`), so
//!   commit-LSN order is a serial order every result agrees with.

mod op;
mod stats;
mod validate;

use std::collections::BTreeMap;
use std::pin::pin;
use std::task::Poll;

use futures::future::{Either, select};

use crate::env::Env;
use crate::error::DbError;
use crate::lock::{LockMode, LockSet};
use crate::record::Mutation;
use crate::sabotage::sabotaged;
use crate::txn::{KeyId, Mode, Op, OpResult, Txn, TxnError, TxnOutcome};
use crate::wal::Durability;

use super::Db;
use super::read::Found;
use op::{OpContext, REVISION_PENDING, run_op};
use validate::{Slot, validate};

pub(crate) use stats::TxnCounters;

pub use stats::TxnStats;

/// How the ops of a transaction went.
struct Ran {
    results: Vec<OpResult>,
    /// Keys seen expired: a `sync` transaction deletes them durably
    /// before it answers (SPEC 3).
    expired_seen: Vec<Vec<u8>>,
    /// What the results count against [`Txn::limit_result_bytes`].
    result_bytes: u64,
}

/// The longest wait of a writing transaction while dirty pages press on
/// the cache: about one step of a checkpoint writing at full speed (512
/// KiB).
const PRESSURE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(2);

impl<E: Env> Db<E> {
    /// Runs `txn` (SPEC 2): all of its ops see its own earlier writes; if
    /// every op passes, its writes commit as one unit and the outcome
    /// carries the commit LSN; otherwise nothing is written.
    ///
    /// ```
    /// # use jubilant_core::db::{Db, DbOptions};
    /// # use jubilant_core::txn::{Mode, OpResult, Txn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Db::open(jubilant_io_real::RealEnv::current(), dir.path(), DbOptions::default()).await?;
    /// db.set("alice", 100i64).await?;
    /// let mut transfer = Txn::new();
    /// let (alice, bob) = (transfer.key("alice", Mode::RW), transfer.key("bob", Mode::RW));
    /// transfer.assert_int_eq(alice, 100).add(alice, -30).add(bob, 30);
    /// let outcome = db.transaction(&transfer).await?;
    /// assert_eq!(outcome.results[2], OpResult::Add(30));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction(&self, txn: &Txn) -> Result<TxnOutcome, TxnError> {
        let _active = self.txns.begin();
        let outcome = self.run_transaction(txn).await;
        self.txns.ended(&outcome);
        outcome
    }

    async fn run_transaction(&self, txn: &Txn) -> Result<TxnOutcome, TxnError> {
        let mut slots = validate(txn, self.store.key_bytes_max())?;
        let durability = txn.durability_class().unwrap_or(self.durability);
        if slots.values().any(|slot| slot.mode == Mode::RW) {
            self.admit_under_pressure().await;
        }
        let locks = self.lock_slots(&slots).await?;
        let read_lsn = self.store.applied_lsn();
        let now_ms = self.now_ms();
        let ran = match self.run_ops(txn, &mut slots, now_ms).await {
            Ok(ran) => ran,
            Err(error) => {
                if sabotaged!(self, PartialEffects) && slots.values().any(|slot| slot.written) {
                    // Broken on purpose: what ran before the failing op commits.
                    let _ = self.commit_slots(slots, durability, None, now_ms).await;
                }
                drop(locks);
                return Err(error);
            }
        };
        // Every lock is held and every op passed: the transaction's place
        // in the serial order is fixed, whatever its commit still waits
        // for. A caller waiting to go on in order may now (one whose
        // transaction failed goes on when it is dropped).
        if let Some(point) = txn.lock_point() {
            point.reached();
        }
        let Ran {
            mut results,
            expired_seen,
            ..
        } = ran;
        let (locks, outcome) = if slots.values().any(|slot| slot.written) {
            // The writer releases the locks once the commit is answered.
            let lsn = self
                .commit_slots(slots, durability, Some(locks), now_ms)
                .await?;
            for result in &mut results {
                if let OpResult::Get(Some((_, revision))) = result
                    && *revision == REVISION_PENDING
                {
                    *revision = lsn;
                }
            }
            let outcome = TxnOutcome {
                lsn,
                read_only: false,
                now_ms,
                results,
            };
            (None, outcome)
        } else {
            // Read-only: serialized right after `read_lsn`; a `sync` one
            // answers only once what it read is durable (SPEC 7.3).
            if durability == Durability::Sync {
                self.watch.wait(read_lsn).await.map_err(DbError::from)?;
            }
            let outcome = TxnOutcome {
                lsn: read_lsn,
                read_only: true,
                now_ms,
                results,
            };
            (Some(locks), outcome)
        };
        debug_assert!(results_complete(txn, &outcome));
        // Strict 2PL: released only now, after the commit was answered.
        drop(locks);
        if durability == Durability::Sync && !expired_seen.is_empty() {
            // What this transaction saw expired must stay expired.
            self.reap(expired_seen).await?;
        }
        Ok(outcome)
    }

    /// Before a writing transaction takes its locks: while dirty pages
    /// press on the cache budget (half of it or more), wait in proportion,
    /// up to [`PRESSURE_PAUSE_MAX`] at the full budget (design 10.6), so
    /// writers slow down smoothly while the checkpoint catches up instead
    /// of stopping at once when the cache fills (the WAL writer's hard stop
    /// stays behind this). Each committer waits for itself, before its
    /// commit queues, so batches stay as small as the load makes them.
    async fn admit_under_pressure(&self) {
        let pressure = self.store.memory_pressure_permille();
        if pressure == 0 {
            return;
        }
        let pause = PRESSURE_PAUSE_MAX * u32::try_from(pressure.min(1000)).unwrap_or(1000) / 1000;
        self.store.env.sleep(pause).await;
        self.txns
            .paused(u64::try_from(pause.as_micros()).unwrap_or(u64::MAX));
    }

    /// Locks the slots' keys, `R` shared and `RW` exclusive, in bytewise
    /// order; gives up with `Busy` after `lock_wait_ms_max`.
    async fn lock_slots(&self, slots: &BTreeMap<KeyId, Slot>) -> Result<LockSet, TxnError> {
        let mut order: Vec<(Vec<u8>, LockMode)> = slots
            .values()
            .map(|slot| {
                let mode = match slot.mode {
                    Mode::R => LockMode::Shared,
                    Mode::RW => LockMode::Exclusive,
                };
                (slot.key.clone(), mode)
            })
            .collect();
        if !sabotaged!(self, LocksInRequestOrder) {
            // The canonical order: no two transactions wait in a cycle.
            order.sort();
        }
        let Some(limit) = self.lock_wait_max else {
            return Ok(self.locks.acquire(&order).await);
        };
        let mut acquire = pin!(self.locks.acquire(&order));
        // Most transactions are granted every lock at once: only one that
        // has to wait arms a timer (one per commit was a measurable share
        // of a server's CPU).
        if let Poll::Ready(locks) = futures::poll!(acquire.as_mut()) {
            return Ok(locks);
        }
        // Giving up drops the half-built lock set, which withdraws every
        // request it queued and releases what it was granted.
        let timer = pin!(self.clock.env().sleep(limit));
        match select(acquire, timer).await {
            Either::Left((locks, _)) => Ok(locks),
            Either::Right(_) => Err(TxnError::Busy {
                waited_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Runs every op on its key's view, reading each key the first time an
    /// op needs it; stops at the first op that fails.
    async fn run_ops(
        &self,
        txn: &Txn,
        slots: &mut BTreeMap<KeyId, Slot>,
        now_ms: u64,
    ) -> Result<Ran, TxnError> {
        let mut ran = Ran {
            results: Vec::with_capacity(txn.ops().len()),
            expired_seen: Vec::new(),
            result_bytes: 0,
        };
        for (index, op) in txn.ops().iter().enumerate() {
            let slot = slots.get_mut(&op.key()).expect("validated");
            if slot.view.is_none() && matches!(op, Op::Set(..)) {
                // A SET replaces the whole record (a value-log value it
                // replaces is released when the commit applies): a blind
                // write need not read what it overwrites.
                slot.view = Some(None);
            }
            if slot.view.is_none() {
                slot.view = Some(match self.read_key(&slot.key, now_ms).await? {
                    Found::Live(record) => Some(record),
                    Found::Expired => {
                        ran.expired_seen.push(slot.key.clone());
                        None
                    }
                    Found::Missing => None,
                });
            }
            let context = OpContext {
                index,
                key: &slot.key,
                now_ms,
                value_bytes_max: self.value_bytes_max,
            };
            let view = slot.view.as_mut().expect("just read");
            // Counted before the value is copied into a result, so a
            // request for too much builds nothing large.
            let bytes = op::result_bytes(op, view.as_ref());
            ran.result_bytes += bytes;
            if let Some(max) = txn.result_bytes_max()
                && ran.result_bytes > max
            {
                return Err(TxnError::ResultTooLarge {
                    op: index,
                    bytes: ran.result_bytes,
                    max,
                });
            }
            // No room for its results: fail now, not wait with the locks
            // held (a client that never reads would hold them forever).
            if let Some(meter) = txn.meter()
                && !meter.try_reserve(bytes)
            {
                return Err(TxnError::AnswersBacklogged);
            }
            let (result, wrote) = run_op(&context, op, view)?;
            slot.written |= wrote;
            ran.results.push(result);
        }
        Ok(ran)
    }

    /// Commits the written slots (at least one) as one WAL transaction;
    /// returns its LSN.
    async fn commit_slots(
        &self,
        slots: BTreeMap<KeyId, Slot>,
        durability: Durability,
        locks: Option<LockSet>,
        now_ms: u64,
    ) -> Result<u64, TxnError> {
        // The views move into the commit: a written value is not copied
        // once more on its way to the WAL.
        let mut mutations: Vec<Mutation> = slots
            .into_values()
            .filter(|slot| slot.written)
            .map(|slot| match slot.view.flatten() {
                Some(record) => Mutation::Put {
                    key: slot.key,
                    record,
                },
                None => Mutation::Delete { key: slot.key },
            })
            .collect();
        debug_assert!(!mutations.is_empty(), "a commit writes something");
        mutations.sort_by(|a, b| a.key().cmp(b.key()));
        let committed = self
            .commit_mutations(mutations, durability, locks, now_ms)
            .await?;
        Ok(committed.lsn)
    }
}

/// Whether a transaction that ran to the end has one result per op.
fn results_complete(txn: &Txn, outcome: &TxnOutcome) -> bool {
    outcome.results.len() == txn.ops().len()
}
