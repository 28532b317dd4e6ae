//! Reading the log back: every valid record in LSN order, and where and why
//! the records stop.
//!
//! Invariant kept here: the scan hands out a record only after its CRC
//! verified at the exact place and LSN it was expected, and it classifies the
//! first record that does not verify as either a torn tail (nothing valid
//! follows) or corruption (a later segment continues the log). It never
//! writes: recovery and `jubectl dump-wal` both use it.
//!
//! A frame's length is bounded by the bytes left in its segment, not by the
//! configured `record_bytes_max`: that limit governs appends, and a log
//! written under a larger limit must still read back whole (truncating it as
//! "torn" would destroy acknowledged records). The segment bounds every
//! allocation a length read from disk can cause.
//!
//! A checksum failure is re-read up to [`READ_RETRIES_MAX`] times before it
//! counts, because a transient bad read must not make recovery throw away an
//! acknowledged tail.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::env::{Env, File, OpenMode};

use super::frame::{self, FrameSite, Header, SKIP_FRAME_BYTES};
use super::segment::{self, NameKind, SEGMENT_BYTES_MAX, SEGMENT_HEADER_BYTES, SegmentHeader};
use super::{FRAME_HEADER_BYTES, LogError, RecordPos};

/// How many times a failed checksum is re-read before it is believed. A
/// torn-tail verdict destroys what follows, so it must not rest on a few
/// unlucky reads.
pub const READ_RETRIES_MAX: u32 = 4;
/// The scan reads segments in windows of this size (or one record, if larger).
const READ_WINDOW_BYTES: u64 = 256 * 1024;

/// Why a segment's records stop where they do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Zeros (or the end of the file): the records ended cleanly.
    Clean,
    /// The bytes at the stop offset are not a valid record.
    Invalid {
        /// What is wrong with them.
        reason: String,
    },
}

/// What the scan found in one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment id.
    pub id: u64,
    /// LSN of its first record (from its header).
    pub first_lsn: u64,
    /// Valid records read.
    pub records: u64,
    /// LSN skips read (section 2.3 of docs/design.md).
    pub skips: u64,
    /// The LSN the next record after this segment's last one carries: one
    /// past its last record's, or the target of an LSN skip after it.
    pub next_lsn: u64,
    /// Offset just past the last valid record: where the next one goes.
    pub end_offset: u64,
    /// The segment file's length.
    pub file_len: u64,
    /// Why the records stop at `end_offset`.
    pub stop: Stop,
}

impl SegmentSummary {
    /// LSN the next record after this segment's last one would carry.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }
}

/// Damage the log cannot repair without losing or inventing records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The file holding the damage.
    pub path: PathBuf,
    /// Byte offset of the damage in that file.
    pub offset: u64,
    /// What is wrong, and why it is not a torn tail.
    pub detail: String,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}: {}",
            self.path.display(),
            self.offset,
            self.detail
        )
    }
}

/// Everything a scan of a log directory learned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// One entry per segment read, oldest first.
    pub segments: Vec<SegmentSummary>,
    /// Names of `.tmp` files left by segment creations that never finished.
    pub temp_files: Vec<String>,
    /// Damage that is not a torn tail. Segments after it were not read.
    pub corruption: Option<Corruption>,
    /// Checksum failures that verified on a re-read.
    pub read_retries: u64,
    /// The verified bytes `[0, end_offset)` of the last segment read (its
    /// header and records), so recovery can write back exactly what it
    /// verified rather than whatever a second read returns.
    pub(crate) last_segment_image: Vec<u8>,
}

impl ScanOutcome {
    /// Total valid records.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// The LSN the next appended record gets (1 for an empty log).
    pub fn next_lsn(&self) -> u64 {
        self.segments.last().map_or(1, SegmentSummary::next_lsn)
    }
}

