//! Commands on keys, run as transactions of the engine.
//!
//! Two ways, one meaning:
//! - **Direct.** A command that is one engine op per key (`GET`, a plain
//!   `SET`, `MGET`, `MSET`, `DEL`, `EXISTS`, `TTL`, `PERSIST`, a relative
//!   `EXPIRE`, `INCR` on an Int64) runs as one transaction of those ops.
//! - **Read, then commit what the reads allow.** Anything else (`SET NX`,
//!   `APPEND`, `GETSET`, `INCR` on a decimal string, a `MULTI` block) first
//!   reads its keys in one transaction, runs on that view
//!   ([`keyspace`](super::keyspace)), then commits the changes in a second
//!   transaction that asserts with `ASSERT_REVISION_EQ` that every key read
//!   is still at the revision read, and every `WATCH`ed key at the revision
//!   `WATCH` saw. A read key that changed meanwhile makes it start over; a
//!   watched key that changed makes `EXEC` answer null. Its serial position
//!   is the commit's, so the result is what a serial execution gives.
//!
//! Invariant kept here: **a command is answered only with what committed**
//! (or, for reads, what the engine read under its locks); an engine error
//! fails the whole command and writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jubilant_core::db::{Db, DbError, Durability, Value};
use jubilant_core::env::Env;
use jubilant_core::txn::{LockPoint, Mode, Op, OpResult, ResultMeter, Ttl, Txn, TxnError};

use super::command::{Condition, DataCommand, Expiry, SetTtl};
use super::keyspace::{Change, Entry, View, value_bytes};
use super::reply::Reply;

/// How often a read-then-commit starts over after read keys changed
/// under it before it answers `BUSY`.
const ATTEMPTS_MAX: u32 = 200;
/// The longest pause between two attempts: backing off lets one of many
/// contenders for a hot key through (each waits longer, and differently).
const BACKOFF_MAX: Duration = Duration::from_millis(5);

/// What one command (or `MULTI` block) runs with.
pub struct Ctx<'a, E: Env> {
    /// The environment (for back-off pauses).
    pub env: &'a E,
    /// The database.
    pub db: &'a Db<E>,
    /// Spreads one connection's back-off pauses from another's (its id).
    pub jitter: u64,
    /// The connection's durability class (`None`: the server's).
    pub durability: Option<Durability>,
    /// `limits.response_bytes_max`.
    pub response_bytes_max: u64,
    /// `limits.keys_per_txn_max`.
    pub keys_max: usize,
    /// `limits.ops_per_txn_max`.
    pub ops_max: usize,
    /// A fresh meter on the connection's and the server's answer budgets.
    pub meter: &'a (dyn Fn() -> Arc<ResultMeter> + Send + Sync),
    /// Broken on purpose (sabotage `watch-ignored`): `EXEC` skips the
    /// watched revisions.
    pub watch_ignored: bool,
    /// Broken on purpose (sabotage `resp-reads-unchecked`): the commit
    /// skips the revisions read.
    pub reads_unchecked: bool,
}

impl<E: Env> Ctx<'_, E> {
    fn txn(&self) -> Txn {
        let mut txn = Txn::new();
        if let Some(durability) = self.durability {
            txn.durability(durability);
        }
        txn.limit_result_bytes(self.response_bytes_max)
            .meter_results((self.meter)());
        txn
    }

    fn check_size(&self, keys: usize, ops: usize) -> Result<(), Reply> {
        if keys > self.keys_max {
            return Err(Reply::err(format!(
                "{keys} keys in one command; the limit is {} (limits.keys_per_txn_max)",
                self.keys_max
            )));
        }
        if ops > self.ops_max {
            return Err(Reply::err(format!(
                "the command takes {ops} engine ops; the limit is {} (limits.ops_per_txn_max)",
                self.ops_max
            )));
        }
        Ok(())
    }
}

/// The reply for an engine error, with Redis's codes where one fits.
pub fn txn_error(error: &TxnError) -> Reply {
    match error {
        TxnError::KeyEmpty { .. } => Reply::err("empty keys are not allowed"),
        TxnError::KeyTooLarge { len, max, .. } => Reply::err(format!(
            "a key of {len} bytes exceeds the limit of {max} bytes"
        )),
        TxnError::ValueTooLarge { len, max, .. } => Reply::err(format!(
            "a value of {len} bytes exceeds the limit of {max} bytes (limits.value_bytes_max)"
        )),
        TxnError::Busy { .. } | TxnError::AnswersBacklogged => {
            Reply::Error(format!("BUSY {error}"))
        }
        TxnError::ResultTooLarge { bytes, max, .. } => Reply::err(format!(
            "the reply would take {bytes} bytes, over limits.response_bytes_max ({max}); nothing was written"
        )),
        TxnError::Db(error) => db_error(error),
        other => Reply::err(other),
    }
}

