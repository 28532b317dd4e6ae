//! The blocking face (design 14.1), for programs without async: a
//! [`Db`] that owns a small runtime (one worker thread, which runs the
//! database's background work: the WAL writer, checkpoints, the sweeper,
//! value GC) and runs each call on it. Every method mirrors the async
//! [`crate::Db`]'s, with the same name and result.
//!
//! Do not use it from inside an async runtime (its calls block the
//! thread, which an async task must not do): use [`crate::Db`] there.

use std::ops::RangeBounds;
use std::path::Path;

use jubilant_core::db::{DbOptions, DbStats, Updated, Value};
use jubilant_core::store::CheckpointReport;
use jubilant_core::txn::{Txn, TxnOutcome};
use tokio::runtime::Runtime;

use crate::range::{Entry, Pages, Range};
use crate::{Error, Result};

/// An open database, blocking. Share it between threads by reference
/// (it is `Sync`) or in an `Arc`; dropping it closes the database.
///
/// ```
/// # fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::blocking::open(dir.path())?;
/// let revision = db.set("greeting", "hello")?;
/// assert_eq!(db.get("greeting")?, Some(("hello".into(), revision)));
/// db.close()?;
/// # Ok(())
/// # }
/// ```
pub struct Db {
    /// `None` once closed.
    inner: Option<crate::Db>,
    runtime: Runtime,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Db")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Opens the database in `path` with the default options (creating it if
/// missing).
///
/// ```
/// # fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::blocking::open(dir.path().join("data"))?;
/// # Ok(())
/// # }
/// ```
pub fn open(path: impl AsRef<Path>) -> Result<Db> {
    open_with(path, DbOptions::default())
}

/// Opens the database in `path` with `options`.
///
/// ```
/// # fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// let options = jubilant::DbOptions {
///     cache_bytes: 16 << 20,
///     ..jubilant::DbOptions::default()
/// };
/// let db = jubilant::blocking::open_with(dir.path(), options)?;
/// # Ok(())
/// # }
/// ```
pub fn open_with(path: impl AsRef<Path>, options: DbOptions) -> Result<Db> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("jubilant")
        .enable_all()
        .build()?;
    let inner = runtime.block_on(crate::open_with(path, options))?;
    Ok(Db {
        inner: Some(inner),
        runtime,
    })
}

impl Db {
    fn db(&self) -> &crate::Db {
        self.inner
            .as_ref()
            .expect("a blocking database is only taken by close(self) and drop")
    }

    /// The value of `key` and its revision, if it has one.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// db.set("n", 7)?;
    /// assert_eq!(db.get("n")?.and_then(|(v, _)| v.as_int()), Some(7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Value, u64)>> {
        self.runtime.block_on(self.db().get(key))
    }

    /// Sets `key` to `value`; answers the key's new revision.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// let revision = db.set("k", b"bytes")?;
    /// assert!(revision > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Result<u64> {
        self.runtime.block_on(self.db().set(key, value))
    }

    /// Sets `key` to `value`, expiring `ttl_ms` milliseconds after the
    /// commit.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// db.set_ttl("session", "token", 60_000)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<u64> {
        self.runtime.block_on(self.db().set_ttl(key, value, ttl_ms))
    }

    /// Deletes `key`; answers whether it existed.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// assert!(!db.del("never set")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn del(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.runtime.block_on(self.db().del(key))
    }

    /// Runs `txn`, all or nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// use jubilant::{Mode, Txn};
    /// let mut txn = Txn::new();
    /// let counter = txn.key("counter", Mode::RW);
    /// txn.add(counter, 5).get(counter);
    /// let outcome = db.transaction(&txn)?;
    /// assert!(outcome.lsn > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction(&self, txn: &Txn) -> Result<TxnOutcome> {
        self.runtime.block_on(self.db().transaction(txn))
    }

    /// Read-modify-write with bounded retries (see [`crate::Db::update`]).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// use jubilant::Value;
    /// let updated = db.update("visits", |old| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1)))?;
    /// assert_eq!(updated.value, Some(Value::Int(1)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn update(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnMut(Option<&Value>) -> Option<Value>,
    ) -> Result<Updated> {
        self.runtime.block_on(self.db().update(key, f))
    }

    /// Writes `new` only at revision `expected` (see
    /// [`crate::Db::compare_and_swap`]).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// let created = db.compare_and_swap("lock", 0, Some("me".into()))?;
    /// db.compare_and_swap("lock", created.revision, None)?;
    /// assert_eq!(db.get("lock")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: u64,
        new: Option<Value>,
    ) -> Result<Updated> {
        self.runtime
            .block_on(self.db().compare_and_swap(key, expected, new))
    }

    /// The keys within `bounds`, lazily, as a double-ended iterator.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// for key in ["a", "b", "c"] {
    ///     db.set(key, key)?;
    /// }
    /// let newest_first: Vec<Vec<u8>> = db.range("a".."c").rev().map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(newest_first, vec![b"b".to_vec(), b"a".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range<K: AsRef<[u8]>>(&self, bounds: impl RangeBounds<K>) -> RangeIter<'_, crate::Db> {
        RangeIter {
            runtime: &self.runtime,
            range: self.db().range(bounds),
        }
    }

    /// The keys that begin with `prefix`, lazily, as a double-ended
    /// iterator.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// db.set("user:1", "ada")?;
    /// db.set("zone", "eu")?;
    /// assert_eq!(db.prefix("user:").count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> RangeIter<'_, crate::Db> {
        RangeIter {
            runtime: &self.runtime,
            range: self.db().prefix(prefix),
        }
    }

    /// A read view as of now (see [`crate::Snapshot`]).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// db.set("balance", 10)?;
    /// let snapshot = db.snapshot()?;
    /// db.set("balance", 20)?;
    /// assert_eq!(snapshot.get("balance")?.map(|(v, _)| v), Some(10.into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let inner = self.runtime.block_on(self.db().snapshot())?;
        Ok(Snapshot {
            runtime: &self.runtime,
            inner,
        })
    }

    /// Writes a checkpoint now.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// db.checkpoint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        self.runtime.block_on(self.db().checkpoint())
    }

    /// Counters and sizes (what the server's INFO shows).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// assert_eq!(db.stats().snapshots.live, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> DbStats {
        self.db().stats()
    }

    /// Checkpoints, stops the background work and releases the directory,
    /// saying how that went (dropping does the same, silently).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// let db = jubilant::blocking::open(dir.path())?;
    /// db.close()?;
    /// let again = jubilant::blocking::open(dir.path())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(mut self) -> Result<()> {
        match self.inner.take() {
            Some(db) => self.runtime.block_on(db.close()),
            None => Ok(()),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.inner.take() {
            // Nothing acknowledged depends on it (the WAL has it all); the
            // checkpoint spares the next open a replay.
            if let Err(error) = self.runtime.block_on(db.close()) {
                tracing::warn!(%error, "closing the database on drop failed");
            }
        }
    }
}

