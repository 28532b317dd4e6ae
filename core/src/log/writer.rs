//! Appending: the write buffer, `fdatasync`, and segment rollover.
//!
//! Invariants kept here:
//! - records reach the file in LSN order, each at the offset its CRC names;
//! - `durable_lsn` only grows, and only after an `fdatasync` that returned
//!   `Ok` covered every record up to it;
//! - a segment is synced before a record is written to the next one, so a
//!   later segment holding a batch proves every earlier one is complete
//!   and durable (the scan relies on this to tell a torn tail from
//!   corruption); the next segment itself may exist before that, prepared
//!   ahead with an open header and no batch (a *spare*);
//! - every batch (the frames one `write` or `sync` writes) starts at a
//!   block boundary with a header naming the durable LSN, and no write
//!   touches a block that holds an earlier batch's bytes: a torn write
//!   damages only its own batch, and the scan can tell that from damage;
//! - after a failed sync, or a write error other than disk full, the log
//!   accepts nothing more (see the module docs of `log`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::env::{Env, File};

use super::frame::{self, BATCH_HEADER_BYTES, FrameSite, SKIP_FRAME_BYTES};
use super::segment::{self, SEGMENT_HEADER_BYTES, SegmentHeader};
use super::{FRAME_HEADER_BYTES, LogConfig, LogError, RecordPos};
use crate::sabotage::sabotaged;

/// Attempts at zeroing discarded records before the log gives up and fails.
const DISCARD_ATTEMPTS_MAX: u32 = 8;

/// Counters describing what the log has done since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records appended.
    pub appends: u64,
    /// Payload bytes appended.
    pub append_bytes: u64,
    /// Write calls issued for records (one per flushed buffer).
    pub writes: u64,
    /// Successful `fdatasync` calls on segments.
    pub syncs: u64,
    /// Segments created by rollover.
    pub rollovers: u64,
    /// Rollovers that found the next segment already prepared and
    /// installed by the background task, and so wrote and synced nothing
    /// (the rest prepared it on the commit path).
    pub rollovers_prepared_ahead: u64,
    /// Old segments removed (a background removal counts its segments as
    /// it starts, and takes back any it could not remove when it ends).
    pub segments_removed: u64,
    /// Writes that failed with disk full and were kept for a retry.
    pub disk_full_errors: u64,
    /// Rollovers that could not prepare the next segment for another
    /// reason than disk full (no file descriptors, a failed write); the
    /// commit that needed it failed alone and the next one tried again.
    pub rollover_errors: u64,
    /// Runs of records discarded after a disk-full error ([`Log::discard_since`]).
    pub discards: u64,
    /// LSN skips written ([`Log::skip_to`]).
    pub skips: u64,
    /// Batches opened (each at a block boundary, under a batch header).
    pub batches: u64,
    /// Segment bytes taken up since open: frames, batch headers, the zeros
    /// that align batches to blocks, and segment headers and unused ends.
    /// What the log costs on disk, where `append_bytes` is what it holds.
    pub file_bytes: u64,
}

/// The log's files as a backup copies them (design 12.2), taken right
/// after a sync: every segment on disk that a replay or a value may need,
/// oldest first, as `(id, bytes to copy)`, `None` meaning the whole file.
/// Only the active segment is cut: at the end of its last durable batch,
/// past which the copy holds zeros, so its recovery finds a clean end there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCopy {
    /// The segments, oldest first.
    pub segments: Vec<(u64, Option<u64>)>,
    /// Every record at or below it is in the copied bytes.
    pub durable_lsn: u64,
}

/// A point in the log: records appended after it can be discarded with
/// [`Log::discard_since`] as long as none of them is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogMark {
    lsn: u64,
    segment: u64,
    offset: u64,
    /// Whether a batch was open (its header written before the mark).
    batch_open: bool,
}

/// The segment records are appended to.
struct Active<F> {
    id: u64,
    path: PathBuf,
    file: F,
    /// The segment's size: records must end at or before it.
    capacity: u64,
    /// Where the buffer will be written: just past the last written record.
    write_offset: u64,
    /// The highest offset any write reached, even one that failed, so
    /// rollover can zero bytes a failed write may have left behind.
    dirty_end: u64,
    /// Whether anything was written since the last successful sync.
    unsynced: bool,
    /// Where the bytes the last successful sync made durable end.
    synced_end: u64,
}

