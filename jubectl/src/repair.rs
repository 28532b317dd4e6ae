//! `jubectl repair DIR`: the recovery and repair a database runs at open
//! (SPEC 7.4 and 8), run offline on a stopped database, then a checkpoint
//! and a clean close; prints every repair action it took and their total.
//!
//! The actions are open's own: cut a torn WAL tail (zeroing the bytes
//! after it), remove leftover temporary files, drop transactions the WAL
//! holds no commit for, cut an unreferenced torn value-log tail. Then one
//! value-log GC pass that only removes segments nothing references any
//! more (what the server's GC would do next; it relocates nothing). The
//! checkpoint puts the replayed transactions in the tree, so the next open
//! replays nothing, and overwrites a superblock a crash tore.
//!
//! Invariants kept here: **it never creates a database** (a directory
//! without a MANIFEST is refused before anything is opened, and the engine
//! is told not to create one), and **it never invents data**: damage open
//! refuses to repair is reported with exit 1.

use std::path::Path;

use jubilant_core::db::{Db, DbError, DbOptions, RecoveryReport};
use jubilant_core::env::Fs;
use jubilant_core::log::{LogError, segment_name};
use jubilant_core::store::{CheckpointReport, MANIFEST_FILE};
use jubilant_core::vlog::VlogStats;
use jubilant_io_real::RealEnv;
use serde_json::{Value, json};

use crate::exit;

/// One kind of repair, and how many times it was done.
struct Action {
    kind: &'static str,
    count: u64,
    text: String,
    detail: Value,
}

/// Everything a repair run found and did.
struct Repaired {
    recovery: RecoveryReport,
    checkpoint: CheckpointReport,
    /// Value counters after the checkpoint (which removed the WAL segments
    /// kept for values nothing references any more).
    vlog: VlogStats,
}

fn plural(count: u64, one: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {one}s")
    }
}

pub(crate) async fn run(dir: &Path, accept_data_loss: bool, as_json: bool) -> u8 {
    let env = RealEnv::current();
    match env.list(dir).await {
        Ok(names) if names.iter().any(|name| name == MANIFEST_FILE) => {}
        Ok(_) => {
            eprintln!(
                "jubectl repair: no database in {} (no MANIFEST); refusing to create one",
                dir.display()
            );
            return exit::OPERATING_ERROR;
        }
        Err(error) => {
            eprintln!("jubectl repair: cannot read {}: {error}", dir.display());
            return exit::OPERATING_ERROR;
        }
    }
    let repaired = match repair(env, dir, accept_data_loss).await {
        Ok(repaired) => repaired,
        Err(error) if error.is_corruption() => {
            let hint = match &error {
                DbError::Log(LogError::Corrupt(_)) if !accept_data_loss => {
                    "\n(nothing was changed; `jubectl repair --accept-data-loss` cuts the WAL \
                     there, giving up every commit after the damage)"
                }
                DbError::Log(LogError::Corrupt(_)) | DbError::Vlog(_) | DbError::WalMissing(_) => {
                    "\n(nothing was changed)"
                }
                _ => "",
            };
            eprintln!(
                "jubectl repair: {} cannot be repaired: {error}{hint}",
                dir.display()
            );
            return exit::FINDING;
        }
        Err(error) => {
            eprintln!("jubectl repair: {error}");
            return exit::OPERATING_ERROR;
        }
    };
    let (actions, notes) = actions(&repaired);
    let total: u64 = actions.iter().map(|action| action.count).sum();
    let recovery = &repaired.recovery;
    if as_json {
        let checkpoint = &repaired.checkpoint;
        println!(
            "{}",
            json!({
                "dir": dir.display().to_string(),
                "ok": true,
                "recovered_from_checkpoint_lsn": recovery.checkpoint_lsn,
                "wal_records_read": recovery.records_read,
                "txns_replayed": recovery.txns_replayed,
                "mutations_replayed": recovery.mutations_replayed,
                "lsn_end": recovery.lsn_end,
                "wal_read_retries": recovery.read_retries,
                "actions": actions.iter().map(|action| {
                    let mut value = action.detail.clone();
                    value["kind"] = json!(action.kind);
                    value["count"] = json!(action.count);
                    value["text"] = json!(action.text);
                    value
                }).collect::<Vec<_>>(),
                "actions_count": total,
                "notes": notes,
                "checkpoint": {
                    "wrote": checkpoint.wrote,
                    "generation": checkpoint.generation,
                    "checkpoint_lsn": checkpoint.checkpoint_lsn,
                },
            })
        );
    } else {
        println!(
            "recovered {} from checkpoint LSN {}: read {}, replayed {} ({}); the WAL ends at LSN {}",
            dir.display(),
            recovery.checkpoint_lsn,
            plural(recovery.records_read, "WAL record"),
            plural(recovery.txns_replayed, "committed transaction"),
            plural(recovery.mutations_replayed, "change"),
            recovery.lsn_end
        );
        for action in &actions {
            println!("repair: {}", action.text);
        }
        for note in &notes {
            println!("note: {note}");
        }
        let checkpoint = &repaired.checkpoint;
        if checkpoint.wrote {
            println!(
                "checkpoint: generation {} at LSN {}",
                checkpoint.generation, checkpoint.checkpoint_lsn
            );
        } else {
            println!("checkpoint: nothing new to write");
        }
        if total == 0 {
            println!("nothing to repair");
        } else {
            println!("{}", plural(total, "repair action"));
        }
    }
    exit::OK
}

