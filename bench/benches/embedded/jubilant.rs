//! Jubilant DB, embedded: [`Db`] on the real disk, driven from a tokio
//! runtime of its own (two workers, as the other real-disk benchmarks).

use std::ops::Bound;
use std::path::Path;

use jubilant_bench::{KEY_BYTES, VALUE_BYTES};
use jubilant_core::db::{Db, DbOptions, Durability, RANGE_STEP_KEYS, Value, Write};
use jubilant_io_real::RealEnv;
use tokio::runtime::Runtime;

use super::engine::{Engine, Pair, Tally};

/// WAL bytes one pair's record takes at most, framing and FlatBuffer
/// included (24-byte key, 150-byte value): an estimate with room to spare,
/// checked by the bulk load, which fails with `TooLarge` if it is short.
const WAL_BYTES_PER_PAIR: u64 = (KEY_BYTES + VALUE_BYTES) as u64 + 128;
/// WAL bytes of a commit's own records (its begin and commit records).
const WAL_BYTES_PER_COMMIT: u64 = 256;

pub struct Jubilant {
    runtime: Runtime,
    db: Db<RealEnv>,
}

/// A segment one commit of `pairs` pairs fits in: one commit must fit in
/// one WAL segment, so the bulk load needs segments larger than the
/// default 64 MiB from about 200,000 pairs on.
pub fn wal_segment_bytes(pairs: usize) -> u64 {
    let needed = (pairs as u64 * WAL_BYTES_PER_PAIR).next_multiple_of(1 << 20) + (1 << 20);
    needed.clamp(
        DbOptions::WAL_SEGMENT_BYTES_DEFAULT,
        jubilant_core::log::SEGMENT_BYTES_MAX,
    )
}

impl Jubilant {
    /// Opens with `cache_bytes` of page cache and WAL segments large
    /// enough for one commit of `wal_pairs_max` pairs; every other option
    /// is the default.
    pub fn open(dir: &Path, cache_bytes: u64, wal_pairs_max: usize) -> Self {
        let runtime = jubilant_bench::runtime();
        let options = DbOptions {
            cache_bytes,
            wal_segment_bytes: wal_segment_bytes(wal_pairs_max),
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
        let wal_bytes_before = self.db.stats().wal.bytes;
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
        // The estimate the WAL segment size rests on must hold, or a larger
        // bulk load would be refused.
        let wal_bytes = self.db.stats().wal.bytes - wal_bytes_before;
        assert!(
            wal_bytes <= pairs.len() as u64 * WAL_BYTES_PER_PAIR + WAL_BYTES_PER_COMMIT,
            "{} pairs took {wal_bytes} WAL bytes, more than estimated",
            pairs.len()
        );
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
