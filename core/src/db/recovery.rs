//! Recovery on open (SPEC 7.4): the tree as of the durable checkpoint, then
//! every transaction the WAL holds a valid `Commit` for after it, redone in
//! LSN order. Redo only, no undo: an uncommitted transaction never reached
//! the tree's durable pages (the write-ahead rule) and is simply dropped.
//!
//! Idempotent: replay changes only the tree in memory, on top of the
//! checkpoint, and the log's own repair (torn tail cut and zeroed) gives
//! the same log every time; so a crash during recovery is followed by the
//! same recovery.

use std::collections::BTreeMap;
use std::path::Path;

use crate::log::RecordPos;
use crate::record::{Mutation, StoredValue};
use crate::wal::{WalRecord, pointer_to};

use crate::error::DbError;

/// What recovery found and did; every repair is counted here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the database was created by this open.
    pub created: bool,
    /// The checkpoint LSN of the superblock recovery started from.
    pub checkpoint_lsn: u64,
    /// Valid WAL records read (all segments).
    pub records_read: u64,
    /// Committed transactions redone after the checkpoint.
    pub txns_replayed: u64,
    /// Changes those transactions made.
    pub mutations_replayed: u64,
    /// Transactions with records but no `Commit` (or with an `Abort`),
    /// dropped.
    pub txns_dropped: u64,
    /// The LSN of the last record in the WAL after repair (or the
    /// checkpoint's, if it is later): everything up to it is durable, and
    /// the database's state is the one as of this LSN. Commits the previous
    /// life logged after it were lost.
    pub lsn_end: u64,
    /// Repair: where a torn WAL tail was cut off (segment, offset, why).
    pub torn_tail: Option<(u64, u64, String)>,
    /// Repair: bytes after the last valid WAL record zeroed.
    pub tail_bytes_zeroed: u64,
    /// Repair: leftover `.tmp` WAL segments the log removed, and the spare
    /// (a segment prepared ahead that never received a record).
    pub temp_files_removed: u64,
    /// Repair: files the tree store removed at open, by name: `.tmp` files
    /// of an interrupted rename (WAL segment ones included: the store opens
    /// first), or the files of an unfinished creation.
    pub store_files_removed: Vec<String>,
    /// Superblock files that held no valid superblock (a checkpoint torn by
    /// a crash, or damage); recovery started from the other, and the next
    /// checkpoint that writes overwrites them.
    pub superblocks_invalid: Vec<&'static str>,
    /// Repair: WAL reads that failed their checksum and verified on a retry.
    pub read_retries: u64,
    /// Repair, only with [`DbOptions::accept_data_loss`](super::DbOptions::accept_data_loss):
    /// damage the WAL was cut at, and the commits given up with it.
    pub data_loss: Option<crate::log::DataLoss>,
    /// Every cut an operator ever accepted on this database (this open's
    /// included), from its `DATA_LOSS` file.
    pub loss_history: crate::log::loss_history::LossHistory,
    /// The TTL clock restarts no earlier than this (Unix ms): the newest
    /// reading the durable superblock or a replayed commit recorded, so a
    /// wall clock set back across a restart cannot revive what expired
    /// (SPEC 3).
    pub ttl_floor_ms: u64,
    /// The first LSN this open hands out: past every LSN the previous life
    /// may have given a commit a crash then lost, so no revision is ever
    /// reused (SPEC 1).
    pub lsn_restart: u64,
}

impl RecoveryReport {
    /// How many repair actions recovery took (torn tail cut, WAL cut at
    /// accepted damage, temporary files removed by the log or the store,
    /// incomplete transactions dropped).
    pub fn repair_actions(&self) -> u64 {
        u64::from(self.torn_tail.is_some())
            + u64::from(self.data_loss.is_some())
            + self.temp_files_removed
            + self.store_files_removed.len() as u64
            + self.txns_dropped
    }

    /// Writes tracing lines for what recovery repaired.
    pub(crate) fn log(&self, dir: &Path) {
        let report = self;
        if let Some((segment, offset, reason)) = &report.torn_tail {
            tracing::warn!(
                dir = %dir.display(),
                segment,
                offset,
                reason = reason.as_str(),
                bytes_zeroed = report.tail_bytes_zeroed,
                "repair: cut a torn WAL tail"
            );
        }
        if let Some(loss) = &report.data_loss {
            tracing::error!(
                dir = %dir.display(),
                damage = %loss.corruption,
                lsn_first_lost = loss.lsn_first,
                durable_lsns_lost = loss.durable_lsns_lost(),
                segments_removed = ?loss.segments_removed,
                "repair: cut the WAL at damage, as accepted; every commit after it is lost"
            );
        }
        if report.temp_files_removed > 0 {
            tracing::warn!(
                dir = %dir.display(),
                files = report.temp_files_removed,
                "repair: removed unfinished WAL segment files"
            );
        }
        if !report.store_files_removed.is_empty() {
            tracing::warn!(
                dir = %dir.display(),
                files = ?report.store_files_removed,
                "repair: removed leftover files of an interrupted rename or creation"
            );
        }
        if !report.superblocks_invalid.is_empty() {
            tracing::warn!(
                dir = %dir.display(),
                files = ?report.superblocks_invalid,
                "a superblock file holds no valid superblock; opened from the other"
            );
        }
        if report.txns_dropped > 0 {
            tracing::info!(
                dir = %dir.display(),
                txns = report.txns_dropped,
                "repair: dropped transactions the WAL holds no commit for"
            );
        }
        tracing::info!(
            dir = %dir.display(),
            checkpoint_lsn = report.checkpoint_lsn,
            txns_replayed = report.txns_replayed,
            lsn_end = report.lsn_end,
            "recovered"
        );
    }
}

