//! The values a user stores (SPEC 1) and how they map to tree records.

use super::{Record, StoredValue, ValueType};

/// A record's bytes do not make a value of its type (they came from disk:
/// an operating error, not a bug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueMalformed {
    /// A String value whose bytes are not UTF-8.
    #[error("a string value is not valid UTF-8")]
    NotUtf8,
    /// An Int64 value whose bytes are not 8.
    #[error("an integer value is not 8 bytes")]
    IntNot8Bytes,
}

/// A stored value: bytes, a UTF-8 string, or a signed 64-bit integer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// Arbitrary bytes.
    Bytes(Vec<u8>),
    /// A UTF-8 string.
    String(String),
    /// A signed 64-bit integer.
    Int(i64),
}

impl Value {
    /// Bytes of the value's content (8 for an integer).
    pub fn len_bytes(&self) -> usize {
        match self {
            Value::Bytes(bytes) => bytes.len(),
            Value::String(text) => text.len(),
            Value::Int(_) => 8,
        }
    }

    /// The value's bytes as the tree stores them.
    pub fn into_record(self, revision: u64) -> Record {
        let (value_type, bytes) = match self {
            Value::Bytes(bytes) => (ValueType::Bytes, bytes),
            Value::String(string) => (ValueType::String, string.into_bytes()),
            Value::Int(n) => (ValueType::Int64, n.to_le_bytes().to_vec()),
        };
        Record {
            value_type,
            value: StoredValue::Inline(bytes),
            expires_at_ms: None,
            revision,
        }
    }

    /// The value a record holds. The bytes come from disk, so a string
    /// that is not UTF-8 or an integer that is not 8 bytes is an error.
    ///
    /// # Panics
    /// If the record holds a value-log pointer: its value must have been
    /// read first (a caller that did not is a bug, not damage on disk).
    pub fn from_record(record: Record) -> Result<Value, ValueMalformed> {
        let bytes = match record.value {
            StoredValue::Inline(bytes) => bytes,
            StoredValue::Vlog(pointer) => {
                panic!("a value-log pointer {pointer:?} was not resolved before its value was read")
            }
        };
        match record.value_type {
            ValueType::Bytes => Ok(Value::Bytes(bytes)),
            ValueType::String => String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| ValueMalformed::NotUtf8),
            ValueType::Int64 => int_from_bytes(&bytes).map(Value::Int),
        }
    }
}

/// The Int64 that 8 little-endian bytes hold.
pub(crate) fn int_from_bytes(bytes: &[u8]) -> Result<i64, ValueMalformed> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_le_bytes)
        .map_err(|_| ValueMalformed::IntNot8Bytes)
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::String(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Value::Bytes(value.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::Bytes(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_survives_its_record() {
        for value in [
            Value::Bytes(vec![0, 255, 7]),
            Value::String("héllo".to_owned()),
            Value::Int(-42),
            Value::Int(i64::MAX),
        ] {
            let record = value.clone().into_record(9);
            assert_eq!(record.revision, 9);
            assert_eq!(Value::from_record(record).ok(), Some(value));
        }
    }

    #[test]
    fn malformed_bytes_from_disk_are_an_error() {
        let mut record = Value::Int(1).into_record(1);
        record.value = StoredValue::Inline(vec![1, 2, 3]);
        assert_eq!(
            Value::from_record(record),
            Err(ValueMalformed::IntNot8Bytes)
        );
        let mut record = Value::from("x").into_record(1);
        record.value = StoredValue::Inline(vec![0xff]);
        assert_eq!(Value::from_record(record), Err(ValueMalformed::NotUtf8));
    }
}
