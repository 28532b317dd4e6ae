//! The values a user stores (SPEC 1) and how they map to tree records.

use crate::btree::{Record, StoredValue, ValueType};

use super::DbError;

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
    pub(crate) fn into_record(self, revision: u64) -> Record {
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

    /// The value a record holds. Its bytes come from disk, so a string that
    /// is not UTF-8 or an integer that is not 8 bytes is an error.
    pub(crate) fn from_record(key: &str, record: Record) -> Result<Value, DbError> {
        let malformed = |reason: &str| DbError::ValueMalformed {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let StoredValue::Inline(bytes) = record.value else {
            return Err(malformed("a value-log pointer was not resolved"));
        };
        match record.value_type {
            ValueType::Bytes => Ok(Value::Bytes(bytes)),
            ValueType::String => String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| malformed("a string value is not valid UTF-8")),
            ValueType::Int64 => <[u8; 8]>::try_from(bytes.as_slice())
                .map(|le| Value::Int(i64::from_le_bytes(le)))
                .map_err(|_| malformed("an integer value is not 8 bytes")),
        }
    }
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
            assert_eq!(Value::from_record("k", record).ok(), Some(value));
        }
    }

    #[test]
    fn malformed_bytes_from_disk_are_an_error() {
        let mut record = Value::Int(1).into_record(1);
        record.value = StoredValue::Inline(vec![1, 2, 3]);
        assert!(matches!(
            Value::from_record("k", record),
            Err(DbError::ValueMalformed { .. })
        ));
        let mut record = Value::from("x").into_record(1);
        record.value = StoredValue::Inline(vec![0xff]);
        assert!(Value::from_record("k", record).is_err());
    }
}
