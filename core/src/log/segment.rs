//! Segment files: their names, their header, and how one is created.
//!
//! Invariant kept here: a segment visible under its final name is complete
//! and durable: full length, zero-filled, with a valid header (closed, or
//! open if it was prepared ahead). Creation writes a `.tmp` file,
//! zero-fills it, syncs it, renames it and syncs the directory, so a crash
//! at any point leaves either no segment or a whole one (plus, perhaps, a
//! `.tmp` that recovery removes).
//!
//! Zero-filling up front (rather than `set_len`, which leaves holes) means a
//! commit's `fdatasync` never has to persist a size or block-allocation change.
//!
//! Header layout (32 bytes, little-endian):
//!
//! | bytes    | field                                       |
//! |----------|---------------------------------------------|
//! | `0..4`   | magic `JWAL`                                |
//! | `4..6`   | format version, `1`                         |
//! | `6..8`   | header length in bytes, `32`                |
//! | `8..16`  | segment id (also in the file name)          |
//! | `16..24` | LSN of the first record the segment holds; `0`: an *open* header (below) |
//! | `24..28` | block size the segment's batches are aligned to (0: none, as written before batches were aligned) |
//! | `28..32` | CRC32 of bytes `0..28`                      |
//!
//! An **open** header (first LSN `0`) is written into a segment created
//! ahead of need, in the background, before anyone knows the LSN its first
//! record will carry. Its first LSN is then the previous segment's next
//! one, or, in the oldest segment, the LSN its first batch header names
//! (every batch header carries its LSN, `frame`). Open headers always name
//! a block size, so that first batch is at a known offset.

use std::io;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::env::pace::{self, Pacer};
use crate::env::{Env, File, OpenMode};

use super::LogError;

/// Bytes at the start of every segment before its first record.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// The smallest block size batches may be aligned to.
pub const BLOCK_BYTES_MIN: u32 = 512;
/// The largest block size batches may be aligned to.
pub const BLOCK_BYTES_MAX: u32 = 65536;

/// Whether `block_bytes` is a block size batches may be aligned to.
pub const fn block_bytes_valid(block_bytes: u32) -> bool {
    block_bytes.is_power_of_two()
        && block_bytes >= BLOCK_BYTES_MIN
        && block_bytes <= BLOCK_BYTES_MAX
}
/// The largest segment the log creates or reads: a bound on what any length
/// read from disk can make the scan allocate.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;
const MAGIC: [u8; 4] = *b"JWAL";
const FORMAT_VERSION: u16 = 1;
const NAME_PREFIX: &str = "wal-";
const NAME_SUFFIX: &str = ".log";
const TEMP_SUFFIX: &str = ".tmp";
/// Zero-filling writes at most this many bytes per call, bounding the buffer.
const ZERO_FILL_CHUNK_BYTES: u64 = 256 * 1024;

/// The file name of segment `id`: `wal-000001.log`.
pub fn segment_name(id: u64) -> String {
    format!("{NAME_PREFIX}{id:06}{NAME_SUFFIX}")
}

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_name(id))
}

pub(crate) fn temp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{}{TEMP_SUFFIX}", segment_name(id)))
}

/// What a file name in the log directory is, as far as the log cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NameKind {
    Segment(u64),
    /// A segment whose creation never finished.
    Temp,
    Other,
}

pub(crate) fn classify_name(name: &str) -> NameKind {
    let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
        return NameKind::Other;
    };
    if let Some(segment) = name.strip_suffix(TEMP_SUFFIX) {
        // Only the temporary name of a canonical segment is ours to remove.
        return match classify_name(segment) {
            NameKind::Segment(_) => NameKind::Temp,
            _ => NameKind::Other,
        };
    }
    let Some(digits) = rest.strip_suffix(NAME_SUFFIX) else {
        return NameKind::Other;
    };
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return NameKind::Other;
    }
    match digits.parse::<u64>() {
        // Names are canonical: `wal-1.log` or `wal-0000001.log` are not ours.
        Ok(id) if segment_name(id) == name => NameKind::Segment(id),
        _ => NameKind::Other,
    }
}

