//! `jubectl backup DIR` and `jubectl restore BACKUP DIR` (design 12).
//!
//! A backup asks the server to pin a checkpoint, reads every file of the
//! consistent copy in chunks (each verified by its BLAKE3 hash) into
//! `DIR.tmp`, syncs them, opens the copy as a database (its recovery
//! replays the WAL it holds), validates it, and only then renames
//! `DIR.tmp` to `DIR`: an interrupted backup never leaves a directory that
//! looks whole. A restore installs a backup into a new directory offline
//! and never overwrites a database.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use jubilant_client::{BackupBegun, Client, ClientError};
use jubilant_core::db::{
    BACKUP_CHUNK_BYTES_MAX, BackupWriter, Db, DbOptions, is_backup_file_name, restore,
};
use jubilant_core::env::{File, Fs};
use jubilant_io_real::RealEnv;
use serde_json::json;

use crate::exit;
use crate::online::Target;

/// Why a backup stopped, and the exit code it means.
struct Failed {
    message: String,
    code: u8,
}

impl Failed {
    fn operating(message: impl Into<String>) -> Self {
        Failed {
            message: message.into(),
            code: exit::OPERATING_ERROR,
        }
    }
}

impl From<ClientError> for Failed {
    fn from(error: ClientError) -> Self {
        let code = match error {
            ClientError::Server { .. } => exit::REFUSED,
            _ => exit::OPERATING_ERROR,
        };
        Failed {
            message: error.to_string(),
            code,
        }
    }
}

