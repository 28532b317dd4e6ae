//! Running a transaction: validate the key table and ops, lock the keys in
//! bytewise order, run the ops on an overlay over the tree, and commit the
//! overlay's changes through the WAL as one unit (or, if any op fails,
//! nothing).

use std::collections::BTreeMap;
use std::pin::pin;
use std::task::Poll;

use futures::future::{Either, select};

use crate::btree::mutator::Mutation;
use crate::btree::{Record, StoredValue, ValueType};
use crate::db::{Db, DbError, Durability, Value};
use crate::env::Env;
use crate::sabotage::Sabotage;

use super::lock::{LockMode, LockSet};
use super::{KeyId, Mode, Op, OpResult, Ttl, Txn, TxnError, TxnOutcome};

/// A revision placeholder for a key written earlier in the same
/// transaction: it becomes the commit LSN once that is known.
const REVISION_PENDING: u64 = u64::MAX;

/// One declared key as the transaction sees it.
struct Slot {
    key: String,
    mode: Mode,
    /// The key's record in the transaction's view, once read (`None` inside
    /// `Some`: missing or expired).
    view: Option<Option<Record>>,
    written: bool,
}

/// Checks the key table and the ops before anything runs.
fn validate(txn: &Txn, key_bytes_max: usize) -> Result<BTreeMap<KeyId, Slot>, TxnError> {
    if txn.ops().is_empty() {
        return Err(TxnError::Empty);
    }
    let mut slots: BTreeMap<KeyId, Slot> = BTreeMap::new();
    let mut names: BTreeMap<&str, KeyId> = BTreeMap::new();
    for (id, mode, key) in txn.keys() {
        if key.is_empty() {
            return Err(TxnError::KeyEmpty { id: *id });
        }
        if key.len() > key_bytes_max {
            return Err(TxnError::KeyTooLarge {
                id: *id,
                len: key.len(),
                max: key_bytes_max,
            });
        }
        if names.insert(key, *id).is_some() {
            return Err(TxnError::DuplicateKey(key.clone()));
        }
        let slot = Slot {
            key: key.clone(),
            mode: *mode,
            view: None,
            written: false,
        };
        if slots.insert(*id, slot).is_some() {
            return Err(TxnError::DuplicateKeyId(*id));
        }
    }
    for (index, op) in txn.ops().iter().enumerate() {
        let id = op.key();
        let Some(slot) = slots.get(&id) else {
            return Err(TxnError::UnknownKeyId { op: index, id });
        };
        if op.writes() && slot.mode == Mode::R {
            return Err(TxnError::WriteToReadKey { op: index, id });
        }
    }
    Ok(slots)
}

fn value_type(record: Option<&Record>) -> Option<ValueType> {
    record.map(|record| record.value_type)
}

fn revision(record: Option<&Record>) -> u64 {
    record.map_or(0, |record| record.revision)
}

