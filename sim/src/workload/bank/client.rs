//! A bank client: transfers, guarded transfers, audits and note
//! operations until its life ends (or a count of transfers, in the
//! liveness phase), and the checkpointer beside them.

use std::sync::Arc;
use std::time::Duration;

use jubilant_core::db::Durability;
use jubilant_core::env::Clock;
use std::sync::atomic::{AtomicU64, Ordering};

use jubilant_core::mutex::lock;
use jubilant_core::txn::{Mode, OpResult, Txn};
use jubilant_io_sim::{SimEnv, SimRng};

use super::super::lives::think;
use super::conn::{Conn, Failure};
use super::model::Answered;
use super::process::engine_error;
use super::shape::{Shape, account_key, audit};
use super::{LIVENESS_CLIENTS, LOCKS_QUIET_POLLS, Model};

/// How often (per cent of a client's turns) it scans the accounts.
const SCAN_PCT: u64 = 2;

/// The life a client belongs to.
#[derive(Clone)]
pub(super) struct Life {
    pub(super) current: Arc<AtomicU64>,
    pub(super) mine: u64,
}

impl Life {
    /// Whether the client's life ended (its node, or the server's, was
    /// restarted since).
    pub(super) fn over(&self) -> bool {
        self.current.load(Ordering::Acquire) != self.mine
    }
}

/// What a client task works with.
pub(super) struct BankClient {
    pub(super) env: SimEnv,
    pub(super) shape: Arc<Shape>,
    pub(super) conn: Conn,
    pub(super) model: Model,
    pub(super) life: Life,
    /// The accounts its last scan returned (oracle `scan`).
    pub(super) scanned: std::collections::BTreeSet<Vec<u8>>,
}

impl BankClient {
    /// Whether the client should stop: its life ended or the engine failed.
    pub(super) fn stopped(&self) -> bool {
        self.life.over() || lock(&self.model).verdict.poisoned
    }

    /// Oracle `honest_health`, asked after a request failed with
    /// `StorageFailed` (the engine may have failed, or only that commit's
    /// sync, on a full disk): health and PING agree. Health says `Failed`,
    /// with a reason, exactly when PING is refused with `StorageFailed`.
    async fn health_agrees(&mut self, what: &str) {
        let said = self.conn.health_after_failure().await;
        if self.life.over() {
            // A restart came in between: the new life has not failed.
            return;
        }
        let mut m = lock(&self.model);
        match said {
            Ok(None) => {}
            Ok(Some(said)) if said.failed == said.ping_refused => {
                m.verdict.check("honest_health", 1);
                if said.failed {
                    m.verdict.stat("health_failed_seen", 1);
                }
            }
            Ok(Some(said)) => m.verdict.fail(
                "honest_health",
                format!("{what} failed with StorageFailed, but then {said:?}"),
            ),
            // The answer was lost: nothing to judge.
            Err(_) => m.verdict.stat("health_answers_lost", 1),
        }
    }

    /// Records a failure; returns whether the client may go on.
    pub(super) async fn failed(&mut self, what: &str, failure: Failure) -> bool {
        if self.life.over() {
            // An answer from the life before (delivered before the restart,
            // read after it): the new life's engine did not fail.
            lock(&self.model).verdict.stat("stale_answers", 1);
            return false;
        }
        match failure {
            Failure::NoEffect(counter) => {
                lock(&self.model).verdict.stat(counter, 1);
                true
            }
            Failure::Unreachable(why) => {
                self.env.trace(format_args!("{what}: {why}"));
                self.env.sleep(Duration::from_millis(5)).await;
                true
            }
            Failure::Unknown(why) => {
                self.env.trace(format_args!("{what}: answer lost ({why})"));
                lock(&self.model).verdict.stat("answers_lost", 1);
                true
            }
            Failure::Engine {
                message,
                corruption,
                storage,
            } => {
                if storage {
                    self.health_agrees(what).await;
                    if self.life.over() {
                        // The engine was restarted while health was
                        // asked: the failure was the life before's.
                        lock(&self.model).verdict.stat("stale_answers", 1);
                        return false;
                    }
                }
                engine_error(&self.env, &self.model, what, &message, corruption);
                false
            }
            Failure::Refused(why) => {
                lock(&self.model).verdict.fail(
                    "serializability",
                    format!("a well-formed {what} was refused: {why}"),
                );
                false
            }
        }
    }

    /// Records an answer unless the client's life ended while it travelled
    /// (the model has moved on to the next life's history).
    pub(super) fn answered(&self, answered: Answered) -> bool {
        let mut m = lock(&self.model);
        if self.life.over() {
            m.verdict.stat("stale_answers", 1);
            return false;
        }
        m.answered(answered);
        true
    }
}

/// One client: runs `count` transfers (or, without a count, transactions
/// until its life ends). In the liveness phase the last of the
/// [`LIVENESS_CLIENTS`] to finish (`finished` counts them) checks that the
/// lock table empties.
pub(super) async fn client_task(
    mut bank: BankClient,
    finished: Arc<AtomicU64>,
    rng: SimRng,
    count: Option<u64>,
) {
    if !client_loop(&mut bank, rng, count).await || count.is_none() {
        return;
    }
    if finished.fetch_add(1, Ordering::AcqRel) + 1 < LIVENESS_CLIENTS {
        return;
    }
    // The sweeper and GC still lock keys now and then, briefly: a leaked
    // lock never goes away.
    let mut keys_locked = None;
    for _ in 0..LOCKS_QUIET_POLLS {
        match bank.conn.keys_locked().await {
            Ok(0) => {
                keys_locked = Some(0);
                break;
            }
            Ok(n) => keys_locked = Some(n),
            Err(failure) => {
                bank.env
                    .trace(format_args!("lock table check failed: {failure:?}"));
            }
        }
        bank.env.sleep(Duration::from_millis(1)).await;
    }
    let mut m = lock(&bank.model);
    m.verdict.check("liveness", 1);
    if keys_locked != Some(0) {
        m.verdict.fail(
            "liveness",
            format!(
                "the clients are done but the lock table stays busy: {keys_locked:?} keys locked"
            ),
        );
    }
    m.verdict.stat("liveness_done", 1);
}

