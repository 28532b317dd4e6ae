//! Reads (SPEC 2, 3, 7.3): one path from a key to its live record, with
//! its value in hand, shared by `GET`, ranges and transactions.
//!
//! Invariants kept here:
//! - **Expired means missing, and is counted once per read that saw it**
//!   (`expired_reads` in INFO), whichever API read it.
//! - **A value-log value is checked against the key it was written for**;
//!   a record that does not match is damage, never another key's value,
//!   unless the database has failed: then it is the failure's (unsynced
//!   bytes may be gone), and the read says so.
//! - **A `sync` read answers only once what it read is durable**, and an
//!   expired key it saw is first deleted durably (`Db::reap`), so neither a
//!   crash nor a wall clock set back can make it come back.

use std::ops::Bound;

use crate::env::Env;
use crate::error::DbError;
use crate::record::Escaped;
use crate::record::{Record, StoredValue, Value};
use crate::store::TreeScan;
use crate::vlog::VlogError;
use crate::wal::Durability;

use super::Db;

/// Most entries [`Db::range`] takes from the tree per step: one step holds
/// the store's lock while it walks cached pages, so a long range lets
/// writers in between steps.
pub const RANGE_STEP_KEYS: usize = 1024;

/// What a read of one key found.
pub(crate) enum Found {
    /// A live record, its value in hand (value-log pointers resolved).
    Live(Record),
    /// A record whose TTL has run out: it reads as missing.
    Expired,
    /// No record.
    Missing,
}

impl<E: Env> Db<E> {
    /// `key`'s record as of now, read from the tree.
    pub(crate) async fn read_key(&self, key: &[u8], now_ms: u64) -> Result<Found, DbError> {
        let record = self.store.get(key).await?;
        self.live(key, record, now_ms).await
    }

