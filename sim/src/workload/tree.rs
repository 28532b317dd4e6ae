//! The tree workload: concurrent writers change a B+Tree store one key at a
//! time, readers check every read against the model, and a checkpointer
//! makes the tree durable at random moments, while the fault schedule
//! crashes and kills the node, tears and drops writes, misdirects them and
//! corrupts reads. After every restart the store must open, `validate`
//! must find nothing, and the tree must equal the model as of the reopened
//! checkpoint (`tree_model`).
//!
//! Phases as in the log workload: lives until the step budget is spent;
//! then, faults off, a restart whose recovery is checked, a liveness client
//! that must finish a batch and a checkpoint within [`LIVENESS_POLLS_MAX`]
//! polls, and a last power loss after which all of it must be back.

use std::fmt;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::lock::Mutex as AsyncMutex;
use jubilant_core::btree::{inline_value_bytes_limit, key_bytes_max};
use jubilant_core::env::Spawn;
use jubilant_core::mutex::lock;
use jubilant_core::record::{Mutation, Record, StoredValue, ValueType};
use jubilant_core::sabotage::Sabotage;
use jubilant_core::store::{RangeQuery, Store, StoreError, StoreOptions};
use jubilant_io_sim::{Fault, NodeId, SimEnv, SimRng, Stream, World};

use super::lives::{
    Clients, LifeStatus, Lives, excused, final_phase, run_lives, spawn_life, think,
};
use super::tree_model::{Contents, TreeModel};
use crate::options::RunOptions;
use crate::report::Report;

const NODE: NodeId = NodeId(0);
/// Polls allowed for a fault-free recovery plus the liveness batch.
pub const LIVENESS_POLLS_MAX: u64 = 200_000;
/// Mutations the liveness client makes before its checkpoint.
const LIVENESS_MUTATIONS: u64 = 32;

fn data_dir() -> PathBuf {
    PathBuf::from("/data/db")
}

/// The per-seed shape: page geometry, key space and client behaviour.
#[derive(Clone, Debug)]
struct Shape {
    page_bytes: u32,
    cache_pages: u64,
    inline_value_bytes_max: u32,
    key_universe: u64,
    /// Keys are padded up to this length (long keys make tall trees).
    key_pad_max: usize,
    value_bytes_max: usize,
    writers: u64,
    readers: u64,
    think_us_max: u64,
    checkpoint_every_us_max: u64,
    /// Per cent of writes that delete.
    delete_pct: u64,
    /// Mutations per LSN: a writer applies 1 to this many as one batch.
    batch_max: u64,
    /// Puts of distinct keys, in key order, applied as one batch as each
    /// life opens the tree: an empty tree is built by the bulk path (0: none;
    /// drawn from the settings stream, so seeds drawn before keep their
    /// worlds when it is 0, half of them).
    bulk_keys: u64,
}

impl Shape {
    fn draw(rng: &mut SimRng) -> Self {
        let page_bytes = if rng.chance(0.75) { 4096 } else { 8192 };
        let key_pad_max = if rng.chance(0.3) {
            rng.between(16, key_bytes_max(page_bytes) as u64)
        } else {
            24
        };
        let inline_value_bytes_max =
            rng.between(32, inline_value_bytes_limit(page_bytes).min(1024) as u64) as u32;
        Shape {
            page_bytes,
            cache_pages: rng.between(64, 400),
            inline_value_bytes_max,
            key_universe: rng.between(20, 4000),
            key_pad_max: key_pad_max as usize,
            value_bytes_max: rng.between(0, u64::from(inline_value_bytes_max)) as usize,
            writers: rng.between(1, 4),
            readers: rng.between(0, 3),
            think_us_max: rng.between(0, 1_000),
            checkpoint_every_us_max: rng.between(1_000, 200_000),
            delete_pct: rng.between(10, 60),
            batch_max: if rng.chance(0.5) {
                1
            } else {
                rng.between(2, 8)
            },
            bulk_keys: 0,
        }
    }

    fn draw_bulk(&mut self, rng: &mut SimRng) {
        if rng.chance(0.5) {
            return;
        }
        let keys = rng.between(64, 4000).min(self.key_universe);
        if keys >= 64 {
            self.bulk_keys = keys;
        }
    }

    /// The bulk batch at `lsn`: `bulk_keys` keys spread over the universe.
    fn bulk_batch(&self, rng: &mut SimRng, lsn: u64) -> Vec<Mutation> {
        let stride = self.key_universe / self.bulk_keys;
        (0..self.bulk_keys)
            .map(|i| {
                let key = self.key_for(i * stride);
                match self.mutation(rng, lsn) {
                    Mutation::Put { record, .. } => Mutation::Put { key, record },
                    Mutation::Delete { .. } => Mutation::Put {
                        key,
                        record: self.record(rng, lsn),
                    },
                }
            })
            .collect()
    }

