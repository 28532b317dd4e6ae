//! Transactions (SPEC 2, 4): a key table declared up front, an ordered op
//! list over it, run under strict two-phase locking on an overlay, and
//! committed through the WAL as one unit, or not at all.
//!
//! - [`Txn`]: the request, built with a builder that reads like the ops;
//! - [`TxnOutcome`] / [`TxnError`]: what came of it.
//!
//! Only the request and its results live here: the database's executor
//! runs them and keeps the invariants (rejected before anything runs, all
//! or nothing, serializable; see `db/exec.rs`).

mod lock_point;
mod meter;

use crate::error::DbError;
use crate::record::{Value, ValueType};
use crate::wal::Durability;
pub use lock_point::LockPoint;
pub use meter::{ByteBudget, ResultMeter};

/// Names a key within one transaction.
pub type KeyId = u32;

/// How a transaction uses a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Read only: a shared lock.
    R,
    /// Read and write: an exclusive lock.
    RW,
}

/// One operation of a transaction, on a declared key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The key's value and revision.
    Get(KeyId),
    /// Set the value, with a TTL in ms or none (clearing any earlier TTL).
    Set(KeyId, Value, Option<u64>),
    /// Delete the key; the result says whether it existed.
    Del(KeyId),
    /// Add to an Int64 (a missing key counts as 0); the result is the new
    /// value.
    Add(KeyId, i64),
    /// Give an existing key a TTL in ms; the result says whether it existed.
    Expire(KeyId, u64),
    /// Remove a key's TTL; the result says whether it had one.
    Persist(KeyId),
    /// The key's remaining TTL.
    Ttl(KeyId),
    /// Abort unless the key exists.
    AssertExists(KeyId),
    /// Abort if the key exists.
    AssertNotExists(KeyId),
    /// Abort unless the key has this type (`None`: missing).
    AssertType(KeyId, Option<ValueType>),
    /// Abort unless the key is an Int64 equal to this.
    AssertIntEq(KeyId, i64),
    /// Abort unless the key is Bytes whose BLAKE3 hash is this.
    AssertBytesHashEq(KeyId, [u8; 32]),
    /// Abort unless the key is a String whose BLAKE3 hash is this.
    AssertStringHashEq(KeyId, [u8; 32]),
    /// Abort unless the key's revision is this (0: missing).
    AssertRevisionEq(KeyId, u64),
}

impl Op {
    /// The key the op works on.
    pub fn key(&self) -> KeyId {
        match self {
            Op::Get(k)
            | Op::Set(k, ..)
            | Op::Del(k)
            | Op::Add(k, _)
            | Op::Expire(k, _)
            | Op::Persist(k)
            | Op::Ttl(k)
            | Op::AssertExists(k)
            | Op::AssertNotExists(k)
            | Op::AssertType(k, _)
            | Op::AssertIntEq(k, _)
            | Op::AssertBytesHashEq(k, _)
            | Op::AssertStringHashEq(k, _)
            | Op::AssertRevisionEq(k, _) => *k,
        }
    }

    /// Whether the op changes the key.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Set(..) | Op::Del(_) | Op::Add(..) | Op::Expire(..) | Op::Persist(_)
        )
    }
}

