//! A transaction's request checked before anything runs (SPEC 2): every
//! key declared once, non-empty and within the limit; every op naming a
//! declared id, and writing only `RW` keys.

use std::collections::BTreeMap;

use crate::record::Record;
use crate::txn::{KeyId, Mode, Txn, TxnError};

/// One declared key as the transaction sees it.
pub(super) struct Slot {
    pub key: Vec<u8>,
    pub mode: Mode,
    /// The key's record in the transaction's view, once read (`None` inside
    /// `Some`: missing or expired). A record here holds its value's bytes
    /// (value-log pointers are resolved when read).
    pub view: Option<Option<Record>>,
    pub written: bool,
}

/// The key table as slots by id, if the request is valid.
pub(super) fn validate(txn: &Txn, key_bytes_max: usize) -> Result<BTreeMap<KeyId, Slot>, TxnError> {
    if txn.ops().is_empty() {
        return Err(TxnError::Empty);
    }
    let mut slots: BTreeMap<KeyId, Slot> = BTreeMap::new();
    let mut names: BTreeMap<&[u8], KeyId> = BTreeMap::new();
    for (id, mode, key) in txn.keys() {
        if key.is_empty() {
            return Err(TxnError::KeyEmpty { id: *id });
        }
        if key.len() > key_bytes_max {
            return Err(TxnError::KeyTooLarge {
                id: *id,
                len: key.len(),
                max: key_bytes_max,
            });
        }
        if names.insert(key.as_slice(), *id).is_some() {
            return Err(TxnError::DuplicateKey(key.clone()));
        }
        let slot = Slot {
            key: key.clone(),
            mode: *mode,
            view: None,
            written: false,
        };
        if slots.insert(*id, slot).is_some() {
            return Err(TxnError::DuplicateKeyId(*id));
        }
    }
    for (index, op) in txn.ops().iter().enumerate() {
        let id = op.key();
        let Some(slot) = slots.get(&id) else {
            return Err(TxnError::UnknownKeyId { op: index, id });
        };
        if op.writes() && slot.mode == Mode::R {
            return Err(TxnError::WriteToReadKey { op: index, id });
        }
    }
    debug_assert_eq!(slots.len(), txn.keys().len());
    Ok(slots)
}