/// `DIR.tmp`, beside `dir`.
fn temp_dir(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Whether `dir` exists with anything in it.
async fn holds_files(env: &RealEnv, dir: &Path) -> bool {
    env.list(dir).await.is_ok_and(|names| !names.is_empty()) || dir.is_file()
}

/// Runs `jubectl backup` against `addr` into `dir`; returns the exit code.
pub(crate) async fn run_backup(target: &Target, dir: &Path, as_json: bool) -> u8 {
    match backup(target, dir).await {
        Ok(summary) => {
            if as_json {
                println!("{summary}");
            } else {
                println!(
                    "backup of generation {} (every commit through LSN {}) in {}: {} files, {} bytes, {} keys",
                    summary["generation"],
                    summary["end_lsn"],
                    dir.display(),
                    summary["files"],
                    summary["bytes"],
                    summary["keys"]
                );
            }
            exit::OK
        }
        Err(failed) => {
            eprintln!("jubectl backup: {}", failed.message);
            failed.code
        }
    }
}

async fn backup(target: &Target, dir: &Path) -> Result<serde_json::Value, Failed> {
    let env = target.env();
    if holds_files(&env, dir).await {
        return Err(Failed::operating(format!(
            "{} already exists and is not empty; a backup goes into a new directory",
            dir.display()
        )));
    }
    let temp = temp_dir(dir);
    clear_leftover(&env, &temp).await?;
    let client = jubilant_client::connect_with(&env, &target.addr, target.options()).await?;
    let begun = client.backup_begin().await?;
    let copied = copy(&env, &client, &begun, &temp).await;
    // The pin goes whatever happened (best effort: the server also ends an
    // idle backup after its timeout).
    let ended = client.backup_end(begun.backup).await;
    copied?;
    ended?;
    let keys = check_copy(&env, &temp).await?;
    env.rename(&temp, dir).await.map_err(|e| {
        Failed::operating(format!(
            "rename {} to {}: {e}",
            temp.display(),
            dir.display()
        ))
    })?;
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    env.sync_dir(parent)
        .await
        .map_err(|e| Failed::operating(format!("sync {}: {e}", parent.display())))?;
    Ok(json!({
        "dir": dir.display().to_string(),
        "generation": begun.info.generation,
        "checkpoint_lsn": begun.info.checkpoint_lsn,
        "end_lsn": begun.info.end_lsn,
        "files": begun.info.files.len(),
        "bytes": begun.info.files.iter().map(|file| file.data_bytes).sum::<u64>(),
        "keys": keys,
    }))
}

/// Removes an earlier interrupted backup's `DIR.tmp`, if it holds nothing
/// but database files (anything else is not ours to remove).
async fn clear_leftover(env: &RealEnv, temp: &Path) -> Result<(), Failed> {
    let Ok(names) = env.list(temp).await else {
        return Ok(());
    };
    if let Some(stranger) = names.iter().find(|name| !is_backup_file_name(name)) {
        return Err(Failed::operating(format!(
            "{} exists and holds {stranger}, not a backup's file; remove it first",
            temp.display()
        )));
    }
    for name in &names {
        env.remove(&temp.join(name))
            .await
            .map_err(|e| Failed::operating(format!("remove {}: {e}", temp.join(name).display())))?;
    }
    Ok(())
}

/// Copies every file of `begun` into `temp`, with a progress bar on a
/// terminal.
async fn copy(
    env: &RealEnv,
    client: &Client,
    begun: &BackupBegun,
    temp: &Path,
) -> Result<(), Failed> {
    let failed = |error: jubilant_core::db::DbError| Failed::operating(error.to_string());
    let writer = BackupWriter::create(env.clone(), temp)
        .await
        .map_err(failed)?;
    let total: u64 = begun.info.files.iter().map(|file| file.data_bytes).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (index, meta) in begun.info.files.iter().enumerate() {
        let index =
            u32::try_from(index).map_err(|_| Failed::operating("the backup has too many files"))?;
        let file = writer.create_file(meta).await.map_err(failed)?;
        let mut offset = 0;
        while offset < meta.data_bytes {
            let chunk = client
                .backup_read(begun.backup, index, offset, BACKUP_CHUNK_BYTES_MAX as u32)
                .await?;
            if chunk.is_empty() {
                return Err(Failed::operating(format!(
                    "the server sent {} of {offset} bytes and then nothing",
                    meta.name
                )));
            }
            file.write_at(offset, &chunk).await.map_err(|e| {
                Failed::operating(format!("write {}: {e}", temp.join(&meta.name).display()))
            })?;
            offset += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        writer.finish_file(&file, meta).await.map_err(failed)?;
    }
    writer.finish().await.map_err(failed)?;
    bar.finish_and_clear();
    Ok(())
}

/// Opens the copy (its recovery replays the WAL it holds), validates it
/// and closes it; the keys it holds.
async fn check_copy(env: &RealEnv, temp: &Path) -> Result<u64, Failed> {
    let finding = |message: String| Failed {
        message: format!(
            "the copy in {} does not open cleanly, so it was not renamed: {message}",
            temp.display()
        ),
        code: exit::FINDING,
    };
    let options = DbOptions {
        create_if_missing: false,
        ..DbOptions::default()
    };
    let db = Db::open(env.clone(), temp, options)
        .await
        .map_err(|e| finding(e.to_string()))?;
    let report = db.validate().await.map_err(|e| finding(e.to_string()))?;
    if let Some(first) = report.findings.first() {
        return Err(finding(format!("validate: {first:?}")));
    }
    let keys = db.stats().store.keys;
    db.close().await.map_err(|e| finding(e.to_string()))?;
    Ok(keys)
}

/// Runs `jubectl restore BACKUP DIR`; returns the exit code.
pub(crate) async fn run_restore(from: &Path, to: &Path, as_json: bool) -> u8 {
    let env = RealEnv::current();
    match restore(env, from, to).await {
        Ok(restored) => {
            if as_json {
                println!(
                    "{}",
                    json!({
                        "dir": to.display().to_string(),
                        "files": restored.files,
                        "bytes": restored.bytes,
                        "keys": restored.keys,
                    })
                );
            } else {
                println!(
                    "restored {} into {}: {} files, {} bytes, {} keys",
                    from.display(),
                    to.display(),
                    restored.files,
                    restored.bytes,
                    restored.keys
                );
            }
            exit::OK
        }
        Err(error) => {
            eprintln!("jubectl restore: {error}");
            if error.is_corruption() {
                exit::FINDING
            } else {
                exit::OPERATING_ERROR
            }
        }
    }
}