/// A transaction: its key table, its ops, and its durability class.
///
/// ```
/// # use jubilant_core::txn::{Mode, Txn};
/// let mut txn = Txn::new();
/// let from = txn.key("alice", Mode::RW);
/// let to = txn.key("bob", Mode::RW);
/// txn.assert_int_eq(from, 100).add(from, -30).add(to, 30);
/// assert_eq!(txn.ops().len(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    keys: Vec<(KeyId, Mode, Vec<u8>)>,
    ops: Vec<Op>,
    durability: Option<Durability>,
    result_bytes_max: Option<u64>,
    meter: Option<std::sync::Arc<ResultMeter>>,
    lock_point: Option<std::sync::Arc<LockPoint>>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }

    /// A transaction from a key table and ops as they arrive from a client
    /// (ids chosen by the client; checked when it runs).
    pub fn from_parts(keys: Vec<(KeyId, Mode, Vec<u8>)>, ops: Vec<Op>) -> Self {
        Txn {
            keys,
            ops,
            durability: None,
            result_bytes_max: None,
            meter: None,
            lock_point: None,
        }
    }

    /// Declares `key` (any bytes; `&str` works) with `mode`; returns the
    /// id ops name it by.
    pub fn key(&mut self, key: impl AsRef<[u8]>, mode: Mode) -> KeyId {
        let id = self.keys.len() as KeyId;
        self.keys.push((id, mode, key.as_ref().to_vec()));
        id
    }

    /// The durability it asked for (`None`: the database's default).
    pub fn durability_class(&self) -> Option<Durability> {
        self.durability
    }

    /// Runs with this durability instead of the database's default.
    pub fn durability(&mut self, durability: Durability) -> &mut Self {
        self.durability = Some(durability);
        self
    }

    /// Bounds the results: a transaction whose `GET`s would return more
    /// than `max` bytes (values, plus [`RESULT_OVERHEAD_BYTES`] per op)
    /// fails with [`TxnError::ResultTooLarge`] before the value that would
    /// cross the bound is copied, and writes nothing.
    pub fn limit_result_bytes(&mut self, max: u64) -> &mut Self {
        self.result_bytes_max = Some(max);
        self
    }

    /// Reserves the results' bytes on `meter` as they are built; a
    /// transaction whose results find its budgets full of other answers
    /// fails with [`TxnError::AnswersBacklogged`] rather than wait with its
    /// locks held: a server bounds the memory of answers not yet written.
    pub fn meter_results(&mut self, meter: std::sync::Arc<ResultMeter>) -> &mut Self {
        self.meter = Some(meter);
        self
    }

    /// The meter set by [`Txn::meter_results`], if any.
    pub fn meter(&self) -> Option<&ResultMeter> {
        self.meter.as_deref()
    }

    /// Tells `point` once the transaction holds its locks and every op
    /// passed (its place in the serial order is then fixed, whatever its
    /// commit still waits for); a transaction that fails never tells it
    /// (the waiter sees it dropped).
    pub fn tell_lock_point(&mut self, point: std::sync::Arc<LockPoint>) -> &mut Self {
        self.lock_point = Some(point);
        self
    }

    /// The lock point set by [`Txn::tell_lock_point`], if any.
    pub(crate) fn lock_point(&self) -> Option<&LockPoint> {
        self.lock_point.as_deref()
    }

    /// The bound set by [`Txn::limit_result_bytes`], if any.
    pub fn result_bytes_max(&self) -> Option<u64> {
        self.result_bytes_max
    }

    /// Appends any op.
    pub fn op(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Appends `GET`.
    pub fn get(&mut self, key: KeyId) -> &mut Self {
        self.op(Op::Get(key))
    }

    /// Appends `SET` without a TTL.
    pub fn set(&mut self, key: KeyId, value: impl Into<Value>) -> &mut Self {
        self.op(Op::Set(key, value.into(), None))
    }

    /// Appends `SET` with a TTL in milliseconds.
    pub fn set_ttl(&mut self, key: KeyId, value: impl Into<Value>, ttl_ms: u64) -> &mut Self {
        self.op(Op::Set(key, value.into(), Some(ttl_ms)))
    }

    /// Appends `DEL`.
    pub fn del(&mut self, key: KeyId) -> &mut Self {
        self.op(Op::Del(key))
    }

    /// Appends `ADD`.
    pub fn add(&mut self, key: KeyId, delta: i64) -> &mut Self {
        self.op(Op::Add(key, delta))
    }

    /// Appends `ASSERT_EXISTS`.
    pub fn assert_exists(&mut self, key: KeyId) -> &mut Self {
        self.op(Op::AssertExists(key))
    }

    /// Appends `ASSERT_NOT_EXISTS`.
    pub fn assert_not_exists(&mut self, key: KeyId) -> &mut Self {
        self.op(Op::AssertNotExists(key))
    }

    /// Appends `ASSERT_INT_EQ`.
    pub fn assert_int_eq(&mut self, key: KeyId, n: i64) -> &mut Self {
        self.op(Op::AssertIntEq(key, n))
    }

    /// Appends `ASSERT_REVISION_EQ` (0 asserts the key is missing).
    pub fn assert_revision_eq(&mut self, key: KeyId, revision: u64) -> &mut Self {
        self.op(Op::AssertRevisionEq(key, revision))
    }

    /// The declared keys.
    pub fn keys(&self) -> &[(KeyId, Mode, Vec<u8>)] {
        &self.keys
    }

    /// The ops, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// A key's remaining time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist (or has expired).
    Missing,
    /// The key exists without a TTL.
    NoExpiry,
    /// Milliseconds left.
    Ms(u64),
}

/// The result of one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// `GET`: the value and its revision, if the key exists.
    Get(Option<(Value, u64)>),
    /// `SET` done.
    Set,
    /// `DEL`: whether the key existed.
    Del(bool),
    /// `ADD`: the new value.
    Add(i64),
    /// `EXPIRE`: whether the key existed.
    Expire(bool),
    /// `PERSIST`: whether the key had a TTL.
    Persist(bool),
    /// `TTL`.
    Ttl(Ttl),
    /// An ASSERT held.
    Held,
}

