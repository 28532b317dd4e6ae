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
use crate::txn::{Mode, OpResult, Txn, TxnError};

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

/// Why a read-modify-write did not write.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
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
    Txn(#[from] TxnError),
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
        mut f: impl FnMut(Option<&Value>) -> Option<Value>,
    ) -> Result<Updated, UpdateError> {
        let key = key.as_ref();
        let mut found = 0;
        for attempt in 1..=UPDATE_ATTEMPTS_MAX {
            let (old, revision) = self.read_revision(key).await?;
            let new = f(old.as_ref());
            if old.is_none() && new.is_none() {
                // Missing, and to stay so: nothing to write.
                self.txns.updated(true, u64::from(attempt - 1));
                return Ok(Updated {
                    value: None,
                    revision: 0,
                    attempts: attempt,
                });
            }
            match self.write_if_revision(key, revision, new).await? {
                Ok(updated) => {
                    self.txns.updated(true, u64::from(attempt - 1));
                    return Ok(Updated {
                        attempts: attempt,
                        ..updated
                    });
                }
                Err(now) => found = now,
            }
            if attempt < UPDATE_ATTEMPTS_MAX {
                self.clock.env().sleep(backoff(attempt, revision)).await;
            }
        }
        self.txns.updated(false, u64::from(UPDATE_ATTEMPTS_MAX - 1));
        Err(UpdateError::Conflict {
            attempts: UPDATE_ATTEMPTS_MAX,
            found,
        })
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
        match self.write_if_revision(key.as_ref(), expected, new).await? {
            Ok(updated) => {
                self.txns.updated(true, 0);
                Ok(updated)
            }
            Err(found) => {
                self.txns.updated(false, 0);
                Err(UpdateError::Conflict { attempts: 1, found })
            }
        }
    }

    /// `key`'s value and revision (0 when missing), as one read-only
    /// transaction.
    async fn read_revision(&self, key: &[u8]) -> Result<(Option<Value>, u64), TxnError> {
        let mut txn = Txn::new();
        let id = txn.key(key, Mode::R);
        txn.get(id);
        let outcome = self.transaction(&txn).await?;
        Ok(match outcome.results.into_iter().next() {
            Some(OpResult::Get(Some((value, revision)))) => (Some(value), revision),
            _ => (None, 0),
        })
    }

    /// Writes `new` if `key`'s revision is `expected`: what it did, or
    /// (inner `Err`) the revision it found instead.
    async fn write_if_revision(
        &self,
        key: &[u8],
        expected: u64,
        new: Option<Value>,
    ) -> Result<Result<Updated, u64>, TxnError> {
        let mut txn = Txn::new();
        let id = txn.key(key, Mode::RW);
        txn.assert_revision_eq(id, expected);
        match &new {
            Some(value) => txn.set(id, value.clone()),
            None => txn.del(id),
        };
        match self.transaction(&txn).await {
            Ok(outcome) => Ok(Ok(Updated {
                revision: if new.is_some() { outcome.lsn } else { 0 },
                value: new,
                attempts: 1,
            })),
            Err(TxnError::AssertFailed { revision, .. }) => Ok(Err(revision)),
            Err(error) => Err(error),
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