fn inline_bytes(record: &Record) -> &[u8] {
    match &record.value {
        StoredValue::Inline(bytes) => bytes,
        StoredValue::Vlog(_) => &[],
    }
}

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
        let durability = txn.durability.unwrap_or(self.durability);
        let mut order: Vec<(Vec<u8>, LockMode)> = slots
            .values()
            .map(|slot| {
                let mode = match slot.mode {
                    Mode::R => LockMode::Shared,
                    Mode::RW => LockMode::Exclusive,
                };
                (slot.key.as_bytes().to_vec(), mode)
            })
            .collect();
        if self.sabotage != Sabotage::LocksInRequestOrder {
            // The canonical order: no two transactions wait in a cycle.
            order.sort();
        }
        let locks = match self.lock_wait_max {
            None => self.locks.acquire(&order).await,
            Some(limit) => {
                let mut acquire = pin!(self.locks.acquire(&order));
                // Most transactions are granted every lock at once: only
                // one that has to wait arms a timer (one per commit was a
                // measurable share of a server's CPU).
                match futures::poll!(acquire.as_mut()) {
                    Poll::Ready(locks) => locks,
                    Poll::Pending => {
                        // Giving up drops the half-built lock set, which
                        // withdraws every request it queued and releases
                        // what it was granted.
                        let timer = pin!(self.clock.env().sleep(limit));
                        match select(acquire, timer).await {
                            Either::Left((locks, _)) => locks,
                            Either::Right(_) => {
                                return Err(TxnError::Busy {
                                    waited_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                                });
                            }
                        }
                    }
                }
            }
        };
        let read_lsn = self.store.applied_lsn();
        let now_ms = self.now_ms();
        let value_bytes_max = self.value_bytes_max;

        let mut results = Vec::with_capacity(txn.ops().len());
        let mut expired_seen: Vec<String> = Vec::new();
        let mut failure: Option<TxnError> = None;
        for (index, op) in txn.ops().iter().enumerate() {
            let slot = slots.get_mut(&op.key()).expect("validated");
            if slot.view.is_none() && matches!(op, Op::Set(..)) {
                // A SET replaces the whole record (a value-log value it
                // replaces is released when the commit applies): a blind
                // write need not read what it overwrites.
                slot.view = Some(None);
            }
            if slot.view.is_none() {
                let found = self
                    .store
                    .get(slot.key.as_bytes())
                    .await
                    .map_err(DbError::from)?;
                slot.view = Some(match found {
                    Some(record) if !self.expired_now(&record, now_ms) => {
                        Some(self.resolve(&slot.key, record).await?)
                    }
                    Some(_) => {
                        expired_seen.push(slot.key.clone());
                        None
                    }
                    None => None,
                });
            }
            let view = slot.view.as_mut().expect("just read");
            match run_op(index, op, view, now_ms, value_bytes_max) {
                Ok((result, wrote)) => {
                    slot.written |= wrote;
                    results.push(result);
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failure {
            if self.sabotage == Sabotage::PartialEffects {
                // Broken on purpose: what ran before the failing op commits.
                let _ = self.commit_slots(&slots, durability, None).await;
            }
            drop(locks);
            return Err(error);
        }
        let (locks, committed) = if slots.values().any(|slot| slot.written) {
            // The writer releases the locks once the commit is answered.
            let lsn = self.commit_slots(&slots, durability, Some(locks)).await?;
            (None, lsn)
        } else {
            (Some(locks), None)
        };
        let outcome = match committed {
            Some(lsn) => {
                for result in &mut results {
                    if let OpResult::Get(Some((_, revision))) = result
                        && *revision == REVISION_PENDING
                    {
                        *revision = lsn;
                    }
                }
                TxnOutcome {
                    lsn,
                    read_only: false,
                    now_ms,
                    results,
                }
            }
            None => {
                // Read-only: serialized right after `read_lsn`; a `sync` one
                // answers only once what it read is durable (SPEC 7.3).
                if durability == Durability::Sync {
                    self.watch.wait(read_lsn).await.map_err(DbError::from)?;
                }
                TxnOutcome {
                    lsn: read_lsn,
                    read_only: true,
                    now_ms,
                    results,
                }
            }
        };
        // Strict 2PL: released only now, after the commit was answered.
        drop(locks);
        if durability == Durability::Sync && !expired_seen.is_empty() {
            // What this transaction saw expired must stay expired.
            self.reap(expired_seen).await?;
        }
        Ok(outcome)
    }

    /// Commits the written slots as one WAL transaction; `None` if nothing
    /// was written.
    async fn commit_slots(
        &self,
        slots: &BTreeMap<KeyId, Slot>,
        durability: Durability,
        locks: Option<LockSet>,
    ) -> Result<Option<u64>, TxnError> {
        let mut mutations: Vec<Mutation> = slots
            .values()
            .filter(|slot| slot.written)
            .map(|slot| {
                let key = slot.key.as_bytes().to_vec();
                match slot.view.as_ref().and_then(Option::as_ref) {
                    Some(record) => Mutation::Put {
                        key,
                        record: record.clone(),
                    },
                    None => Mutation::Delete { key },
                }
            })
            .collect();
        if mutations.is_empty() {
            return Ok(None);
        }
        mutations.sort_by(|a, b| a.key().cmp(b.key()));
        let committed = self.commit_mutations(mutations, durability, locks).await?;
        Ok(Some(committed.lsn))
    }
}

/// Runs one op on a key's view; returns its result and whether it wrote.
fn run_op(
    index: usize,
    op: &Op,
    view: &mut Option<Record>,
    now_ms: u64,
    value_bytes_max: usize,
) -> Result<(OpResult, bool), TxnError> {
    // A value this transaction wrote with a TTL that has already run out
    // (`SET k v` with TTL 0, `EXPIRE k 0`) reads as missing too.
    if view
        .as_ref()
        .is_some_and(|record| crate::db::expired(record, now_ms))
    {
        *view = None;
    }
    let assert = |holds: bool, view: &Option<Record>| {
        if holds {
            Ok((OpResult::Held, false))
        } else {
            Err(TxnError::AssertFailed {
                op: index,
                found_type: value_type(view.as_ref()),
                revision: revision(view.as_ref()),
            })
        }
    };
    let put = |value: Value, expires_at_ms: Option<u64>| -> Result<Record, TxnError> {
        let mut record = value.into_record(REVISION_PENDING);
        record.expires_at_ms = expires_at_ms;
        let len = inline_bytes(&record).len();
        if len > value_bytes_max {
            return Err(TxnError::ValueTooLarge {
                op: index,
                len,
                max: value_bytes_max,
            });
        }
        Ok(record)
    };
    Ok(match op {
        Op::Get(_) => {
            let result = match view {
                None => None,
                Some(record) => {
                    let value = Value::from_record("", record.clone())?;
                    Some((value, record.revision))
                }
            };
            (OpResult::Get(result), false)
        }
        Op::Set(_, value, ttl_ms) => {
            let expires = ttl_ms.map(|ttl| now_ms.saturating_add(ttl));
            *view = Some(put(value.clone(), expires)?);
            (OpResult::Set, true)
        }
        Op::Del(_) => {
            let existed = view.is_some();
            *view = None;
            (OpResult::Del(existed), true)
        }
        Op::Add(_, delta) => {
            let (current, expires) = match view {
                None => (0, None),
                Some(record) if record.value_type == ValueType::Int64 => {
                    let bytes = <[u8; 8]>::try_from(inline_bytes(record)).map_err(|_| {
                        TxnError::Db(DbError::ValueMalformed {
                            key: String::new(),
                            reason: "an integer value is not 8 bytes".to_owned(),
                        })
                    })?;
                    (i64::from_le_bytes(bytes), record.expires_at_ms)
                }
                Some(record) => {
                    return Err(TxnError::NotAnInt {
                        op: index,
                        found: record.value_type,
                    });
                }
            };
            let sum = current
                .checked_add(*delta)
                .ok_or(TxnError::Overflow { op: index })?;
            *view = Some(put(Value::Int(sum), expires)?);
            (OpResult::Add(sum), true)
        }
        Op::Expire(_, ttl_ms) => match view {
            None => (OpResult::Expire(false), false),
            Some(record) => {
                record.expires_at_ms = Some(now_ms.saturating_add(*ttl_ms));
                record.revision = REVISION_PENDING;
                (OpResult::Expire(true), true)
            }
        },
        Op::Persist(_) => match view {
            Some(record) if record.expires_at_ms.is_some() => {
                record.expires_at_ms = None;
                record.revision = REVISION_PENDING;
                (OpResult::Persist(true), true)
            }
            _ => (OpResult::Persist(false), false),
        },
        Op::Ttl(_) => {
            let ttl = match view {
                None => Ttl::Missing,
                Some(record) => match record.expires_at_ms {
                    None => Ttl::NoExpiry,
                    Some(at) => Ttl::Ms(at.saturating_sub(now_ms)),
                },
            };
            (OpResult::Ttl(ttl), false)
        }
        Op::AssertExists(_) => assert(view.is_some(), view)?,
        Op::AssertNotExists(_) => assert(view.is_none(), view)?,
        Op::AssertType(_, want) => assert(value_type(view.as_ref()) == *want, view)?,
        Op::AssertIntEq(_, n) => {
            let holds = view.as_ref().is_some_and(|record| {
                record.value_type == ValueType::Int64
                    && inline_bytes(record) == n.to_le_bytes().as_slice()
            });
            assert(holds, view)?
        }
        Op::AssertBytesHashEq(_, hash) | Op::AssertStringHashEq(_, hash) => {
            let want = if matches!(op, Op::AssertBytesHashEq(..)) {
                ValueType::Bytes
            } else {
                ValueType::String
            };
            let holds = view.as_ref().is_some_and(|record| {
                record.value_type == want && blake3::hash(inline_bytes(record)).as_bytes() == hash
            });
            assert(holds, view)?
        }
        Op::AssertRevisionEq(_, want) => assert(revision(view.as_ref()) == *want, view)?,
    })
}