/// How an error message names a key's type (`None`: missing).
fn describe_type(found: Option<ValueType>) -> &'static str {
    match found {
        None => "missing",
        Some(ValueType::Bytes) => "a Bytes value",
        Some(ValueType::String) => "a String",
        Some(ValueType::Int64) => "an Int64",
    }
}

/// What a transaction that ran to the end did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOutcome {
    /// The commit LSN (its place in the serial order), or for a read-only
    /// transaction its read LSN (it is serialized right after it).
    pub lsn: u64,
    /// Whether it wrote nothing (so `lsn` is a read LSN).
    pub read_only: bool,
    /// The wall-clock time (Unix ms, by the clock calibrated at open) the
    /// transaction judged expiry and TTLs by.
    pub now_ms: u64,
    /// One result per op, in order.
    pub results: Vec<OpResult>,
}

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// A declared key is empty.
    #[error("key id {id}: keys must not be empty")]
    KeyEmpty {
        /// The key's id.
        id: KeyId,
    },
    /// A declared key is longer than the page size allows.
    #[error("key id {id}: a key of {len} bytes exceeds the limit {max}")]
    KeyTooLarge {
        /// The key's id.
        id: KeyId,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two entries of the key table have the same id.
    #[error("key id {0} is declared twice")]
    DuplicateKeyId(KeyId),
    /// Two entries of the key table name the same key.
    #[error("key {} is declared twice", crate::record::Escaped(.0))]
    DuplicateKey(Vec<u8>),
    /// An op names an id the key table does not declare.
    #[error("op {op} names key id {id}, which is not declared")]
    UnknownKeyId {
        /// The op's index.
        op: usize,
        /// The id it named.
        id: KeyId,
    },
    /// An op writes a key declared `R`.
    #[error("op {op} writes key id {id}, which is declared read-only (R)")]
    WriteToReadKey {
        /// The op's index.
        op: usize,
        /// The key's id.
        id: KeyId,
    },
    /// A transaction must have at least one op.
    #[error("a transaction needs at least one op")]
    Empty,
    /// An ASSERT did not hold: nothing was written.
    #[error(
        "op {op}: assertion failed; the key is {} at revision {revision}",
        describe_type(*found_type)
    )]
    AssertFailed {
        /// The failing op's index.
        op: usize,
        /// The key's type as the transaction saw it (`None`: missing).
        found_type: Option<ValueType>,
        /// Its revision (0: missing).
        revision: u64,
    },
    /// `ADD` on a value that is not an Int64: nothing was written.
    #[error("op {op}: ADD needs an Int64 value; the key holds {found:?}")]
    NotAnInt {
        /// The op's index.
        op: usize,
        /// The type it holds.
        found: ValueType,
    },
    /// `ADD` overflowed an Int64: nothing was written.
    #[error("op {op}: ADD overflows a 64-bit integer")]
    Overflow {
        /// The op's index.
        op: usize,
    },
    /// A value is larger than the database accepts.
    #[error("op {op}: value of {len} bytes exceeds the limit {max}")]
    ValueTooLarge {
        /// The op's index.
        op: usize,
        /// The value's encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction waited longer than `lock_wait_ms_max` for its
    /// locks (other transactions held its keys): nothing was written; it
    /// may be retried.
    #[error(
        "busy: waited {waited_ms} ms for locks held by other transactions; nothing was written"
    )]
    Busy {
        /// How long it waited.
        waited_ms: u64,
    },
    /// The results would exceed the bound the transaction set
    /// ([`Txn::limit_result_bytes`]): nothing was written.
    #[error(
        "op {op}: the results would take {bytes} bytes, over the limit of {max}; nothing was written"
    )]
    ResultTooLarge {
        /// The op that would have crossed the bound.
        op: usize,
        /// The results' bytes with that op's.
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// The answers already waiting for the client fill its budget (a
    /// client that does not read them, or pipelines more than it reads):
    /// nothing was written, and the transaction's locks were released at
    /// once; read the answers, then retry.
    #[error(
        "busy: this connection's unread answers fill its buffer; read them, then retry; nothing was written"
    )]
    AnswersBacklogged,
    /// The database failed to read or commit.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What each op's result is counted as besides its value's bytes, against
/// [`Txn::limit_result_bytes`] (its type, revision and framing on the wire).
pub const RESULT_OVERHEAD_BYTES: u64 = 32;
