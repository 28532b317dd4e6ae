//! Opening a log after any crash: scan, refuse corruption, repair a torn
//! tail, and hand back a log ready to append.
//!
//! Invariant kept here: when [`Log::open`] returns, everything it reported
//! (every record it visited) is durable, and nothing after the last of those
//! records can ever be read back. The steps, each idempotent so a crash
//! during recovery is followed by an identical recovery:
//!
//! 1. scan every segment, visiting valid records in LSN order;
//! 2. refuse with [`LogError::Corrupt`] if the damage is not a torn tail
//!    (1 and 2 change nothing: [`LogScan::read`]);
//! 3. remove `.tmp` files of segment creations that never finished, and
//!    the spare (a segment prepared ahead that never received a batch);
//! 4. write the whole last segment again: the exact bytes the scan verified
//!    (header and records), then zeros to the end of the file, erasing torn
//!    records, stale records and misplaced writes, into a new file renamed
//!    over the old one (a torn write may garble whole blocks, so records are
//!    never rewritten where they are);
//! 5. `fdatasync` it and sync the directory, so what was read is durable too.
//!
//! Why write it all (step 4) rather than sync what is there: after a failed
//! `fdatasync`, Linux may forget the pages' dirty state while still serving
//! their contents, so a process restarted without a power loss reads records
//! (or zeros) that are not on disk, and a plain `fdatasync` has nothing left
//! to write. Writing the bytes makes them dirty again, so the sync really
//! persists them; writing the scan's verified copy (not a second read) means
//! a bad read cannot be made permanent; writing every tail byte (not only
//! those that read as non-zero) means a stale record the cache hides cannot
//! survive. Only the last segment can hold such bytes: a segment is synced
//! successfully before its successor receives a record, and the log stops
//! at the first failed sync. The cost is one write of at most one segment per open.

use std::path::Path;

use crate::env::{Env, File, OpenMode};

use super::data_loss::DataLoss;
use super::scan::{Corruption, Misjudge, Stop, scan_judging};
use super::segment::{self, SegmentHeader};
use super::{Log, LogConfig, LogError, RecordPos};
use crate::sabotage::sabotaged;

/// Bytes written per call when rewriting the last segment.
const REWRITE_CHUNK_BYTES: u64 = 256 * 1024;

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
    /// Bytes after the last record written with zeros (the whole tail,
    /// whatever it held: the page cache cannot be trusted to show it).
    pub tail_bytes_zeroed: u64,
    /// Verified bytes of the last segment written again (step 4).
    pub bytes_rewritten: u64,
    /// Leftover `.tmp` segment files removed.
    pub temp_files_removed: u64,
    /// The spare removed: a segment prepared ahead (open header) that
    /// never received a batch, after the last that did.
    pub spare_removed: Option<u64>,
    /// Checksum failures that verified on a re-read.
    pub read_retries: u64,
    /// Whether the directory held no log and a first segment was created.
    pub created: bool,
    /// Damage the log was cut at, with what that gave up
    /// ([`OnDamage::Cut`] only).
    pub data_loss: Option<DataLoss>,
}

/// What [`LogScan::read_with`] does with damage that is not a torn tail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnDamage {
    /// Refuse the open with [`LogError::Corrupt`], changing nothing.
    #[default]
    Refuse,
    /// Cut the log there, giving up everything after it (an operator's
    /// choice: `jubectl repair --accept-data-loss`). The repair removes
    /// the later segments and reports [`DataLoss`].
    Cut,
}

/// A log as found at open: scanned and checked, and nothing changed yet.
/// Every check that can refuse has run; [`LogScan::repair`] then makes it
/// a log ready to append (steps 3 to 5). The database replays what the
/// scan read, in memory, before it lets the repair write.
pub struct LogScan<E: Env> {
    env: E,
    config: LogConfig,
    outcome: super::scan::ScanOutcome,
    loss: Option<DataLoss>,
}

