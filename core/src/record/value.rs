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

/// A value is not of the type asked for ([`Value`]'s `TryFrom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the value is {found:?}, not {wanted:?}")]
pub struct WrongType {
    /// The type asked for.
    pub wanted: ValueType,
    /// The value's type.
    pub found: ValueType,
}

impl Value {
    /// Its type.
    ///
    /// ```
    /// use jubilant_core::record::{Value, ValueType};
    /// assert_eq!(Value::from(7).value_type(), ValueType::Int64);
    /// ```
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Bytes(_) => ValueType::Bytes,
            Value::String(_) => ValueType::String,
            Value::Int(_) => ValueType::Int64,
        }
    }

    /// The bytes of a `Bytes` or `String` value (`None` for an integer).
    ///
    /// ```
    /// use jubilant_core::record::Value;
    /// assert_eq!(Value::from("hi").as_bytes(), Some(&b"hi"[..]));
    /// assert_eq!(Value::from(b"\x00\x01".as_slice()).as_bytes(), Some(&[0, 1][..]));
    /// assert_eq!(Value::from(7).as_bytes(), None);
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            Value::String(text) => Some(text.as_bytes()),
            Value::Int(_) => None,
        }
    }

    /// The text of a `String` value, or of `Bytes` that are UTF-8.
    ///
    /// ```
    /// use jubilant_core::record::Value;
    /// assert_eq!(Value::from("hi").as_str(), Some("hi"));
    /// assert_eq!(Value::from(vec![0xff]).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            Value::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
            Value::Int(_) => None,
        }
    }

    /// The integer of an `Int` value.
    ///
    /// ```
    /// use jubilant_core::record::Value;
    /// assert_eq!(Value::from(-3).as_int(), Some(-3));
    /// assert_eq!(Value::from("3").as_int(), None, "no parsing: types are kept");
    /// ```
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

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

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Int(i64::from(value))
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(value: &[u8; N]) -> Self {
        Value::Bytes(value.to_vec())
    }
}

impl TryFrom<Value> for i64 {
    type Error = WrongType;

    /// The integer of an `Int` value.
    fn try_from(value: Value) -> Result<i64, WrongType> {
        match value {
            Value::Int(n) => Ok(n),
            other => Err(WrongType {
                wanted: ValueType::Int64,
                found: other.value_type(),
            }),
        }
    }
}

impl TryFrom<Value> for String {
    type Error = WrongType;

    /// The text of a `String` value.
    fn try_from(value: Value) -> Result<String, WrongType> {
        match value {
            Value::String(text) => Ok(text),
            other => Err(WrongType {
                wanted: ValueType::String,
                found: other.value_type(),
            }),
        }
    }
}

impl TryFrom<Value> for Vec<u8> {
    type Error = WrongType;

    /// The bytes of a `Bytes` or `String` value.
    fn try_from(value: Value) -> Result<Vec<u8>, WrongType> {
        match value {
            Value::Bytes(bytes) => Ok(bytes),
            Value::String(text) => Ok(text.into_bytes()),
            Value::Int(_) => Err(WrongType {
                wanted: ValueType::Bytes,
                found: ValueType::Int64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_the_type_and_refuse_another() {
        assert_eq!(Value::from(7i32), Value::Int(7));
        assert_eq!(Value::from(7u32), Value::Int(7));
        assert_eq!(Value::from(b"ab"), Value::Bytes(b"ab".to_vec()));
        assert_eq!(i64::try_from(Value::Int(5)), Ok(5));
        assert_eq!(
            i64::try_from(Value::from("5")),
            Err(WrongType {
                wanted: ValueType::Int64,
                found: ValueType::String
            })
        );
        assert_eq!(String::try_from(Value::from("s")).as_deref(), Ok("s"));
        assert!(
            String::try_from(Value::from(b"s")).is_err(),
            "bytes are not text"
        );
        assert_eq!(Vec::<u8>::try_from(Value::from("s")), Ok(b"s".to_vec()));
        assert!(Vec::<u8>::try_from(Value::Int(1)).is_err());
    }

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