/// A decoded, checksum-verified segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's id.
    pub id: u64,
    /// LSN of the segment's first record; 0 in an open header (the module
    /// docs), which a segment prepared ahead of need carries.
    pub first_lsn: u64,
    /// Every batch of records starts at a multiple of this many bytes, so a
    /// torn write damages no earlier batch (0: not aligned).
    pub block_bytes: u32,
}

impl SegmentHeader {
    /// The open header of segment `id`, prepared ahead of need.
    pub(crate) fn open(id: u64, block_bytes: u32) -> SegmentHeader {
        assert!(
            block_bytes_valid(block_bytes),
            "an open header names a block size"
        );
        SegmentHeader {
            id,
            first_lsn: 0,
            block_bytes,
        }
    }

    /// Whether this is an open header: the first LSN is not in it.
    pub(crate) fn is_open(&self) -> bool {
        self.first_lsn == 0
    }

    /// Where the segment's first batch starts: the first block boundary
    /// past the header (right after it in a segment of unaligned batches).
    pub(crate) fn first_batch_offset(&self) -> u64 {
        SEGMENT_HEADER_BYTES.next_multiple_of(u64::from(self.block_bytes.max(1)))
    }

    pub(crate) fn encode(self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES as usize];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[24..28].copy_from_slice(&self.block_bytes.to_le_bytes());
        let crc = crc32fast::hash(&out[0..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header, saying what is wrong if it is not one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES as usize {
            return Err(format!(
                "segment header needs {SEGMENT_HEADER_BYTES} bytes, file has {}",
                bytes.len()
            ));
        }
        let stored_crc = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
        let crc = crc32fast::hash(&bytes[0..28]);
        if stored_crc != crc {
            return Err(format!(
                "segment header CRC mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
            ));
        }
        if bytes[0..4] != MAGIC {
            return Err(format!(
                "bad magic {:02x?}, expected {:02x?}",
                &bytes[0..4],
                MAGIC
            ));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "segment format version {version} is not supported (this build reads {FORMAT_VERSION})"
            ));
        }
        let header_len = u16::from_le_bytes([bytes[6], bytes[7]]);
        if u64::from(header_len) != SEGMENT_HEADER_BYTES {
            return Err(format!(
                "segment header length {header_len}, expected {SEGMENT_HEADER_BYTES}"
            ));
        }
        let id = u64::from_le_bytes(bytes[8..16].try_into().expect("eight bytes"));
        let first_lsn = u64::from_le_bytes(bytes[16..24].try_into().expect("eight bytes"));
        let block_bytes = u32::from_le_bytes(bytes[24..28].try_into().expect("four bytes"));
        if first_lsn == 0 && block_bytes == 0 {
            return Err("an open segment header (first LSN 0) names no block size".to_owned());
        }
        if block_bytes != 0 && !block_bytes_valid(block_bytes) {
            return Err(format!(
                "segment header names block size {block_bytes}, not a power of two from \
                 {BLOCK_BYTES_MIN} to {BLOCK_BYTES_MAX}"
            ));
        }
        Ok(SegmentHeader {
            id,
            first_lsn,
            block_bytes,
        })
    }
}

/// Creates segment `header.id` of `segment_bytes` bytes, durably (see the
/// module invariant), and returns it open.
///
/// On failure nothing is left under the final name; a `.tmp` may remain if
/// even its removal failed, and recovery removes it.
pub(crate) async fn create<E: Env>(
    env: &E,
    dir: &Path,
    header: SegmentHeader,
    segment_bytes: u64,
    sync_dir: bool,
) -> Result<E::File, LogError> {
    create_with(
        env,
        dir,
        header.id,
        &header.encode(),
        segment_bytes,
        sync_dir,
    )
    .await
}

