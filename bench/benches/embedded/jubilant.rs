//! Jubilant DB, embedded: [`Db`] on the real disk, driven from a tokio
//! runtime of its own (two workers, as the other real-disk benchmarks).

use std::ops::Bound;
use std::path::Path;

use jubilant_core::db::{Db, DbOptions, Durability, RANGE_STEP_KEYS, Value, Write};
use jubilant_io_real::RealEnv;
use tokio::runtime::Runtime;

use super::engine::{Engine, Pair, Tally};

pub struct Jubilant {
    runtime: Runtime,
    db: Db<RealEnv>,
}

impl Jubilant {
    /// Opens with `cache_bytes` of page cache; every other option is the
    /// default (a bulk load's one commit spans WAL segments).
    pub fn open(dir: &Path, cache_bytes: u64) -> Self {
        let runtime = jubilant_bench::runtime();
        let options = DbOptions {
            cache_bytes,
            durability: Durability::Sync,
            ..DbOptions::default()
        };
        let env = RealEnv::new(runtime.handle().clone());
        let db = runtime
            .block_on(Db::open(env, dir, options))
            .expect("open Jubilant DB");
        Jubilant { runtime, db }
    }
}

fn bytes(value: &Value) -> &[u8] {
    match value {
        Value::Bytes(bytes) => bytes,
        other => panic!("wrote bytes, read {other:?}"),
    }
}

impl Engine for Jubilant {
    fn insert(&mut self, pairs: &[Pair]) {
        let writes = pairs
            .iter()
            .map(|(key, value)| Write::Set {
                key: key.clone(),
                value: Value::Bytes(value.clone()),
            })
            .collect();
        self.runtime
            .block_on(self.db.write(writes, Durability::Sync))
            .expect("write");
    }

    fn remove(&mut self, keys: &[Vec<u8>]) {
        let writes = keys
            .iter()
            .map(|key| Write::Del { key: key.clone() })
            .collect();
        self.runtime
            .block_on(self.db.write(writes, Durability::Sync))
            .expect("write");
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Tally {
        let db = &self.db;
        self.runtime.block_on(async {
            let mut tally = Tally::default();
            for key in keys {
                if let Some(value) = db.get(key).await.expect("get") {
                    tally.add(bytes(&value));
                }
            }
            tally
        })
    }

    fn ranges(&mut self, starts: &[Vec<u8>], len: usize) -> Tally {
        let db = &self.db;
        self.runtime.block_on(async {
            let mut tally = Tally::default();
            for start in starts {
                let entries = db
                    .range(Bound::Included(start.as_slice()), Bound::Unbounded, len)
                    .await
                    .expect("range");
                for (_, value) in &entries {
                    tally.add(bytes(value));
                }
            }
            tally
        })
    }

    fn scan_all(&mut self) -> Tally {
        let db = &self.db;
        self.runtime.block_on(async {
            let mut tally = Tally::default();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let entries = db
                    .range(start, Bound::Unbounded, RANGE_STEP_KEYS)
                    .await
                    .expect("range");
                for (_, value) in &entries {
                    tally.add(bytes(value));
                }
                if entries.len() < RANGE_STEP_KEYS {
                    return tally;
                }
                after = entries.into_iter().last().map(|(key, _)| key);
            }
        })
    }

    fn checkpoint(&mut self) -> bool {
        self.runtime
            .block_on(self.db.checkpoint())
            .expect("checkpoint");
        true
    }

    fn close(self: Box<Self>) {
        let Jubilant { runtime, db } = *self;
        runtime.block_on(db.close()).expect("close");
    }
}
