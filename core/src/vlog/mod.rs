//! Values too large for a leaf, read where they were logged (SPEC 6.6,
//! design 11.2): the WAL is the value log. A commit's `Upsert` carries its
//! value whatever its length; for a value over the inline limit the leaf
//! keeps a [`VlogPointer`] to that record `{segment, offset, lsn, length,
//! crc}`, so a commit pays one `fdatasync`, the WAL's, and a value is
//! written once.
//!
//! - `reader`: a value read by its pointer and verified, online and
//!   offline;
//! - `usage`: live bytes per WAL segment, kept in step with the tree;
//! - `cache`: hot values kept within a share of `cache_bytes`.
//!
//! Which segments stay, and garbage collection, are the database's: a WAL
//! segment no replay needs is kept while the tree points into it
//! ([`Retention`](crate::log::Retention)), and GC moves the live values of
//! a sparse one into the active segment with ordinary commits. This module
//! reads values, caches them, and lets go of a segment before it is
//! removed.
//!
//! Invariants:
//! - **Nothing read is trusted unverified** (frame length and CRC against
//!   the pointer, the CRC over segment, offset and LSN, the FlatBuffer
//!   verifier, the key checked by the caller).
//! - **A removed segment is never read or cached again:** the log tells
//!   `Vlog::forget` before it unlinks one, which closes its descriptor
//!   (so the removal frees its space at once) and drops its cached values,
//!   and nothing is cached or opened for it after.

mod cache;
mod error;
mod reader;
mod usage;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::env::Env;
use crate::mutex::lock;
use crate::record::{ValueType, VlogPointer};

use cache::ValueCache;
use reader::segment_path;

pub use error::VlogError;
pub(crate) use reader::PointerReader;
pub use reader::VlogValue;
pub use usage::SegmentUsage;
pub(crate) use usage::VlogUsage;

/// Segments kept open for reads at once; past it, the one read least
/// recently is closed (a read of it opens it again).
const OPEN_MAX: usize = 64;

/// Value counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlogStats {
    /// WAL segments kept only for the values they hold (no replay needs
    /// their records).
    pub segments: u64,
    /// Bytes of those segments (as far as reads and GC have learned them).
    pub bytes: u64,
    /// Bytes of the records the tree points to in those segments.
    pub live_bytes: u64,
    /// Values read from a segment since open.
    pub reads: u64,
    /// Segment files opened for reads since open (each stays open for the
    /// reads after it, up to 64 at once).
    pub segment_opens: u64,
    /// Reads served from the value cache (no file read).
    pub value_cache_hits: u64,
    /// Reads the value cache did not hold.
    pub value_cache_misses: u64,
    /// Bytes the value cache holds (part of `cache_bytes`).
    pub value_cache_bytes: u64,
    /// Garbage-collection passes run.
    pub gc_runs: u64,
    /// Live values GC moved out of sparse segments.
    pub gc_values_relocated: u64,
    /// Expired values GC deleted instead of moving.
    pub gc_values_expired: u64,
    /// Retained segments removed once nothing pointed into them.
    pub gc_segments_removed: u64,
    /// Bytes of the segments removed.
    pub gc_bytes_reclaimed: u64,
    /// When the last GC pass ended, Unix ms by the TTL clock (0: never).
    pub gc_last_run_unix_ms: u64,
}

impl VlogStats {
    /// Live bytes over all bytes of the retained segments (1 when none).
    pub fn live_ratio(&self) -> f64 {
        if self.bytes == 0 {
            1.0
        } else {
            self.live_bytes as f64 / self.bytes as f64
        }
    }
}

struct State<F> {
    /// Segments open for reads: one long-lived descriptor each, with its
    /// length, so a read does not open and close its file. Bounded by
    /// [`OPEN_MAX`], closed least recently read first, and closed before
    /// the log removes the segment.
    files: OpenFiles<F>,
    /// Segments removed since open: never opened or cached again.
    removed: BTreeSet<u32>,
    /// Segments kept only for their values, and their bytes once known.
    retained: BTreeMap<u32, Option<u64>>,
    /// Values read by pointer or freshly logged, kept within a share of
    /// `cache_bytes` (`cache`); empty until [`Vlog::cache_values`].
    values: ValueCache,
    /// Sabotage `value-cache-by-offset`: the cache keys values by offset
    /// alone.
    values_by_offset: bool,
    stats: VlogStats,
}

impl<F> State<F> {
    /// The segment a value of `segment` is cached under: itself (sabotage
    /// `value-cache-by-offset`: 0 for all).
    fn value_key(&self, segment: u32) -> u32 {
        if self.values_by_offset { 0 } else { segment }
    }
}

