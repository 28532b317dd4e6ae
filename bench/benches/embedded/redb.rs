//! redb: one table of byte keys and values in one file, every write
//! transaction committed with `Durability::Immediate` (fsynced).

use std::path::Path;

use ::redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::engine::{Engine, Pair, Tally};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

pub struct Redb {
    db: Database,
}

impl Redb {
    /// Opens `dir/redb` with a `cache_bytes` cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Self {
        let db = Database::builder()
            .set_cache_size(usize::try_from(cache_bytes).expect("a 64-bit machine"))
            .create(dir.join("redb"))
            .expect("open redb");
        Redb { db }
    }

    fn write(&self, change: impl FnOnce(&mut ::redb::Table<'_, &'static [u8], &'static [u8]>)) {
        let mut txn = self.db.begin_write().expect("begin_write");
        txn.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut table = txn.open_table(TABLE).expect("open_table");
            change(&mut table);
        }
        txn.commit().expect("commit");
    }

    fn read(
        &self,
        read: impl FnOnce(&::redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Tally,
    ) -> Tally {
        let txn = self.db.begin_read().expect("begin_read");
        match txn.open_table(TABLE) {
            Ok(table) => read(&table),
            Err(::redb::TableError::TableDoesNotExist(_)) => Tally::default(),
            Err(error) => panic!("open_table: {error}"),
        }
    }
}

impl Engine for Redb {
    fn insert(&mut self, pairs: &[Pair]) {
        self.write(|table| {
            for (key, value) in pairs {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .expect("insert");
            }
        });
    }

    fn remove(&mut self, keys: &[Vec<u8>]) {
        self.write(|table| {
            for key in keys {
                table.remove(key.as_slice()).expect("remove");
            }
        });
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Tally {
        self.read(|table| {
            let mut tally = Tally::default();
            for key in keys {
                if let Some(value) = table.get(key.as_slice()).expect("get") {
                    tally.add(value.value());
                }
            }
            tally
        })
    }

    fn ranges(&mut self, starts: &[Vec<u8>], len: usize) -> Tally {
        self.read(|table| {
            let mut tally = Tally::default();
            for start in starts {
                let range = table.range(start.as_slice()..).expect("range");
                for entry in range.take(len) {
                    let (_, value) = entry.expect("range entry");
                    tally.add(value.value());
                }
            }
            tally
        })
    }

    fn scan_all(&mut self) -> Tally {
        self.read(|table| {
            let mut tally = Tally::default();
            for entry in table.iter().expect("iter") {
                let (_, value) = entry.expect("entry");
                tally.add(value.value());
            }
            tally
        })
    }

    fn checkpoint(&mut self) -> bool {
        // A durable commit has written the tree itself.
        false
    }

    fn close(self: Box<Self>) {
        drop(self.db);
    }
}
