//! The log workload: concurrent clients append records to the WAL's
//! log-file layer, sync at random moments and remove old segments, while the
//! fault schedule crashes and kills the node; after every restart the model
//! (`log_model`) checks what recovery returned.
//!
//! A run has three phases:
//! 1. lives: open (recover), run clients until a crash, kill, or a failed
//!    log ends the life; repeat until the step budget is spent;
//! 2. a fault-free restart whose recovery is checked like any other;
//! 3. liveness: with faults off, one client appends and syncs a fixed batch
//!    and must finish within [`LIVENESS_POLLS_MAX`] polls; a last crash and
//!    recovery must then return all of it.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::lock::Mutex as AsyncMutex;
use jubilant_core::env::{Clock, Spawn};
use jubilant_core::log::{Log, LogConfig, LogError, LogScan, OnDamage};
use jubilant_core::mutex::lock;
use jubilant_core::sabotage::Sabotage;
use jubilant_io_sim::{Fault, GARBLE_BLOCK_BYTES, NodeId, SimEnv, SimRng, Stream, World};

use super::lives::{Clients, LifeStatus, Lives, final_phase, run_lives, spawn_life};
use super::log_model::LogModel;
use crate::options::RunOptions;
use crate::report::Report;

/// The node running the log.
const NODE: NodeId = NodeId(0);
/// Polls allowed for a fault-free recovery plus a client's batch.
pub const LIVENESS_POLLS_MAX: u64 = 50_000;
/// Records the liveness client appends.
const LIVENESS_RECORDS: u64 = 16;

/// The per-seed shape of the workload: log geometry and client behaviour.
#[derive(Clone, Debug)]
struct Shape {
    /// Batches start on boundaries of this many bytes (512 to 4096).
    block_bytes: u32,
    segment_bytes: u64,
    record_bytes_max: u32,
    write_buffer_bytes: usize,
    /// Payload sizes are drawn from a few fixed lengths, so a new record
    /// often has exactly the length of one a crash discarded: the case in
    /// which a stale record could line up and come back.
    payload_lens: [usize; 3],
    clients: u64,
    think_us_max: u64,
    /// Per cent of client actions that append (the rest mostly sync).
    append_pct: u64,
}

impl Shape {
    /// On a disk that garbles whole 4 KiB blocks (`garbling`), batches
    /// must not share one: the block is at least that (the contract
    /// `LogConfig::block_bytes` states).
    fn draw(rng: &mut SimRng, garbling: bool) -> Self {
        let record_bytes_max = rng.between(48, 200) as u32;
        let shift = rng.below(4);
        let block_bytes = if garbling {
            GARBLE_BLOCK_BYTES as u32
        } else {
            512u32 << shift
        };
        // The header's block, then at least one batch of one record.
        let segment_min = u64::from(block_bytes) + 24 + 8 + u64::from(record_bytes_max);
        let segment_bytes = rng.between(segment_min, (16 * 1024).max(4 * u64::from(block_bytes)));
        let lens = [0; 3].map(|_| rng.between(20, u64::from(record_bytes_max)) as usize);
        Shape {
            block_bytes,
            segment_bytes,
            record_bytes_max,
            write_buffer_bytes: rng.between(64, 2048) as usize,
            payload_lens: lens,
            clients: rng.between(1, 6),
            think_us_max: rng.between(0, 2_000),
            append_pct: rng.between(40, 85),
        }
    }

    fn config(&self, sabotage: Sabotage) -> LogConfig {
        let mut config = LogConfig::new(PathBuf::from("/data/wal"));
        config.block_bytes = self.block_bytes;
        config.segment_bytes = self.segment_bytes;
        config.record_bytes_max = self.record_bytes_max;
        config.write_buffer_bytes = self.write_buffer_bytes;
        config.sabotage = sabotage;
        config
    }

    /// A payload unique to (life, client, seq), padded to a drawn length.
    fn payload(&self, life: u64, client: u64, seq: u64, rng: &mut SimRng) -> Vec<u8> {
        let mut payload = format!("L{life}c{client}#{seq}|").into_bytes();
        let len = self.payload_lens[rng.below(3) as usize].max(payload.len());
        let fill = b'a' + (seq % 26) as u8;
        payload.resize(len, fill);
        payload
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block_bytes={} segment_bytes={} record_bytes_max={} write_buffer_bytes={} payload_lens={:?} clients={} think_us_max={} append_pct={}",
            self.block_bytes,
            self.segment_bytes,
            self.record_bytes_max,
            self.write_buffer_bytes,
            self.payload_lens,
            self.clients,
            self.think_us_max,
            self.append_pct
        )
    }
}

