//! The one interface every engine is driven through, and the engines.

use std::path::Path;

/// A key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// What a read returned: how many pairs, and the sum of each value's first
/// byte, so a workload can check it read the values it wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Pairs read.
    pub pairs: u64,
    /// Sum of the first byte of each value read.
    pub checksum: u64,
}

impl Tally {
    /// Counts one value.
    pub fn add(&mut self, value: &[u8]) {
        self.pairs += 1;
        self.checksum += u64::from(value.first().copied().unwrap_or(0));
    }
}

/// The operations the workloads need. Every write is one atomic commit,
/// durable (fsynced) before the call returns; every read call runs in one
/// read transaction where the engine has them. A failure panics: a
/// benchmark has nothing to measure then.
pub trait Engine {
    /// Inserts (or overwrites) `pairs` in one durable commit.
    fn insert(&mut self, pairs: &[Pair]);
    /// Removes `keys` in one durable commit.
    fn remove(&mut self, keys: &[Vec<u8>]);
    /// Looks up each of `keys`.
    fn get_many(&mut self, keys: &[Vec<u8>]) -> Tally;
    /// Reads up to `len` pairs in key order from each of `starts`
    /// (inclusive).
    fn ranges(&mut self, starts: &[Vec<u8>], len: usize) -> Tally;
    /// Reads every pair in key order.
    fn scan_all(&mut self) -> Tally;
    /// Moves what the engine's commits left in a log into its main
    /// structure (a checkpoint or memtable flush); `false` if its commits
    /// already write the main structure and there is nothing to do.
    fn checkpoint(&mut self) -> bool;
    /// Closes the engine, releasing its directory.
    fn close(self: Box<Self>);
}

/// The engines compared, Jubilant DB first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Jubilant DB, embedded.
    Jubilant,
    /// redb: a copy-on-write B-tree, pure Rust.
    Redb,
    /// LMDB through heed: a copy-on-write B-tree in a memory map.
    Lmdb,
    /// SQLite through rusqlite: a B-tree with a write-ahead log.
    Sqlite,
    /// fjall: an LSM tree, pure Rust.
    Fjall,
}

impl Kind {
    /// Every engine, in the order rows are printed.
    pub const ALL: [Kind; 5] = [
        Kind::Jubilant,
        Kind::Redb,
        Kind::Lmdb,
        Kind::Sqlite,
        Kind::Fjall,
    ];

    /// The name the table shows.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Jubilant => "Jubilant DB",
            Kind::Redb => "redb",
            Kind::Lmdb => "LMDB (heed)",
            Kind::Sqlite => "SQLite",
            Kind::Fjall => "fjall",
        }
    }

    /// The short name `JUBILANT_EMBEDDED_ENGINES` selects it by.
    pub fn id(self) -> &'static str {
        match self {
            Kind::Jubilant => "jubilant",
            Kind::Redb => "redb",
            Kind::Lmdb => "lmdb",
            Kind::Sqlite => "sqlite",
            Kind::Fjall => "fjall",
        }
    }

    /// Opens (creating on first use) this engine's database in `dir`, an
    /// empty directory of its own, with `cache_bytes` for its cache where
    /// it has one.
    pub fn open(self, dir: &Path, cache_bytes: u64) -> Box<dyn Engine> {
        match self {
            Kind::Jubilant => Box::new(super::jubilant::Jubilant::open(dir, cache_bytes)),
            Kind::Redb => Box::new(super::redb::Redb::open(dir, cache_bytes)),
            Kind::Lmdb => Box::new(super::lmdb::Lmdb::open(dir)),
            Kind::Sqlite => Box::new(super::sqlite::Sqlite::open(dir, cache_bytes)),
            Kind::Fjall => Box::new(super::fjall::Fjall::open(dir, cache_bytes)),
        }
    }
}
