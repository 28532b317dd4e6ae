//! The bank workload: clients move money between Int64 accounts in
//! transactions over a small hot set and a larger cold one (contention and
//! none): blind transfers, ASSERT-guarded transfers (read a revision, then
//! compare-and-swap on it), and audits that read every account; `sync` and
//! `async` mixed; checkpoints, crashes, kills and every disk fault. Beside
//! the accounts, notes: string values from a few bytes to three times the
//! inline limit (so most live in the value log, which GC keeps compacting),
//! read, set, deleted, given short and long TTLs, expired and persisted,
//! while the TTL sweeper runs and the wall clock jumps. The engine reports
//! each commit as it logs it, and `bank_model` checks serializability,
//! TTLs, conservation, durability and value-log pointers against that
//! history.
//!
//! The final, fault-free phase runs several clients transferring between
//! two or three hot accounts with their keys declared in random order: they
//! must all finish within [`LIVENESS_POLLS_MAX`] polls (a lock-order bug
//! deadlocks them) and leave the lock table empty.
//!
//! The `server` workload ([`run_server`]) is the same bank run through the
//! real server (`jubilant_server::runtime`) and the real client library:
//! the database node serves on the simulated network, each client (and the
//! checkpointer, which sends `CHECKPOINT`) lives on its own node, and the
//! network adds latency, resets and partitions between clients and server.
//! A client whose answer is lost does not know whether its transaction
//! committed; the model learns the history from the engine, so its oracles
//! hold for such possibly-committed transactions too.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jubilant_core::db::{CommitEvent, CommitObserver, Db, DbError, DbOptions, Durability, Value};
use jubilant_core::env::{Clock, Spawn};
use jubilant_core::mutex::lock;
use jubilant_core::sabotage::Sabotage;
use jubilant_core::store::FindingKind;
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnError};
use jubilant_io_sim::{NodeId, SimEnv, SimRng, Stream, World, node_ip};
use jubilant_server::config::Config;

use super::bank_conn::{Conn, Failure, Remote};
use super::bank_model::{Accounts, Answered, BankModel, Entry};
use super::lives::{
    Clients, LifeStatus, Lives, excused, final_phase, run_lives, spawn_life, think,
};
use crate::options::RunOptions;
use crate::report::Report;

const NODE: NodeId = NodeId(0);
/// Polls allowed for a fault-free recovery plus the liveness transfers.
pub const LIVENESS_POLLS_MAX: u64 = 300_000;
/// Concurrent clients in the liveness phase, and transfers each.
const LIVENESS_CLIENTS: u64 = 4;
const LIVENESS_TRANSFERS: u64 = 20;
/// Milliseconds the lock table has, once the liveness clients are done, to
/// be seen empty (background work takes locks briefly).
const LOCKS_QUIET_POLLS: u64 = 1_000;
/// The port the server workload's server listens on.
const SERVER_PORT: u16 = 6767;

/// How the clients reach the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// Calls on the `Db` in the node's process.
    Embedded,
    /// Requests to the server on the node, from client nodes.
    Server,
}

fn server_addr() -> SocketAddr {
    SocketAddr::new(node_ip(NODE), SERVER_PORT)
}

/// The node client `n` runs on in the server workload (the checkpointer
/// is client `clients`).
fn client_node(n: u64) -> NodeId {
    NodeId(1 + n as u32)
}

fn data_dir() -> PathBuf {
    PathBuf::from("/data/bank")
}

#[derive(Clone, Debug)]
struct Shape {
    hot: u64,
    cold: u64,
    hot_pct: u64,
    clients: u64,
    guarded_pct: u64,
    audit_pct: u64,
    async_pct: u64,
    think_us_max: u64,
    checkpoint_every_us_max: u64,
    segment_bytes: u64,
    cache_pages: u64,
    notes: u64,
    /// Per cent of transactions that work on notes.
    note_pct: u64,
    note_bytes_max: u64,
    /// Per cent of note writes that set a TTL.
    note_ttl_pct: u64,
    vlog_segment_bytes: u64,
    vlog_gc_live_pct: u8,
    vlog_gc_interval_ms: u64,
    sweep_interval_ms: u64,
    /// Drawn from their own stream (added after the bank's seeds were in
    /// the corpus, which keep their worlds): a lock wait past this is
    /// `Busy` (0: none).
    lock_wait_ms_max: u64,
    /// Server workload: how long a client waits for an answer.
    answer_timeout_ms: u64,
    /// Server workload: requests a connection may have in flight.
    in_flight_per_connection: usize,
    /// Server workload: the server's own timed checkpoints (0: none).
    checkpoint_interval_ms: u64,
    /// Server workload: per cent of lives that end in a clean shutdown
    /// (as on SIGTERM) rather than a crash.
    shutdown_pct: u64,
}

