//! Which pages are free, and when a freed page may be written again.
//!
//! Invariant: a page reachable from the durable superblock (or from the one a
//! checkpoint is writing) is never handed out. A page freed while the tree
//! still reached it from such a superblock waits in `pending` under the
//! generation whose superblock no longer reaches it, and becomes reusable
//! only when that superblock is durable ([`Allocator::generation_durable`]).
//! A page that only ever existed in memory is reusable at once.

use std::collections::{BTreeMap, BTreeSet};

use super::PageId;

pub(crate) struct Allocator {
    /// Pages that may be written now.
    free: BTreeSet<PageId>,
    /// Pages freed in generation `g`, reusable once superblock `g` is durable.
    pending: BTreeMap<u64, Vec<PageId>>,
    /// `data.pages` holds page ids `0 .. page_count` (page 0 is never used).
    page_count: u64,
}

impl Allocator {
    pub(crate) fn new(page_count: u64, free: BTreeSet<PageId>) -> Self {
        assert!(page_count >= 2, "a database has at least its root page");
        debug_assert!(free.iter().all(|id| (1..page_count).contains(id)));
        Allocator {
            free,
            pending: BTreeMap::new(),
            page_count,
        }
    }

    /// Hands out the lowest free page, or grows the file by one page. Low
    /// ids first keeps `data.pages` compact.
    pub(crate) fn allocate(&mut self) -> PageId {
        if let Some(id) = self.free.pop_first() {
            return id;
        }
        let id = self.page_count;
        self.page_count += 1;
        id
    }

    /// Frees a page no superblock reaches.
    pub(crate) fn release_now(&mut self, id: PageId) {
        assert!(
            id != 0 && id < self.page_count,
            "freeing page {id} outside the file"
        );
        let inserted = self.free.insert(id);
        assert!(inserted, "page {id} freed twice");
    }

    /// Frees a page that superblocks before `generation` may still reach.
    pub(crate) fn release_after(&mut self, generation: u64, id: PageId) {
        assert!(
            id != 0 && id < self.page_count,
            "freeing page {id} outside the file"
        );
        self.pending.entry(generation).or_default().push(id);
    }

    /// Superblock `generation` is durable: what it freed may be reused.
    pub(crate) fn generation_durable(&mut self, generation: u64) {
        let later = self.pending.split_off(&(generation + 1));
        for (_, ids) in std::mem::replace(&mut self.pending, later) {
            for id in ids {
                self.release_now(id);
            }
        }
    }

    /// Pages a checkpoint of `generation` records as free: free now, plus
    /// freed by this generation (free once its superblock is durable).
    pub(crate) fn free_as_of(&self, generation: u64) -> Vec<PageId> {
        let mut ids: Vec<PageId> = self.free.iter().copied().collect();
        for (_, pending) in self.pending.range(..=generation) {
            ids.extend_from_slice(pending);
        }
        ids.sort_unstable();
        ids
    }

    /// Takes a specific free page (for the free list's own pages).
    pub(crate) fn take_free(&mut self) -> Option<PageId> {
        self.free.pop_first()
    }

    pub(crate) fn page_count(&self) -> u64 {
        self.page_count
    }

    pub(crate) fn free_count(&self) -> u64 {
        self.free.len() as u64
    }

    /// Every page free now or pending, for consistency checks.
    #[cfg(test)]
    pub(crate) fn all_free_and_pending(&self) -> Vec<PageId> {
        let mut ids: Vec<PageId> = self.free.iter().copied().collect();
        ids.extend(self.pending.values().flatten());
        ids
    }

    pub(crate) fn pending_count(&self) -> u64 {
        self.pending.values().map(|ids| ids.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_freed_under_a_superblock_waits_for_the_next_durable_one() {
        let mut allocator = Allocator::new(2, BTreeSet::new());
        assert_eq!(allocator.allocate(), 2);
        allocator.release_after(5, 1);
        assert_eq!(
            allocator.allocate(),
            3,
            "page 1 must not be reused before generation 5"
        );
        allocator.generation_durable(4);
        assert_eq!(allocator.allocate(), 4);
        allocator.generation_durable(5);
        assert_eq!(allocator.allocate(), 1);
    }

    #[test]
    fn a_page_freed_before_any_superblock_reached_it_is_reused_at_once() {
        let mut allocator = Allocator::new(2, BTreeSet::new());
        let id = allocator.allocate();
        allocator.release_now(id);
        assert_eq!(allocator.allocate(), id);
    }
}