/// Opens (recovering and repairing), checkpoints (removing the WAL
/// segments kept for values nothing references any more) and closes.
async fn repair(env: RealEnv, dir: &Path, accept_data_loss: bool) -> Result<Repaired, DbError> {
    let options = DbOptions {
        create_if_missing: false,
        accept_data_loss,
        // No background work: only what open repairs, and what is done here.
        sweep_interval_ms: 0,
        vlog_gc_interval_ms: 0,
        ..DbOptions::default()
    };
    let db = Db::open(env, dir, options).await?;
    let recovery = db.stats().recovery;
    let checkpoint = db.checkpoint().await?;
    let vlog = db.stats().vlog;
    db.close().await?;
    Ok(Repaired {
        recovery,
        checkpoint,
        vlog,
    })
}

/// The repair actions taken, and notes on what was found but needed none.
fn actions(repaired: &Repaired) -> (Vec<Action>, Vec<String>) {
    let recovery = &repaired.recovery;
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if let Some((segment, offset, reason)) = &recovery.torn_tail {
        actions.push(Action {
            kind: "wal_torn_tail_cut",
            count: 1,
            text: format!(
                "cut a torn WAL tail at {} offset {offset} ({reason}); zeroed the {} after it",
                segment_name(*segment),
                plural(recovery.tail_bytes_zeroed, "byte")
            ),
            detail: json!({
                "segment": segment_name(*segment),
                "offset": offset,
                "reason": reason,
                "bytes_zeroed": recovery.tail_bytes_zeroed,
            }),
        });
    }
    if let Some(loss) = &recovery.data_loss {
        let removed: Vec<String> = loss
            .segments_removed
            .iter()
            .map(|&id| segment_name(id))
            .collect();
        actions.push(Action {
            kind: "wal_cut_at_damage",
            count: 1,
            text: format!(
                "cut the WAL at {} offset {} ({}), as accepted: gave up every commit from LSN {} \
                 on, {} known durable (acknowledged, if sync){}",
                segment_name(loss.segment),
                loss.offset,
                loss.corruption.detail,
                loss.lsn_first,
                plural(loss.durable_lsns_lost(), "LSN"),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!("; removed {}", removed.join(", "))
                }
            ),
            detail: json!({
                "segment": segment_name(loss.segment),
                "offset": loss.offset,
                "damage": loss.corruption.to_string(),
                "lsn_first_lost": loss.lsn_first,
                "durable_lsns_lost": loss.durable_lsns_lost(),
                "segments_removed": removed,
            }),
        });
    }
    if recovery.temp_files_removed > 0 {
        actions.push(Action {
            kind: "wal_temp_files_removed",
            count: recovery.temp_files_removed,
            text: format!(
                "removed {}",
                plural(recovery.temp_files_removed, "unfinished WAL segment file")
            ),
            detail: json!({}),
        });
    }
    for name in &recovery.store_files_removed {
        actions.push(Action {
            kind: "file_removed",
            count: 1,
            text: format!("removed leftover file {name}"),
            detail: json!({"file": name}),
        });
    }
    if recovery.txns_dropped > 0 {
        actions.push(Action {
            kind: "txns_dropped",
            count: recovery.txns_dropped,
            text: format!(
                "dropped {} the WAL holds no commit for",
                plural(recovery.txns_dropped, "transaction")
            ),
            detail: json!({}),
        });
    }
    if repaired.vlog.gc_segments_removed > 0 {
        actions.push(Action {
            kind: "vlog_segments_removed",
            count: repaired.vlog.gc_segments_removed,
            text: format!(
                "removed {} that no replay and no value needs any more ({})",
                plural(repaired.vlog.gc_segments_removed, "WAL segment"),
                plural(repaired.vlog.gc_bytes_reclaimed, "byte")
            ),
            detail: json!({"bytes": repaired.vlog.gc_bytes_reclaimed}),
        });
    }
    for file in &recovery.superblocks_invalid {
        // A checkpoint of generation g + 1 goes to the file that did not
        // hold generation g: the invalid one.
        if repaired.checkpoint.wrote {
            actions.push(Action {
                kind: "superblock_rewritten",
                count: 1,
                text: format!("{file} held no valid superblock; the checkpoint overwrote it"),
                detail: json!({"file": file}),
            });
        } else {
            notes.push(format!(
                "{file} holds no valid superblock; the next checkpoint that writes overwrites it"
            ));
        }
    }
    if recovery.read_retries > 0 {
        notes.push(format!(
            "{} verified only when read again",
            plural(recovery.read_retries, "WAL read")
        ));
    }
    (actions, notes)
}