impl<E: Env> LogScan<E> {
    /// Scans the log in `config.dir` (created if missing) and hands every
    /// valid record to `visit` in LSN order; refuses damage that is not a
    /// torn tail. Changes nothing in an existing log.
    pub async fn read(
        env: E,
        config: LogConfig,
        visit: impl FnMut(RecordPos, &[u8]),
    ) -> Result<Self, LogError> {
        Self::read_with(env, config, visit, OnDamage::Refuse).await
    }

    /// [`LogScan::read`], with damage that is not a torn tail refused or
    /// cut at (`on_damage`). Damage before the first record is refused
    /// either way: there is nothing to cut back to.
    pub async fn read_with(
        env: E,
        config: LogConfig,
        visit: impl FnMut(RecordPos, &[u8]),
        on_damage: OnDamage,
    ) -> Result<Self, LogError> {
        config.validate()?;
        let dir = config.dir.clone();
        let created = if sabotaged!(config, SkipParentDirSync) {
            env.create_dir_all(&dir).await
        } else {
            crate::env::create_dir_durably(&env, &dir).await
        };
        created.map_err(|source| LogError::io("create log directory", &dir, source))?;
        let mut outcome = scan_judging(
            &env,
            &dir,
            config.replay_from_lsn,
            visit,
            Misjudge {
                damage_as_torn_tail: sabotaged!(config, DamageAsTornTail),
                spare_as_segment: sabotaged!(config, SpareTakenForSegment),
                skip_replay_segment: sabotaged!(config, ScanSkipsReplaySegment),
            },
            on_damage == OnDamage::Cut,
        )
        .await?;
        let loss = match (outcome.corruption.take(), on_damage) {
            (None, _) => None,
            (Some(corruption), OnDamage::Refuse) => return Err(LogError::Corrupt(corruption)),
            (Some(corruption), OnDamage::Cut) => {
                match DataLoss::measure(&env, &dir, &outcome, corruption.clone()).await? {
                    Some(loss) => Some(loss),
                    None => {
                        return Err(LogError::Corrupt(Corruption {
                            detail: format!(
                                "{}; no record precedes it, so there is nothing to cut back to",
                                corruption.detail
                            ),
                            ..corruption
                        }));
                    }
                }
            }
        };
        Ok(LogScan {
            env,
            config,
            outcome,
            loss,
        })
    }

    /// The LSN the next record will get: past every record and LSN skip
    /// read.
    pub fn next_lsn(&self) -> u64 {
        self.outcome.next_lsn()
    }

    /// What cutting at damage gives up ([`OnDamage::Cut`]); the repair does
    /// the cut.
    pub fn data_loss(&self) -> Option<&DataLoss> {
        self.loss.as_ref()
    }

    /// The LSN the oldest segment starts at (1 for an empty log).
    pub fn first_lsn(&self) -> u64 {
        self.outcome.segments.first().map_or(1, |s| s.first_lsn)
    }