/// Writes segment `id` anew: `image` (its header and records), then zeros
/// to `segment_bytes`, into a `.tmp` file that is synced and then renamed
/// over whatever the segment's name held, and the directory synced. So a
/// crash or a torn write part way never damages the segment as it was:
/// the old file stays whole until the rename, the new one after it.
/// Returns the new file open.
pub(crate) async fn create_with<E: Env>(
    env: &E,
    dir: &Path,
    id: u64,
    image: &[u8],
    segment_bytes: u64,
    sync_dir: bool,
) -> Result<E::File, LogError> {
    let file = prepare(env, dir, id, image, segment_bytes, Pace::AtOnce)
        .await
        .map_err(|failed| failed.error)?;
    install(env, dir, id, sync_dir)
        .await
        .map_err(|failed| failed.error)?;
    Ok(file)
}

/// Why [`prepare`] or [`install`] made no segment.
pub(crate) struct NotCreated {
    pub error: LogError,
    /// A sync failed, or the new name may or may not exist: the log must
    /// stop. Otherwise nothing under a segment's name changed, and the
    /// caller may go on.
    pub fatal: bool,
}

/// How a segment's zeros are written.
#[derive(Clone, Debug)]
pub(crate) enum Pace {
    /// All at once, then one sync: a commit waits for the segment.
    AtOnce,
    /// In synced steps with pauses between (`env::pace`): a segment
    /// prepared ahead, in the background, while commits sync the WAL.
    /// The pauses stop once the flag is set (a rollover waits for it).
    Paced(Arc<AtomicBool>),
}

/// The first half of [`create_with`]: the whole new segment, synced, under
/// its temporary name. On failure the temporary file is removed (best
/// effort: a leftover `.tmp` is harmless, recovery removes it).
pub(crate) async fn prepare<E: Env>(
    env: &E,
    dir: &Path,
    id: u64,
    image: &[u8],
    segment_bytes: u64,
    pace: Pace,
) -> Result<E::File, NotCreated> {
    let temp = temp_path(dir, id);
    let result = create_temp(env, &temp, image, segment_bytes, pace).await;
    if result.is_err() {
        let _ = env.remove(&temp).await;
    }
    result
}

/// The second half of [`create_with`]: the prepared segment renamed to its
/// name, and the directory synced. A rename refused for want of space did
/// nothing (the temporary file is removed); after any other failure the
/// name may or may not be there: only recovery can tell.
pub(crate) async fn install<E: Env>(
    env: &E,
    dir: &Path,
    id: u64,
    sync_dir: bool,
) -> Result<(), NotCreated> {
    let (temp, path) = (temp_path(dir, id), segment_path(dir, id));
    if let Err(source) = env.rename(&temp, &path).await {
        let fatal = !crate::env::is_out_of_space(&source);
        if !fatal {
            let _ = env.remove(&temp).await;
        }
        let error = LogError::io("rename new segment", &path, source);
        return Err(NotCreated { error, fatal });
    }
    if sync_dir {
        env.sync_dir(dir).await.map_err(|source| NotCreated {
            error: LogError::io("sync directory after creating segment", dir, source),
            fatal: true,
        })?;
    }
    Ok(())
}