/// Reads every valid record of the log in `dir`, oldest first, handing each to
/// `visit`. Does not modify anything.
///
/// When the outcome reports corruption, the records already visited are a
/// valid prefix of the log but not all of it.
pub async fn scan<E: Env>(
    env: &E,
    dir: &Path,
    mut visit: impl FnMut(RecordPos, &[u8]),
) -> Result<ScanOutcome, LogError> {
    let names = env
        .list(dir)
        .await
        .map_err(|source| LogError::io("list log directory", dir, source))?;
    let mut outcome = ScanOutcome::default();
    let mut ids = Vec::new();
    for name in names {
        match segment::classify_name(&name) {
            NameKind::Segment(id) => ids.push(id),
            NameKind::Temp => outcome.temp_files.push(name),
            NameKind::Other => {}
        }
    }
    ids.sort_unstable();
    let segments_total = ids.len();
    for (index, &id) in ids.iter().enumerate() {
        let path = segment::segment_path(dir, id);
        let expected_lsn = outcome.segments.last().map(SegmentSummary::next_lsn);
        if let Some(previous) = outcome.segments.last()
            && id != previous.id + 1
        {
            outcome.corruption = Some(Corruption {
                path,
                offset: 0,
                detail: format!(
                    "segment {} is missing: segments {} and {id} exist, so records in between are lost",
                    previous.id + 1,
                    previous.id
                ),
            });
            break;
        }
        let file = env
            .open(&path, OpenMode::Existing)
            .await
            .map_err(|source| LogError::io("open segment", &path, source))?;
        let mut reader = SegmentReader::new(&file, &path).await?;
        let file_len = reader.file_len;
        if file_len > SEGMENT_BYTES_MAX {
            outcome.corruption = Some(Corruption {
                path,
                offset: 0,
                detail: format!(
                    "segment is {file_len} bytes, larger than any segment the log creates ({SEGMENT_BYTES_MAX})"
                ),
            });
            break;
        }
        let header = match reader.header(&mut outcome.read_retries).await? {
            Ok(header) => header,
            Err(detail) => {
                outcome.corruption = Some(Corruption {
                    path,
                    offset: 0,
                    detail,
                });
                break;
            }
        };
        if header.id != id {
            outcome.corruption = Some(Corruption {
                path,
                offset: 0,
                detail: format!("header names segment {}, file name says {id}", header.id),
            });
            break;
        }
        if let Some(expected) = expected_lsn
            && header.first_lsn != expected
        {
            outcome.corruption = Some(Corruption {
                path,
                offset: 0,
                detail: format!(
                    "segment starts at LSN {}, but the previous segment's records end before LSN {expected}",
                    header.first_lsn
                ),
            });
            break;
        }
        let is_last = index + 1 == segments_total;
        let keep = if is_last {
            Some(&mut outcome.last_segment_image)
        } else {
            None
        };
        let summary = reader
            .records(header, &mut outcome.read_retries, &mut visit, keep)
            .await?;
        let stop = summary.stop.clone();
        outcome.segments.push(summary);
        if let (Stop::Invalid { reason }, false) = (stop, is_last) {
            let end_offset = outcome.segments.last().map_or(0, |s| s.end_offset);
            outcome.corruption = Some(Corruption {
                path,
                offset: end_offset,
                detail: format!("{reason}; later segments exist, so this is not a torn tail"),
            });
            break;
        }
    }
    Ok(outcome)
}

/// What a valid frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// A record with this many payload bytes.
    Record(u64),
    /// An LSN skip: the next frame carries this LSN.
    Skip(u64),
}

