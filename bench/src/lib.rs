//! Fixtures shared by Jubilant DB's benchmarks (`cargo bench -p
//! jubilant-bench`); the results and the commands that reproduce them live
//! in `docs/benchmarks.md`.

pub mod resp;

use std::future::Future;
use std::time::Duration;

use jubilant_core::env::{Clock, MonoTime, Spawn};
use jubilant_core::record::{Mutation, Record, StoredValue, ValueType};
use jubilant_core::store::{Store, StoreOptions};
use jubilant_io_real::RealEnv;
use tokio::runtime::Runtime;

/// Key length of the benchmark data (as in redb's benchmark).
pub const KEY_BYTES: usize = 24;
/// Value length of the benchmark data (as in redb's benchmark).
pub const VALUE_BYTES: usize = 150;

/// A small deterministic generator (xorshift64*): the benchmarks must not
/// depend on a seedless RNG, and every run should touch the same keys.
#[derive(Clone, Debug)]
pub struct BenchRng(u64);

impl BenchRng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        BenchRng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random printable key of [`KEY_BYTES`].
    pub fn key(&mut self) -> Vec<u8> {
        let mut key = Vec::with_capacity(KEY_BYTES);
        while key.len() < KEY_BYTES {
            let word = self.next_u64();
            for shift in (0..64).step_by(8) {
                if key.len() < KEY_BYTES {
                    key.push(b'a' + ((word >> shift) as u8 % 26));
                }
            }
        }
        key
    }
}

/// A store on a temporary directory of the real disk, with its runtime.
pub struct Fixture {
    /// The runtime the store's IO runs on.
    pub runtime: Runtime,
    /// The store.
    pub store: Store<RealEnv>,
    /// Every key written, in insertion order.
    pub keys: Vec<Vec<u8>>,
    /// The LSN the next mutation gets.
    pub next_lsn: u64,
    rng: BenchRng,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A store with `cache_bytes` of cache holding `n` random keys, written
    /// by a checkpoint so the pages are clean.
    ///
    /// # Panics
    /// If the temporary directory or the store cannot be made: a benchmark
    /// has nothing to measure then.
    pub fn loaded(n: usize, cache_bytes: u64) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = StoreOptions {
            cache_bytes,
            ..StoreOptions::default()
        };
        let env = RealEnv::new(runtime.handle().clone());
        let (store, _) = runtime
            .block_on(Store::open(env, dir.path(), options))
            .expect("open the store");
        let mut fixture = Fixture {
            runtime,
            store,
            keys: Vec::with_capacity(n),
            next_lsn: 1,
            rng: BenchRng::new(0x5eed),
            _dir: dir,
        };
        fixture.insert(n);
        fixture
            .runtime
            .block_on(fixture.store.checkpoint())
            .expect("checkpoint");
        fixture
    }

    /// Inserts `count` new random keys, one mutation each.
    ///
    /// # Panics
    /// If the store refuses a write.
    pub fn insert(&mut self, count: usize) {
        let mut mutations = Vec::with_capacity(count);
        for _ in 0..count {
            let key = self.rng.key();
            self.keys.push(key.clone());
            mutations.push(Mutation::Put {
                key,
                record: self.record(),
            });
        }
        let Fixture {
            runtime,
            store,
            next_lsn,
            ..
        } = self;
        runtime.block_on(async {
            for mutation in &mutations {
                store
                    .apply(std::slice::from_ref(mutation), *next_lsn)
                    .await
                    .expect("apply");
                *next_lsn += 1;
            }
        });
    }

    fn record(&mut self) -> Record {
        let mut value = vec![0; VALUE_BYTES];
        for (at, byte) in value.iter_mut().enumerate() {
            *byte = (self.next_lsn as usize + at) as u8;
        }
        Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(value),
            expires_at_ms: None,
            revision: self.next_lsn,
        }
    }

    /// Reads `count` random keys that exist; returns how many were found.
    ///
    /// # Panics
    /// If a read fails.
    pub fn get_random(&mut self, count: usize) -> usize {
        let Fixture {
            runtime,
            store,
            keys,
            rng,
            ..
        } = self;
        runtime.block_on(async {
            let mut found = 0;
            for _ in 0..count {
                let key = &keys[rng.below(keys.len())];
                if store.get(key).await.expect("get").is_some() {
                    found += 1;
                }
            }
            found
        })
    }
}

/// The runtime the real-disk benchmarks run on: tokio, one worker per core
/// of this 2-core machine type.
///
/// # Panics
/// If the runtime cannot start.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A memory figure of process `pid` (`"self"` for this one) from
/// `/proc/PID/status`, in MiB: `field` is e.g. `"VmHWM:"` (peak RSS) or
/// `"VmRSS:"`. 0 if the process or the field is not there (Linux only).
pub fn proc_status_mib(pid: &str, field: &str) -> f64 {
    // A benchmark reading /proc: outside the engine's rules.
    #[allow(clippy::disallowed_methods)]
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Latencies of one timed run.
pub struct Run {
    /// One sample per operation, in microseconds.
    pub latencies_us: Vec<u64>,
    /// How long the run took.
    pub seconds: f64,
}

impl Run {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.seconds
    }

    /// The `p`th percentile latency in microseconds.
    pub fn percentile(&mut self, p: f64) -> u64 {
        self.latencies_us.sort_unstable();
        let last = self.latencies_us.len().saturating_sub(1);
        let at = ((last as f64) * p / 100.0).round() as usize;
        self.latencies_us.get(at).copied().unwrap_or(0)
    }
}

/// Microseconds since `start` on `env`'s monotonic clock.
pub fn micros_since(env: &RealEnv, start: MonoTime) -> u64 {
    env.now_mono().saturating_since(start).as_micros() as u64
}

/// Runs `clients` tasks on `env`, each calling `op(client, n)` for n = 0,
/// 1, ... until `run_for` has passed since the start, and times every call.
pub async fn timed_clients<F, Fut>(env: &RealEnv, clients: u64, run_for: Duration, op: F) -> Run
where
    F: Fn(u64, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = env.now_mono();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (op, task_env) = (op.clone(), env.clone());
            env.spawn("client", async move {
                let env = task_env;
                let mut latencies = Vec::new();
                let mut n = 0;
                while env.now_mono().saturating_since(start) < run_for {
                    let began = env.now_mono();
                    op(client, n).await;
                    latencies.push(micros_since(&env, began));
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await);
    }
    Run {
        latencies_us,
        seconds: env.now_mono().saturating_since(start).as_secs_f64(),
    }
}
