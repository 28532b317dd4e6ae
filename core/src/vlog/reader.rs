//! Reading a value by its pointer: the WAL record that logged it
//! ([`read_pointed`], shared by [`Vlog::read`](super::Vlog::read)), and
//! [`PointerReader`], which follows pointers without an open database,
//! for offline `validate`.
//!
//! Invariants kept here:
//! - **A record is a value only when it is exactly the one its pointer
//!   names:** its frame's length and CRC are the pointer's, the CRC
//!   verifies over the segment, offset, LSN and payload the pointer gives,
//!   and the payload is a verified FlatBuffer `Upsert`. Anything else is
//!   [`VlogError::Corrupt`]; a failure is re-read first, since a bad read
//!   may be transient.
//! - **[`PointerReader`] changes nothing**, and checks a pointer lies
//!   inside its segment before reading, so a damaged length never sizes an
//!   allocation.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::env::{Env, File, OpenMode};
use crate::log::frame::{FrameSite, frame_crc};
use crate::log::segment_name;
use crate::record::wal::WalRecord;
use crate::record::{ValueType, VlogPointer};

use super::VlogError;

/// Re-reads of a record that fails its checks before it is called corrupt.
const READ_RETRIES_MAX: u32 = 4;
/// Segment files a [`PointerReader`] keeps open at once; pointers in key
/// order jump between segments, so a few stay open to avoid reopening.
const FILES_OPEN_MAX: usize = 16;

/// A value read back by its pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlogValue {
    /// The key it was written for.
    pub key: Vec<u8>,
    /// Its type.
    pub value_type: ValueType,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The path of WAL segment `segment` in `dir`.
pub(super) fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(segment_name(u64::from(segment)))
}

