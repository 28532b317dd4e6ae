//! The in-memory state of the tree: root, height, cache and allocator, and
//! the lookups every operation starts with.

use std::sync::Arc;

use super::cache::{PageCache, SlotState};
use crate::page::PageId;
use crate::page::allocator::Allocator;

use super::Need;
use super::node::{Body, Node};
use crate::record::Record;

pub(crate) struct Tree {
    pub(crate) cache: PageCache,
    pub(crate) allocator: Allocator,
    pub(crate) root: PageId,
    /// The root's checksum as last written; meaningful while it is clean.
    pub(crate) root_crc: u32,
    /// Levels: 1 when the root is a leaf.
    pub(crate) height: u16,
    pub(crate) keys_count: u64,
    /// The generation the next checkpoint will write; changes made now
    /// belong to it.
    pub(crate) open_generation: u64,
    pub(crate) page_bytes: u32,
    /// Switches that break the tree on purpose (tests only): sabotage
    /// `checkpoint-in-place` changes clean pages in place instead of
    /// copying them.
    #[cfg(feature = "sabotage")]
    pub(crate) sabotage: crate::sabotage::Sabotage,
}

impl Tree {
    /// A cached page, or the [`Need`] to read it.
    pub(crate) fn fetch(&mut self, id: PageId, crc: u32, level: u16) -> Result<Arc<Node>, Need> {
        match self.cache.get(id, crc) {
            Some(node) => {
                assert_eq!(node.level(), level, "cached page {id} at the wrong level");
                Ok(node)
            }
            None => Err(Need { id, crc, level }),
        }
    }

    pub(crate) fn root_need(&self) -> (PageId, u32, u16) {
        (self.root, self.root_crc, self.height - 1)
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Record>, Need> {
        let (mut id, mut crc, mut level) = self.root_need();
        loop {
            // Borrowed, not cloned: a point read holds no page past its
            // own step, and the search runs on the page's index (internal
            // nodes' children included, so their pages are hardly read).
            let Some((node, index)) = self.cache.get_indexed(id, crc) else {
                return Err(Need { id, crc, level });
            };
            assert_eq!(index.level(), level, "cached page {id} at the wrong level");
            if level > 0 {
                let child = node.child_by(index, key);
                (id, crc, level) = (child.id, child.crc, level - 1);
                continue;
            }
            let Body::Leaf(leaf) = &node.body else {
                unreachable!("a page at level 0 is a leaf")
            };
            return Ok(leaf
                .find(index, key)
                .ok()
                .map(|at| leaf.record(at).to_record()));
        }
    }

    /// Whether a page was changed since the last seal (so it may be changed
    /// again in place).
    pub(crate) fn is_open_dirty(&self, id: PageId) -> bool {
        self.cache.state(id)
            == Some(SlotState::Dirty {
                generation: self.open_generation,
            })
    }

    /// Takes a page out of the tree: reusable at once if no superblock ever
    /// reached it, otherwise after the open generation's superblock is
    /// durable.
    pub(crate) fn free_page(&mut self, id: PageId) {
        match self.cache.remove(id) {
            Some(SlotState::Dirty { generation }) if generation == self.open_generation => {
                self.allocator.release_now(id);
            }
            _ => self.allocator.release_after(self.open_generation, id),
        }
    }
}