/// Runs transactions until `count` transfers are done (or forever);
/// returns whether it finished.
pub(super) async fn client_loop(
    bank: &mut BankClient,
    mut rng: SimRng,
    count: Option<u64>,
) -> bool {
    let shape = Arc::clone(&bank.shape);
    let liveness = count.is_some();
    let mut transfers = 0;
    let mut notes_written = 0u64;
    let client_id = rng.next_u64() % 1000;
    while count.is_none_or(|count| transfers < count) {
        think(&bank.env, &mut rng, shape.think_us_max).await;
        if bank.stopped() {
            return false;
        }
        if !liveness && rng.below(100) < SCAN_PCT {
            if !super::scan::scan_accounts(bank, &mut rng).await {
                return false;
            }
            continue;
        }
        let roll = rng.below(100);
        let note = !liveness && shape.notes > 0 && rng.below(100) < shape.note_pct;
        let mut txn = if note {
            notes_written += 1;
            shape.note_txn(&format!("c{client_id}-{notes_written}"), &mut rng)
        } else if !liveness && roll < shape.audit_pct {
            audit(&shape)
        } else {
            // The liveness clients crowd two or three hot accounts.
            let universe = if liveness {
                shape.hot.min(3)
            } else {
                shape.accounts()
            };
            let a = shape.account(&mut rng, universe);
            let b = (a + 1 + rng.below(universe - 1)) % universe;
            let (from, to) = (account_key(a), account_key(b));
            let amount = rng.between(1, 100) as i64;
            if !liveness && roll < shape.audit_pct + shape.guarded_pct {
                // Read the payee's revision, then move money only if it is
                // unchanged: a compare-and-swap that may lose a race.
                let mut read = Txn::new();
                let id = read.key(to.clone(), Mode::R);
                read.get(id).durability(shape.durability(&mut rng));
                let revision = match bank.conn.transaction(&read).await {
                    Ok(outcome) => {
                        let revision = match &outcome.results[0] {
                            OpResult::Get(Some((_, revision))) => *revision,
                            _ => 0,
                        };
                        if !bank.answered(Answered {
                            txn: read.clone(),
                            outcome,
                            durability: Durability::Async,
                        }) {
                            return false;
                        }
                        revision
                    }
                    Err(failure) => {
                        if bank.failed("read", failure).await {
                            continue;
                        }
                        return false;
                    }
                };
                let mut txn = Txn::new();
                let (f, t) = (txn.key(from, Mode::RW), txn.key(to, Mode::RW));
                txn.get(f)
                    .add(f, -amount)
                    .assert_revision_eq(t, revision)
                    .add(t, amount);
                txn
            } else {
                let mut txn = Txn::new();
                // Declared in random order: the engine locks in key order.
                let (f, t) = if rng.chance(0.5) {
                    let f = txn.key(from, Mode::RW);
                    (f, txn.key(to, Mode::RW))
                } else {
                    let t = txn.key(to, Mode::RW);
                    (txn.key(from, Mode::RW), t)
                };
                txn.get(f).get(t).add(f, -amount).add(t, amount);
                txn
            }
        };
        let durability = shape.durability(&mut rng);
        txn.durability(durability);
        match bank.conn.transaction(&txn).await {
            Ok(outcome) => {
                let kind = match (note, outcome.read_only) {
                    (true, _) => "note_txns",
                    (false, true) => "audits",
                    (false, false) => "transfers",
                };
                if !outcome.read_only && !note {
                    transfers += 1;
                }
                if !bank.answered(Answered {
                    txn,
                    outcome,
                    durability,
                }) {
                    return false;
                }
                lock(&bank.model).verdict.stat(kind, 1);
            }
            Err(failure) => {
                if !bank.failed("transaction", failure).await {
                    return false;
                }
            }
        }
    }
    true
}

pub(super) async fn checkpointer(mut bank: BankClient, mut rng: SimRng) {
    let every = bank.shape.checkpoint_every_us_max;
    loop {
        think(&bank.env, &mut rng, every).await;
        if bank.stopped() {
            return;
        }
        if let Conn::Embedded(db) = &bank.conn {
            // The engine's own bookkeeping, recounted from scratch (a
            // mismatch panics, and fails the seed).
            db.check_invariants();
            lock(&bank.model).verdict.stat("engine_invariant_checks", 1);
        }
        lock(&bank.model).checkpoint_running = true;
        let outcome = bank.conn.checkpoint().await;
        lock(&bank.model).checkpoint_running = false;
        match outcome {
            Ok(wrote) => {
                if wrote {
                    lock(&bank.model).verdict.stat("checkpoints", 1);
                }
            }
            Err(failure) => {
                if !bank.failed("checkpoint", failure).await {
                    return;
                }
            }
        }
    }
}