type Model = Arc<Mutex<LogModel>>;

/// What the clients of one life do.
/// Runs the workload on `world`, filling `report`.
pub fn run(world: &World, options: &RunOptions, report: &mut Report) {
    let mut workload_rng = SimRng::new(options.seed, Stream::Workload);
    let garbling = world.faults().get(Fault::WriteGarbled) > 0.0;
    let shape = Arc::new(Shape::draw(&mut workload_rng, garbling));
    let config = shape.config(options.sabotage);
    let model: Model = Arc::new(Mutex::new(LogModel::new()));
    world.trace(format_args!("workload log: {shape}"));

    let mut lives = LogLives {
        shape: &shape,
        config: &config,
        model: &model,
    };
    let life = run_lives(world, NODE, options, report, &mut workload_rng, &mut lives);

    let (failed, corrupt) = {
        let m = lock(&model);
        (
            m.verdict.failure.is_some() || report.failure.is_some(),
            m.verdict.corruption_detected,
        )
    };
    if !failed && !corrupt {
        report.steps += final_phase(world, NODE, report, &mut workload_rng, &mut lives, life);
    }

    let m = lock(&model);
    m.verdict.fill(report);
}

struct LogLives<'a> {
    shape: &'a Arc<Shape>,
    config: &'a LogConfig,
    model: &'a Model,
}

impl Lives for LogLives<'_> {
    const ENGINE: &'static str = "log";
    const LIVENESS_WORK: &'static str = "the client did not finish its batch";
    const LIVENESS_POLLS_MAX: u64 = LIVENESS_POLLS_MAX;

    fn start(&mut self, world: &World, life: u64, clients: Clients, seed: u64) {
        lock(self.model).begin_life();
        let process = process(
            world.env(NODE),
            life,
            Arc::clone(self.shape),
            self.config.clone(),
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
        world.crash(NODE);
        report.crashes += 1;
    }

    fn liveness_done(&self) -> bool {
        lock(self.model).verdict.counted("liveness_batches")
    }

    fn liveness_over(&self, world: &World) -> bool {
        world.tasks(NODE) == 0
    }
}

async fn process(
    env: SimEnv,
    life: u64,
    shape: Arc<Shape>,
    config: LogConfig,
    model: Model,
    clients: Clients,
    seed: u64,
) {
    let mut records = Vec::new();
    let before = env.files_fingerprint(&config.dir);
    let opened = Log::open(env.clone(), config.clone(), |pos, payload| {
        records.push((pos.lsn, payload.to_vec()))
    })
    .await;
    if let Err(LogError::Corrupt(corruption)) = &opened {
        // A refusal leaves every file as it found it, for the operator.
        let mut m = lock(&model);
        m.verdict.check("refused_unchanged", 1);
        if env.files_fingerprint(&config.dir) != before {
            m.verdict.fail(
                "refused_unchanged",
                format!("the log refused to open ({corruption}) after changing files"),
            );
            return;
        }
    }
    let opened = match opened {
        // Refused, and rightly (checked below): the operator accepts the
        // loss, so the same life opens again cutting at the damage. The
        // oracles then demand a clean prefix, with nothing invented.
        Err(LogError::Corrupt(corruption)) if env.fault_counts().stored_data_damage() > 0 => {
            env.trace(format_args!("open refused: {corruption}"));
            lock(&model).refused_then_cut();
            records.clear();
            let cut = async {
                LogScan::read_with(
                    env.clone(),
                    config,
                    |pos, payload| records.push((pos.lsn, payload.to_vec())),
                    OnDamage::Cut,
                )
                .await?
                .repair()
                .await
            };
            let cut = cut.await;
            if let Ok((_, report)) = &cut {
                env.trace(format_args!("cut at damage: {:?}", report.data_loss));
            }
            cut
        }
        opened => opened,
    };
    let log = match opened {
        Ok((log, recovery)) => {
            let excused = env.fault_counts().stored_data_damage() > 0;
            env.trace(format_args!(
                "recovered {} records, next LSN {}, torn tail {:?}, {} tail bytes zeroed",
                records.len(),
                log.next_lsn(),
                recovery.torn_tail,
                recovery.tail_bytes_zeroed
            ));
            lock(&model).recovered(records, log.next_lsn(), &recovery, excused);
            log
        }
        Err(LogError::Corrupt(corruption)) => {
            env.trace(format_args!("open refused: {corruption}"));
            let excused = env.fault_counts().stored_data_damage() > 0;
            lock(&model).corrupt(corruption.to_string(), excused);
            return;
        }
        Err(err) => {
            env.trace(format_args!("open failed: {err}"));
            lock(&model).open_error();
            return;
        }
    };
    let log = Arc::new(AsyncMutex::new(log));
    let mut rng = SimRng::new(seed, Stream::Workload);
    match clients {
        Clients::Random => {
            for client in 0..shape.clients {
                let task = random_client(
                    env.clone(),
                    life,
                    client,
                    Arc::clone(&shape),
                    Arc::clone(&log),
                    Arc::clone(&model),
                    SimRng::new(rng.next_u64(), Stream::Workload),
                );
                drop(env.spawn("client", task));
            }
        }
        Clients::Liveness => {
            let task = liveness_client(env.clone(), life, shape, log, model, rng);
            drop(env.spawn("liveness-client", task));
        }
        Clients::None => {}
    }
}

