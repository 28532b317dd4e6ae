//! Writes: the plain [`Db::set`]/[`Db::del`]/[`Db::write`] calls (one-op
//! transactions through the executor, so value-size checks, TTL arithmetic
//! and the conversion to mutations exist once), and the path every commit
//! takes to the WAL, values of every size in its records.
//!
//! Invariants kept here:
//! - **A commit never points to a value that is not durable with it**
//!   (SPEC 6.6): the value is in the commit's own WAL record.
//! - **What a `sync` read saw expired stays expired** (`reap`).

use crate::env::Env;
use crate::error::DbError;
use crate::lock::{LockMode, LockSet};
use crate::record::{Mutation, Value};
use crate::store::StoreError;
use crate::txn::{Mode, OpResult, Txn, TxnError};
use crate::wal::{CommitRequest, Committed, Durability};

use super::Db;

/// One change of an atomic [`Db::write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: Vec<u8>,
        /// Its new value.
        value: Value,
    },
    /// Set `key` to `value`, expiring after `ttl_ms` milliseconds.
    SetTtl {
        /// The key.
        key: Vec<u8>,
        /// Its new value.
        value: Value,
        /// Time to live, in milliseconds from the commit.
        ttl_ms: u64,
    },
    /// Delete `key` (nothing happens if it is absent).
    Del {
        /// The key.
        key: Vec<u8>,
    },
}

impl Write {
    fn key(&self) -> &[u8] {
        match self {
            Write::Set { key, .. } | Write::SetTtl { key, .. } | Write::Del { key } => key,
        }
    }
}

/// The transaction that applies `writes` in order (a key written twice
/// ends as the last write says).
fn writes_txn(mut writes: Vec<Write>, durability: Durability) -> Txn {
    // In key order: stable, so a key written twice keeps its writes in
    // their order, and writes to different keys commute. The key table is
    // then declared sorted, and every later sort of it (the duplicate
    // check, the lock set, the mutations) finds one run: a large write
    // pays for one sort, not four.
    writes.sort_by(|a, b| a.key().cmp(b.key()));
    let repeats: Vec<bool> = std::iter::once(false)
        .chain(writes.windows(2).map(|pair| pair[0].key() == pair[1].key()))
        .collect();
    let mut txn = Txn::new();
    let mut id = 0;
    for (write, repeat) in writes.into_iter().zip(repeats) {
        if !repeat {
            id = txn.key(write.key(), Mode::RW);
        }
        match write {
            Write::Set { value, .. } => txn.set(id, value),
            Write::SetTtl { value, ttl_ms, .. } => txn.set_ttl(id, value, ttl_ms),
            Write::Del { .. } => txn.del(id),
        };
    }
    txn.durability(durability);
    txn
}

/// The embedded API's error for a transaction of plain writes.
fn write_error(error: TxnError) -> DbError {
    match error {
        TxnError::Db(error) => error,
        TxnError::KeyEmpty { .. } => DbError::Store(StoreError::KeyEmpty),
        TxnError::KeyTooLarge { len, max, .. } => {
            DbError::Store(StoreError::KeyTooLarge { len, max })
        }
        TxnError::ValueTooLarge { len, max, .. } => {
            DbError::Store(StoreError::ValueTooLarge { len, max })
        }
        TxnError::Busy { waited_ms } => DbError::Busy { waited_ms },
        error => unreachable!("plain writes cannot fail with {error:?}"),
    }
}

