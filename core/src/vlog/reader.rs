//! Reading value-log records by pointer: [`read_pointed`], shared by
//! [`Vlog::read`](super::Vlog::read), and [`PointerReader`], which follows
//! pointers without opening the value log, for offline `validate`.
//!
//! Invariants kept here:
//! - **A record is data only when it is exactly the one its pointer
//!   names:** its frame CRC (which binds segment and offset), the
//!   pointer's CRC, the header and the value's length and CRC all verify.
//!   Anything else is [`VlogError::Corrupt`]; a failure is re-read first,
//!   since a bad read may be transient.
//! - **[`PointerReader`] changes nothing.** [`Vlog::open`](super::Vlog::open)
//!   cuts and rewrites the newest segment (repair); a checker of a stopped
//!   database must not, so it opens segment files one by one and only
//!   reads them. It also checks a pointer lies inside its segment before
//!   reading, so a damaged length never sizes an allocation.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::env::{Env, File, OpenMode};
use crate::record::VlogPointer;

use super::VlogError;
use super::format::{VlogValue, decode, segment_name};
use super::scan::SCAN_RETRIES_MAX;

/// Segment files a [`PointerReader`] keeps open at once; pointers in key
/// order jump between segments, so a few stay open to avoid reopening.
const FILES_OPEN_MAX: usize = 16;

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
        let bytes = crate::env::read_salvaging(file, pointer.offset, pointer.length as usize)
            .await
            .map_err(|source| VlogError::Io {
                op: "read record",
                path: path.to_path_buf(),
                source,
            })?
            .bytes;
        let checked = decode(pointer.segment, pointer.offset, &bytes).and_then(|value| {
            // `decode` accepted at least a whole frame.
            let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            if crc == pointer.crc {
                Ok(value)
            } else {
                Err(format!(
                    "record CRC {crc:#x}, the pointer expects {:#x}",
                    pointer.crc
                ))
            }
        });
        match checked {
            Ok(value) => return Ok(value),
            // A bad read may be transient; a bad record is not.
            Err(_) if attempt < SCAN_RETRIES_MAX => attempt += 1,
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

/// Follows value-log pointers of a database directory read-only, keeping
/// up to [`FILES_OPEN_MAX`] segment files open.
pub(crate) struct PointerReader<E: Env> {
    env: E,
    dir: PathBuf,
    /// Open segments and their lengths, by id.
    files: BTreeMap<u32, (E::File, u64)>,
}

impl<E: Env> PointerReader<E> {
    /// A reader of the value log in `dir`.
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
        let path = self.dir.join(segment_name(pointer.segment));
        if !self.files.contains_key(&pointer.segment) {
            let io = |op| {
                let path = path.clone();
                move |source: io::Error| VlogError::Io { op, path, source }
            };
            let file = self
                .env
                .open(&path, OpenMode::Existing)
                .await
                .map_err(io("open segment"))?;
            let len = file.len().await.map_err(io("length"))?;
            if self.files.len() == FILES_OPEN_MAX {
                self.files.pop_first();
            }
            self.files.insert(pointer.segment, (file, len));
        }
        // Opened above if it was not open.
        let (file, len) = &self.files[&pointer.segment];
        let end = pointer.offset.checked_add(u64::from(pointer.length));
        if end.is_none_or(|end| end > *len) {
            return Err(VlogError::Corrupt {
                segment: pointer.segment,
                offset: pointer.offset,
                detail: format!(
                    "a record of {} bytes there does not fit in the {len}-byte segment",
                    pointer.length
                ),
            });
        }
        read_pointed(file, &path, pointer).await
    }
}
