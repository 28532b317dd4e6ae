//! Read-modify-write (design 14.4): read a key's value and revision, compute
//! the new value, and write it only if the key has not changed meanwhile,
//! as one transaction asserting the revision read (`AssertRevisionEq`).
//!
//! Invariant kept here: **a write is never computed from a value that
//! changed before it commits**: the commit asserts the revision its input
//! had, under the key's exclusive lock, so a conflicting commit in between
//! makes it fail whole and try again (or give up, saying so), never
//! overwrite what it did not read.

use std::time::Duration;

use crate::env::Env;
use crate::record::Value;
use crate::sabotage::sabotaged;
use crate::txn::{Mode, Op, OpResult, Txn, TxnError, TxnOutcome};

use super::Db;

/// Attempts [`Db::update`] makes before it reports a conflict.
pub const UPDATE_ATTEMPTS_MAX: u32 = 16;

/// The first pause before another attempt; each further one doubles it.
const BACKOFF_FIRST: Duration = Duration::from_micros(100);
/// The longest pause.
const BACKOFF_MAX: Duration = Duration::from_millis(20);

/// What a read-modify-write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Updated {
    /// The key's value now (`None`: deleted, or left missing).
    pub value: Option<Value>,
    /// Its revision now: the commit's LSN (0 when missing).
    pub revision: u64,
    /// Attempts it took (1: no conflict).
    pub attempts: u32,
}

/// Why a read-modify-write did not write. `E` is how a transaction fails
/// where it runs ([`TxnError`] embedded, the client's error remote).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E = TxnError> {
    /// The key kept changing between the read and the write
    /// ([`Db::update`], after [`UPDATE_ATTEMPTS_MAX`] attempts), or did
    /// not have the expected revision ([`Db::compare_and_swap`]; `found`
    /// is its revision, 0 when missing).
    #[error("the key changed under {attempts} attempts (its revision is now {found})")]
    Conflict {
        /// Attempts made.
        attempts: u32,
        /// The revision found by the last attempt.
        found: u64,
    },
    /// The transaction failed otherwise (storage, limits, bad input).
    #[error(transparent)]
    Txn(E),
}

impl From<TxnError> for UpdateError {
    fn from(error: TxnError) -> Self {
        UpdateError::Txn(error)
    }
}

