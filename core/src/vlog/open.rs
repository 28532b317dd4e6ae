//! Opening the value log (SPEC 6.6, 8): list the segments, and repair the
//! newest one, which appends were going to.
//!
//! Invariant kept here: **repair drops only an unreferenced tail.** The
//! active segment is scanned; bytes after the last valid record can only
//! belong to appends whose commits never reached the WAL (a commit is
//! logged only after its records are durable), so they are cut off and
//! counted. The verified records are written back before the sync, so a
//! page cache a failed `fdatasync` left ahead of the disk is made durable
//! for real. Nothing else is ever changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::env::{Env, File, OpenMode};

use super::format::{parse_name, segment_name};
use super::pin::Pins;
use super::scan::scan_valid;
use super::{Active, REWRITE_CHUNK_BYTES, State, Vlog, VlogError, VlogStats};

impl<E: Env> Vlog<E> {
    /// Opens the value log in `dir`, creating its first segment if there is
    /// none, and cuts an unreferenced torn tail off the newest segment.
    pub async fn open(env: E, dir: &Path, segment_bytes: u64) -> Result<Self, VlogError> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| VlogError::Io { op, path, source }
        };
        let names = env.list(dir).await.map_err(io("list", dir))?;
        let mut ids: Vec<u32> = names.iter().filter_map(|name| parse_name(name)).collect();
        ids.sort_unstable();
        let newest = ids.last().copied();
        let mut sizes = BTreeMap::new();
        for &id in ids.iter().rev().skip(1) {
            let path = dir.join(segment_name(id));
            let file = env
                .open(&path, OpenMode::Existing)
                .await
                .map_err(io("open segment", &path))?;
            sizes.insert(id, file.len().await.map_err(io("length", &path))?);
        }
        let mut stats = VlogStats::default();
        let active = match newest {
            None => {
                let id = 1;
                let path = dir.join(segment_name(id));
                env.open(&path, OpenMode::CreateNew)
                    .await
                    .map_err(io("create segment", &path))?;
                env.sync_dir(dir).await.map_err(io("sync directory", dir))?;
                Active {
                    id,
                    path,
                    end: 0,
                    synced_end: 0,
                }
            }
            Some(id) => {
                let path = dir.join(segment_name(id));
                let file = env
                    .open(&path, OpenMode::Existing)
                    .await
                    .map_err(io("open segment", &path))?;
                let len = file.len().await.map_err(io("length", &path))?;
                let image = scan_valid(&file, &path, id, len).await?;
                let end = image.len() as u64;
                // Write the verified records back before syncing: after a
                // failed fdatasync the page cache may show records that are
                // not on disk and that a plain sync would not write again
                // (the same reason the WAL rewrites its last segment).
                for (index, chunk) in image.chunks(REWRITE_CHUNK_BYTES).enumerate() {
                    let at = (index * REWRITE_CHUNK_BYTES) as u64;
                    file.write_at(at, chunk)
                        .await
                        .map_err(io("rewrite segment", &path))?;
                }
                if end < len {
                    file.set_len(end)
                        .await
                        .map_err(io("cut torn tail", &path))?;
                }
                file.sync_data().await.map_err(io("sync segment", &path))?;
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
                    end,
                    synced_end: end,
                }
            }
        };
        sizes.insert(active.id, active.end);
        stats.segments = sizes.len() as u64;
        stats.bytes = sizes.values().sum();
        Ok(Vlog {
            env,
            dir: dir.to_path_buf(),
            segment_bytes,
            state: Mutex::new(State {
                active,
                sizes,
                failed: None,
                stats,
            }),
            pins: Pins::default(),
            append_turn: futures::lock::Mutex::new(()),
            sync_turn: futures::lock::Mutex::new(()),
        })
    }
}
