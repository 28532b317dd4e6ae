//! The value log's files and records, byte by byte.
//!
//! Segment files are named `vlog-NNNNNN.seg` (six digits at least). A
//! record, little-endian, at `offset` in its segment:
//!
//! ```text
//! u32 length of what follows the CRC (header length field, header, value)
//! u32 CRC32 over (u64 segment id, u64 offset, the bytes that follow)
//! u32 header length H
//! H bytes: FlatBuffer VlogRecordHeader { key, value_type, value_length,
//!          value_crc (CRC32 of the value), lsn (0: not known when written) }
//! the value's bytes
//! ```
//!
//! The pointer's `length` is the whole record (8 + the first field) and its
//! `crc` the record's CRC, so a read verifies exactly what the tree expects
//! at exactly that place: a stale, torn or misplaced record is an error.
//!
//! Invariant kept here: **nothing read is trusted unverified** (CRC,
//! position, FlatBuffer verifier, value CRC and length), and what
//! [`encode`] writes [`decode`] accepts at that place only.

use jubilant_schemas::disk;

use crate::record::ValueType;

/// Bytes before a record's header: length and CRC.
pub(super) const FRAME_BYTES: u64 = 8;
/// The largest record a scan accepts (a value plus its header).
pub(super) const RECORD_BYTES_MAX: u64 = 1 << 31;

/// The name of value-log segment `id`.
pub fn segment_name(id: u32) -> String {
    format!("vlog-{id:06}.seg")
}

pub(super) fn parse_name(name: &str) -> Option<u32> {
    let id = name.strip_prefix("vlog-")?.strip_suffix(".seg")?;
    (id.len() == 6 || (id.len() > 6 && !id.starts_with('0')))
        .then(|| id.parse().ok())
        .flatten()
}

pub(super) fn record_crc(segment: u32, offset: u64, rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&u64::from(segment).to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.update(rest);
    hasher.finalize()
}

/// What follows a record's frame for `key`'s value: header length,
/// header, value. It does not depend on where the record goes.
pub(super) fn body(key: &[u8], value_type: ValueType, bytes: &[u8]) -> Vec<u8> {
    let mut builder = jubilant_schemas::builder_for(key.len());
    let key_offset = builder.create_vector(key);
    let header = disk::VlogRecordHeader::create(
        &mut builder,
        &disk::VlogRecordHeaderArgs {
            key: Some(key_offset),
            value_type: value_type.code(),
            value_length: bytes.len() as u32,
            value_crc: crc32fast::hash(bytes),
            lsn: 0,
        },
    );
    builder.finish(header, None);
    let header = builder.finished_data();
    let mut body = Vec::with_capacity(4 + header.len() + bytes.len());
    body.extend_from_slice(&(header.len() as u32).to_le_bytes());
    body.extend_from_slice(header);
    body.extend_from_slice(bytes);
    body
}

/// The whole record for `body` at `offset` of `segment`, and its CRC.
pub(super) fn frame(segment: u32, offset: u64, body: &[u8]) -> (Vec<u8>, u32) {
    let crc = record_crc(segment, offset, body);
    let mut record = Vec::with_capacity(FRAME_BYTES as usize + body.len());
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(body);
    // Decoding checks two CRCs and copies the value: too slow for every
    // append in production.
    crate::expensive_assert!(
        decode(segment, offset, &record).is_ok(),
        "a record decodes where it was made"
    );
    (record, crc)
}

/// A value read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlogValue {
    /// The key it was written for.
    pub key: Vec<u8>,
    /// Its type.
    pub value_type: ValueType,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Verifies and decodes one whole record read at `offset` of `segment`.
pub(super) fn decode(segment: u32, offset: u64, bytes: &[u8]) -> Result<VlogValue, String> {
    if bytes.len() < FRAME_BYTES as usize + 4 {
        return Err(format!("{} bytes cannot hold a record", bytes.len()));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let rest = &bytes[FRAME_BYTES as usize..];
    if rest.len() != len {
        return Err(format!("length field {len}, record holds {}", rest.len()));
    }
    if record_crc(segment, offset, rest) != crc {
        return Err("checksum mismatch".to_owned());
    }
    let header_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let Some(header) = rest.get(4..4 + header_len) else {
        return Err(format!("header length {header_len} overruns the record"));
    };
    let value = &rest[4 + header_len..];
    let header = flatbuffers::root::<disk::VlogRecordHeader>(header)
        .map_err(|error| format!("header is not a valid FlatBuffer: {error}"))?;
    let key = header.key().ok_or("header without a key")?.bytes().to_vec();
    let value_type = ValueType::from_code(header.value_type()).ok_or("unknown value type")?;
    if header.value_length() as usize != value.len() || header.value_crc() != crc32fast::hash(value)
    {
        return Err("value length or CRC does not match its header".to_owned());
    }
    Ok(VlogValue {
        key,
        value_type,
        bytes: value.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical() {
        assert_eq!(segment_name(1), "vlog-000001.seg");
        assert_eq!(parse_name("vlog-000001.seg"), Some(1));
        assert_eq!(parse_name("vlog-1.seg"), None);
        assert_eq!(parse_name("vlog-000001.seg.tmp"), None);
    }

    #[test]
    fn a_record_decodes_only_at_its_own_place() {
        let segment = 3;
        let offset = 4096;
        let value = b"a large value".to_vec();
        let mut builder = flatbuffers::FlatBufferBuilder::new();
        let key = builder.create_vector(b"k");
        let header = disk::VlogRecordHeader::create(
            &mut builder,
            &disk::VlogRecordHeaderArgs {
                key: Some(key),
                value_type: 1,
                value_length: value.len() as u32,
                value_crc: crc32fast::hash(&value),
                lsn: 0,
            },
        );
        builder.finish(header, None);
        let header = builder.finished_data();
        let mut rest = (header.len() as u32).to_le_bytes().to_vec();
        rest.extend_from_slice(header);
        rest.extend_from_slice(&value);
        let mut record = (rest.len() as u32).to_le_bytes().to_vec();
        record.extend_from_slice(&record_crc(segment, offset, &rest).to_le_bytes());
        record.extend_from_slice(&rest);
        let decoded = decode(segment, offset, &record).expect("valid");
        assert_eq!(decoded.bytes, value);
        assert!(decode(segment, offset + 8, &record).is_err(), "misplaced");
        assert!(
            decode(segment + 1, offset, &record).is_err(),
            "wrong segment"
        );
        let mut torn = record.clone();
        let last = torn.len() - 1;
        torn[last] ^= 1;
        assert!(decode(segment, offset, &torn).is_err(), "flipped bit");
        assert!(
            decode(segment, offset, &record[..record.len() - 1]).is_err(),
            "short"
        );
    }
}
