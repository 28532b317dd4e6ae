//! Jubilant DB's storage and transaction engine.
//!
//! Everything here reaches the outside world only through the environment
//! seam in [`env`](mod@env): production runs it over real files, clocks and sockets
//! (`jubilant-io-real`); the deterministic simulator runs the very same code
//! over a simulated disk, network and clock (`jubilant-io-sim`) and injects
//! crashes and faults into it.
//!
//! What exists so far:
//! - [`env`](mod@env): the traits of the seam (files, clocks, tasks, network);
//! - [`log`](mod@log): the write-ahead log's file layer (framed, checksummed records
//!   in preallocated segment files, with torn-tail recovery).
//!
//! - [`page`]: fixed-size pages, their verification, the page cache and the
//!   page allocator;
//! - [`btree`]: the copy-on-write B+Tree over those pages;
//! - [`store`]: the tree's files (MANIFEST, superblocks A/B, `data.pages`),
//!   checkpoints, and `validate`.
//!
//! - [`wal`]: the WAL's typed records, and group commit with its two
//!   durability classes;
//! - [`db`]: the embedded database (open with recovery, get/set/del,
//!   atomic writes, checkpoints, close): start here.
//!
//! - [`txn`]: transactions: a declared key table, ops with ASSERTs on an
//!   overlay, strict two-phase locking, committed as one WAL unit.
//!
//! - [`vlog`]: the value log for values too large for a leaf.
//!
//! Value-log garbage collection and the server build on these next.

pub mod btree;
pub mod db;
pub mod env;
pub mod log;
pub mod page;
pub mod sabotage;
pub mod store;
pub mod txn;
pub mod vlog;
pub mod wal;