/// The inline value limit the bank's database is created with.
const INLINE_BYTES: u64 = 512;

impl Shape {
    fn draw(rng: &mut SimRng, settings: &mut SimRng) -> Self {
        Shape {
            lock_wait_ms_max: [0, 0, settings.between(1, 20)][settings.below(3) as usize],
            answer_timeout_ms: settings.between(50, 2_000),
            in_flight_per_connection: settings.between(1, 16) as usize,
            checkpoint_interval_ms: [0, settings.between(10, 500)][settings.below(2) as usize],
            shutdown_pct: [0, settings.between(10, 60)][settings.below(2) as usize],
            hot: rng.between(2, 8),
            cold: rng.between(0, 200),
            hot_pct: rng.between(20, 100),
            clients: rng.between(2, 10),
            guarded_pct: rng.between(0, 60),
            audit_pct: rng.between(1, 15),
            async_pct: [0, 50, 100, rng.between(0, 100)][rng.below(4) as usize],
            think_us_max: rng.between(0, 2_000),
            checkpoint_every_us_max: rng.between(1_000, 300_000),
            segment_bytes: rng.between(16, 256) * 1024,
            cache_pages: rng.between(64, 300),
            notes: [0, rng.between(1, 4), rng.between(1, 30)][rng.below(3) as usize],
            note_pct: rng.between(5, 50),
            note_bytes_max: rng.between(1, 3 * INLINE_BYTES),
            note_ttl_pct: [0, rng.between(1, 100)][rng.below(2) as usize],
            vlog_segment_bytes: rng.between(2, 20) * 3 * INLINE_BYTES,
            vlog_gc_live_pct: rng.between(20, 90) as u8,
            vlog_gc_interval_ms: rng.between(1, 50),
            sweep_interval_ms: rng.between(1, 100),
        }
    }

    fn options(&self, sabotage: Sabotage, model: &Model) -> DbOptions {
        let observed = Arc::clone(model);
        DbOptions {
            cache_bytes: self.cache_pages * 4096,
            wal_segment_bytes: self.segment_bytes,
            checkpoint_wal_bytes: self.segment_bytes,
            inline_value_bytes_max: INLINE_BYTES as u32,
            vlog_segment_bytes: self.vlog_segment_bytes,
            vlog_gc_live_pct: self.vlog_gc_live_pct,
            vlog_gc_interval_ms: self.vlog_gc_interval_ms,
            sweep_interval_ms: self.sweep_interval_ms,
            sweep_keys_max: 16,
            lock_wait_ms_max: self.lock_wait_ms_max,
            commit_observer: Some(CommitObserver(Arc::new(move |event| match event {
                CommitEvent::Logged { lsn, mutations } => lock(&observed).applied(lsn, mutations),
                CommitEvent::Discarded { from_lsn } => lock(&observed).discarded(from_lsn),
            }))),
            sabotage,
            ..DbOptions::default()
        }
    }

    /// The server workload's server: on the node's address, with this
    /// world's limits (the database it serves is opened by the workload).
    fn server_config(&self) -> Config {
        let mut config = Config {
            data_dir: data_dir(),
            ..Config::default()
        };
        config.server.listen_address = server_addr().ip();
        config.server.port = SERVER_PORT;
        config.server.max_in_flight_per_connection = self.in_flight_per_connection;
        config.server.max_in_flight_total = self.in_flight_per_connection * 4;
        config.storage.checkpoint_interval_ms = self.checkpoint_interval_ms;
        // The audit after a restart reads every account and note.
        let audit = read_all(self);
        config.limits.keys_per_txn_max = config.limits.keys_per_txn_max.max(audit.keys().len());
        config.limits.ops_per_txn_max = config.limits.ops_per_txn_max.max(audit.ops().len());
        config
    }

