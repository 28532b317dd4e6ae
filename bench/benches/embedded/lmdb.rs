//! LMDB through heed: the unnamed database of one environment, with LMDB's
//! default flags (every commit synced with fdatasync). LMDB has no cache of
//! its own: it reads through a memory map, from the OS page cache.

use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions};

use super::engine::{Engine, Pair, Tally};

/// The memory map's size: an upper bound on the file, reserved as address
/// space only (the file grows with the data).
const MAP_BYTES: usize = 16 << 30;

pub struct Lmdb {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
}

impl Lmdb {
    /// Opens (or creates) the environment in `dir`.
    pub fn open(dir: &Path) -> Self {
        // SAFETY: heed requires that an environment is not opened twice in
        // one process and that nothing else maps its files; `close` waits
        // until it is closed before the next workload opens it again.
        #[allow(unsafe_code)]
        let env =
            unsafe { EnvOpenOptions::new().map_size(MAP_BYTES).open(dir) }.expect("open LMDB");
        let txn = env.write_txn().expect("write_txn");
        let db = env
            .create_databases_and_commit(txn, |opener, txn| {
                opener
                    .create_database(txn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .expect("create the database")
            .unwrap_commit();
        Lmdb { env, db }
    }

    fn write(&self, change: impl FnOnce(&mut heed::RwTxn<'_>)) {
        let mut txn = self.env.write_txn().expect("write_txn");
        change(&mut txn);
        txn.commit().expect("commit");
    }
}

impl Engine for Lmdb {
    fn insert(&mut self, pairs: &[Pair]) {
        let db = self.db;
        self.write(|txn| {
            for (key, value) in pairs {
                db.put(txn, key, value).expect("put");
            }
        });
    }

    fn remove(&mut self, keys: &[Vec<u8>]) {
        let db = self.db;
        self.write(|txn| {
            for key in keys {
                db.delete(txn, key).expect("delete");
            }
        });
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Tally {
        let txn = self.env.read_txn().expect("read_txn");
        let mut tally = Tally::default();
        for key in keys {
            if let Some(value) = self.db.get(&txn, key).expect("get") {
                tally.add(value);
            }
        }
        tally
    }

    fn ranges(&mut self, starts: &[Vec<u8>], len: usize) -> Tally {
        let txn = self.env.read_txn().expect("read_txn");
        let mut tally = Tally::default();
        for start in starts {
            let bounds = (Bound::Included(start.as_slice()), Bound::Unbounded);
            let range = self.db.range(&txn, &bounds).expect("range");
            for entry in range.take(len) {
                let (_, value) = entry.expect("range entry");
                tally.add(value);
            }
        }
        tally
    }

    fn scan_all(&mut self) -> Tally {
        let txn = self.env.read_txn().expect("read_txn");
        let mut tally = Tally::default();
        for entry in self.db.iter(&txn).expect("iter") {
            let (_, value) = entry.expect("entry");
            tally.add(value);
        }
        tally
    }

    fn checkpoint(&mut self) -> bool {
        // A durable commit has written the tree itself.
        false
    }

    fn close(self: Box<Self>) {
        self.env.prepare_for_closing().wait();
    }
}
