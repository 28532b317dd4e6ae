//! The fault phase every storage workload shares: start a life of the node,
//! step the world, and end the life by power loss or process kill at the
//! drawn rates, or when the engine under test stops (a failed store is
//! restarted, by kill two times in three and by power cycle otherwise, since
//! both must be safe); jump the wall clock at its drawn rate. It stops when
//! the step budget is spent, an oracle failed, or corruption was (correctly)
//! detected.
//!
//! Then the final phase, the same for every storage workload: faults off, a
//! restart whose recovery and liveness clients must finish within a bound,
//! and a last power loss whose recovery must finish too.
//!
//! A workload supplies how to start a life, how to read its model's status,
//! and how to cut the power (so it can note what was running).

use jubilant_core::env::Clock;
use jubilant_io_sim::{Fault, NodeId, SimEnv, SimRng, Step, Stream, World};

use crate::options::RunOptions;
use crate::report::Report;

use super::verdict::Verdict;

/// Restarts in a row whose open failed before the run counts as stuck.
const OPEN_FAILURES_IN_A_ROW_MAX: u64 = 200;

/// What the driver reads from a workload's model between steps.
pub(crate) struct LifeStatus {
    /// An oracle failed or corruption was detected: the phase is over.
    pub ended: bool,
    /// The engine stopped accepting work; the node must be restarted.
    pub poisoned: bool,
    /// The engine refused to open; the node must be restarted.
    pub open_failed: bool,
    /// Recoveries completed so far.
    pub recoveries: u64,
}

/// Which clients a life runs after recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clients {
    /// The workload's random clients, until the life ends.
    Random,
    /// Faults off: a bounded amount of work that must finish.
    Liveness,
    /// Recovery only.
    None,
}

/// How one workload plugs into the driver.
pub(crate) trait Lives {
    /// What the node runs, for messages ("store", "log").
    const ENGINE: &'static str;
    /// What the liveness clients must do, for messages ("finish its batch").
    const LIVENESS_WORK: &'static str;
    /// Polls the fault-free recovery plus the liveness work may take.
    const LIVENESS_POLLS_MAX: u64;
    /// Starts life number `life` of the node with a seed for its clients.
    fn start(&mut self, world: &World, life: u64, clients: Clients, seed: u64);
    /// The model's status now.
    fn status(&self) -> LifeStatus;
    /// Cuts the node's power.
    fn crash(&mut self, world: &World, report: &mut Report);
    /// Whether the liveness clients have done their work.
    fn liveness_done(&self) -> bool;
    /// Whether waiting for the liveness clients can stop (by default, once
    /// they are done).
    fn liveness_over(&self, _world: &World) -> bool {
        self.liveness_done()
    }
    /// The nodes whose links to the node under test partitions may cut
    /// (none: the clients run in the node's own process).
    fn network(&self) -> &[NodeId] {
        &[]
    }
}

/// Partitions between a server node and its peers, each healed after a
/// random time; the same schedule for every workload with a network.
#[derive(Default)]
pub(crate) struct Partitions {
    /// The peer cut off, and the virtual time (ns) it heals at.
    open: Vec<(NodeId, u64)>,
}

impl Partitions {
    /// Heals what is due, then maybe cuts one of `peers` off `server` at
    /// the seed's partition rate.
    pub(crate) fn step(
        &mut self,
        world: &World,
        rng: &mut SimRng,
        server: NodeId,
        peers: &[NodeId],
    ) {
        let now = world.now().as_nanos();
        self.open.retain(|&(peer, heal_at)| {
            if heal_at <= now {
                world.heal(peer, server);
            }
            heal_at > now
        });
        if rng.chance(world.faults().get(Fault::NetPartition)) {
            let peer = peers[rng.below(peers.len() as u64) as usize];
            let heal_at = now + rng.between(1, 500) * 1_000_000;
            world.partition(peer, server);
            self.open.push((peer, heal_at));
        }
    }

    /// Heals every partition still in force.
    pub(crate) fn heal_all(&mut self, world: &World, server: NodeId) {
        for (peer, _) in self.open.drain(..) {
            world.heal(peer, server);
        }
    }
}

/// Another tenant of the node's disk that fills it at the seed's
/// `disk_filled` rate and gives the space back a random time later.
#[derive(Default)]
struct Tenant {
    /// The virtual time (ns) the space goes back at, while the disk is full.
    gives_back_at: Option<u64>,
}

