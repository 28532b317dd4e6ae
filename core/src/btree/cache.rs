//! The page cache: tree pages by id (leaves as their images), CLOCK eviction (an
//! approximation of LRU whose hits cost one store, not two ordered-map
//! updates) within a byte budget, and the dirty pages no checkpoint has
//! written yet.
//!
//! Invariants:
//! - a dirty page is never evicted: it exists nowhere else;
//! - a page someone still holds (a checkpoint writing it, a cursor) is never
//!   evicted: its `Arc` is shared;
//! - every cached page is charged the memory it takes (a leaf its image,
//!   an internal node its decoded arrays, and either its search index
//!   once built), and at least one page. When only dirty or pinned pages remain the
//!   cache may exceed the budget; the store sees [`PageCache::dirty_bytes`]
//!   rise and checkpoints, which makes them clean and evictable.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::btree::node::Node;
use crate::btree::search::SearchIndex;
pub(crate) use crate::btree::search::{Frame, NO_FRAME};

use crate::page::PageId;

/// Evictions give up after skipping this many pinned pages, so a cache full
/// of pinned pages costs a bounded scan per insert.
const EVICTION_SKIPS_MAX: usize = 64;

/// Cache counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found the page in memory.
    pub hits: u64,
    /// Lookups that had to read the page.
    pub misses: u64,
    /// Clean pages dropped to stay within the budget.
    pub evictions: u64,
    /// Search indexes built (a page's first search after it was cached or
    /// changed).
    pub index_builds: u64,
    /// Pages in memory.
    pub pages: u64,
    /// Pages in memory that no checkpoint has written.
    pub dirty_pages: u64,
    /// Bytes charged for pages in memory.
    pub bytes: u64,
    /// The configured budget.
    pub budget_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// On disk as it is here, with this CRC.
    Clean { crc: u32 },
    /// Changed since the superblock generation before `generation` was
    /// sealed; the checkpoint of `generation` writes it.
    Dirty { generation: u64 },
}

struct Slot {
    id: PageId,
    node: Arc<Node>,
    state: SlotState,
    /// Used since the clock hand last passed it.
    referenced: bool,
    /// Position in `ring` while clean.
    ring_at: usize,
    /// Bytes charged to the budget (`charge`, and the index once built).
    charge: u64,
    /// The node's search index, built by the first indexed lookup and
    /// dropped with the version of the node it was built from.
    index: Option<SearchIndex>,
}

/// Hashes page ids by Fibonacci multiplication: fast, and the same in every
/// run.
#[derive(Default)]
struct PageIdHasher(u64);

impl Hasher for PageIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Frame numbers by page id. Hashed because a lookup by id is on the
/// path of every operation that has no frame to start from; the map is
/// never iterated, so its order cannot reach a trace.
#[allow(
    clippy::disallowed_types,
    reason = "a fixed hasher, and the map is never iterated"
)]
type FrameMap = std::collections::HashMap<PageId, Frame, BuildHasherDefault<PageIdHasher>>;

/// How a descent reached the page it asks for: from the root, or from
/// child `at` of the internal page in frame `parent`. A hint that proves
/// stale is corrected there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    Root,
    Child { parent: Frame, at: usize },
}

/// How a descent asks for a page: the link it came by, and the frame that
/// link last found the page in (a hint, checked before it is used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Via {
    pub(crate) hint: Frame,
    pub(crate) link: Link,
}

impl Via {
    /// To child `at` of the internal page in frame `parent`, whose search
    /// index is `index`.
    pub(crate) fn below(index: &SearchIndex, parent: Frame, at: usize) -> Via {
        Via {
            hint: index.frame_hint(at),
            link: Link::Child { parent, at },
        }
    }
}

/// Cached pages: a slab of frames (a freed frame is reused, lowest-recent
/// first), and the frame of each page id.
#[derive(Default)]
struct Frames {
    slots: Vec<Option<Slot>>,
    free: Vec<Frame>,
    by_id: FrameMap,
}

impl Frames {
    fn frame(&self, id: &PageId) -> Option<Frame> {
        self.by_id.get(id).copied()
    }

    fn get(&self, id: &PageId) -> Option<&Slot> {
        let frame = self.frame(id)?;
        self.slots[frame as usize].as_ref()
    }

    fn get_mut(&mut self, id: &PageId) -> Option<&mut Slot> {
        let frame = self.frame(id)?;
        self.slots[frame as usize].as_mut()
    }

