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
//!   Notes (string values up to several times the inline limit, so many
//!   live in the value log, often with TTLs) are replayed too, each
//!   transaction judging expiry at the instant it reports (`now_ms`);
//! - `ttl`: no GET or TTL returns a note whose expiry had passed at that
//!   instant, and none misses one that had not (the replay's verdict on
//!   every read of a note with a TTL);
//! - `conservation`: every audit, and the state after every restart, sums
//!   all balances to zero (transfers move money, never make or lose it),
//!   or, once injected damage to stored data excused a loss at a restart,
//!   to what that restart found;
//! - `durability`: after a restart the accounts and notes equal the
//!   applied history up to the recovered WAL's end (notes expired at the
//!   reading instant aside), which covers every acknowledged `sync` commit,
//!   and after a clean shutdown every commit logged, `async` ones too;
//!   background commits (the TTL sweeper, value-log GC) may reuse the LSNs
//!   of lost ones, so the lowest WAL end of every open counts;
//! - `vlog_pointers_resolve`: every value-log pointer in the tree resolves
//!   after every restart (`validate`);
//! - `recovery` and `liveness` as in the other workloads (liveness also
//!   requires the lock table to be empty once the clients are done).

use std::collections::BTreeMap;

use super::shape::ACCOUNT_PREFIX;
use jubilant_core::db::{Durability, Value};
use jubilant_core::record::{Escaped, Mutation, Record, StoredValue, ValueType};
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnOutcome};

use super::super::verdict::Verdict;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub value: Value,
    pub revision: u64,
    pub expires_at_ms: Option<u64>,
}

impl Entry {
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// Every key that exists: accounts (`acct-*`, Int64 balances) and notes.
pub(crate) type Accounts = BTreeMap<Vec<u8>, Entry>;

/// What a transaction wrote: an entry, or `None` for a delete.
type Written = BTreeMap<Vec<u8>, Option<Entry>>;

/// The sum of the balances in `accounts`.
pub(crate) fn total(accounts: &Accounts) -> i64 {
    accounts
        .iter()
        .filter(|(key, _)| key.starts_with(ACCOUNT_PREFIX))
        .map(|(_, entry)| match entry.value {
            Value::Int(n) => n,
            _ => 0,
        })
        .sum()
}

/// A transaction a client was answered for.
pub(crate) struct Answered {
    pub txn: Txn,
    pub outcome: TxnOutcome,
    pub durability: Durability,
}

pub(crate) struct BankModel {
    /// The accounts as of the last recovery check.
    base: Accounts,
    /// What the balances sum to: zero, unless injected damage to stored
    /// data (excused) lost part of a transfer; transfers keep it since.
    balances_total: i64,
    /// Every commit logged since, in LSN order, as the engine reported it.
    applied: Vec<(u64, Written, u64)>,
    /// The TTL clock may never read earlier than this in the life now
    /// running: the newest reading a commit of the durable history carried.
    ttl_floor_ms: u64,
    /// Every commit LSN ever answered: a revision a client was told is never
    /// given to another write, in this life or any later one (SPEC 1).
    revisions: BTreeMap<u64, (u64, Vec<OpResult>)>,
    answered: Vec<Answered>,
    pub checkpoint_running: bool,
    /// The life ended with a clean shutdown (the server's, as on SIGTERM):
    /// everything logged in it must survive, `async` commits too.
    pub closed_cleanly: bool,
    pub verdict: Verdict,
}

/// The value a logged record holds (the observer is told values, never
/// value-log pointers).
fn value_of(record: &Record) -> Option<Value> {
    let StoredValue::Inline(bytes) = &record.value else {
        return None;
    };
    match record.value_type {
        ValueType::Int64 => <[u8; 8]>::try_from(bytes.as_slice())
            .ok()
            .map(|b| Value::Int(i64::from_le_bytes(b))),
        ValueType::String => String::from_utf8(bytes.clone()).ok().map(Value::String),
        ValueType::Bytes => Some(Value::Bytes(bytes.clone())),
    }
}

impl BankModel {
    pub(crate) fn new() -> Self {
        BankModel {
            base: Accounts::new(),
            balances_total: 0,
            applied: Vec::new(),
            ttl_floor_ms: 0,
            revisions: BTreeMap::new(),
            answered: Vec::new(),
            checkpoint_running: false,
            closed_cleanly: false,
            verdict: Verdict::default(),
        }
    }

