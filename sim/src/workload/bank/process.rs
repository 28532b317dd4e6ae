//! The database node's process for one life: recover and check what
//! survived, then run the embedded clients or serve the remote ones.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use jubilant_core::db::{Db, DbError, DbOptions, Durability};
use jubilant_core::env::{Clock, Spawn};
use jubilant_core::mutex::lock;
use jubilant_core::record::Escaped;
use jubilant_core::store::FindingKind;
use jubilant_core::txn::{OpResult, Ttl, TxnError};
use jubilant_io_sim::{SimEnv, SimRng, Stream, World};

use crate::report::Report;

use super::super::lives::{Clients, check_full_disk_not_fatal, excused};
use super::client::{BankClient, Life, checkpointer, client_task};
use super::conn::Conn;
use super::model::{Accounts, Entry};
use super::shape::{Shape, read_all};
use super::{LIVENESS_CLIENTS, LIVENESS_TRANSFERS, Model, NODE, Transport, data_dir};

pub(super) fn crash(world: &World, model: &Model, report: &mut Report) {
    if lock(model).checkpoint_running {
        lock(model).verdict.stat("crashes_mid_checkpoint", 1);
    }
    world.crash(NODE);
    report.crashes += 1;
}

pub(super) fn db_error(env: &SimEnv, model: &Model, what: &str, error: &DbError) {
    engine_error(env, model, what, &error.to_string(), error.is_corruption());
}

pub(super) fn engine_error(
    env: &SimEnv,
    model: &Model,
    what: &str,
    message: &str,
    corruption: bool,
) {
    env.trace(format_args!("{what} failed: {message}"));
    let mut m = lock(model);
    if corruption {
        let excused = excused(env);
        m.corrupt(format!("{what}: {message}"), excused);
    } else {
        m.verdict.stat("io_errors", 1);
        check_full_disk_not_fatal(&mut m.verdict, what, message);
    }
    m.verdict.poisoned = true;
}

pub(super) async fn recover(
    env: &SimEnv,
    shape: &Shape,
    model: &Model,
    options: DbOptions,
) -> Option<Db<SimEnv>> {
    // A database that exists (not one this open creates) must be left as
    // found by a refusal.
    let existed = env.file_exists(&data_dir().join("MANIFEST"));
    let before = env.files_fingerprint(&data_dir());
    let db = match Db::open(env.clone(), data_dir(), options).await {
        Ok(db) => db,
        Err(error) => {
            env.trace(format_args!("open failed: {error}"));
            let mut m = lock(model);
            if error.is_corruption() {
                if existed {
                    m.verdict.check("refused_unchanged", 1);
                    if env.files_fingerprint(&data_dir()) != before {
                        m.verdict.fail(
                            "refused_unchanged",
                            format!("the open refused ({error}) after changing files"),
                        );
                        return None;
                    }
                }
                m.corrupt(format!("open: {error}"), excused(env));
            } else {
                m.verdict.open_failed = true;
            }
            return None;
        }
    };
    let recovery = db.stats().recovery;
    let lsn_end = recovery.lsn_end;
    env.trace(format_args!(
        "recovered through LSN {lsn_end}; this life's LSNs start at {}",
        recovery.lsn_restart
    ));
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
                    format!("{} reads {other:?}, never written", Escaped(key)),
                );
                return None;
            }
        }
    }
    lock(model).recovered(&found, outcome.now_ms, lsn_end, excused(env));
    Some(db)
}