/// Collects the committed transactions after the checkpoint while the log
/// is scanned.
pub(crate) struct Replay {
    checkpoint_lsn: u64,
    /// Values longer than this stay in their record, and the replayed
    /// change points to it, as the writer's did (design 11.2).
    inline_max: usize,
    /// Transactions begun but not (yet) committed: their changes, in
    /// order, a `Put` at revision 0 unless its record keeps one.
    pending: BTreeMap<u64, Vec<Mutation>>,
    /// Committed transactions: commit LSN and changes, in LSN order.
    pub(crate) committed: Vec<(u64, Vec<Mutation>)>,
    pub(crate) error: Option<DbError>,
    pub(crate) records_read: u64,
    /// The newest TTL-clock reading a replayed commit recorded.
    pub(crate) now_ms_max: u64,
    /// The LSN of the last record the scan visited (0: none).
    pub(crate) lsn_last: u64,
}

impl Replay {
    pub(crate) fn new(checkpoint_lsn: u64, inline_max: usize) -> Self {
        Replay {
            checkpoint_lsn,
            inline_max,
            pending: BTreeMap::new(),
            committed: Vec::new(),
            error: None,
            records_read: 0,
            now_ms_max: 0,
            lsn_last: 0,
        }
    }

    /// Takes one valid record from the scan (in LSN order).
    pub(crate) fn visit(&mut self, pos: RecordPos, payload: &[u8]) {
        self.records_read += 1;
        self.lsn_last = self.lsn_last.max(pos.lsn);
        // The checkpoint holds every transaction committed at or below its
        // LSN, and the writer logs a transaction's records back to back, so
        // nothing at or below it is needed.
        if self.error.is_some() || pos.lsn <= self.checkpoint_lsn {
            return;
        }
        let record = match WalRecord::decode(payload) {
            Ok(record) => record,
            Err(error) => {
                self.error = Some(DbError::Record {
                    lsn: pos.lsn,
                    error,
                });
                return;
            }
        };
        let unknown = |txn: u64| DbError::Record {
            lsn: pos.lsn,
            error: crate::wal::WalError::Malformed(if txn <= pos.lsn {
                "a change or commit of a transaction that never began after the checkpoint"
            } else {
                "a transaction id from the future"
            }),
        };
        match record {
            WalRecord::Begin { txn } => {
                if txn != pos.lsn {
                    self.error = Some(DbError::Record {
                        lsn: pos.lsn,
                        error: crate::wal::WalError::Malformed(
                            "a Begin whose transaction id is not its LSN",
                        ),
                    });
                    return;
                }
                self.pending.insert(txn, Vec::new());
            }
            WalRecord::Upsert { .. } | WalRecord::Tombstone { .. } => {
                let Some((txn, mut mutation)) = record.into_mutation(0) else {
                    unreachable!("an upsert or tombstone is a change");
                };
                if let Mutation::Put { record, .. } = &mut mutation
                    && matches!(&record.value, StoredValue::Inline(bytes) if bytes.len() > self.inline_max)
                {
                    record.value = StoredValue::Vlog(pointer_to(pos, payload.len()));
                }
                match self.pending.get_mut(&txn) {
                    Some(changes) => changes.push(mutation),
                    None => self.error = Some(unknown(txn)),
                }
            }
            WalRecord::Commit { txn, now_ms } => match self.pending.remove(&txn) {
                Some(mut mutations) => {
                    crate::wal::set_revisions(&mut mutations, pos.lsn, true);
                    self.committed.push((pos.lsn, mutations));
                    self.now_ms_max = self.now_ms_max.max(now_ms);
                }
                None => self.error = Some(unknown(txn)),
            },
            WalRecord::Abort { txn } => {
                self.pending.remove(&txn);
            }
            WalRecord::Checkpoint { .. } => {}
        }
    }

    /// Transactions that began but never committed.
    pub(crate) fn dropped(&self) -> u64 {
        self.pending.len() as u64
    }
}
