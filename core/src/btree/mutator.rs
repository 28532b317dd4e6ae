//! Insert, overwrite and delete, with splits on overflow and merges or
//! rebalancing on underflow, applied copy-on-write.
//!
//! An operation runs in two phases. The first works on private copies of the
//! root-to-leaf path (and of a sibling when a node underflows) and may stop
//! with [`Need`]; nothing shared has changed then. The second cannot fail:
//! it gives every changed node its page id (the same id if the page is
//! dirty in the open generation, a new one otherwise), stores it in the
//! cache as dirty, and frees the ids that left the tree.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::page::{PAGE_HEADER_BYTES, PageId};

use super::Need;
use crate::record::{Mutation, VlogPointer};

use super::leaf::entry_bytes;
use super::node::{Body, Child, Internal, Key, Leaf, Node};
use super::tree::Tree;

/// Ids at or above this name nodes created by the running operation that
/// have no page yet (real page ids never come near it).
const TEMP_ID_BASE: PageId = 1 << 62;

/// The most levels a tree may have. With four separators per internal page
/// at the very least, 32 levels hold more keys than any disk.
pub(crate) const TREE_HEIGHT_MAX: u16 = 32;

struct Step {
    /// The page's id before this operation.
    id: PageId,
    node: Arc<Node>,
    /// The node's index among its parent's children.
    index: usize,
}

impl Tree {
    fn overflows(&self, node: &Node) -> bool {
        node.encoded_bytes() > self.page_bytes as usize
    }

    fn underflows(&self, node: &Node) -> bool {
        node.encoded_bytes() < self.page_bytes as usize / 4
    }

    /// Applies one mutation at `lsn`. Returns whether the tree changed.
    #[cfg(test)]
    pub(crate) fn apply(&mut self, mutation: &Mutation, lsn: u64) -> Result<bool, Need> {
        self.apply_replacing(mutation, lsn)
            .map(|(changed, _)| changed)
    }