impl Tenant {
    fn step(&mut self, world: &World, rng: &mut SimRng, node: NodeId) {
        let rate = world.faults().get(Fault::DiskFilled);
        // Drawn only when switched on, so seeds without it draw the same
        // numbers as before it existed.
        if rate == 0.0 {
            return;
        }
        let now = world.now().as_nanos();
        match self.gives_back_at {
            Some(at) if at <= now => {
                world.give_back_space(node);
                self.gives_back_at = None;
            }
            Some(_) => {}
            None if rng.chance(rate) => {
                let slack = rng.below(4) * jubilant_io_sim::SPACE_BLOCK_BYTES + rng.below(4096);
                world.fill_disk(node, slack, rng.chance(0.3));
                self.gives_back_at = Some(now + rng.between(1, 300) * 1_000_000);
            }
            None => {}
        }
    }

    /// An operator frees space for a database that cannot start.
    fn free_for_open(&mut self, world: &World, node: NodeId) {
        if world.disk_filled(node) {
            world.trace(format_args!("an operator frees disk space"));
            world.give_back_space(node);
            self.gives_back_at = None;
        }
    }
}

/// Runs the fault phase on `node`. Returns the lives started.
pub(crate) fn run_lives<L: Lives>(
    world: &World,
    node: NodeId,
    options: &RunOptions,
    report: &mut Report,
    workload_rng: &mut SimRng,
    lives: &mut L,
) -> u64 {
    let mut fault_rng = SimRng::new(options.seed, Stream::Faults);
    let faults = world.faults();
    let mut steps = 0u64;
    let mut life = 0u64;
    let mut open_failures_in_a_row = 0u64;
    let mut recoveries_seen = 0u64;
    let mut partitions = Partitions::default();
    let mut tenant = Tenant::default();
    let spent = |steps: u64| options.budget_spent(steps, world.now().as_nanos() / 1_000_000);
    'lives: while !spent(steps) {
        life += 1;
        lives.start(world, life, Clients::Random, workload_rng.next_u64());
        loop {
            let status = lives.status();
            if status.ended {
                break 'lives;
            }
            if status.poisoned || status.open_failed {
                if status.open_failed {
                    tenant.free_for_open(world, node);
                    open_failures_in_a_row += 1;
                    if open_failures_in_a_row > OPEN_FAILURES_IN_A_ROW_MAX {
                        report.fail(
                            "liveness",
                            format!(
                                "the {} failed to open {open_failures_in_a_row} times in a row",
                                L::ENGINE
                            ),
                        );
                        break 'lives;
                    }
                }
                if fault_rng.chance(2.0 / 3.0) {
                    world.trace(format_args!("{} failed: restarting the process", L::ENGINE));
                    world.kill(node);
                    report.kills += 1;
                } else {
                    world.trace(format_args!("{} failed: power-cycling the node", L::ENGINE));
                    lives.crash(world, report);
                }
                continue 'lives;
            }
            if spent(steps) || !super::step_while_running(world, &mut steps, report) {
                break 'lives;
            }
            let recoveries = lives.status().recoveries;
            if recoveries > recoveries_seen {
                recoveries_seen = recoveries;
                open_failures_in_a_row = 0;
            }
            if fault_rng.chance(faults.get(Fault::Crash)) {
                world.count_fault(Fault::Crash);
                lives.crash(world, report);
                continue 'lives;
            }
            if fault_rng.chance(faults.get(Fault::Kill)) {
                world.count_fault(Fault::Kill);
                world.kill(node);
                report.kills += 1;
                continue 'lives;
            }
            if !lives.network().is_empty() {
                partitions.step(world, &mut fault_rng, node, lives.network());
            }
            tenant.step(world, &mut fault_rng, node);
            if fault_rng.chance(faults.get(Fault::ClockJump)) {
                let magnitude = fault_rng.between(1, 3_600_000) as i64;
                world.jump_wall_clock(if fault_rng.chance(0.5) {
                    magnitude
                } else {
                    -magnitude
                });
            }
        }
    }
    partitions.heal_all(world, node);
    tenant.free_for_open(world, node);
    report.steps = steps;
    life
}