pub(super) async fn process(
    env: SimEnv,
    shape: Arc<Shape>,
    options: DbOptions,
    model: Model,
    transport: Transport,
    clients: Clients,
    seed: u64,
) {
    let sabotage = options.sabotage;
    let Some(db) = recover(&env, &shape, &model, options).await else {
        return;
    };
    if transport == Transport::Server {
        serve(&env, &shape, &model, db, clients, seed, sabotage).await;
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
        scanned: Default::default(),
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
pub(super) async fn serve(
    env: &SimEnv,
    shape: &Shape,
    model: &Model,
    db: Db<SimEnv>,
    clients: Clients,
    seed: u64,
    sabotage: jubilant_core::sabotage::Sabotage,
) {
    let config = jubilant_server::config::Config {
        sabotage,
        ..shape.server_config()
    };
    let connections_max = config.server.max_connections as u64;
    if config.audit.file.is_some() {
        super::audit::check(env, model).await;
    }
    let running = match jubilant_server::runtime::serve_db(env.clone(), config, db).await {
        Ok(running) => running,
        Err(error) => {
            env.trace(format_args!("the server did not start: {error}"));
            lock(model).verdict.open_failed = true;
            return;
        }
    };
    drop(env.spawn(
        "memory-monitor",
        memory_monitor(
            env.clone(),
            Arc::clone(running.counters()),
            Arc::clone(model),
            connections_max,
        ),
    ));
    let mut rng = SimRng::new(seed, Stream::Settings);
    if clients != Clients::Random || rng.below(100) >= shape.shutdown_pct {
        std::future::pending::<()>().await;
    }
    env.sleep(Duration::from_millis(rng.between(1, 300))).await;
    env.trace(format_args!("shutting the server down"));
    // Oracle `shutdown_deadline`: a clean shutdown ends within its
    // deadline (plus the time requests in flight and the last checkpoint
    // take), whatever the clients do.
    let bound = Duration::from_millis(super::shape::SHUTDOWN_TIMEOUT_MS + 300);
    let shutdown = std::pin::pin!(running.shutdown());
    let timer = std::pin::pin!(env.sleep(bound));
    let finished = match futures::future::select(shutdown, timer).await {
        futures::future::Either::Left((finished, _)) => finished,
        futures::future::Either::Right(_) => {
            let mut m = lock(model);
            m.verdict.check("shutdown_deadline", 1);
            m.verdict.fail(
                "shutdown_deadline",
                format!("a clean shutdown did not end within {bound:?}"),
            );
            return;
        }
    };
    lock(model).verdict.check("shutdown_deadline", 1);
    match finished {
        Ok(()) => {
            let mut m = lock(model);
            m.closed_cleanly = true;
            m.verdict.stat("clean_shutdowns", 1);
            // The life is over: the driver restarts the node.
            m.verdict.poisoned = true;
        }
        Err(jubilant_server::runtime::ServerError::Close(DbError::DiskFull(reason))) => {
            // Closed, but its last checkpoint found no room: the WAL keeps
            // everything, and the next open replays it.
            env.trace(format_args!("shutdown without a last checkpoint: {reason}"));
            let mut m = lock(model);
            m.verdict.stat("shutdowns_disk_full", 1);
            m.verdict.poisoned = true;
        }
        Err(error) => engine_error(env, model, "shutdown", &error.to_string(), false),
    }
}

/// Oracle `server_memory`: every few milliseconds while the server runs,
/// the answer and request bytes it holds stay within their budgets, plus
/// one answer built alone and one read per connection (design.md 9.3).
async fn memory_monitor(
    env: SimEnv,
    counters: Arc<jubilant_server::accounting::ServerCounters>,
    model: Model,
    connections_max: u64,
) {
    use super::shape::{QUEUED_BYTES_TOTAL, REQUEST_BYTES_TOTAL, RESPONSE_BYTES};
    /// One read of a connection's socket (the server's read chunk).
    const READ_BYTES: u64 = 64 * 1024;
    let answers_bound = QUEUED_BYTES_TOTAL + RESPONSE_BYTES;
    let requests_bound = REQUEST_BYTES_TOTAL + (connections_max + 1) * READ_BYTES;
    loop {
        env.sleep(Duration::from_millis(2)).await;
        let (answers, requests) = (counters.answers.held(), counters.requests.held());
        let mut m = lock(&model);
        m.verdict.check("server_memory", 1);
        if answers > answers_bound {
            m.verdict.fail(
                "server_memory",
                format!(
                    "the server holds {answers} answer bytes, over its bound of {answers_bound}"
                ),
            );
            return;
        }
        if requests > requests_bound {
            m.verdict.fail(
                "server_memory",
                format!(
                    "the server holds {requests} request bytes, over its bound of {requests_bound}"
                ),
            );
            return;
        }
    }
}
