//! Which pages are free, and when a freed page may be written again.
//!
//! Invariant: a page reachable from the durable superblock (or from the one a
//! checkpoint is writing) is never handed out. A page freed while the tree
//! still reached it from such a superblock waits in `pending` under the
//! generation whose superblock no longer reaches it, and becomes reusable
//! only when that superblock is durable ([`Allocator::generation_durable`]).
//! A page that only ever existed in memory is reusable at once.
//!
//! While a backup pins superblock `p` ([`Allocator::pin`]), a page freed in
//! any generation after `p` is still reachable from `p`: it stays pending
//! until the pin is dropped, whatever superblocks become durable meanwhile
//! (design 12.1).

use std::collections::{BTreeMap, BTreeSet};

use super::PageId;

pub(crate) struct Allocator {
    /// Pages that may be written now.
    free: BTreeSet<PageId>,
    /// Pages freed in generation `g`, reusable once superblock `g` is durable.
    pending: BTreeMap<u64, Vec<PageId>>,
    /// `data.pages` holds page ids `0 .. page_count` (page 0 is never used).
    page_count: u64,
    /// The generation a backup pins: pending pages freed after it are kept.
    pinned: Option<u64>,
    /// The newest durable generation, so an unpin releases what it held.
    durable: u64,
}

impl Allocator {
    pub(crate) fn new(page_count: u64, free: BTreeSet<PageId>) -> Self {
        assert!(page_count >= 2, "a database has at least its root page");
        debug_assert!(free.iter().all(|id| (1..page_count).contains(id)));
        Allocator {
            free,
            pending: BTreeMap::new(),
            page_count,
            pinned: None,
            durable: 0,
        }
    }

    /// Keeps every page superblock `generation` (the durable one) reaches
    /// from reuse until [`Allocator::unpin`]: pages freed after it stay
    /// pending. One pin at a time.
    pub(crate) fn pin(&mut self, generation: u64) {
        assert!(self.pinned.is_none(), "one pin at a time");
        debug_assert!(
            self.pending.keys().all(|&freed| freed > generation),
            "what the pinned superblock freed is free already"
        );
        self.pinned = Some(generation);
    }

    /// Drops the pin: what the durable superblock no longer reaches is
    /// free now.
    pub(crate) fn unpin(&mut self) {
        assert!(self.pinned.take().is_some(), "unpin without a pin");
        self.generation_durable(self.durable);
    }

    /// The pinned generation, if any.
    pub(crate) fn pinned(&self) -> Option<u64> {
        self.pinned
    }

    /// Pages kept pending only because of the pin.
    pub(crate) fn pinned_pages(&self) -> u64 {
        match self.pinned {
            Some(_) => self
                .pending
                .range(..=self.durable)
                .map(|(_, ids)| ids.len() as u64)
                .sum(),
            None => 0,
        }
    }

    /// Whether a durable superblock of `generation` would make any pending
    /// page free (a pin may hold them all).
    pub(crate) fn pending_releasable_by(&self, generation: u64) -> bool {
        let through = self.pinned.map_or(generation, |pin| pin.min(generation));
        self.pending.range(..=through).next().is_some()
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

    /// Superblock `generation` is durable: what it freed may be reused,
    /// unless a pinned older superblock still reaches it.
    pub(crate) fn generation_durable(&mut self, generation: u64) {
        self.durable = self.durable.max(generation);
        let through = self.pinned.map_or(generation, |pin| pin.min(generation));
        let later = self.pending.split_off(&(through + 1));
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

    /// Gives back the free pages at the end of the file when there are at
    /// least `min_pages` of them: every id from the returned count up was
    /// free now (reachable from no superblock, durable or being written),
    /// and is forgotten; the file may be cut to the new count once a
    /// superblock naming it is durable. Pages still pending stay: a
    /// durable superblock may reach them.
    pub(crate) fn truncate_free_tail(&mut self, min_pages: u64) -> Option<u64> {
        let start = self.page_count - self.free_tail_pages();
        if self.page_count - start < min_pages.max(1) {
            return None;
        }
        let _tail = self.free.split_off(&start);
        self.page_count = start;
        debug_assert!(self.free.iter().all(|id| *id < start));
        debug_assert!(self.pending.values().flatten().all(|id| *id < start));
        Some(start)
    }

    /// How many of the highest ids are free now (page 1 never counts: a
    /// file keeps its root's page).
    pub(crate) fn free_tail_pages(&self) -> u64 {
        let mut start = self.page_count;
        while start > 2 && self.free.contains(&(start - 1)) {
            start -= 1;
        }
        self.page_count - start
    }

    /// Takes a specific free page (for the free list's own pages).
    pub(crate) fn take_free(&mut self) -> Option<PageId> {
        self.free.pop_first()
    }

    /// The lowest id free now.
    pub(crate) fn lowest_free(&self) -> Option<PageId> {
        self.free.first().copied()
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
    fn only_a_free_tail_is_given_back_and_pending_pages_stay() {
        let mut allocator = Allocator::new(10, (3..10).collect());
        allocator.release_after(4, 2);
        assert_eq!(allocator.truncate_free_tail(8), None, "7 free, 8 asked");
        assert_eq!(allocator.truncate_free_tail(2), Some(3));
        assert_eq!(allocator.page_count(), 3);
        assert_eq!(allocator.free_count(), 0);
        assert_eq!(allocator.allocate(), 3, "the file grows again from the cut");
        allocator.generation_durable(4);
        assert_eq!(allocator.allocate(), 2);
        let mut full = Allocator::new(4, BTreeSet::new());
        assert_eq!(full.truncate_free_tail(1), None, "nothing free");
    }

    #[test]
    fn a_pin_keeps_what_its_superblock_reaches_until_it_is_dropped() {
        let mut allocator = Allocator::new(2, BTreeSet::new());
        allocator.generation_durable(3);
        allocator.pin(3);
        allocator.release_after(4, 1);
        let fresh = allocator.allocate();
        allocator.release_after(5, fresh);
        assert!(!allocator.pending_releasable_by(5), "all of it is pinned");
        allocator.generation_durable(4);
        allocator.generation_durable(5);
        assert_eq!(allocator.pinned_pages(), 2);
        assert_eq!(allocator.allocate(), 3, "pinned pages are not handed out");
        allocator.unpin();
        assert_eq!(allocator.pinned_pages(), 0);
        assert_eq!(allocator.allocate(), 1);
        assert_eq!(allocator.allocate(), 2);
        // Freed after the unpin: waits for its own superblock only.
        allocator.release_after(6, 1);
        assert!(allocator.pending_releasable_by(6));
        allocator.generation_durable(6);
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
