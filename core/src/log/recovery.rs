//! Opening a log after any crash: scan, refuse corruption, repair a torn
//! tail, and hand back a log ready to append.
//!
//! Invariant kept here: when [`Log::open`] returns, everything it reported
//! (every record it visited) is durable, and nothing after the last of those
//! records can ever be read back. The steps, each idempotent so a crash
//! during recovery is followed by an identical recovery:
//!
//! 1. scan every segment, visiting valid records in LSN order;
//! 2. refuse with [`LogError::Corrupt`] if the damage is not a torn tail;
//! 3. remove `.tmp` files of segment creations that never finished;
//! 4. zero every non-zero byte after the last valid record of the last
//!    segment (torn records, stale records, misplaced writes);
//! 5. rewrite the last segment's valid bytes, then `fdatasync` it and sync
//!    the directory, so what was read is durable too.
//!
//! Why rewrite (step 5): after a failed `fdatasync`, Linux may drop the dirty
//! pages' "dirty" state while keeping their contents readable, so a process
//! restarted without a power loss reads records that are not on disk, and a
//! plain `fdatasync` has nothing left to write. Writing the bytes again makes
//! them dirty, so the sync really persists them. Only the last segment can
//! hold such records: a segment is synced successfully before its successor
//! is created, and the log stops at the first failed sync. The cost is one
//! rewrite of at most one segment per open.

use std::path::Path;

use crate::env::{Env, File, OpenMode};

use super::scan::{Stop, scan};
use super::segment::{self, SegmentHeader};
use super::{Log, LogConfig, LogError, RecordPos, Sabotage};

/// Bytes read per call while looking for garbage after the tail.
const TAIL_READ_BYTES: u64 = 256 * 1024;

/// What [`Log::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: u64,
    /// Valid records visited.
    pub records: u64,
    /// The LSN the next record will get.
    pub next_lsn: u64,
    /// Where the records stopped at something that was not a record, and
    /// why: a torn tail that recovery cut off.
    pub torn_tail: Option<(u64, u64, String)>,
    /// Non-zero bytes after the last record that were zeroed.
    pub tail_bytes_zeroed: u64,
    /// Bytes of the last segment written again before the sync (step 5).
    pub bytes_rewritten: u64,
    /// Leftover `.tmp` segment files removed.
    pub temp_files_removed: u64,
    /// Checksum failures that verified on a re-read.
    pub read_retries: u64,
    /// Whether the directory held no log and a first segment was created.
    pub created: bool,
}

impl RecoveryReport {
    /// Whether recovery changed anything on disk (beyond syncing it).
    pub fn repaired(&self) -> bool {
        self.torn_tail.is_some() || self.tail_bytes_zeroed > 0 || self.temp_files_removed > 0
    }
}

impl<E: Env> Log<E> {
    /// Opens (or creates) the log in `config.dir`, recovering from any crash.
    /// Every valid record is handed to `visit` in LSN order before this
    /// returns; on error, whatever was visited must be discarded.
    pub async fn open(
        env: E,
        config: LogConfig,
        visit: impl FnMut(RecordPos, &[u8]),
    ) -> Result<(Log<E>, RecoveryReport), LogError> {
        config.validate()?;
        let dir = config.dir.clone();
        env.create_dir_all(&dir)
            .await
            .map_err(|source| LogError::io("create log directory", &dir, source))?;
        let outcome = scan(&env, &dir, visit).await?;
        if let Some(corruption) = outcome.corruption {
            return Err(LogError::Corrupt(corruption));
        }
        let mut report = RecoveryReport {
            segments: outcome.segments.len() as u64,
            records: outcome.records(),
            next_lsn: outcome.next_lsn(),
            read_retries: outcome.read_retries,
            ..RecoveryReport::default()
        };
        for name in &outcome.temp_files {
            let path = dir.join(name);
            env.remove(&path)
                .await
                .map_err(|source| LogError::io("remove unfinished segment", &path, source))?;
            report.temp_files_removed += 1;
        }
        let segments: Vec<(u64, u64)> = outcome
            .segments
            .iter()
            .map(|s| (s.id, s.first_lsn))
            .collect();
        let log = match outcome.segments.last() {
            Some(last) => {
                let path = segment::segment_path(&dir, last.id);
                let file = env
                    .open(&path, OpenMode::Existing)
                    .await
                    .map_err(|source| LogError::io("open last segment", &path, source))?;
                if let Stop::Invalid { reason } = &last.stop {
                    report.torn_tail = Some((last.id, last.end_offset, reason.clone()));
                }
                if !config.sabotaged(Sabotage::SkipTailZeroing) {
                    report.tail_bytes_zeroed =
                        zero_garbage(&file, &path, last.end_offset, last.file_len).await?;
                }
                if !config.sabotaged(Sabotage::SkipTailRewrite) {
                    report.bytes_rewritten = rewrite(&file, &path, last.end_offset).await?;
                }
                file.sync_data()
                    .await
                    .map_err(|source| LogError::io("sync last segment", &path, source))?;
                let (capacity, write_offset, next_lsn) =
                    (last.file_len, last.end_offset, last.next_lsn());
                Log::from_recovered(
                    env,
                    config,
                    segments,
                    file,
                    capacity,
                    write_offset,
                    next_lsn,
                )
            }
            None => {
                let header = SegmentHeader {
                    id: 1,
                    first_lsn: 1,
                };
                let file = segment::create(&env, &dir, header, config.segment_bytes, true).await?;
                report.created = true;
                let capacity = config.segment_bytes;
                let offset = segment::SEGMENT_HEADER_BYTES;
                Log::from_recovered(env, config, vec![(1, 1)], file, capacity, offset, 1)
            }
        };
        log.env
            .sync_dir(&dir)
            .await
            .map_err(|source| LogError::io("sync log directory", &dir, source))?;
        Ok((log, report))
    }
}

/// Writes `[0, end)` of `file` again, chunk by chunk, with the bytes it
/// already holds, and returns how many that was.
async fn rewrite<F: File>(file: &F, path: &Path, end: u64) -> Result<u64, LogError> {
    let mut offset = 0;
    while offset < end {
        let len = (end - offset).min(TAIL_READ_BYTES);
        let bytes = file
            .read_at(offset, len as usize)
            .await
            .map_err(|source| LogError::io("read segment to rewrite", path, source))?;
        if bytes.len() as u64 != len {
            return Err(LogError::io(
                "read segment to rewrite",
                path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment shrank during recovery",
                ),
            ));
        }
        file.write_at(offset, &bytes)
            .await
            .map_err(|source| LogError::io("rewrite segment", path, source))?;
        offset += len;
    }
    Ok(end)
}

/// Zeroes `[from, last non-zero byte]` of `file` and returns how many bytes
/// that covered.
async fn zero_garbage<F: File>(
    file: &F,
    path: &Path,
    from: u64,
    file_len: u64,
) -> Result<u64, LogError> {
    let mut offset = from;
    let mut garbage_end = from;
    while offset < file_len {
        let len = (file_len - offset).min(TAIL_READ_BYTES);
        let bytes = file
            .read_at(offset, len as usize)
            .await
            .map_err(|source| LogError::io("read segment tail", path, source))?;
        if let Some(last) = bytes.iter().rposition(|&b| b != 0) {
            garbage_end = offset + last as u64 + 1;
        }
        if bytes.is_empty() {
            break;
        }
        offset += bytes.len() as u64;
    }
    if garbage_end > from {
        segment::zero_fill(file, path, from, garbage_end, None).await?;
    }
    Ok(garbage_end - from)
}
