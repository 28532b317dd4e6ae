//! The value log (SPEC 6.6): values too large to sit in a leaf go to
//! append-only segment files (`vlog-NNNNNN.seg`); the leaf and the WAL keep
//! a pointer `{segment, offset, length, crc}`.
//!
//! A record, little-endian, at `offset` in its segment:
//!
//! ```text
//! u32 length of what follows the CRC (header length field, header, value)
//! u32 CRC32 over (u64 segment id, u64 offset, the bytes that follow)
//! u32 header length H
//! H bytes: FlatBuffer VlogRecordHeader { key, value_type, value_length,
//!          value_crc (CRC32 of the value), lsn (0: not known when written) }
//! the value's bytes
//! ```
//!
//! The pointer's `length` is the whole record (8 + the first field) and its
//! `crc` the record's CRC, so a read verifies exactly what the tree expects
//! at exactly that place: a stale, torn or misplaced record is an error.
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
//!
//! - **A segment is removed only when nothing can reach it** (see
//!   [`gc`](self) for the rule); records are never changed in place.

mod gc;
mod reader;
mod usage;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jubilant_schemas::disk;

use crate::btree::{ValueType, VlogPointer};
use crate::env::{Env, File, OpenMode};

/// Bytes before a record's header: length and CRC.
const FRAME_BYTES: u64 = 8;
/// Bytes written per call when the active segment is written back at open.
const REWRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// Re-reads of a record that does not verify before a scan calls it torn.
const SCAN_RETRIES_MAX: u32 = 4;
/// The largest record a scan accepts (a value plus its header).
const RECORD_BYTES_MAX: u64 = 1 << 31;

pub use gc::VlogGcReport;
pub(crate) use gc::{VlogGc, VlogGcConfig};
pub(crate) use reader::PointerReader;
pub use usage::SegmentUsage;
pub(crate) use usage::VlogUsage;

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

/// Records appended but not yet in the tree (or given up), per segment:
/// GC must not take a segment a commit in flight is about to point into.
type Pins = Arc<Mutex<BTreeMap<u32, u64>>>;

fn lock_pins(pins: &Pins) -> MutexGuard<'_, BTreeMap<u32, u64>> {
    pins.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Holds a freshly appended record's segment from GC until the commit that
/// points to it is answered (then the tree's usage counts cover it).
#[derive(Debug)]
pub struct VlogPin {
    pins: Pins,
    segment: u32,
}

impl VlogPin {
    /// Never releases the pin: for records a commit whose outcome is
    /// unknown points to (only reopening, which rebuilds all counts, can
    /// tell whether they are reachable).
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for VlogPin {
    fn drop(&mut self) {
        let mut pins = lock_pins(&self.pins);
        if let Some(count) = pins.get_mut(&self.segment) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&self.segment);
            }
        }
    }
}

/// Why a value-log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VlogError {
    /// A file operation failed.
    #[error("value log I/O failed: {op} on {path}: {source}")]
    Io {
        /// What the value log was doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The environment's error.
        source: io::Error,
    },
    /// A record does not match its pointer, or is malformed.
    #[error("value log corrupted: segment {segment} offset {offset}: {detail}")]
    Corrupt {
        /// Segment id.
        segment: u32,
        /// Byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A write or sync failed earlier; reopen.
    #[error("the value log failed earlier and accepts no writes until reopened: {0}")]
    Failed(String),
}

impl VlogError {
    /// Whether the record is damaged or its segment file is gone: a finding
    /// for `validate`, not an I/O failure.
    pub fn is_missing_or_corrupt(&self) -> bool {
        match self {
            VlogError::Corrupt { .. } => true,
            VlogError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            VlogError::Failed(_) => false,
        }
    }

