//! The db workload: concurrent committers write through the embedded
//! database's group commit, mixing `sync` and `async` durability, while a
//! checkpointer and the WAL-size trigger write checkpoints and small WAL
//! segments roll over and are removed; the fault schedule crashes and kills
//! the node at any moment (mid-batch, mid-fsync, mid-checkpoint,
//! mid-rollover, mid-recovery), fails fsyncs, fills the disk, and tears,
//! drops, misdirects and corrupts I/O. After every restart the database
//! must open, `validate` must find nothing, and every committer's keys must
//! hold exactly what its surviving transactions wrote (`db_model`).
//!
//! Phases as in the tree workload: lives until the step budget is spent;
//! then, faults off, a restart whose recovery is checked, a liveness client
//! that must finish its commits and a checkpoint within
//! [`LIVENESS_POLLS_MAX`] polls, and a last power loss after which all of
//! it must be back.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jubilant_core::btree::inline_value_bytes_limit;
use jubilant_core::db::{Db, DbError, DbOptions, Durability, Value, Write};
use jubilant_core::env::{Clock, Spawn};
use jubilant_core::log::LogError;
use jubilant_core::mutex::lock;
use jubilant_core::sabotage::Sabotage;
use jubilant_core::store::FindingKind;
use jubilant_io_sim::{Fault, NodeId, SimEnv, SimRng, Stream, World};

use super::db_model::{DbModel, Keys, Outcome};
use super::lives::{
    Clients, LifeStatus, Lives, check_full_disk_not_fatal, excused, final_phase, run_lives,
    spawn_life, think,
};
use crate::options::RunOptions;
use crate::report::Report;

const NODE: NodeId = NodeId(0);
/// Polls allowed for a fault-free recovery plus the liveness commits.
pub const LIVENESS_POLLS_MAX: u64 = 200_000;
/// Commits the liveness client makes before its checkpoint.
const LIVENESS_COMMITS: u64 = 16;

fn data_dir() -> PathBuf {
    PathBuf::from("/data/db")
}

/// The per-seed shape: geometry, WAL sizes and client behaviour.
#[derive(Clone, Debug)]
struct Shape {
    page_bytes: u32,
    cache_pages: u64,
    inline_value_bytes_max: u32,
    segment_bytes: u64,
    checkpoint_wal_bytes: u64,
    committers: usize,
    keys_per_committer: u64,
    /// Writes per transaction besides the marker.
    writes_max: u64,
    value_bytes_max: u64,
    async_pct: u64,
    /// Per cent of sets that get a TTL.
    ttl_pct: u64,
    delete_pct: u64,
    read_pct: u64,
    think_us_max: u64,
    checkpoint_every_us_max: u64,
    vlog_gc_live_pct: u8,
    vlog_gc_interval_ms: u64,
    /// Commits larger than a WAL segment, if this seed makes them.
    bulk: Option<Bulk>,
}

/// Large commits: some of a committer's transactions also set `keys` bulk
/// keys to inline values, so their records span two to four WAL segments.
#[derive(Clone, Copy, Debug)]
struct Bulk {
    /// One transaction in `every` (per committer, on average) is large.
    every: u64,
    keys: u64,
    value_bytes: u64,
}

impl Bulk {
    /// Drawn from the settings stream, so seeds drawn before large commits
    /// existed keep their worlds when this draws none (half of them).
    fn draw(rng: &mut SimRng, shape: &Shape) -> Option<Self> {
        if rng.chance(0.5) {
            return None;
        }
        // Inline values carry their bytes in the WAL record; about 100
        // bytes of key, framing and FlatBuffer besides.
        let value_bytes = u64::from(shape.inline_value_bytes_max);
        let wal_bytes = rng.between(150, 400) * shape.segment_bytes / 100;
        Some(Bulk {
            every: rng.between(4, 40),
            keys: (wal_bytes / (value_bytes + 100)).clamp(1, 2_000),
            value_bytes,
        })
    }
}

