//! Ordered range iteration, forward or reverse, with a cursor that keeps its
//! root-to-leaf path.
//!
//! Leaves have no sibling links (copy-on-write could not keep them without
//! rewriting every neighbour), so the cursor moves to the next leaf by
//! climbing its path to the first ancestor with another child in the
//! direction of travel and descending from there.

use std::ops::Bound;
use std::sync::Arc;

use crate::page::PageId;

use super::Need;
use super::cache::{Frame, Via};
use super::node::{Body, Node};
use super::search::SearchIndex;
use super::tree::Tree;
use crate::record::Record;
use crate::sabotage::sabotaged;

/// A range query over the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeQuery {
    /// Lowest key to return.
    pub start: Bound<Vec<u8>>,
    /// Highest key to return.
    pub end: Bound<Vec<u8>>,
    /// Return keys in descending order.
    pub reverse: bool,
    /// Return at most this many entries.
    pub limit: usize,
}

impl RangeQuery {
    /// Every key, ascending, up to `limit` entries.
    pub fn all(limit: usize) -> Self {
        RangeQuery {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            reverse: false,
            limit,
        }
    }

    fn below_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Included(start) => key < start.as_slice(),
            Bound::Excluded(start) => key <= start.as_slice(),
            Bound::Unbounded => false,
        }
    }

    fn above_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(end) => key > end.as_slice(),
            Bound::Excluded(end) => key >= end.as_slice(),
            Bound::Unbounded => false,
        }
    }

    /// How many of a node's `len` keys are below the start (searched
    /// through the node's `index`).
    fn count_below_start<'k>(
        &self,
        index: &SearchIndex,
        len: usize,
        key_at: impl Fn(usize) -> &'k [u8],
    ) -> usize {
        let count = match &self.start {
            Bound::Included(start) => index.lower_bound(start, &key_at),
            Bound::Excluded(start) => index.upper_bound(start, &key_at),
            Bound::Unbounded => 0,
        };
        crate::expensive_assert_eq!(
            count,
            (0..len)
                .take_while(|&i| self.below_start(key_at(i)))
                .count()
        );
        count
    }

    /// How many of a node's `len` keys are not above the end.
    fn count_to_end<'k>(
        &self,
        index: &SearchIndex,
        len: usize,
        key_at: impl Fn(usize) -> &'k [u8],
    ) -> usize {
        let count = match &self.end {
            Bound::Included(end) => index.upper_bound(end, &key_at),
            Bound::Excluded(end) => index.lower_bound(end, &key_at),
            Bound::Unbounded => len,
        };
        crate::expensive_assert_eq!(
            count,
            (0..len).take_while(|&i| !self.above_end(key_at(i))).count()
        );
        count
    }
}

/// One level of the cursor's path: a node, the position in it, and the
/// cache frame it was found in (for its children's links).
struct PathStep {
    node: Arc<Node>,
    /// Child index (internal) or entry index (leaf).
    at: usize,
    frame: Frame,
}

impl Tree {
    fn descend(
        &mut self,
        path: &mut Vec<PathStep>,
        mut next: (PageId, u32, u16),
        mut via: Via,
        query: &RangeQuery,
        edge_only: bool,
    ) -> Result<(), Need> {
        loop {
            let (id, crc, level) = next;
            let trust = sabotaged!(self, HintTrusted);
            let Some((frame, node, index)) = self.cache.get_indexed_at(id, crc, via, trust) else {
                return Err(Need { id, crc, level });
            };
            assert_eq!(index.level(), level, "cached page {id} at the wrong level");
            let at = match &node.body {
                Body::Internal(internal) => {
                    let at = match (query.reverse, edge_only) {
                        (false, true) => 0,
                        (true, true) => internal.children.len() - 1,
                        (false, false) => match &query.start {
                            Bound::Included(key) | Bound::Excluded(key) => {
                                node.child_index_by(index, key)
                            }
                            Bound::Unbounded => 0,
                        },
                        (true, false) => match &query.end {
                            Bound::Included(key) | Bound::Excluded(key) => {
                                node.child_index_by(index, key)
                            }
                            Bound::Unbounded => internal.children.len() - 1,
                        },
                    };
                    let child = index.child(at);
                    next = (child.id, child.crc, level - 1);
                    via = Via::below(index, frame, at);
                    at
                }
                Body::Leaf(leaf) => {
                    let len = leaf.len();
                    let key_at = |i: usize| leaf.key(i);
                    match (query.reverse, edge_only) {
                        (false, true) => 0,
                        (true, true) => len,
                        (false, false) => query.count_below_start(index, len, key_at),
                        (true, false) => query.count_to_end(index, len, key_at),
                    }
                }
            };
            let is_leaf = level == 0;
            path.push(PathStep {
                node: Arc::clone(node),
                at,
                frame,
            });
            if is_leaf {
                return Ok(());
            }
        }
    }

    /// Appends up to `query.limit - out.len()` entries of the range to
    /// `out`, in the query's order. On [`Need`], what was appended is valid
    /// and the caller resumes after the last key of `out`.
    pub(crate) fn range(
        &mut self,
        query: &RangeQuery,
        out: &mut Vec<(Vec<u8>, Record)>,
    ) -> Result<(), Need> {
        let mut path: Vec<PathStep> = Vec::with_capacity(usize::from(self.height));
        self.descend(&mut path, self.root_need(), self.root_via(), query, false)?;
        while out.len() < query.limit {
            let leaf_frame = path.last_mut().expect("the path ends at a leaf");
            let Body::Leaf(leaf) = &leaf_frame.node.body else {
                unreachable!("the path ends at a leaf")
            };
            let entry = if query.reverse {
                leaf_frame.at.checked_sub(1).inspect(|at| {
                    leaf_frame.at = *at;
                })
            } else {
                Some(leaf_frame.at)
                    .filter(|at| *at < leaf.len())
                    .inspect(|_| leaf_frame.at += 1)
            };
            match entry.map(|at| (leaf.key(at), leaf.record(at))) {
                Some((key, record)) => {
                    let outside = if query.reverse {
                        query.below_start(key)
                    } else {
                        query.above_end(key)
                    };
                    if outside {
                        return Ok(());
                    }
                    out.push((key.to_vec(), record.to_record()));
                }
                None => {
                    // Climb to the first ancestor with another child this way.
                    path.pop();
                    let next = loop {
                        let Some(step) = path.last_mut() else {
                            return Ok(());
                        };
                        let Body::Internal(internal) = &step.node.body else {
                            unreachable!("ancestors are internal")
                        };
                        let moved = if query.reverse {
                            step.at.checked_sub(1)
                        } else {
                            Some(step.at + 1).filter(|at| *at < internal.children.len())
                        };
                        match moved {
                            Some(at) => {
                                step.at = at;
                                let via = self.cache.child_via(step.frame, at);
                                break (internal.children[at], internal.level - 1, via);
                            }
                            None => {
                                path.pop();
                            }
                        }
                    };
                    let (child, level, via) = next;
                    let next = (child.id, child.crc, level);
                    self.descend(&mut path, next, via, query, true)?;
                }
            }
        }
        Ok(())
    }
}