    /// The slot in `frame` if it holds page `id`.
    fn at(&self, frame: Frame, id: PageId) -> Option<&Slot> {
        match self.slots.get(frame as usize) {
            Some(Some(slot)) if slot.id == id => Some(slot),
            _ => None,
        }
    }

    /// Puts `slot` in the frame of its page (or a free one), returning the
    /// slot it replaced.
    fn insert(&mut self, slot: Slot) -> Option<Slot> {
        if let Some(frame) = self.frame(&slot.id) {
            return self.slots[frame as usize].replace(slot);
        }
        let frame = match self.free.pop() {
            Some(frame) => frame,
            None => {
                let frame = Frame::try_from(self.slots.len()).expect("fewer frames than u32::MAX");
                assert!(frame != NO_FRAME, "a frame number is never the empty hint");
                self.slots.push(None);
                frame
            }
        };
        self.by_id.insert(slot.id, frame);
        self.slots[frame as usize] = Some(slot);
        None
    }

    fn remove(&mut self, id: &PageId) -> Option<Slot> {
        let frame = self.by_id.remove(id)?;
        self.free.push(frame);
        self.slots[frame as usize].take()
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every cached slot, in frame order.
    fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().flatten()
    }
}

pub(crate) struct PageCache {
    page_bytes: u64,
    budget_bytes: u64,
    slots: Frames,
    /// The frame the root was last found in (a hint, as a parent's).
    root_frame: Frame,
    /// Bytes held outside the page cache under the same budget (the value
    /// log's value cache, design 11.3): evictions keep pages and these
    /// together within it.
    outside: Option<Arc<AtomicU64>>,
    /// Bytes charged for every cached page, and for the dirty ones.
    charged: u64,
    dirty_charged: u64,
    /// Bytes of dirty pages that left the cache (copied on write, freed)
    /// while someone else still held them, by generation: a sealed
    /// checkpoint writing them keeps them in memory until it finishes, so
    /// they count as dirty until [`PageCache::mark_clean`] of their
    /// generation (design 10.7).
    retained: BTreeMap<u64, u64>,
    /// Clean pages, in the order the clock hand visits them.
    ring: Vec<PageId>,
    hand: usize,
    /// Dirty pages per generation.
    dirty: BTreeMap<u64, BTreeSet<PageId>>,
    stats: CacheStats,
}

/// What a cached `node` is charged: its size in memory, and at least a page.
fn charge(page_bytes: u64, node: &Node) -> u64 {
    page_bytes.max(node.memory_bytes() as u64)
}

impl PageCache {
    pub(crate) fn new(page_bytes: u32, budget_bytes: u64) -> Self {
        PageCache {
            page_bytes: u64::from(page_bytes),
            budget_bytes,
            slots: Frames::default(),
            root_frame: NO_FRAME,
            outside: None,
            charged: 0,
            dirty_charged: 0,
            retained: BTreeMap::new(),
            ring: Vec::new(),
            hand: 0,
            dirty: BTreeMap::new(),
            stats: CacheStats {
                budget_bytes,
                ..CacheStats::default()
            },
        }
    }

    /// Whether the page the tree points at (by the id and CRC its parent,
    /// or the superblock, records) is cached, counting a hit or a miss and
    /// marking it used. A clean page cached under another CRC is stale
    /// (read before its id was freed and reused) and is dropped: the cache
    /// serves only what the tree points at.
    fn touch(&mut self, id: PageId, crc: u32) -> bool {
        match self.slots.get_mut(&id) {
            Some(slot) if !matches!(slot.state, SlotState::Clean { crc: cached } if cached != crc) =>
            {
                slot.referenced = true;
                self.stats.hits += 1;
                true
            }
            found => {
                if found.is_some() {
                    self.remove(id);
                }
                self.stats.misses += 1;
                false
            }
        }
    }

    /// A share of the page the tree points at (see [`PageCache::touch`]).
    pub(crate) fn get(&mut self, id: PageId, crc: u32) -> Option<Arc<Node>> {
        // Returning a borrow from one arm of a lookup while the other
        // changes the map is beyond the borrow checker: a hit costs a second
        // (cache-hot) lookup.
        self.touch(id, crc)
            .then(|| Arc::clone(&self.slots.get(&id).expect("touched").node))
    }

