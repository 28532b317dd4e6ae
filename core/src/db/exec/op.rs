//! One op of a transaction, run on its key's view (the transaction's own
//! earlier writes over what storage held): a pure function of the view,
//! the op and the transaction's clock.

use crate::error::DbError;
use crate::record::{Record, StoredValue, Value, ValueType};
use crate::txn::{Op, OpResult, Ttl, TxnError};

/// A revision placeholder for a key written earlier in the same
/// transaction: it becomes the commit LSN once that is known.
pub(super) const REVISION_PENDING: u64 = u64::MAX;

/// What every op of one transaction shares.
pub(super) struct OpContext<'a> {
    /// The op's index in the transaction.
    pub index: usize,
    /// The key it works on.
    pub key: &'a [u8],
    /// Unix ms the transaction judges expiry and TTLs by.
    pub now_ms: u64,
    /// The largest value a write may store.
    pub value_bytes_max: usize,
}

fn value_type(record: Option<&Record>) -> Option<ValueType> {
    record.map(|record| record.value_type)
}

fn revision(record: Option<&Record>) -> u64 {
    record.map_or(0, |record| record.revision)
}

/// The bytes of a record in a view: views hold values read in full
/// (value-log pointers are resolved when a key is read), so a pointer here
/// is a bug, never a value to read as empty.
fn view_bytes(record: &Record) -> &[u8] {
    match &record.value {
        StoredValue::Inline(bytes) => bytes,
        StoredValue::Vlog(pointer) => {
            panic!("a transaction's view holds an unresolved value-log pointer {pointer:?}")
        }
    }
}

/// What `op`'s result counts against [`Txn::limit_result_bytes`], given
/// its key's view before it runs: a `GET`'s value bytes, plus
/// [`RESULT_OVERHEAD_BYTES`] for any op.
///
/// [`Txn::limit_result_bytes`]: crate::txn::Txn::limit_result_bytes
pub(super) fn result_bytes(op: &Op, view: Option<&Record>) -> u64 {
    let value = match (op, view) {
        (Op::Get(_), Some(record)) => view_bytes(record).len() as u64,
        _ => 0,
    };
    value + crate::txn::RESULT_OVERHEAD_BYTES
}

/// Runs `op` on its key's view; returns its result and whether it wrote.
pub(super) fn run_op(
    context: &OpContext<'_>,
    op: &Op,
    view: &mut Option<Record>,
) -> Result<(OpResult, bool), TxnError> {
    // A value this transaction wrote with a TTL that has already run out
    // (`SET k v` with TTL 0, `EXPIRE k 0`) reads as missing too.
    if view
        .as_ref()
        .is_some_and(|record| record.expired_at(context.now_ms))
    {
        *view = None;
    }
    match op {
        Op::Get(_) | Op::Ttl(_) => read(context, op, view.as_ref()).map(|result| (result, false)),
        Op::Set(..) | Op::Del(_) | Op::Add(..) | Op::Expire(..) | Op::Persist(_) => {
            write(context, op, view)
        }
        _ => assert(context, op, view.as_ref()).map(|result| (result, false)),
    }
}

/// `GET` and `TTL`.
fn read(context: &OpContext<'_>, op: &Op, view: Option<&Record>) -> Result<OpResult, TxnError> {
    Ok(match op {
        Op::Get(_) => OpResult::Get(match view {
            None => None,
            Some(record) => {
                let value = Value::from_record(record.clone())
                    .map_err(|reason| DbError::malformed(context.key, reason))?;
                Some((value, record.revision))
            }
        }),
        Op::Ttl(_) => OpResult::Ttl(match view {
            None => Ttl::Missing,
            Some(record) => match record.expires_at_ms {
                None => Ttl::NoExpiry,
                Some(at) => Ttl::Ms(at.saturating_sub(context.now_ms)),
            },
        }),
        _ => unreachable!("not a read: {op:?}"),
    })
}

