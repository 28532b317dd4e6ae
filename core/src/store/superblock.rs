//! Superblocks A and B: the two alternating roots of the durable tree.
//!
//! A checkpoint of generation `g` writes `SUPERBLOCK_A` when `g` is odd and
//! `SUPERBLOCK_B` when it is even, so it always overwrites the older of the
//! two and a torn write leaves the newer one intact. Open picks the valid
//! one with the highest generation.

use flatbuffers::FlatBufferBuilder;
use jubilant_schemas::disk;

use crate::page::{PAGE_NONE, PageId};

use super::meta_file;

const MAGIC: &[u8; 8] = b"JUBSUPER";

/// File names of the two superblocks, indexed by generation parity.
pub(crate) const SUPERBLOCK_FILES: [&str; 2] = ["SUPERBLOCK_B", "SUPERBLOCK_A"];

/// The decoded contents of a superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Checkpoint generation; the higher valid one wins.
    pub generation: u64,
    /// Root page of the tree.
    pub root_page: PageId,
    /// The root page's CRC.
    pub root_crc: u32,
    /// Levels in the tree (1: the root is a leaf).
    pub tree_height: u16,
    /// First free-list page, or 0.
    pub free_list_page: PageId,
    /// Its CRC.
    pub free_list_crc: u32,
    /// Pages the free list records.
    pub free_pages_count: u64,
    /// Every change at or below this LSN is in the tree.
    pub checkpoint_lsn: u64,
    /// Monotonic reading paired with `calibration_wall_unix_ms`.
    pub calibration_mono_nanos: u64,
    /// The TTL clock's reading (Unix ms) when the checkpoint was written,
    /// never below an earlier superblock's: the floor TTL time restarts
    /// from after a crash (SPEC 3).
    pub calibration_wall_unix_ms: u64,
    /// `data.pages` holds pages `0 .. page_count`.
    pub page_count: u64,
    /// Keys in the tree.
    pub keys_count: u64,
}

impl Superblock {
    /// The file a superblock of this generation is written to.
    pub(crate) fn file_name(generation: u64) -> &'static str {
        SUPERBLOCK_FILES[(generation % 2) as usize]
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut builder = FlatBufferBuilder::new();
        let calibration =
            disk::TtlCalibration::new(self.calibration_mono_nanos, self.calibration_wall_unix_ms);
        let root = disk::Superblock::create(
            &mut builder,
            &disk::SuperblockArgs {
                generation: self.generation,
                root_page: self.root_page,
                root_crc: self.root_crc,
                tree_height: self.tree_height,
                free_list_page: self.free_list_page,
                free_list_crc: self.free_list_crc,
                free_pages_count: self.free_pages_count,
                checkpoint_lsn: self.checkpoint_lsn,
                ttl_calibration: Some(&calibration),
                page_count: self.page_count,
                keys_count: self.keys_count,
            },
        );
        builder.finish(root, None);
        meta_file::encode(MAGIC, builder.finished_data())
    }

    /// Decodes a superblock file's bytes and checks its fields agree with
    /// each other, or says why not.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Superblock, String> {
        let body = meta_file::decode(MAGIC, bytes)?;
        let table = flatbuffers::root::<disk::Superblock>(body)
            .map_err(|error| format!("invalid FlatBuffer: {error}"))?;
        let calibration = table.ttl_calibration().ok_or("ttl_calibration missing")?;
        let superblock = Superblock {
            generation: table.generation(),
            root_page: table.root_page(),
            root_crc: table.root_crc(),
            tree_height: table.tree_height(),
            free_list_page: table.free_list_page(),
            free_list_crc: table.free_list_crc(),
            free_pages_count: table.free_pages_count(),
            checkpoint_lsn: table.checkpoint_lsn(),
            calibration_mono_nanos: calibration.mono_nanos(),
            calibration_wall_unix_ms: calibration.wall_unix_ms(),
            page_count: table.page_count(),
            keys_count: table.keys_count(),
        };
        if superblock.root_page == PAGE_NONE || superblock.root_page >= superblock.page_count {
            return Err(format!(
                "root page {} outside 1..{}",
                superblock.root_page, superblock.page_count
            ));
        }
        if superblock.free_list_page >= superblock.page_count {
            return Err(format!(
                "free-list page {} outside the file",
                superblock.free_list_page
            ));
        }
        if superblock.tree_height == 0
            || superblock.tree_height > crate::btree::mutator::TREE_HEIGHT_MAX
        {
            return Err(format!(
                "tree height {} out of range",
                superblock.tree_height
            ));
        }
        if superblock.free_pages_count >= superblock.page_count {
            return Err(format!(
                "{} free pages in a file of {}",
                superblock.free_pages_count, superblock.page_count
            ));
        }
        Ok(superblock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_superblock_round_trips_and_a_torn_one_is_refused() {
        let superblock = Superblock {
            generation: 4,
            root_page: 3,
            root_crc: 0xdead_beef,
            tree_height: 2,
            free_list_page: 5,
            free_list_crc: 9,
            free_pages_count: 1,
            checkpoint_lsn: 77,
            calibration_mono_nanos: 1,
            calibration_wall_unix_ms: 2,
            page_count: 6,
            keys_count: 10,
        };
        let bytes = superblock.encode();
        assert_eq!(Superblock::decode(&bytes), Ok(superblock));
        assert!(Superblock::decode(&bytes[..bytes.len() / 2]).is_err());
        assert_eq!(Superblock::file_name(4), "SUPERBLOCK_B");
        assert_eq!(Superblock::file_name(5), "SUPERBLOCK_A");
    }
}