    /// [`PageCache::get`] without taking a share of the page: the page and
    /// its search index (built now if this version of the page has none,
    /// and charged to the budget with it), borrowed until the next change
    /// to the cache.
    ///
    /// One hash lookup: a clean copy under another CRC is a miss left in
    /// place, which the read that follows replaces
    /// ([`PageCache::insert_clean`]). Descents use
    /// [`PageCache::get_indexed_at`]; this is for tests.
    #[cfg(test)]
    pub(crate) fn get_indexed(
        &mut self,
        id: PageId,
        crc: u32,
    ) -> Option<(&Arc<Node>, &SearchIndex)> {
        let Some(frame) = self.slots.frame(&id) else {
            self.stats.misses += 1;
            return None;
        };
        self.indexed_in(frame, crc)
            .map(|(_, node, index)| (node, index))
    }

    /// [`PageCache::get_indexed`] for a descent, which asks for page `id`
    /// `via` a link and its hint: a hint that names the frame holding
    /// `id` costs no hash lookup; otherwise the page is looked up by id and
    /// the link's hint corrected (a parent's search index, or the root's).
    /// Returns the page's frame too, for its children's links.
    /// `trust_hint` is for sabotage only: `false` in every real call.
    pub(crate) fn get_indexed_at(
        &mut self,
        id: PageId,
        crc: u32,
        via: Via,
        trust_hint: bool,
    ) -> Option<(Frame, &Arc<Node>, &SearchIndex)> {
        let frame = self.find(id, via, trust_hint)?;
        self.indexed_in(frame, crc)
    }

    /// [`PageCache::get_indexed_at`] without the search index (for a leaf
    /// about to change, whose index the change would drop): a share of
    /// the page.
    pub(crate) fn get_at(
        &mut self,
        id: PageId,
        crc: u32,
        via: Via,
        trust_hint: bool,
    ) -> Option<Arc<Node>> {
        let frame = self.find(id, via, trust_hint)?;
        let slot = self.current_in(frame, crc)?;
        Some(Arc::clone(&slot.node))
    }

    /// The slot in `frame` if it is the version the tree points at (see
    /// [`PageCache::touch`]), counted as a hit and marked used; else a miss.
    fn current_in(&mut self, frame: Frame, crc: u32) -> Option<&mut Slot> {
        let slot = self.slots.slots[frame as usize]
            .as_mut()
            .expect("a frame found by id or hint is in use");
        if matches!(slot.state, SlotState::Clean { crc: cached } if cached != crc) {
            self.stats.misses += 1;
            return None;
        }
        slot.referenced = true;
        self.stats.hits += 1;
        Some(slot)
    }

    /// The frame of page `id`: `hint` if it holds the page (no hash
    /// lookup), else the one found by id, correcting the link's hint. A
    /// page not cached counts a miss.
    fn find(&mut self, id: PageId, Via { hint, link }: Via, trust_hint: bool) -> Option<Frame> {
        let hinted = if trust_hint {
            // Broken on purpose (sabotage `hint-trusted`): whatever page
            // the hinted frame holds is taken for `id`.
            matches!(self.slots.slots.get(hint as usize), Some(Some(_)))
        } else {
            self.slots.at(hint, id).is_some()
        };
        if hinted {
            return Some(hint);
        }
        let Some(frame) = self.slots.frame(&id) else {
            self.stats.misses += 1;
            return None;
        };
        match link {
            Link::Root => self.root_frame = frame,
            Link::Child { parent, at } => {
                if let Some(Some(slot)) = self.slots.slots.get_mut(parent as usize)
                    && let Some(index) = slot.index.as_mut()
                {
                    index.set_frame_hint(at, frame);
                }
            }
        }
        Some(frame)
    }

    /// To child `at` of the page in frame `parent`, with the hint that
    /// page's index keeps (`NO_FRAME` if the frame holds no indexed page).
    pub(crate) fn child_via(&self, parent: Frame, at: usize) -> Via {
        match self.slots.slots.get(parent as usize) {
            Some(Some(Slot {
                index: Some(index), ..
            })) => Via::below(index, parent, at),
            _ => Via {
                hint: NO_FRAME,
                link: Link::Child { parent, at },
            },
        }
    }

    /// To the root, with the frame it was last found in.
    pub(crate) fn root_via(&self) -> Via {
        Via {
            hint: self.root_frame,
            link: Link::Root,
        }
    }