/// Verifies the frame `bytes` read where `pointer` says, and decodes the
/// value its `Upsert` carries.
fn decode(pointer: &VlogPointer, bytes: &[u8]) -> Result<VlogValue, String> {
    if bytes.len() as u64 != pointer.frame_bytes() {
        return Err(format!("{} bytes cannot hold the record", bytes.len()));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len != pointer.length || crc != pointer.crc {
        return Err(format!(
            "frame of {len} bytes with CRC {crc:#x}, the pointer expects {} bytes with {:#x}",
            pointer.length, pointer.crc
        ));
    }
    let payload = &bytes[8..];
    let site = FrameSite {
        segment: u64::from(pointer.segment),
        offset: pointer.offset,
        lsn: pointer.lsn,
    };
    if frame_crc(site, payload) != crc {
        return Err(format!("checksum mismatch for LSN {}", pointer.lsn));
    }
    match WalRecord::decode(payload).map_err(|error| error.to_string())? {
        WalRecord::Upsert {
            key,
            value_type,
            value,
            ..
        } => Ok(VlogValue {
            key,
            value_type,
            bytes: value,
        }),
        other => Err(format!("the record is not an upsert: {other:?}")),
    }
}

/// Reads and verifies the record `pointer` names from its segment `file`
/// (at `path`, for errors).
pub(super) async fn read_pointed<F: File>(
    file: &F,
    path: &Path,
    pointer: &VlogPointer,
) -> Result<VlogValue, VlogError> {
    let mut attempt = 0;
    loop {
        // An unreadable sector reads as bytes that fail the checks below.
        let bytes =
            crate::env::read_salvaging(file, pointer.offset, pointer.frame_bytes() as usize)
                .await
                .map_err(|source| VlogError::Io {
                    op: "read record",
                    path: path.to_path_buf(),
                    source,
                })?
                .bytes;
        match decode(pointer, &bytes) {
            Ok(value) => return Ok(value),
            // A bad read may be transient; a bad record is not.
            Err(_) if attempt < READ_RETRIES_MAX => attempt += 1,
            Err(detail) => {
                return Err(VlogError::Corrupt {
                    segment: pointer.segment,
                    offset: pointer.offset,
                    detail,
                });
            }
        }
    }
}

/// Opens WAL segment `segment` of `dir` for reads, with its length.
pub(super) async fn open_segment<E: Env>(
    env: &E,
    dir: &Path,
    segment: u32,
) -> Result<(E::File, u64), VlogError> {
    let path = segment_path(dir, segment);
    let io = |op| {
        let path = path.clone();
        move |source: io::Error| VlogError::Io { op, path, source }
    };
    let file = env
        .open(&path, OpenMode::Existing)
        .await
        .map_err(io("open segment"))?;
    let len = file.len().await.map_err(io("length"))?;
    Ok((file, len))
}

/// Whether a frame of `pointer` lies inside a segment of `len` bytes.
pub(super) fn check_inside(pointer: &VlogPointer, len: u64) -> Result<(), VlogError> {
    let end = pointer.offset.checked_add(pointer.frame_bytes());
    if end.is_none_or(|end| end > len) {
        return Err(VlogError::Corrupt {
            segment: pointer.segment,
            offset: pointer.offset,
            detail: format!(
                "a record of {} bytes there does not fit in the {len}-byte segment",
                pointer.length
            ),
        });
    }
    Ok(())
}

/// Follows pointers into the WAL segments of a database directory
/// read-only, keeping up to [`FILES_OPEN_MAX`] segment files open.
pub(crate) struct PointerReader<E: Env> {
    env: E,
    dir: PathBuf,
    /// Open segments and their lengths, by id.
    files: BTreeMap<u32, (E::File, u64)>,
}

impl<E: Env> PointerReader<E> {
    /// A reader of the WAL segments in `dir`.
    pub(crate) fn new(env: E, dir: &Path) -> Self {
        PointerReader {
            env,
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
        }
    }

    /// Reads the record `pointer` names and checks it is the one the pointer
    /// was made for. A missing segment is an I/O error of kind `NotFound`
    /// ([`VlogError::is_missing_or_corrupt`] says both are findings).
    pub(crate) async fn read(&mut self, pointer: &VlogPointer) -> Result<VlogValue, VlogError> {
        let path = segment_path(&self.dir, pointer.segment);
        if !self.files.contains_key(&pointer.segment) {
            let (file, len) = open_segment(&self.env, &self.dir, pointer.segment).await?;
            if self.files.len() == FILES_OPEN_MAX {
                self.files.pop_first();
            }
            self.files.insert(pointer.segment, (file, len));
        }
        // Opened above if it was not open.
        let (file, len) = &self.files[&pointer.segment];
        check_inside(pointer, *len)?;
        read_pointed(file, &path, pointer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(length: u32) -> VlogPointer {
        VlogPointer {
            segment: 1,
            length,
            offset: 4096,
            lsn: 9,
            crc: 0,
        }
    }

    #[test]
    fn a_pointer_past_its_segment_is_an_error_not_an_allocation() {
        assert!(check_inside(&pointer(100), 8192).is_ok());
        let error = check_inside(&pointer(u32::MAX), 8192).expect_err("past the end");
        assert!(error.to_string().contains("does not fit"), "{error}");
    }

    #[test]
    fn a_frame_decodes_only_as_the_record_its_pointer_names() {
        let record = WalRecord::Upsert {
            txn: 9,
            key: b"k".to_vec(),
            value_type: ValueType::Bytes,
            value: vec![7; 600],
            expires_at_ms: None,
            revision: None,
        }
        .encode();
        let site = FrameSite {
            segment: 1,
            offset: 4096,
            lsn: 9,
        };
        let mut frame = Vec::new();
        let crc = crate::log::frame::encode(site, &record, &mut frame);
        let good = VlogPointer {
            crc,
            ..pointer(record.len() as u32)
        };
        assert_eq!(decode(&good, &frame).expect("valid").bytes, vec![7; 600]);
        for wrong in [
            VlogPointer { lsn: 10, ..good },
            VlogPointer { offset: 0, ..good },
            VlogPointer { segment: 2, ..good },
            VlogPointer {
                crc: crc ^ 1,
                ..good
            },
        ] {
            assert!(decode(&wrong, &frame).is_err(), "{wrong:?}");
        }
        let mut flipped = frame.clone();
        flipped[20] ^= 1;
        assert!(decode(&good, &flipped).is_err(), "flipped bit");
    }
}
