//! The value log (SPEC 6.6): values too large to sit in a leaf go to
//! append-only segment files (`vlog-NNNNNN.seg`); the leaf and the WAL keep
//! a pointer `{segment, offset, length, crc}`.
//!
//! - `format`: segment names and the record layout, encoded and verified;
//! - `open`: listing the segments and repairing the newest at open;
//! - `scan`: whole records read without a pointer (the scan at open, GC);
//! - `reader`: records read by pointer, online and offline;
//! - `pin`: segments held from GC while a commit is in flight;
//! - `usage`: live bytes per segment, kept in step with the tree.
//!
//! Garbage collection is the database's (it commits through the WAL);
//! this module gives it sealed segments, their records, and removal.
//!
//! The record layout is in `format`.
//!
//! Invariants:
//! - **A commit never refers to a record that is not durable.** Writers
//!   call [`Vlog::sync`] after appending and before handing the commit to
//!   the WAL; syncs are shared, so concurrent writers pay one `fdatasync`.
//! - **Nothing read is trusted unverified** (CRC, position, FlatBuffer
//!   verifier, value CRC and length).
//! - **Repair drops only an unreferenced tail.** At open the active
//!   segment is scanned; bytes after the last valid record can only belong
//!   to appends whose commits never reached the WAL (durability order), so
//!   they are cut off (and counted). Nothing else is ever changed.
//! - **A segment is removed only when nothing can reach it** (the
//!   database's value-log GC keeps the rule); records are never changed in
//!   place.

mod cache;
mod error;
mod format;
mod open;
mod pin;
mod reader;
mod scan;
mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::env::{Env, File, OpenMode};
use crate::mutex::lock;
use crate::record::{ValueType, VlogPointer};

use cache::ValueCache;
use format::{FRAME_BYTES, decode};
use pin::Pins;
use scan::read_verified;

pub use error::VlogError;
pub use format::{VlogValue, segment_name};
pub use open::VlogScan;
pub use pin::VlogPin;
pub(crate) use reader::PointerReader;
pub use usage::SegmentUsage;
pub(crate) use usage::VlogUsage;

/// Bytes written per call when the active segment is written back at open.
const REWRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// Sealed segments kept open for reads at once; past it, the one read
/// least recently is closed (a read of it opens it again).
const SEALED_OPEN_MAX: usize = 64;

/// Value-log counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlogStats {
    /// Segment files.
    pub segments: u64,
    /// Bytes in all segments.
    pub bytes: u64,
    /// Bytes of the records the tree points to.
    pub live_bytes: u64,
    /// Records appended since open.
    pub appends: u64,
    /// Records read since open.
    pub reads: u64,
    /// Sealed segment files opened for reads since open (each stays open
    /// for the reads after it, up to 64 at once).
    pub segment_opens: u64,
    /// Reads served from the value cache (no file read).
    pub value_cache_hits: u64,
    /// Reads the value cache did not hold.
    pub value_cache_misses: u64,
    /// Bytes the value cache holds (part of `cache_bytes`).
    pub value_cache_bytes: u64,
    /// `fdatasync` calls.
    pub syncs: u64,
    /// Repair at open: bytes of an unreferenced torn tail cut off.
    pub tail_bytes_dropped: u64,
    /// Garbage-collection passes run.
    pub gc_runs: u64,
    /// Live values GC moved out of sparse segments.
    pub gc_values_relocated: u64,
    /// Expired values GC deleted instead of moving.
    pub gc_values_expired: u64,
    /// Segments GC removed.
    pub gc_segments_removed: u64,
    /// Bytes of the segments GC removed.
    pub gc_bytes_reclaimed: u64,
    /// When the last GC pass ended, Unix ms by the TTL clock (0: never).
    pub gc_last_run_unix_ms: u64,
}

impl VlogStats {
    /// Live bytes over all bytes (1 for an empty log).
    pub fn live_ratio(&self) -> f64 {
        if self.bytes == 0 {
            1.0
        } else {
            self.live_bytes as f64 / self.bytes as f64
        }
    }
}

