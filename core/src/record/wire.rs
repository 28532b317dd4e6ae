//! Values on the wire (`wire.fbs`'s `Value`): the one conversion the server
//! and the client share, in both directions.
//!
//! Invariant kept here: **a value crosses the wire unchanged**: what
//! [`encode_value`] writes, [`decode_value`] gives back; bytes that do not
//! make a value of their type are an error, never a guess.

use jubilant_schemas::flatbuffers::{FlatBufferBuilder, WIPOffset};
use jubilant_schemas::wire;

use super::Value;

/// Why a wire value is not a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireValueError {
    /// A String value whose bytes are not UTF-8.
    #[error("a String value is not valid UTF-8")]
    NotUtf8,
    /// A type code this version does not know.
    #[error("unknown value type {0}")]
    UnknownType(u8),
}

/// Writes `value` into `builder`.
pub fn encode_value<'a>(
    builder: &mut FlatBufferBuilder<'a>,
    value: &Value,
) -> WIPOffset<wire::Value<'a>> {
    let (type_, bytes, int) = match value {
        Value::Bytes(bytes) => (wire::ValueType::Bytes, Some(bytes.as_slice()), 0),
        Value::String(text) => (wire::ValueType::String, Some(text.as_bytes()), 0),
        Value::Int(n) => (wire::ValueType::Int64, None, *n),
    };
    let bytes = bytes.map(|bytes| builder.create_vector(bytes));
    wire::Value::create(builder, &wire::ValueArgs { type_, bytes, int })
}

/// The value a verified wire `Value` carries.
pub fn decode_value(value: wire::Value<'_>) -> Result<Value, WireValueError> {
    let bytes = || {
        value
            .bytes()
            .map(|bytes| bytes.bytes().to_vec())
            .unwrap_or_default()
    };
    match value.type_() {
        wire::ValueType::Bytes => Ok(Value::Bytes(bytes())),
        wire::ValueType::String => String::from_utf8(bytes())
            .map(Value::String)
            .map_err(|_| WireValueError::NotUtf8),
        wire::ValueType::Int64 => Ok(Value::Int(value.int())),
        other => Err(WireValueError::UnknownType(other.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_crosses_the_wire_unchanged() {
        for value in [
            Value::Bytes(vec![0, 255]),
            Value::String("héllo".to_owned()),
            Value::Int(i64::MIN),
        ] {
            let mut builder = FlatBufferBuilder::new();
            let encoded = encode_value(&mut builder, &value);
            builder.finish_minimal(encoded);
            let decoded =
                jubilant_schemas::flatbuffers::root::<wire::Value>(builder.finished_data())
                    .expect("verifies");
            assert_eq!(decode_value(decoded), Ok(value));
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_is_an_error() {
        let mut builder = FlatBufferBuilder::new();
        let bytes = builder.create_vector(&[0xc3u8, 0x28][..]);
        let encoded = wire::Value::create(
            &mut builder,
            &wire::ValueArgs {
                type_: wire::ValueType::String,
                bytes: Some(bytes),
                int: 0,
            },
        );
        builder.finish_minimal(encoded);
        let decoded = jubilant_schemas::flatbuffers::root::<wire::Value>(builder.finished_data())
            .expect("verifies");
        assert_eq!(decode_value(decoded), Err(WireValueError::NotUtf8));
    }
}