/// A segmented, append-only log of records. Open one with [`Log::open`].
pub struct Log<E: Env> {
    pub(super) env: E,
    pub(super) config: LogConfig,
    active: Active<E::File>,
    /// `(id, first_lsn)` of every segment a replay may need, oldest first;
    /// the last is active.
    segments: Vec<(u64, u64)>,
    /// Older segments no replay needs, kept for the values they hold
    /// (`retention` says which), oldest first; there may be gaps between
    /// them.
    retained: Vec<u64>,
    /// Which covered segments stay for their values; `None`: none do.
    retention: Option<Arc<dyn super::Retention>>,
    /// Segments with an open header (prepared ahead) that hold no synced
    /// batch yet: after a crash only the segment before one names its
    /// first LSN, so the one before is never removed (at most one in
    /// practice: the active one, until its first sync).
    unproven: Vec<u64>,
    /// Frames appended but not yet written.
    buffer: Vec<u8>,
    next_lsn: u64,
    /// The last LSN written to the file (not necessarily durable).
    written_lsn: u64,
    /// The last LSN known durable.
    durable_lsn: u64,
    /// Whether the current batch's header is written or buffered: the next
    /// frame joins it rather than opening a new one at a block boundary.
    batch_open: bool,
    /// A discard could not zero what its records left in the segment (the
    /// disk was full): nothing is written or synced until that is done,
    /// or a later sync could make discarded records durable. Holds where
    /// the zeros start, fixed when the discard happened.
    scrub_pending: Option<u64>,
    /// The next segment, being zero-filled, synced and installed with an
    /// open header by a background task once the active one is half full,
    /// so a rollover neither writes, syncs nor renames on the commit path.
    spare: Option<Spare<E>>,
    /// Old segments being removed by a background task: unlinking a 64 MiB
    /// file and syncing the directory takes milliseconds each, which the
    /// commit path must not wait for. They left `segments` and `retained`
    /// when the task started; those it could not remove join `retained`
    /// again when it is reaped.
    removal: Option<Removal<E>>,
    failure: Option<String>,
    stats: LogStats,
}

/// A segment prepared ahead: its id, and the task preparing it.
struct Spare<E: Env> {
    id: u64,
    task: E::JoinHandle<Result<E::File, segment::NotCreated>>,
    /// Set when a rollover waits for the spare: its preparation stops
    /// pausing between steps.
    hurry: Arc<AtomicBool>,
}

/// Old segments being removed in the background.
struct Removal<E: Env> {
    task: E::JoinHandle<Removed>,
}

/// What a removal task did: it removes oldest first and stops at the
/// first failure, so the segments it removed are a prefix of those it was
/// given, and the survivors stay contiguous.
struct Removed {
    /// Those it did not remove, oldest first.
    left: Vec<u64>,
    /// A failed directory sync after an unlink: the directory's state is
    /// unknown, so the log fails (as after any failed sync).
    fatal: Option<LogError>,
}

impl LogMark {
    /// The LSN the first record appended after the mark gets.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }
}