    fn accounts(&self) -> u64 {
        self.hot + self.cold
    }

    /// An account index below `universe`, hot ones `hot_pct` of the time.
    fn account(&self, rng: &mut SimRng, universe: u64) -> u64 {
        if universe <= self.hot || rng.below(100) < self.hot_pct {
            rng.below(self.hot.min(universe))
        } else {
            self.hot + rng.below(universe - self.hot)
        }
    }

    fn note(&self, rng: &mut SimRng) -> String {
        format!("note-{:02}", rng.below(self.notes))
    }

    /// A note's value: its writer's tag, then filler up to a random size.
    fn note_value(&self, tag: &str, rng: &mut SimRng) -> Value {
        let mut text = format!("{tag}-");
        let len = rng.between(1, self.note_bytes_max) as usize;
        while text.len() < len {
            text.push((b'a' + (text.len() % 26) as u8) as char);
        }
        Value::String(text)
    }

    /// A TTL for a note write, if it gets one: short ones expire while the
    /// clients run, long ones survive restarts unless the clock jumps.
    fn note_ttl(&self, rng: &mut SimRng) -> Option<u64> {
        (rng.below(100) < self.note_ttl_pct).then(|| {
            if rng.chance(0.6) {
                rng.between(0, 40)
            } else {
                rng.between(1_000, 3_600_000)
            }
        })
    }

    /// A transaction over notes: a read of one (and its TTL), or a change to
    /// one (set, delete, expire or persist) that also reads another.
    fn note_txn(&self, tag: &str, rng: &mut SimRng) -> Txn {
        let mut txn = Txn::new();
        let a = self.note(rng);
        if rng.chance(0.3) {
            let id = txn.key(a, Mode::R);
            txn.get(id).op(Op::Ttl(id));
            return txn;
        }
        let b = self.note(rng);
        let id = txn.key(a.clone(), Mode::RW);
        let other = (b != a).then(|| txn.key(b, Mode::R));
        txn.get(id);
        match rng.below(10) {
            0 => {
                txn.del(id);
            }
            1 => {
                txn.op(Op::Expire(id, rng.between(0, 40)));
            }
            2 => {
                txn.op(Op::Persist(id));
            }
            _ => {
                let value = self.note_value(tag, rng);
                txn.op(Op::Set(id, value, self.note_ttl(rng)));
            }
        }
        txn.op(Op::Ttl(id));
        if let Some(other) = other {
            txn.get(other).op(Op::Ttl(other));
        }
        txn
    }

    fn durability(&self, rng: &mut SimRng) -> Durability {
        if rng.below(100) < self.async_pct {
            Durability::Async
        } else {
            Durability::Sync
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hot={} cold={} hot_pct={} clients={} guarded_pct={} audit_pct={} async_pct={} think_us_max={} checkpoint_every_us_max={} segment_bytes={} cache_pages={} notes={} note_pct={} note_bytes_max={} note_ttl_pct={} vlog_segment_bytes={} vlog_gc_live_pct={} vlog_gc_interval_ms={} sweep_interval_ms={} lock_wait_ms_max={} answer_timeout_ms={} in_flight_per_connection={} checkpoint_interval_ms={} shutdown_pct={}",
            self.hot,
            self.cold,
            self.hot_pct,
            self.clients,
            self.guarded_pct,
            self.audit_pct,
            self.async_pct,
            self.think_us_max,
            self.checkpoint_every_us_max,
            self.segment_bytes,
            self.cache_pages,
            self.notes,
            self.note_pct,
            self.note_bytes_max,
            self.note_ttl_pct,
            self.vlog_segment_bytes,
            self.vlog_gc_live_pct,
            self.vlog_gc_interval_ms,
            self.sweep_interval_ms,
            self.lock_wait_ms_max,
            self.answer_timeout_ms,
            self.in_flight_per_connection,
            self.checkpoint_interval_ms,
            self.shutdown_pct
        )
    }
}

