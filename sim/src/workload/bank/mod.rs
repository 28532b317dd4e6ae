//! The bank workload: clients move money between Int64 accounts in
//! transactions over a small hot set and a larger cold one (contention and
//! none): blind transfers, ASSERT-guarded transfers (read a revision, then
//! compare-and-swap on it), and audits that read every account; `sync` and
//! `async` mixed; checkpoints, crashes, kills and every disk fault. Beside
//! the accounts, notes: string values from a few bytes to three times the
//! inline limit (so most live in the value log, which GC keeps compacting),
//! read, set, deleted, given short and long TTLs, expired and persisted,
//! while the TTL sweeper runs and the wall clock jumps. The engine reports
//! each commit as it logs it, and `model` checks serializability,
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

//!
//! - `shape`: the world's shape drawn from the seed, and its transactions;
//! - `process`: the database node's life (recover, check, run or serve);
//! - `client`: the clients and the checkpointer;
//! - `conn`: how a client reaches the database (embedded or the server);
//! - `model`: the serial history and the oracles.

mod audit;
mod client;
mod conn;
mod hostile;
mod model;
mod process;
mod resp_client;
mod scan;
mod shape;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jubilant_core::db::DbOptions;
use jubilant_core::mutex::lock;
use jubilant_io_sim::{NodeId, SimEnv, SimRng, Stream, World, node_ip};

use super::lives::{Clients, LifeStatus, Lives, final_phase, run_lives, spawn_life};
use crate::options::RunOptions;
use crate::report::Report;
use client::{BankClient, Life, checkpointer, client_task};
use conn::{Conn, Remote};
use model::BankModel;
use process::{crash, process};
use shape::Shape;

pub(super) const NODE: NodeId = NodeId(0);
/// Polls allowed for a fault-free recovery plus the liveness transfers.
pub const LIVENESS_POLLS_MAX: u64 = 300_000;
/// Concurrent clients in the liveness phase, and transfers each.
pub(super) const LIVENESS_CLIENTS: u64 = 4;
pub(super) const LIVENESS_TRANSFERS: u64 = 20;
/// Milliseconds the lock table has, once the liveness clients are done, to
/// be seen empty (background work takes locks briefly).
pub(super) const LOCKS_QUIET_POLLS: u64 = 1_000;
/// The port the server workload's server listens on.
pub(super) const SERVER_PORT: u16 = 6767;

/// How the clients reach the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    /// Calls on the `Db` in the node's process.
    Embedded,
    /// Requests to the server on the node, from client nodes.
    Server,
}

pub(super) fn server_addr() -> SocketAddr {
    SocketAddr::new(node_ip(NODE), SERVER_PORT)
}

/// The port the server workload's RESP listener listens on.
pub(super) const RESP_PORT: u16 = 6379;

pub(super) fn resp_addr() -> SocketAddr {
    SocketAddr::new(node_ip(NODE), RESP_PORT)
}

/// The node client `n` runs on in the server workload (the checkpointer
/// is client `clients`).
pub(super) fn client_node(n: u64) -> NodeId {
    NodeId(1 + n as u32)
}

pub(super) fn data_dir() -> PathBuf {
    PathBuf::from("/data/bank")
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
        for name in [
            "answers_lost",
            "stale_answers",
            "resp_transfers",
            "resp_audits",
            "watch_aborts",
        ] {
            report.stats.entry(name.to_owned()).or_insert(0);
        }
        for oracle in [
            "hostile_closed",
            "server_memory",
            "vanished_dropped",
            "shutdown_deadline",
        ] {
            report.checks.entry(oracle.to_owned()).or_insert(0);
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
        // The first of the random clients speak RESP, as many as the
        // world's share says.
        let resp = match clients {
            Clients::Random => count * self.shape.resp_pct / 100,
            _ => 0,
        };
        for n in 0..count {
            let node = client_node(n);
            if n < resp {
                let task = resp_client::resp_client_task(
                    self.client(world.env(node), life),
                    SimRng::new(rng.next_u64(), Stream::Workload),
                );
                world.spawn(node, "resp-client", task);
                continue;
            }
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
            let task = checkpointer(self.client(world.env(node), life), rng.clone());
            world.spawn(node, "checkpointer", task);
            self.start_hostile_clients(world, life, &mut rng);
        }
    }

    /// The world's hostile clients for one life, each on its own node past
    /// the honest ones.
    fn start_hostile_clients(&self, world: &World, life: u64, rng: &mut SimRng) {
        let hostility = self.shape.hostility;
        let life = Life {
            current: Arc::clone(&self.life),
            mine: life,
        };
        let mut node = self.shape.clients + 1;
        let mut next = || {
            node += 1;
            client_node(node)
        };
        for _ in 0..hostility.non_readers {
            let node = next();
            let task = hostile::non_reader(
                world.env(node),
                Arc::clone(self.shape),
                life.clone(),
                SimRng::new(rng.next_u64(), Stream::Hostile),
            );
            world.spawn(node, "non-reader", task);
        }
        for _ in 0..hostility.tricklers {
            let node = next();
            let task = hostile::trickler(
                world.env(node),
                Arc::clone(self.shape),
                Arc::clone(self.model),
                life.clone(),
                SimRng::new(rng.next_u64(), Stream::Hostile),
            );
            world.spawn(node, "trickler", task);
        }
        for _ in 0..hostility.vanishers {
            let node = next();
            let task = hostile::vanisher(
                world.env(node),
                Arc::clone(self.model),
                life.clone(),
                SimRng::new(rng.next_u64(), Stream::Hostile),
            );
            world.spawn(node, "vanisher", task);
        }
        for _ in 0..hostility.intruders {
            let node = next();
            let task = hostile::intruder(
                world.env(node),
                Arc::clone(self.model),
                life.clone(),
                SimRng::new(rng.next_u64(), Stream::Hostile),
            );
            world.spawn(node, "intruder", task);
        }
        if hostility.crowd > 0 {
            let node = next();
            let task = hostile::crowd(
                world.env(node),
                Arc::clone(self.shape),
                Arc::clone(self.model),
                life,
                hostility.crowd,
            );
            world.spawn(node, "crowd", task);
        }
    }

    fn client(&self, env: SimEnv, life: u64) -> BankClient {
        let timeout = Duration::from_millis(self.shape.answer_timeout_ms);
        let mut remote = Remote::new(env.clone(), server_addr(), timeout);
        if self.shape.hostility.users {
            remote = remote.with_credentials(hostile::BANK_USER, hostile::BANK_PASSWORD);
        }
        BankClient {
            conn: Conn::Remote(remote),
            env,
            shape: Arc::clone(self.shape),
            model: Arc::clone(self.model),
            life: Life {
                current: Arc::clone(&self.life),
                mine: life,
            },
            scanned: Default::default(),
        }
    }
}