impl<E: Env> Log<E> {
    /// Assembles a log positioned after recovery: `segments` are the
    /// surviving segments (oldest first), the last of which is open as `file`
    /// with its next record at `write_offset`, and everything up to
    /// `next_lsn - 1` is durable. `unproven` are those with an open header
    /// and no batch (see the field).
    #[allow(
        clippy::too_many_arguments,
        reason = "called once, by recovery, with what its scan found"
    )]
    pub(super) fn from_recovered(
        env: E,
        config: LogConfig,
        segments: Vec<(u64, u64)>,
        retained: Vec<u64>,
        unproven: Vec<u64>,
        file: E::File,
        capacity: u64,
        write_offset: u64,
        next_lsn: u64,
    ) -> Self {
        let &(id, first_lsn) = segments
            .last()
            .expect("recovery leaves at least one segment");
        assert!(
            first_lsn <= next_lsn,
            "active segment starts after the log's end"
        );
        assert!(write_offset >= SEGMENT_HEADER_BYTES && write_offset <= capacity);
        let path = segment::segment_path(&config.dir, id);
        Log {
            env,
            config,
            active: Active {
                id,
                path,
                file,
                capacity,
                write_offset,
                dirty_end: write_offset,
                unsynced: false,
                synced_end: write_offset,
            },
            segments,
            retained,
            retention: None,
            unproven,
            buffer: Vec::new(),
            next_lsn,
            written_lsn: next_lsn - 1,
            durable_lsn: next_lsn - 1,
            batch_open: false,
            scrub_pending: None,
            spare: None,
            removal: None,
            failure: None,
            stats: LogStats::default(),
        }
    }

    /// Starts preparing the next segment in the background once the active
    /// one is half full (at most one at a time): a temporary file of the
    /// full size, zero-filled, with an open header (its first LSN is not
    /// known yet), synced, renamed to its name and the directory synced.
    /// The rollover then only switches to it. A crash leaves a `.tmp` file
    /// or a *spare* (an installed segment with an open header and no
    /// batch after the last segment that holds records), which recovery
    /// removes.
    fn prepare_ahead(&mut self) {
        if self.spare.is_some()
            || self.failure.is_some()
            || self.active.write_offset * 2 < self.active.capacity
        {
            return;
        }
        let id = self.active.id + 1;
        let (env, dir, bytes) = (
            self.env.clone(),
            self.config.dir.clone(),
            self.config.segment_bytes,
        );
        let header = SegmentHeader::open(id, self.config.block_bytes).encode();
        let sync_dir = !sabotaged!(self.config, SkipDirSync);
        let hurry = Arc::new(AtomicBool::new(false));
        let task_hurry = Arc::clone(&hurry);
        let task = self.env.spawn("wal-prepare-segment", async move {
            let hurry = task_hurry;
            let pace = segment::Pace::Paced(hurry);
            let file = segment::prepare(&env, &dir, id, &header, bytes, pace).await?;
            segment::install(&env, &dir, id, sync_dir).await?;
            Ok(file)
        });
        self.spare = Some(Spare { id, task, hurry });
    }

    /// Waits for a background preparation still running (a close must not
    /// leave it writing), then removes the spare: a closed log leaves no
    /// unused segment-sized file behind (best effort: a leftover `.tmp` is
    /// harmless, the next open removes it).
    pub(crate) async fn settle(&mut self) {
        self.finish_removal().await;
        if let Some(spare) = self.spare.take() {
            spare.hurry.store(true, Ordering::Release);
            // Installed, it is a segment with an open header and no
            // record; a crash before its removal is durable leaves it for
            // recovery to remove (`scan`: a spare).
            let path = match spare.task.await {
                Ok(_) => segment::segment_path(&self.config.dir, spare.id),
                Err(_) => segment::temp_path(&self.config.dir, spare.id),
            };
            let _ = self.env.remove(&path).await;
        }
    }

    /// Whether every record is written and synced, no batch is open and the
    /// log has not failed: what the close-time steps below need.
    fn settled_for_close(&self) -> bool {
        self.failure().is_none()
            && !self.batch_open
            && self.buffer.is_empty()
            && !self.active.unsynced
    }

    /// At a close, when a durable checkpoint covers every record that
    /// holds data (the caller knows): starts an empty segment of one block
    /// past its header (the next open writes it out to `segment_bytes`,
    /// 2.6 step 5) and removes every segment before it, so a closed
    /// database keeps no WAL bytes it will never replay. LSNs go on from
    /// where they were: the new segment's first LSN is the next one.
    /// Best effort, each step crash-safe as a rollover and a removal are.
    pub(crate) async fn restart_empty_for_close(&mut self) {
        if !self.settled_for_close() || self.active.write_offset == SEGMENT_HEADER_BYTES {
            return;
        }
        let small = SEGMENT_HEADER_BYTES.next_multiple_of(u64::from(self.config.block_bytes))
            + u64::from(self.config.block_bytes);
        if self.rollover(small).await.is_ok() {
            let _ = self.remove_segments_before(self.next_lsn).await;
        }
    }

    /// At a close, once every record is durable: cuts the active segment
    /// after the block its records end in plus one zero block, so a closed
    /// database does not keep a preallocated segment's zeros on disk (the
    /// next open writes the segment out to `segment_bytes` again, in the
    /// rewrite it makes anyway, design 2.6 step 5). Best effort: a failed
    /// or lost cut leaves the longer file, which is as valid. Nothing is
    /// cut while a batch is open, a write is unsynced, or the log failed.
    pub(crate) async fn shrink_for_close(&mut self) {
        if !self.settled_for_close() {
            return;
        }
        let block = u64::from(self.config.block_bytes);
        let keep = self
            .active
            .write_offset
            .max(self.active.dirty_end)
            .next_multiple_of(block)
            + block;
        if keep < self.active.capacity && self.active.file.set_len(keep).await.is_ok() {
            self.active.capacity = keep;
        }
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// The LSN the oldest segment starts at: records before it were removed.
    pub fn first_lsn(&self) -> u64 {
        self.segments[0].1
    }

    /// The highest LSN known durable (0 if none).
    pub fn durable_lsn(&self) -> u64 {
        self.durable_lsn
    }

    /// The point just after the last appended record.
    pub fn mark(&self) -> LogMark {
        LogMark {
            lsn: self.next_lsn,
            segment: self.active.id,
            offset: self.end(),
            batch_open: self.batch_open,
        }
    }

    /// Where the next frame goes if the batch is open: after the buffered
    /// ones.
    fn end(&self) -> u64 {
        self.active.write_offset + self.buffer.len() as u64
    }

    /// Where bytes a failed or discarded write left past the records begin:
    /// inside the open batch, right after what was written; otherwise at
    /// the block boundary the failed batch began at. Zeroing starts there,
    /// so it never writes into a block an earlier (acknowledged) batch
    /// holds bytes in.
    fn scrub_from(&self) -> u64 {
        if self.batch_open {
            self.active.write_offset
        } else {
            self.active
                .write_offset
                .next_multiple_of(u64::from(self.config.block_bytes))
        }
    }

    /// Where a batch opened now would start: the next block boundary.
    fn next_batch_offset(&self) -> u64 {
        if sabotaged!(self.config, UnalignedBatches) {
            // Broken on purpose: right after the previous batch.
            return self.end();
        }
        self.end()
            .next_multiple_of(u64::from(self.config.block_bytes))
    }

    /// Bytes of frames the active segment can still take after the
    /// buffered ones (after a batch header and its block alignment, if the
    /// next frame opens a batch).
    pub fn room_bytes(&self) -> u64 {
        let start = if self.batch_open {
            self.end()
        } else {
            self.next_batch_offset() + BATCH_HEADER_BYTES
        };
        self.active.capacity.saturating_sub(start)
    }

    /// Bytes of frames a fresh segment can take in one batch.
    pub fn segment_room_bytes(&self) -> u64 {
        self.config.segment_bytes - self.config.first_batch_offset() - BATCH_HEADER_BYTES
    }

    /// Opens a batch unless one is open, so that a frame of `frame_bytes`
    /// follows its header: at the next block boundary of the active
    /// segment, or of a new one if it would not fit. The bytes skipped to
    /// reach the boundary are zeros (segments are zero-filled, and
    /// recovery and discards zero what they cut), and no write ever
    /// touches them.
    async fn open_batch(&mut self, frame_bytes: u64) -> Result<(), LogError> {
        if self.batch_open {
            return Ok(());
        }
        debug_assert!(self.buffer.is_empty(), "a closed batch was written whole");
        if self.next_batch_offset() + BATCH_HEADER_BYTES + frame_bytes > self.active.capacity {
            self.rollover(self.config.segment_bytes).await?;
        }
        let start = self.next_batch_offset();
        self.stats.file_bytes += start + BATCH_HEADER_BYTES - self.end();
        self.stats.batches += 1;
        self.active.write_offset = start;
        let site = FrameSite {
            segment: self.active.id,
            offset: start,
            lsn: self.next_lsn,
        };
        frame::encode_batch_header(site, self.durable_lsn, &mut self.buffer);
        self.batch_open = true;
        Ok(())
    }

    /// Largest payload one record may carry.
    pub fn record_bytes_max(&self) -> u32 {
        self.config.record_bytes_max
    }

    /// What the log has done since it was opened.
    pub fn stats(&self) -> LogStats {
        self.stats
    }

    /// The ids of the segments a replay may read, oldest first (the
    /// retained ones, kept only for their values, are [`Log::retained`]).
    pub fn segment_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().map(|&(id, _)| id)
    }

    /// Why the log stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn check_usable(&self) -> Result<(), LogError> {
        match &self.failure {
            Some(reason) => Err(LogError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the log failed and returns the error that caused it.
    fn fail(&mut self, err: LogError) -> LogError {
        if self.failure.is_none() {
            self.failure = Some(err.to_string());
        }
        err
    }

    /// Appends one record and returns where it will live. The record is
    /// buffered; it is written by a later `append` (when the buffer is full)
    /// or [`Log::sync`], and durable only once `sync` returns its LSN or more.
    pub async fn append(&mut self, payload: &[u8]) -> Result<RecordPos, LogError> {
        self.check_usable()?;
        if payload.is_empty() {
            return Err(LogError::RecordEmpty);
        }
        if payload.len() > self.config.record_bytes_max as usize {
            return Err(LogError::RecordTooLarge {
                len: payload.len(),
                max: self.config.record_bytes_max,
            });
        }
        let frame_bytes = FRAME_HEADER_BYTES + payload.len() as u64;
        self.open_batch(frame_bytes).await?;
        if self.end() + frame_bytes > self.active.capacity {
            // The batch goes on in a new segment, under a new header.
            self.rollover(self.config.segment_bytes).await?;
            self.open_batch(frame_bytes).await?;
        } else if self.buffer.len() + frame_bytes as usize > self.config.write_buffer_bytes {
            self.flush().await?;
        }
        let site = FrameSite {
            segment: self.active.id,
            offset: self.end(),
            lsn: self.next_lsn,
        };
        let crc = frame::encode(site, payload, &mut self.buffer);
        let pos = RecordPos {
            lsn: site.lsn,
            segment: site.segment,
            offset: site.offset,
            crc,
        };
        self.next_lsn += 1;
        self.stats.appends += 1;
        self.stats.append_bytes += payload.len() as u64;
        self.stats.file_bytes += frame_bytes;
        Ok(pos)
    }

    /// Moves the next record's LSN forward to `lsn` (an LSN skip frame, see
    /// `frame`): no record will ever carry the LSNs in between. Durable,
    /// like a record, once `sync` returns; the caller syncs before it hands
    /// out an LSN past the skip. A database reopened after a crash skips
    /// past every LSN its previous life may have handed out, so a revision
    /// is never reused.
    pub async fn skip_to(&mut self, lsn: u64) -> Result<(), LogError> {
        self.check_usable()?;
        assert!(lsn >= self.next_lsn, "an LSN skip never moves back");
        if lsn == self.next_lsn {
            return Ok(());
        }
        self.open_batch(SKIP_FRAME_BYTES).await?;
        if self.end() + SKIP_FRAME_BYTES > self.active.capacity {
            self.rollover(self.config.segment_bytes).await?;
            self.open_batch(SKIP_FRAME_BYTES).await?;
        }
        let site = FrameSite {
            segment: self.active.id,
            offset: self.end(),
            lsn: self.next_lsn,
        };
        frame::encode_skip(site, lsn, &mut self.buffer);
        self.next_lsn = lsn;
        self.stats.skips += 1;
        self.stats.file_bytes += SKIP_FRAME_BYTES;
        Ok(())
    }

    /// Writes every buffered record (one call) without syncing it, so a
    /// later failure to write can be told apart from a failure to sync.
    pub async fn write(&mut self) -> Result<(), LogError> {
        self.check_usable()?;
        self.flush().await?;
        self.batch_open = false;
        Ok(())
    }

    /// Closes the active segment and starts the next one now, so a run of
    /// records that must not straddle two segments can start in a fresh one.
    pub async fn roll(&mut self) -> Result<(), LogError> {
        self.check_usable()?;
        self.rollover(self.config.segment_bytes).await
    }

    /// Forgets every record appended since `mark`: they leave the buffer,
    /// their LSNs are given out again, and whatever bytes of them a failed
    /// write left in the segment are overwritten with zeros and synced, so
    /// no crash can bring them back. This is how a writer that hit disk
    /// full gets a definite answer: what it appended will never be read.
    ///
    /// Only records that are not durable can be discarded. A run of
    /// records longer than a segment's room (one large commit) was synced
    /// segment by segment as it rolled over: what a rollover made durable
    /// stays, and the discard starts after it (see
    /// `Log::undurable_since`); those records' LSNs are never given out
    /// again. If syncing fails, the log fails; if the disk is too full to
    /// write the zeros, they are written before anything else is, and the
    /// error says disk full.
    pub async fn discard_since(&mut self, mark: LogMark) -> Result<(), LogError> {
        self.check_usable()?;
        let began = mark.lsn;
        let mut mark = self.undurable_since(mark);
        if sabotaged!(self.config, SpanLsnRewind) {
            // Broken on purpose: the LSNs a rollover made durable are
            // given out again.
            mark.lsn = began;
        }
        assert_eq!(
            mark.segment, self.active.id,
            "records are discarded within the active segment"
        );
        assert!(
            mark.lsn > self.durable_lsn || sabotaged!(self.config, SpanLsnRewind),
            "durable records cannot be discarded"
        );
        assert!(mark.lsn <= self.next_lsn && mark.offset >= SEGMENT_HEADER_BYTES);
        if mark.offset >= self.active.write_offset {
            self.buffer
                .truncate((mark.offset - self.active.write_offset) as usize);
        } else {
            self.buffer.clear();
            self.active.write_offset = mark.offset;
        }
        self.batch_open = mark.batch_open;
        self.next_lsn = mark.lsn;
        self.written_lsn = self.written_lsn.min(mark.lsn - 1);
        self.stats.discards += 1;
        self.scrub_pending = Some(self.scrub_from());
        self.scrub().await
    }

    /// The first point at or after `mark` that is not durable. It is `mark`
    /// itself unless the log rolled over since (a run of records that
    /// spilled into the next segment). A rollover writes and syncs
    /// everything appended before it starts the next segment, so then the
    /// first record not durable is either the next one to be appended (the
    /// last rollover synced its segment but could not start the next one,
    /// and nothing was appended since) or the first of the active segment
    /// (the last rollover succeeded). The mark returned then opens a new
    /// batch, so nothing is ever added to a batch that was already synced.
    fn undurable_since(&self, mark: LogMark) -> LogMark {
        if self.active.id == mark.segment && mark.lsn > self.durable_lsn {
            return mark;
        }
        if self.next_lsn == self.durable_lsn + 1 {
            assert!(self.buffer.is_empty(), "a rollover writes the buffer");
            return LogMark {
                lsn: self.next_lsn,
                segment: self.active.id,
                offset: self.active.write_offset,
                batch_open: false,
            };
        }
        let active_first_lsn = self.segments.last().map_or(0, |&(_, first)| first);
        assert!(
            self.active.id != mark.segment && active_first_lsn == self.durable_lsn + 1,
            "only a rollover syncs records appended after a discard's mark \
             (mark {mark:?}, active segment {} from LSN {active_first_lsn}, durable {})",
            self.active.id,
            self.durable_lsn
        );
        LogMark {
            lsn: active_first_lsn,
            segment: self.active.id,
            offset: SEGMENT_HEADER_BYTES,
            batch_open: false,
        }
    }

    /// Zeros, and syncs, what a discard left past the records. A full disk
    /// (overwrites allocate on copy-on-write filesystems) leaves the work
    /// pending, for the next write or sync to finish first; it is no
    /// failure of the log.
    async fn scrub(&mut self) -> Result<(), LogError> {
        let Some(from) = self.scrub_pending else {
            return Ok(());
        };
        let to = self.active.dirty_end;
        if to > from {
            self.active.unsynced = true;
            let mut attempts = 0;
            loop {
                attempts += 1;
                match segment::zero_fill(&self.active.file, &self.active.path, from, to).await {
                    Ok(()) => break,
                    Err(err) if err.is_disk_full() => {
                        self.stats.disk_full_errors += 1;
                        if attempts == DISCARD_ATTEMPTS_MAX {
                            return Err(err);
                        }
                    }
                    Err(err) => return Err(self.fail(err)),
                }
            }
            self.sync_active().await?;
            self.active.dirty_end = self.active.write_offset;
        }
        self.scrub_pending = None;
        Ok(())
    }

    /// Writes the buffer (one call) without syncing it.
    async fn flush(&mut self) -> Result<(), LogError> {
        self.scrub().await?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let offset = self.active.write_offset;
        let end = offset + self.buffer.len() as u64;
        assert!(
            end <= self.active.capacity,
            "a record was buffered past the segment end"
        );
        self.active.dirty_end = self.active.dirty_end.max(end);
        self.active.unsynced = true;
        self.stats.writes += 1;
        match self.active.file.write_at(offset, &self.buffer).await {
            Ok(()) => {
                self.active.write_offset = end;
                self.buffer.clear();
                self.written_lsn = self.next_lsn - 1;
                self.prepare_ahead();
                Ok(())
            }
            Err(source) => {
                let err = LogError::io("write records", &self.active.path, source);
                if err.is_disk_full() {
                    // Keep the records: the next sync writes them again at
                    // the same offset, over whatever part of them landed.
                    self.stats.disk_full_errors += 1;
                    Err(err)
                } else {
                    Err(self.fail(err))
                }
            }
        }
    }

    /// Writes and `fdatasync`s every appended record; returns the LSN up to
    /// which the log is now durable.
    pub async fn sync(&mut self) -> Result<u64, LogError> {
        self.reap_removal();
        self.check_usable()?;
        self.flush().await?;
        self.batch_open = false;
        if self.active.unsynced {
            self.sync_active().await?;
        }
        Ok(self.durable_lsn)
    }

    async fn sync_active(&mut self) -> Result<(), LogError> {
        if !sabotaged!(self.config, SkipSync)
            && let Err(source) = self.active.file.sync_data().await
        {
            let err = LogError::io("sync segment", &self.active.path, source);
            return Err(self.fail(err));
        }
        self.active.unsynced = false;
        self.active.synced_end = self.active.write_offset;
        self.stats.syncs += 1;
        if self.active.write_offset > self.config.first_batch_offset() {
            // A batch of the active segment is durable: it names the
            // segment's first LSN, whatever the header says.
            let id = self.active.id;
            self.unproven.retain(|&unproven| unproven != id);
        }
        assert!(
            self.written_lsn >= self.durable_lsn,
            "durable LSN must never move back"
        );
        self.durable_lsn = self.written_lsn;
        Ok(())
    }

    /// Closes the active segment (written, garbage zeroed, synced) and
    /// starts the next one.
    /// Closes the active segment and starts the next one, `segment_bytes`
    /// long (the configured size, except at a close).
    async fn rollover(&mut self, segment_bytes: u64) -> Result<(), LogError> {
        self.flush().await?;
        let unused = self.active.capacity - self.end();
        let (from, to) = (self.scrub_from(), self.active.dirty_end);
        if to > from {
            // A failed write left bytes past the records; the segment is
            // about to become immutable, so they must be zeros or the scan
            // would mistake them for corruption.
            self.active.unsynced = true;
            if let Err(err) =
                segment::zero_fill(&self.active.file, &self.active.path, from, to).await
            {
                return Err(if err.is_disk_full() {
                    err
                } else {
                    self.fail(err)
                });
            }
            self.active.dirty_end = self.active.write_offset;
        }
        if sabotaged!(self.config, RolloverUnsynced) {
            // Broken on purpose: the old segment's last records are left
            // unsynced (and reported durable only by a later sync of the
            // new segment, which does not cover them).
            self.active.unsynced = false;
        } else if self.active.unsynced {
            self.sync_active().await?;
        }
        let id = self.active.id + 1;
        let first_lsn = self.next_lsn;
        // The spare prepared ahead is already installed under its name,
        // with an open header and synced: it becomes the active segment
        // with no write, no sync and no rename here. Its first batch names
        // the first LSN (and the old segment was synced just above, so a
        // record in the new one always follows a durable old one).
        if let Some(spare) = self.spare.take() {
            if spare.id == id && segment_bytes == self.config.segment_bytes {
                spare.hurry.store(true, Ordering::Release);
                match spare.task.await {
                    Ok(file) => {
                        self.stats.rollovers_prepared_ahead += 1;
                        self.start_segment(id, first_lsn, file, segment_bytes, unused);
                        self.unproven.push(id);
                        return Ok(());
                    }
                    Err(failed) if failed.fatal => return Err(self.fail(failed.error)),
                    Err(_) => {}
                }
            } else {
                // A close's short segment takes the spare's name (the
                // rename below replaces it).
                if let Err(failed) = spare.task.await
                    && failed.fatal
                {
                    return Err(self.fail(failed.error));
                }
            }
        }
        let header = SegmentHeader {
            id,
            first_lsn,
            block_bytes: self.config.block_bytes,
        };
        let sync_dir = !sabotaged!(self.config, SkipDirSync);
        // Preparing the new segment touches no segment's name: whatever
        // stops it (no space, no file descriptors, a bad write) fails this
        // commit only, and the next one tries again. So does a rename
        // refused for want of space. A failed sync, or a rename that may
        // have happened, stops the log.
        let prepared = segment::prepare(
            &self.env,
            &self.config.dir,
            header.id,
            &header.encode(),
            segment_bytes,
            segment::Pace::AtOnce,
        )
        .await;
        let created = match prepared {
            Ok(file) => segment::install(&self.env, &self.config.dir, header.id, sync_dir)
                .await
                .map(|()| file),
            Err(failed) => Err(failed),
        };
        let file = match created {
            Ok(file) => file,
            Err(failed) if failed.fatal => return Err(self.fail(failed.error)),
            Err(failed) => {
                if failed.error.is_disk_full() {
                    self.stats.disk_full_errors += 1;
                } else {
                    self.stats.rollover_errors += 1;
                }
                return Err(failed.error);
            }
        };
        self.start_segment(id, first_lsn, file, segment_bytes, unused);
        Ok(())
    }

    /// Makes `file` (segment `id`, created and installed) the active
    /// segment, its first record at LSN `first_lsn`; `unused` bytes of the
    /// old one stay empty.
    fn start_segment(
        &mut self,
        id: u64,
        first_lsn: u64,
        file: E::File,
        segment_bytes: u64,
        unused: u64,
    ) {
        assert!(
            !self.active.unsynced && self.buffer.is_empty(),
            "a segment is synced before records go to the next"
        );
        self.active = Active {
            id,
            path: segment::segment_path(&self.config.dir, id),
            file,
            capacity: segment_bytes,
            write_offset: SEGMENT_HEADER_BYTES,
            dirty_end: SEGMENT_HEADER_BYTES,
            unsynced: false,
            synced_end: SEGMENT_HEADER_BYTES,
        };
        self.batch_open = false;
        self.segments.push((id, first_lsn));
        self.stats.rollovers += 1;
        self.stats.file_bytes += unused + SEGMENT_HEADER_BYTES;
    }

    /// Whether segment `i` of `segments` (not the last) may be removed
    /// once the records below `lsn` are no longer needed: segment `i + 1`
    /// starts at or below `lsn`, and names its first LSN after a crash (a
    /// closed header, or a synced batch).
    fn removable(&self, i: usize, lsn: u64) -> bool {
        let (next, next_first) = self.segments[i + 1];
        // Broken on purpose (tests only): the segment before an unproven
        // one goes like any other.
        let unproven = self.unproven.contains(&next) && !sabotaged!(self.config, UnprovenRemoved);
        next_first <= lsn && !unproven
    }

    /// Waits for a background removal to end, so every segment listed
    /// afterwards stays on disk while the owner's [`Retention`](super::Retention)
    /// keeps them all (a backup's pin).
    pub(crate) async fn settle_removal(&mut self) {
        self.finish_removal().await;
    }

    /// The files a backup copies, right after a successful
    /// [`Log::sync`] with nothing appended since (see [`LogCopy`]).
    pub(crate) fn copy_view(&self) -> LogCopy {
        // Broken on purpose (tests only): no sync came first, and the
        // active segment is cut where the last one ended.
        let cut = if sabotaged!(self.config, BackupWithoutSync) {
            self.active.synced_end
        } else {
            assert!(
                !self.active.unsynced
                    && self.buffer.is_empty()
                    && self.written_lsn == self.durable_lsn,
                "a backup's view of the log is taken right after a sync"
            );
            self.active.write_offset
        };
        debug_assert!(self.removal.is_none(), "no removal runs while it is copied");
        let mut segments: Vec<(u64, Option<u64>)> =
            self.retained.iter().map(|&id| (id, None)).collect();
        for &(id, _) in &self.segments {
            segments.push((id, (id == self.active.id).then_some(cut)));
        }
        segments.sort_unstable();
        LogCopy {
            segments,
            durable_lsn: self.durable_lsn,
        }
    }

    /// Lets the owner keep covered segments for their values (see
    /// [`Retention`](super::Retention)); told at once which are retained.
    pub fn set_retention(&mut self, retention: Arc<dyn super::Retention>) {
        retention.retained(&self.retained);
        self.retention = Some(retention);
    }

    /// The segments kept only for their values, oldest first.
    pub fn retained(&self) -> &[u64] {
        &self.retained
    }

    /// How many of the oldest segments no replay from `lsn` on needs.
    fn covered_count(&self, lsn: u64) -> usize {
        // Segment i may go when segment i+1 starts at or below `lsn`.
        (0..self.segments.len().saturating_sub(1))
            .take_while(|&i| self.removable(i, lsn))
            .count()
    }

    /// The oldest segments no replay from `lsn` on needs: those a removal
    /// before `lsn` takes out of the replay run.
    pub(crate) fn covered(&self, lsn: u64) -> Vec<u64> {
        self.segments[..self.covered_count(lsn)]
            .iter()
            .map(|&(id, _)| id)
            .collect()
    }

    /// Takes the oldest `count` segments out of the replay run: those the
    /// owner keeps for their values join `retained`; they and every
    /// retained segment it no longer keeps are returned, oldest first, to
    /// be removed (its readers told first).
    fn release(&mut self, count: usize) -> Vec<u64> {
        let released = self.segments.drain(..count).map(|(id, _)| id);
        let mut candidates: Vec<u64> = self.retained.drain(..).chain(released).collect();
        candidates.sort_unstable();
        let (kept, removed): (Vec<u64>, Vec<u64>) = candidates.into_iter().partition(|&id| {
            self.retention
                .as_ref()
                .is_some_and(|retention| retention.keeps(id))
        });
        self.retained = kept;
        if let Some(retention) = &self.retention {
            for &id in &removed {
                retention.removing(id);
            }
            retention.retained(&self.retained);
        }
        removed
    }

    /// Removes every segment whose records all have LSNs below `lsn` (never
    /// the active one) and that holds no value the owner keeps, and every
    /// retained one it no longer keeps, oldest first, syncing the directory
    /// after each, so a crash can only bring back a run of the oldest
    /// segments and never leave a hole in the replay run. Returns how many
    /// were removed.
    pub async fn remove_segments_before(&mut self, lsn: u64) -> Result<u64, LogError> {
        // A background removal still running owns the oldest segments.
        self.finish_removal().await;
        self.check_usable()?;
        let count = self.covered_count(lsn);
        let ids = self.release(count);
        let Removed { left, fatal } = remove_segments(&self.env, &self.config.dir, &ids).await;
        let removed = (ids.len() - left.len()) as u64;
        self.stats.segments_removed += removed;
        self.keep_left(left);
        if let Some(error) = fatal {
            return Err(self.fail(error));
        }
        Ok(removed)
    }

    /// Like [`Log::remove_segments_before`], but the unlinks and directory
    /// syncs run in a background task (`wal-remove-segments`), which tells
    /// `done` once it is over, whatever the outcome; the caller goes on at
    /// once. One removal runs at a time: a call while one runs waits for it
    /// first. A failed directory sync fails the log when the task is
    /// reaped (the next sync, removal or close).
    pub(crate) async fn remove_segments_before_in_background(
        &mut self,
        lsn: u64,
        done: futures::channel::oneshot::Sender<()>,
    ) {
        self.finish_removal().await;
        if self.check_usable().is_err() {
            let _ = done.send(());
            return;
        }
        let count = self.covered_count(lsn);
        let ids = self.release(count);
        if ids.is_empty() {
            let _ = done.send(());
            return;
        }
        let (env, dir) = (self.env.clone(), self.config.dir.clone());
        // Counted as the removal starts (a figure the caller may read as
        // soon as `done` is told); what it could not remove is taken back.
        self.stats.segments_removed += ids.len() as u64;
        let task = self.env.spawn("wal-remove-segments", async move {
            let removed = remove_segments(&env, &dir, &ids).await;
            let _ = done.send(());
            removed
        });
        self.removal = Some(Removal { task });
    }

    /// Takes the outcome of a removal that finished, without waiting.
    fn reap_removal(&mut self) {
        let Some(removal) = &mut self.removal else {
            return;
        };
        if let Some(removed) = futures::FutureExt::now_or_never(&mut removal.task) {
            self.removal = None;
            self.take_removed(removed);
        }
    }

    /// Waits for a removal still running and takes its outcome.
    async fn finish_removal(&mut self) {
        if let Some(removal) = self.removal.take() {
            let removed = removal.task.await;
            self.take_removed(removed);
        }
    }

    fn take_removed(&mut self, removed: Removed) {
        self.stats.segments_removed -= removed.left.len() as u64;
        self.keep_left(removed.left);
        if let Some(error) = removed.fatal {
            self.fail(error);
        }
    }

    /// Segments a removal left: no replay needs them, so they wait with the
    /// retained ones for the next removal.
    fn keep_left(&mut self, left: Vec<u64>) {
        if left.is_empty() {
            return;
        }
        self.retained.extend(left);
        self.retained.sort_unstable();
        if let Some(retention) = &self.retention {
            retention.retained(&self.retained);
        }
    }
}

/// Removes segments `ids` (oldest first), syncing the directory after
/// each, so a crash can only bring back a contiguous run of the oldest.
/// Stops at the first failure.
async fn remove_segments<E: Env>(env: &E, dir: &std::path::Path, ids: &[u64]) -> Removed {
    for (index, &id) in ids.iter().enumerate() {
        let path = segment::segment_path(dir, id);
        match env.remove(&path).await {
            Ok(()) => {}
            // An earlier attempt removed it and then failed to sync.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => {
                return Removed {
                    left: ids[index..].to_vec(),
                    fatal: None,
                };
            }
        }
        if let Err(source) = env.sync_dir(dir).await {
            // The unlink happened; whether it lasts is unknown.
            return Removed {
                left: ids[index + 1..].to_vec(),
                fatal: Some(LogError::io(
                    "sync directory after removing a segment",
                    dir,
                    source,
                )),
            };
        }
    }
    Removed {
        left: Vec::new(),
        fatal: None,
    }
}