/// A read view at one LSN, blocking (see [`crate::Snapshot`]).
///
/// ```
/// # fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// # let db = jubilant::blocking::open(dir.path())?;
/// db.set("a", 1)?;
/// let snapshot = db.snapshot()?;
/// db.del("a")?;
/// assert_eq!(snapshot.range::<&str>(..).count(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Snapshot<'db> {
    runtime: &'db Runtime,
    inner: crate::Snapshot<'db>,
}

impl<'db> Snapshot<'db> {
    /// The LSN it reads as of.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// let revision = db.set("k", 1)?;
    /// assert_eq!(db.snapshot()?.read_lsn(), revision);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_lsn(&self) -> u64 {
        self.inner.read_lsn()
    }

    /// The value of `key` and its revision as of the read LSN.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// let snapshot = db.snapshot()?;
    /// db.set("k", 1)?;
    /// assert_eq!(snapshot.get("k")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Value, u64)>> {
        self.runtime.block_on(self.inner.get(key))
    }

    /// The keys within `bounds` as of the read LSN.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// db.set("a", 1)?;
    /// let snapshot = db.snapshot()?;
    /// db.set("b", 2)?;
    /// assert_eq!(snapshot.range("a"..="b").count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range<K: AsRef<[u8]>>(
        &self,
        bounds: impl RangeBounds<K>,
    ) -> RangeIter<'_, crate::Snapshot<'db>> {
        RangeIter {
            runtime: self.runtime,
            range: self.inner.range(bounds),
        }
    }

    /// The keys that begin with `prefix` as of the read LSN.
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// let snapshot = db.snapshot()?;
    /// db.set("user:1", "ada")?;
    /// assert_eq!(snapshot.prefix("user:").count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> RangeIter<'_, crate::Snapshot<'db>> {
        RangeIter {
            runtime: self.runtime,
            range: self.inner.prefix(prefix),
        }
    }
}

/// A lazy walk over keys, blocking: an [`Iterator`] from the low end and a
/// [`DoubleEndedIterator`] from the high end (see [`Range`]). It stops
/// after the first error it yields.
///
/// ```
/// # fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// # let db = jubilant::blocking::open(dir.path())?;
/// for i in 0..5 {
///     db.set(format!("k{i}"), i)?;
/// }
/// let mut keys = db.range::<&str>(..);
/// assert_eq!(keys.next().transpose()?.map(|(k, _)| k), Some(b"k0".to_vec()));
/// assert_eq!(keys.next_back().transpose()?.map(|(k, _)| k), Some(b"k4".to_vec()));
/// assert_eq!(keys.count(), 3);
/// # Ok(())
/// # }
/// ```
pub struct RangeIter<'a, P: Pages> {
    runtime: &'a Runtime,
    range: Range<'a, P>,
}

impl<P: Pages> std::fmt::Debug for RangeIter<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.range.fmt(f)
    }
}

impl<P: Pages> Iterator for RangeIter<'_, P> {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.range.next())
    }
}

impl<P: Pages> DoubleEndedIterator for RangeIter<'_, P> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.range.next_back())
    }
}
