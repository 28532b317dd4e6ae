//! How jubectl writes and reads bytes, values and times: hexadecimal, the
//! database id as a UUID, Unix milliseconds as UTC (no time zone data
//! needed, so output does not depend on the machine), and values as text,
//! as JSON and from the command line.

use std::fmt::Write as _;

use jubilant_core::db::Value;
use serde_json::json;

/// Lowercase hexadecimal, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The 16-byte database id in the usual 8-4-4-4-12 form, bytes in stored
/// order.
pub(crate) fn uuid(bytes: &[u8; 16]) -> String {
    let hex = hex(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Unix milliseconds as an ISO 8601 UTC time, e.g.
/// `2023-11-14T22:13:20.000Z`.
pub(crate) fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        unix_ms % 1000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The value type `set --type` names.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum TypeName {
    /// UTF-8 text (the default).
    String,
    /// Bytes, given as hexadecimal.
    Bytes,
    /// A signed 64-bit integer.
    Int,
}

pub(crate) fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

pub(crate) fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::String(text) => json!({"type": "string", "value": text}),
        Value::Bytes(bytes) => json!({"type": "bytes", "value": hex(bytes)}),
        Value::Int(n) => json!({"type": "int", "value": n}),
    }
}

pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bytes(bytes) => hex(bytes),
        Value::Int(n) => n.to_string(),
    }
}

/// Parses `set`'s value as `type_name` says; `Err` is a usage error.
pub(crate) fn parse_value(text: &str, type_name: TypeName) -> Result<Value, String> {
    match type_name {
        TypeName::String => Ok(Value::String(text.to_owned())),
        TypeName::Bytes => parse_hex(text)
            .map(Value::Bytes)
            .ok_or_else(|| format!("{text:?} is not hexadecimal bytes")),
        TypeName::Int => text
            .parse()
            .map(Value::Int)
            .map_err(|_| format!("{text:?} is not a 64-bit integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        // Any u64 from a damaged file prints without overflowing.
        assert!(utc(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn ids_print_as_uuids() {
        let id: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        assert_eq!(uuid(&id), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }
}