/// Starts life `life` of `node`: the node's process, which recovers and
/// then runs the life's clients.
pub(crate) fn spawn_life(
    world: &World,
    node: NodeId,
    life: u64,
    process: impl Future<Output = ()> + Send + 'static,
) {
    world.trace(format_args!("life {life} begins"));
    world.spawn(node, "process", process);
}

/// The final phase after `lives` lives: faults off, a power loss, then a
/// life whose recovery and liveness clients must finish within
/// [`Lives::LIVENESS_POLLS_MAX`] polls, then one more power loss whose
/// recovery must finish too (and keep what the liveness clients made
/// durable, which the workload's recovery check judges). Returns the polls.
pub(crate) fn final_phase<L: Lives>(
    world: &World,
    node: NodeId,
    report: &mut Report,
    rng: &mut SimRng,
    lives: &mut L,
    life: u64,
) -> u64 {
    world.set_faults(jubilant_io_sim::FaultConfig::none());
    lives.crash(world, report);
    let before = lives.status().recoveries;
    lives.start(world, life + 1, Clients::Liveness, rng.next_u64());
    let mut polls = 0;
    run_until(world, &mut polls, L::LIVENESS_POLLS_MAX, || {
        lives.status().ended || lives.liveness_over(world)
    });
    let status = lives.status();
    if status.ended {
        // Corruption injected earlier was found and refused: correct, and
        // the end of this run (an operator would have to repair).
        return polls;
    }
    let recovered = status.recoveries > before;
    report.check("liveness", 1);
    if !recovered || !lives.liveness_done() {
        report.fail(
            "liveness",
            format!(
                "with faults off, {} within {} polls",
                if recovered {
                    L::LIVENESS_WORK
                } else {
                    "recovery did not finish"
                },
                L::LIVENESS_POLLS_MAX
            ),
        );
        return polls;
    }
    lives.crash(world, report);
    let before = lives.status().recoveries;
    lives.start(world, life + 2, Clients::None, rng.next_u64());
    run_until(world, &mut polls, 2 * L::LIVENESS_POLLS_MAX, || {
        let status = lives.status();
        status.recoveries > before || status.ended
    });
    let status = lives.status();
    if status.recoveries == before && !status.ended {
        report.fail(
            "liveness",
            "the last fault-free recovery did not finish".to_owned(),
        );
    }
    world.kill(node);
    polls
}

/// Steps `world` until `done` holds, the world goes quiet, or `polls`
/// reaches `limit`.
pub(crate) fn run_until(
    world: &World,
    polls: &mut u64,
    limit: u64,
    mut done: impl FnMut() -> bool,
) {
    while *polls < limit && !done() {
        match world.step() {
            Step::Polled => *polls += 1,
            Step::Advanced => {}
            Step::Idle => break,
        }
    }
}

/// Whether the world has damaged stored data (a misdirected or dropped
/// write), which excuses a refused open or a lost record, never wrong data.
/// So does a torn write that garbled acknowledged bytes around it: the
/// value log still appends into partly filled blocks (docs/design.md 8.2);
/// the WAL, pages and superblocks never do, and the log workload, which
/// has nothing else, does not excuse it.
pub(crate) fn excused(env: &SimEnv) -> bool {
    let counts = env.fault_counts();
    counts.stored_data_damage() + counts.collateral_damage() > 0
}

/// Whether an engine failure names a full disk (or quota) as its cause:
/// running out of space must cost the write that needed it, never stop
/// the engine (oracle `full_disk_not_fatal`). The one exception is space
/// that `fdatasync`'s writeback found missing: the data it was to persist
/// is lost, so that is a failed sync like any other.
pub(crate) fn check_full_disk_not_fatal(verdict: &mut Verdict, what: &str, message: &str) {
    verdict.check("full_disk_not_fatal", 1);
    if (message.contains("simulated ENOSPC") || message.contains("simulated EDQUOT"))
        && !message.contains("(fdatasync writeback)")
    {
        verdict.fail(
            "full_disk_not_fatal",
            format!("{what}: a full disk stopped the engine: {message}"),
        );
    }
}

/// A client's pause between operations: at least a microsecond, since a
/// client whose operations all hit the cache never awaits otherwise and
/// would starve every other task.
pub(crate) async fn think(env: &SimEnv, rng: &mut SimRng, max_us: u64) {
    let us = rng.between(0, max_us).max(1);
    env.sleep(std::time::Duration::from_micros(us)).await;
}
