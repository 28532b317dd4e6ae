//! One trait for the embedded database and the remote client (design
//! 14.1), so code written against [`Kv`] runs on either: the same `get`
//! answering value and revision, the same `set` answering the revision,
//! the same read-modify-write, ranges and transactions.

use std::ops::RangeBounds;

use jubilant_client::Client;
use jubilant_core::db::{ScanPage, ScanRequest, Updated, Value};
use jubilant_core::txn::{Txn, TxnOutcome};

use crate::range::{Pages, Range, owned_bounds};
use crate::{Db, Result};

/// A key–value store, embedded ([`Db`]) or remote
/// ([`jubilant_client::Client`]).
///
/// ```
/// use jubilant::{Kv, Value};
///
/// /// Counts a visit, on whichever store it is given.
/// async fn visit(store: &impl Kv, page: &str) -> Result<i64, jubilant::Error> {
///     let bump = |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
///     let updated = store.update(format!("visits:{page}"), bump).await?;
///     Ok(updated.value.and_then(|v| v.as_int()).unwrap_or(0))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::open(dir.path()).await?;
/// assert_eq!(visit(&db, "home").await?, 1);
/// assert_eq!(visit(&db, "home").await?, 2);
/// # Ok(())
/// # }
/// ```
pub trait Kv: Pages + Sized {
    /// The value of `key` and its revision, if it has one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn read(store: &impl Kv) -> jubilant::Result<Option<(jubilant::Value, u64)>> {
    ///     store.get("k").await
    /// }
    /// assert_eq!(read(&db).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn get(
        &self,
        key: impl AsRef<[u8]> + Send,
    ) -> impl Future<Output = Result<Option<(Value, u64)>>> + Send;

    /// Sets `key` to `value`; answers the key's new revision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn write(store: &impl Kv) -> jubilant::Result<u64> {
    ///     store.set("k", 1).await
    /// }
    /// let revision = write(&db).await?;
    /// assert_eq!(Kv::get(&db, "k").await?, Some((1.into(), revision)));
    /// # Ok(())
    /// # }
    /// ```
    fn set(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl Into<Value> + Send,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Deletes `key`; answers whether it existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn remove(store: &impl Kv) -> jubilant::Result<bool> {
    ///     store.del("k").await
    /// }
    /// assert!(!remove(&db).await?);
    /// # Ok(())
    /// # }
    /// ```
    fn del(&self, key: impl AsRef<[u8]> + Send) -> impl Future<Output = Result<bool>> + Send;

    /// Runs `txn`, all or nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// use jubilant::{Mode, Txn};
    /// async fn add(store: &impl Kv) -> jubilant::Result<u64> {
    ///     let mut txn = Txn::new();
    ///     let k = txn.key("k", Mode::RW);
    ///     txn.add(k, 2);
    ///     Ok(store.transaction(&txn).await?.lsn)
    /// }
    /// assert!(add(&db).await? > 0);
    /// # Ok(())
    /// # }
    /// ```
    fn transaction(&self, txn: &Txn) -> impl Future<Output = Result<TxnOutcome>> + Send;

    /// Read-modify-write with bounded retries (see [`Db::update`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn double(store: &impl Kv) -> jubilant::Result<Option<jubilant::Value>> {
    ///     let f = |old: Option<&jubilant::Value>| Some((old.and_then(|v| v.as_int()).unwrap_or(1) * 2).into());
    ///     Ok(store.update("k", f).await?.value)
    /// }
    /// assert_eq!(double(&db).await?, Some(2.into()));
    /// # Ok(())
    /// # }
    /// ```
    fn update(
        &self,
        key: impl AsRef<[u8]> + Send,
        f: impl FnMut(Option<&Value>) -> Option<Value> + Send,
    ) -> impl Future<Output = Result<Updated>> + Send;

    /// Writes `new` only at revision `expected` (see
    /// [`Db::compare_and_swap`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn create(store: &impl Kv) -> jubilant::Result<u64> {
    ///     Ok(store.compare_and_swap("k", 0, Some("first".into())).await?.revision)
    /// }
    /// assert!(create(&db).await? > 0);
    /// assert!(create(&db).await.is_err(), "only while missing");
    /// # Ok(())
    /// # }
    /// ```
    fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]> + Send,
        expected: u64,
        new: Option<Value>,
    ) -> impl Future<Output = Result<Updated>> + Send;

    /// The keys within `bounds`, lazily, from either end.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn count(store: &impl Kv) -> jubilant::Result<usize> {
    ///     Ok(Kv::range(store, "a"..="z").collect().await?.len())
    /// }
    /// db.set("m", 1).await?;
    /// assert_eq!(count(&db).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    fn range<K: AsRef<[u8]>>(&self, bounds: impl RangeBounds<K>) -> Range<'_, Self> {
        Range::new(self, owned_bounds(&bounds))
    }

    /// The keys that begin with `prefix`, lazily, from either end.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::Kv;
    /// async fn users(store: &impl Kv) -> jubilant::Result<usize> {
    ///     Ok(Kv::prefix(store, "user:").collect().await?.len())
    /// }
    /// db.set("user:1", "ada").await?;
    /// assert_eq!(users(&db).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    fn prefix(&self, prefix: impl AsRef<[u8]>) -> Range<'_, Self> {
        Range::prefix(self, prefix.as_ref())
    }
}

impl Kv for Db {
    async fn get(&self, key: impl AsRef<[u8]> + Send) -> Result<Option<(Value, u64)>> {
        Db::get(self, key).await
    }

    async fn set(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl Into<Value> + Send,
    ) -> Result<u64> {
        Db::set(self, key, value).await
    }

    async fn del(&self, key: impl AsRef<[u8]> + Send) -> Result<bool> {
        Db::del(self, key).await
    }

    async fn transaction(&self, txn: &Txn) -> Result<TxnOutcome> {
        Db::transaction(self, txn).await
    }

    async fn update(
        &self,
        key: impl AsRef<[u8]> + Send,
        f: impl FnMut(Option<&Value>) -> Option<Value> + Send,
    ) -> Result<Updated> {
        Db::update(self, key, f).await
    }

    async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]> + Send,
        expected: u64,
        new: Option<Value>,
    ) -> Result<Updated> {
        Db::compare_and_swap(self, key, expected, new).await
    }
}

impl Pages for Client {
    async fn page(&self, request: &ScanRequest) -> Result<ScanPage> {
        Ok(self.scan_page(request).await?)
    }
}

impl Kv for Client {
    async fn get(&self, key: impl AsRef<[u8]> + Send) -> Result<Option<(Value, u64)>> {
        Ok(Client::get(self, key).await?)
    }

    async fn set(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl Into<Value> + Send,
    ) -> Result<u64> {
        Ok(Client::set(self, key, value).await?)
    }

    async fn del(&self, key: impl AsRef<[u8]> + Send) -> Result<bool> {
        Ok(Client::del(self, key).await?)
    }

    async fn transaction(&self, txn: &Txn) -> Result<TxnOutcome> {
        Ok(Client::transaction(self, txn).await?)
    }

    async fn update(
        &self,
        key: impl AsRef<[u8]> + Send,
        f: impl FnMut(Option<&Value>) -> Option<Value> + Send,
    ) -> Result<Updated> {
        Ok(Client::update(self, key, f).await?)
    }

    async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]> + Send,
        expected: u64,
        new: Option<Value>,
    ) -> Result<Updated> {
        Ok(Client::compare_and_swap(self, key, expected, new).await?)
    }
}