/// The reply for a database error.
pub fn db_error(error: &DbError) -> Reply {
    match error {
        DbError::DiskFull(_) => Reply::Error(format!("MISCONF the disk is full: {error}")),
        DbError::StorageFailed(_) => Reply::Error(format!(
            "MISCONF storage failed; the outcome is unknown until the server restarts: {error}"
        )),
        DbError::Unavailable(_) => Reply::Error(format!("TRYAGAIN {error}")),
        DbError::Closed => Reply::err("the server is shutting down"),
        error if error.is_corruption() => Reply::err(format!(
            "corrupt data: {error}; nothing was applied (`jubectl validate` says more)"
        )),
        error => Reply::err(error),
    }
}

/// What a command or block came to.
#[derive(Debug)]
pub enum Ran {
    /// One reply per command.
    Replies(Vec<Reply>),
    /// A watched key changed: `EXEC` answers null, nothing was written.
    Aborted,
}

/// Runs one command on its own: directly when it maps onto engine ops
/// (then `point` is told once its transaction holds its locks and its ops
/// passed), else by read-then-commit (and `point` is left for the caller to tell
/// once it is answered).
pub async fn run_one<E: Env>(
    ctx: &Ctx<'_, E>,
    command: &DataCommand,
    point: &Arc<LockPoint>,
) -> Reply {
    if let Some(reply) = direct(ctx, command, point).await {
        return reply;
    }
    match run_block(ctx, std::slice::from_ref(command), &[]).await {
        Ok(Ran::Replies(mut replies)) => replies.pop().unwrap_or(Reply::Nil),
        Ok(Ran::Aborted) => Reply::NilArray,
        Err(reply) => reply,
    }
}

/// The result of each of `command`'s keys, in argument order, from a
/// transaction that declared its [`unique`] keys in that order.
fn per_key<'r>(
    command: &'r DataCommand,
    results: &'r [OpResult],
) -> impl Iterator<Item = Option<&'r OpResult>> {
    let keys = command.keys();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    keys.into_iter().map(move |key| {
        sorted
            .binary_search(&key)
            .ok()
            .and_then(|at| results.get(at))
    })
}

/// `keys` sorted, each once.
fn unique(keys: &[Vec<u8>]) -> Vec<&[u8]> {
    let mut sorted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    sorted.sort();
    sorted.dedup();
    sorted
}