    fn options(&self, sabotage: Sabotage) -> StoreOptions {
        StoreOptions {
            create_if_missing: true,
            page_bytes: self.page_bytes,
            inline_value_bytes_max: self.inline_value_bytes_max,
            cache_bytes: self.cache_pages * u64::from(self.page_bytes),
            // A few pages, from what the seed drew already (no new draw:
            // the corpus's worlds stay as they were), so cuts happen.
            truncate_tail_bytes_min: (1 + self.cache_pages % 8) * u64::from(self.page_bytes),
            snapshot_bytes_max: 0,
            sabotage,
        }
    }

    fn key(&self, rng: &mut SimRng) -> Vec<u8> {
        self.key_for(rng.below(self.key_universe))
    }

    fn key_for(&self, n: u64) -> Vec<u8> {
        let mut key = format!("k{n:06}").into_bytes();
        // The padding is a function of the key, so a key always has one length.
        let pad = (n.wrapping_mul(2_654_435_761) % (self.key_pad_max as u64 + 1)) as usize;
        key.resize(key.len().max(pad), b'.');
        key
    }

    fn mutation(&self, rng: &mut SimRng, lsn: u64) -> Mutation {
        let key = self.key(rng);
        if rng.below(100) < self.delete_pct {
            return Mutation::Delete { key };
        }
        let record = self.record(rng, lsn);
        Mutation::Put { key, record }
    }

    fn record(&self, rng: &mut SimRng, lsn: u64) -> Record {
        let len = rng.between(0, self.value_bytes_max as u64) as usize;
        let fill = (lsn % 251) as u8;
        let mut value = lsn.to_le_bytes().to_vec();
        value.resize(len.max(8).min(self.inline_value_bytes_max as usize), fill);
        Record {
            value_type: if lsn.is_multiple_of(3) {
                ValueType::String
            } else {
                ValueType::Bytes
            },
            value: StoredValue::Inline(value),
            expires_at_ms: lsn.is_multiple_of(5).then_some(lsn * 1000),
            revision: lsn,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "page_bytes={} cache_pages={} inline_max={} keys={} key_pad_max={} value_max={} writers={} readers={} think_us_max={} checkpoint_every_us_max={} delete_pct={} batch_max={}",
            self.page_bytes,
            self.cache_pages,
            self.inline_value_bytes_max,
            self.key_universe,
            self.key_pad_max,
            self.value_bytes_max,
            self.writers,
            self.readers,
            self.think_us_max,
            self.checkpoint_every_us_max,
            self.delete_pct,
            self.batch_max
        )?;
        if self.bulk_keys > 0 {
            write!(f, " bulk_keys={}", self.bulk_keys)?;
        }
        Ok(())
    }
}

type Model = Arc<Mutex<TreeModel>>;

/// Runs the workload on `world`, filling `report`.
pub fn run(world: &World, options: &RunOptions, report: &mut Report) {
    let mut workload_rng = SimRng::new(options.seed, Stream::Workload);
    let mut shape = Shape::draw(&mut workload_rng);
    shape.draw_bulk(&mut SimRng::new(options.seed, Stream::Settings));
    let shape = Arc::new(shape);
    let store_options = shape.options(options.sabotage);
    let model: Model = Arc::new(Mutex::new(TreeModel::new()));
    world.trace(format_args!("workload tree: {shape}"));

    let mut lives = TreeLives {
        shape: &shape,
        options: &store_options,
        model: &model,
    };
    let life = run_lives(world, NODE, options, report, &mut workload_rng, &mut lives);

    let ended = {
        let m = lock(&model);
        m.verdict.failure.is_some() || report.failure.is_some() || m.verdict.corruption_detected
    };
    if !ended {
        report.steps += final_phase(world, NODE, report, &mut workload_rng, &mut lives, life);
    }

    let counts = world.fault_counts();
    let m = lock(&model);
    m.verdict.fill(report);
    report
        .stats
        .insert("torn_writes".to_owned(), counts.get(Fault::WriteTorn));
    report
        .stats
        .entry("crashes_mid_checkpoint".to_owned())
        .or_insert(0);
    report.stats.entry("checkpoints".to_owned()).or_insert(0);
}

struct TreeLives<'a> {
    shape: &'a Arc<Shape>,
    options: &'a StoreOptions,
    model: &'a Model,
}

