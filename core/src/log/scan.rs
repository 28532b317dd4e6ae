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

use super::frame::{self, BATCH_HEADER_BYTES, FrameSite, Header, SKIP_FRAME_BYTES};
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
    /// LSN of its first record: from its header, or for an open header
    /// the previous segment's next LSN (or its first batch's, if oldest).
    pub first_lsn: u64,
    /// Valid records read.
    pub records: u64,
    /// LSN skips read (section 2.3 of docs/design.md).
    pub skips: u64,
    /// Batch headers read (section 2.4 of docs/design.md).
    pub batches: u64,
    /// Whether its header is open (prepared ahead, the first LSN resolved
    /// from the segment before it or from its first batch).
    pub open_header: bool,
    /// The block size its batches are aligned to (from its header; 0 in a
    /// segment written before batches were aligned).
    pub block_bytes: u32,
    /// When the records stop at bytes that are not a valid frame: the
    /// offset of a later batch header that verifies and the durable LSN it
    /// names, if that reaches the stop's LSN. The frame at the stop was
    /// then durable before, so the stop is damage, not a torn tail.
    pub durable_past_stop: Option<(u64, u64)>,
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
    /// The id of every segment file in the directory, read or not, but
    /// the spare.
    pub segment_ids: Vec<u64>,
    /// Segments older than the one a replay starts at, not read: no replay
    /// needs their records, and they stay only for the values they hold.
    pub retained: Vec<u64>,
    /// A segment prepared ahead that never received a batch: the newest
    /// segment file, after at least one other, with an open header and
    /// zeros where its first batch would be. It is not part of the log
    /// (not in `segments`), and recovery removes it.
    pub spare: Option<u64>,
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
    visit: impl FnMut(RecordPos, &[u8]),
) -> Result<ScanOutcome, LogError> {
    scan_from(env, dir, 0, visit).await
}

/// [`scan`], from the segment a replay from LSN `replay_from` starts at (a
/// database's durable checkpoint LSN plus one): older segments, which a
/// database keeps only for the values they hold and which may have gaps
/// between them, are listed in [`ScanOutcome::retained`] but not read.
pub async fn scan_from<E: Env>(
    env: &E,
    dir: &Path,
    replay_from: u64,
    visit: impl FnMut(RecordPos, &[u8]),
) -> Result<ScanOutcome, LogError> {
    scan_judging(env, dir, replay_from, visit, Misjudge::default(), false).await
}

/// Rules of the scan that sabotage switches break (tests only): all
/// `false` in every real scan.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Misjudge {
    /// `damage-as-torn-tail`: damage a later batch proves durable is
    /// reported as a torn tail.
    pub damage_as_torn_tail: bool,
    /// `spare-taken-for-segment`: a spare is scanned as part of the log,
    /// so damage before it is judged as before a used segment.
    pub spare_as_segment: bool,
    /// `scan-skips-replay-segment`: the scan starts one segment after the
    /// one holding the first LSN to replay.
    pub skip_replay_segment: bool,
}