/// Descriptors of open segments, their lengths, and the order they were
/// last read in.
struct OpenFiles<F> {
    files: BTreeMap<u32, (Arc<F>, u64, u64)>,
    /// Reads so far: each read stamps its segment, and the smallest stamp
    /// goes first when the table is full.
    clock: u64,
}

impl<F> Default for OpenFiles<F> {
    fn default() -> Self {
        OpenFiles {
            files: BTreeMap::new(),
            clock: 0,
        }
    }
}

impl<F> OpenFiles<F> {
    fn get(&mut self, segment: u32) -> Option<(Arc<F>, u64)> {
        self.clock += 1;
        let clock = self.clock;
        self.files.get_mut(&segment).map(|(file, len, used)| {
            *used = clock;
            (Arc::clone(file), *len)
        })
    }

    fn insert(&mut self, segment: u32, file: Arc<F>, len: u64) {
        if self.files.len() >= OPEN_MAX
            && let Some(oldest) = self
                .files
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(&id, _)| id)
        {
            self.files.remove(&oldest);
        }
        self.clock += 1;
        self.files.insert(segment, (file, len, self.clock));
    }

    fn remove(&mut self, segment: u32) {
        self.files.remove(&segment);
    }

    /// The length of `segment`, if it is open.
    fn len_of(&self, segment: u32) -> Option<u64> {
        self.files.get(&segment).map(|&(_, len, _)| len)
    }
}

/// Reads values by pointer from the WAL segments of one database directory.
pub struct Vlog<E: Env> {
    env: E,
    dir: PathBuf,
    state: Mutex<State<E::File>>,
}

