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

/// For each declared key, whether an earlier declaration names the same
/// bytes. By a stable sort of the positions, not a map: a table declared in
/// key order (as [`Db::write`](crate::db::Db::write) declares it) is one
/// run, so a large transaction checks it in linear time.
fn repeated_keys(txn: &Txn) -> Vec<bool> {
    let keys = txn.keys();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].2.cmp(&keys[b].2));
    let mut repeated = vec![false; keys.len()];
    for pair in order.windows(2) {
        if keys[pair[0]].2 == keys[pair[1]].2 {
            repeated[pair[1]] = true;
        }
    }
    repeated
}

/// The key table as slots by id, if the request is valid.
pub(super) fn validate(txn: &Txn, key_bytes_max: usize) -> Result<BTreeMap<KeyId, Slot>, TxnError> {
    if txn.ops().is_empty() {
        return Err(TxnError::Empty);
    }
    let mut slots: BTreeMap<KeyId, Slot> = BTreeMap::new();
    let repeated = repeated_keys(txn);
    for (index, (id, mode, key)) in txn.keys().iter().enumerate() {
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
        if repeated[index] {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&[u8]]) -> Txn {
        let mut txn = Txn::new();
        for key in keys {
            let id = txn.key(key, Mode::RW);
            txn.get(id);
        }
        txn
    }

    #[test]
    fn a_key_declared_again_is_refused_at_its_second_declaration() {
        let txn = table(&[b"b", b"a", b"c", b"a", b"b"]);
        assert_eq!(repeated_keys(&txn), [false, false, false, true, true]);
        match validate(&txn, 64) {
            Err(TxnError::DuplicateKey(key)) => assert_eq!(key, b"a"),
            other => panic!("{:?}", other.map(|slots| slots.len())),
        }
        // An empty key earlier in the table is reported first, as before.
        let txn = table(&[b"", b"a", b"a"]);
        assert!(matches!(
            validate(&txn, 64),
            Err(TxnError::KeyEmpty { id: 0 })
        ));
        let txn = table(&[b"a", b"b", b"c"]);
        assert_eq!(repeated_keys(&txn), [false; 3]);
        assert_eq!(validate(&txn, 64).map(|slots| slots.len()).ok(), Some(3));
    }
}
