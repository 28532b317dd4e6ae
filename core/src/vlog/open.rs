//! Opening the value log (SPEC 6.6, 8) in two steps, so the database can
//! decide before anything is written: [`VlogScan::read`] lists the
//! segments and reads the newest one (which appends were going to) up to
//! its last valid record, changing nothing; [`VlogScan::repair`] then cuts
//! what follows and makes the valid records durable.
//!
//! Invariant kept here: **repair drops only an unreferenced tail.** Bytes
//! after the last valid record of the active segment can only belong to
//! appends whose commits never became durable (a commit is logged only
//! after its records are synced), unless the disk damaged them. The
//! database tells the two apart before it calls `repair`: if the durable
//! tree or a committed WAL record points at or past the cut, the records
//! there were durable, and the open is refused ([`VlogScan::damage_before`]). The verified records are
//! written back before the sync, so a page cache a failed `fdatasync` left
//! ahead of the disk is made durable for real. Nothing else is ever
//! changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::env::{Env, File, OpenMode};

use super::format::{parse_name, segment_name};
use super::pin::Pins;
use super::scan::scan_valid;
use super::{
    Active, REWRITE_CHUNK_BYTES, SealedFiles, State, ValueCache, Vlog, VlogError, VlogStats,
};

/// The newest segment as found at open.
struct Newest<F> {
    id: u32,
    path: PathBuf,
    file: F,
    /// The file's length.
    len: u64,
    /// The verified records at its start, as read: `[0, valid_end)`.
    image: Vec<u8>,
}

/// The value log as found at open; nothing written yet.
pub struct VlogScan<E: Env> {
    env: E,
    dir: PathBuf,
    segment_bytes: u64,
    /// Sizes of the sealed segments (every one but the newest).
    sealed: BTreeMap<u32, u64>,
    newest: Option<Newest<E::File>>,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VlogError {
    let path = path.to_path_buf();
    move |source| VlogError::Io { op, path, source }
}

impl<E: Env> VlogScan<E> {
    /// Lists the segments in `dir` and reads the newest up to its last
    /// record that verifies. Changes nothing.
    pub async fn read(env: E, dir: &Path, segment_bytes: u64) -> Result<Self, VlogError> {
        let names = env.list(dir).await.map_err(io("list", dir))?;
        let mut ids: Vec<u32> = names.iter().filter_map(|name| parse_name(name)).collect();
        ids.sort_unstable();
        let mut sealed = BTreeMap::new();
        for &id in ids.iter().rev().skip(1) {
            let path = dir.join(segment_name(id));
            let file = env
                .open(&path, OpenMode::Existing)
                .await
                .map_err(io("open segment", &path))?;
            sealed.insert(id, file.len().await.map_err(io("length", &path))?);
        }
        let newest = match ids.last().copied() {
            None => None,
            Some(id) => {
                let path = dir.join(segment_name(id));
                let file = env
                    .open(&path, OpenMode::Existing)
                    .await
                    .map_err(io("open segment", &path))?;
                let len = file.len().await.map_err(io("length", &path))?;
                let image = scan_valid(&file, &path, id, len).await?;
                Some(Newest {
                    id,
                    path,
                    file,
                    len,
                    image,
                })
            }
        };
        Ok(VlogScan {
            env,
            dir: dir.to_path_buf(),
            segment_bytes,
            sealed,
            newest,
        })
    }

    /// The newest segment's id, if there is one.
    pub fn newest_segment(&self) -> Option<u32> {
        self.newest.as_ref().map(|newest| newest.id)
    }

    /// Bytes in every segment.
    pub fn bytes(&self) -> u64 {
        self.sealed.values().sum::<u64>() + self.newest.as_ref().map_or(0, |newest| newest.len)
    }

