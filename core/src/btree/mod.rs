//! The B+Tree: copy-on-write pages over the page cache.
//!
//! Every operation here is synchronous and works on pages already in
//! memory. When it needs a page that is not, it stops before changing
//! anything and returns `Need`; the store reads and verifies that page
//! without holding its lock, caches it, and runs the operation again. This
//! keeps the tree logic free of `await` and of half-done changes.
//!
//! Invariants kept here:
//! - keys ascend within each node and across the tree; child `i + 1` holds
//!   keys at or above separator `i`, child `i` keys below it;
//! - every leaf is at the same depth; an internal node at level `l` has
//!   children at level `l - 1`;
//! - a page the last sealed superblock generation reaches is never changed:
//!   changing it writes a copy at a new id (and so changes its parent),
//!   and frees the old id for reuse after the next durable superblock;
//! - every page on the path to a page changed since the last seal is itself
//!   changed since the last seal (dirty in the open generation).

pub(crate) mod bulk;
pub(crate) mod cache;
pub(crate) mod cursor;
pub(crate) mod leaf;
pub(crate) mod mutator;
pub(crate) mod node;
pub(crate) mod relocate;
pub(crate) mod search;
pub(crate) mod tree;

#[cfg(test)]
mod tests;

pub use cache::CacheStats;
pub use node::{inline_value_bytes_limit, key_bytes_max};

/// A page an operation needs that is not in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    /// The page.
    pub(crate) id: crate::page::PageId,
    /// The checksum its parent (or the superblock) records for it.
    pub(crate) crc: u32,
    /// The level it must be at.
    pub(crate) level: u16,
}
