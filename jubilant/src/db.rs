//! The async face: [`Db`], a cheap handle to a database opened on the
//! real environment, and [`Snapshot`], a read view of it at one LSN.

use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use jubilant_core::db::{
    self as core_db, DbOptions, DbStats, ScanPage, ScanRequest, Updated, Value,
};
use jubilant_core::store::CheckpointReport;
use jubilant_core::txn::{Mode, Txn, TxnOutcome};
use jubilant_io_real::RealEnv;

use crate::range::{Pages, Range, owned_bounds};
use crate::{Error, Result};

/// The engine's database on the real environment.
type CoreDb = core_db::Db<RealEnv>;

/// An open database. Cloning it is cheap (every clone is a handle to the
/// same database), and every method takes `&self` and may run
/// concurrently, so share it between tasks by cloning. Needs a tokio
/// runtime, as any tokio library does; [`crate::blocking`] brings its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::open(dir.path()).await?;
/// let revision = db.set("greeting", "hello").await?;
/// assert_eq!(db.get("greeting").await?, Some(("hello".into(), revision)));
/// db.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<CoreDb>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner.dir())
            .finish_non_exhaustive()
    }
}

/// Opens the database in `path` with the default options (creating it if
/// missing), recovering whatever a crash left.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::open(dir.path().join("data")).await?;
/// # db.close().await?;
/// # Ok(())
/// # }
/// ```
pub async fn open(path: impl AsRef<Path>) -> Result<Db> {
    open_with(path, DbOptions::default()).await
}

/// Opens the database in `path` with `options`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// use jubilant::{DbOptions, Durability};
/// let options = DbOptions {
///     durability: Durability::Async,
///     ..DbOptions::default()
/// };
/// let db = jubilant::open_with(dir.path(), options).await?;
/// # db.close().await?;
/// # Ok(())
/// # }
/// ```
pub async fn open_with(path: impl AsRef<Path>, options: DbOptions) -> Result<Db> {
    let db = CoreDb::open(RealEnv::current(), path.as_ref(), options).await?;
    Ok(Db {
        inner: Arc::new(db),
    })
}

impl Db {
    /// The value of `key` and its revision (the LSN of the commit that
    /// wrote it), if it has one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("n", 7).await?;
    /// let (value, _revision) = db.get("n").await?.expect("set above");
    /// assert_eq!(value.as_int(), Some(7));
    /// assert_eq!(db.get("missing").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Value, u64)>> {
        Ok(self.inner.get_with_revision(key).await?)
    }

    /// Sets `key` to `value`; answers the key's new revision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// let first = db.set("k", "one").await?;
    /// let second = db.set("k", b"two").await?;
    /// assert!(second > first);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Result<u64> {
        Ok(self.inner.set(key, value).await?)
    }

    /// Sets `key` to `value`, expiring `ttl_ms` milliseconds after the
    /// commit; answers the key's new revision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set_ttl("session", "token", 60_000).await?;
    /// assert!(db.get("session").await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<u64> {
        let mut txn = Txn::new();
        let id = txn.key(key, Mode::RW);
        txn.set_ttl(id, value, ttl_ms);
        Ok(self.transaction(&txn).await?.lsn)
    }

    /// Deletes `key`; answers whether it existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("k", 1).await?;
    /// assert!(db.del("k").await?);
    /// assert!(!db.del("k").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn del(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.inner.del(key).await?)
    }

    /// Runs `txn`: its ops in order, all or nothing, under strict
    /// two-phase locking.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::{Mode, Txn};
    /// db.set("alice", 100).await?;
    /// let mut transfer = Txn::new();
    /// let (alice, bob) = (transfer.key("alice", Mode::RW), transfer.key("bob", Mode::RW));
    /// transfer.assert_int_eq(alice, 100).add(alice, -30).add(bob, 30);
    /// db.transaction(&transfer).await?;
    /// assert_eq!(db.get("bob").await?.map(|(v, _)| v), Some(30.into()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction(&self, txn: &Txn) -> Result<TxnOutcome> {
        Ok(self.inner.transaction(txn).await?)
    }

    /// Reads `key`, computes `f(old)`, and writes the result (`None`
    /// deletes) only if the key has not changed since the read, trying
    /// again with backoff when it has (at most
    /// [`UPDATE_ATTEMPTS_MAX`](crate::UPDATE_ATTEMPTS_MAX) attempts, then
    /// [`Error::Conflict`]). `f` may run more than once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Value;
    /// let bump = |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
    /// db.update("visits", bump).await?;
    /// let updated = db.update("visits", bump).await?;
    /// assert_eq!(updated.value, Some(Value::Int(2)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnMut(Option<&Value>) -> Option<Value>,
    ) -> Result<Updated> {
        Ok(self.inner.update(key, f).await?)
    }

    /// Writes `new` (`None` deletes) to `key` only if its revision is
    /// `expected` (0: the key must be missing); one attempt, and
    /// [`Error::Conflict`] naming the revision found otherwise.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// let mine = db.compare_and_swap("lock", 0, Some("me".into())).await?;
    /// let theirs = db.compare_and_swap("lock", 0, Some("you".into())).await;
    /// assert!(matches!(theirs, Err(jubilant::Error::Conflict { found, .. }) if found == mine.revision));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: u64,
        new: Option<Value>,
    ) -> Result<Updated> {
        Ok(self.inner.compare_and_swap(key, expected, new).await?)
    }

    /// The keys within `bounds` and their values, lazily, from either end
    /// (see [`Range`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
    ///     db.set(key, i as i64).await?;
    /// }
    /// let entries = db.range("b"..="c").collect().await?;
    /// assert_eq!(entries, vec![(b"b".to_vec(), 1.into()), (b"c".to_vec(), 2.into())]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range<K: AsRef<[u8]>>(&self, bounds: impl RangeBounds<K>) -> Range<'_, Self> {
        Range::new(self, owned_bounds(&bounds))
    }

    /// The keys that begin with `prefix` and their values, lazily, from
    /// either end.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("user:1", "ada").await?;
    /// db.set("user:2", "alan").await?;
    /// db.set("zone", "eu").await?;
    /// let mut users = db.prefix("user:");
    /// let (last, _) = users.next_back().await.expect("two users")?;
    /// assert_eq!(last, b"user:2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Range<'_, Self> {
        Range::prefix(self, prefix.as_ref())
    }

    /// A read view as of now that gets and ranges share (see
    /// [`Snapshot`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("balance", 10).await?;
    /// let snapshot = db.snapshot().await?;
    /// db.set("balance", 20).await?;
    /// assert_eq!(snapshot.get("balance").await?.map(|(v, _)| v), Some(10.into()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn snapshot(&self) -> Result<Snapshot<'_>> {
        Ok(Snapshot {
            inner: self.inner.snapshot().await?,
        })
    }

    /// Writes a checkpoint now (checkpoints also run by themselves).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("k", 1).await?;
    /// let report = db.checkpoint().await?;
    /// assert!(report.checkpoint_lsn >= 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn checkpoint(&self) -> Result<CheckpointReport> {
        Ok(self.inner.checkpoint().await?)
    }

    /// Counters and sizes (what the server's INFO shows).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("k", 1).await?;
    /// assert_eq!(db.stats().store.keys, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> DbStats {
        self.inner.stats()
    }

    /// The engine's database under this handle, for what this facade does
    /// not wrap (backups, validation, paged scans with every option).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// let report = db.engine().validate().await?;
    /// assert!(report.findings.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn engine(&self) -> &CoreDb {
        &self.inner
    }

    /// Checkpoints, stops the background tasks and releases the
    /// directory. Every other handle must be gone first
    /// ([`Error::InUse`] otherwise, and this handle stays usable through
    /// none: drop the others and open again). Dropping the last handle
    /// without `close` loses nothing acknowledged either: the next open
    /// replays the WAL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// let db = jubilant::open(dir.path()).await?;
    /// let other = db.clone();
    /// drop(other);
    /// db.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(db) => Ok(db.close().await?),
            Err(shared) => Err(Error::InUse {
                handles: Arc::strong_count(&shared) - 1,
            }),
        }
    }
}