    /// The page in `frame`, if it is the version the tree points at (see
    /// [`PageCache::touch`]), with its search index (built now if missing).
    fn indexed_in(&mut self, frame: Frame, crc: u32) -> Option<(Frame, &Arc<Node>, &SearchIndex)> {
        let slot = self.current_in(frame, crc)?;
        let mut built = None;
        if slot.index.is_none() {
            let index = slot.node.search_index();
            let bytes = index.memory_bytes() as u64;
            slot.charge += bytes;
            built = Some((bytes, matches!(slot.state, SlotState::Dirty { .. })));
            slot.index = Some(index);
        }
        if let Some((bytes, dirty)) = built {
            self.stats.index_builds += 1;
            self.charged += bytes;
            if dirty {
                self.dirty_charged += bytes;
            }
        }
        let slot = self.slots.slots[frame as usize]
            .as_ref()
            .expect("in use, just above");
        let index = slot.index.as_ref().expect("built above");
        Some((frame, &slot.node, index))
    }

    /// Adds a page just read from disk and verified against `crc`. A dirty
    /// page already cached wins, and so does a clean one under the same
    /// CRC; a clean one under another CRC is stale for the reader whose
    /// parent named `crc`, and is replaced (as [`PageCache::touch`] would
    /// have dropped it).
    pub(crate) fn insert_clean(&mut self, id: PageId, node: Arc<Node>, crc: u32) {
        match self.slots.get(&id).map(|slot| slot.state) {
            None => {}
            Some(SlotState::Clean { crc: cached }) if cached != crc => {
                self.remove(id);
            }
            Some(_) => return,
        }
        let charge = charge(self.page_bytes, &node);
        self.charged += charge;
        self.slots.insert(Slot {
            id,
            node,
            state: SlotState::Clean { crc },
            referenced: false,
            ring_at: self.ring.len(),
            charge,
            index: None,
        });
        self.ring.push(id);
        // The page just read is the one an operation is waiting for.
        self.evict(Some(id));
    }

    /// Stores a changed page, to be written by the checkpoint of
    /// `generation`.
    pub(crate) fn put_dirty(&mut self, id: PageId, node: Node, generation: u64) {
        let charge = charge(self.page_bytes, &node);
        let slot = Slot {
            id,
            node: Arc::new(node),
            state: SlotState::Dirty { generation },
            referenced: false,
            ring_at: 0,
            charge,
            index: None,
        };
        if let Some(old) = self.slots.insert(slot) {
            self.forget_state(id, old.state, old.ring_at, old.charge);
        }
        self.charged += charge;
        self.dirty_charged += charge;
        self.dirty.entry(generation).or_default().insert(id);
        // A new dirty page displaces clean ones, so the budget holds as long
        // as clean, unpinned pages remain.
        self.evict(None);
    }

    /// Drops a page that left the tree, returning its state.
    pub(crate) fn remove(&mut self, id: PageId) -> Option<SlotState> {
        let slot = self.slots.remove(&id)?;
        if let SlotState::Dirty { generation } = slot.state
            && Arc::strong_count(&slot.node) > 1
        {
            *self.retained.entry(generation).or_default() += slot.charge;
        }
        self.forget_state(id, slot.state, slot.ring_at, slot.charge);
        Some(slot.state)
    }

    /// Takes a clean page out of the ring (the last one moves into its
    /// place).
    fn ring_remove(&mut self, at: usize) {
        self.ring.swap_remove(at);
        if let Some(&moved) = self.ring.get(at) {
            self.slots
                .get_mut(&moved)
                .expect("ring pages are cached")
                .ring_at = at;
        }
    }

