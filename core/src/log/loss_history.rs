//! The `DATA_LOSS` file: one record per cut an operator accepted
//! (`jubectl repair --accept-data-loss`), so INFO and `validate` can say,
//! for the life of the database, that acknowledged data was given up.
//!
//! Invariant kept here: **a cut is recorded, durably, before it removes
//! anything**. A crash between the two leaves a record of a cut that did
//! not happen yet (the next accepted repair cuts and records again), never
//! a cut without a record.
//!
//! Record layout (56 bytes, little-endian, appended back to back):
//!
//! | bytes    | field                                              |
//! |----------|----------------------------------------------------|
//! | `0..4`   | magic `JDLR`                                       |
//! | `4..12`  | wall-clock time of the cut, Unix milliseconds      |
//! | `12..20` | first LSN given up                                 |
//! | `20..28` | last LSN given up that was known durable           |
//! | `28..36` | at most this many records given up                 |
//! | `36..44` | segment the log was cut in                         |
//! | `44..52` | offset in that segment the records now end at      |
//! | `52..56` | CRC32 of bytes `0..52`                             |
//!
//! A record that does not verify is counted, not trusted: a torn last
//! record is a cut whose removal had not begun.

use std::io;
use std::path::Path;

use crate::env::{Env, File, OpenMode};

use super::{DataLoss, LogError};

/// The file's name in the database directory.
pub const DATA_LOSS_FILE: &str = "DATA_LOSS";
const MAGIC: &[u8; 4] = b"JDLR";
const RECORD_BYTES: usize = 56;
/// The file is read whole; far more cuts than any database survives.
const FILE_BYTES_MAX: u64 = 1024 * RECORD_BYTES as u64;

/// Every accepted cut of a database, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossHistory {
    /// Cuts recorded.
    pub cuts: u64,
    /// LSNs known durable (acknowledged, for `sync` commits) given up, over
    /// every cut.
    pub durable_lsns_lost: u64,
    /// At most this many records given up, over every cut.
    pub records_max: u64,
    /// When the last cut was made (Unix milliseconds; 0: never).
    pub last_cut_unix_ms: u64,
    /// Records that did not verify (a torn last one, or damage).
    pub unreadable_records: u64,
}

fn encode(loss: &DataLoss, now_ms: u64) -> [u8; RECORD_BYTES] {
    let mut out = [0u8; RECORD_BYTES];
    out[0..4].copy_from_slice(MAGIC);
    let fields = [
        now_ms,
        loss.lsn_first,
        loss.lsn_durable_through,
        loss.records_max,
        loss.segment,
        loss.offset,
    ];
    for (index, field) in fields.iter().enumerate() {
        let at = 4 + index * 8;
        out[at..at + 8].copy_from_slice(&field.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[0..52]);
    out[52..56].copy_from_slice(&crc.to_le_bytes());
    out
}

fn field(record: &[u8], index: usize) -> u64 {
    let at = 4 + index * 8;
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&record[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Sums the records of a `DATA_LOSS` file's bytes.
fn summarize(bytes: &[u8]) -> LossHistory {
    let mut history = LossHistory::default();
    for record in bytes.chunks(RECORD_BYTES) {
        let valid = record.len() == RECORD_BYTES
            && &record[0..4] == MAGIC
            && crc32fast::hash(&record[0..52]).to_le_bytes() == record[52..56];
        if !valid {
            history.unreadable_records += 1;
            continue;
        }
        let (lsn_first, durable_through) = (field(record, 1), field(record, 2));
        history.cuts += 1;
        history.durable_lsns_lost += (durable_through + 1).saturating_sub(lsn_first);
        history.records_max += field(record, 3);
        history.last_cut_unix_ms = history.last_cut_unix_ms.max(field(record, 0));
    }
    history
}

/// Appends a record of `loss` to `dir`'s `DATA_LOSS` file and makes it
/// durable (the file, and its name if new).
pub(super) async fn record<E: Env>(env: &E, dir: &Path, loss: &DataLoss) -> Result<(), LogError> {
    let path = dir.join(DATA_LOSS_FILE);
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| LogError::io(op, &path, source)
    };
    let (file, created) = match env.open(&path, OpenMode::Existing).await {
        Ok(file) => (file, false),
        Err(error) if error.kind() == io::ErrorKind::NotFound => (
            env.open(&path, OpenMode::CreateNew)
                .await
                .map_err(io("create"))?,
            true,
        ),
        Err(error) => return Err(io("open")(error)),
    };
    let len = file.len().await.map_err(io("length"))?;
    // A torn record at the end stays where it is, counted as unreadable:
    // the new one goes after it, whole.
    file.write_at(len, &encode(loss, env.now_wall_ms()))
        .await
        .map_err(io("write"))?;
    file.sync_data().await.map_err(io("sync"))?;
    if created {
        env.sync_dir(dir).await.map_err(io("sync directory"))?;
    }
    Ok(())
}

/// The cuts recorded in `dir` (none if the file does not exist).
pub async fn read<E: Env>(env: &E, dir: &Path) -> Result<LossHistory, LogError> {
    let path = dir.join(DATA_LOSS_FILE);
    let file = match env.open(&path, OpenMode::Existing).await {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(LossHistory::default());
        }
        Err(error) => return Err(LogError::io("open", &path, error)),
    };
    let len = file
        .len()
        .await
        .map_err(|source| LogError::io("length", &path, source))?;
    let bytes = crate::env::read_salvaging(&file, 0, len.min(FILE_BYTES_MAX) as usize)
        .await
        .map_err(|source| LogError::io("read", &path, source))?
        .bytes;
    let mut history = summarize(&bytes);
    if len > FILE_BYTES_MAX {
        history.unreadable_records += (len - FILE_BYTES_MAX).div_ceil(RECORD_BYTES as u64);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Corruption;

    fn loss(lsn_first: u64, lsn_durable_through: u64) -> DataLoss {
        DataLoss {
            corruption: Corruption {
                path: "wal-000001.log".into(),
                offset: 4196,
                detail: "test".to_owned(),
            },
            segment: 1,
            offset: 4096,
            lsn_first,
            lsn_durable_through,
            records_max: 9,
            skips_max: 1,
            segments_removed: Vec::new(),
        }
    }

    #[test]
    fn records_sum_and_a_torn_one_is_counted_not_trusted() {
        let mut bytes = encode(&loss(10, 14), 1_000).to_vec();
        bytes.extend_from_slice(&encode(&loss(30, 29), 2_000));
        let torn = encode(&loss(50, 60), 3_000);
        bytes.extend_from_slice(&torn[..20]);
        let history = summarize(&bytes);
        assert_eq!(
            history,
            LossHistory {
                cuts: 2,
                durable_lsns_lost: 5,
                records_max: 18,
                last_cut_unix_ms: 2_000,
                unreadable_records: 1,
            }
        );
        let mut flipped = encode(&loss(10, 14), 1_000);
        flipped[13] ^= 1;
        assert_eq!(summarize(&flipped).cuts, 0);
        assert_eq!(summarize(&flipped).unreadable_records, 1);
    }
}