impl Pages for Db {
    async fn page(&self, request: &ScanRequest) -> Result<ScanPage> {
        Ok(self.inner.scan(request).await?)
    }
}

/// A read view of a [`Db`] at one read LSN: every get and range in it sees
/// the same state, whatever commits meanwhile; released on drop. Each key
/// written while it is held costs one copy of the key's old value in
/// memory, within `DbOptions::snapshot_bytes_max`; past it the snapshot
/// ends, and its reads fail (`DbError::SnapshotEnded`), never answering
/// wrong. INFO's `# Snapshots` shows the open ones.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// # let db = jubilant::open(dir.path()).await?;
/// db.set("a", 1).await?;
/// let snapshot = db.snapshot().await?;
/// db.set("b", 2).await?;
/// assert_eq!(snapshot.range::<&str>(..).collect().await?.len(), 1);
/// assert_eq!(db.range::<&str>(..).collect().await?.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Snapshot<'db> {
    inner: core_db::Snapshot<'db, RealEnv>,
}

impl Snapshot<'_> {
    /// The LSN it reads as of.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// let revision = db.set("k", 1).await?;
    /// assert_eq!(db.snapshot().await?.read_lsn(), revision);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_lsn(&self) -> u64 {
        self.inner.read_lsn()
    }

    /// The value of `key` and its revision as of the read LSN.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// let snapshot = db.snapshot().await?;
    /// db.set("k", 1).await?;
    /// assert_eq!(snapshot.get("k").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Value, u64)>> {
        Ok(self.inner.get_with_revision(key).await?)
    }

    /// The keys within `bounds` as of the read LSN, lazily, from either
    /// end.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("a", 1).await?;
    /// let snapshot = db.snapshot().await?;
    /// db.del("a").await?;
    /// assert_eq!(snapshot.range("a"..).collect().await?, vec![(b"a".to_vec(), 1.into())]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range<K: AsRef<[u8]>>(&self, bounds: impl RangeBounds<K>) -> Range<'_, Self> {
        Range::new(self, owned_bounds(&bounds))
    }

    /// The keys that begin with `prefix` as of the read LSN.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("user:1", "ada").await?;
    /// let snapshot = db.snapshot().await?;
    /// db.set("user:2", "alan").await?;
    /// assert_eq!(snapshot.prefix("user:").collect().await?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Range<'_, Self> {
        Range::prefix(self, prefix.as_ref())
    }
}

impl Pages for Snapshot<'_> {
    async fn page(&self, request: &ScanRequest) -> Result<ScanPage> {
        Ok(self.inner.scan(request).await?)
    }
}