/// What read-modify-write runs on: anything that runs transactions (the
/// embedded [`Db`], the remote client), so the loop exists once.
pub trait Transactor: Sync {
    /// How a transaction fails.
    type Error: Send;
    /// Runs `txn`.
    fn transact(&self, txn: &Txn) -> impl Future<Output = Result<TxnOutcome, Self::Error>> + Send;
    /// The revision a failed `AssertRevisionEq` found, when `error` is one.
    fn found_revision(error: &Self::Error) -> Option<u64>;
    /// Waits `duration` before another attempt.
    fn pause(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

impl<E: Env> Transactor for Db<E> {
    type Error = TxnError;

    async fn transact(&self, txn: &Txn) -> Result<TxnOutcome, TxnError> {
        if sabotaged!(self, UpdateUnasserted) {
            // Broken on purpose: the write no longer checks that the key
            // still has the revision its value was computed from.
            let ops = txn
                .ops()
                .iter()
                .filter(|op| !matches!(op, Op::AssertRevisionEq(..)))
                .cloned()
                .collect();
            return self
                .transaction(&Txn::from_parts(txn.keys().to_vec(), ops))
                .await;
        }
        self.transaction(txn).await
    }

    fn found_revision(error: &TxnError) -> Option<u64> {
        match error {
            TxnError::AssertFailed { revision, .. } => Some(*revision),
            _ => None,
        }
    }

    fn pause(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.clock.env().sleep(duration)
    }
}

/// [`Db::update`] on any [`Transactor`].
pub async fn update<T: Transactor>(
    on: &T,
    key: &[u8],
    mut f: impl FnMut(Option<&Value>) -> Option<Value>,
) -> Result<Updated, UpdateError<T::Error>> {
    let mut found = 0;
    for attempt in 1..=UPDATE_ATTEMPTS_MAX {
        let (old, revision) = read_revision(on, key).await.map_err(UpdateError::Txn)?;
        let new = f(old.as_ref());
        if old.is_none() && new.is_none() {
            // Missing, and to stay so: nothing to write.
            return Ok(Updated {
                value: None,
                revision: 0,
                attempts: attempt,
            });
        }
        match write_if_revision(on, key, revision, new).await {
            Ok(updated) => {
                return Ok(Updated {
                    attempts: attempt,
                    ..updated
                });
            }
            Err(UpdateError::Conflict { found: now, .. }) => found = now,
            Err(error) => return Err(error),
        }
        if attempt < UPDATE_ATTEMPTS_MAX {
            on.pause(backoff(attempt, revision)).await;
        }
    }
    Err(UpdateError::Conflict {
        attempts: UPDATE_ATTEMPTS_MAX,
        found,
    })
}

/// [`Db::compare_and_swap`] on any [`Transactor`].
pub async fn compare_and_swap<T: Transactor>(
    on: &T,
    key: &[u8],
    expected: u64,
    new: Option<Value>,
) -> Result<Updated, UpdateError<T::Error>> {
    write_if_revision(on, key, expected, new).await
}

/// `key`'s value and revision (0 when missing), as one read-only
/// transaction.
async fn read_revision<T: Transactor>(
    on: &T,
    key: &[u8],
) -> Result<(Option<Value>, u64), T::Error> {
    let mut txn = Txn::new();
    let id = txn.key(key, Mode::R);
    txn.get(id);
    let outcome = on.transact(&txn).await?;
    Ok(match outcome.results.into_iter().next() {
        Some(OpResult::Get(Some((value, revision)))) => (Some(value), revision),
        _ => (None, 0),
    })
}

/// Writes `new` if `key`'s revision is `expected`; one attempt, a
/// `Conflict` naming the revision found otherwise.
async fn write_if_revision<T: Transactor>(
    on: &T,
    key: &[u8],
    expected: u64,
    new: Option<Value>,
) -> Result<Updated, UpdateError<T::Error>> {
    let mut txn = Txn::new();
    let id = txn.key(key, Mode::RW);
    txn.assert_revision_eq(id, expected);
    match &new {
        Some(value) => txn.set(id, value.clone()),
        None => txn.del(id),
    };
    match on.transact(&txn).await {
        Ok(outcome) => Ok(Updated {
            revision: if new.is_some() { outcome.lsn } else { 0 },
            value: new,
            attempts: 1,
        }),
        Err(error) => Err(match T::found_revision(&error) {
            Some(found) => UpdateError::Conflict { attempts: 1, found },
            None => UpdateError::Txn(error),
        }),
    }
}

impl<E: Env> Db<E> {
    /// Reads `key`, computes `f(old)`, and writes the result (a value, or
    /// `None` to delete) only if the key has not changed since the read;
    /// tries again with backoff when it has, up to
    /// [`UPDATE_ATTEMPTS_MAX`] attempts. `f` may run more than once. The
    /// value written has no TTL (as `set`).
    ///
    /// ```
    /// # use jubilant_core::db::{Db, DbOptions, Value};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Db::open(jubilant_io_real::RealEnv::current(), dir.path(), DbOptions::default()).await?;
    /// let bump = |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
    /// db.update("visits", bump).await?;
    /// let updated = db.update("visits", bump).await?;
    /// assert_eq!(updated.value, Some(Value::Int(2)));
    /// assert_eq!(updated.attempts, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnMut(Option<&Value>) -> Option<Value>,
    ) -> Result<Updated, UpdateError> {
        let outcome = update(self, key.as_ref(), f).await;
        self.count_update(&outcome);
        outcome
    }

    /// Writes `new` (a value, or `None` to delete) to `key` only if its
    /// revision is `expected` (0: the key must be missing); one attempt.
    ///
    /// ```
    /// # use jubilant_core::db::{Db, DbOptions, UpdateError, Value};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = Db::open(jubilant_io_real::RealEnv::current(), dir.path(), DbOptions::default()).await?;
    /// let created = db.compare_and_swap("lock", 0, Some(Value::from("me"))).await?;
    /// let taken = db.compare_and_swap("lock", 0, Some(Value::from("you"))).await;
    /// assert!(matches!(taken, Err(UpdateError::Conflict { found, .. }) if found == created.revision));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: u64,
        new: Option<Value>,
    ) -> Result<Updated, UpdateError> {
        let outcome = compare_and_swap(self, key.as_ref(), expected, new).await;
        self.count_update(&outcome);
        outcome
    }

    /// Counts a read-modify-write in INFO: done or conflicted, and its
    /// attempts past the first.
    fn count_update(&self, outcome: &Result<Updated, UpdateError>) {
        match outcome {
            Ok(updated) => self.txns.updated(true, u64::from(updated.attempts - 1)),
            Err(UpdateError::Conflict { attempts, .. }) => {
                self.txns.updated(false, u64::from(attempts - 1));
            }
            Err(UpdateError::Txn(_)) => {}
        }
    }
}

/// The pause before attempt `attempt + 1`: doubling from
/// [`BACKOFF_FIRST`] to [`BACKOFF_MAX`], with up to half of it added from
/// `seed` (the revision read), so updaters that collided do not collide
/// again in step.
fn backoff(attempt: u32, seed: u64) -> Duration {
    let base = BACKOFF_FIRST
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(BACKOFF_MAX);
    let spread = u64::try_from(base.as_micros() / 2).unwrap_or(0).max(1);
    let jitter = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) % spread;
    base + Duration::from_micros(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        assert!(backoff(1, 0) >= BACKOFF_FIRST && backoff(1, 7) < BACKOFF_FIRST * 2);
        assert!(backoff(2, 3) >= BACKOFF_FIRST * 2);
        for attempt in 1..=UPDATE_ATTEMPTS_MAX {
            assert!(backoff(attempt, u64::MAX) <= BACKOFF_MAX + BACKOFF_MAX / 2);
        }
    }
}
