//! Relocation of the pages at the end of `data.pages` (design 5.9): the
//! half of the space rules that truncation alone cannot do.
//!
//! Copy-on-write moves every changed page to the lowest free id, but the
//! copies a large commit makes land at the end of the file while the pages
//! they replace are still pending, and once those are free the tail is
//! live: truncation finds nothing to cut. So a checkpoint, when at least a
//! quarter of the file (and at least the truncation minimum) is free or
//! pending (a close asks for less, [`Store::set_compacting`]) and the
//! cache has room, first moves a bounded number of the
//! tree pages with the highest ids down ([`crate::btree::relocate`]). It
//! writes them at their new ids; their old ids are pending until its
//! superblock is durable, and the next checkpoint cuts the tail they free.
//!
//! Invariant: relocation changes no key, record or LSN, and frees what it
//! moves only under the open generation: the durable superblock's pages
//! are never reused before a superblock that does not reach them is
//! durable. Sabotage `relocate-frees-now` breaks exactly this.

use crate::env::Env;

use super::{State, Store, StoreError};

/// Tree pages one checkpoint moves at most (4 MiB of 4 KiB pages): bounded,
/// so a checkpoint's extra reads and writes stay a step, not a rewrite.
pub(crate) const RELOCATE_STEP_PAGES: usize = 1024;

impl State {
    /// Whether enough of the file is free or pending that moving its tail
    /// down is worth the writes, and dirty pages leave the cache room.
    fn worth_relocating(&self) -> bool {
        let allocator = &self.tree.allocator;
        let wasted = allocator.free_count() + allocator.pending_count();
        self.failed.is_none()
            && self.unwritten.is_none()
            && wasted >= self.truncate_tail_pages_min.max(1)
            && (self.compacting || wasted * 4 >= allocator.page_count())
            && self.tree.cache.dirty_bytes() < self.tree.cache.budget_bytes() / 4
    }
}

impl<E: Env> Store<E> {
    /// Makes relocation run, from now on, whenever a tail worth a cut is
    /// free or pending, however small a part of the file (a close sets
    /// it: the file it leaves should hold its live pages and little else).
    pub(crate) fn set_compacting(&self) {
        self.state().compacting = true;
    }

    /// Whether a checkpoint now would move pages down (see
    /// [`State::worth_relocating`]).
    pub(crate) fn worth_relocating(&self) -> bool {
        self.state().worth_relocating()
    }

    /// Moves up to `max_pages` of the tree pages with the highest ids down
    /// to free ids, when [`State::worth_relocating`]; the next checkpoint
    /// writes them. Returns how many moved.
    pub(crate) async fn relocate_tail(&self, max_pages: usize) -> Result<u64, StoreError> {
        let candidates = self
            .with_pages(|state| {
                if !state.worth_relocating() {
                    return Ok(Vec::new());
                }
                state.tree.relocation_candidates(max_pages)
            })
            .await?;
        let mut moved = 0;
        for candidate in &candidates {
            if self
                .with_pages(|state| state.tree.relocate(candidate))
                .await?
            {
                moved += 1;
            }
        }
        self.state().stats.pages_relocated += moved;
        Ok(moved)
    }
}