impl Lives for TreeLives<'_> {
    const ENGINE: &'static str = "store";
    const LIVENESS_WORK: &'static str = "the client did not finish its batch and checkpoint";
    const LIVENESS_POLLS_MAX: u64 = LIVENESS_POLLS_MAX;

    fn start(&mut self, world: &World, life: u64, clients: Clients, seed: u64) {
        lock(self.model).begin_life();
        let process = process(
            world.env(NODE),
            Arc::clone(self.shape),
            self.options.clone(),
            Arc::clone(self.model),
            clients,
            seed,
        );
        spawn_life(world, NODE, life, process);
    }

    fn status(&self) -> LifeStatus {
        lock(self.model).verdict.status()
    }

    fn crash(&mut self, world: &World, report: &mut Report) {
        crash(world, self.model, report);
    }

    fn liveness_done(&self) -> bool {
        lock(self.model).verdict.counted("liveness_batches")
    }

    fn liveness_over(&self, world: &World) -> bool {
        world.tasks(NODE) == 0
    }
}

/// A power loss, noting whether a checkpoint was being written.
fn crash(world: &World, model: &Model, report: &mut Report) {
    {
        let mut m = lock(model);
        if m.checkpoint_running {
            m.verdict.stat("crashes_mid_checkpoint", 1);
        }
    }
    world.crash(NODE);
    report.crashes += 1;
}

/// Records a failed store operation; the node must then be restarted.
fn store_error(env: &SimEnv, model: &Model, what: &str, error: &StoreError) {
    env.trace(format_args!("{what} failed: {error}"));
    let mut m = lock(model);
    if error.is_corruption() {
        let excused = excused(env);
        m.corrupt(format!("{what}: {error}"), excused);
    } else {
        m.verdict.stat("io_errors", 1);
    }
    m.verdict.poisoned = true;
}

async fn recover(env: &SimEnv, model: &Model, options: StoreOptions) -> Option<Arc<Store<SimEnv>>> {
    let (store, opened) = match Store::open(env.clone(), &data_dir(), options).await {
        Ok(opened) => opened,
        Err(error) => {
            env.trace(format_args!("open failed: {error}"));
            let mut m = lock(model);
            if error.is_corruption() {
                m.corrupt(format!("open: {error}"), excused(env));
            } else {
                m.verdict.open_failed = true;
            }
            return None;
        }
    };
    env.trace(format_args!(
        "opened generation {} at checkpoint LSN {} (created {}, invalid superblocks {:?})",
        opened.superblock.generation,
        opened.superblock.checkpoint_lsn,
        opened.created,
        opened.superblocks_invalid
    ));
    match store.validate(|_, _| {}).await {
        Ok(validation) if validation.is_ok() => lock(model).verdict.check("recovery", 1),
        Ok(validation) => {
            let detail = format!("validate: {:?}", validation.findings.first());
            lock(model).corrupt(detail, excused(env));
            return None;
        }
        Err(error) => {
            store_error(env, model, "validate", &error);
            lock(model).verdict.open_failed = true;
            return None;
        }
    }
    let entries = match store.range(&RangeQuery::all(usize::MAX)).await {
        Ok(entries) => entries,
        Err(error) => {
            store_error(env, model, "scan after open", &error);
            lock(model).verdict.open_failed = true;
            return None;
        }
    };
    let found: Contents = entries.into_iter().collect();
    lock(model).reopened(opened.superblock.checkpoint_lsn, &found, excused(env));
    Some(Arc::new(store))
}

async fn process(
    env: SimEnv,
    shape: Arc<Shape>,
    options: StoreOptions,
    model: Model,
    clients: Clients,
    seed: u64,
) {
    let Some(store) = recover(&env, &model, options).await else {
        return;
    };
    let apply_turn = Arc::new(AsyncMutex::new(()));
    let mut rng = SimRng::new(seed, Stream::Workload);
    match clients {
        Clients::Random => {
            // Into an empty tree it takes the bulk path; into a tree with
            // keys, the ordinary one.
            if shape.bulk_keys > 0 {
                let mut bulk_rng = SimRng::new(seed, Stream::Settings);
                let lsn = {
                    let mut m = lock(&model);
                    m.next_lsn += 1;
                    m.next_lsn - 1
                };
                let batch = shape.bulk_batch(&mut bulk_rng, lsn);
                lock(&model).applying(lsn, batch.clone());
                match store.apply(&batch, lsn).await {
                    Ok(()) => {
                        env.trace(format_args!("applied LSN {lsn}: {} keys", batch.len()));
                        let mut m = lock(&model);
                        m.applied();
                        m.verdict.stat("bulk_builds", store.stats().bulk_builds);
                    }
                    Err(error) => {
                        store_error(&env, &model, "apply", &error);
                        return;
                    }
                }
            }
            for _ in 0..shape.writers {
                let task = writer(
                    env.clone(),
                    Arc::clone(&shape),
                    Arc::clone(&store),
                    Arc::clone(&model),
                    Arc::clone(&apply_turn),
                    SimRng::new(rng.next_u64(), Stream::Workload),
                    None,
                );
                drop(env.spawn("writer", task));
            }
            for _ in 0..shape.readers {
                let task = reader(
                    env.clone(),
                    Arc::clone(&shape),
                    Arc::clone(&store),
                    Arc::clone(&model),
                    SimRng::new(rng.next_u64(), Stream::Workload),
                );
                drop(env.spawn("reader", task));
            }
            let task = checkpointer(env.clone(), Arc::clone(&shape), store, model, rng);
            drop(env.spawn("checkpointer", task));
        }
        Clients::Liveness => {
            let client_env = env.clone();
            let task = async move {
                let env = client_env;
                writer(
                    env.clone(),
                    shape,
                    Arc::clone(&store),
                    Arc::clone(&model),
                    apply_turn,
                    rng,
                    Some(LIVENESS_MUTATIONS),
                )
                .await;
                if checkpoint(&env, &store, &model).await {
                    lock(&model).verdict.stat("liveness_batches", 1);
                }
            };
            drop(env.spawn("liveness-client", task));
        }
        Clients::None => {}
    }
}