type Model = Arc<Mutex<BankModel>>;

/// Runs the workload on `world`, filling `report`.
pub fn run(world: &World, options: &RunOptions, report: &mut Report) {
    run_over(world, options, report, Transport::Embedded);
}

/// Runs the server workload (the bank through the server) on `world`.
pub fn run_server(world: &World, options: &RunOptions, report: &mut Report) {
    run_over(world, options, report, Transport::Server);
}

fn run_over(world: &World, options: &RunOptions, report: &mut Report, transport: Transport) {
    let mut workload_rng = SimRng::new(options.seed, Stream::Workload);
    let mut settings_rng = SimRng::new(options.seed, Stream::Settings);
    let shape = Arc::new(Shape::draw(&mut workload_rng, &mut settings_rng));
    let model: Model = Arc::new(Mutex::new(BankModel::new()));
    let db_options = shape.options(options.sabotage, &model);
    let name = match transport {
        Transport::Embedded => "bank",
        Transport::Server => "server",
    };
    world.trace(format_args!("workload {name}: {shape}"));
    let network: Vec<NodeId> = match transport {
        Transport::Embedded => Vec::new(),
        Transport::Server => (0..=shape.clients).map(client_node).collect(),
    };
    let mut lives = BankLives {
        shape: &shape,
        options: &db_options,
        model: &model,
        transport,
        life: Arc::new(AtomicU64::new(0)),
        network,
    };
    let life = run_lives(world, NODE, options, report, &mut workload_rng, &mut lives);
    let ended = lock(&model).verdict.ended() || report.failure.is_some();
    if !ended {
        report.steps += final_phase(world, NODE, report, &mut workload_rng, &mut lives, life);
    }
    let m = lock(&model);
    m.verdict.fill(report);
    // Every oracle is named in the summary, even one with nothing to check
    // in this world (a seed without notes makes no TTL checks).
    for oracle in [
        "serializability",
        "durability",
        "conservation",
        "ttl",
        "vlog_pointers_resolve",
        "liveness",
        "recovery",
    ] {
        report.checks.entry(oracle.to_owned()).or_insert(0);
    }
    for name in [
        "transfers",
        "guarded_aborts",
        "audits",
        "note_txns",
        "checkpoints",
        "busy",
    ] {
        report.stats.entry(name.to_owned()).or_insert(0);
    }
    if transport == Transport::Server {
        for name in ["answers_lost", "stale_answers"] {
            report.stats.entry(name.to_owned()).or_insert(0);
        }
    }
}

struct BankLives<'a> {
    shape: &'a Arc<Shape>,
    options: &'a DbOptions,
    model: &'a Model,
    transport: Transport,
    /// The life running now, for clients on other nodes to notice that
    /// theirs ended.
    life: Arc<AtomicU64>,
    /// The client nodes partitions cut from the database node.
    network: Vec<NodeId>,
}

impl Lives for BankLives<'_> {
    const ENGINE: &'static str = "database";
    const LIVENESS_WORK: &'static str =
        "the clients did not finish their transfers (a lock cycle?)";
    const LIVENESS_POLLS_MAX: u64 = LIVENESS_POLLS_MAX;

    fn start(&mut self, world: &World, life: u64, clients: Clients, seed: u64) {
        lock(self.model).begin_life();
        self.life.store(life, Ordering::Release);
        let process = process(
            world.env(NODE),
            Arc::clone(self.shape),
            self.options.clone(),
            Arc::clone(self.model),
            self.transport,
            clients,
            seed,
        );
        spawn_life(world, NODE, life, process);
        if self.transport == Transport::Server {
            self.start_remote_clients(world, life, clients, seed);
        }
    }

    fn status(&self) -> LifeStatus {
        lock(self.model).verdict.status()
    }

    fn crash(&mut self, world: &World, report: &mut Report) {
        crash(world, self.model, report);
    }

    fn liveness_done(&self) -> bool {
        lock(self.model).verdict.counted("liveness_done")
    }

    fn network(&self) -> &[NodeId] {
        &self.network
    }
}