/// Reads one segment through a window, so small records cost no extra calls.
struct SegmentReader<'a, F: File> {
    file: &'a F,
    path: &'a Path,
    file_len: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a, F: File> SegmentReader<'a, F> {
    async fn new(file: &'a F, path: &'a Path) -> Result<Self, LogError> {
        let file_len = file
            .len()
            .await
            .map_err(|source| LogError::io("read segment length", path, source))?;
        Ok(SegmentReader {
            file,
            path,
            file_len,
            window: Vec::new(),
            window_start: 0,
        })
    }

    /// `len` bytes at `offset`, which the caller has checked lie in the file.
    async fn bytes(&mut self, offset: u64, len: u64) -> Result<&[u8], LogError> {
        debug_assert!(
            offset + len <= self.file_len,
            "caller checks the file length"
        );
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || offset + len > window_end {
            let want = len.max(READ_WINDOW_BYTES).min(self.file_len - offset);
            self.window = self.read_fresh(offset, want).await?;
            self.window_start = offset;
            if (self.window.len() as u64) < len {
                return Err(LogError::io(
                    "read segment",
                    self.path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file shrank while being read: wanted {len} bytes at {offset}"),
                    ),
                ));
            }
        }
        let start = (offset - self.window_start) as usize;
        Ok(&self.window[start..start + len as usize])
    }

    async fn read_fresh(&self, offset: u64, len: u64) -> Result<Vec<u8>, LogError> {
        self.file
            .read_at(offset, len as usize)
            .await
            .map_err(|source| LogError::io("read segment", self.path, source))
    }

    /// Forgets the window, so the next read goes to the file again.
    fn invalidate(&mut self) {
        self.window.clear();
        self.window_start = 0;
    }

    async fn header(
        &mut self,
        retries: &mut u64,
    ) -> Result<Result<SegmentHeader, String>, LogError> {
        if self.file_len < SEGMENT_HEADER_BYTES {
            return Ok(Err(format!(
                "file is {} bytes, shorter than a segment header",
                self.file_len
            )));
        }
        let mut result = SegmentHeader::decode(self.bytes(0, SEGMENT_HEADER_BYTES).await?);
        for _ in 0..READ_RETRIES_MAX {
            if result.is_ok() {
                break;
            }
            self.invalidate();
            result = SegmentHeader::decode(self.bytes(0, SEGMENT_HEADER_BYTES).await?);
            if result.is_ok() {
                *retries += 1;
            }
        }
        Ok(result)
    }

    async fn records(
        &mut self,
        header: SegmentHeader,
        retries: &mut u64,
        visit: &mut impl FnMut(RecordPos, &[u8]),
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<SegmentSummary, LogError> {
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut lsn = header.first_lsn;
        if let Some(image) = keep.as_deref_mut() {
            image.clear();
            image.extend_from_slice(&header.encode());
        }
        let mut records = 0;
        let mut skips = 0;
        let stop = loop {
            match self.next_record(header.id, offset, lsn, retries).await? {
                Ok(Found::Skip(target)) => {
                    if let Some(image) = keep.as_deref_mut() {
                        image.extend_from_slice(self.bytes(offset, SKIP_FRAME_BYTES).await?);
                    }
                    offset += SKIP_FRAME_BYTES;
                    lsn = target;
                    skips += 1;
                }
                Ok(Found::Record(len)) => {
                    if let Some(image) = keep.as_deref_mut() {
                        image
                            .extend_from_slice(self.bytes(offset, FRAME_HEADER_BYTES + len).await?);
                    }
                    let payload = self.bytes(offset + FRAME_HEADER_BYTES, len).await?;
                    visit(
                        RecordPos {
                            lsn,
                            segment: header.id,
                            offset,
                        },
                        payload,
                    );
                    offset += FRAME_HEADER_BYTES + len;
                    lsn += 1;
                    records += 1;
                }
                Err(stop) => break stop,
            }
        };
        Ok(SegmentSummary {
            id: header.id,
            first_lsn: header.first_lsn,
            records,
            skips,
            next_lsn: lsn,
            end_offset: offset,
            file_len: self.file_len,
            stop,
        })
    }

    /// The verified record (its payload length) or LSN skip at `offset`, or
    /// why there is none. A verdict of "invalid" is re-read before it is
    /// believed: the damage may have been in the read, not on the disk.
    async fn next_record(
        &mut self,
        segment: u64,
        offset: u64,
        lsn: u64,
        retries: &mut u64,
    ) -> Result<Result<Found, Stop>, LogError> {
        let site = FrameSite {
            segment,
            offset,
            lsn,
        };
        let mut verdict = self.evaluate(site).await?;
        for _ in 0..READ_RETRIES_MAX {
            if !matches!(verdict, Err(Stop::Invalid { .. })) {
                break;
            }
            self.invalidate();
            verdict = self.evaluate(site).await?;
            if !matches!(verdict, Err(Stop::Invalid { .. })) {
                *retries += 1;
            }
        }
        Ok(verdict)
    }

    async fn evaluate(&mut self, site: FrameSite) -> Result<Result<Found, Stop>, LogError> {
        let offset = site.offset;
        let remaining = self.file_len - offset;
        if remaining < FRAME_HEADER_BYTES {
            let tail = self.bytes(offset, remaining).await?;
            return Ok(Err(if tail.iter().all(|&b| b == 0) {
                Stop::Clean
            } else {
                Stop::Invalid {
                    reason: format!("{remaining} stray bytes at the end of the segment"),
                }
            }));
        }
        let header_bytes: [u8; 8] = self
            .bytes(offset, FRAME_HEADER_BYTES)
            .await?
            .try_into()
            .expect("asked for eight bytes");
        let (len, crc) = match frame::decode_header(header_bytes) {
            Header::End => return Ok(Err(Stop::Clean)),
            Header::Skip { crc } => return self.evaluate_skip(site, crc).await,
            Header::Invalid => {
                return Ok(Err(Stop::Invalid {
                    reason: "zero length with a non-zero checksum".to_owned(),
                }));
            }
            Header::Frame { len, crc } => (u64::from(len), crc),
        };
        if FRAME_HEADER_BYTES + len > remaining {
            return Ok(Err(Stop::Invalid {
                reason: format!("a {len}-byte record would run past the segment end"),
            }));
        }
        let payload = self.bytes(offset + FRAME_HEADER_BYTES, len).await?;
        if frame::frame_crc(site, payload) != crc {
            return Ok(Err(Stop::Invalid {
                reason: format!("checksum mismatch for LSN {}", site.lsn),
            }));
        }
        Ok(Ok(Found::Record(len)))
    }

    /// The LSN skip whose header (with checksum `crc`) is at `site`.
    async fn evaluate_skip(
        &mut self,
        site: FrameSite,
        crc: u32,
    ) -> Result<Result<Found, Stop>, LogError> {
        if self.file_len - site.offset < SKIP_FRAME_BYTES {
            return Ok(Err(Stop::Invalid {
                reason: "an LSN skip would run past the segment end".to_owned(),
            }));
        }
        let target_bytes: [u8; 8] = self
            .bytes(site.offset + FRAME_HEADER_BYTES, 8)
            .await?
            .try_into()
            .expect("asked for eight bytes");
        let target = u64::from_le_bytes(target_bytes);
        if frame::skip_crc(site, target) != crc || target <= site.lsn {
            return Ok(Err(Stop::Invalid {
                reason: format!("a damaged LSN skip at LSN {}", site.lsn),
            }));
        }
        Ok(Ok(Found::Skip(target)))
    }
}
