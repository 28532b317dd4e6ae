//! Record framing: `u32` length, CRC32, payload.
//!
//! Invariant kept here: a frame is valid only at the exact place it was
//! written. The CRC covers the payload *and* the frame's segment id, byte
//! offset and LSN (none of which are stored in the frame), so
//! - a write that landed at the wrong offset,
//! - a stale record left behind in a truncated or recycled segment,
//! - a record from another segment file
//!
//! all fail their CRC where they are found, and the scan can never return a
//! record at a place it was not written.
//!
//! Layout at byte offset `o` of a segment (little-endian):
//!
//! | bytes      | field                                                   |
//! |------------|---------------------------------------------------------|
//! | `0..4`     | payload length `n`, `1 ..= record_bytes_max`            |
//! | `4..8`     | CRC32 of `segment_id u64 ‖ o u64 ‖ lsn u64 ‖ n u32 ‖ payload` |
//! | `8..8+n`   | payload                                                 |
//!
//! A length of zero never starts a frame: eight zero bytes mark the clean end
//! of a segment's records (segments are zero-filled when created).
//!
//! A length of `u32::MAX` (never a record's: records are far smaller) marks
//! an **LSN skip** of 16 bytes: `u32::MAX`, the CRC32 of `segment_id u64 ‖
//! o u64 ‖ lsn u64 ‖ u32::MAX ‖ target u64`, then `target` (`u64`). It
//! holds no record; the next frame carries LSN `target` (greater than
//! `lsn`). A reopened database writes one so that no LSN a crash may have
//! lost is ever handed out again.
//!
//! A length of `u32::MAX - 1` marks a **batch header** of 24 bytes:
//! `u32::MAX - 1`, the CRC32 of `segment_id u64 ‖ o u64 ‖ lsn u64 ‖
//! u32::MAX - 1 ‖ lsn_durable u64`, `lsn` (the LSN of the batch's first
//! frame) and `lsn_durable` (the LSN the log was durable through when the
//! batch began). Every batch (what one write call of the writer carries)
//! starts with one, at a multiple of the segment's block size, so a torn
//! write damages no earlier batch, and a reader that meets damage can find
//! later batches and ask whether the damaged frame was already durable.

/// Bytes before a frame's payload.
pub const FRAME_HEADER_BYTES: u64 = 8;
/// The length field of an LSN skip.
pub(crate) const SKIP_LEN: u32 = u32::MAX;
/// The length field of a batch header.
pub(crate) const BATCH_LEN: u32 = u32::MAX - 1;
/// Bytes of a batch header: the frame header, its LSN and the durable LSN.
pub const BATCH_HEADER_BYTES: u64 = FRAME_HEADER_BYTES + 16;
/// Bytes of an LSN skip: the header and the target LSN.
pub const SKIP_FRAME_BYTES: u64 = FRAME_HEADER_BYTES + 8;

/// Where a frame lives and which LSN it carries: the inputs to its CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameSite {
    pub segment: u64,
    pub offset: u64,
    pub lsn: u64,
}

/// CRC32 binding `payload` to its site.
pub(crate) fn frame_crc(site: FrameSite, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&site.segment.to_le_bytes());
    hasher.update(&site.offset.to_le_bytes());
    hasher.update(&site.lsn.to_le_bytes());
    let len =
        u32::try_from(payload.len()).expect("payload length was checked against the u32 limit");
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the frame for `payload` at `site` to `out`; returns its CRC.
pub(crate) fn encode(site: FrameSite, payload: &[u8], out: &mut Vec<u8>) -> u32 {
    assert!(
        !payload.is_empty(),
        "an empty frame would read as the end of the log"
    );
    let len =
        u32::try_from(payload.len()).expect("payload length was checked against the u32 limit");
    let crc = frame_crc(site, payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    crc
}

/// CRC32 binding an LSN skip to `target` at `site`.
pub(crate) fn skip_crc(site: FrameSite, target: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&site.segment.to_le_bytes());
    hasher.update(&site.offset.to_le_bytes());
    hasher.update(&site.lsn.to_le_bytes());
    hasher.update(&SKIP_LEN.to_le_bytes());
    hasher.update(&target.to_le_bytes());
    hasher.finalize()
}

/// Appends an LSN skip at `site` to `target` to `out`.
pub(crate) fn encode_skip(site: FrameSite, target: u64, out: &mut Vec<u8>) {
    assert!(target > site.lsn, "a skip moves the LSN forward");
    out.extend_from_slice(&SKIP_LEN.to_le_bytes());
    out.extend_from_slice(&skip_crc(site, target).to_le_bytes());
    out.extend_from_slice(&target.to_le_bytes());
}