async fn create_temp<E: Env>(
    env: &E,
    temp: &Path,
    image: &[u8],
    segment_bytes: u64,
    pace: Pace,
) -> Result<E::File, NotCreated> {
    assert!(
        image.len() as u64 <= segment_bytes,
        "the image fits the segment"
    );
    let failed = |error| NotCreated {
        error,
        fatal: false,
    };
    let file = match env.open(temp, OpenMode::CreateNew).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            // A previous attempt died half-way; its bytes are worthless.
            env.remove(temp).await.map_err(|source| {
                failed(LogError::io("remove stale temporary segment", temp, source))
            })?;
            env.open(temp, OpenMode::CreateNew)
                .await
                .map_err(|source| failed(LogError::io("create segment", temp, source)))?
        }
        Err(source) => return Err(failed(LogError::io("create segment", temp, source))),
    };
    let mut offset = 0;
    for chunk in image.chunks(ZERO_FILL_CHUNK_BYTES as usize) {
        file.write_at(offset, chunk)
            .await
            .map_err(|source| failed(LogError::io("write segment", temp, source)))?;
        offset += chunk.len() as u64;
    }
    let sync_failed = |source| NotCreated {
        error: LogError::io("sync new segment", temp, source),
        fatal: true,
    };
    if let Pace::Paced(hurry) = pace {
        let mut pacer = Pacer::new(env);
        // Once a rollover waits, the rest goes at full speed with one sync
        // at the end.
        while offset < segment_bytes && !hurry.load(Ordering::Acquire) {
            let to = (offset + pace::SEGMENT_STEP_BYTES).min(segment_bytes);
            zero_fill(&file, temp, offset, to).await.map_err(failed)?;
            file.sync_data().await.map_err(sync_failed)?;
            pacer.pause(env).await;
            offset = to;
        }
    }
    zero_fill(&file, temp, offset, segment_bytes)
        .await
        .map_err(failed)?;
    file.sync_data().await.map_err(sync_failed)?;
    Ok(file)
}

/// Writes zeros over `[from, to)` of `file`, in bounded chunks.
pub(crate) async fn zero_fill<F: File>(
    file: &F,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<(), LogError> {
    let mut offset = from;
    let chunk = vec![0u8; ZERO_FILL_CHUNK_BYTES.min(to.saturating_sub(from)) as usize];
    while offset < to {
        let len = (to - offset).min(ZERO_FILL_CHUNK_BYTES) as usize;
        file.write_at(offset, &chunk[..len])
            .await
            .map_err(|source| LogError::io("zero-fill segment", path, source))?;
        offset += len as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_six_digit_ids() {
        assert_eq!(segment_name(1), "wal-000001.log");
        assert_eq!(segment_name(1_234_567), "wal-1234567.log");
        assert_eq!(classify_name("wal-000001.log"), NameKind::Segment(1));
        assert_eq!(
            classify_name("wal-1234567.log"),
            NameKind::Segment(1_234_567)
        );
        assert_eq!(classify_name("wal-000001.log.tmp"), NameKind::Temp);
        assert_eq!(classify_name("wal-notes.tmp"), NameKind::Other);
        assert_eq!(classify_name("wal-1.log.tmp"), NameKind::Other);
        assert_eq!(classify_name("wal-1.log"), NameKind::Other);
        assert_eq!(classify_name("wal-0000001.log"), NameKind::Other);
        assert_eq!(classify_name("wal-00000a.log"), NameKind::Other);
        assert_eq!(classify_name("LOCK"), NameKind::Other);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            id: 9,
            first_lsn: 1000,
            block_bytes: 4096,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for byte in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[byte] ^= 0x10;
            assert!(
                SegmentHeader::decode(&damaged).is_err(),
                "flip in byte {byte} went unnoticed"
            );
        }
        assert!(SegmentHeader::decode(&bytes[..31]).is_err());
        assert!(
            SegmentHeader::decode(&[0u8; 32]).is_err(),
            "zeros are not a header"
        );
    }

    #[test]
    fn open_headers_round_trip_and_always_name_a_block_size() {
        let open = SegmentHeader::open(4, 4096);
        assert!(open.is_open());
        assert_eq!(SegmentHeader::decode(&open.encode()), Ok(open));
        assert_eq!(open.first_batch_offset(), 4096);
        let unaligned = SegmentHeader {
            id: 4,
            first_lsn: 0,
            block_bytes: 0,
        };
        assert!(
            SegmentHeader::decode(&unaligned.encode()).is_err(),
            "an open header without a block size has no known first batch"
        );
    }
}