    /// Whether the record's segment file is gone (GC removes a segment
    /// only once nothing reaches it, so only a reader that found its
    /// pointer without a lock can meet this and live).
    pub fn is_missing_segment(&self) -> bool {
        matches!(self, VlogError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether this is the disk running out of space: an error for the
    /// writer that hit it, not a failure of the log.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, VlogError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

/// The name of value-log segment `id`.
pub fn segment_name(id: u32) -> String {
    format!("vlog-{id:06}.seg")
}

fn parse_name(name: &str) -> Option<u32> {
    let id = name.strip_prefix("vlog-")?.strip_suffix(".seg")?;
    (id.len() == 6 || (id.len() > 6 && !id.starts_with('0')))
        .then(|| id.parse().ok())
        .flatten()
}

fn record_crc(segment: u32, offset: u64, rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&u64::from(segment).to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.update(rest);
    hasher.finalize()
}

/// A value read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlogValue {
    /// The key it was written for.
    pub key: String,
    /// Its type.
    pub value_type: ValueType,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

struct Active {
    id: u32,
    path: PathBuf,
    /// End of the last record written (appends are serialized).
    end: u64,
    synced_end: u64,
}

struct State {
    active: Active,
    /// Bytes of every segment, the active one included.
    sizes: BTreeMap<u32, u64>,
    failed: Option<String>,
    stats: VlogStats,
}

/// The value log of one database directory.
pub struct Vlog<E: Env> {
    env: E,
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    pins: Pins,
    /// One append at a time, so `end` only covers written records.
    append_turn: futures::lock::Mutex<()>,
    /// One sync at a time; a writer whose bytes a finished sync covered
    /// does not sync again.
    sync_turn: futures::lock::Mutex<()>,
}

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

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counters so far.
    pub fn stats(&self) -> VlogStats {
        self.state().stats
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
        key: &str,
        value_type: ValueType,
        bytes: &[u8],
    ) -> Result<(VlogPointer, VlogPin), VlogError> {
        let mut builder = jubilant_schemas::builder_for(key.len());
        let key_offset = builder.create_string(key);
        let header = disk::VlogRecordHeader::create(
            &mut builder,
            &disk::VlogRecordHeaderArgs {
                key: Some(key_offset),
                value_type: value_type.code(),
                value_length: bytes.len() as u32,
                value_crc: crc32fast::hash(bytes),
                lsn: 0,
            },
        );
        builder.finish(header, None);
        let header = builder.finished_data();
        let mut rest = Vec::with_capacity(4 + header.len() + bytes.len());
        rest.extend_from_slice(&(header.len() as u32).to_le_bytes());
        rest.extend_from_slice(header);
        rest.extend_from_slice(bytes);
        let record_len = FRAME_BYTES + rest.len() as u64;
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
        let crc = record_crc(segment, offset, &rest);
        let mut record = Vec::with_capacity(record_len as usize);
        record.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc.to_le_bytes());
        record.extend_from_slice(&rest);
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
        let pin = self.pin(segment);
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

    fn pin(&self, segment: u32) -> VlogPin {
        *lock_pins(&self.pins).entry(segment).or_default() += 1;
        VlogPin {
            pins: Arc::clone(&self.pins),
            segment,
        }
    }

    /// Sealed segments (every one but the one appends go to) and their
    /// bytes, oldest first, leaving out those a commit in flight points
    /// into.
    pub(crate) fn sealed_unpinned(&self) -> Vec<(u32, u64)> {
        let state = self.state();
        let pins = lock_pins(&self.pins);
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
            let Some(bytes) = read_verified(&file, &path, segment, offset, len).await? else {
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

    /// Counts a GC pass's work, done at `now_ms`.
    pub(crate) fn count_gc(&self, report: &VlogGcReport, now_ms: u64) {
        let mut state = self.state();
        state.stats.gc_runs += 1;
        state.stats.gc_last_run_unix_ms = now_ms;
        state.stats.gc_values_relocated += report.values_relocated;
        state.stats.gc_values_expired += report.values_expired;
    }

    /// The file of `segment` (the active one, or an older one opened anew).
    async fn file_for(&self, segment: u32) -> Result<E::File, VlogError> {
        let path = self.dir.join(segment_name(segment));
        self.env
            .open(&path, OpenMode::Existing)
            .await
            .map_err(|source| VlogError::Io {
                op: "open segment",
                path,
                source,
            })
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
        if let Err(error) = self.env.open(&path, OpenMode::CreateNew).await {
            return Err(self.fail(io("create segment", &path)(error)));
        }
        if let Err(error) = self.env.sync_dir(&self.dir).await {
            return Err(self.fail(io("sync directory", &self.dir)(error)));
        }
        let mut state = self.state();
        state.active = Active {
            id,
            path,
            end: 0,
            synced_end: 0,
        };
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
    pub async fn read(&self, pointer: &VlogPointer) -> Result<VlogValue, VlogError> {
        let path = self.dir.join(segment_name(pointer.segment));
        let file = self.file_for(pointer.segment).await?;
        let read = reader::read_pointed(&file, &path, pointer).await;
        self.state().stats.reads += 1;
        read
    }
}

/// Verifies and decodes one whole record read at `offset` of `segment`.
fn decode(segment: u32, offset: u64, bytes: &[u8]) -> Result<VlogValue, String> {
    if bytes.len() < FRAME_BYTES as usize + 4 {
        return Err(format!("{} bytes cannot hold a record", bytes.len()));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let rest = &bytes[FRAME_BYTES as usize..];
    if rest.len() != len {
        return Err(format!("length field {len}, record holds {}", rest.len()));
    }
    if record_crc(segment, offset, rest) != crc {
        return Err("checksum mismatch".to_owned());
    }
    let header_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let Some(header) = rest.get(4..4 + header_len) else {
        return Err(format!("header length {header_len} overruns the record"));
    };
    let value = &rest[4 + header_len..];
    let header = flatbuffers::root::<disk::VlogRecordHeader>(header)
        .map_err(|error| format!("header is not a valid FlatBuffer: {error}"))?;
    let key = header.key().ok_or("header without a key")?.to_owned();
    let value_type = ValueType::from_code(header.value_type()).ok_or("unknown value type")?;
    if header.value_length() as usize != value.len() || header.value_crc() != crc32fast::hash(value)
    {
        return Err("value length or CRC does not match its header".to_owned());
    }
    Ok(VlogValue {
        key,
        value_type,
        bytes: value.to_vec(),
    })
}

/// The valid records at the start of a segment of `len` bytes, as read and
/// verified: everything up to the first record that does not verify.
async fn scan_valid<F: File>(
    file: &F,
    path: &Path,
    segment: u32,
    len: u64,
) -> Result<Vec<u8>, VlogError> {
    let mut image = Vec::new();
    let mut offset = 0;
    while let Some(record) = read_verified(file, path, segment, offset, len).await? {
        offset += record.len() as u64;
        image.extend_from_slice(&record);
    }
    debug_assert_eq!(image.len() as u64, offset);
    Ok(image)
}

/// The whole record at `offset` of a segment of `len` bytes, verified;
/// `None` if there is none that verifies there (after re-reads: a bad read
/// may be transient, and what a scan calls torn is cut off for good).
async fn read_verified<F: File>(
    file: &F,
    path: &Path,
    segment: u32,
    offset: u64,
    len: u64,
) -> Result<Option<Vec<u8>>, VlogError> {
    let read = |offset: u64, len: u64| async move {
        file.read_at(offset, len as usize)
            .await
            .map_err(|source| VlogError::Io {
                op: "scan",
                path: path.to_path_buf(),
                source,
            })
    };
    if offset + FRAME_BYTES > len {
        return Ok(None);
    }
    for _ in 0..=SCAN_RETRIES_MAX {
        let head = read(offset, FRAME_BYTES).await?;
        let rest_len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        if rest_len == 0 || rest_len > RECORD_BYTES_MAX || offset + FRAME_BYTES + rest_len > len {
            continue;
        }
        let record = read(offset, FRAME_BYTES + rest_len).await?;
        if decode(segment, offset, &record).is_ok() {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical() {
        assert_eq!(segment_name(1), "vlog-000001.seg");
        assert_eq!(parse_name("vlog-000001.seg"), Some(1));
        assert_eq!(parse_name("vlog-1.seg"), None);
        assert_eq!(parse_name("vlog-000001.seg.tmp"), None);
    }

    #[test]
    fn a_record_decodes_only_at_its_own_place() {
        let segment = 3;
        let offset = 4096;
        let value = b"a large value".to_vec();
        let mut builder = flatbuffers::FlatBufferBuilder::new();
        let key = builder.create_string("k");
        let header = disk::VlogRecordHeader::create(
            &mut builder,
            &disk::VlogRecordHeaderArgs {
                key: Some(key),
                value_type: 1,
                value_length: value.len() as u32,
                value_crc: crc32fast::hash(&value),
                lsn: 0,
            },
        );
        builder.finish(header, None);
        let header = builder.finished_data();
        let mut rest = (header.len() as u32).to_le_bytes().to_vec();
        rest.extend_from_slice(header);
        rest.extend_from_slice(&value);
        let mut record = (rest.len() as u32).to_le_bytes().to_vec();
        record.extend_from_slice(&record_crc(segment, offset, &rest).to_le_bytes());
        record.extend_from_slice(&rest);
        let decoded = decode(segment, offset, &record).expect("valid");
        assert_eq!(decoded.bytes, value);
        assert!(decode(segment, offset + 8, &record).is_err(), "misplaced");
        assert!(
            decode(segment + 1, offset, &record).is_err(),
            "wrong segment"
        );
        let mut torn = record.clone();
        let last = torn.len() - 1;
        torn[last] ^= 1;
        assert!(decode(segment, offset, &torn).is_err(), "flipped bit");
        assert!(
            decode(segment, offset, &record[..record.len() - 1]).is_err(),
            "short"
        );
    }
}