    /// Applies one mutation at `lsn`. Returns whether the tree changed and,
    /// if it did, the value-log pointer of the record it replaced or
    /// removed (so value-log usage follows the tree exactly).
    pub(crate) fn apply_replacing(
        &mut self,
        mutation: &Mutation,
        lsn: u64,
    ) -> Result<(bool, Option<VlogPointer>), Need> {
        let key = mutation.key();
        let mut path: Vec<Step> = Vec::with_capacity(usize::from(self.height));
        let (mut id, mut crc, mut level) = self.root_need();
        let mut via = self.root_via();
        let mut index = 0;
        loop {
            let (node, next) = self.step_toward(key, (id, crc, level), via)?;
            path.push(Step { id, node, index });
            let Some((at, child, below)) = next else {
                break;
            };
            (id, crc, level, index, via) = (child.id, child.crc, level - 1, at, below);
        }

        let leaf_step = path.last().expect("the path reaches a leaf");
        let Body::Leaf(current) = &leaf_step.node.body else {
            unreachable!("the path ends at a leaf")
        };
        let Some(bytes_after) = bytes_after(current, leaf_step.node.encoded_bytes(), mutation)
        else {
            return Ok((false, None));
        };
        let replaced = current
            .search(key)
            .ok()
            .and_then(|at| current.record(at).vlog());
        // Broken on purpose (tests only): a removal leaves the moved cells'
        // slots at their old offsets.
        let unshifted = crate::sabotage::sabotaged!(self, SlotOffsetsUnshifted);

        // Fast path: a leaf already copied in the open generation has
        // ancestors that were copied with it, and none of them changes
        // unless the leaf splits or merges; so the leaf changes where it is.
        let leaf_id = leaf_step.id;
        let is_root = path.len() == 1;
        if self.is_open_dirty(leaf_id)
            && bytes_after <= self.page_bytes as usize
            && (is_root || bytes_after >= self.page_bytes as usize / 4)
        {
            drop(path);
            let mut keys_delta = 0;
            self.cache.patch(leaf_id, |node| {
                node.lsn = node.lsn.max(lsn);
                let Body::Leaf(leaf) = &mut node.body else {
                    unreachable!("the path ends at a leaf")
                };
                keys_delta = change_leaf(leaf, mutation, unshifted);
            });
            self.add_keys(keys_delta);
            return Ok((true, replaced));
        }

        // Phase 1: private copies.
        let mut nodes: Vec<Node> = Vec::with_capacity(path.len());
        let mut leaf = (*leaf_step.node).clone();
        let Body::Leaf(entries) = &mut leaf.body else {
            unreachable!("the path ends at a leaf")
        };
        let keys_delta = change_leaf(entries, mutation, unshifted);
        for step in &path[..path.len() - 1] {
            nodes.push((*step.node).clone());
        }
        nodes.push(leaf);

        let mut writes: Vec<(PageId, Node)> = Vec::new();
        let mut frees: Vec<PageId> = Vec::new();
        let mut temp_next = TEMP_ID_BASE;
        let mut temp = || {
            temp_next += 1;
            temp_next
        };
        let mut root_key = self.root;
        let mut height = self.height;
        for depth in (0..path.len()).rev() {
            let node = std::mem::replace(&mut nodes[depth], Node::empty_leaf());
            let node_key = path[depth].id;
            if depth == 0 {
                if self.overflows(&node) {
                    let level = node.level();
                    let (left, separator, right) = split(node, self.page_bytes);
                    let right_key = temp();
                    let new_root = temp();
                    writes.push((node_key, left));
                    writes.push((right_key, right));
                    writes.push((
                        new_root,
                        Node {
                            lsn,
                            body: Body::Internal(Internal {
                                level: level + 1,
                                keys: vec![separator],
                                children: vec![
                                    Child {
                                        id: node_key,
                                        crc: 0,
                                    },
                                    Child {
                                        id: right_key,
                                        crc: 0,
                                    },
                                ],
                            }),
                        },
                    ));
                    root_key = new_root;
                    height += 1;
                    assert!(
                        height <= TREE_HEIGHT_MAX,
                        "tree taller than {TREE_HEIGHT_MAX}"
                    );
                } else if let Body::Internal(internal) = &node.body
                    && internal.keys.is_empty()
                {
                    root_key = internal.children[0].id;
                    frees.push(node_key);
                    height -= 1;
                } else {
                    writes.push((node_key, node));
                }
                break;
            }
            let index = path[depth].index;
            let (parent_nodes, _) = nodes.split_at_mut(depth);
            let Body::Internal(parent) = &mut parent_nodes[depth - 1].body else {
                unreachable!("a node above another is internal")
            };
            if self.overflows(&node) {
                let (left, separator, right) = split(node, self.page_bytes);
                let right_key = temp();
                writes.push((node_key, left));
                writes.push((right_key, right));
                parent.keys.insert(index, separator);
                parent.children.insert(
                    index + 1,
                    Child {
                        id: right_key,
                        crc: 0,
                    },
                );
            } else if self.underflows(&node) {
                let sibling_index = if index > 0 { index - 1 } else { index + 1 };
                let sibling_child = parent.children[sibling_index];
                let sibling =
                    (*self.fetch(sibling_child.id, sibling_child.crc, node.level())?).clone();
                let (left_index, left_key, left, right_key, right) = if sibling_index < index {
                    (sibling_index, sibling_child.id, sibling, node_key, node)
                } else {
                    (index, node_key, node, sibling_child.id, sibling)
                };
                let separator = parent.keys[left_index].clone();
                let combined = concat(left, separator, right);
                if !self.overflows(&combined) {
                    writes.push((left_key, combined));
                    frees.push(right_key);
                    parent.keys.remove(left_index);
                    parent.children.remove(left_index + 1);
                } else {
                    let (left, separator, right) = split(combined, self.page_bytes);
                    writes.push((left_key, left));
                    writes.push((right_key, right));
                    parent.keys[left_index] = separator;
                }
            } else {
                writes.push((node_key, node));
            }
        }

        // Phase 2: cannot fail.
        let mut placed: BTreeMap<PageId, PageId> = BTreeMap::new();
        for (node_key, mut node) in writes {
            if let Body::Internal(internal) = &mut node.body {
                for child in &mut internal.children {
                    if let Some(&id) = placed.get(&child.id) {
                        *child = Child { id, crc: 0 };
                    }
                }
            }
            node.lsn = node.lsn.max(lsn);
            let id = if node_key >= TEMP_ID_BASE {
                self.allocator.allocate()
            } else if crate::sabotage::sabotaged!(self, CheckpointInPlace)
                || self.is_open_dirty(node_key)
            {
                node_key
            } else {
                self.free_page(node_key);
                self.allocator.allocate()
            };
            crate::expensive_assert!(node.encoded_bytes() <= self.page_bytes as usize);
            self.cache.put_dirty(id, node, self.open_generation);
            placed.insert(node_key, id);
        }
        for id in frees {
            self.free_page(id);
        }
        self.root = placed.get(&root_key).copied().unwrap_or(root_key);
        self.height = height;
        self.add_keys(keys_delta);
        Ok((true, replaced))
    }