async fn writer(
    env: SimEnv,
    shape: Arc<Shape>,
    store: Arc<Store<SimEnv>>,
    model: Model,
    apply_turn: Arc<AsyncMutex<()>>,
    mut rng: SimRng,
    count: Option<u64>,
) {
    let mut done = 0;
    while count.is_none_or(|count| done < count) {
        think(&env, &mut rng, shape.think_us_max).await;
        let _turn = apply_turn.lock().await;
        let lsn = {
            let mut m = lock(&model);
            if m.verdict.poisoned {
                return;
            }
            m.next_lsn += 1;
            m.next_lsn - 1
        };
        let batch: Vec<Mutation> = (0..rng.between(1, shape.batch_max))
            .map(|_| shape.mutation(&mut rng, lsn))
            .collect();
        lock(&model).applying(lsn, batch.clone());
        match store.apply(&batch, lsn).await {
            Ok(()) => {
                env.trace(format_args!("applied LSN {lsn}"));
                lock(&model).applied();
                done += 1;
            }
            Err(error) => {
                store_error(&env, &model, "apply", &error);
                return;
            }
        }
    }
}

async fn reader(
    env: SimEnv,
    shape: Arc<Shape>,
    store: Arc<Store<SimEnv>>,
    model: Model,
    mut rng: SimRng,
) {
    loop {
        think(&env, &mut rng, shape.think_us_max).await;
        if lock(&model).verdict.poisoned {
            return;
        }
        if rng.chance(0.1) {
            let version = lock(&model).version;
            let start = shape.key(&mut rng);
            let query = RangeQuery {
                start: Bound::Included(start.clone()),
                end: Bound::Unbounded,
                reverse: rng.chance(0.5),
                limit: rng.between(1, 64) as usize,
            };
            match store.range(&query).await {
                Ok(found) => lock(&model).range(version, &query, &found),
                Err(error) => read_error(&env, &model, &error),
            }
        } else {
            let version = lock(&model).version;
            let key = shape.key(&mut rng);
            match store.get(&key).await {
                Ok(found) => lock(&model).read(version, &key, found.as_ref()),
                Err(error) => read_error(&env, &model, &error),
            }
        }
    }
}

fn read_error(env: &SimEnv, model: &Model, error: &StoreError) {
    env.trace(format_args!("read failed: {error}"));
    let mut m = lock(model);
    if error.is_corruption() {
        let excused = excused(env);
        m.corrupt(format!("read: {error}"), excused);
    } else {
        m.verdict.stat("io_errors", 1);
    }
}

async fn checkpoint(env: &SimEnv, store: &Store<SimEnv>, model: &Model) -> bool {
    lock(model).checkpoint_running = true;
    let outcome = store.checkpoint().await;
    if let Ok(report) = &outcome {
        lock(model)
            .verdict
            .stat("pages_truncated", report.pages_truncated);
        lock(model)
            .verdict
            .stat("pages_relocated", report.pages_relocated);
    }
    lock(model).checkpoint_running = false;
    match outcome {
        Ok(report) => {
            env.trace(format_args!(
                "checkpoint generation {} at LSN {} ({} tree pages, {} free-list pages)",
                report.generation, report.checkpoint_lsn, report.tree_pages, report.free_list_pages
            ));
            if report.wrote {
                lock(model).checkpointed(report.checkpoint_lsn);
            }
            true
        }
        Err(error) => {
            store_error(env, model, "checkpoint", &error);
            false
        }
    }
}

async fn checkpointer(
    env: SimEnv,
    shape: Arc<Shape>,
    store: Arc<Store<SimEnv>>,
    model: Model,
    mut rng: SimRng,
) {
    loop {
        think(&env, &mut rng, shape.checkpoint_every_us_max).await;
        if lock(&model).verdict.poisoned || !checkpoint(&env, &store, &model).await {
            return;
        }
    }
}
