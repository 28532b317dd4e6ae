//! Snapshots (design 14.3): a read view of the whole database at one read
//! LSN, shared by any number of gets and scans, while writers go on.
//!
//! Invariants kept here:
//! - **Every read in a snapshot answers the state as of its read LSN**, or
//!   fails [`DbError::SnapshotEnded`]; never another state. A read takes
//!   the tree first and the snapshot's undo images second: the writer saves
//!   a key's image before it changes the key, so a tree read that saw a
//!   change is always overruled by the image found after it, and a key
//!   with no image after the tree read had not changed when it was read.
//! - **Expiry is judged at the snapshot's own clock**, fixed when it
//!   began, so what it reads does not age while it is held.
//! - **Released on drop**, with its images.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::env::Env;
use crate::error::DbError;
use crate::record::{Record, Value};
use crate::store::snapshots::Ended;
use crate::store::{RangeQuery, SNAPSHOTS_LIVE_MAX, SnapshotStats};
use crate::wal::Durability;

use super::Db;
use super::read::RANGE_STEP_KEYS;
use super::scan::{ScanPage, ScanRequest, step_past};

/// A read view of a [`Db`] as of one read LSN: gets and scans in it all
/// see the same state, whatever commits meanwhile. Take it with
/// [`Db::snapshot`]; dropping it releases it.
///
/// Each key a writer changes while the snapshot is held costs it one copy
/// of the key's old value in memory (an undo image), bounded by
/// [`DbOptions::snapshot_bytes_max`](super::DbOptions::snapshot_bytes_max);
/// a snapshot past the bound ends, and its reads fail
/// [`DbError::SnapshotEnded`].
///
/// ```
/// # use jubilant_core::db::{Db, DbOptions, Value};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let db = Db::open(jubilant_io_real::RealEnv::current(), dir.path(), DbOptions::default()).await?;
/// db.set("balance", 10).await?;
/// let snapshot = db.snapshot().await?;
/// db.set("balance", 20).await?;
/// assert_eq!(snapshot.get("balance").await?, Some(Value::from(10)));
/// assert_eq!(db.get("balance").await?, Some(Value::from(20)));
/// drop(snapshot);
/// # db.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct Snapshot<'db, E: Env> {
    db: &'db Db<E>,
    id: u64,
    read_lsn: u64,
    now_ms: u64,
}

impl<E: Env> std::fmt::Debug for Snapshot<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("read_lsn", &self.read_lsn)
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl<E: Env> Drop for Snapshot<'_, E> {
    fn drop(&mut self) {
        self.db.store.snapshots.close(self.id);
    }
}

impl From<Ended> for DbError {
    fn from(ended: Ended) -> Self {
        DbError::SnapshotEnded {
            read_lsn: ended.read_lsn,
            reason: ended.reason,
        }
    }
}

/// Where a scan step's entry comes from.
enum Source {
    /// The tree, unchanged since the read LSN unless an image says so.
    Tree(Record),
    /// The snapshot's image (`None`: missing at the read LSN).
    Image(Option<Record>),
}

impl<E: Env> Db<E> {
    /// A read view as of now (see [`Snapshot`]). With the default
    /// durability [`Durability::Sync`] it returns once everything it shows
    /// is durable, so no crash can take back what it read.
    pub async fn snapshot(&self) -> Result<Snapshot<'_, E>, DbError> {
        let snapshots = &self.store.snapshots;
        let turn = snapshots.turn.lock().await;
        // No commit applies while the turn is held: the applied LSN is the
        // tree's state, and every later change is imaged for this snapshot.
        let read_lsn = self.store.applied_lsn();
        let id = snapshots.open(read_lsn, self.store.env.now_mono()).ok_or(
            DbError::TooManySnapshots {
                open: SNAPSHOTS_LIVE_MAX,
            },
        )?;
        drop(turn);
        let snapshot = Snapshot {
            db: self,
            id,
            read_lsn,
            now_ms: self.now_ms(),
        };
        if self.durability == Durability::Sync {
            self.watch.wait(read_lsn).await?;
        }
        Ok(snapshot)
    }

    /// The open snapshots, for INFO.
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.store.snapshots.stats(self.store.env.now_mono())
    }
}