impl<E: Env> Vlog<E> {
    /// A reader of the values in the WAL segments of `dir`.
    pub(crate) fn new(env: E, dir: PathBuf) -> Self {
        Vlog {
            env,
            dir,
            state: Mutex::new(State {
                files: OpenFiles::default(),
                removed: BTreeSet::new(),
                retained: BTreeMap::new(),
                values: ValueCache::new(0, Arc::new(AtomicU64::new(0))),
                values_by_offset: false,
                stats: VlogStats::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<E::File>> {
        lock(&self.state)
    }

    /// Counters so far (`live_bytes` is the caller's: the tree's counts).
    pub fn stats(&self) -> VlogStats {
        let state = self.state();
        let (hits, misses, _) = state.values.counts();
        VlogStats {
            segments: state.retained.len() as u64,
            bytes: state.retained.values().flatten().sum(),
            value_cache_hits: hits,
            value_cache_misses: misses,
            value_cache_bytes: state.values.bytes(),
            ..state.stats
        }
    }

    /// Keeps values in memory, up to `budget_bytes`, publishing the bytes
    /// held in `charged` (which the page cache counts against the same
    /// budget). `by_offset_only` is sabotage `value-cache-by-offset`:
    /// `false` in every real call.
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

    /// Keeps a value just logged at `pointer` in the cache: a read of a
    /// fresh write does not go to the file.
    pub(crate) fn keep_written(
        &self,
        pointer: &VlogPointer,
        key: &[u8],
        value_type: ValueType,
        bytes: Vec<u8>,
    ) {
        let mut state = self.state();
        if state.removed.contains(&pointer.segment) {
            return;
        }
        let segment = state.value_key(pointer.segment);
        let value = VlogValue {
            key: key.to_vec(),
            value_type,
            bytes,
        };
        state
            .values
            .insert(segment, pointer.offset, Arc::new(value));
    }

    /// The segments kept only for their values are now `ids` (oldest
    /// first).
    pub(crate) fn set_retained(&self, ids: &[u64]) {
        let mut state = self.state();
        let old = std::mem::take(&mut state.retained);
        let retained = ids
            .iter()
            .filter_map(|&id| u32::try_from(id).ok())
            .map(|id| {
                let known = old.get(&id).copied().flatten();
                (id, known.or_else(|| state.files.len_of(id)))
            })
            .collect();
        state.retained = retained;
    }

    /// Learns the size of every retained segment not known yet (opening
    /// it for reads), for GC's live ratios and INFO. A segment that cannot
    /// be opened stays unknown; its reads will say why.
    pub(crate) async fn learn_sizes(&self) {
        let unknown: Vec<u32> = self
            .state()
            .retained
            .iter()
            .filter(|(_, bytes)| bytes.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in unknown {
            let _ = self.file_for(id).await;
        }
    }

    /// The segments kept only for their values, oldest first.
    pub(crate) fn retained(&self) -> Vec<u32> {
        self.state().retained.keys().copied().collect()
    }

    /// The bytes of segment `id` (opening it to learn them if need be).
    pub(crate) async fn segment_bytes(&self, id: u32) -> Result<u64, VlogError> {
        let (_, len) = self.file_for(id).await?;
        Ok(len)
    }

    /// Opens segments `ids` (WAL segments about to leave the replay) for
    /// reads, so their sizes are known when they are retained.
    pub(crate) async fn open_segments(&self, ids: &[u64]) {
        for &id in ids {
            if let Ok(id) = u32::try_from(id) {
                let _ = self.file_for(id).await;
            }
        }
    }

    /// `(pointer, key)` for each `Upsert` of segment `id` whose value is
    /// over `inline_max` (only those can have a leaf pointing to them: the
    /// values GC moves if the tree still points there), and whether the
    /// records ran to a clean end (`false`: a frame that does not verify
    /// hides the ones after it).
    pub(crate) async fn upserts_in(
        &self,
        id: u32,
        inline_max: usize,
    ) -> Result<(Vec<(VlogPointer, Vec<u8>)>, bool), crate::log::LogError> {
        let mut found = Vec::new();
        let clean =
            crate::log::segment_records(&self.env, &self.dir, u64::from(id), |pos, payload| {
                if let Ok(crate::record::wal::WalRecord::Upsert { key, value, .. }) =
                    crate::record::wal::WalRecord::decode(payload)
                    && value.len() > inline_max
                {
                    found.push((crate::record::wal::pointer_to(pos, payload.len()), key));
                }
            })
            .await?;
        self.state().stats.reads += found.len() as u64;
        Ok((found, clean))
    }

    /// Segment `id` is about to be removed: its descriptor is closed, its
    /// cached values dropped, and it is never opened or cached again.
    pub(crate) fn forget(&self, id: u64) {
        let Ok(id) = u32::try_from(id) else {
            return;
        };
        let mut state = self.state();
        state.files.remove(id);
        state.values.remove_segment(id);
        state.removed.insert(id);
        if let Some(bytes) = state.retained.remove(&id) {
            state.stats.gc_segments_removed += 1;
            state.stats.gc_bytes_reclaimed += bytes.unwrap_or(0);
        }
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

    /// The descriptor of `segment` and its length, opened by the first
    /// read that needs it.
    async fn file_for(&self, segment: u32) -> Result<(Arc<E::File>, u64), VlogError> {
        let path = segment_path(&self.dir, segment);
        let missing = || VlogError::Io {
            op: "open segment",
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the WAL no longer holds this segment",
            ),
        };
        {
            let mut state = self.state();
            if state.removed.contains(&segment) {
                return Err(missing());
            }
            if let Some(found) = state.files.get(segment) {
                return Ok(found);
            }
        }
        let (file, len) = reader::open_segment(&self.env, &self.dir, segment).await?;
        let file = Arc::new(file);
        let mut state = self.state();
        // Not removed while it was being opened: only then is the
        // descriptor kept.
        if state.removed.contains(&segment) {
            return Err(missing());
        }
        state.files.insert(segment, Arc::clone(&file), len);
        state.stats.segment_opens += 1;
        if let Some(bytes) = state.retained.get_mut(&segment) {
            *bytes = Some(len);
        }
        Ok((file, len))
    }

    /// Reads the value `pointer` names and checks it is the record the
    /// pointer was made for.
    ///
    /// The pointer comes from a leaf, so its length is checked against the
    /// segment's size before anything is allocated for it: a damaged
    /// pointer is an error, never a 4 GiB buffer.
    pub async fn read(&self, pointer: &VlogPointer) -> Result<VlogValue, VlogError> {
        {
            let mut state = self.state();
            let segment = state.value_key(pointer.segment);
            if let Some(value) = state.values.get(segment, pointer.offset) {
                return Ok((*value).clone());
            }
        }
        let (file, len) = self.file_for(pointer.segment).await?;
        reader::check_inside(pointer, len)?;
        let path = segment_path(&self.dir, pointer.segment);
        let read = reader::read_pointed(&*file, &path, pointer).await;
        let mut state = self.state();
        state.stats.reads += 1;
        // Kept only while the segment exists: a read that raced its
        // removal must not leave a value no removal will forget.
        if let Ok(value) = &read
            && !state.removed.contains(&pointer.segment)
        {
            let segment = state.value_key(pointer.segment);
            state
                .values
                .insert(segment, pointer.offset, Arc::new(value.clone()));
        }
        read
    }
}
