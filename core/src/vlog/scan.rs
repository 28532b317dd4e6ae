//! Reading whole records without a pointer: the scan at open that finds
//! the active segment's last valid record, and GC's walk of a sealed one.
//!
//! Invariant kept here: **a record that does not verify is re-read before
//! it is called torn** (a bad read may be transient, and what a scan calls
//! torn is cut off for good).

use std::path::Path;

use crate::env::File;

use super::VlogError;
use super::format::{FRAME_BYTES, RECORD_BYTES_MAX, decode};

/// Re-reads of a record that does not verify before a scan calls it torn.
pub(super) const SCAN_RETRIES_MAX: u32 = 4;

/// The valid records at the start of a segment of `len` bytes, as read and
/// verified: everything up to the first record that does not verify.
pub(super) async fn scan_valid<F: File>(
    file: &F,
    path: &Path,
    segment: u32,
    len: u64,
) -> Result<Vec<u8>, VlogError> {
    let mut image = Vec::new();
    let mut offset = 0;
    while let Some(record) = read_verified(file, path, segment, offset, len).await? {
        offset += record.len() as u64;
        image.extend_from_slice(&record);
    }
    debug_assert_eq!(image.len() as u64, offset);
    Ok(image)
}

/// The whole record at `offset` of a segment of `len` bytes, verified;
/// `None` if there is none that verifies there (after re-reads: a bad read
/// may be transient, and what a scan calls torn is cut off for good).
pub(super) async fn read_verified<F: File>(
    file: &F,
    path: &Path,
    segment: u32,
    offset: u64,
    len: u64,
) -> Result<Option<Vec<u8>>, VlogError> {
    let read = |offset: u64, len: u64| async move {
        crate::env::read_salvaging(file, offset, len as usize)
            .await
            .map(|salvaged| salvaged.bytes)
            .map_err(|source| VlogError::Io {
                op: "scan",
                path: path.to_path_buf(),
                source,
            })
    };
    if offset + FRAME_BYTES > len {
        return Ok(None);
    }
    for _ in 0..=SCAN_RETRIES_MAX {
        let head = read(offset, FRAME_BYTES).await?;
        let rest_len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        if rest_len == 0 || rest_len > RECORD_BYTES_MAX || offset + FRAME_BYTES + rest_len > len {
            continue;
        }
        let record = read(offset, FRAME_BYTES + rest_len).await?;
        if decode(segment, offset, &record).is_ok() {
            return Ok(Some(record));
        }
    }
    Ok(None)
}
