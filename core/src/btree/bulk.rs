//! The bulk path (design 10.5): a batch of puts into an empty tree builds
//! the tree bottom-up, each node packed to [`FILL_PCT`] of a page, instead
//! of inserting key by key (a descent, a copy of the path and a split
//! every few keys, which leaves leaves two-thirds full on average).
//!
//! Invariants kept here, the mutator's (see the module comment of
//! [`btree`](super)): keys ascend across the leaves; every leaf is at level
//! 0 and every internal node one level above its children; child `i + 1`'s
//! smallest key is separator `i`; every node fits its page, every internal
//! node has two children or more, and none but the root is under a quarter
//! of a page; every page built is dirty in the open generation.

use crate::page::{PAGE_HEADER_BYTES, PageId};
use crate::record::{Mutation, Record};

use super::leaf::entry_bytes;
use super::mutator::TREE_HEIGHT_MAX;
use super::node::{
    Body, Child, INTERNAL_ENTRY_OVERHEAD_BYTES, INTERNAL_FIRST_CHILD_BYTES, Internal, Key, Leaf,
    Node,
};
use super::tree::Tree;

/// The fewest puts a batch needs to take the bulk path: below it the
/// ordinary path costs about the same.
pub(crate) const BULK_PUTS_MIN: usize = 64;

/// How full the bulk path packs a node, in per cent of the page: room is
/// left for a few later inserts before the first split.
pub(crate) const FILL_PCT: usize = 90;

/// A node placed in the cache, with the smallest key of its subtree (the
/// separator its parent records before it, unless it is the first child).
struct Placed {
    first: Key,
    id: PageId,
}

/// Cuts items into runs of at most `target` bytes each (a run holds one
/// item at least), then moves items from the next-to-last run into the
/// last until the last holds at least `floor` bytes and `min_items` items.
/// `bytes(i, first_of_run)` is item `i`'s size in a run.
fn runs(
    count: usize,
    bytes: impl Fn(usize, bool) -> usize,
    fixed: usize,
    target: usize,
    floor: usize,
    min_items: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    let mut used = 0;
    for i in 0..count {
        match runs.last_mut() {
            Some(run) if used + bytes(i, false) <= target => {
                run.end = i + 1;
                used += bytes(i, false);
            }
            _ => {
                runs.push(i..i + 1);
                used = fixed + bytes(i, true);
            }
        }
    }
    let size = |run: &std::ops::Range<usize>| {
        fixed + run.clone().map(|i| bytes(i, i == run.start)).sum::<usize>()
    };
    while runs.len() >= 2 {
        let last = runs.len() - 1;
        let short = size(&runs[last]) < floor || runs[last].len() < min_items;
        if !short || runs[last - 1].len() <= min_items {
            break;
        }
        runs[last - 1].end -= 1;
        runs[last].start -= 1;
    }
    runs
}

impl Tree {
    /// Whether `mutations` may take the bulk path: the tree holds no key,
    /// the batch is at least [`BULK_PUTS_MIN`] puts and nothing else, and
    /// its keys strictly ascend (the transaction layer hands them over
    /// sorted; a batch that names a key twice takes the ordinary path,
    /// which applies both in order).
    pub(crate) fn bulk_applies(&self, mutations: &[Mutation]) -> bool {
        let empty = self.keys_count == 0 && self.height == 1;
        (empty || crate::sabotage::sabotaged!(self, BulkOverExisting))
            && mutations.len() >= BULK_PUTS_MIN
            && mutations.iter().all(|m| matches!(m, Mutation::Put { .. }))
            && mutations.windows(2).all(|w| w[0].key() < w[1].key())
    }

    /// Builds the tree from `mutations` (which [`Tree::bulk_applies`]
    /// accepted) at `lsn`, replacing the empty root. Reads no page, so it
    /// cannot stop with a `Need`.
    pub(crate) fn bulk_build(&mut self, mutations: &[Mutation], lsn: u64) {
        assert!(self.bulk_applies(mutations), "the bulk path's conditions");
        let page_bytes = self.page_bytes as usize;
        let target = (page_bytes - PAGE_HEADER_BYTES) * FILL_PCT / 100 + PAGE_HEADER_BYTES;
        let floor = page_bytes / 4;
        let entries: Vec<(&[u8], &Record)> = mutations
            .iter()
            .map(|mutation| match mutation {
                Mutation::Put { key, record } => (key.as_slice(), record),
                Mutation::Delete { .. } => unreachable!("the bulk path takes puts only"),
            })
            .collect();

        let leaf_runs = runs(
            entries.len(),
            |i, _| entry_bytes(entries[i].0.len(), entries[i].1),
            PAGE_HEADER_BYTES,
            target,
            floor,
            1,
        );
        let mut level: Vec<Placed> = leaf_runs
            .into_iter()
            .map(|run| {
                let leaf = Leaf::from_entries(page_bytes, entries[run].iter().copied());
                let first = Key::from_slice(leaf.key(0));
                let id = self.place(Node {
                    lsn,
                    body: Body::Leaf(leaf),
                });
                Placed { first, id }
            })
            .collect();

        let mut height = 1u16;
        while level.len() > 1 {
            let internal_runs = runs(
                level.len(),
                // A node stores the separators of its children but the
                // first (whose smallest key its parent knows).
                |i, first| {
                    if first {
                        0
                    } else {
                        INTERNAL_ENTRY_OVERHEAD_BYTES + level[i].first.len()
                    }
                },
                PAGE_HEADER_BYTES + INTERNAL_FIRST_CHILD_BYTES,
                target,
                floor,
                2,
            );
            let mut children = level.into_iter();
            let mut next = Vec::with_capacity(internal_runs.len());
            for run in internal_runs {
                let group: Vec<Placed> = children.by_ref().take(run.len()).collect();
                let mut group = group.into_iter();
                let head = group.next().expect("a run holds a child");
                let mut internal = Internal {
                    level: height,
                    keys: Vec::with_capacity(run.len() - 1),
                    children: vec![Child {
                        id: head.id,
                        crc: 0,
                    }],
                };
                for child in group {
                    internal.keys.push(child.first);
                    internal.children.push(Child {
                        id: child.id,
                        crc: 0,
                    });
                }
                let id = self.place(Node {
                    lsn,
                    body: Body::Internal(internal),
                });
                next.push(Placed {
                    first: head.first,
                    id,
                });
            }
            level = next;
            height += 1;
            assert!(
                height <= TREE_HEIGHT_MAX,
                "tree taller than {TREE_HEIGHT_MAX}"
            );
        }
        let old_root = self.root;
        self.free_page(old_root);
        self.root = level[0].id;
        self.height = height;
        self.keys_count = mutations.len() as u64;
    }

    /// Gives `node` a page (the lowest free id: in key order, leaves before
    /// their parents) and puts it in the cache, dirty in the open
    /// generation.
    fn place(&mut self, node: Node) -> PageId {
        assert!(
            node.encoded_bytes() <= self.page_bytes as usize,
            "a bulk-built node fits its page"
        );
        let id = self.allocator.allocate();
        self.cache.put_dirty(id, node, self.open_generation);
        id
    }
}