impl Shape {
    fn draw(rng: &mut SimRng) -> Self {
        let page_bytes = if rng.chance(0.75) { 4096 } else { 8192 };
        let inline_value_bytes_max =
            rng.between(16, inline_value_bytes_limit(page_bytes).min(1024) as u64) as u32;
        let value_bytes_max = rng.between(1, 3 * u64::from(inline_value_bytes_max));
        Shape {
            page_bytes,
            cache_pages: rng.between(64, 400),
            inline_value_bytes_max,
            segment_bytes: rng.between(16, 256) * 1024,
            checkpoint_wal_bytes: rng.between(8, 512) * 1024,
            committers: rng.between(1, 8) as usize,
            keys_per_committer: rng.between(1, 60),
            writes_max: rng.between(1, 4),
            // Up to three times the inline limit: larger values stay in
            // their WAL record, and leaves point to it.
            value_bytes_max,
            async_pct: [0, 50, 100, rng.between(0, 100)][rng.below(4) as usize],
            ttl_pct: if rng.chance(0.5) {
                0
            } else {
                rng.between(1, 40)
            },
            delete_pct: rng.between(0, 40),
            read_pct: rng.between(0, 60),
            think_us_max: rng.between(0, 2_000),
            checkpoint_every_us_max: rng.between(1_000, 300_000),
            vlog_gc_live_pct: rng.between(20, 90) as u8,
            vlog_gc_interval_ms: rng.between(1, 50),
            bulk: None,
        }
    }

    fn options(&self, sabotage: Sabotage) -> DbOptions {
        DbOptions {
            create_if_missing: true,
            page_bytes: self.page_bytes,
            inline_value_bytes_max: self.inline_value_bytes_max,
            cache_bytes: self.cache_pages * u64::from(self.page_bytes),
            // A few pages, from what the seed drew already (no new draw:
            // the corpus's worlds stay as they were), so cuts happen.
            truncate_tail_bytes_min: (1 + self.cache_pages % 8) * u64::from(self.page_bytes),
            durability: Durability::Sync,
            wal_segment_bytes: self.segment_bytes,
            checkpoint_wal_bytes: self.checkpoint_wal_bytes,
            // A value is one WAL record: it must fit the smallest segment
            // (16 KiB). The drawn `value_bytes_max` bounds what the
            // committers write, integers (8 bytes) aside.
            value_bytes_max: 8 * 1024,
            commit_observer: None,
            vlog_gc_live_pct: self.vlog_gc_live_pct,
            vlog_gc_interval_ms: self.vlog_gc_interval_ms,
            sabotage,
            ..DbOptions::default()
        }
    }

    fn key(&self, committer: usize, rng: &mut SimRng) -> String {
        format!("{:04}-c{committer}", rng.below(self.keys_per_committer))
    }

    /// The bulk keys of a large commit, each set to a value naming the
    /// transaction.
    fn bulk_writes(&self, bulk: Bulk, committer: usize, seq: u64) -> Vec<(String, Option<Value>)> {
        (0..bulk.keys)
            .map(|j| {
                let mut bytes = seq.to_le_bytes().to_vec();
                bytes.resize(bulk.value_bytes.max(8) as usize, committer as u8);
                (format!("b{j:04}-c{committer}"), Some(Value::Bytes(bytes)))
            })
            .collect()
    }

    fn value(&self, committer: usize, seq: u64, rng: &mut SimRng) -> Value {
        match rng.below(3) {
            0 => Value::Int(rng.next_u64() as i64),
            1 => {
                let mut bytes = seq.to_le_bytes().to_vec();
                bytes.resize(
                    rng.between(8, self.value_bytes_max.max(8)) as usize,
                    committer as u8,
                );
                Value::Bytes(bytes)
            }
            _ => {
                let mut text = format!("c{committer}-s{seq}-");
                let len = rng.between(0, self.value_bytes_max) as usize;
                while text.len() < len {
                    text.push('x');
                }
                Value::String(text)
            }
        }
    }
}

