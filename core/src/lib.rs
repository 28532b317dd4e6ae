//! Jubilant DB's storage and transaction engine.
//!
//! Everything here reaches the outside world only through the environment
//! seam in [`env`](mod@env): production runs it over real files, clocks and
//! sockets (`jubilant-io-real`); the deterministic simulator runs the very
//! same code over a simulated disk, network and clock (`jubilant-io-sim`)
//! and injects crashes and faults into it.
//!
//! Modules depend downward only (docs/design.md, "Module map"), lowest
//! first:
//! - [`checks`], [`sabotage`], [`mutex`]: which assertions a build runs,
//!   the switches that break the engine on purpose, the one lock helper;
//! - [`env`](mod@env): the traits of the seam (files, clocks, tasks,
//!   network);
//! - [`log`](mod@log): the WAL's file layer (framed, checksummed records in
//!   preallocated segment files, with torn-tail recovery);
//! - [`record`]: what is stored under a key ([`record::Record`],
//!   [`record::Value`], [`record::Mutation`]);
//! - [`lock`]: the lock manager (strict two-phase locking);
//! - [`page`]: fixed-size pages, their verification and allocation;
//! - [`btree`]: the copy-on-write B+Tree over those pages, and the cache of
//!   its decoded nodes;
//! - [`vlog`]: values too large for a leaf, read from the WAL records
//!   that logged them;
//! - [`store`]: the tree's files (MANIFEST, superblocks A/B,
//!   `data.pages`), checkpoints, and `validate`;
//! - [`wal`]: the WAL's typed records and group commit with its two
//!   durability classes;
//! - [`error`]: the embedded API's errors;
//! - [`txn`]: transactions as requests and results;
//! - [`db`]: the embedded database (open with recovery, the transaction
//!   executor, reads and writes, TTL, checkpoints, value-log GC): start
//!   here.

pub mod checks;
pub mod mutex;
pub mod sabotage;

pub mod env;
pub mod log;

pub mod lock;
pub mod record;

pub mod btree;
pub mod page;

pub mod store;
pub mod vlog;

pub mod wal;

pub mod error;
pub mod txn;

pub mod db;