    /// Takes a page that left the cache out of the ring or the dirty set,
    /// and its charge off the budget.
    fn forget_state(&mut self, id: PageId, state: SlotState, ring_at: usize, charge: u64) {
        self.charged -= charge;
        if matches!(state, SlotState::Dirty { .. }) {
            self.dirty_charged -= charge;
        }
        match state {
            SlotState::Clean { .. } => {
                debug_assert_eq!(self.ring[ring_at], id);
                self.ring_remove(ring_at);
            }
            SlotState::Dirty { generation } => {
                if let Some(ids) = self.dirty.get_mut(&generation) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.dirty.remove(&generation);
                    }
                }
            }
        }
    }

    pub(crate) fn state(&self, id: PageId) -> Option<SlotState> {
        self.slots.get(&id).map(|slot| slot.state)
    }

    /// The dirty pages of `generation`, for its checkpoint to write.
    pub(crate) fn dirty_pages(&self, generation: u64) -> Vec<(PageId, Arc<Node>)> {
        let Some(ids) = self.dirty.get(&generation) else {
            return Vec::new();
        };
        ids.iter()
            .map(|id| {
                let slot = self.slots.get(id).expect("dirty pages stay cached");
                (*id, Arc::clone(&slot.node))
            })
            .collect()
    }

    /// The checkpoint of `generation` wrote these pages with the CRCs in
    /// `crcs`: those still cached as dirty in that generation become clean
    /// and evictable.
    pub(crate) fn mark_clean(&mut self, generation: u64, crcs: &BTreeMap<PageId, u32>) {
        // What this generation's checkpoint held outside the cache is
        // dropped with it (and anything older was).
        self.retained = self.retained.split_off(&(generation + 1));
        let Some(ids) = self.dirty.remove(&generation) else {
            return;
        };
        for id in ids {
            let slot = self.slots.get_mut(&id).expect("dirty pages stay cached");
            debug_assert_eq!(slot.state, SlotState::Dirty { generation });
            self.dirty_charged -= slot.charge;
            slot.state = SlotState::Clean {
                crc: *crcs
                    .get(&id)
                    .expect("the checkpoint wrote every dirty page"),
            };
            slot.referenced = false;
            slot.ring_at = self.ring.len();
            self.ring.push(id);
        }
        self.evict(None);
    }

    /// A cached page, without counting a lookup or touching its recency.
    pub(crate) fn peek(&self, id: PageId) -> Option<&Node> {
        self.slots.get(&id).map(|slot| &*slot.node)
    }

    /// Changes one cached page in place, copying it first if a reader or a
    /// checkpoint still holds it. Returns false if it is not cached.
    pub(crate) fn patch(&mut self, id: PageId, update: impl FnOnce(&mut Node)) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        update(Arc::make_mut(&mut slot.node));
        slot.index = None;
        let charge = charge(self.page_bytes, &slot.node);
        self.charged = self.charged - slot.charge + charge;
        if matches!(slot.state, SlotState::Dirty { .. }) {
            self.dirty_charged = self.dirty_charged - slot.charge + charge;
        }
        slot.charge = charge;
        // A page that grew displaces clean ones, as a new page does.
        self.evict(Some(id));
        true
    }

    /// Ids of the dirty pages of generations after `generation`.
    pub(crate) fn dirty_ids_after(&self, generation: u64) -> Vec<PageId> {
        self.dirty
            .range(generation + 1..)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }

    /// CLOCK: the hand sweeps the clean pages, sparing (and clearing) a
    /// page used since its last pass, and evicts the first one that is
    /// neither used nor pinned. Terminates: every step evicts, clears a bit
    /// (at most once per page) or counts a pinned skip.
    fn evict(&mut self, keep: Option<PageId>) {
        let mut skipped = 0;
        let outside = self
            .outside
            .as_ref()
            .map_or(0, |bytes| bytes.load(Ordering::Relaxed));
        while self.bytes() + outside > self.budget_bytes
            && skipped < EVICTION_SKIPS_MAX
            && !self.ring.is_empty()
        {
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let id = self.ring[self.hand];
            let slot = self.slots.get_mut(&id).expect("ring pages are cached");
            if Some(id) == keep || Arc::strong_count(&slot.node) > 1 {
                skipped += 1;
                self.hand += 1;
            } else if slot.referenced {
                slot.referenced = false;
                self.hand += 1;
            } else {
                self.charged -= slot.charge;
                self.slots.remove(&id);
                self.ring_remove(self.hand);
                self.stats.evictions += 1;
            }
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.charged
    }

    /// Bytes of dirty pages: in the cache, and held outside it by a
    /// checkpoint until it finishes.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.dirty_charged + self.retained.values().sum::<u64>()
    }

    /// Counts the bytes in `outside` against the budget (see the field).
    pub(crate) fn share_budget(&mut self, outside: Arc<AtomicU64>) {
        self.outside = Some(outside);
    }

    pub(crate) fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Recomputes the charged and dirty bytes, the clock ring and the dirty
    /// sets from the slots, and panics on any difference from what is kept
    /// incrementally. Walks every slot: for the simulator and tests.
    pub(crate) fn check(&self) {
        let (mut charged, mut dirty_charged) = (0, 0);
        let (mut clean_pages, mut dirty_pages) = (0, 0);
        for (frame, slot) in self.slots.slots.iter().enumerate() {
            let Some(slot) = slot else {
                continue;
            };
            let id = &slot.id;
            assert_eq!(
                self.slots.frame(id),
                Some(frame as Frame),
                "page {id} is found by id in its frame"
            );
            let index_bytes = slot
                .index
                .as_ref()
                .map_or(0, |index| index.memory_bytes() as u64);
            assert_eq!(
                slot.charge,
                charge(self.page_bytes, &slot.node) + index_bytes,
                "page {id} is charged what its node and index take"
            );
            charged += slot.charge;
            match slot.state {
                SlotState::Clean { .. } => {
                    clean_pages += 1;
                    assert_eq!(
                        self.ring.get(slot.ring_at),
                        Some(id),
                        "clean page {id} is in the clock ring where it says"
                    );
                }
                SlotState::Dirty { generation } => {
                    dirty_pages += 1;
                    dirty_charged += slot.charge;
                    assert!(
                        self.dirty
                            .get(&generation)
                            .is_some_and(|ids| ids.contains(id)),
                        "dirty page {id} is in the dirty set of generation {generation}"
                    );
                }
            }
        }
        assert_eq!(
            self.slots.iter().count(),
            self.slots.len(),
            "every frame in use is found by its id"
        );
        assert_eq!(charged, self.charged, "charged bytes");
        assert_eq!(dirty_charged, self.dirty_charged, "dirty bytes");
        assert_eq!(clean_pages, self.ring.len(), "clean pages and the ring");
        let dirty_listed: usize = self.dirty.values().map(BTreeSet::len).sum();
        assert_eq!(dirty_pages, dirty_listed, "dirty pages and the dirty sets");
        assert!(
            self.dirty.values().all(|ids| !ids.is_empty()),
            "no empty dirty set is kept"
        );
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            pages: self.slots.len() as u64,
            dirty_pages: self.dirty.values().map(|ids| ids.len() as u64).sum(),
            bytes: self.bytes(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_of(pages: u64) -> PageCache {
        PageCache::new(4096, pages * 4096)
    }

    #[test]
    fn a_descent_reaches_cached_children_through_frame_hints_and_corrects_stale_ones() {
        use crate::btree::node::{Body, Child, Internal, Key};
        let leaf = || Arc::new(Node::empty_leaf());
        let mut cache = cache_of(16);
        let root = Node {
            lsn: 1,
            body: Body::Internal(Internal {
                level: 1,
                keys: vec![Key::from_slice(b"m")],
                children: vec![Child { id: 2, crc: 0 }, Child { id: 3, crc: 0 }],
            }),
        };
        cache.insert_clean(1, Arc::new(root), 0);
        cache.insert_clean(2, leaf(), 0);
        cache.insert_clean(3, leaf(), 0);
        let (root_frame, _, index) = cache
            .get_indexed_at(1, 0, cache.root_via(), false)
            .expect("cached");
        assert_eq!(index.frame_hint(1), NO_FRAME, "no descent went there yet");
        assert_eq!(cache.root_via().hint, root_frame, "the root's hint is set");
        let link = Link::Child {
            parent: root_frame,
            at: 1,
        };
        let (three, _, _) = cache
            .get_indexed_at(
                3,
                0,
                Via {
                    hint: NO_FRAME,
                    link,
                },
                false,
            )
            .expect("cached");
        let (_, _, index) = cache
            .get_indexed_at(
                1,
                0,
                Via {
                    hint: root_frame,
                    link: Link::Root,
                },
                false,
            )
            .expect("cached");
        assert_eq!(index.frame_hint(1), three, "the parent remembers the frame");
        let hits = cache.stats().hits;
        assert!(
            cache
                .get_indexed_at(3, 0, Via { hint: three, link }, false)
                .is_some()
        );
        assert_eq!(cache.stats().hits, hits + 1);
        // Page 3 leaves and page 4 takes its frame: the hint is stale.
        cache.remove(3);
        cache.insert_clean(4, leaf(), 0);
        assert!(
            cache
                .get_indexed_at(3, 0, Via { hint: three, link }, false)
                .is_none(),
            "a stale hint never serves another page"
        );
        assert!(
            cache
                .get_indexed_at(3, 0, Via { hint: three, link }, true)
                .is_some(),
            "sabotage `hint-trusted` does"
        );
        // Back in another frame, page 3 is found by id and the hint fixed.
        cache.insert_clean(3, leaf(), 0);
        let (moved, _, _) = cache
            .get_indexed_at(3, 0, Via { hint: three, link }, false)
            .expect("cached");
        assert_ne!(moved, three);
        let (_, _, index) = cache
            .get_indexed_at(
                1,
                0,
                Via {
                    hint: root_frame,
                    link: Link::Root,
                },
                false,
            )
            .expect("cached");
        assert_eq!(index.frame_hint(1), moved);
        cache.check();
    }

    #[test]
    fn a_clean_page_used_since_the_hand_passed_is_spared() {
        let mut cache = cache_of(2);
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 0);
        cache.insert_clean(2, Arc::new(Node::empty_leaf()), 0);
        assert!(cache.get(1, 0).is_some());
        cache.insert_clean(3, Arc::new(Node::empty_leaf()), 0);
        assert!(cache.state(2).is_none(), "page 2 was least recently used");
        assert!(cache.state(1).is_some() && cache.state(3).is_some());
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn dirty_and_pinned_pages_are_never_evicted() {
        let mut cache = cache_of(2);
        cache.put_dirty(1, Node::empty_leaf(), 2);
        cache.insert_clean(2, Arc::new(Node::empty_leaf()), 0);
        let pinned = cache.get(2, 0);
        cache.insert_clean(3, Arc::new(Node::empty_leaf()), 0);
        cache.insert_clean(4, Arc::new(Node::empty_leaf()), 0);
        assert!(cache.state(1).is_some(), "dirty page evicted");
        assert!(cache.state(2).is_some(), "pinned page evicted");
        assert!(cache.state(3).is_none(), "the unpinned clean page goes");
        assert!(cache.state(4).is_some(), "the page just read stays");
        drop(pinned);
        cache.mark_clean(2, &BTreeMap::from([(1, 0)]));
        assert!(cache.bytes() <= cache.budget_bytes());
    }

    #[test]
    fn a_page_is_charged_its_image_and_at_least_a_page() {
        use crate::btree::node::{Body, Leaf};
        use crate::record::{Record, StoredValue, ValueType};
        // A leaf as full as a 4 KiB page holds with 24-byte keys and
        // 150-byte values is charged its image: one page, whatever it holds.
        let record = Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(vec![7; 150]),
            expires_at_ms: None,
            revision: 1,
        };
        let mut leaf = Leaf::with_capacity(4096);
        while leaf.encoded_bytes() + 4 + 2 + 24 + record.encoded_bytes() <= 4096 {
            let key = format!("{:024}", leaf.len());
            let at = leaf.len();
            leaf.insert(at, key.as_bytes(), &record);
        }
        let node = Node {
            lsn: 1,
            body: Body::Leaf(leaf),
        };
        let charged = node.memory_bytes() as u64;
        assert_eq!(charged, 4096 + std::mem::size_of::<Node>() as u64);
        let mut cache = cache_of(8);
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 0);
        assert_eq!(cache.bytes(), 4096, "an empty leaf is charged a page");
        cache.put_dirty(2, node, 1);
        assert_eq!(cache.bytes(), 4096 + charged);
        assert_eq!(cache.dirty_bytes(), charged);
        cache.patch(2, |node| {
            if let Body::Leaf(leaf) = &mut node.body {
                *leaf = Leaf::default();
            }
        });
        assert_eq!(cache.bytes(), 2 * 4096, "a patch recharges the page");
        assert_eq!(cache.dirty_bytes(), 4096);
        cache.mark_clean(1, &BTreeMap::from([(2, 0)]));
        assert_eq!(cache.dirty_bytes(), 0);
        cache.remove(2);
        cache.remove(1);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_search_index_is_built_once_per_version_of_a_page_and_charged() {
        use crate::btree::node::Body;
        use crate::record::{Record, StoredValue, ValueType};
        let record = Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(vec![1; 100]),
            expires_at_ms: None,
            revision: 1,
        };
        let mut node = Node::empty_leaf();
        if let Body::Leaf(leaf) = &mut node.body {
            for (at, key) in ["user:0001", "user:0002", "user:0003"].iter().enumerate() {
                leaf.insert(at, key.as_bytes(), &record);
            }
        }
        let mut cache = cache_of(8);
        cache.put_dirty(1, node, 1);
        let unindexed = cache.bytes();
        let (_, index) = cache.get_indexed(1, 0).expect("cached");
        let index_bytes = index.memory_bytes() as u64;
        assert!(index_bytes > 0);
        assert!(cache.get_indexed(1, 0).is_some());
        assert_eq!(cache.stats().index_builds, 1, "a second search reuses it");
        assert_eq!(cache.bytes(), unindexed + index_bytes);
        assert_eq!(cache.dirty_bytes(), unindexed + index_bytes);
        cache.patch(1, |node| {
            if let Body::Leaf(leaf) = &mut node.body {
                leaf.remove(1);
            }
        });
        assert_eq!(cache.bytes(), unindexed, "a change drops the index");
        let (node, index) = cache.get_indexed(1, 0).expect("cached");
        let Body::Leaf(leaf) = &node.body else {
            unreachable!()
        };
        assert_eq!(
            leaf.find(index, b"user:0003"),
            Ok(1),
            "rebuilt for the change"
        );
        assert_eq!(leaf.find(index, b"user:0002"), Err(1));
        assert_eq!(cache.stats().index_builds, 2);
        cache.mark_clean(1, &BTreeMap::from([(1, 5)]));
        assert!(
            cache.get_indexed(1, 6).is_none(),
            "a stale page has no index"
        );
        // The stale copy waits for the read that replaces it.
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 6);
        assert_eq!(cache.bytes(), 4096, "the stale copy and its index went");
        assert!(cache.get_indexed(1, 6).is_some());
        cache.check();
    }

    #[test]
    fn a_dirty_page_a_checkpoint_still_holds_counts_until_it_finishes() {
        let mut cache = cache_of(8);
        cache.put_dirty(1, Node::empty_leaf(), 2);
        cache.put_dirty(2, Node::empty_leaf(), 2);
        // Sealed: the checkpoint of generation 2 holds both pages.
        let sealed = cache.dirty_pages(2);
        assert_eq!(cache.dirty_bytes(), 2 * 4096);
        // Generation 3 copies page 1 away and frees it: it left the cache,
        // not memory.
        cache.remove(1);
        cache.put_dirty(3, Node::empty_leaf(), 3);
        assert_eq!(cache.dirty_bytes(), 3 * 4096, "the held copy still counts");
        drop(sealed);
        cache.mark_clean(2, &BTreeMap::from([(2, 0)]));
        assert_eq!(cache.dirty_bytes(), 4096, "only generation 3's page");
        // A page nobody else holds leaves no count behind.
        cache.remove(3);
        assert_eq!(cache.dirty_bytes(), 0);
        cache.check();
    }

    #[test]
    fn a_clean_page_under_another_crc_is_stale_and_missed() {
        let mut cache = cache_of(4);
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 7);
        assert!(cache.get(1, 8).is_none(), "stale copy returned");
        assert!(cache.state(1).is_none(), "stale copy kept");
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 8);
        assert!(cache.get(1, 8).is_some());
        // An indexed lookup misses a stale copy too, and the read after it
        // replaces it.
        assert!(cache.get_indexed(1, 9).is_none(), "stale copy returned");
        assert_eq!(cache.stats().misses, 2);
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 9);
        assert!(cache.get_indexed(1, 9).is_some());
        assert!(cache.get(1, 8).is_none(), "the replaced copy returned");
        cache.check();
        cache.put_dirty(2, Node::empty_leaf(), 3);
        assert!(cache.get(2, 99).is_some(), "dirty pages have no CRC yet");
    }

    #[test]
    fn the_recount_matches_what_is_kept_through_every_change() {
        let mut cache = cache_of(4);
        for id in 1..=6 {
            cache.insert_clean(id, Arc::new(Node::empty_leaf()), 0);
            cache.check();
        }
        cache.put_dirty(7, Node::empty_leaf(), 2);
        cache.put_dirty(8, Node::empty_leaf(), 3);
        cache.check();
        assert!(
            cache.get_indexed(7, 0).is_some(),
            "builds and charges an index"
        );
        cache.check();
        cache.patch(7, |_| {});
        cache.check();
        cache.mark_clean(2, &BTreeMap::from([(7, 1)]));
        cache.check();
        cache.remove(8);
        cache.check();
        assert!(cache.bytes() <= cache.budget_bytes());
    }

    #[test]
    #[should_panic(expected = "charged bytes")]
    fn a_recount_that_differs_panics() {
        let mut cache = cache_of(4);
        cache.insert_clean(1, Arc::new(Node::empty_leaf()), 0);
        cache.charged += 1;
        cache.check();
    }
}
