//! The model the bank workload checks transactions against.
//!
//! The database tells the model of every commit as its WAL writer logs it,
//! and of every run of commits it discards after a disk-full write (a
//! commit observer), so the model knows the exact serial history in
//! commit-LSN order, even for commits whose clients never heard back.
//! Oracles:
//! - `serializability`: replaying the applied commits in LSN order on the
//!   model reproduces every result a client was given: each committed
//!   transaction's GET and ADD results at its commit LSN (and the changes it
//!   applied), each read-only one's at its read LSN;
//! - `conservation`: every audit, and the state after every restart, sums
//!   all balances to zero (transfers move money, never make or lose it);
//! - `durability`: after a restart the accounts equal the applied history
//!   up to the recovered WAL's end, which covers every acknowledged `sync`
//!   commit;
//! - `recovery` and `liveness` as in the other workloads (liveness also
//!   requires the lock table to be empty once the clients are done).

use std::collections::BTreeMap;

use jubilant_core::db::{Durability, Value};
use jubilant_core::store::{Mutation, StoredValue};
use jubilant_core::txn::{Op, OpResult, Txn, TxnOutcome};

use super::verdict::Verdict;

/// Balance and revision per account that exists.
pub(crate) type Accounts = BTreeMap<String, (i64, u64)>;

/// A transaction a client was answered for.
pub(crate) struct Answered {
    pub txn: Txn,
    pub outcome: TxnOutcome,
    pub durability: Durability,
}

pub(crate) struct BankModel {
    /// The accounts as of the last recovery check.
    base: Accounts,
    /// Every commit logged since, in LSN order, as the engine reported it.
    applied: Vec<(u64, Accounts, Vec<String>)>,
    answered: Vec<Answered>,
    pub checkpoint_running: bool,
    pub verdict: Verdict,
}