impl<E: Env> Db<E> {
    /// Sets `key` to `value` with the default durability; returns the
    /// commit LSN (the key's new revision).
    pub async fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
    ) -> Result<u64, DbError> {
        self.set_with(key, value, self.durability).await
    }

    /// Sets `key` to `value`, answering as `durability` says.
    pub async fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        durability: Durability,
    ) -> Result<u64, DbError> {
        let write = Write::Set {
            key: key.as_ref().to_vec(),
            value: value.into(),
        };
        self.write(vec![write], durability).await
    }

    /// Deletes `key` with the default durability; returns whether it
    /// existed (an expired key did not).
    pub async fn del(&self, key: impl AsRef<[u8]>) -> Result<bool, DbError> {
        self.del_with(key, self.durability).await
    }

    /// Deletes `key`, answering as `durability` says; returns whether it
    /// existed (an expired key did not).
    pub async fn del_with(
        &self,
        key: impl AsRef<[u8]>,
        durability: Durability,
    ) -> Result<bool, DbError> {
        let txn = writes_txn(
            vec![Write::Del {
                key: key.as_ref().to_vec(),
            }],
            durability,
        );
        let outcome = self.transaction(&txn).await.map_err(write_error)?;
        match outcome.results.as_slice() {
            [OpResult::Del(existed)] => Ok(*existed),
            results => unreachable!("one DEL answered {results:?}"),
        }
    }

    /// Applies `writes` as one atomic commit: after any crash, all of them
    /// or none are there. Returns the commit LSN.
    pub async fn write(&self, writes: Vec<Write>, durability: Durability) -> Result<u64, DbError> {
        if writes.is_empty() {
            return Ok(self.store.applied_lsn());
        }
        let txn = writes_txn(writes, durability);
        let outcome = self.transaction(&txn).await.map_err(write_error)?;
        debug_assert!(!outcome.read_only, "every write commits");
        Ok(outcome.lsn)
    }

    /// Deletes those of `keys` that are still expired, durably, before a
    /// `sync` read that saw them expired answers: a wall clock set back
    /// across a restart could otherwise make them readable again (SPEC 3:
    /// an expired key never reappears).
    pub(crate) async fn reap(&self, mut keys: Vec<Vec<u8>>) -> Result<(), DbError> {
        keys.sort();
        keys.dedup();
        let order: Vec<(Vec<u8>, LockMode)> = keys
            .iter()
            .map(|key| (key.clone(), LockMode::Exclusive))
            .collect();
        let locks = self.locks.acquire(&order).await;
        let now_ms = self.now_ms();
        let mut deletes = Vec::new();
        for key in keys {
            let still = self.store.get(&key).await?;
            if still.is_some_and(|record| record.expired_at(now_ms)) {
                deletes.push(Mutation::Delete { key });
            }
        }
        if deletes.is_empty() {
            return Ok(());
        }
        self.ttl.reaped(deletes.len() as u64);
        self.wal
            .commit(deletes, Durability::Sync, Some(locks), now_ms)
            .await?;
        Ok(())
    }

    /// Commits `mutations` (their keys locked by `locks`, values within
    /// `value_bytes_max`) through the WAL. Every value goes into its
    /// record; the writer gives a leaf a pointer to the record for a value
    /// over the inline limit, so the commit pays the WAL's one `fdatasync`
    /// whatever its values' sizes (design 11.2).
    pub(crate) async fn commit_mutations(
        &self,
        mutations: Vec<Mutation>,
        durability: Durability,
        locks: Option<LockSet>,
        now_ms: u64,
    ) -> Result<Committed, DbError> {
        self.store.check_keys(&mutations)?;
        let mut commit = CommitRequest::new(mutations, durability, now_ms);
        commit.locks = locks;
        Ok(self.wal.submit(commit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::Op;

    #[test]
    fn a_key_written_twice_is_one_key_whose_last_write_wins() {
        let txn = writes_txn(
            vec![
                Write::Set {
                    key: b"k".to_vec(),
                    value: Value::Int(1),
                },
                Write::Del {
                    key: b"other".to_vec(),
                },
                Write::SetTtl {
                    key: b"k".to_vec(),
                    value: Value::Int(2),
                    ttl_ms: 5,
                },
            ],
            Durability::Async,
        );
        // Declared in key order; a key's writes keep their order.
        assert_eq!(txn.keys().len(), 2);
        assert_eq!(txn.keys()[0].2, b"k");
        assert_eq!(
            txn.ops(),
            [
                Op::Set(0, Value::Int(1), None),
                Op::Set(0, Value::Int(2), Some(5)),
                Op::Del(1),
            ]
        );
        assert_eq!(txn.durability_class(), Some(Durability::Async));
    }
}
