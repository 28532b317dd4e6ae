//! The in-memory state of the tree: root, height, cache and allocator, and
//! the lookups every operation starts with.

use std::sync::Arc;

use super::cache::{PageCache, SlotState, Via};
use crate::page::PageId;
use crate::page::allocator::Allocator;
use crate::sabotage::sabotaged;

use super::Need;
use super::node::{Body, Child, Node};
use crate::record::Record;

/// The child a descent goes on to: its position in the parent, its id and
/// CRC, and how to ask the cache for it.
pub(crate) type ChildLink = (usize, Child, Via);

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

    /// One step of a descent toward `key` that keeps its pages (a change's):
    /// the page `id` (asked for `via` its link) and, for an internal page,
    /// the child toward `key`. Like [`Tree::get`], no hash
    /// lookup where the hints hold.
    pub(crate) fn step_toward(
        &mut self,
        key: &[u8],
        (id, crc, level): (PageId, u32, u16),
        via: Via,
    ) -> Result<(Arc<Node>, Option<ChildLink>), Need> {
        let trust = sabotaged!(self, HintTrusted);
        if level == 0 {
            // A leaf about to change: its search index would be dropped
            // by the change, so none is built.
            let Some(node) = self.cache.get_at(id, crc, via, trust) else {
                return Err(Need { id, crc, level });
            };
            assert_eq!(node.level(), level, "cached page {id} at the wrong level");
            return Ok((node, None));
        }
        let Some((frame, node, index)) = self.cache.get_indexed_at(id, crc, via, trust) else {
            return Err(Need { id, crc, level });
        };
        assert_eq!(index.level(), level, "cached page {id} at the wrong level");
        let (at, child) = node.child_at_by(index, key);
        let below = Via::below(index, frame, at);
        Ok((Arc::clone(node), Some((at, child, below))))
    }

    /// Where a descent starts: the root, and its frame hint.
    pub(crate) fn root_via(&self) -> Via {
        self.cache.root_via()
    }

    pub(crate) fn root_need(&self) -> (PageId, u32, u16) {
        (self.root, self.root_crc, self.height - 1)
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Record>, Need> {
        let (mut id, mut crc, mut level) = self.root_need();
        let mut via = self.root_via();
        loop {
            // Borrowed, not cloned: a point read holds no page past its
            // own step, and the search runs on the page's index (internal
            // nodes' children included, so their pages are hardly read).
            // Each child is reached through the frame its parent's index
            // remembers, so a cached path costs no hash lookup (10.1).
            let trust = sabotaged!(self, HintTrusted);
            let Some((frame, node, index)) = self.cache.get_indexed_at(id, crc, via, trust) else {
                return Err(Need { id, crc, level });
            };
            assert_eq!(index.level(), level, "cached page {id} at the wrong level");
            if level > 0 {
                let (at, child) = node.child_at_by(index, key);
                (id, crc, level) = (child.id, child.crc, level - 1);
                via = Via::below(index, frame, at);
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
