//! fjall: an LSM tree, one partition in one keyspace, with fjall's default
//! options (lz4 blocks, which random values do not shrink) and its cache
//! set to the budget; every write batch persisted with
//! `PersistMode::SyncAll` before its commit returns.

use std::path::Path;

use ::fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use super::engine::{Engine, Pair, Tally};

pub struct Fjall {
    keyspace: Keyspace,
    partition: PartitionHandle,
}

impl Fjall {
    /// Opens (or creates) the keyspace `dir/fjall` with a `cache_bytes`
    /// block cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Self {
        let keyspace = Config::new(dir.join("fjall"))
            .cache_size(cache_bytes)
            .open()
            .expect("open fjall");
        let partition = keyspace
            .open_partition("kv", PartitionCreateOptions::default())
            .expect("open_partition");
        Fjall {
            keyspace,
            partition,
        }
    }

    fn batch(&self) -> ::fjall::Batch {
        self.keyspace.batch().durability(Some(PersistMode::SyncAll))
    }
}

impl Engine for Fjall {
    fn insert(&mut self, pairs: &[Pair]) {
        let mut batch = self.batch();
        for (key, value) in pairs {
            batch.insert(&self.partition, key.as_slice(), value.as_slice());
        }
        batch.commit().expect("commit");
    }

    fn remove(&mut self, keys: &[Vec<u8>]) {
        let mut batch = self.batch();
        for key in keys {
            batch.remove(&self.partition, key.as_slice());
        }
        batch.commit().expect("commit");
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Tally {
        let snapshot = self.partition.snapshot();
        let mut tally = Tally::default();
        for key in keys {
            if let Some(value) = snapshot.get(key).expect("get") {
                tally.add(&value);
            }
        }
        tally
    }

    fn ranges(&mut self, starts: &[Vec<u8>], len: usize) -> Tally {
        let snapshot = self.partition.snapshot();
        let mut tally = Tally::default();
        for start in starts {
            for entry in snapshot.range(start.as_slice()..).take(len) {
                let (_, value) = entry.expect("range entry");
                tally.add(&value);
            }
        }
        tally
    }

    fn scan_all(&mut self) -> Tally {
        let snapshot = self.partition.snapshot();
        let mut tally = Tally::default();
        for entry in snapshot.iter() {
            let (_, value) = entry.expect("entry");
            tally.add(&value);
        }
        tally
    }

    fn checkpoint(&mut self) -> bool {
        // Flushes the memtable to a table file (a test hook of fjall's, and
        // the only way to wait for a flush); compaction is not waited for.
        self.partition
            .rotate_memtable_and_wait()
            .expect("flush the memtable");
        true
    }

    fn close(self: Box<Self>) {
        let Fjall {
            keyspace,
            partition,
        } = *self;
        drop(partition);
        drop(keyspace);
    }
}