    pub(crate) fn begin_life(&mut self) {
        self.verdict.begin_life();
        self.checkpoint_running = false;
    }

    /// The database opened, its recovered WAL ending at `lsn_end`: the
    /// life before it is over, so its answers are checked against its
    /// complete history; then every commit above `lsn_end` is gone for good
    /// (background commits, the sweeper's and GC's, may reuse its LSN
    /// before the check after this open completes).
    pub(crate) fn opened(&mut self, lsn_end: u64, excused: bool) {
        self.check_history();
        if excused {
            // Damage may have cut records, and with them the LSN skip that
            // kept the lost LSNs from being handed out again.
            self.revisions.retain(|lsn, _| *lsn <= lsn_end);
        }
        let lost_sync = self.answered.iter().find(|a| {
            !a.outcome.read_only && a.durability == Durability::Sync && a.outcome.lsn > lsn_end
        });
        if let Some(lost) = lost_sync {
            let message = format!(
                "a sync transaction committed at LSN {} is lost: the recovered WAL ends at {lsn_end}",
                lost.outcome.lsn
            );
            if excused {
                self.verdict.stat("excused_losses", 1);
            } else {
                self.verdict.fail("durability", message);
            }
        }
        if std::mem::take(&mut self.closed_cleanly) {
            self.verdict.check("durability", 1);
            if let Some((last, ..)) = self.applied.last()
                && *last > lsn_end
            {
                let message = format!(
                    "LSN {last} was logged before a clean shutdown, but the recovered WAL ends at {lsn_end}"
                );
                if excused {
                    self.verdict.stat("excused_losses", 1);
                } else {
                    self.verdict.fail("durability", message);
                }
            }
        }
        self.answered.clear();
        self.applied.retain(|(lsn, ..)| *lsn <= lsn_end);
    }

    /// A RESP audit (`MGET` of every account) summed the balances to
    /// `total`.
    pub(crate) fn resp_audit(&mut self, total: i64) {
        self.verdict.check("conservation", 1);
        if total != self.balances_total {
            self.verdict.fail(
                "conservation",
                format!(
                    "a RESP audit (MGET) summed the balances to {total}, not {}",
                    self.balances_total
                ),
            );
        }
    }

    /// A RESP `EXEC` of `INCRBY from -amount; INCRBY to amount` answered
    /// `new_from` and `new_to`: its commit must be in the history (the
    /// newest one that wrote exactly those two balances and was not
    /// answered to anyone else), and is then checked as any answered
    /// transaction is (its replay, its revision, its durability).
    pub(crate) fn resp_transfer_acked(
        &mut self,
        from: &[u8],
        new_from: i64,
        to: &[u8],
        new_to: i64,
        amount: i64,
        durability: Durability,
    ) -> Option<u64> {
        let wrote = |written: &Written, key: &[u8], n: i64| matches!(written.get(key), Some(Some(entry)) if entry.value == Value::Int(n));
        let found = self.applied.iter().rev().find(|(lsn, written, _)| {
            written.len() == 2
                && wrote(written, from, new_from)
                && wrote(written, to, new_to)
                && !self.revisions.contains_key(lsn)
        });
        let Some(&(lsn, _, now_ms)) = found else {
            self.verdict.fail(
                "serializability",
                format!(
                    "a RESP EXEC answered {} = {new_from} and {} = {new_to}, but no commit in \
                     the engine's history wrote that",
                    Escaped(from),
                    Escaped(to)
                ),
            );
            return None;
        };
        let mut txn = Txn::new();
        let (f, t) = (txn.key(from, Mode::RW), txn.key(to, Mode::RW));
        txn.add(f, -amount).add(t, amount);
        self.answered(Answered {
            txn,
            outcome: TxnOutcome {
                lsn,
                read_only: false,
                now_ms,
                results: vec![OpResult::Add(new_from), OpResult::Add(new_to)],
            },
            durability,
        });
        Some(lsn)
    }

