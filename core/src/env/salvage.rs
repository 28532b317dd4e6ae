//! Reading through medium errors: a read that keeps failing is damage, not
//! an outage.
//!
//! A disk may fail a read once (a transient error: try again) or every
//! time (a latent sector error: the sector is gone until rewritten). An
//! engine that turns the second kind into an I/O error cannot open, or
//! fails every operation that touches the sector, forever; and it never
//! learns *where* the damage is. So every read of stored data goes through
//! [`read_salvaging`].
//!
//! Invariant kept here: **an unreadable sector reads as bytes that verify
//! nothing** ([`UNREADABLE_FILL`]): every format the engine reads (WAL
//! frames and batch headers, pages, superblocks) is
//! checksummed, and a run of `0xFF` is neither a valid checksum nor a
//! length that fits, nor the zeros that end a WAL segment. The readers'
//! own rules for damage (torn tail or refusal, fall back to the other
//! superblock, a typed corruption error) then apply unchanged, at the
//! right offset.

use std::io;

use super::File;

/// What an unreadable sector reads as.
pub const UNREADABLE_FILL: u8 = 0xFF;
/// The unit a read is narrowed to when it keeps failing.
pub const SALVAGE_SECTOR_BYTES: u64 = 512;
/// Attempts at a whole read, then at each of its sectors, before they are
/// taken as unreadable.
const ATTEMPTS: u32 = 3;

/// A salvaging read's result.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Salvaged {
    /// The bytes read, as [`File::read_at`] returns them (fewer only where
    /// the file ends), unreadable sectors filled with [`UNREADABLE_FILL`].
    pub bytes: Vec<u8>,
    /// Sectors that kept failing and were filled.
    pub unreadable_sectors: u64,
}

/// Reads `len` bytes at `offset` as [`File::read_at`] does, retrying a
/// failed read; if it keeps failing, reads it sector by sector, and fills
/// each sector that keeps failing with [`UNREADABLE_FILL`]. Errors only
/// when the file's length cannot be had.
pub async fn read_salvaging<F: File>(file: &F, offset: u64, len: usize) -> io::Result<Salvaged> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match file.read_at(offset, len).await {
            Ok(bytes) => {
                return Ok(Salvaged {
                    bytes,
                    unreadable_sectors: 0,
                });
            }
            Err(error) => last = Some(error),
        }
    }
    let file_len = file.len().await.map_err(|error| match last {
        Some(read) => io::Error::new(read.kind(), format!("{read}; then length: {error}")),
        None => error,
    })?;
    let end = offset.saturating_add(len as u64).min(file_len);
    let mut salvaged = Salvaged::default();
    let mut at = offset;
    while at < end {
        let sector_end = ((at / SALVAGE_SECTOR_BYTES) + 1) * SALVAGE_SECTOR_BYTES;
        let want = (sector_end.min(end) - at) as usize;
        let mut sector = None;
        for _ in 0..ATTEMPTS {
            if let Ok(bytes) = file.read_at(at, want).await {
                sector = Some(bytes);
                break;
            }
        }
        match sector {
            // The file ended early (it shrank meanwhile): so does the read.
            Some(bytes) if bytes.len() < want => {
                salvaged.bytes.extend_from_slice(&bytes);
                break;
            }
            Some(bytes) => salvaged.bytes.extend_from_slice(&bytes),
            None => {
                salvaged.unreadable_sectors += 1;
                salvaged
                    .bytes
                    .resize(salvaged.bytes.len() + want, UNREADABLE_FILL);
            }
        }
        at += want as u64;
    }
    debug_assert!(salvaged.bytes.len() <= len);
    Ok(salvaged)
}