/// The segment appends go to, with its one long-lived descriptor: appends,
/// reads and syncs of the active segment never reopen it.
struct Active<F> {
    id: u32,
    path: PathBuf,
    file: Arc<F>,
    /// End of the last record written (appends are serialized).
    end: u64,
    synced_end: u64,
}

impl<F> Active<F> {
    /// A new segment, holding nothing yet.
    fn empty(id: u32, path: PathBuf, file: F) -> Self {
        Active {
            id,
            path,
            file: Arc::new(file),
            end: 0,
            synced_end: 0,
        }
    }
}

struct State<F> {
    active: Active<F>,
    /// Bytes of every segment, the active one included.
    sizes: BTreeMap<u32, u64>,
    /// Sealed segments open for reads: one long-lived descriptor each
    /// (issue 21), so a read of a sealed value does not open and close its
    /// file. Bounded by [`SEALED_OPEN_MAX`], closed least recently read
    /// first, and closed before GC removes the segment.
    sealed: SealedFiles<F>,
    /// Values read by pointer, kept within a share of `cache_bytes`
    /// (`cache`); empty until [`Vlog::cache_values`].
    values: ValueCache,
    /// Sabotage `value-cache-by-offset`: the cache keys values by offset
    /// alone.
    values_by_offset: bool,
    failed: Option<String>,
    stats: VlogStats,
}

impl<F> State<F> {
    /// The segment a value of `segment` is cached under: itself (sabotage
    /// `value-cache-by-offset`: 0 for all).
    fn value_key(&self, segment: u32) -> u32 {
        if self.values_by_offset { 0 } else { segment }
    }
}

/// Descriptors of sealed segments, with the order they were last read in.
struct SealedFiles<F> {
    files: BTreeMap<u32, (Arc<F>, u64)>,
    /// Reads so far: each read stamps its segment, and the smallest stamp
    /// goes first when the table is full.
    clock: u64,
}

impl<F> Default for SealedFiles<F> {
    fn default() -> Self {
        SealedFiles {
            files: BTreeMap::new(),
            clock: 0,
        }
    }
}

impl<F> SealedFiles<F> {
    fn get(&mut self, segment: u32) -> Option<Arc<F>> {
        self.clock += 1;
        let clock = self.clock;
        self.files.get_mut(&segment).map(|(file, used)| {
            *used = clock;
            Arc::clone(file)
        })
    }

    fn insert(&mut self, segment: u32, file: Arc<F>) {
        if self.files.len() >= SEALED_OPEN_MAX
            && let Some(oldest) = self
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(&id, _)| id)
        {
            self.files.remove(&oldest);
        }
        self.clock += 1;
        self.files.insert(segment, (file, self.clock));
    }

    fn remove(&mut self, segment: u32) {
        self.files.remove(&segment);
    }
}

/// The value log of one database directory.
pub struct Vlog<E: Env> {
    env: E,
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State<E::File>>,
    pins: Pins,
    /// One append at a time, so `end` only covers written records.
    append_turn: futures::lock::Mutex<()>,
    /// One sync at a time; a writer whose bytes a finished sync covered
    /// does not sync again.
    sync_turn: futures::lock::Mutex<()>,
}

