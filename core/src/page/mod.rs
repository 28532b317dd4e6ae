//! Fixed-size pages in `data.pages`: the header every page carries, the
//! free-list pages and the page allocator. (What a tree page holds, and the
//! cache of decoded tree pages, belong to the B+Tree above.)
//!
//! Invariants kept here:
//! - **A page read is verified before it is used.** Its CRC, its page id and
//!   the checksum its parent recorded for it must all match
//!   (`header::verify`); otherwise the read is a typed [`PageError`], never
//!   data.
//! - **A page reachable from a durable superblock is never overwritten**;
//!   freed pages wait for the next durable superblock before reuse
//!   (`allocator`).

pub(crate) mod allocator;
pub(crate) mod freelist;
pub(crate) mod header;

pub use header::{PAGE_HEADER_BYTES, PageError, PageType};

/// Identifies a page: page `N` lives at byte `N * page_size` of
/// `data.pages`. Page 0 is never allocated, so 0 can mean "no page".
pub type PageId = u64;

/// "No page" in on-disk fields.
pub const PAGE_NONE: PageId = 0;

/// The smallest page size a database may be created with.
pub const PAGE_BYTES_MIN: u32 = 4096;
/// The largest page size a database may be created with.
pub const PAGE_BYTES_MAX: u32 = 65536;
/// The page size used when creation options do not say.
pub const PAGE_BYTES_DEFAULT: u32 = 4096;

/// Whether a page size is one a database may use: a power of two between
/// [`PAGE_BYTES_MIN`] and [`PAGE_BYTES_MAX`].
pub const fn page_bytes_valid(page_bytes: u32) -> bool {
    page_bytes.is_power_of_two() && page_bytes >= PAGE_BYTES_MIN && page_bytes <= PAGE_BYTES_MAX
}
