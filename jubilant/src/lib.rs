//! Jubilant DB, embedded: open a directory and use it, from async code
//! ([`Db`]) or without ([`blocking::Db`]), with the same calls as the
//! remote client ([`Kv`]).
//!
//! ```
//! # fn main() -> Result<(), jubilant::Error> {
//! # let dir = tempfile::tempdir()?;
//! use jubilant::Value;
//!
//! let db = jubilant::blocking::open(dir.path())?;
//! db.set("greeting", "hello")?;                       // durable when it returns
//! let (value, revision) = db.get("greeting")?.expect("just set");
//! assert_eq!(value.as_str(), Some("hello"));
//!
//! // Read-modify-write, retried while the key changes under it.
//! let bump = |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
//! db.update("visits", bump)?;
//!
//! // A snapshot reads one moment while writers go on.
//! let snapshot = db.snapshot()?;
//! db.set("greeting", "bye")?;
//! assert_eq!(snapshot.get("greeting")?, Some(("hello".into(), revision)));
//!
//! // Ranges are lazy and double-ended.
//! let last = db.range::<&str>(..).next_back().transpose()?;
//! assert_eq!(last.map(|(key, _)| key), Some(b"visits".to_vec()));
//! # Ok(())
//! # }
//! ```
//!
//! What each part keeps (docs/design.md, section 14):
//! - `db`: the async [`Db`] (a cheap, cloneable handle) and its
//!   [`Snapshot`];
//! - `blocking`: the same calls without async, on a runtime of its own;
//! - `range`: lazy double-ended walks, fetched a page at a time;
//! - `kv`: the [`Kv`] trait, implemented by [`Db`] and the remote
//!   [`Client`];
//! - `error`: the one [`Error`];
//! - `codec` (feature `serde`): any `serde` type under a key.

pub mod blocking;
#[cfg(feature = "serde")]
pub mod codec;
mod db;
mod error;
mod kv;
mod range;

pub use db::{Db, Snapshot, open, open_with};
pub use error::{Error, Result};
pub use kv::Kv;
pub use range::{Entry, Pages, RANGE_PAGE_KEYS, Range};

pub use jubilant_client::{Client, ClientError, connect};
pub use jubilant_core::db::{
    DbError, DbOptions, DbStats, Durability, UPDATE_ATTEMPTS_MAX, Updated, Value,
};
pub use jubilant_core::record::{ValueType, WrongType};
pub use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnError, TxnOutcome};