impl<E: Env> Vlog<E> {
    fn state(&self) -> MutexGuard<'_, State<E::File>> {
        lock(&self.state)
    }

    /// Counters so far.
    pub fn stats(&self) -> VlogStats {
        let state = self.state();
        let (hits, misses, _) = state.values.counts();
        VlogStats {
            value_cache_hits: hits,
            value_cache_misses: misses,
            value_cache_bytes: state.values.bytes(),
            ..state.stats
        }
    }

    /// Keeps values read by pointer in memory, up to `budget_bytes`,
    /// publishing the bytes held in `charged` (which the page cache counts
    /// against the same budget). `by_offset_only` is sabotage
    /// `value-cache-by-offset`: `false` in every real call.
    pub(crate) fn cache_values(
        &self,
        budget_bytes: u64,
        charged: Arc<AtomicU64>,
        by_offset_only: bool,
    ) {
        let mut state = self.state();
        state.values = ValueCache::new(budget_bytes, charged);
        state.values_by_offset = by_offset_only;
    }

    /// Why the value log stopped accepting writes (a write or sync whose
    /// outcome is unknown), if it did.
    pub fn failure(&self) -> Option<String> {
        self.state().failed.clone()
    }

    fn fail(&self, error: VlogError) -> VlogError {
        self.state().failed.get_or_insert_with(|| error.to_string());
        error
    }

    /// Appends a record for `key`'s value; it is durable only once
    /// [`Vlog::sync`] returns. Concurrent appends land one after another.
    /// The pin keeps GC off the record's segment until it is dropped: hold
    /// it until the commit that points to the record is answered.
    pub async fn append(
        &self,
        key: &[u8],
        value_type: ValueType,
        bytes: &[u8],
    ) -> Result<(VlogPointer, VlogPin), VlogError> {
        let body = format::body(key, value_type, bytes);
        let record_len = FRAME_BYTES + body.len() as u64;
        let _turn = self.append_turn.lock().await;
        let (segment, offset, path) = {
            let state = self.state();
            if let Some(reason) = &state.failed {
                return Err(VlogError::Failed(reason.clone()));
            }
            (state.active.id, state.active.end, state.active.path.clone())
        };
        let (segment, offset, path) = if offset > 0 && offset + record_len > self.segment_bytes {
            self.roll().await?;
            let state = self.state();
            (state.active.id, 0, state.active.path.clone())
        } else {
            (segment, offset, path)
        };
        let (record, crc) = format::frame(segment, offset, &body);
        debug_assert_eq!(record.len() as u64, record_len);
        let file = self.file_for(segment).await?;
        if let Err(source) = file.write_at(offset, &record).await {
            let error = VlogError::Io {
                op: "write record",
                path,
                source,
            };
            // Disk full: `end` stays, so the next record overwrites what
            // landed, and a scan would stop at it anyway (nothing refers to
            // it). Any other error leaves the file's state unknown.
            return Err(if error.is_disk_full() {
                error
            } else {
                self.fail(error)
            });
        }
        let pin = VlogPin::new(&self.pins, segment);
        let mut state = self.state();
        state.active.end = offset + record_len;
        state.sizes.insert(segment, offset + record_len);
        state.stats.appends += 1;
        state.stats.bytes += record_len;
        let pointer = VlogPointer {
            segment,
            length: record_len as u32,
            offset,
            crc,
        };
        Ok((pointer, pin))
    }

    /// Sealed segments (every one but the one appends go to) and their
    /// bytes, oldest first, leaving out those a commit in flight points
    /// into.
    pub(crate) fn sealed_unpinned(&self) -> Vec<(u32, u64)> {
        let state = self.state();
        let pins = lock(&self.pins);
        state
            .sizes
            .iter()
            .filter(|&(&id, _)| id < state.active.id && !pins.contains_key(&id))
            .map(|(&id, &bytes)| (id, bytes))
            .collect()
    }

    /// Removes sealed segment files (then syncs the directory once);
    /// returns the bytes they held. The caller has made sure nothing
    /// reaches them.
    pub(crate) async fn remove_segments(&self, ids: &[u32]) -> Result<u64, VlogError> {
        let mut reclaimed = 0;
        for &id in ids {
            assert!(
                id < self.state().active.id,
                "the active segment is never removed"
            );
            let path = self.dir.join(segment_name(id));
            // Its descriptor is closed first, so the removal frees the
            // file's space at once.
            self.state().sealed.remove(id);
            self.env
                .remove(&path)
                .await
                .map_err(|source| VlogError::Io {
                    op: "remove segment",
                    path,
                    source,
                })?;
            let mut state = self.state();
            let bytes = state.sizes.remove(&id).unwrap_or(0);
            state.sealed.remove(id);
            state.values.remove_segment(id);
            state.stats.segments -= 1;
            state.stats.bytes -= bytes;
            state.stats.gc_segments_removed += 1;
            state.stats.gc_bytes_reclaimed += bytes;
            reclaimed += bytes;
        }
        // Unsynced, a removal may be undone by a crash: harmless, the
        // segment is unreachable and the next GC removes it again.
        self.env
            .sync_dir(&self.dir)
            .await
            .map_err(|source| VlogError::Io {
                op: "sync directory",
                path: self.dir.clone(),
                source,
            })?;
        Ok(reclaimed)
    }

    /// The records of sealed `segment` from `offset` on, up to about
    /// `bytes_max` of them, each with the pointer that names it; and where
    /// to go on (`None`: the segment's end, or a record that does not
    /// verify, which GC cannot move: its pointer reads as corrupt anyway).
    pub(crate) async fn read_records(
        &self,
        segment: u32,
        mut offset: u64,
        bytes_max: u64,
    ) -> Result<(Vec<(VlogPointer, VlogValue)>, Option<u64>), VlogError> {
        let path = self.dir.join(segment_name(segment));
        let file = self.file_for(segment).await?;
        let len = file.len().await.map_err(|source| VlogError::Io {
            op: "length",
            path: path.clone(),
            source,
        })?;
        let mut records = Vec::new();
        let mut read = 0;
        while offset < len {
            if read >= bytes_max {
                return Ok((records, Some(offset)));
            }
            let Some(bytes) = read_verified(&*file, &path, segment, offset, len).await? else {
                break;
            };
            let value = decode(segment, offset, &bytes).map_err(|detail| VlogError::Corrupt {
                segment,
                offset,
                detail,
            })?;
            let pointer = VlogPointer {
                segment,
                length: bytes.len() as u32,
                offset,
                crc: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            };
            self.state().stats.reads += 1;
            offset += bytes.len() as u64;
            read += bytes.len() as u64;
            records.push((pointer, value));
        }
        Ok((records, None))
    }

    /// Counts a GC pass that moved `relocated` values and deleted
    /// `expired` ones, done at `now_ms`.
    pub(crate) fn count_gc(&self, relocated: u64, expired: u64, now_ms: u64) {
        let mut state = self.state();
        state.stats.gc_runs += 1;
        state.stats.gc_last_run_unix_ms = now_ms;
        state.stats.gc_values_relocated += relocated;
        state.stats.gc_values_expired += expired;
    }

    /// The file of `segment`: the active one's long-lived descriptor, or a
    /// sealed one's, opened by the first read that needs it.
    async fn file_for(&self, segment: u32) -> Result<Arc<E::File>, VlogError> {
        {
            let mut state = self.state();
            if state.active.id == segment {
                return Ok(Arc::clone(&state.active.file));
            }
            if let Some(file) = state.sealed.get(segment) {
                return Ok(file);
            }
        }
        let path = self.dir.join(segment_name(segment));
        let file = self
            .env
            .open(&path, OpenMode::Existing)
            .await
            .map(Arc::new)
            .map_err(|source| VlogError::Io {
                op: "open segment",
                path,
                source,
            })?;
        let mut state = self.state();
        // Sealed, and not removed while it was being opened (GC forgets
        // the size first): only then is the descriptor kept.
        if segment < state.active.id && state.sizes.contains_key(&segment) {
            state.sealed.insert(segment, Arc::clone(&file));
            state.stats.segment_opens += 1;
        }
        Ok(file)
    }

    /// Starts a new segment (the current one synced first).
    async fn roll(&self) -> Result<(), VlogError> {
        self.sync().await?;
        let _turn = self.sync_turn.lock().await;
        let id = self.state().active.id + 1;
        let path = self.dir.join(segment_name(id));
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| VlogError::Io { op, path, source }
        };
        // A create that fails (no descriptors left, disk full) changed
        // nothing: that append fails, and the next one tries again.
        let file = match self.env.open(&path, OpenMode::CreateNew).await {
            Ok(file) => file,
            // An earlier attempt created it and then failed: an empty file
            // nothing refers to is as good as a new one.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let file = self
                    .env
                    .open(&path, OpenMode::Existing)
                    .await
                    .map_err(io("open segment", &path))?;
                match file.len().await {
                    Ok(0) => file,
                    _ => return Err(io("create segment", &path)(error)),
                }
            }
            Err(error) => return Err(io("create segment", &path)(error)),
        };
        if let Err(error) = self.env.sync_dir(&self.dir).await {
            return Err(self.fail(io("sync directory", &self.dir)(error)));
        }
        let mut state = self.state();
        let sealed = std::mem::replace(&mut state.active, Active::empty(id, path, file));
        // The segment just sealed keeps its descriptor for reads.
        state.sealed.insert(sealed.id, sealed.file);
        state.sizes.insert(id, 0);
        state.stats.segments += 1;
        Ok(())
    }

    /// Makes every record appended so far durable. Concurrent callers
    /// share one `fdatasync`.
    pub async fn sync(&self) -> Result<(), VlogError> {
        let want = self.state().active.end;
        let _turn = self.sync_turn.lock().await;
        let (path, id, end) = {
            let state = self.state();
            if let Some(reason) = &state.failed {
                return Err(VlogError::Failed(reason.clone()));
            }
            if state.active.synced_end >= want {
                return Ok(());
            }
            (state.active.path.clone(), state.active.id, state.active.end)
        };
        let file = self.file_for(id).await?;
        if let Err(source) = file.sync_data().await {
            return Err(self.fail(VlogError::Io {
                op: "sync segment",
                path,
                source,
            }));
        }
        let mut state = self.state();
        if state.active.id == id {
            state.active.synced_end = state.active.synced_end.max(end);
        }
        state.stats.syncs += 1;
        Ok(())
    }

    /// Reads the record `pointer` names and checks it is the one the
    /// pointer was made for.
    ///
    /// The pointer comes from a leaf or a WAL record, so its length is
    /// checked against the segment's size before anything is allocated for
    /// it: a damaged pointer is an error, never a 4 GiB buffer.
    pub async fn read(&self, pointer: &VlogPointer) -> Result<VlogValue, VlogError> {
        let path = self.dir.join(segment_name(pointer.segment));
        let segment_bytes = self.state().sizes.get(&pointer.segment).copied();
        match segment_bytes {
            // GC removed it (a reader without a lock may race the removal).
            None => {
                return Err(VlogError::Io {
                    op: "read record",
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the value log has no such segment",
                    ),
                });
            }
            Some(bytes)
                if pointer
                    .offset
                    .checked_add(u64::from(pointer.length))
                    .is_none_or(|end| end > bytes) =>
            {
                return Err(VlogError::Corrupt {
                    segment: pointer.segment,
                    offset: pointer.offset,
                    detail: format!(
                        "a {}-byte record would run past the segment's {bytes} bytes",
                        pointer.length
                    ),
                });
            }
            Some(_) => {}
        }
        {
            let mut state = self.state();
            let segment = state.value_key(pointer.segment);
            if let Some(value) = state.values.get(segment, pointer.offset) {
                return Ok((*value).clone());
            }
        }
        let file = self.file_for(pointer.segment).await?;
        let read = reader::read_pointed(&*file, &path, pointer).await;
        let mut state = self.state();
        state.stats.reads += 1;
        // Kept only while the segment exists: a read that raced GC's
        // removal must not leave a value no removal will forget.
        if let Ok(value) = &read
            && state.sizes.contains_key(&pointer.segment)
        {
            let segment = state.value_key(pointer.segment);
            state
                .values
                .insert(segment, pointer.offset, Arc::new(value.clone()));
        }
        read
    }
}