impl BankLives<'_> {
    /// The server workload's clients for one life, each on its own node;
    /// they dial until the server listens and stop when the life ends.
    fn start_remote_clients(&self, world: &World, life: u64, clients: Clients, seed: u64) {
        let mut rng = SimRng::new(seed, Stream::Workload);
        let (count, transfers) = match clients {
            Clients::Random => (self.shape.clients, None),
            Clients::Liveness => (LIVENESS_CLIENTS, Some(LIVENESS_TRANSFERS)),
            Clients::None => return,
        };
        let finished = Arc::new(AtomicU64::new(0));
        for n in 0..count {
            let node = client_node(n);
            let task = client_task(
                self.client(world.env(node), life),
                Arc::clone(&finished),
                SimRng::new(rng.next_u64(), Stream::Workload),
                transfers,
            );
            world.spawn(node, "bank-client", task);
        }
        if clients == Clients::Random {
            let node = client_node(self.shape.clients);
            let task = checkpointer(self.client(world.env(node), life), rng);
            world.spawn(node, "checkpointer", task);
        }
    }

    fn client(&self, env: SimEnv, life: u64) -> BankClient {
        let timeout = Duration::from_millis(self.shape.answer_timeout_ms);
        BankClient {
            conn: Conn::Remote(Remote::new(env.clone(), server_addr(), timeout)),
            env,
            shape: Arc::clone(self.shape),
            model: Arc::clone(self.model),
            life: Life {
                current: Arc::clone(&self.life),
                mine: life,
            },
        }
    }
}

/// The life a client belongs to.
#[derive(Clone)]
struct Life {
    current: Arc<AtomicU64>,
    mine: u64,
}

impl Life {
    /// Whether the client's life ended (its node, or the server's, was
    /// restarted since).
    fn over(&self) -> bool {
        self.current.load(Ordering::Acquire) != self.mine
    }
}

/// What a client task works with.
struct BankClient {
    env: SimEnv,
    shape: Arc<Shape>,
    conn: Conn,
    model: Model,
    life: Life,
}

impl BankClient {
    /// Whether the client should stop: its life ended or the engine failed.
    fn stopped(&self) -> bool {
        self.life.over() || lock(&self.model).verdict.poisoned
    }

    /// Records a failure; returns whether the client may go on.
    async fn failed(&mut self, what: &str, failure: Failure) -> bool {
        if self.life.over() {
            // An answer from the life before (delivered before the restart,
            // read after it): the new life's engine did not fail.
            lock(&self.model).verdict.stat("stale_answers", 1);
            return false;
        }
        match failure {
            Failure::NoEffect(counter) => {
                lock(&self.model).verdict.stat(counter, 1);
                true
            }
            Failure::Unreachable(why) => {
                self.env.trace(format_args!("{what}: {why}"));
                self.env.sleep(Duration::from_millis(5)).await;
                true
            }
            Failure::Unknown(why) => {
                self.env.trace(format_args!("{what}: answer lost ({why})"));
                lock(&self.model).verdict.stat("answers_lost", 1);
                true
            }
            Failure::Engine {
                message,
                corruption,
            } => {
                engine_error(&self.env, &self.model, what, &message, corruption);
                false
            }
            Failure::Refused(why) => {
                lock(&self.model).verdict.fail(
                    "serializability",
                    format!("a well-formed {what} was refused: {why}"),
                );
                false
            }
        }
    }

    /// Records an answer unless the client's life ended while it travelled
    /// (the model has moved on to the next life's history).
    fn answered(&self, answered: Answered) -> bool {
        let mut m = lock(&self.model);
        if self.life.over() {
            m.verdict.stat("stale_answers", 1);
            return false;
        }
        m.answered(answered);
        true
    }
}

fn crash(world: &World, model: &Model, report: &mut Report) {
    if lock(model).checkpoint_running {
        lock(model).verdict.stat("crashes_mid_checkpoint", 1);
    }
    world.crash(NODE);
    report.crashes += 1;
}

fn db_error(env: &SimEnv, model: &Model, what: &str, error: &DbError) {
    engine_error(env, model, what, &error.to_string(), error.is_corruption());
}