    /// A read pipelined on one connection right after a command that
    /// committed at `lsn` saw `balances` (key, balance; missing reads 0):
    /// they must be the accounts' balances at `lsn` or at some later
    /// commit, never before it (a connection's commands take effect in
    /// the order sent).
    pub(crate) fn resp_read_after(&mut self, lsn: u64, balances: &[(&[u8], i64)]) {
        self.verdict.check("serializability", 1);
        let reads = |state: &Accounts| {
            balances.iter().all(|(key, n)| {
                let found = match state.get(*key).map(|entry| &entry.value) {
                    Some(Value::Int(balance)) => *balance,
                    _ => 0,
                };
                found == *n
            })
        };
        let mut state = self.state(|at| at <= lsn);
        if reads(&state) {
            return;
        }
        for (_, written, _) in self.applied.iter().filter(|(at, ..)| *at > lsn) {
            apply(&mut state, written);
            if reads(&state) {
                return;
            }
        }
        let shown: Vec<String> = balances
            .iter()
            .map(|(key, n)| format!("{} = {n}", Escaped(key)))
            .collect();
        self.verdict.fail(
            "serializability",
            format!(
                "a read pipelined after a command that committed at LSN {lsn} saw {}, which no \
                 state from that commit on holds: the connection's order was lost",
                shown.join(", ")
            ),
        );
    }