/// A new record for `value`, if it is within the size limit.
fn put(
    context: &OpContext<'_>,
    value: Value,
    expires_at_ms: Option<u64>,
) -> Result<Record, TxnError> {
    let mut record = value.into_record(REVISION_PENDING);
    record.expires_at_ms = expires_at_ms;
    let len = view_bytes(&record).len();
    if len > context.value_bytes_max {
        return Err(TxnError::ValueTooLarge {
            op: context.index,
            len,
            max: context.value_bytes_max,
        });
    }
    Ok(record)
}

/// `SET`, `DEL`, `ADD`, `EXPIRE` and `PERSIST`: the new view, and whether
/// the op changed it.
fn write(
    context: &OpContext<'_>,
    op: &Op,
    view: &mut Option<Record>,
) -> Result<(OpResult, bool), TxnError> {
    let now_ms = context.now_ms;
    Ok(match op {
        Op::Set(_, value, ttl_ms) => {
            let expires = ttl_ms.map(|ttl| now_ms.saturating_add(ttl));
            *view = Some(put(context, value.clone(), expires)?);
            (OpResult::Set, true)
        }
        Op::Del(_) => {
            let existed = view.is_some();
            *view = None;
            (OpResult::Del(existed), true)
        }
        Op::Add(_, delta) => {
            let (current, expires) = match view {
                None => (0, None),
                Some(record) if record.value_type == ValueType::Int64 => {
                    let current = crate::record::int_from_bytes(view_bytes(record))
                        .map_err(|reason| DbError::malformed(context.key, reason))?;
                    (current, record.expires_at_ms)
                }
                Some(record) => {
                    return Err(TxnError::NotAnInt {
                        op: context.index,
                        found: record.value_type,
                    });
                }
            };
            let sum = current
                .checked_add(*delta)
                .ok_or(TxnError::Overflow { op: context.index })?;
            *view = Some(put(context, Value::Int(sum), expires)?);
            (OpResult::Add(sum), true)
        }
        Op::Expire(_, ttl_ms) => match view {
            None => (OpResult::Expire(false), false),
            Some(record) => {
                record.expires_at_ms = Some(now_ms.saturating_add(*ttl_ms));
                record.revision = REVISION_PENDING;
                (OpResult::Expire(true), true)
            }
        },
        Op::Persist(_) => match view {
            Some(record) if record.expires_at_ms.is_some() => {
                record.expires_at_ms = None;
                record.revision = REVISION_PENDING;
                (OpResult::Persist(true), true)
            }
            _ => (OpResult::Persist(false), false),
        },
        _ => unreachable!("not a write: {op:?}"),
    })
}

/// The ASSERT ops: `Held`, or the failure that aborts the transaction.
fn assert(context: &OpContext<'_>, op: &Op, view: Option<&Record>) -> Result<OpResult, TxnError> {
    let holds = match op {
        Op::AssertExists(_) => view.is_some(),
        Op::AssertNotExists(_) => view.is_none(),
        Op::AssertType(_, want) => value_type(view) == *want,
        Op::AssertIntEq(_, n) => view.is_some_and(|record| {
            record.value_type == ValueType::Int64
                && view_bytes(record) == n.to_le_bytes().as_slice()
        }),
        Op::AssertBytesHashEq(_, hash) | Op::AssertStringHashEq(_, hash) => {
            let want = if matches!(op, Op::AssertBytesHashEq(..)) {
                ValueType::Bytes
            } else {
                ValueType::String
            };
            view.is_some_and(|record| {
                record.value_type == want && blake3::hash(view_bytes(record)).as_bytes() == hash
            })
        }
        Op::AssertRevisionEq(_, want) => revision(view) == *want,
        _ => unreachable!("not an assert: {op:?}"),
    };
    if holds {
        Ok(OpResult::Held)
    } else {
        Err(TxnError::AssertFailed {
            op: context.index,
            found_type: value_type(view),
            revision: revision(view),
        })
    }
}