fn engine_error(env: &SimEnv, model: &Model, what: &str, message: &str, corruption: bool) {
    env.trace(format_args!("{what} failed: {message}"));
    let mut m = lock(model);
    if corruption {
        let excused = excused(env);
        m.corrupt(format!("{what}: {message}"), excused);
    } else {
        m.verdict.stat("io_errors", 1);
    }
    m.verdict.poisoned = true;
}

/// A read-only transaction over every account: the audit.
fn audit(shape: &Shape) -> Txn {
    let mut txn = Txn::new();
    for n in 0..shape.accounts() {
        let id = txn.key(format!("acct-{n:04}"), Mode::R);
        txn.get(id);
    }
    txn
}

/// The audit and a read of every note with its TTL: what a check after a
/// restart reads.
fn read_all(shape: &Shape) -> Txn {
    let mut txn = audit(shape);
    for n in 0..shape.notes {
        let id = txn.key(format!("note-{n:02}"), Mode::R);
        txn.get(id).op(Op::Ttl(id));
    }
    txn
}

async fn recover(
    env: &SimEnv,
    shape: &Shape,
    model: &Model,
    options: DbOptions,
) -> Option<Db<SimEnv>> {
    let db = match Db::open(env.clone(), data_dir(), options).await {
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
    let lsn_end = db.stats().recovery.lsn_end;
    lock(model).opened(lsn_end, excused(env));
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
    let mut read = read_all(shape);
    read.durability(Durability::Async);
    let audit = loop {
        match db.transaction(&read).await {
            // The sweeper or GC held a key longer than the lock wait
            // allows: nothing happened; try again.
            Err(TxnError::Busy { .. }) => {
                lock(model).verdict.stat("busy", 1);
                env.sleep(std::time::Duration::from_millis(1)).await;
            }
            audit => break audit,
        }
    };
    let outcome = match audit {
        Ok(outcome) => outcome,
        Err(TxnError::Db(error)) => {
            db_error(env, model, "read after open", &error);
            lock(model).verdict.open_failed = true;
            return None;
        }
        Err(other) => {
            lock(model)
                .verdict
                .fail("recovery", format!("the audit after open failed: {other}"));
            return None;
        }
    };
    let mut found = Accounts::new();
    for (op, result) in read.ops().iter().zip(&outcome.results) {
        let key = &read.keys()[op.key() as usize].2;
        match result {
            OpResult::Get(Some((value, revision))) => {
                let entry = Entry {
                    value: value.clone(),
                    revision: *revision,
                    expires_at_ms: None,
                };
                found.insert(key.clone(), entry);
            }
            OpResult::Get(None) | OpResult::Ttl(Ttl::Missing | Ttl::NoExpiry) => {}
            OpResult::Ttl(Ttl::Ms(ms)) => {
                if let Some(entry) = found.get_mut(key) {
                    entry.expires_at_ms = Some(outcome.now_ms + ms);
                }
            }
            other => {
                lock(model).verdict.fail(
                    "durability",
                    format!("{key} reads {other:?}, never written"),
                );
                return None;
            }
        }
    }
    lock(model).recovered(&found, outcome.now_ms, lsn_end, excused(env));
    Some(db)
}

async fn process(
    env: SimEnv,
    shape: Arc<Shape>,
    options: DbOptions,
    model: Model,
    transport: Transport,
    clients: Clients,
    seed: u64,
) {
    let Some(db) = recover(&env, &shape, &model, options).await else {
        return;
    };
    if transport == Transport::Server {
        serve(&env, &shape, &model, db, clients, seed).await;
        return;
    }
    let db = Arc::new(db);
    let life = Life {
        current: Arc::new(AtomicU64::new(0)),
        mine: 0,
    };
    let local = |db: &Arc<Db<SimEnv>>| BankClient {
        env: env.clone(),
        shape: Arc::clone(&shape),
        conn: Conn::Embedded(Arc::clone(db)),
        model: Arc::clone(&model),
        life: life.clone(),
    };
    let mut rng = SimRng::new(seed, Stream::Workload);
    match clients {
        Clients::Random => {
            for _ in 0..shape.clients {
                let task = client_task(
                    local(&db),
                    Arc::default(),
                    SimRng::new(rng.next_u64(), Stream::Workload),
                    None,
                );
                drop(env.spawn("client", task));
            }
            drop(env.spawn("checkpointer", checkpointer(local(&db), rng)));
        }
        Clients::Liveness => {
            let finished = Arc::new(AtomicU64::new(0));
            for _ in 0..LIVENESS_CLIENTS {
                let task = client_task(
                    local(&db),
                    Arc::clone(&finished),
                    SimRng::new(rng.next_u64(), Stream::Workload),
                    Some(LIVENESS_TRANSFERS),
                );
                drop(env.spawn("liveness-client", task));
            }
        }
        Clients::None => {}
    }
}

/// The server workload's server: serves `db` until the node crashes or is
/// killed, or, in some lives, shuts down cleanly after a while (as on
/// SIGTERM), which must lose nothing logged; the node is then restarted.
async fn serve(
    env: &SimEnv,
    shape: &Shape,
    model: &Model,
    db: Db<SimEnv>,
    clients: Clients,
    seed: u64,
) {
    let running =
        match jubilant_server::runtime::serve_db(env.clone(), shape.server_config(), db).await {
            Ok(running) => running,
            Err(error) => {
                env.trace(format_args!("the server did not start: {error}"));
                lock(model).verdict.open_failed = true;
                return;
            }
        };
    let mut rng = SimRng::new(seed, Stream::Settings);
    if clients != Clients::Random || rng.below(100) >= shape.shutdown_pct {
        std::future::pending::<()>().await;
    }
    env.sleep(Duration::from_millis(rng.between(1, 300))).await;
    env.trace(format_args!("shutting the server down"));
    match running.shutdown().await {
        Ok(()) => {
            let mut m = lock(model);
            m.closed_cleanly = true;
            m.verdict.stat("clean_shutdowns", 1);
            // The life is over: the driver restarts the node.
            m.verdict.poisoned = true;
        }
        Err(error) => engine_error(env, model, "shutdown", &error.to_string(), false),
    }
}

/// One client: runs `count` transfers (or, without a count, transactions
/// until its life ends). In the liveness phase the last of the
/// [`LIVENESS_CLIENTS`] to finish (`finished` counts them) checks that the
/// lock table empties.
async fn client_task(
    mut bank: BankClient,
    finished: Arc<AtomicU64>,
    rng: SimRng,
    count: Option<u64>,
) {
    if !client_loop(&mut bank, rng, count).await || count.is_none() {
        return;
    }
    if finished.fetch_add(1, Ordering::AcqRel) + 1 < LIVENESS_CLIENTS {
        return;
    }
    // The sweeper and GC still lock keys now and then, briefly: a leaked
    // lock never goes away.
    let mut keys_locked = None;
    for _ in 0..LOCKS_QUIET_POLLS {
        match bank.conn.keys_locked().await {
            Ok(0) => {
                keys_locked = Some(0);
                break;
            }
            Ok(n) => keys_locked = Some(n),
            Err(failure) => {
                bank.env
                    .trace(format_args!("lock table check failed: {failure:?}"));
            }
        }
        bank.env.sleep(Duration::from_millis(1)).await;
    }
    let mut m = lock(&bank.model);
    m.verdict.check("liveness", 1);
    if keys_locked != Some(0) {
        m.verdict.fail(
            "liveness",
            format!(
                "the clients are done but the lock table stays busy: {keys_locked:?} keys locked"
            ),
        );
    }
    m.verdict.stat("liveness_done", 1);
}

/// Runs transactions until `count` transfers are done (or forever);
/// returns whether it finished.
async fn client_loop(bank: &mut BankClient, mut rng: SimRng, count: Option<u64>) -> bool {
    let shape = Arc::clone(&bank.shape);
    let liveness = count.is_some();
    let mut transfers = 0;
    let mut notes_written = 0u64;
    let client_id = rng.next_u64() % 1000;
    while count.is_none_or(|count| transfers < count) {
        think(&bank.env, &mut rng, shape.think_us_max).await;
        if bank.stopped() {
            return false;
        }
        let roll = rng.below(100);
        let note = !liveness && shape.notes > 0 && rng.below(100) < shape.note_pct;
        let mut txn = if note {
            notes_written += 1;
            shape.note_txn(&format!("c{client_id}-{notes_written}"), &mut rng)
        } else if !liveness && roll < shape.audit_pct {
            audit(&shape)
        } else {
            // The liveness clients crowd two or three hot accounts.
            let universe = if liveness {
                shape.hot.min(3)
            } else {
                shape.accounts()
            };
            let a = shape.account(&mut rng, universe);
            let b = (a + 1 + rng.below(universe - 1)) % universe;
            let (from, to) = (format!("acct-{a:04}"), format!("acct-{b:04}"));
            let amount = rng.between(1, 100) as i64;
            if !liveness && roll < shape.audit_pct + shape.guarded_pct {
                // Read the payee's revision, then move money only if it is
                // unchanged: a compare-and-swap that may lose a race.
                let mut read = Txn::new();
                let id = read.key(to.clone(), Mode::R);
                read.get(id).durability(shape.durability(&mut rng));
                let revision = match bank.conn.transaction(&read).await {
                    Ok(outcome) => {
                        let revision = match &outcome.results[0] {
                            OpResult::Get(Some((_, revision))) => *revision,
                            _ => 0,
                        };
                        if !bank.answered(Answered {
                            txn: read.clone(),
                            outcome,
                            durability: Durability::Async,
                        }) {
                            return false;
                        }
                        revision
                    }
                    Err(failure) => {
                        if bank.failed("read", failure).await {
                            continue;
                        }
                        return false;
                    }
                };
                let mut txn = Txn::new();
                let (f, t) = (txn.key(from, Mode::RW), txn.key(to, Mode::RW));
                txn.get(f)
                    .add(f, -amount)
                    .assert_revision_eq(t, revision)
                    .add(t, amount);
                txn
            } else {
                let mut txn = Txn::new();
                // Declared in random order: the engine locks in key order.
                let (f, t) = if rng.chance(0.5) {
                    let f = txn.key(from, Mode::RW);
                    (f, txn.key(to, Mode::RW))
                } else {
                    let t = txn.key(to, Mode::RW);
                    (txn.key(from, Mode::RW), t)
                };
                txn.get(f).get(t).add(f, -amount).add(t, amount);
                txn
            }
        };
        let durability = shape.durability(&mut rng);
        txn.durability(durability);
        match bank.conn.transaction(&txn).await {
            Ok(outcome) => {
                let kind = match (note, outcome.read_only) {
                    (true, _) => "note_txns",
                    (false, true) => "audits",
                    (false, false) => "transfers",
                };
                if !outcome.read_only && !note {
                    transfers += 1;
                }
                if !bank.answered(Answered {
                    txn,
                    outcome,
                    durability,
                }) {
                    return false;
                }
                lock(&bank.model).verdict.stat(kind, 1);
            }
            Err(failure) => {
                if !bank.failed("transaction", failure).await {
                    return false;
                }
            }
        }
    }
    true
}

async fn checkpointer(mut bank: BankClient, mut rng: SimRng) {
    let every = bank.shape.checkpoint_every_us_max;
    loop {
        think(&bank.env, &mut rng, every).await;
        if bank.stopped() {
            return;
        }
        if let Conn::Embedded(db) = &bank.conn {
            // The engine's own bookkeeping, recounted from scratch (a
            // mismatch panics, and fails the seed).
            db.check_invariants();
            lock(&bank.model).verdict.stat("engine_invariant_checks", 1);
        }
        lock(&bank.model).checkpoint_running = true;
        let outcome = bank.conn.checkpoint().await;
        lock(&bank.model).checkpoint_running = false;
        match outcome {
            Ok(wrote) => {
                if wrote {
                    lock(&bank.model).verdict.stat("checkpoints", 1);
                }
            }
            Err(failure) => {
                if !bank.failed("checkpoint", failure).await {
                    return;
                }
            }
        }
    }
}
