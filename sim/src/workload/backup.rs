//! The backup workload's backup taker (design 12.4): the db workload's
//! committers, checkpointer and faults, plus a task that takes online
//! backups of the running database into another directory of the same
//! disk, copying in random chunks with pauses between them so commits,
//! checkpoints (which reuse freed pages) and value-log GC run mid-copy.
//! Each finished copy is opened as a database of its own, validated, and
//! read; the model then judges it (`DbModel::check_backup`):
//! - `backup_complete`: every transaction acknowledged before the backup
//!   began is in it, and what it lost is a suffix past its WAL's end;
//! - `no_phantom` and `state_matches_model`: it holds what a prefix of
//!   each committer's transactions wrote, nothing else;
//! - `backup_restores`: it opens and validates, unless the world damaged
//!   stored data.
//!
//! A crash mid-backup ends the task with the life; the source's recovery
//! is judged as in the db workload (a backup must never hurt its source).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jubilant_core::db::{BACKUP_CHUNK_BYTES_MAX, BackupWriter, Db, DbError, DbOptions};
use jubilant_core::env::{Clock, Fs};
use jubilant_core::mutex::lock;
use jubilant_io_sim::{SimEnv, SimRng};

use super::db::{Model, read_committers};
use super::lives::{excused, think};

/// Where copies go (emptied before each).
fn backup_dir() -> PathBuf {
    PathBuf::from("/data/backup")
}

/// Takes backups until the life ends or a close is asked for.
pub(super) async fn backups(
    env: SimEnv,
    db: Arc<Db<SimEnv>>,
    model: Model,
    options: DbOptions,
    mut rng: SimRng,
    pause_us_max: u64,
) {
    loop {
        think(&env, &mut rng, pause_us_max.saturating_mul(20)).await;
        if lock(&model).stops_committers() {
            return;
        }
        if !backup_once(&env, &db, &model, &options, &mut rng, pause_us_max).await {
            return;
        }
    }
}

/// One backup, copied and checked; `false` when the task should stop.
async fn backup_once(
    env: &SimEnv,
    db: &Arc<Db<SimEnv>>,
    model: &Model,
    options: &DbOptions,
    rng: &mut SimRng,
    pause_us_max: u64,
) -> bool {
    if !empty(env, &backup_dir()).await {
        return true;
    }
    let began_ns = env.now_mono().as_nanos();
    let backup = match db.backup().await {
        Ok(backup) => backup,
        Err(error) => {
            env.trace(format_args!("backup refused: {error}"));
            lock(model).verdict.stat("backups_refused", 1);
            // A failed source stops the life; a full disk may pass.
            return db.failure().is_none();
        }
    };
    env.trace(format_args!(
        "backup of generation {} (checkpoint LSN {}, end LSN {}), {} files",
        backup.generation(),
        backup.checkpoint_lsn(),
        backup.end_lsn(),
        backup.files().len()
    ));
    let copied = async {
        let writer = BackupWriter::create(env.clone(), backup_dir()).await?;
        for (index, meta) in backup.files().iter().enumerate() {
            let file = writer.create_file(meta).await?;
            let mut offset = 0;
            while offset < meta.data_bytes {
                let len = rng.between(512, BACKUP_CHUNK_BYTES_MAX as u64) as usize;
                let chunk = backup.read(index, offset, len).await?;
                jubilant_core::env::File::write_at(&file, offset, &chunk)
                    .await
                    .map_err(|e| DbError::Backup(e.to_string()))?;
                offset += chunk.len() as u64;
                think(env, rng, pause_us_max).await;
                if lock(model).stops_committers() {
                    return Err(DbError::Closed);
                }
            }
            writer.finish_file(&file, meta).await?;
        }
        writer.finish().await
    }
    .await;
    drop(backup);
    if let Err(error) = copied {
        env.trace(format_args!("backup copy failed: {error}"));
        lock(model).verdict.stat("backups_failed", 1);
        return !matches!(error, DbError::Closed);
    }
    check(env, model, options, began_ns).await
}

/// Opens the copy, validates and reads it, and has the model judge it;
/// `false` when the task should stop.
async fn check(env: &SimEnv, model: &Model, options: &DbOptions, began_ns: u64) -> bool {
    let copy_options = DbOptions {
        create_if_missing: false,
        ..options.clone()
    };
    let copy = match Db::open(env.clone(), backup_dir(), copy_options).await {
        Ok(copy) => copy,
        Err(error) => {
            env.trace(format_args!("backup open failed: {error}"));
            let mut m = lock(model);
            if error.is_corruption() {
                m.corrupt_as(
                    "backup_restores",
                    format!("backup open: {error}"),
                    excused(env),
                );
            } else {
                m.verdict.stat("backup_checks_skipped", 1);
            }
            return !m.verdict.poisoned;
        }
    };
    match copy.validate().await {
        Ok(report) if report.is_ok() => lock(model).verdict.check("backup_restores", 1),
        Ok(report) => {
            let detail = format!("backup validate: {:?}", report.findings.first());
            lock(model).corrupt_as("backup_restores", detail, excused(env));
            return false;
        }
        Err(error) => {
            env.trace(format_args!("backup validate failed: {error}"));
            lock(model).verdict.stat("backup_checks_skipped", 1);
            return true;
        }
    }
    let lsn_end = copy.stats().recovery.lsn_end;
    let Some((markers, contents)) = read_committers(env, &copy, model).await else {
        return false;
    };
    {
        let mut m = lock(model);
        m.check_backup(&markers, &contents, lsn_end, began_ns, excused(env));
        m.verdict.stat("backups_checked", 1);
    }
    // The copy's own close may meet a full disk; what it found is judged.
    if let Err(error) = copy.close().await {
        env.trace(format_args!("backup close failed: {error}"));
    }
    true
}

/// Removes every file in `dir`; `false` if one could not be removed.
async fn empty(env: &SimEnv, dir: &Path) -> bool {
    let Ok(names) = env.list(dir).await else {
        return true;
    };
    for name in names {
        if env.remove(&dir.join(name)).await.is_err() {
            return false;
        }
    }
    true
}