/// A command that is one engine op per key, run as one transaction.
async fn direct<E: Env>(
    ctx: &Ctx<'_, E>,
    command: &DataCommand,
    point: &Arc<LockPoint>,
) -> Option<Reply> {
    let mut txn = ctx.txn();
    let mut one = |key: &[u8], mode: Mode, op: fn(u32) -> Op| {
        let id = txn.key(key, mode);
        txn.op(op(id));
    };
    // Each arm declares its keys and ops, and says how to read the results.
    let read: fn(&DataCommand, Vec<OpResult>) -> Reply = match command {
        DataCommand::Get(key) => {
            one(key, Mode::R, Op::Get);
            |_, results| match results.into_iter().next() {
                Some(OpResult::Get(Some((value, _)))) => Reply::Bulk(value_bytes(&value)),
                _ => Reply::Nil,
            }
        }
        DataCommand::Set {
            key,
            value,
            condition: Condition::Always,
            get: false,
            ttl: ttl @ (SetTtl::None | SetTtl::Expiry(Expiry::In(_))),
        } => {
            let ttl_ms = match ttl {
                SetTtl::Expiry(Expiry::In(ms)) => Some(u64::try_from(*ms).unwrap_or(0)),
                _ => None,
            };
            let id = txn.key(key, Mode::RW);
            txn.op(Op::Set(id, Value::Bytes(value.clone()), ttl_ms));
            |_, _| Reply::Ok
        }
        DataCommand::MGet(keys) => {
            // A key asked for twice is read once and answered twice.
            let unique = unique(keys);
            ctx.check_size(unique.len(), unique.len()).ok()?;
            for key in unique {
                one(key, Mode::R, Op::Get);
            }
            |command, results| {
                Reply::Array(
                    per_key(command, &results)
                        .map(|result| match result {
                            Some(OpResult::Get(Some((value, _)))) => {
                                Reply::Bulk(value_bytes(value))
                            }
                            _ => Reply::Nil,
                        })
                        .collect(),
                )
            }
        }
        DataCommand::MSet(pairs) => {
            // A key set twice ends with its last value, as in Redis.
            let mut last: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
            for (key, value) in pairs {
                last.insert(key, value);
            }
            ctx.check_size(last.len(), last.len()).ok()?;
            for (key, value) in last {
                let id = txn.key(key, Mode::RW);
                txn.op(Op::Set(id, Value::Bytes(value.to_vec()), None));
            }
            |_, _| Reply::Ok
        }
        DataCommand::Del(keys) => {
            // A key named twice is deleted (and counted) once.
            let unique = unique(keys);
            ctx.check_size(unique.len(), unique.len()).ok()?;
            for key in unique {
                one(key, Mode::RW, Op::Del);
            }
            |_, results| {
                Reply::Int(
                    results
                        .iter()
                        .filter(|result| matches!(result, OpResult::Del(true)))
                        .count() as i64,
                )
            }
        }
        DataCommand::Exists(keys) => {
            // A key named twice is counted twice, as in Redis.
            let unique = unique(keys);
            ctx.check_size(unique.len(), unique.len()).ok()?;
            for key in unique {
                one(key, Mode::R, Op::Ttl);
            }
            |command, results| {
                Reply::Int(
                    per_key(command, &results)
                        .filter(|result| {
                            !matches!(result, Some(OpResult::Ttl(Ttl::Missing)) | None)
                        })
                        .count() as i64,
                )
            }
        }
        DataCommand::Ttl(key, _) => {
            one(key, Mode::R, Op::Ttl);
            |command, results| {
                let ms = matches!(command, DataCommand::Ttl(_, true));
                match results.into_iter().next() {
                    Some(OpResult::Ttl(Ttl::Ms(left))) => {
                        Reply::Int(if ms { left } else { (left + 500) / 1000 } as i64)
                    }
                    Some(OpResult::Ttl(Ttl::NoExpiry)) => Reply::Int(-1),
                    _ => Reply::Int(-2),
                }
            }
        }
        DataCommand::Persist(key) => {
            one(key, Mode::RW, Op::Persist);
            |_, results| {
                Reply::Int(i64::from(matches!(
                    results.first(),
                    Some(OpResult::Persist(true))
                )))
            }
        }
        DataCommand::Expire(key, Expiry::In(ms), Condition::Always) if *ms > 0 => {
            let id = txn.key(key, Mode::RW);
            txn.op(Op::Expire(id, *ms as u64));
            |_, results| {
                Reply::Int(i64::from(matches!(
                    results.first(),
                    Some(OpResult::Expire(true))
                )))
            }
        }
        DataCommand::IncrBy(key, by) => {
            let id = txn.key(key, Mode::RW);
            txn.op(Op::Add(id, *by));
            // Told only if the ADD passes: on a decimal string it fails,
            // and the read-then-commit `run_one` falls back to must still
            // come before the connection's next command.
            txn.tell_lock_point(Arc::clone(point));
            return match ctx.db.transaction(&txn).await {
                Ok(outcome) => match outcome.results.first() {
                    Some(OpResult::Add(n)) => Some(Reply::Int(*n)),
                    other => Some(Reply::err(format!("unexpected result {other:?}"))),
                },
                // A decimal string: Redis's INCR reads it as a number.
                Err(TxnError::NotAnInt { .. }) => None,
                Err(TxnError::Overflow { .. }) => {
                    Some(Reply::err("increment or decrement would overflow"))
                }
                Err(error) => Some(txn_error(&error)),
            };
        }
        _ => return None,
    };
    txn.tell_lock_point(Arc::clone(point));
    Some(match ctx.db.transaction(&txn).await {
        Ok(outcome) => read(command, outcome.results),
        Err(error) => txn_error(&error),
    })
}

