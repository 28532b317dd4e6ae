//! What the database stores under a key, in every layer's terms: the
//! [`Record`] a leaf holds (a value inline or a [`VlogPointer`], its
//! [`ValueType`], expiry and revision), the [`Mutation`]s that change one,
//! and the [`Value`] a user reads and writes.
//!
//! The lowest module above the seam: the tree, the value log, the WAL and
//! the database all speak these types, so none of them owns them.
//!
//! Invariants kept here:
//! - **A type code means the same in every format** (pages, value log, WAL,
//!   wire): 1 Bytes, 2 String, 3 Int64; an unknown code is never guessed.
//! - **Expired means missing**: [`Record::expired_at`] is the one judgement
//!   every reader, the sweeper and GC apply (SPEC 3).

mod key;
mod value;
pub(crate) mod wal;
pub mod wire;

pub use key::Escaped;

pub(crate) use value::int_from_bytes;
pub use value::{Value, ValueMalformed, WrongType};

/// The type of a stored value (SPEC 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueType {
    /// Arbitrary bytes.
    Bytes = 1,
    /// Valid UTF-8.
    String = 2,
    /// A signed 64-bit integer, stored as 8 little-endian bytes.
    Int64 = 3,
}

impl ValueType {
    /// The type's code in every format (pages, value log, WAL, wire): 1
    /// Bytes, 2 String, 3 Int64.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type a code names, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ValueType::Bytes),
            2 => Some(ValueType::String),
            3 => Some(ValueType::Int64),
            _ => None,
        }
    }
}

/// Where a large value lives: the WAL record that logged it (design 11.2,
/// the WAL is the value log). It names the record's frame exactly: a read
/// checks the frame's CRC against the segment, offset and LSN, and against
/// `crc`, so a stale, torn or misplaced record is never taken for the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VlogPointer {
    /// WAL segment id.
    pub segment: u32,
    /// The record's payload length in bytes (its frame adds 8).
    pub length: u32,
    /// Byte offset of the record's frame in its segment.
    pub offset: u64,
    /// The record's LSN (an input of its frame CRC).
    pub lsn: u64,
    /// The frame's CRC.
    pub crc: u32,
}

impl VlogPointer {
    /// Bytes of the whole frame it names.
    pub fn frame_bytes(&self) -> u64 {
        8 + u64::from(self.length)
    }
}

/// A value as the tree stores it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoredValue {
    /// The value's bytes, in the leaf.
    Inline(Vec<u8>),
    /// The value lives in the WAL record the pointer names.
    Vlog(VlogPointer),
}

/// What the tree stores under a key: the value and its metadata.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    /// The value's type.
    pub value_type: ValueType,
    /// The value, inline or in the value log.
    pub value: StoredValue,
    /// Expiry as Unix milliseconds, if the key has a TTL.
    pub expires_at_ms: Option<u64>,
    /// The commit LSN that last wrote the key.
    pub revision: u64,
}

impl Record {
    /// Whether the record has expired at `now_ms` (Unix ms, by the clock
    /// calibrated at open), and so reads as missing.
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A change to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Insert or overwrite the key's record.
    Put {
        /// The key.
        key: Vec<u8>,
        /// Its new record.
        record: Record,
    },
    /// Remove the key (nothing happens if it is absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl Mutation {
    /// The key the mutation changes.
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip_and_unknown_codes_are_refused() {
        for value_type in [ValueType::Bytes, ValueType::String, ValueType::Int64] {
            assert_eq!(ValueType::from_code(value_type.code()), Some(value_type));
        }
        assert_eq!(ValueType::from_code(0), None);
        assert_eq!(ValueType::from_code(4), None);
    }

    #[test]
    fn a_record_expires_at_its_expiry_not_before() {
        let mut record = Value::Int(1).into_record(1);
        assert!(!record.expired_at(u64::MAX), "no TTL never expires");
        record.expires_at_ms = Some(100);
        assert!(!record.expired_at(99));
        assert!(record.expired_at(100));
    }
}