    /// The commit observer: `mutations` were logged at `lsn`.
    pub(crate) fn applied(&mut self, lsn: u64, now_ms: u64, mutations: &[Mutation]) {
        let mut written = Written::new();
        for mutation in mutations {
            let key = mutation.key().to_vec();
            self.verdict.check("authorization", 1);
            if key.starts_with(super::hostile::INTRUDER_PREFIX) {
                self.verdict.fail(
                    "authorization",
                    format!(
                        "LSN {lsn} wrote {}, a key only intruders write (unauthenticated, or as a guest whose ACL forbids it)",
                        Escaped(&key)
                    ),
                );
            }
            match mutation {
                Mutation::Put { record, .. } => match value_of(record) {
                    Some(value) => {
                        let entry = Entry {
                            value,
                            revision: record.revision,
                            expires_at_ms: record.expires_at_ms,
                        };
                        written.insert(key, Some(entry));
                    }
                    None => self.verdict.fail(
                        "serializability",
                        format!(
                            "LSN {lsn} logged an unreadable value for {}: {record:?}",
                            Escaped(&key)
                        ),
                    ),
                },
                Mutation::Delete { .. } => {
                    written.insert(key, None);
                }
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
        self.applied.push((lsn, written, now_ms));
    }

    /// The engine discarded every commit logged at or after `from_lsn`.
    pub(crate) fn discarded(&mut self, from_lsn: u64) {
        self.applied.retain(|(lsn, ..)| *lsn < from_lsn);
    }

    /// The accounts after every applied commit with an LSN that passes
    /// `include`.
    fn state(&self, include: impl Fn(u64) -> bool) -> Accounts {
        let mut state = self.base.clone();
        for (lsn, written, _) in &self.applied {
            if !include(*lsn) {
                break;
            }
            apply(&mut state, written);
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
                .zip(answered.txn.keys())
                .filter(|(_, (_, _, key))| key.starts_with(ACCOUNT_PREFIX))
                .map(|(result, _)| match result {
                    OpResult::Get(Some((Value::Int(n), _))) => *n,
                    _ => 0,
                })
                .sum();
            if total != self.balances_total {
                self.verdict.fail(
                    "conservation",
                    format!(
                        "an audit at read LSN {} summed the balances to {total}, not {}",
                        answered.outcome.lsn, self.balances_total
                    ),
                );
            }
        }
        if !answered.outcome.read_only {
            self.verdict.check("revisions", 1);
            let this = (self.verdict.recoveries, answered.outcome.results.clone());
            if let Some((life, results)) = self.revisions.insert(answered.outcome.lsn, this) {
                self.verdict.fail(
                    "revisions",
                    format!(
                        "LSN {} was answered to a commit ({:?}) after {} recoveries, and before \
                         to another ({results:?}) after {life}: a revision was handed out twice",
                        answered.outcome.lsn, answered.outcome.results, self.verdict.recoveries
                    ),
                );
            }
        }
        self.verdict.check("ttl", 1);
        if answered.outcome.now_ms < self.ttl_floor_ms {
            self.verdict.fail(
                "ttl",
                format!(
                    "a transaction at LSN {} judged expiry at {}, earlier than {}, which a \
                     durable commit before the last restart recorded",
                    answered.outcome.lsn, answered.outcome.now_ms, self.ttl_floor_ms
                ),
            );
        }
        self.answered.push(answered);
    }

    /// Replays `txn` on `state` as the engine should have run it, with
    /// `lsn` as the revision of what it writes and `now_ms` as its clock;
    /// returns its results, what it wrote and, per result, whether expiry
    /// decided it; or the index of an ASSERT that fails there.
    fn interpret(
        txn: &Txn,
        state: &Accounts,
        lsn: u64,
        now_ms: u64,
    ) -> Result<(Vec<OpResult>, Written, Vec<bool>), usize> {
        let key = |id: u32| {
            txn.keys()
                .iter()
                .find(|(k, ..)| *k == id)
                .map(|(_, _, name)| name.clone())
                .unwrap_or_default()
        };
        let mut view: BTreeMap<Vec<u8>, Option<Entry>> = BTreeMap::new();
        let mut wrote = std::collections::BTreeSet::new();
        let mut results = Vec::new();
        let mut timed = Vec::new();
        for (index, op) in txn.ops().iter().enumerate() {
            let name = key(op.key());
            let slot = view
                .entry(name.clone())
                .or_insert_with(|| state.get(&name).cloned());
            // Expiry is judged on every op (a TTL set within the
            // transaction may already have run out).
            timed.push(slot.as_ref().is_some_and(|e| e.expires_at_ms.is_some()));
            if slot.as_ref().is_some_and(|e| e.expired(now_ms)) {
                *slot = None;
            }
            let mut write = |slot: &mut Option<Entry>, entry: Option<Entry>| {
                *slot = entry;
                wrote.insert(name.clone());
            };
            results.push(match op {
                Op::Get(_) => OpResult::Get(slot.as_ref().map(|e| (e.value.clone(), e.revision))),
                Op::Add(_, delta) => {
                    let (n, expires_at_ms) = match slot.as_ref() {
                        Some(Entry {
                            value: Value::Int(n),
                            expires_at_ms,
                            ..
                        }) => (*n, *expires_at_ms),
                        _ => (0, None),
                    };
                    let n = n.wrapping_add(*delta);
                    let entry = Entry {
                        value: Value::Int(n),
                        revision: lsn,
                        expires_at_ms,
                    };
                    write(slot, Some(entry));
                    OpResult::Add(n)
                }
                Op::Set(_, value, ttl_ms) => {
                    let entry = Entry {
                        value: value.clone(),
                        revision: lsn,
                        expires_at_ms: ttl_ms.map(|ttl| now_ms.saturating_add(ttl)),
                    };
                    write(slot, Some(entry));
                    OpResult::Set
                }
                Op::Del(_) => {
                    let existed = slot.is_some();
                    write(slot, None);
                    OpResult::Del(existed)
                }
                Op::Expire(_, ttl_ms) => match slot.clone() {
                    None => OpResult::Expire(false),
                    Some(entry) => {
                        let entry = Entry {
                            revision: lsn,
                            expires_at_ms: Some(now_ms.saturating_add(*ttl_ms)),
                            ..entry
                        };
                        write(slot, Some(entry));
                        OpResult::Expire(true)
                    }
                },
                Op::Persist(_) => match slot.clone() {
                    Some(entry) if entry.expires_at_ms.is_some() => {
                        let entry = Entry {
                            revision: lsn,
                            expires_at_ms: None,
                            ..entry
                        };
                        write(slot, Some(entry));
                        OpResult::Persist(true)
                    }
                    _ => OpResult::Persist(false),
                },
                Op::Ttl(_) => OpResult::Ttl(match slot.as_ref() {
                    None => Ttl::Missing,
                    Some(Entry {
                        expires_at_ms: None,
                        ..
                    }) => Ttl::NoExpiry,
                    Some(Entry {
                        expires_at_ms: Some(at),
                        ..
                    }) => Ttl::Ms(at.saturating_sub(now_ms)),
                }),
                Op::AssertRevisionEq(_, want)
                    if slot.as_ref().map_or(0, |e| e.revision) == *want =>
                {
                    OpResult::Held
                }
                _ => return Err(index),
            });
        }
        // What is logged is each written key's final view: a TTL that ran
        // out within the transaction (seen by a later op) logs a delete.
        let written = wrote
            .into_iter()
            .map(|key| {
                let entry = view.remove(&key).flatten();
                (key, entry)
            })
            .collect();
        Ok((results, written, timed))
    }

    /// Checks the restarted database: `found` is every account and note
    /// read after recovery at `now_ms`, `lsn_end` the end of the recovered
    /// WAL. With `excused` (stored data damaged), a mismatch is an excused
    /// loss. Then starts the next life from `found`.
    pub(crate) fn recovered(&mut self, found: &Accounts, now_ms: u64, lsn_end: u64, excused: bool) {
        self.verdict.recoveries += 1;
        // TTL time never goes back across a restart below what a durable
        // commit recorded (SPEC 3), wall clock jumps or not.
        let floor = self
            .applied
            .iter()
            .filter(|(lsn, ..)| *lsn <= lsn_end)
            .map(|(.., now)| *now)
            .fold(self.ttl_floor_ms, u64::max);
        self.verdict.check("ttl", 1);
        if now_ms < floor && !excused {
            self.verdict.fail(
                "ttl",
                format!(
                    "after recovery to LSN {lsn_end} the TTL clock reads {now_ms}, earlier than \
                     {floor}, which a durable commit recorded: an expiry could come back"
                ),
            );
        }
        // Damage may take durable commits (and their readings) away.
        self.ttl_floor_ms = if excused { now_ms } else { floor };
        self.verdict.check("conservation", 1);
        let total = total(found);
        if total != self.balances_total && !excused {
            self.verdict.fail(
                "conservation",
                format!(
                    "after recovery the balances sum to {total}, not {}",
                    self.balances_total
                ),
            );
        }
        // A loss damage excused may have cut a transfer in half: the
        // audits of the lives after it sum to what was found.
        self.balances_total = total;
        self.verdict.check("durability", 1);
        let durable = self.state(|lsn| lsn <= lsn_end);
        let mut expected = durable.clone();
        expected.retain(|_, entry| !entry.expired(now_ms));
        let failure = if expected != *found {
            let first = expected
                .iter()
                .find(|(k, v)| found.get(*k) != Some(v))
                .map(|(k, v)| format!("{}: expected {v:?}, found {:?}", Escaped(k), found.get(k)))
                .or_else(|| {
                    found
                        .iter()
                        .find(|(k, _)| !expected.contains_key(*k))
                        .map(|(k, v)| {
                            let history = self.state(|lsn| lsn <= lsn_end);
                            format!(
                                "{}: found {v:?}; the history up to LSN {lsn_end} has {:?}, \
                                 expired or not by {now_ms}",
                                Escaped(k),
                                history.get(k)
                            )
                        })
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
        // The next life starts from what is stored, expired notes included
        // (a wall clock set back makes them readable again; only an expiry
        // a `sync` read saw is made durable, by a delete in the history).
        let mut base = found.clone();
        for (key, entry) in durable {
            if entry.expired(now_ms) {
                base.entry(key).or_insert(entry);
            }
        }
        self.base = base;
        // Commits of this life that came before the check (the sweeper's,
        // GC's) stay history: a sweeper delete of an expired note must
        // keep it from coming back in the next life's base.
        self.applied.retain(|(lsn, ..)| *lsn > lsn_end);
    }

    /// Checks every answered transaction against the applied history,
    /// in serial order: the history is replayed once, each answer checked
    /// at its place (a commit at LSN `l` against the state before `l`, a
    /// read-only answer at read LSN `l` against the state after it).
    fn check_history(&mut self) {
        let answered = std::mem::take(&mut self.answered);
        let mut order: Vec<&Answered> = answered.iter().collect();
        order.sort_by_key(|a| (a.outcome.lsn, a.outcome.read_only));
        let mut state = self.base.clone();
        let mut replayed = 0;
        for a in order {
            if self.verdict.failure.is_some() {
                break;
            }
            self.verdict.check("serializability", 1);
            let lsn = a.outcome.lsn;
            while let Some((logged, written, _)) = self.applied.get(replayed) {
                let before = if a.outcome.read_only {
                    *logged <= lsn
                } else {
                    *logged < lsn
                };
                if !before {
                    break;
                }
                apply(&mut state, written);
                replayed += 1;
            }
            let pending = if a.outcome.read_only { 0 } else { lsn };
            let now_ms = a.outcome.now_ms;
            let (results, written, timed) = match Self::interpret(&a.txn, &state, pending, now_ms) {
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
            self.verdict
                .check("ttl", timed.iter().filter(|&&t| t).count() as u64);
            if results != a.outcome.results {
                // A result that expiry decided is the TTL oracle's to judge.
                let decided_by_expiry = results
                    .iter()
                    .zip(&a.outcome.results)
                    .zip(&timed)
                    .any(|((want, got), &timed)| want != got && timed);
                self.verdict.fail(
                    if decided_by_expiry {
                        "ttl"
                    } else {
                        "serializability"
                    },
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
                let matches = applied.is_some_and(|(_, logged, _)| *logged == written);
                if !matches {
                    self.verdict.fail(
                        "serializability",
                        format!(
                            "the transaction answered as committed at LSN {lsn} applied {:?}, \
                             its ops write {written:?}",
                            applied.map(|(_, logged, _)| logged)
                        ),
                    );
                    break;
                }
            }
        }
        self.answered = answered;
    }

    pub(crate) fn corrupt(&mut self, detail: String, excused: bool) {
        self.corrupt_as("recovery", detail, excused);
    }

    /// As [`BankModel::corrupt`], failing `oracle`.
    pub(crate) fn corrupt_as(&mut self, oracle: &'static str, detail: String, excused: bool) {
        self.verdict.check(oracle, 1);
        if excused {
            self.verdict.corruption_detected = true;
        } else {
            self.verdict.fail(
                oracle,
                format!("corruption without any damaging fault: {detail}"),
            );
        }
    }
}

/// Applies one commit's changes to `state`.
fn apply(state: &mut Accounts, written: &Written) {
    for (key, entry) in written {
        match entry {
            Some(entry) => {
                state.insert(key.clone(), entry.clone());
            }
            None => {
                state.remove(key);
            }
        }
    }
}