/// CRC32 binding a batch header to its site and the durable LSN it names.
pub(crate) fn batch_crc(site: FrameSite, lsn_durable: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&site.segment.to_le_bytes());
    hasher.update(&site.offset.to_le_bytes());
    hasher.update(&site.lsn.to_le_bytes());
    hasher.update(&BATCH_LEN.to_le_bytes());
    hasher.update(&lsn_durable.to_le_bytes());
    hasher.finalize()
}

/// Appends the header of a batch starting at `site` to `out`, naming the
/// LSN the log was durable through when the batch began.
pub(crate) fn encode_batch_header(site: FrameSite, lsn_durable: u64, out: &mut Vec<u8>) {
    assert!(lsn_durable < site.lsn, "a batch follows what is durable");
    out.extend_from_slice(&BATCH_LEN.to_le_bytes());
    out.extend_from_slice(&batch_crc(site, lsn_durable).to_le_bytes());
    out.extend_from_slice(&site.lsn.to_le_bytes());
    out.extend_from_slice(&lsn_durable.to_le_bytes());
}

/// A verified batch header: the LSN of the batch's first frame and the
/// LSN the log was durable through when the batch began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub lsn: u64,
    pub lsn_durable: u64,
}

/// The batch header in `bytes` (at least [`BATCH_HEADER_BYTES`]) at byte
/// `offset` of `segment`, if one verifies there. It names its own LSN, so
/// a reader that lost its place (past damage) can still check it.
pub(crate) fn decode_batch_header(segment: u64, offset: u64, bytes: &[u8]) -> Option<BatchHeader> {
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
    if bytes.len() < BATCH_HEADER_BYTES as usize
        || u32::from_le_bytes(bytes[0..4].try_into().expect("four bytes")) != BATCH_LEN
    {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("four bytes"));
    let (lsn, lsn_durable) = (field(8), field(16));
    let site = FrameSite {
        segment,
        offset,
        lsn,
    };
    (batch_crc(site, lsn_durable) == crc && lsn_durable < lsn)
        .then_some(BatchHeader { lsn, lsn_durable })
}

/// What the eight header bytes at a frame position say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// All zero: no record here; the segment's records ended cleanly.
    End,
    /// An LSN skip whose 8-byte target follows, with checksum `crc`.
    Skip { crc: u32 },
    /// A batch header: its LSN and durable LSN follow.
    Batch,
    /// A frame claiming `len` payload bytes with checksum `crc`.
    Frame { len: u32, crc: u32 },
    /// A zero length with a non-zero checksum: never written by us whole.
    Invalid,
}

pub(crate) fn decode_header(bytes: [u8; 8]) -> Header {
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    match (len, crc) {
        (0, 0) => Header::End,
        (0, _) => Header::Invalid,
        (SKIP_LEN, crc) => Header::Skip { crc },
        (BATCH_LEN, _) => Header::Batch,
        (len, crc) => Header::Frame { len, crc },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(offset: u64) -> FrameSite {
        FrameSite {
            segment: 3,
            offset,
            lsn: 17,
        }
    }

    #[test]
    fn encoded_frame_has_length_crc_and_payload() {
        let mut out = Vec::new();
        encode(site(40), b"hello", &mut out);
        assert_eq!(out.len(), 8 + 5);
        let header: [u8; 8] = out[..8].try_into().expect("eight bytes");
        let Header::Frame { len, crc } = decode_header(header) else {
            panic!("expected a frame header")
        };
        assert_eq!(len, 5);
        assert_eq!(crc, frame_crc(site(40), b"hello"));
        assert_eq!(&out[8..], b"hello");
    }

    #[test]
    fn the_same_payload_elsewhere_has_another_crc() {
        let here = frame_crc(site(40), b"hello");
        assert_ne!(here, frame_crc(site(41), b"hello"), "offset is bound");
        assert_ne!(
            here,
            frame_crc(
                FrameSite {
                    segment: 4,
                    offset: 40,
                    lsn: 17
                },
                b"hello"
            ),
            "segment is bound"
        );
        assert_ne!(
            here,
            frame_crc(
                FrameSite {
                    segment: 3,
                    offset: 40,
                    lsn: 18
                },
                b"hello"
            ),
            "lsn is bound"
        );
    }

    #[test]
    fn zero_bytes_are_the_end_and_zero_length_with_crc_is_invalid() {
        assert_eq!(decode_header([0; 8]), Header::End);
        assert_eq!(decode_header([0, 0, 0, 0, 1, 0, 0, 0]), Header::Invalid);
    }

    #[test]
    #[should_panic(expected = "empty frame")]
    fn encoding_an_empty_payload_is_a_bug() {
        encode(site(40), b"", &mut Vec::new());
    }
}
