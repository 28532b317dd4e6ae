//! Relocation: moving the tree pages at the highest ids down to free ids,
//! so the free tail of `data.pages` grows and a checkpoint can cut it
//! (design 5.9).
//!
//! Copy-on-write already moves every changed page to the lowest free id;
//! relocation does the same to a page nobody changes: it copies the page
//! and every clean ancestor (the path invariant: an ancestor of a page
//! changed since the seal is changed too) to the lowest free ids and frees
//! the old ids **under the open generation**, like any copy: a durable
//! superblock may still reach them, so they become free only once the
//! superblock of this generation is durable, and only then can a later
//! checkpoint cut them off. Nothing a key maps to changes, so relocation
//! writes no WAL record and takes no LSN.

use std::sync::Arc;

use super::Need;
use super::node::{Body, Child, Key, Node};
use super::tree::Tree;
use crate::page::PageId;

/// A tree page that could move down: its id, level, and a key that routes
/// a descent to it (the lower bound of its range; empty for the leftmost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) id: PageId,
    pub(crate) level: u16,
    pub(crate) key: Key,
}

impl Tree {
    /// The tree pages with an id above the lowest free id, highest first,
    /// at most `max`: found by walking the internal levels (a leaf is
    /// named by its parent, so no leaf is read). Stops with [`Need`] for an
    /// internal page that is not cached.
    pub(crate) fn relocation_candidates(&mut self, max: usize) -> Result<Vec<Candidate>, Need> {
        let Some(lowest_free) = self.allocator.lowest_free() else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        if self.root > lowest_free {
            found.push(Candidate {
                id: self.root,
                level: self.height - 1,
                key: Key::new(),
            });
        }
        let (root, root_crc, root_level) = self.root_need();
        let mut stack: Vec<(PageId, u32, u16, Key)> = Vec::new();
        if root_level > 0 {
            stack.push((root, root_crc, root_level, Key::new()));
        }
        while let Some((id, crc, level, lower)) = stack.pop() {
            let node = self.fetch(id, crc, level)?;
            let Body::Internal(internal) = &node.body else {
                unreachable!("a page above level 0 is internal")
            };
            for (at, child) in internal.children.iter().enumerate() {
                let key = match at {
                    0 => lower.clone(),
                    _ => internal.keys[at - 1].clone(),
                };
                if child.id > lowest_free {
                    found.push(Candidate {
                        id: child.id,
                        level: level - 1,
                        key: key.clone(),
                    });
                }
                if level > 1 {
                    stack.push((child.id, child.crc, level - 1, key));
                }
            }
        }
        found.sort_unstable_by_key(|candidate| std::cmp::Reverse(candidate.id));
        found.truncate(max);
        Ok(found)
    }

    /// Moves `candidate`'s page, and each clean ancestor, to the lowest free
    /// ids, if the page is still where the candidate says, is clean, and a
    /// free id lies below it. Returns whether it moved.
    pub(crate) fn relocate(&mut self, candidate: &Candidate) -> Result<bool, Need> {
        if candidate.level >= self.height {
            return Ok(false);
        }
        let mut path: Vec<(PageId, Arc<Node>, usize)> = Vec::new();
        let (mut id, mut crc, mut level) = self.root_need();
        let mut index = 0;
        loop {
            let node = self.fetch(id, crc, level)?;
            let next = match &node.body {
                Body::Internal(internal) if level > candidate.level => {
                    let at = internal.child_index(&candidate.key);
                    Some((at, internal.children[at]))
                }
                _ => None,
            };
            path.push((id, node, index));
            let Some((at, child)) = next else { break };
            (id, crc, level, index) = (child.id, child.crc, level - 1, at);
        }
        let below = self
            .allocator
            .lowest_free()
            .is_some_and(|free| free < candidate.id);
        if id != candidate.id || self.is_open_dirty(id) || !below {
            return Ok(false);
        }
        // Broken on purpose (tests only): the old ids are free at once,
        // though the durable superblock still reaches them.
        let frees_now = crate::sabotage::sabotaged!(self, RelocateFreesNow);
        // From the page up: copy each clean node to a new id; the first
        // ancestor already changed in the open generation takes the new
        // child id in place (its own ancestors are changed too).
        let mut moved_child: Option<(usize, PageId)> = None;
        for (old_id, node, index_in_parent) in path.into_iter().rev() {
            if self.is_open_dirty(old_id) {
                let (at, new_child) = moved_child.expect("the page itself is clean");
                self.cache.patch(old_id, |node| {
                    let Body::Internal(internal) = &mut node.body else {
                        unreachable!("an ancestor is internal")
                    };
                    internal.children[at] = Child {
                        id: new_child,
                        crc: 0,
                    };
                });
                return Ok(true);
            }
            let mut copy = (*node).clone();
            if let Some((at, new_child)) = moved_child {
                let Body::Internal(internal) = &mut copy.body else {
                    unreachable!("an ancestor is internal")
                };
                internal.children[at] = Child {
                    id: new_child,
                    crc: 0,
                };
            }
            let new_id = self.allocator.allocate();
            if frees_now {
                self.cache.remove(old_id);
                self.allocator.release_now(old_id);
            } else {
                self.free_page(old_id);
            }
            self.cache.put_dirty(new_id, copy, self.open_generation);
            if old_id == self.root {
                self.root = new_id;
                return Ok(true);
            }
            moved_child = Some((index_in_parent, new_id));
        }
        unreachable!("the path ends at the root")
    }
}