    /// Repairs what a crash left (steps 3 to 5 of the module: leftover
    /// temporary files, the last segment written again, its torn tail
    /// zeroed, all synced) and returns the log, ready to append.
    pub async fn repair(self) -> Result<(Log<E>, RecoveryReport), LogError> {
        let LogScan {
            env,
            config,
            outcome,
            loss,
        } = self;
        let dir = config.dir.clone();
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
        if let Some(id) = outcome.spare {
            // Newest of all: removing it first keeps the segments a
            // contiguous run whatever a crash part way leaves.
            let path = segment::segment_path(&dir, id);
            env.remove(&path)
                .await
                .map_err(|source| LogError::io("remove spare segment", &path, source))?;
            report.spare_removed = Some(id);
        }
        if let Some(loss) = &loss {
            super::loss_history::record(&env, &dir, loss).await?;
            loss.remove_later(&env, &dir).await?;
        }
        let segments: Vec<(u64, u64)> = outcome
            .segments
            .iter()
            .map(|s| (s.id, s.first_lsn))
            .collect();
        // An open-headered segment with no batch names its first LSN only
        // through the one before it, which must then stay.
        let unproven: Vec<u64> = outcome
            .segments
            .iter()
            .filter(|s| s.open_header && s.batches == 0)
            .map(|s| s.id)
            .collect();
        let log = match outcome.segments.last() {
            Some(last) => {
                let path = segment::segment_path(&dir, last.id);
                if let (Stop::Invalid { reason }, None) = (&last.stop, &loss) {
                    report.torn_tail = Some((last.id, last.end_offset, reason.clone()));
                }
                let image = &outcome.last_segment_image;
                assert_eq!(
                    image.len() as u64,
                    last.end_offset,
                    "the scan keeps the image of the segment the log ends in"
                );
                let (skip_rewrite, skip_zeroing) = (
                    sabotaged!(config, SkipTailRewrite),
                    sabotaged!(config, SkipTailZeroing),
                );
                let file = if skip_rewrite || skip_zeroing {
                    // Broken on purpose: the segment is patched in place.
                    let file = env
                        .open(&path, OpenMode::Existing)
                        .await
                        .map_err(|source| LogError::io("open last segment", &path, source))?;
                    if !skip_rewrite {
                        write_chunks(&file, &path, image).await?;
                        report.bytes_rewritten = image.len() as u64;
                    }
                    if !skip_zeroing {
                        segment::zero_fill(&file, &path, last.end_offset, last.file_len).await?;
                        report.tail_bytes_zeroed = last.file_len - last.end_offset;
                    }
                    file.sync_data()
                        .await
                        .map_err(|source| LogError::io("sync last segment", &path, source))?;
                    file
                } else {
                    // Step 4 into a new file renamed over the old one, so a
                    // torn write during the rewrite cannot damage records
                    // it was rewriting.
                    // A segment a close cut short (2.5) is written out
                    // to the configured size again, so commits' syncs
                    // never change its size.
                    let len = last.file_len.max(config.segment_bytes);
                    let file = segment::create_with(&env, &dir, last.id, image, len, true).await?;
                    report.bytes_rewritten = image.len() as u64;
                    report.tail_bytes_zeroed = len - last.end_offset;
                    file
                };
                let capacity = if skip_rewrite || skip_zeroing {
                    last.file_len
                } else {
                    last.file_len.max(config.segment_bytes)
                };
                let (write_offset, next_lsn) = (last.end_offset, last.next_lsn());
                Log::from_recovered(
                    env,
                    config,
                    segments,
                    outcome.retained.clone(),
                    unproven,
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
                    block_bytes: config.block_bytes,
                };
                let file = segment::create(&env, &dir, header, config.segment_bytes, true).await?;
                report.created = true;
                let capacity = config.segment_bytes;
                let offset = segment::SEGMENT_HEADER_BYTES;
                Log::from_recovered(
                    env,
                    config,
                    vec![(1, 1)],
                    Vec::new(),
                    Vec::new(),
                    file,
                    capacity,
                    offset,
                    1,
                )
            }
        };
        log.env
            .sync_dir(&dir)
            .await
            .map_err(|source| LogError::io("sync log directory", &dir, source))?;
        report.data_loss = loss;
        Ok((log, report))
    }
}

impl<E: Env> Log<E> {
    /// Opens (or creates) the log in `config.dir`, recovering from any crash
    /// ([`LogScan::read`], then [`LogScan::repair`]). Every valid record is
    /// handed to `visit` in LSN order before this returns; on error,
    /// whatever was visited must be discarded.
    pub async fn open(
        env: E,
        config: LogConfig,
        visit: impl FnMut(RecordPos, &[u8]),
    ) -> Result<(Log<E>, RecoveryReport), LogError> {
        LogScan::read(env, config, visit).await?.repair().await
    }
}

/// Writes `bytes` at offset 0 of `file`, in bounded chunks.
async fn write_chunks<F: File>(file: &F, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let mut offset = 0;
    for chunk in bytes.chunks(REWRITE_CHUNK_BYTES as usize) {
        file.write_at(offset, chunk)
            .await
            .map_err(|source| LogError::io("rewrite last segment", path, source))?;
        offset += chunk.len() as u64;
    }
    Ok(())
}