fn marker_key(committer: usize) -> String {
    format!("m-c{committer}")
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "page_bytes={} cache_pages={} inline_max={} segment_bytes={} checkpoint_wal_bytes={} committers={} keys={} writes_max={} value_max={} async_pct={} ttl_pct={} delete_pct={} read_pct={} think_us_max={} checkpoint_every_us_max={} vlog_gc_live_pct={} vlog_gc_interval_ms={}",
            self.page_bytes,
            self.cache_pages,
            self.inline_value_bytes_max,
            self.segment_bytes,
            self.checkpoint_wal_bytes,
            self.committers,
            self.keys_per_committer,
            self.writes_max,
            self.value_bytes_max,
            self.async_pct,
            self.ttl_pct,
            self.delete_pct,
            self.read_pct,
            self.think_us_max,
            self.checkpoint_every_us_max,
            self.vlog_gc_live_pct,
            self.vlog_gc_interval_ms
        )?;
        match self.bulk {
            Some(bulk) => write!(
                f,
                " bulk_every={} bulk_keys={} bulk_value_bytes={}",
                bulk.every, bulk.keys, bulk.value_bytes
            ),
            None => Ok(()),
        }
    }
}

pub(super) type Model = Arc<Mutex<DbModel>>;

/// Runs the workload on `world`, filling `report`.
pub fn run(world: &World, options: &RunOptions, report: &mut Report) {
    run_with(world, options, report, false);
}

/// The backup workload: the db workload plus a task taking online backups
/// and checking each (`workload/backup.rs`).
pub fn run_backup(world: &World, options: &RunOptions, report: &mut Report) {
    run_with(world, options, report, true);
}

fn run_with(world: &World, options: &RunOptions, report: &mut Report, backups: bool) {
    let mut workload_rng = SimRng::new(options.seed, Stream::Workload);
    let mut shape = Shape::draw(&mut workload_rng);
    shape.bulk = Bulk::draw(&mut SimRng::new(options.seed, Stream::Settings), &shape);
    if backups {
        // Mostly `async` commits and few reads (a `sync` read makes what it
        // read durable at once): answered before they are durable, they
        // are what a backup that forgot to sync first would miss. Its own
        // stream: the db workload's worlds stay as they were.
        let mut rng = SimRng::new(options.seed ^ BACKUP_SALT, Stream::Settings);
        shape.async_pct = rng.between(30, 100);
        shape.read_pct = rng.between(0, 10);
    }
    let shape = Arc::new(shape);
    let db_options = shape.options(options.sabotage);
    let model: Model = Arc::new(Mutex::new(DbModel::new(shape.committers)));
    world.trace(format_args!("workload db: {shape}"));

    let mut lives = DbLives {
        shape: &shape,
        options: &db_options,
        model: &model,
        backups,
    };
    let life = run_lives(world, NODE, options, report, &mut workload_rng, &mut lives);
    let ended = lock(&model).verdict.ended() || report.failure.is_some();
    if !ended {
        report.steps += final_phase(world, NODE, report, &mut workload_rng, &mut lives, life);
    }
    let counts = world.fault_counts();
    let m = lock(&model);
    m.verdict.fill(report);
    report
        .stats
        .insert("torn_writes".to_owned(), counts.get(Fault::WriteTorn));
    for name in [
        "crashes_mid_checkpoint",
        "crashes_mid_close",
        "crashes_mid_recovery",
        "clean_closes",
        "closes_disk_full",
        "checkpoints",
        "commits_sync",
        "commits_async",
        "commits_disk_full",
        "wal_segments_removed",
        "wal_rollovers",
        "wal_rollovers_prepared_ahead",
        "commits_spanning",
        "repair_actions",
        "vlog_gc_values_relocated",
        "vlog_gc_segments_removed",
    ] {
        report.stats.entry(name.to_owned()).or_insert(0);
    }
    if !backups {
        return;
    }
    for name in ["backups_checked", "backups_failed", "backups_refused"] {
        report.stats.entry(name.to_owned()).or_insert(0);
    }
}

struct DbLives<'a> {
    shape: &'a Arc<Shape>,
    options: &'a DbOptions,
    model: &'a Model,
    /// A task takes backups (the backup workload).
    backups: bool,
}