/// [`scan`], from the newest segment that starts at or below LSN
/// `replay_from` (0: from the oldest; see [`replay_start`]), with the rules
/// `misjudge` breaks broken. With `keep_every_image`, the verified image
/// kept is that of the last segment read, not the last file: the one a cut
/// at damage ends in.
pub(crate) async fn scan_judging<E: Env>(
    env: &E,
    dir: &Path,
    replay_from: u64,
    mut visit: impl FnMut(RecordPos, &[u8]),
    misjudge: Misjudge,
    keep_every_image: bool,
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
    if ids.len() >= 2 && !misjudge.spare_as_segment {
        let last = ids[ids.len() - 1];
        if is_spare(env, dir, last).await? {
            outcome.spare = Some(last);
            ids.pop();
        }
    }
    outcome.segment_ids.clone_from(&ids);
    if let Some(&id) = ids.iter().find(|&&id| u32::try_from(id).is_err()) {
        // Pointers to values name a segment in 32 bits (design 11.2).
        outcome.corruption = Some(Corruption {
            path: segment::segment_path(dir, id),
            offset: 0,
            detail: format!("segment id {id} is past the format's 32-bit range"),
        });
        return Ok(outcome);
    }
    let mut start = replay_start(env, dir, &ids, replay_from, &mut outcome.read_retries).await?;
    if misjudge.skip_replay_segment && start + 1 < ids.len() {
        start += 1;
    }
    outcome.retained = ids[..start].to_vec();
    let segments_total = ids.len();
    for (index, &id) in ids.iter().enumerate().skip(start) {
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
        let first_lsn = match (header.is_open(), expected_lsn) {
            // An open header: the log goes on from the previous segment
            // (the first batch must name that LSN, or the records stop).
            (true, Some(expected)) => expected,
            (true, None) => match reader
                .first_batch_lsn(header, &mut outcome.read_retries)
                .await?
            {
                Some(lsn) => lsn,
                None => {
                    outcome.corruption = Some(Corruption {
                        path,
                        offset: header.first_batch_offset(),
                        detail: "the oldest segment has an open header (no first LSN) and no \
                                 valid first batch to name it"
                            .to_owned(),
                    });
                    break;
                }
            },
            (false, _) => header.first_lsn,
        };
        if let Some(expected) = expected_lsn
            && first_lsn != expected
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
        let mut image = Vec::new();
        let keep = (is_last || keep_every_image).then_some(&mut image);
        let kept = keep.is_some();
        let summary = reader
            .records(
                header,
                first_lsn,
                &mut outcome.read_retries,
                &mut visit,
                keep,
            )
            .await?;
        if kept {
            outcome.last_segment_image = image;
        }
        let stop = summary.stop.clone();
        let durable_past_stop = summary.durable_past_stop;
        let (stop_offset, stop_lsn) = (summary.end_offset, summary.next_lsn);
        outcome.segments.push(summary);
        if let (Stop::Invalid { reason }, Some((at, durable))) = (&stop, durable_past_stop)
            && !misjudge.damage_as_torn_tail
        {
            outcome.corruption = Some(Corruption {
                path,
                offset: stop_offset,
                detail: format!(
                    "{reason}; the batch at offset {at} was written when the log was durable \
                     through LSN {durable}, so LSNs {stop_lsn} to {durable} were durable: that \
                     is damage, not a torn tail"
                ),
            });
            break;
        }
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

/// The index in `ids` of the segment a scan for a replay from LSN
/// `replay_from` starts at: the newest whose first LSN (from its header,
/// or for an open header from its first batch) is known and at or below
/// it. The records of every older one are covered by the checkpoint the
/// replay starts from, so they are not read (they may be kept for the
/// values they hold, with gaps between them). A segment whose first LSN
/// cannot be read is passed over for an older one: starting earlier only
/// reads more. 0 when none qualifies, or for `replay_from` 0 or 1.
async fn replay_start<E: Env>(
    env: &E,
    dir: &Path,
    ids: &[u64],
    replay_from: u64,
    retries: &mut u64,
) -> Result<usize, LogError> {
    if replay_from <= 1 {
        return Ok(0);
    }
    for (index, &id) in ids.iter().enumerate().rev() {
        let (file, path, _) = open_segment(env, dir, id).await?;
        let mut reader = SegmentReader::new(&file, &path).await?;
        let Ok(header) = reader.header(retries).await? else {
            continue;
        };
        if header.id != id {
            continue;
        }
        let first_lsn = if header.is_open() {
            reader.first_batch_lsn(header, retries).await?
        } else {
            Some(header.first_lsn)
        };
        if first_lsn.is_some_and(|first| first <= replay_from) {
            return Ok(index);
        }
    }
    Ok(0)
}

/// The valid records of segment `id` alone, in order, each with where it
/// lives (for value GC, which moves the live values out of a segment no
/// replay needs). Its first LSN comes from its header, or for an open
/// header from its first batch. Returns whether the records ran to a clean
/// end: `false` when a frame does not verify (the ones after it are not
/// visited) or the segment cannot be read as one.
pub(crate) async fn segment_records<E: Env>(
    env: &E,
    dir: &Path,
    id: u64,
    mut visit: impl FnMut(RecordPos, &[u8]),
) -> Result<bool, LogError> {
    let (file, path, _) = open_segment(env, dir, id).await?;
    let mut reader = SegmentReader::new(&file, &path).await?;
    let mut retries = 0;
    let Ok(header) = reader.header(&mut retries).await? else {
        return Ok(false);
    };
    if header.id != id {
        return Ok(false);
    }
    let first_lsn = if header.is_open() {
        match reader.first_batch_lsn(header, &mut retries).await? {
            Some(lsn) => lsn,
            None => return Ok(false),
        }
    } else {
        header.first_lsn
    };
    let summary = reader
        .records(header, first_lsn, &mut retries, &mut visit, None)
        .await?;
    Ok(summary.stop == Stop::Clean)
}

/// Whether segment `id` is a spare (see [`ScanOutcome::spare`]). Anything
/// it cannot read as one (a short file, a damaged header, a bad read) is
/// left to the scan, which judges it as any segment.
async fn is_spare<E: Env>(env: &E, dir: &Path, id: u64) -> Result<bool, LogError> {
    let (file, path, file_len) = open_segment(env, dir, id).await?;
    if file_len < SEGMENT_HEADER_BYTES {
        return Ok(false);
    }
    let read = |offset, len| read_segment(&file, &path, offset, len);
    // A check that fails is made again before it counts, as the scan reads
    // a frame that fails its checksum again: a spare taken for a segment
    // makes the one before it look proven durable, and recovery would then
    // leave that one's unsynced tail unwritten.
    for _ in 0..=READ_RETRIES_MAX {
        let header = match SegmentHeader::decode(&read(0, SEGMENT_HEADER_BYTES).await?) {
            Ok(header) if header.id == id && header.is_open() => header,
            // A header that verifies and is not open is no bad read.
            Ok(_) => return Ok(false),
            Err(_) => continue,
        };
        let end = (header.first_batch_offset() + BATCH_HEADER_BYTES).min(file_len);
        let rest = read(SEGMENT_HEADER_BYTES, end - SEGMENT_HEADER_BYTES).await?;
        if rest.iter().all(|&b| b == 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Segment `id` of the log in `dir`, open, with its path and length.
pub(super) async fn open_segment<E: Env>(
    env: &E,
    dir: &Path,
    id: u64,
) -> Result<(E::File, PathBuf, u64), LogError> {
    let path = segment::segment_path(dir, id);
    let file = env
        .open(&path, OpenMode::Existing)
        .await
        .map_err(|source| LogError::io("open segment", &path, source))?;
    let len = file
        .len()
        .await
        .map_err(|source| LogError::io("read segment length", &path, source))?;
    Ok((file, path, len))
}

/// `len` bytes at `offset` of a segment, which the caller has checked lie
/// in the file. An unreadable sector reads as bytes that verify as no
/// frame and no batch header (and not as the zeros that end a segment),
/// so the torn-or-damaged rules judge it where it lies.
pub(super) async fn read_segment<F: File>(
    file: &F,
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, LogError> {
    crate::env::read_salvaging(file, offset, len as usize)
        .await
        .map(|salvaged| salvaged.bytes)
        .map_err(|source| LogError::io("read segment", path, source))
}

/// What a valid frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// A batch header naming the LSN due.
    Batch,
    /// A record with this many payload bytes, and its frame's CRC.
    Record(u64, u32),
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
        read_segment(self.file, self.path, offset, len).await
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

    /// The LSN the batch header at the first batch offset names, if one
    /// verifies there (read again if it does not: a bad read is not damage).
    async fn first_batch_lsn(
        &mut self,
        header: SegmentHeader,
        retries: &mut u64,
    ) -> Result<Option<u64>, LogError> {
        let at = header.first_batch_offset();
        if at + BATCH_HEADER_BYTES > self.file_len {
            return Ok(None);
        }
        for attempt in 0..=READ_RETRIES_MAX {
            let bytes = self.bytes(at, BATCH_HEADER_BYTES).await?;
            if let Some(batch) = frame::decode_batch_header(header.id, at, bytes) {
                if attempt > 0 {
                    *retries += 1;
                }
                return Ok(Some(batch.lsn));
            }
            self.invalidate();
        }
        Ok(None)
    }

    /// The records of the segment under `header`, the first at LSN
    /// `first_lsn` (the header's, or for an open header the one resolved
    /// by the caller).
    async fn records(
        &mut self,
        header: SegmentHeader,
        first_lsn: u64,
        retries: &mut u64,
        visit: &mut impl FnMut(RecordPos, &[u8]),
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<SegmentSummary, LogError> {
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut lsn = first_lsn;
        if let Some(image) = keep.as_deref_mut() {
            image.clear();
            image.extend_from_slice(&header.encode());
        }
        let mut records = 0;
        let mut skips = 0;
        let mut batches = 0;
        let block = u64::from(header.block_bytes);
        let stop = loop {
            match self.next_record(header.id, offset, lsn, retries).await? {
                Ok(Found::Batch) => {
                    if let Some(image) = keep.as_deref_mut() {
                        image.extend_from_slice(self.bytes(offset, BATCH_HEADER_BYTES).await?);
                    }
                    offset += BATCH_HEADER_BYTES;
                    batches += 1;
                }
                // A batch ended; the next one, if any, starts at the next
                // block boundary, and the bytes before it are zeros. (With
                // fewer than a frame header's bytes left in the block, the
                // header read runs into the next batch's and looks invalid.)
                Err(stop) if self.batch_may_end(&stop, offset, block) => {
                    match self
                        .next_batch(header.id, offset, block, lsn, retries)
                        .await?
                    {
                        Ok(true) => {
                            let next = offset.next_multiple_of(block);
                            if let Some(image) = keep.as_deref_mut() {
                                image.resize(next as usize, 0);
                            }
                            offset = next;
                        }
                        Ok(false) => break Stop::Clean,
                        Err(found) => break if stop == Stop::Clean { found } else { stop },
                    }
                }
                Ok(Found::Skip(target)) => {
                    if let Some(image) = keep.as_deref_mut() {
                        image.extend_from_slice(self.bytes(offset, SKIP_FRAME_BYTES).await?);
                    }
                    offset += SKIP_FRAME_BYTES;
                    lsn = target;
                    skips += 1;
                }
                Ok(Found::Record(len, crc)) => {
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
                            crc,
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
        // Where a torn tail would begin: past damage, a later batch's header
        // may say the frame that stopped the records was already durable.
        let durable_past_stop = match &stop {
            Stop::Invalid { .. } if block > 0 => {
                self.durable_claim_after(header.id, offset, block, lsn)
                    .await?
            }
            _ => None,
        };
        Ok(SegmentSummary {
            id: header.id,
            first_lsn,
            open_header: header.is_open(),
            records,
            skips,
            batches,
            block_bytes: header.block_bytes,
            durable_past_stop,
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
            Header::Batch => return self.evaluate_batch(site).await,
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
        Ok(Ok(Found::Record(len, crc)))
    }

    /// The batch header at `site`, which must name the LSN expected there.
    async fn evaluate_batch(&mut self, site: FrameSite) -> Result<Result<Found, Stop>, LogError> {
        if self.file_len - site.offset < BATCH_HEADER_BYTES {
            return Ok(Err(Stop::Invalid {
                reason: "a batch header would run past the segment end".to_owned(),
            }));
        }
        let bytes = self.bytes(site.offset, BATCH_HEADER_BYTES).await?;
        Ok(
            match frame::decode_batch_header(site.segment, site.offset, bytes) {
                Some(batch) if batch.lsn == site.lsn => Ok(Found::Batch),
                Some(batch) => Err(Stop::Invalid {
                    reason: format!(
                        "a batch header names LSN {} where LSN {} was due",
                        batch.lsn, site.lsn
                    ),
                }),
                None => Err(Stop::Invalid {
                    reason: format!("a damaged batch header at LSN {}", site.lsn),
                }),
            },
        )
    }

    /// Whether the records stopping at `offset` (for `stop`) may be the
    /// end of a batch, with the next one at a later block boundary.
    fn batch_may_end(&self, stop: &Stop, offset: u64, block: u64) -> bool {
        block > 0
            && match stop {
                Stop::Clean => offset < self.file_len,
                Stop::Invalid { .. } => {
                    !offset.is_multiple_of(block) && block - offset % block < FRAME_HEADER_BYTES
                }
            }
    }

    /// [`Self::batch_follows`] at the block boundary after `end`, read
    /// again if it does not verify (a bad read is not damage).
    async fn next_batch(
        &mut self,
        segment: u64,
        end: u64,
        block: u64,
        lsn: u64,
        retries: &mut u64,
    ) -> Result<Result<bool, Stop>, LogError> {
        let next = end.next_multiple_of(block);
        let mut follows = self.batch_follows(segment, end, next, lsn).await?;
        for _ in 0..READ_RETRIES_MAX {
            if follows.is_ok() {
                break;
            }
            self.invalidate();
            follows = self.batch_follows(segment, end, next, lsn).await?;
            if follows.is_ok() {
                *retries += 1;
            }
        }
        Ok(follows)
    }

    /// After a batch ended with zeros at `end`: whether the next batch
    /// starts at block boundary `next` (a header that verifies there and
    /// names `lsn`, with zeros between). `Ok(false)`: zeros there too, the
    /// segment's records end. Anything else stops the records at `end`.
    async fn batch_follows(
        &mut self,
        segment: u64,
        end: u64,
        next: u64,
        lsn: u64,
    ) -> Result<Result<bool, Stop>, LogError> {
        if next + BATCH_HEADER_BYTES > self.file_len {
            let tail = self.bytes(end, self.file_len - end).await?;
            return Ok(if tail.iter().all(|&b| b == 0) {
                Ok(false)
            } else {
                Err(Stop::Invalid {
                    reason: format!("stray bytes after the records at offset {end}"),
                })
            });
        }
        let gap_zero = self.bytes(end, next - end).await?.iter().all(|&b| b == 0);
        let at_next = self.bytes(next, BATCH_HEADER_BYTES).await?;
        if gap_zero && at_next.iter().all(|&b| b == 0) {
            return Ok(Ok(false));
        }
        match frame::decode_batch_header(segment, next, at_next) {
            Some(batch) if gap_zero && batch.lsn == lsn => Ok(Ok(true)),
            _ => Ok(Err(Stop::Invalid {
                reason: format!(
                    "the records end at offset {end}, but the next block holds something \
                     other than the batch at LSN {lsn}"
                ),
            })),
        }
    }

    /// The furthest durable LSN a batch header after `stop` (on a block
    /// boundary, verifying at its own offset, naming an LSN at or past
    /// `lsn`) claims, with its offset, if it reaches `lsn`: then the frame
    /// due at `lsn` was durable when that batch began.
    async fn durable_claim_after(
        &mut self,
        segment: u64,
        stop: u64,
        block: u64,
        lsn: u64,
    ) -> Result<Option<(u64, u64)>, LogError> {
        let mut claim: Option<(u64, u64)> = None;
        let mut at = (stop + 1).next_multiple_of(block);
        while at + BATCH_HEADER_BYTES <= self.file_len {
            let mut found = self.batch_header_at(segment, at).await?;
            // A header that fails to verify may be a bad read: read again.
            for _ in 0..READ_RETRIES_MAX {
                if found != Some(None) {
                    break;
                }
                self.invalidate();
                found = self.batch_header_at(segment, at).await?;
            }
            if let Some(Some(batch)) = found
                && batch.lsn >= lsn
                && batch.lsn_durable >= lsn
                && claim.is_none_or(|(_, durable)| batch.lsn_durable > durable)
            {
                claim = Some((at, batch.lsn_durable));
            }
            at += block;
        }
        Ok(claim)
    }

    /// What the block at `at` starts with: `None` if not a batch header's
    /// marker, `Some(None)` if the marker is there but the header does not
    /// verify, `Some(Some(_))` if it does.
    async fn batch_header_at(
        &mut self,
        segment: u64,
        at: u64,
    ) -> Result<Option<Option<frame::BatchHeader>>, LogError> {
        let bytes = self.bytes(at, BATCH_HEADER_BYTES).await?;
        if bytes[0..4] != frame::BATCH_LEN.to_le_bytes() {
            return Ok(None);
        }
        Ok(Some(frame::decode_batch_header(segment, at, bytes)))
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
