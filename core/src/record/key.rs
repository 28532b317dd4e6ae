//! How a key is shown to a person: keys are any bytes (SPEC 1), so every
//! message, log line and tool prints them through [`Escaped`], quoted and
//! escaped as `redis-cli` does, never lossily and never as a byte list.

use std::fmt;

/// `key`, shown quoted with non-printable bytes escaped: `"user:\x00\xff"`.
/// Printable ASCII shows as itself, `"` and `\` are escaped, `\n`, `\r`,
/// `\t`, `\x07` (`\a`) and `\x08` (`\b`) as redis-cli writes them, and any
/// other byte as `\xHH`.
///
/// ```
/// use jubilant_core::record::Escaped;
/// assert_eq!(Escaped(b"user:42").to_string(), r#""user:42""#);
/// assert_eq!(Escaped(b"a\x00\xff\n\"").to_string(), r#""a\x00\xff\n\"""#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &byte in self.0 {
            match byte {
                b'\\' => f.write_str("\\\\")?,
                b'"' => f.write_str("\\\"")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                0x07 => f.write_str("\\a")?,
                0x08 => f.write_str("\\b")?,
                0x20..=0x7e => write!(f, "{}", byte as char)?,
                _ => write!(f, "\\x{byte:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn every_byte_shows_and_none_is_lost() {
        let all: Vec<u8> = (0..=255).collect();
        let shown = Escaped(&all).to_string();
        assert!(shown.is_ascii());
        assert!(shown.contains(r"\x00") && shown.contains(r"\xff") && shown.contains("~"));
        assert_eq!(Escaped(b"").to_string(), "\"\"");
    }
}