    /// Applies a run of `mutations` that fall in one leaf with one descent,
    /// not one each (design 10.5; the transaction layer hands a commit's
    /// mutations over sorted, so its runs are long): once the first has
    /// made its leaf dirty in the open generation, every following
    /// mutation whose key lies in the leaf's range and that keeps the leaf
    /// within a page (and above a quarter of one, unless it is the root)
    /// changes the leaf where it is, as [`Tree::apply_replacing`]'s fast
    /// path would; the run ends at the first that does not. Returns each
    /// applied mutation's outcome, in order (at least one); the caller goes
    /// on with the rest.
    pub(crate) fn apply_run(
        &mut self,
        mutations: &[Mutation],
        lsn: u64,
    ) -> Result<Vec<(bool, Option<VlogPointer>)>, Need> {
        let first = mutations.first().expect("a run holds a mutation");
        let (mut id, mut crc, mut level) = self.root_need();
        // The nearest separators left and right of the path: the leaf
        // holds exactly the keys in [lower, upper).
        let (mut lower, mut upper): (Option<Key>, Option<Key>) = (None, None);
        let mut via = self.root_via();
        while level > 0 {
            let (node, next) = self.step_toward(first.key(), (id, crc, level), via)?;
            let (Body::Internal(internal), Some((at, child, below))) = (&node.body, next) else {
                unreachable!("a page above level 0 is internal")
            };
            if let Some(separator) = internal.keys.get(at) {
                upper = Some(separator.clone());
            }
            if at > 0 {
                lower = Some(internal.keys[at - 1].clone());
            }
            (id, crc, level, via) = (child.id, child.crc, level - 1, below);
        }
        let leaf_id = id;
        if !self.is_open_dirty(leaf_id) {
            // The first change copies the path; the rest of the run then
            // finds the leaf dirty.
            return Ok(vec![self.apply_replacing(first, lsn)?]);
        }
        let page_bytes = self.page_bytes as usize;
        let is_root = self.height == 1;
        // Broken on purpose (tests only): the leaf's lower bound is ignored.
        let past_leaf = crate::sabotage::sabotaged!(self, RunPastLeaf);
        let unshifted = crate::sabotage::sabotaged!(self, SlotOffsetsUnshifted);
        let mut outcomes = Vec::new();
        let mut keys_delta = 0;
        self.cache.patch(leaf_id, |node| {
            let bytes = node.encoded_bytes();
            let Body::Leaf(leaf) = &mut node.body else {
                unreachable!("level 0 is a leaf")
            };
            let mut bytes = bytes;
            for mutation in mutations {
                let key = mutation.key();
                if upper.as_deref().is_some_and(|upper| key >= upper)
                    || (lower.as_deref().is_some_and(|lower| key < lower) && !past_leaf)
                {
                    break;
                }
                let Some(after) = bytes_after(leaf, bytes, mutation) else {
                    outcomes.push((false, None));
                    continue;
                };
                if after > page_bytes || (!is_root && after < page_bytes / 4) {
                    // A split or a merge: the ordinary path.
                    break;
                }
                let replaced = leaf
                    .search(mutation.key())
                    .ok()
                    .and_then(|at| leaf.record(at).vlog());
                keys_delta += change_leaf(leaf, mutation, unshifted);
                bytes = after;
                outcomes.push((true, replaced));
            }
            if outcomes.iter().any(|(changed, _)| *changed) {
                node.lsn = node.lsn.max(lsn);
            }
        });
        self.add_keys(keys_delta);
        if outcomes.is_empty() {
            // The first mutation needs a split or a merge.
            return Ok(vec![self.apply_replacing(first, lsn)?]);
        }
        Ok(outcomes)
    }

    fn add_keys(&mut self, delta: i64) {
        self.keys_count = self
            .keys_count
            .checked_add_signed(delta)
            .expect("key count in range");
    }
}

/// The encoded size of a leaf of `bytes` after `mutation`, or `None` if the
/// mutation changes nothing (an identical put, a delete of a missing key).
fn bytes_after(leaf: &Leaf, bytes: usize, mutation: &Mutation) -> Option<usize> {
    let key = mutation.key();
    match (mutation, leaf.search(key)) {
        (Mutation::Put { record, .. }, Ok(at)) => {
            let old = leaf.record(at);
            (!old.matches(record))
                .then(|| bytes - leaf.entry_bytes(at) + entry_bytes(key.len(), record))
        }
        (Mutation::Put { record, .. }, Err(_)) => Some(bytes + entry_bytes(key.len(), record)),
        (Mutation::Delete { .. }, Ok(at)) => Some(bytes - leaf.entry_bytes(at)),
        (Mutation::Delete { .. }, Err(_)) => None,
    }
}