    /// The error to refuse the open with if a durable commit (the tree, or
    /// a committed WAL record) refers to bytes of the newest segment up to
    /// `referenced_end` but its records stop verifying before that: those
    /// records were durable, so what follows them is damage, not a torn
    /// tail, and must not be cut.
    pub fn damage_before(&self, referenced_end: u64) -> Option<VlogError> {
        let newest = self.newest.as_ref()?;
        let valid_end = newest.image.len() as u64;
        (referenced_end > valid_end).then(|| VlogError::Damaged {
            path: newest.path.clone(),
            offset: valid_end,
            detail: format!(
                "durable commits refer to records up to offset {referenced_end}, but the \
                 segment's records stop verifying at offset {valid_end}: that is damage, not a \
                 torn tail; nothing was changed"
            ),
        })
    }

    /// Cuts the newest segment after its last valid record and makes what
    /// is left durable (or, with no segment at all, creates the first),
    /// and returns the value log, ready to append.
    pub async fn repair(self) -> Result<Vlog<E>, VlogError> {
        let VlogScan {
            env,
            dir,
            segment_bytes,
            mut sealed,
            newest,
        } = self;
        let mut stats = VlogStats::default();
        let active = match newest {
            None => {
                let id = 1;
                let path = dir.join(segment_name(id));
                let file = env
                    .open(&path, OpenMode::CreateNew)
                    .await
                    .map_err(io("create segment", &path))?;
                env.sync_dir(&dir)
                    .await
                    .map_err(io("sync directory", &dir))?;
                Active::empty(id, path, file)
            }
            Some(newest) => {
                let Newest {
                    id,
                    path,
                    file,
                    len,
                    image,
                } = newest;
                let end = image.len() as u64;
                // Write the verified records back and sync them: after a
                // failed fdatasync the page cache may show records that are
                // not on disk and that a plain sync would not write again
                // (the same reason the WAL rewrites its last segment). Into
                // a new file renamed over the old one, never in place: a
                // torn write may garble whole blocks, and rewriting records
                // where they are would put every one of them at risk.
                drop(file);
                let temp = dir.join(format!("{}.tmp", segment_name(id)));
                match env.remove(&temp).await {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io("remove stale temporary segment", &temp)(error)),
                }
                let file = env
                    .open(&temp, OpenMode::CreateNew)
                    .await
                    .map_err(io("create segment", &temp))?;
                for (index, chunk) in image.chunks(REWRITE_CHUNK_BYTES).enumerate() {
                    let at = (index * REWRITE_CHUNK_BYTES) as u64;
                    file.write_at(at, chunk)
                        .await
                        .map_err(io("rewrite segment", &temp))?;
                }
                file.sync_data().await.map_err(io("sync segment", &temp))?;
                env.rename(&temp, &path)
                    .await
                    .map_err(io("rename rewritten segment", &path))?;
                env.sync_dir(&dir)
                    .await
                    .map_err(io("sync directory", &dir))?;
                if end < len {
                    stats.tail_bytes_dropped = len - end;
                    tracing::warn!(
                        segment = id,
                        offset = end,
                        bytes = len - end,
                        "repair: cut an unreferenced torn value-log tail"
                    );
                }
                Active {
                    id,
                    path,
                    file: Arc::new(file),
                    end,
                    synced_end: end,
                }
            }
        };
        sealed.insert(active.id, active.end);
        let sizes = sealed;
        stats.segments = sizes.len() as u64;
        stats.bytes = sizes.values().sum();
        Ok(Vlog {
            env,
            dir,
            segment_bytes,
            state: Mutex::new(State {
                active,
                sizes,
                sealed: SealedFiles::default(),
                values: ValueCache::new(0, Arc::default()),
                values_by_offset: false,
                failed: None,
                stats,
            }),
            pins: Pins::default(),
            append_turn: futures::lock::Mutex::new(()),
            sync_turn: futures::lock::Mutex::new(()),
        })
    }
}

impl<E: Env> Vlog<E> {
    /// Opens the value log in `dir` ([`VlogScan::read`], then
    /// [`VlogScan::repair`]), creating its first segment if there is none
    /// and cutting a torn tail off the newest segment. For a log that a
    /// database refers to, the database opens it in the two steps and
    /// checks the cut first.
    pub async fn open(env: E, dir: &Path, segment_bytes: u64) -> Result<Self, VlogError> {
        VlogScan::read(env, dir, segment_bytes)
            .await?
            .repair()
            .await
    }
}
