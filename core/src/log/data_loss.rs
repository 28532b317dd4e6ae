//! Cutting the log at damage, when an operator accepts the loss
//! (`jubectl repair --accept-data-loss`): what is given up, and the bound
//! that keeps LSNs unique past it.
//!
//! Invariant kept here: **a cut gives up only what follows the damage, and
//! says how much**. The log keeps every record before the first one that
//! does not verify; everything after it (the rest of that segment, and
//! every later segment) is removed. No LSN the removed part held may be
//! handed out again, so the cut reports a bound on them: each record takes
//! at least `FRAME_HEADER_BYTES + 1` bytes, and each LSN skip starts a
//! batch (one per block at most), so the removed bytes bound both.

use std::path::Path;

use crate::env::Env;

use super::LogError;
use super::frame::{self, BATCH_HEADER_BYTES, FRAME_HEADER_BYTES, SKIP_FRAME_BYTES};
use super::scan::{Corruption, ScanOutcome, open_segment, read_segment};
use super::segment::{self, SEGMENT_HEADER_BYTES, SegmentHeader};

/// What a cut at damage gave up (or, before the repair, will give up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLoss {
    /// The damage the log was cut at.
    pub corruption: Corruption,
    /// The segment the log now ends in, and the offset its records end at.
    pub segment: u64,
    /// See `segment`.
    pub offset: u64,
    /// The first LSN given up.
    pub lsn_first: u64,
    /// The last LSN given up that is known to have been durable
    /// (acknowledged, if a sync commit held it): a later batch's claim or
    /// the LSN before a later segment's first. `lsn_first - 1` if nothing
    /// after the damage says.
    pub lsn_durable_through: u64,
    /// At most this many records were given up.
    pub records_max: u64,
    /// At most this many LSN skips were given up.
    pub skips_max: u64,
    /// Later segments removed, oldest first.
    pub segments_removed: Vec<u64>,
}

impl DataLoss {
    /// Acknowledged-durable LSNs known to be given up.
    pub fn durable_lsns_lost(&self) -> u64 {
        (self.lsn_durable_through + 1).saturating_sub(self.lsn_first)
    }

    /// Works out what cutting at `outcome`'s corruption gives up, reading
    /// only the headers and lengths of the segments past it. `None` if
    /// nothing precedes the damage (no segment header verifies before it),
    /// so there is nothing to cut back to.
    pub(super) async fn measure<E: Env>(
        env: &E,
        dir: &Path,
        outcome: &ScanOutcome,
        corruption: Corruption,
    ) -> Result<Option<DataLoss>, LogError> {
        let Some(last) = outcome.segments.last() else {
            return Ok(None);
        };
        let mut lost_bytes = last.file_len - last.end_offset;
        let step = |block: u32| {
            if block > 0 {
                u64::from(block)
            } else {
                SKIP_FRAME_BYTES
            }
        };
        let mut skips_max = lost_bytes / step(last.block_bytes) + 1;
        let mut durable = last
            .durable_past_stop
            .map_or(last.next_lsn() - 1, |(_, lsn)| lsn);
        let later: Vec<u64> = outcome
            .segment_ids
            .iter()
            .copied()
            .filter(|&id| id > last.id)
            .collect();
        for &id in &later {
            let (file, path, len) = open_segment(env, dir, id).await?;
            lost_bytes += len;
            // Bytes past the file's end read as none (no header, no batch).
            let read = |offset: u64, want: u64| {
                let (file, path) = (&file, &path);
                async move {
                    if offset + want > len {
                        return Ok(Vec::new());
                    }
                    read_segment(file, path, offset, want).await
                }
            };
            let header = SegmentHeader::decode(&read(0, SEGMENT_HEADER_BYTES).await?).ok();
            skips_max += len / step(header.map_or(0, |h| h.block_bytes)) + 1;
            // A segment holds a record only once the one before it was
            // synced whole: everything before its first LSN was durable.
            // A closed header names that LSN; an open one (prepared
            // ahead) leaves it to its first batch header, if that verifies.
            let first_lsn = match header.filter(|h| h.id == id) {
                Some(h) if h.is_open() => {
                    let at = h.first_batch_offset();
                    let bytes = read(at, BATCH_HEADER_BYTES).await?;
                    frame::decode_batch_header(id, at, &bytes).map_or(0, |batch| batch.lsn)
                }
                Some(h) => h.first_lsn,
                None => 0,
            };
            durable = durable.max(first_lsn.saturating_sub(1));
        }
        Ok(Some(DataLoss {
            corruption,
            segment: last.id,
            offset: last.end_offset,
            lsn_first: last.next_lsn(),
            lsn_durable_through: durable,
            records_max: lost_bytes / (FRAME_HEADER_BYTES + 1),
            skips_max,
            segments_removed: later,
        }))
    }

    /// Removes the later segments, newest first, syncing the directory
    /// after each: a crash part way leaves a contiguous prefix that a
    /// second repair cuts the same way.
    pub(super) async fn remove_later<E: Env>(&self, env: &E, dir: &Path) -> Result<(), LogError> {
        for &id in self.segments_removed.iter().rev() {
            let path = segment::segment_path(dir, id);
            env.remove(&path)
                .await
                .map_err(|source| LogError::io("remove segment past the damage", &path, source))?;
            env.sync_dir(dir)
                .await
                .map_err(|source| LogError::io("sync log directory", dir, source))?;
        }
        Ok(())
    }
}