/// Appends one record; returns false if the client must stop.
async fn append(
    env: &SimEnv,
    client: u64,
    log: &AsyncMutex<Log<SimEnv>>,
    model: &Model,
    payload: Vec<u8>,
) -> bool {
    let mut log = log.lock().await;
    match log.append(&payload).await {
        Ok(pos) => {
            env.trace(format_args!(
                "c{client} append LSN {} ({} bytes)",
                pos.lsn,
                payload.len()
            ));
            lock(model).appended(pos.lsn, payload);
            true
        }
        Err(err) => {
            env.trace(format_args!("c{client} append failed: {err}"));
            !lock(model).log_error(&err)
        }
    }
}

/// Syncs; returns false if the client must stop.
async fn sync(env: &SimEnv, client: u64, log: &AsyncMutex<Log<SimEnv>>, model: &Model) -> bool {
    let mut log = log.lock().await;
    match log.sync().await {
        Ok(durable) => {
            env.trace(format_args!("c{client} sync -> LSN {durable} durable"));
            lock(model).synced(durable);
            true
        }
        Err(err) => {
            env.trace(format_args!("c{client} sync failed: {err}"));
            !lock(model).log_error(&err)
        }
    }
}

async fn random_client(
    env: SimEnv,
    life: u64,
    client: u64,
    shape: Arc<Shape>,
    log: Arc<AsyncMutex<Log<SimEnv>>>,
    model: Model,
    mut rng: SimRng,
) {
    let mut seq = 0;
    loop {
        let roll = rng.below(100);
        let keep_going = if roll < shape.append_pct {
            let mut ok = true;
            for _ in 0..rng.between(1, 4) {
                let payload = shape.payload(life, client, seq, &mut rng);
                seq += 1;
                ok = append(&env, client, &log, &model, payload).await;
                if !ok {
                    break;
                }
            }
            ok
        } else if roll < 97 {
            sync(&env, client, &log, &model).await
        } else {
            let mut log = log.lock().await;
            let (front, acked) = lock(&model).removable();
            if acked < front {
                true
            } else {
                let lsn = rng.between(front, acked);
                lock(&model).removing_before(lsn);
                match log.remove_segments_before(lsn).await {
                    Ok(removed) => {
                        env.trace(format_args!(
                            "c{client} removed {removed} segments below LSN {lsn}"
                        ));
                        true
                    }
                    Err(err) => {
                        env.trace(format_args!("c{client} segment removal failed: {err}"));
                        !lock(&model).log_error(&err)
                    }
                }
            }
        };
        if !keep_going {
            return;
        }
        env.sleep(Duration::from_micros(rng.between(0, shape.think_us_max)))
            .await;
    }
}

async fn liveness_client(
    env: SimEnv,
    life: u64,
    shape: Arc<Shape>,
    log: Arc<AsyncMutex<Log<SimEnv>>>,
    model: Model,
    mut rng: SimRng,
) {
    for seq in 0..LIVENESS_RECORDS {
        let payload = shape.payload(life, 0, seq, &mut rng);
        if !append(&env, 0, &log, &model, payload).await {
            return;
        }
    }
    if sync(&env, 0, &log, &model).await {
        lock(&model).verdict.stat("liveness_batches", 1);
    }
}