impl Lives for DbLives<'_> {
    const ENGINE: &'static str = "database";
    const LIVENESS_WORK: &'static str = "the client did not finish its commits and checkpoint";
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
            self.backups,
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
}

/// A power loss, noting what was running.
fn crash(world: &World, model: &Model, report: &mut Report) {
    {
        let mut m = lock(model);
        if m.close_running {
            m.verdict.stat("crashes_mid_close", 1);
        }
        if m.checkpoint_running {
            m.verdict.stat("crashes_mid_checkpoint", 1);
        }
        if m.recovering {
            m.verdict.stat("crashes_mid_recovery", 1);
        }
        m.recovering = false;
    }
    world.crash(NODE);
    report.crashes += 1;
}

/// Records a failed database operation; the node must then be restarted.
pub(super) fn db_error(env: &SimEnv, model: &Model, what: &str, error: &DbError) {
    env.trace(format_args!("{what} failed: {error}"));
    let mut m = lock(model);
    if error.is_corruption() {
        let excused = excused(env);
        m.corrupt(format!("{what}: {error}"), excused);
    } else {
        m.verdict.stat("io_errors", 1);
        check_full_disk_not_fatal(&mut m.verdict, what, &error.to_string());
    }
    m.verdict.poisoned = true;
}

async fn recover(env: &SimEnv, model: &Model, options: DbOptions) -> Option<Arc<Db<SimEnv>>> {
    lock(model).recovering = true;
    // A database that exists (not one this open creates) must be left as
    // found by a refusal.
    let existed = env.file_exists(&data_dir().join("MANIFEST"));
    let before = env.files_fingerprint(&data_dir());
    let mut opened = Db::open(env.clone(), data_dir(), options.clone()).await;
    if let Err(error) = &opened
        && error.is_corruption()
        && existed
    {
        // A refusal leaves every file as it found it, for the operator.
        let mut m = lock(model);
        m.verdict.check("refused_unchanged", 1);
        if env.files_fingerprint(&data_dir()) != before {
            m.verdict.fail(
                "refused_unchanged",
                format!("the open refused ({error}) after changing files"),
            );
            m.recovering = false;
            return None;
        }
    }
    if let Err(DbError::Log(LogError::Corrupt(corruption))) = &opened
        && excused(env)
    {
        // Refused, rightly: the operator accepts the loss and the open
        // cuts the WAL at the damage. The oracles judge what it keeps, and
        // that no revision handed out before is handed out again.
        env.trace(format_args!("open refused: {corruption}; cutting there"));
        {
            let mut m = lock(model);
            m.verdict.check("recovery", 1);
            m.verdict.stat("cuts_at_damage", 1);
        }
        let accepting = DbOptions {
            accept_data_loss: true,
            ..options
        };
        opened = Db::open(env.clone(), data_dir(), accepting).await;
    }
    lock(model).recovering = false;
    let db = match opened {
        Ok(db) => db,
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
    let recovery = db.stats().recovery;
    env.trace(format_args!("recovered: {recovery:?}"));
    if recovery.data_loss.is_some() {
        // A cut is on record before it removes anything.
        let mut m = lock(model);
        m.verdict.check("loss_recorded", 1);
        let history = recovery.loss_history;
        // Damage at a power loss (bit rot, a lost sector) cannot reach a
        // record written and synced within this open, and leaves it
        // counted as unreadable, never as nothing; a write the disk drops
        // or misplaces can lose it outright.
        let counts = env.fault_counts();
        let write_damaged = counts.get(Fault::WriteStale) + counts.get(Fault::WriteMisdirected) > 0;
        if history.cuts == 0 && history.unreadable_records == 0 && !write_damaged {
            m.verdict.fail(
                "loss_recorded",
                "the open cut the WAL at damage but DATA_LOSS holds no cut".to_owned(),
            );
        }
    }
    lock(model).opened(recovery.lsn_end, excused(env));
    match db.validate().await {
        Ok(validation) if validation.is_ok() => {
            let mut m = lock(model);
            m.verdict.check("recovery", 1);
            m.verdict
                .check("vlog_pointers_resolve", validation.vlog_pointers);
        }
        Ok(validation) => {
            let detail = format!("validate: {:?}", validation.findings.first());
            let dangling = validation
                .findings
                .iter()
                .any(|finding| finding.kind == FindingKind::VlogPointer);
            let oracle = if dangling {
                "vlog_pointers_resolve"
            } else {
                "recovery"
            };
            lock(model).corrupt_as(oracle, detail, excused(env));
            return None;
        }
        Err(error) => {
            db_error(env, model, "validate", &error);
            lock(model).verdict.open_failed = true;
            return None;
        }
    }
    let Some((markers, contents)) = read_committers(env, &db, model).await else {
        lock(model).verdict.open_failed = true;
        return None;
    };
    let counter = match db
        .get_with(super::db_update::COUNTER_KEY, Durability::Async)
        .await
    {
        Ok(found) => super::db_update::counter_value(found.as_ref()),
        Err(error) => {
            db_error(env, model, "read after open", &error);
            lock(model).verdict.open_failed = true;
            return None;
        }
    };
    let mut m = lock(model);
    m.counter_recovered(counter, recovery.lsn_end, excused(env));
    // Damage can lurk in the page cache for lives (a kill keeps it), so
    // any damage so far may explain a lost record.
    m.recovered(&markers, &contents, recovery.lsn_end, excused(env));
    m.verdict.recoveries += 1;
    m.verdict.stat("repair_actions", recovery.repair_actions());
    m.verdict.stat("txns_replayed", recovery.txns_replayed);
    Some(Arc::new(db))
}

/// Every committer's marker and keys as `db` holds them; `None` (the
/// failure noted) when a read fails.
pub(super) async fn read_committers(
    env: &SimEnv,
    db: &Db<SimEnv>,
    model: &Model,
) -> Option<(Vec<Option<Value>>, Vec<Keys>)> {
    let keys: Vec<Vec<String>> = lock(model).committers.iter().map(|c| c.keys()).collect();
    let mut markers = Vec::with_capacity(keys.len());
    let mut contents = Vec::with_capacity(keys.len());
    for (index, keys) in keys.iter().enumerate() {
        let mut found = Keys::new();
        let marker = match db.get_with(&marker_key(index), Durability::Async).await {
            Ok(marker) => marker,
            Err(error) => {
                db_error(env, model, "read after open", &error);
                return None;
            }
        };
        for key in keys {
            match db.get_with(key, Durability::Async).await {
                Ok(value) => {
                    found.insert(key.clone(), value);
                }
                Err(error) => {
                    db_error(env, model, "read after open", &error);
                    return None;
                }
            }
        }
        markers.push(marker);
        contents.push(found);
    }
    Some((markers, contents))
}

async fn process(
    env: SimEnv,
    shape: Arc<Shape>,
    options: DbOptions,
    model: Model,
    clients: Clients,
    seed: u64,
    backups: bool,
) {
    let Some(db) = recover(&env, &model, options.clone()).await else {
        return;
    };
    let mut rng = SimRng::new(seed, Stream::Workload);
    match clients {
        Clients::Random => {
            for index in 0..shape.committers {
                let task = committer(
                    env.clone(),
                    Arc::clone(&shape),
                    Arc::clone(&db),
                    Arc::clone(&model),
                    index,
                    (
                        SimRng::new(rng.next_u64(), Stream::Workload),
                        // Its own stream: the workload stream draws as
                        // before.
                        Some(SimRng::new(seed ^ (index as u64) << 32, Stream::Settings)),
                        Some(SimRng::new(
                            seed ^ SNAPSHOT_SALT ^ (index as u64) << 40,
                            Stream::Settings,
                        )),
                    ),
                    None,
                );
                drop(env.spawn("committer", task));
            }
            // Its own stream: the workload stream draws as before.
            let closes = SimRng::new(seed ^ CLOSE_SALT, Stream::Settings);
            let task = checkpointer(
                env.clone(),
                Arc::clone(&shape),
                Arc::clone(&db),
                Arc::clone(&model),
                (rng, closes),
            );
            drop(env.spawn("checkpointer", task));
            if backups {
                // Its own stream: the workload stream draws as before.
                let task = super::backup::backups(
                    env.clone(),
                    Arc::clone(&db),
                    Arc::clone(&model),
                    options,
                    SimRng::new(seed ^ BACKUP_SALT, Stream::Settings),
                    shape.think_us_max,
                );
                drop(env.spawn("backups", task));
            }
            drop(env.spawn("stats", stats(env.clone(), db, model)));
        }
        Clients::Liveness => {
            let client_env = env.clone();
            let task = async move {
                let env = client_env;
                let done = committer(
                    env.clone(),
                    shape,
                    Arc::clone(&db),
                    Arc::clone(&model),
                    0,
                    (rng, None, None),
                    Some(LIVENESS_COMMITS),
                )
                .await;
                if done && checkpoint(&env, &db, &model).await {
                    lock(&model).verdict.stat("liveness_batches", 1);
                }
            };
            drop(env.spawn("liveness-client", task));
        }
        Clients::None => {}
    }
}

/// Copies the database's counters into the model now and then, so a crash
/// does not lose the life's figures.
async fn stats(env: SimEnv, db: Arc<Db<SimEnv>>, model: Model) {
    let mut seen = jubilant_core::wal::GroupCommitStats::default();
    let mut seen_vlog = jubilant_core::vlog::VlogStats::default();
    loop {
        env.sleep(Duration::from_millis(5)).await;
        let stats = db.stats();
        let (now, vlog) = (stats.wal, stats.vlog);
        {
            let mut m = lock(&model);
            if m.verdict.poisoned || m.closing {
                return;
            }
            m.verdict.stat("wal_fsyncs", now.fsyncs - seen.fsyncs);
            m.verdict.stat("wal_batches", now.batches - seen.batches);
            m.verdict.stat(
                "wal_segments_removed",
                // A background removal counts its segments as it starts
                // and takes back those it could not remove: the figure can
                // fall.
                now.log
                    .segments_removed
                    .saturating_sub(seen.log.segments_removed),
            );
            m.verdict
                .stat("wal_rollovers", now.log.rollovers - seen.log.rollovers);
            m.verdict.stat(
                "commits_spanning",
                now.commits_spanning - seen.commits_spanning,
            );
            m.verdict.stat(
                "wal_rollovers_prepared_ahead",
                now.log.rollovers_prepared_ahead - seen.log.rollovers_prepared_ahead,
            );
            m.verdict.stat("vlog_segments_retained", vlog.segments);
            m.verdict.stat(
                "vlog_gc_values_relocated",
                vlog.gc_values_relocated - seen_vlog.gc_values_relocated,
            );
            m.verdict.stat(
                "vlog_gc_segments_removed",
                vlog.gc_segments_removed - seen_vlog.gc_segments_removed,
            );
        }
        seen = now;
        seen_vlog = vlog;
    }
}

/// Commits transactions until `count` (or forever); returns whether it
/// finished them all.
async fn committer(
    env: SimEnv,
    shape: Arc<Shape>,
    db: Arc<Db<SimEnv>>,
    model: Model,
    index: usize,
    (mut rng, mut bulk_rng, mut snapshot_rng): (SimRng, Option<SimRng>, Option<SimRng>),
    count: Option<u64>,
) -> bool {
    let mut done = 0;
    let mut held: Option<super::db_snapshot::Held<'_>> = None;
    while count.is_none_or(|count| done < count) {
        think(&env, &mut rng, shape.think_us_max).await;
        if lock(&model).stops_committers() {
            return false;
        }
        let seq = lock(&model).committers[index].next_seq;
        let mut writes: Vec<(String, Option<Value>)> = (0..rng.between(1, shape.writes_max))
            .map(|_| {
                let key = shape.key(index, &mut rng);
                if rng.below(100) < shape.delete_pct {
                    (key, None)
                } else {
                    (key, Some(shape.value(index, seq, &mut rng)))
                }
            })
            .collect();
        if let (Some(bulk), Some(bulk_rng)) = (shape.bulk, bulk_rng.as_mut())
            && bulk_rng.below(bulk.every) == 0
        {
            writes.extend(shape.bulk_writes(bulk, index, seq));
        }
        let durability = if rng.below(100) < shape.async_pct {
            Durability::Async
        } else {
            Durability::Sync
        };
        // Some sets get a TTL: short ones expire while the committer runs.
        let mut ttls = std::collections::BTreeMap::new();
        for (key, value) in &writes {
            if value.is_some() && rng.below(100) < shape.ttl_pct {
                let ttl_ms = if rng.chance(0.7) {
                    rng.between(1, 50)
                } else {
                    rng.between(1_000, 3_600_000)
                };
                ttls.insert(key.clone(), ttl_ms);
            }
        }
        let now_ns = env.now_mono().as_nanos();
        let (seq, writes) = lock(&model).submit(
            index,
            writes,
            ttls.clone(),
            marker_key(index),
            durability,
            now_ns,
        );
        let batch: Vec<Write> = writes
            .into_iter()
            .map(|(key, value)| match (value, ttls.get(&key)) {
                (Some(value), Some(&ttl_ms)) => Write::SetTtl {
                    key: key.into_bytes(),
                    value,
                    ttl_ms,
                },
                (Some(value), None) => Write::Set {
                    key: key.into_bytes(),
                    value,
                },
                (None, _) => Write::Del {
                    key: key.into_bytes(),
                },
            })
            .collect();
        match db.write(batch, durability).await {
            Ok(lsn) => {
                env.trace(format_args!(
                    "committer {index} transaction {seq} committed at LSN {lsn}"
                ));
                let now_ns = env.now_mono().as_nanos();
                let mut m = lock(&model);
                m.answered(index, seq, Outcome::Acked(lsn), now_ns);
                m.verdict.stat(
                    match durability {
                        Durability::Sync => "commits_sync",
                        Durability::Async => "commits_async",
                    },
                    1,
                );
                done += 1;
            }
            Err(error @ (DbError::DiskFull(_) | DbError::Unavailable(_))) => {
                env.trace(format_args!(
                    "committer {index} transaction {seq} refused: {error}"
                ));
                let now_ns = env.now_mono().as_nanos();
                let mut m = lock(&model);
                m.answered(index, seq, Outcome::Refused, now_ns);
                m.verdict.stat(
                    if matches!(error, DbError::DiskFull(_)) {
                        "commits_disk_full"
                    } else {
                        "commits_unavailable"
                    },
                    1,
                );
                continue;
            }
            Err(error) => {
                lock(&model).answered(index, seq, Outcome::Unknown, u64::MAX);
                db_error(&env, &model, "commit", &error);
                return false;
            }
        }
        if rng.below(100) < shape.read_pct {
            let key = shape.key(index, &mut rng);
            let durability = if rng.chance(0.5) {
                Durability::Sync
            } else {
                Durability::Async
            };
            let began_ns = env.now_mono().as_nanos();
            match db.get_with(&key, durability).await {
                Ok(found) => {
                    let ended_ns = env.now_mono().as_nanos();
                    let sync = durability == Durability::Sync;
                    lock(&model).read(index, &key, found.as_ref(), sync, began_ns, ended_ns);
                }
                Err(DbError::DiskFull(reason)) => {
                    // A sync read waits for the log to be durable through
                    // what it read; a full disk may keep it from that.
                    env.trace(format_args!("committer {index} read refused: {reason}"));
                    lock(&model).verdict.stat("reads_disk_full", 1);
                }
                Err(error) => {
                    db_error(&env, &model, "read", &error);
                    return false;
                }
            }
        }
        if let Some(snapshot_rng) = snapshot_rng.as_mut()
            && (!super::db_snapshot::step(&env, &db, &model, index, snapshot_rng, &mut held).await
                || !super::db_update::step(&env, &db, &model, index, snapshot_rng).await)
        {
            return false;
        }
    }
    true
}

async fn checkpoint(env: &SimEnv, db: &Db<SimEnv>, model: &Model) -> bool {
    // The engine's own bookkeeping, recounted from scratch around each
    // checkpoint (a mismatch panics, and fails the seed).
    db.check_invariants();
    lock(model).checkpoint_running = true;
    let outcome = db.checkpoint().await;
    lock(model).checkpoint_running = false;
    db.check_invariants();
    lock(model).verdict.stat("engine_invariant_checks", 2);
    match outcome {
        Ok(report) => {
            env.trace(format_args!(
                "checkpoint generation {} at LSN {} ({} tree pages)",
                report.generation, report.checkpoint_lsn, report.tree_pages
            ));
            if report.wrote {
                let mut m = lock(model);
                m.verdict.stat("checkpoints", 1);
                m.verdict.stat("pages_truncated", report.pages_truncated);
                m.verdict.stat("pages_relocated", report.pages_relocated);
            }
            true
        }
        Err(DbError::DiskFull(reason)) => {
            // Kept sealed; the next checkpoint writes it again.
            env.trace(format_args!("checkpoint refused: {reason}"));
            lock(model).verdict.stat("checkpoints_disk_full", 1);
            true
        }
        Err(error) => {
            db_error(env, model, "checkpoint", &error);
            false
        }
    }
}

async fn checkpointer(
    env: SimEnv,
    shape: Arc<Shape>,
    db: Arc<Db<SimEnv>>,
    model: Model,
    (mut rng, mut closes): (SimRng, SimRng),
) {
    loop {
        think(&env, &mut rng, shape.checkpoint_every_us_max).await;
        if lock(&model).verdict.poisoned || !checkpoint(&env, &db, &model).await {
            return;
        }
        if closes.below(CLOSE_ONE_IN) == 0 {
            close(&env, db, &model).await;
            return;
        }
    }
}

/// One checkpoint in this many (per life, on average) is followed by a
/// clean close, so the close's own work (its checkpoints, the compaction
/// of `data.pages`, the WAL's restart, design 2.5 and 5.9) meets crashes
/// and is checked by the next recovery.
const CLOSE_ONE_IN: u64 = 8;
/// Mixed into the seed for the backup task's stream.
const BACKUP_SALT: u64 = 0xbac0_0000_0000_0000;
/// Mixed into the seed for the committers' snapshot streams.
const SNAPSHOT_SALT: u64 = 0x5a95_0000_0000_0000;
/// Mixed into the seed for the close decisions' stream.
const CLOSE_SALT: u64 = 0xc105_e000_0000_0000;
/// How long a close waits for the committers to let go of the database.
const CLOSE_WAIT_POLLS_MAX: u64 = 2_000;

/// Stops the committers, waits for them to drop the database, and closes
/// it; the driver then restarts the node.
async fn close(env: &SimEnv, db: Arc<Db<SimEnv>>, model: &Model) {
    lock(model).closing = true;
    let mut db = db;
    for _ in 0..CLOSE_WAIT_POLLS_MAX {
        match Arc::try_unwrap(db) {
            Ok(only) => {
                lock(model).close_running = true;
                let outcome = only.close().await;
                let mut m = lock(model);
                m.close_running = false;
                match outcome {
                    Ok(()) => {
                        m.verdict.stat("clean_closes", 1);
                        // The life is over: the driver restarts the node
                        // (a kill or a power cut, after which the next
                        // recovery must find every acknowledged commit).
                        m.verdict.poisoned = true;
                    }
                    Err(DbError::DiskFull(_)) => {
                        // A full disk refused the close's checkpoint: the
                        // WAL still holds everything, as after a crash.
                        m.verdict.stat("closes_disk_full", 1);
                        m.verdict.poisoned = true;
                    }
                    Err(error) => {
                        drop(m);
                        db_error(env, model, "close", &error);
                    }
                }
                return;
            }
            Err(shared) => db = shared,
        }
        env.sleep(Duration::from_millis(10)).await;
    }
}
