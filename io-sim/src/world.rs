//! A world: one seed's executor, clock, disks, network, faults and trace.
//!
//! Invariant kept here: a world is driven from one thread, one
//! [`World::step`] at a time, and every source of variation in a step (which
//! task, which latency, which fault) comes from the world's seed. Its state
//! lives behind mutexes only because the environment traits require `Send`
//! futures; no lock is ever contended.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use jubilant_core::env::MonoTime;

use jubilant_core::mutex::lock;

use crate::env::SimEnv;
use crate::executor::Executor;
use crate::faults::{Fault, FaultConfig, FaultCounts};
use crate::net::Network;
use crate::node::NodeId;
use crate::rng::{SimRng, Stream};
use crate::shared::{Shared, State};
use crate::time::SimClock;
use crate::trace::Trace;

/// What one [`World::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A task was polled.
    Polled,
    /// No task was ready, so time jumped to the next timer.
    Advanced,
    /// Nothing is ready and no timer is pending: the world is quiet.
    Idle,
}

/// One deterministic simulated world. Drive it with [`World::step`].
pub struct World {
    seed: u64,
    shared: Arc<Shared>,
}

impl World {
    /// A new world for `seed` with the given faults, at time zero, with no
    /// tasks, empty disks and no connections.
    pub fn new(seed: u64, faults: FaultConfig) -> Self {
        let shared = Arc::new(Shared {
            exec: Executor::new(),
            clock: Arc::new(SimClock::new()),
            state: Mutex::new(State {
                faults,
                disks: BTreeMap::new(),
                net: Network::default(),
                disk_rng: SimRng::new(seed, Stream::Disk),
                net_rng: SimRng::new(seed, Stream::Net),
                counts: FaultCounts::default(),
            }),
            trace: Mutex::new(Trace::new()),
            sched_rng: Mutex::new(SimRng::new(seed, Stream::Scheduler)),
        });
        World { seed, shared }
    }

    /// The seed this world was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The world's current fault configuration.
    pub fn faults(&self) -> FaultConfig {
        lock(&self.shared.state).faults.clone()
    }