    /// What `record`, found under `key` at some moment, means now. The
    /// record may have been read without a lock: if its value-log segment
    /// is gone (GC moved the value and removed the segment since), the key
    /// is read again from the tree, once.
    pub(crate) async fn live(
        &self,
        key: &[u8],
        mut record: Option<Record>,
        now_ms: u64,
    ) -> Result<Found, DbError> {
        let mut retried = false;
        loop {
            let Some(found) = record else {
                return Ok(Found::Missing);
            };
            if found.expired_at(now_ms) {
                self.ttl.expired_read();
                return Ok(Found::Expired);
            }
            match self.resolve(key, found).await {
                Ok(found) => return Ok(Found::Live(found)),
                Err(DbError::Vlog(error)) if error.is_missing_segment() && !retried => {
                    retried = true;
                    record = self.store.get(key).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `record` with its value in hand: a value-log pointer is read and
    /// checked against the key and type it was written for.
    pub(crate) async fn resolve(&self, key: &[u8], mut record: Record) -> Result<Record, DbError> {
        if let StoredValue::Vlog(pointer) = &record.value {
            let value = match self.vlog.read(pointer).await {
                Ok(value) => value,
                Err(error) => return Err(self.damage_or_failure(error.into())),
            };
            if value.key != key || value.value_type != record.value_type {
                return Err(self.damage_or_failure(DbError::Vlog(VlogError::Corrupt {
                    segment: pointer.segment,
                    offset: pointer.offset,
                    detail: format!(
                        "the record holds key {} ({:?}), not {} ({:?})",
                        Escaped(&value.key),
                        value.value_type,
                        Escaped(key),
                        record.value_type
                    ),
                })));
            }
            record.value = StoredValue::Inline(value.bytes);
        }
        Ok(record)
    }

    /// `error` as a read reports it. Once a WAL write or sync has failed,
    /// bytes written and not yet synced may be gone (a failed `fsync` can
    /// drop them from the page cache), so a value an applied but undurable
    /// commit logged can read back as zeros. That is the failure's doing,
    /// not damage: the read says the database failed, and reopening
    /// recovers the durable state, where the tree points at the value's
    /// older, durable copy (seed backup 41340200: a GC move failed its
    /// sync).
    fn damage_or_failure(&self, error: DbError) -> DbError {
        match self.failure() {
            Some(reason) if error.is_corruption() => DbError::StorageFailed(reason),
            _ => error,
        }
    }

    /// The value of `key` (any bytes; `&str` works), if it has one, read
    /// with the default durability.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, DbError> {
        self.get_with(key, self.durability).await
    }

    /// The value of `key`. With [`Durability::Sync`] it returns only once
    /// what it read is durable (SPEC 7.3), so it never shows a write a crash
    /// could still take back.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        durability: Durability,
    ) -> Result<Option<Value>, DbError> {
        let key = key.as_ref();
        let record = self.get_record(key, durability).await?;
        Ok(self.value_of(key, record)?.map(|(value, _)| value))
    }

    /// The value of `key` and its revision (the LSN of the commit that
    /// wrote it, which [`Db::set`] answers), read with the default
    /// durability.
    pub async fn get_with_revision(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Value, u64)>, DbError> {
        let key = key.as_ref();
        let record = self.get_record(key, self.durability).await?;
        self.value_of(key, record)
    }

    /// `record`'s value and revision.
    fn value_of(
        &self,
        key: &[u8],
        record: Option<Record>,
    ) -> Result<Option<(Value, u64)>, DbError> {
        record
            .map(|record| {
                let revision = record.revision;
                Value::from_record(record)
                    .map(|value| (value, revision))
                    .map_err(|reason| DbError::malformed(key, reason))
            })
            .transpose()
    }

    /// `key`'s live record, read as `durability` says.
    async fn get_record(
        &self,
        key: &[u8],
        durability: Durability,
    ) -> Result<Option<Record>, DbError> {
        let record = match self.read_key(key, self.now_ms()).await? {
            Found::Live(record) => Some(record),
            Found::Expired if durability == Durability::Sync => {
                self.reap(vec![key.to_vec()]).await?;
                None
            }
            Found::Expired | Found::Missing => None,
        };
        if durability == Durability::Sync {
            // A value read is as durable as its revision; an absence may be
            // an undurable delete, anything applied so far.
            let lsn = match &record {
                Some(record) => record.revision,
                None => self.store.applied_lsn(),
            };
            self.watch.wait(lsn).await?;
        }
        Ok(record)
    }

    /// Up to `limit` keys from `start` to `end`, ascending, with their
    /// values (value-log pointers read and checked like [`Db::get`]'s);
    /// expired keys are left out. Read with the default durability: under
    /// [`Durability::Sync`] it returns only once everything it read is
    /// durable, and expired keys it saw are deleted durably first (one
    /// commit per step), as a `sync` GET does.
    ///
    /// Not a snapshot: each key is read as of some moment during the call,
    /// and a concurrent commit may show only in part (the transaction
    /// layer's locks isolate readers that need it). The caller's `limit`
    /// bounds what the answer holds; the tree is walked in steps of at
    /// most [`RANGE_STEP_KEYS`] entries.
    pub async fn range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Value)>, DbError> {
        let mut out = Vec::new();
        let mut scan = TreeScan::new(
            start.map(<[u8]>::to_vec),
            end.map(<[u8]>::to_vec),
            RANGE_STEP_KEYS,
        );
        let now_ms = self.now_ms();
        while out.len() < limit {
            scan.set_step((limit - out.len()).min(RANGE_STEP_KEYS));
            let Some(entries) = scan.next(&self.store).await? else {
                break;
            };
            let mut expired_keys = Vec::new();
            for (key, record) in entries {
                match self.live(&key, Some(record), now_ms).await? {
                    Found::Live(record) => {
                        let value = Value::from_record(record)
                            .map_err(|reason| DbError::malformed(&key, reason))?;
                        out.push((key, value));
                    }
                    Found::Expired => expired_keys.push(key),
                    Found::Missing => {}
                }
            }
            // Reaped step by step, so one commit deletes at most a step's keys.
            if self.durability == Durability::Sync && !expired_keys.is_empty() {
                self.reap(expired_keys).await?;
            }
        }
        debug_assert!(out.len() <= limit);
        debug_assert!(out.windows(2).all(|pair| pair[0].0 < pair[1].0));
        if self.durability == Durability::Sync {
            // Every record read carries a revision at or below this.
            self.watch.wait(self.store.applied_lsn()).await?;
        }
        Ok(out)
    }
}