impl<E: Env> Snapshot<'_, E> {
    /// The LSN the snapshot reads as of: every commit at or below it shows,
    /// none above it.
    pub fn read_lsn(&self) -> u64 {
        self.read_lsn
    }

    /// The value of `key` as of the read LSN.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, DbError> {
        Ok(self.get_with_revision(key).await?.map(|(value, _)| value))
    }

    /// The value of `key` as of the read LSN, and its revision (the LSN of
    /// the commit that wrote it).
    pub async fn get_with_revision(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Value, u64)>, DbError> {
        let key = key.as_ref();
        let tree = self.db.store.get(key).await?;
        let record = match self.db.store.snapshots.image(self.id, key)? {
            Some(image) => image,
            None => match tree {
                Some(record) => self.resolve(key, record).await?,
                None => None,
            },
        };
        self.value(key, record)
    }

    /// One page of `request`, as of the read LSN (the same paging as
    /// [`Db::scan`]: resume after the page's last key for the next).
    pub async fn scan(&self, request: &ScanRequest) -> Result<ScanPage, DbError> {
        let limit = request.limit.max(1);
        let reverse = request.reverse;
        let (mut start, mut end) = (request.start.clone(), request.end.clone());
        let mut entries: Vec<(Vec<u8>, Option<Value>)> = Vec::new();
        let mut bytes = 0usize;
        let page_full = |entries: &Vec<_>, bytes: usize| {
            entries.len() >= limit || (!entries.is_empty() && bytes >= request.bytes_max)
        };
        let mut step_keys = 0;
        let exhausted = 'steps: loop {
            // What the page still wants, read from the tree: images may
            // add keys to the step, and hidden or expired ones make it
            // yield fewer, when the next step reads twice as many, so a
            // long run of them costs a few steps, not one per key.
            step_keys = (limit - entries.len())
                .max(step_keys * 2)
                .clamp(1, RANGE_STEP_KEYS);
            let query = RangeQuery {
                start: start.clone(),
                end: end.clone(),
                reverse,
                limit: step_keys,
            };
            let step = self.db.store.range(&query).await?;
            let step_full = step.len() == query.limit;
            // The keys this step covered: up to its last key, or all.
            let (span_start, span_end) = match step.last() {
                Some((last, _)) if step_full && !reverse => {
                    (start.clone(), Bound::Included(last.clone()))
                }
                Some((last, _)) if step_full => (Bound::Included(last.clone()), end.clone()),
                _ => (start.clone(), end.clone()),
            };
            let mut merged: BTreeMap<Vec<u8>, Source> = step
                .into_iter()
                .map(|(key, record)| (key, Source::Tree(record)))
                .collect();
            for (key, image) in
                self.db
                    .store
                    .snapshots
                    .images_in(self.id, &span_start, &span_end)?
            {
                merged.insert(key, Source::Image(image));
            }
            let mut ordered: Vec<(Vec<u8>, Source)> = merged.into_iter().collect();
            if reverse {
                ordered.reverse();
            }
            for (key, source) in ordered {
                if page_full(&entries, bytes) {
                    break 'steps false;
                }
                step_past(&mut start, &mut end, reverse, key.clone());
                let record = match source {
                    Source::Image(image) => image,
                    // Keys only: presence is all, and no value is read.
                    Source::Tree(record) if request.keys_only => Some(record),
                    Source::Tree(record) => self.resolve(&key, record).await?,
                };
                let Some(record) = record.filter(|record| !record.expired_at(self.now_ms)) else {
                    continue;
                };
                if request.keys_only {
                    bytes += key.len();
                    entries.push((key, None));
                } else {
                    let value = Value::from_record(record)
                        .map_err(|reason| DbError::malformed(&key, reason))?;
                    bytes += key.len() + value.len_bytes();
                    entries.push((key, Some(value)));
                }
            }
            if !step_full {
                break true;
            }
            if page_full(&entries, bytes) {
                break false;
            }
        };
        debug_assert!(entries.len() <= limit);
        debug_assert!(entries.windows(2).all(|pair| if reverse {
            pair[0].0 > pair[1].0
        } else {
            pair[0].0 < pair[1].0
        }));
        let resume_after = if exhausted {
            None
        } else {
            entries.last().map(|(key, _)| key.clone())
        };
        Ok(ScanPage {
            entries,
            resume_after,
        })
    }

    /// `record`, read from the tree under `key` and found unchanged since
    /// the read LSN, with its value in hand. Value GC may have moved the
    /// value and removed its segment since the tree was read: that move
    /// was a change, so the key has an image now.
    async fn resolve(&self, key: &[u8], record: Record) -> Result<Option<Record>, DbError> {
        match self.db.resolve(key, record).await {
            Ok(record) => Ok(Some(record)),
            Err(DbError::Vlog(error)) if error.is_missing_segment() => {
                match self.db.store.snapshots.image(self.id, key)? {
                    Some(image) => Ok(image),
                    None => Err(DbError::Vlog(error)),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// What `record` reads as in the snapshot: missing once expired by the
    /// snapshot's clock.
    fn value(&self, key: &[u8], record: Option<Record>) -> Result<Option<(Value, u64)>, DbError> {
        let Some(record) = record.filter(|record| !record.expired_at(self.now_ms)) else {
            return Ok(None);
        };
        let revision = record.revision;
        let value = Value::from_record(record).map_err(|reason| DbError::malformed(key, reason))?;
        Ok(Some((value, revision)))
    }
}