    /// Replaces the fault configuration from now on (for example, to switch
    /// faults off and check that the system recovers and makes progress).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.trace(format_args!("faults set to {faults}"));
        lock(&self.shared.state).faults = faults;
    }

    /// The environment code running on `node` sees.
    pub fn env(&self, node: NodeId) -> SimEnv {
        SimEnv::new(Arc::clone(&self.shared), node)
    }

    /// Starts a task on `node` whose output nobody awaits.
    pub fn spawn<F>(&self, node: NodeId, name: &'static str, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shared.exec.spawn(node, name, future);
    }

    /// Runs `future` as a task on `node`, stepping the whole world (other
    /// tasks too) until it finishes.
    ///
    /// # Panics
    /// If the world goes quiet (no task ready, no timer pending) before the
    /// future finishes: it is waiting for something that will never happen.
    pub fn block_on<T, F>(&self, node: NodeId, future: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let out = Arc::clone(&slot);
        self.spawn(node, "block_on", async move {
            let value = future.await;
            *lock(&out) = Some(value);
        });
        loop {
            if let Some(value) = lock(&slot).take() {
                return value;
            }
            assert_ne!(
                self.step(),
                Step::Idle,
                "the world went quiet before the task finished"
            );
        }
    }

    /// Polls one ready task (chosen by the seed), or if none is ready moves
    /// time to the next timer.
    pub fn step(&self) -> Step {
        // Only `step` uses the scheduler RNG, so holding it while the task
        // runs cannot deadlock.
        let polled = self.shared.exec.run_one(&mut lock(&self.shared.sched_rng));
        if let Some(p) = polled {
            self.shared
                .trace(format_args!("{} poll #{} {}", p.node, p.id, p.name));
            return Step::Polled;
        }
        if self.shared.clock.fire_next() {
            return Step::Advanced;
        }
        Step::Idle
    }

    /// Steps until the world is quiet or `max_polls` tasks were polled;
    /// returns the number of polls.
    pub fn run_until_idle(&self, max_polls: u64) -> u64 {
        let mut polls = 0;
        while polls < max_polls {
            match self.step() {
                Step::Polled => polls += 1,
                Step::Advanced => {}
                Step::Idle => break,
            }
        }
        polls
    }

    /// Virtual monotonic time.
    pub fn now(&self) -> MonoTime {
        MonoTime::from_nanos(self.shared.clock.now_nanos())
    }

    /// Power loss on `node`: its tasks die, its connections reset, and its
    /// disk keeps only what is durable plus what the crash happens to keep.
    /// Returns how many tasks died.
    pub fn crash(&self, node: NodeId) -> usize {
        self.shared.trace(format_args!("{node} CRASH"));
        // Silent first: the tasks about to die drop their streams, and a
        // node without power closes nothing.
        self.shared.with_net(|net, ctx| net.crash(ctx, node));
        let killed = self.shared.exec.kill(node);
        self.shared.with_disk(node, |disk, ctx| disk.crash(ctx));
        killed
    }

    /// The process on `node` is killed: its tasks die and its connections
    /// reset, but the OS page cache survives. Returns how many tasks died.
    pub fn kill(&self, node: NodeId) -> usize {
        self.shared.trace(format_args!("{node} KILL"));
        self.shared.with_net(|net, ctx| net.kill(ctx, node));
        let killed = self.shared.exec.kill(node);
        self.shared.with_disk(node, |disk, _| disk.kill());
        killed
    }

    /// Holds back all traffic between `a` and `b` until [`World::heal`].
    pub fn partition(&self, a: NodeId, b: NodeId) {
        self.shared.with_net(|net, ctx| net.partition(ctx, a, b));
    }

    /// Ends a partition between `a` and `b`; held bytes flow again.
    pub fn heal(&self, a: NodeId, b: NodeId) {
        self.shared.with_net(|net, ctx| net.heal(ctx, a, b));
    }

    /// Another tenant fills `node`'s disk to all but `slack` bytes, until
    /// [`World::give_back_space`] (the node's own removals free space
    /// meanwhile); `quota` reports running out as EDQUOT, not ENOSPC.
    pub fn fill_disk(&self, node: NodeId, slack: u64, quota: bool) {
        self.shared
            .with_disk(node, |disk, ctx| disk.fill(ctx, slack, quota));
    }

    /// The other tenant gives back what it took of `node`'s disk; returns
    /// whether it held any.
    pub fn give_back_space(&self, node: NodeId) -> bool {
        self.shared
            .with_disk(node, |disk, ctx| disk.release_space(ctx))
    }

    /// Whether another tenant holds space on `node`'s disk.
    pub fn disk_filled(&self, node: NodeId) -> bool {
        self.shared.with_disk(node, |disk, _| disk.filled())
    }

    /// Moves the wall clock by `delta_ms` (the monotonic clock is untouched).
    pub fn jump_wall_clock(&self, delta_ms: i64) {
        self.shared.clock.jump_wall(delta_ms);
        self.shared
            .trace(format_args!("wall clock jumps {delta_ms}ms"));
        lock(&self.shared.state).counts.add(Fault::ClockJump);
    }

    /// Counts one injection of `fault` that the driver (not the disk or
    /// network) performed, such as a scheduled crash.
    pub fn count_fault(&self, fault: Fault) {
        lock(&self.shared.state).counts.add(fault);
    }

    /// Adds a line to the trace (and its hash).
    pub fn trace(&self, args: fmt::Arguments<'_>) {
        self.shared.trace(args);
    }

    /// Echoes every trace line to stderr as it is recorded.
    pub fn set_trace_echo(&self, echo: bool) {
        lock(&self.shared.trace).set_echo(echo);
    }

    /// The hash of the whole trace so far.
    pub fn trace_hash(&self) -> String {
        lock(&self.shared.trace).hash()
    }

    /// How many lines the trace has.
    pub fn trace_lines(&self) -> u64 {
        lock(&self.shared.trace).lines()
    }

    /// The last lines of the trace.
    pub fn trace_tail(&self) -> Vec<String> {
        lock(&self.shared.trace).tail()
    }

    /// How often each fault has been injected.
    pub fn fault_counts(&self) -> FaultCounts {
        lock(&self.shared.state).counts.clone()
    }

    /// Live tasks on `node`.
    pub fn tasks(&self, node: NodeId) -> usize {
        self.shared.exec.tasks_of(node)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Tasks hold the world (through their environments) and the world
        // holds the tasks: cancel them all so the memory is freed.
        self.shared.exec.shutdown();
    }
}