/// Runs `commands` as one unit (a `MULTI` block, or one command that needs
/// its reads first), with `watched` keys that must still be at the
/// revisions given. An `Err` is the reply for the whole block.
pub async fn run_block<E: Env>(
    ctx: &Ctx<'_, E>,
    commands: &[DataCommand],
    watched: &[(Vec<u8>, u64)],
) -> Result<Ran, Reply> {
    let mut keys: Vec<&[u8]> = commands.iter().flat_map(DataCommand::keys).collect();
    keys.sort();
    keys.dedup();
    let mut all: Vec<&[u8]> = keys
        .iter()
        .copied()
        .chain(watched.iter().map(|(key, _)| key.as_slice()))
        .collect();
    all.sort();
    all.dedup();
    ctx.check_size(
        all.len(),
        2 * keys.len().max(1) + watched.len() + keys.len(),
    )?;
    for attempt in 0..ATTEMPTS_MAX {
        if attempt > 0 {
            ctx.env.sleep(backoff(attempt, ctx.jitter)).await;
        }
        let mut view = View::new(0);
        if !keys.is_empty() {
            let mut read = ctx.txn();
            for key in &keys {
                let id = read.key(key, Mode::R);
                read.get(id).op(Op::Ttl(id));
            }
            let outcome = ctx
                .db
                .transaction(&read)
                .await
                .map_err(|error| txn_error(&error))?;
            view = View::new(outcome.now_ms);
            for (key, results) in keys.iter().zip(outcome.results.chunks(2)) {
                let (entry, revision) = match results {
                    [OpResult::Get(Some((value, revision))), OpResult::Ttl(ttl)] => (
                        Some(Entry {
                            value: value.clone(),
                            expires_at_ms: match ttl {
                                Ttl::Ms(ms) => Some(outcome.now_ms + ms),
                                _ => None,
                            },
                        }),
                        *revision,
                    ),
                    _ => (None, 0),
                };
                view.read(key.to_vec(), revision, entry);
            }
        }
        let replies: Vec<Reply> = commands.iter().map(|command| view.apply(command)).collect();
        let changes = view.changes();
        if changes.is_empty() && watched.is_empty() {
            return Ok(Ran::Replies(replies));
        }
        let mut commit = ctx.txn();
        let mut ids = BTreeMap::new();
        for key in &all {
            let mode = if changes.iter().any(|(changed, _)| changed == key) {
                Mode::RW
            } else {
                Mode::R
            };
            ids.insert(*key, commit.key(key, mode));
        }
        let watched = if ctx.watch_ignored { &[][..] } else { watched };
        for (key, revision) in watched {
            commit.assert_revision_eq(ids[key.as_slice()], *revision);
        }
        if !ctx.reads_unchecked {
            for (key, revision) in view.revisions() {
                commit.assert_revision_eq(ids[key], revision);
            }
        }
        if commit.ops().is_empty() {
            return Ok(Ran::Replies(replies));
        }
        for (key, change) in changes {
            let id = ids[key];
            match change {
                Change::Set(value, ttl_ms) => commit.op(Op::Set(id, value, ttl_ms)),
                Change::Del => commit.op(Op::Del(id)),
            };
        }
        match ctx.db.transaction(&commit).await {
            Ok(_) => return Ok(Ran::Replies(replies)),
            Err(TxnError::AssertFailed { op, .. }) if op < watched.len() => {
                return Ok(Ran::Aborted);
            }
            // A key read changed before the commit: read again.
            Err(TxnError::AssertFailed { .. }) => {}
            Err(error) => return Err(txn_error(&error)),
        }
    }
    Err(Reply::Error(format!(
        "BUSY the keys changed under this command {ATTEMPTS_MAX} times in a row; nothing was written, try again"
    )))
}

/// The pause before attempt `attempt` (from 1): doubling from 50 µs up to
/// [`BACKOFF_MAX`], times a factor between 1 and 2 that differs by
/// connection and attempt (deterministic: no ambient randomness).
fn backoff(attempt: u32, jitter: u64) -> Duration {
    let base = Duration::from_micros(50) * (1u32 << attempt.min(7));
    let mix = jitter
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(u64::from(attempt).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let factor = 1.0 + (mix >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(factor).min(BACKOFF_MAX)
}

/// `WATCH`: the revision of each key now (0: missing).
pub async fn watch<E: Env>(
    ctx: &Ctx<'_, E>,
    keys: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, u64)>, Reply> {
    let mut unique: Vec<&Vec<u8>> = keys.iter().collect();
    unique.sort();
    unique.dedup();
    ctx.check_size(unique.len(), unique.len())?;
    let mut read = ctx.txn();
    for key in &unique {
        let id = read.key(key, Mode::R);
        read.get(id);
    }
    let outcome = ctx
        .db
        .transaction(&read)
        .await
        .map_err(|error| txn_error(&error))?;
    Ok(unique
        .into_iter()
        .zip(outcome.results)
        .map(|(key, result)| {
            let revision = match result {
                OpResult::Get(Some((_, revision))) => revision,
                _ => 0,
            };
            (key.clone(), revision)
        })
        .collect())
}