/// Applies `mutation` to `leaf` (which [`bytes_after`] said it changes) and
/// returns the change in the number of keys. `unshifted`: sabotage
/// `slot-offsets-unshifted`.
fn change_leaf(leaf: &mut Leaf, mutation: &Mutation, unshifted: bool) -> i64 {
    match (mutation, leaf.search(mutation.key())) {
        (Mutation::Put { record, .. }, Ok(at)) => {
            leaf.replace(at, record);
            0
        }
        (Mutation::Put { key, record }, Err(at)) => {
            leaf.insert(at, key, record);
            1
        }
        (Mutation::Delete { .. }, Ok(at)) => {
            leaf.remove_with(at, unshifted);
            -1
        }
        (Mutation::Delete { .. }, Err(_)) => 0,
    }
}

/// Joins two neighbouring nodes of one level; `separator` is the parent's
/// key between them (pulled down into internal nodes, dropped for leaves).
fn concat(left: Node, separator: Key, right: Node) -> Node {
    let lsn = left.lsn.max(right.lsn);
    let body = match (left.body, right.body) {
        (Body::Leaf(mut left), Body::Leaf(right)) => {
            left.append(&right);
            Body::Leaf(left)
        }
        (Body::Internal(mut left), Body::Internal(right)) => {
            assert_eq!(left.level, right.level, "siblings at different levels");
            left.keys.push(separator);
            left.keys.extend(right.keys);
            left.children.extend(right.children);
            Body::Internal(left)
        }
        _ => unreachable!("siblings of different kinds"),
    };
    Node { lsn, body }
}

/// Splits an overfull node into two that each fit a page, as evenly by bytes
/// as possible, and returns the separator for the parent.
///
/// Entries are at most half a page (leaves) or a quarter (internal), so one
/// of the two cut points around the byte midpoint always fits both halves.
fn split(node: Node, page_bytes: u32) -> (Node, Key, Node) {
    let lsn = node.lsn;
    let capacity = page_bytes as usize - PAGE_HEADER_BYTES;
    match node.body {
        Body::Leaf(mut leaf) => {
            let sizes: Vec<usize> = (0..leaf.len()).map(|i| leaf.entry_bytes(i)).collect();
            let at = cut_point(&sizes, 0, capacity);
            let right = leaf.split_off(at, page_bytes as usize);
            let separator = Key::from_slice(right.key(0));
            (
                Node {
                    lsn,
                    body: Body::Leaf(leaf),
                },
                separator,
                Node {
                    lsn,
                    body: Body::Leaf(right),
                },
            )
        }
        Body::Internal(mut internal) => {
            let sizes: Vec<usize> = internal
                .keys
                .iter()
                .map(|k| super::node::INTERNAL_ENTRY_OVERHEAD_BYTES + k.len())
                .collect();
            // Keys [0, at) stay left, key `at` moves up, the rest go right.
            let at = cut_point(&sizes, super::node::INTERNAL_FIRST_CHILD_BYTES, capacity)
                .clamp(1, internal.keys.len() - 2);
            let right_keys = internal.keys.split_off(at + 1);
            let separator = internal
                .keys
                .pop()
                .expect("at least one key left of the cut");
            let right_children = internal.children.split_off(at + 1);
            let level = internal.level;
            (
                Node {
                    lsn,
                    body: Body::Internal(internal),
                },
                separator,
                Node {
                    lsn,
                    body: Body::Internal(Internal {
                        level,
                        keys: right_keys,
                        children: right_children,
                    }),
                },
            )
        }
    }
}

/// The index where the entries are cut: entries `[0, at)` go left. Chooses
/// between the two cuts around the byte midpoint the one that fits.
fn cut_point(sizes: &[usize], fixed_bytes: usize, capacity: usize) -> usize {
    assert!(
        sizes.len() >= 2,
        "splitting a node of fewer than two entries"
    );
    let total: usize = sizes.iter().sum::<usize>() + fixed_bytes;
    let mut left = fixed_bytes;
    let mut at = 0;
    while at < sizes.len() && left + sizes[at] <= total / 2 {
        left += sizes[at];
        at += 1;
    }
    // `at` entries sum to at most half; taking one more may still fit.
    if at < sizes.len() - 1 && left + sizes[at] <= capacity {
        at += 1;
    }
    at.clamp(1, sizes.len() - 1)
}