fn balance(value: &StoredValue) -> Option<i64> {
    match value {
        StoredValue::Inline(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
            .ok()
            .map(i64::from_le_bytes),
        StoredValue::Vlog(_) => None,
    }
}

impl BankModel {
    pub(crate) fn new() -> Self {
        BankModel {
            base: Accounts::new(),
            applied: Vec::new(),
            answered: Vec::new(),
            checkpoint_running: false,
            verdict: Verdict::default(),
        }
    }

    pub(crate) fn begin_life(&mut self) {
        self.verdict.begin_life();
        self.checkpoint_running = false;
    }

    /// The commit observer: `mutations` were logged at `lsn`.
    pub(crate) fn applied(&mut self, lsn: u64, mutations: &[Mutation]) {
        let mut puts = Accounts::new();
        let mut deletes = Vec::new();
        for mutation in mutations {
            let key = String::from_utf8_lossy(mutation.key()).into_owned();
            match mutation {
                Mutation::Put { record, .. } => match balance(&record.value) {
                    Some(n) => {
                        puts.insert(key, (n, record.revision));
                    }
                    None => self.verdict.fail(
                        "serializability",
                        format!("LSN {lsn} wrote a non-integer to {key}"),
                    ),
                },
                Mutation::Delete { .. } => deletes.push(key),
            }
        }
        if let Some((last, ..)) = self.applied.last()
            && *last >= lsn
        {
            self.verdict.fail(
                "serializability",
                format!("commit LSN {lsn} applied after {last}"),
            );
        }
        self.applied.push((lsn, puts, deletes));
    }

    /// The engine discarded every commit logged at or after `from_lsn`.
    pub(crate) fn discarded(&mut self, from_lsn: u64) {
        self.applied.retain(|(lsn, ..)| *lsn < from_lsn);
    }

    /// The accounts after every applied commit with an LSN that passes
    /// `include`.
    fn state(&self, include: impl Fn(u64) -> bool) -> Accounts {
        let mut state = self.base.clone();
        for (lsn, puts, deletes) in &self.applied {
            if !include(*lsn) {
                break;
            }
            for key in deletes {
                state.remove(key);
            }
            for (key, entry) in puts {
                state.insert(key.clone(), *entry);
            }
        }
        state
    }

    /// A client was answered; audits are checked for conservation now, the
    /// rest when the life's history is complete.
    pub(crate) fn answered(&mut self, answered: Answered) {
        let audit = answered.outcome.read_only
            && answered.txn.ops().iter().all(|op| matches!(op, Op::Get(_)))
            && answered.txn.ops().len() > 1;
        if audit {
            self.verdict.check("conservation", 1);
            let total: i64 = answered
                .outcome
                .results
                .iter()
                .map(|result| match result {
                    OpResult::Get(Some((Value::Int(n), _))) => *n,
                    _ => 0,
                })
                .sum();
            if total != 0 {
                self.verdict.fail(
                    "conservation",
                    format!(
                        "an audit at read LSN {} summed the balances to {total}",
                        answered.outcome.lsn
                    ),
                );
            }
        }
        self.answered.push(answered);
    }

    /// Replays `txn` on `state` as the engine should have run it, with
    /// `lsn` as the revision of what it writes; returns its results and the
    /// accounts it wrote, or the index of an ASSERT that fails there.
    fn interpret(
        txn: &Txn,
        state: &Accounts,
        lsn: u64,
    ) -> Result<(Vec<OpResult>, Accounts), usize> {
        let key = |id: u32| {
            txn.keys()
                .iter()
                .find(|(k, ..)| *k == id)
                .map(|(_, _, name)| name.clone())
                .unwrap_or_default()
        };
        let mut view = state.clone();
        let mut written = Accounts::new();
        let mut results = Vec::new();
        for (index, op) in txn.ops().iter().enumerate() {
            let name = key(op.key());
            let current = view.get(&name).copied();
            results.push(match op {
                Op::Get(_) => OpResult::Get(current.map(|(n, rev)| (Value::Int(n), rev))),
                Op::Add(_, delta) => {
                    let n = current.map_or(0, |(n, _)| n).wrapping_add(*delta);
                    view.insert(name.clone(), (n, lsn));
                    written.insert(name, (n, lsn));
                    OpResult::Add(n)
                }
                Op::AssertRevisionEq(_, want) if current.map_or(0, |(_, rev)| rev) == *want => {
                    OpResult::Held
                }
                _ => return Err(index),
            });
        }
        Ok((results, written))
    }

    /// Checks the restarted database: `found` is every account read after
    /// recovery, `lsn_end` the end of the recovered WAL. With `excused`
    /// (stored data damaged), a mismatch is an excused loss. Then checks
    /// every answered transaction of the life that ended and starts the
    /// next from `found`.
    pub(crate) fn recovered(&mut self, found: &Accounts, lsn_end: u64, excused: bool) {
        self.verdict.recoveries += 1;
        self.verdict.check("conservation", 1);
        let total: i64 = found.values().map(|(n, _)| n).sum();
        if total != 0 && !excused {
            self.verdict.fail(
                "conservation",
                format!("after recovery the balances sum to {total}"),
            );
        }
        self.check_history();
        self.verdict.check("durability", 1);
        let expected = self.state(|lsn| lsn <= lsn_end);
        let lost_sync = self.answered.iter().find(|a| {
            !a.outcome.read_only && a.durability == Durability::Sync && a.outcome.lsn > lsn_end
        });
        let failure = if let Some(lost) = lost_sync {
            Some(format!(
                "a sync transaction committed at LSN {} is lost: the recovered WAL ends at {lsn_end}",
                lost.outcome.lsn
            ))
        } else if expected != *found {
            let first = expected
                .iter()
                .find(|(k, v)| found.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: expected {v:?}, found {:?}", found.get(k)))
                .or_else(|| {
                    found
                        .iter()
                        .find(|(k, _)| !expected.contains_key(*k))
                        .map(|(k, v)| format!("{k}: found {v:?}, never written"))
                });
            Some(format!(
                "after recovery to LSN {lsn_end} the accounts differ from the applied history ({})",
                first.unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(message) = failure {
            if excused {
                self.verdict.stat("excused_losses", 1);
            } else {
                self.verdict.fail("durability", message);
            }
        }
        self.base = found.clone();
        self.applied.clear();
        self.answered.clear();
    }

    /// Checks every answered transaction against the applied history.
    fn check_history(&mut self) {
        let answered = std::mem::take(&mut self.answered);
        for a in &answered {
            if self.verdict.failure.is_some() {
                break;
            }
            self.verdict.check("serializability", 1);
            let lsn = a.outcome.lsn;
            let (state, pending) = if a.outcome.read_only {
                (self.state(|l| l <= lsn), 0)
            } else {
                (self.state(|l| l < lsn), lsn)
            };
            let (results, written) = match Self::interpret(&a.txn, &state, pending) {
                Ok(replayed) => replayed,
                Err(op) => {
                    self.verdict.fail(
                        "serializability",
                        format!(
                            "a transaction answered at LSN {lsn} passed op {op}, which fails when \
                             the history is replayed in LSN order"
                        ),
                    );
                    break;
                }
            };
            if results != a.outcome.results {
                self.verdict.fail(
                    "serializability",
                    format!(
                        "a transaction at LSN {lsn} (read-only: {}) was answered {:?}; replaying \
                         the history in LSN order gives {results:?}",
                        a.outcome.read_only, a.outcome.results
                    ),
                );
                break;
            }
            if !a.outcome.read_only {
                let applied = self.applied.iter().find(|(l, ..)| *l == lsn);
                let matches = applied
                    .is_some_and(|(_, puts, deletes)| deletes.is_empty() && *puts == written);
                if !matches {
                    self.verdict.fail(
                        "serializability",
                        format!(
                            "the transaction answered as committed at LSN {lsn} applied {:?}, \
                             its ops write {written:?}",
                            applied.map(|(_, puts, _)| puts)
                        ),
                    );
                    break;
                }
            }
        }
        self.answered = answered;
    }

    pub(crate) fn corrupt(&mut self, detail: String, excused: bool) {
        self.verdict.check("recovery", 1);
        if excused {
            self.verdict.corruption_detected = true;
        } else {
            self.verdict.fail(
                "recovery",
                format!("corruption without any damaging fault: {detail}"),
            );
        }
    }
}
