//! The executor is deterministic, explores interleavings, and kills nodes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jubilant_core::env::{Clock, Spawn};
use jubilant_io_sim::{FaultConfig, NodeId, Step, World};

/// The order in which 8 tasks (each yielding a few times) log their steps.
fn interleaving(seed: u64) -> (Vec<u32>, String) {
    let world = World::new(seed, FaultConfig::none());
    let log = Arc::new(Mutex::new(Vec::new()));
    for task in 0..8u32 {
        let env = world.env(NodeId(0));
        let log = Arc::clone(&log);
        world.spawn(NodeId(0), "worker", async move {
            for _ in 0..3 {
                log.lock().expect("log").push(task);
                env.sleep(Duration::from_micros(u64::from(task) % 3)).await;
            }
        });
    }
    world.run_until_idle(10_000);
    let order = log.lock().expect("log").clone();
    (order, world.trace_hash())
}

#[test]
fn a_seed_fixes_the_interleaving_and_the_trace() {
    assert_eq!(interleaving(11), interleaving(11));
}

#[test]
fn different_seeds_explore_different_interleavings() {
    let orders: std::collections::BTreeSet<_> = (0..20).map(|s| interleaving(s).0).collect();
    assert!(
        orders.len() > 10,
        "only {} distinct interleavings in 20 seeds",
        orders.len()
    );
}

#[test]
fn time_jumps_to_the_next_timer_when_nothing_is_ready() {
    let world = World::new(1, FaultConfig::none());
    let env = world.env(NodeId(0));
    let woke_at = world.block_on(NodeId(0), async move {
        env.sleep(Duration::from_secs(30)).await;
        env.now_mono()
    });
    assert_eq!(woke_at.as_nanos(), 30_000_000_000);
    assert_eq!(world.step(), Step::Idle);
}

#[test]
fn join_handles_return_outputs_and_detach_on_drop() {
    let world = World::new(2, FaultConfig::none());
    let env = world.env(NodeId(0));
    let flag = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&flag);
    let sum = world.block_on(NodeId(0), async move {
        let detached = env.spawn("detached", {
            let env = env.clone();
            async move {
                env.sleep(Duration::from_millis(5)).await;
                *seen.lock().expect("flag") = true;
            }
        });
        drop(detached);
        let a = env.spawn("a", async { 20 });
        let b = env.spawn("b", async { 22 });
        a.await + b.await
    });
    assert_eq!(sum, 42);
    world.run_until_idle(100);
    assert!(
        *flag.lock().expect("flag"),
        "a dropped handle must not cancel its task"
    );
}

#[test]
fn killing_a_node_drops_its_tasks_and_spares_the_others() {
    struct Witness(Arc<Mutex<u32>>);
    impl Drop for Witness {
        fn drop(&mut self) {
            *self.0.lock().expect("count") += 1;
        }
    }
    let world = World::new(3, FaultConfig::none());
    let dropped = Arc::new(Mutex::new(0));
    for node in [NodeId(0), NodeId(0), NodeId(1)] {
        let env = world.env(node);
        let witness = Witness(Arc::clone(&dropped));
        world.spawn(node, "forever", async move {
            let _witness = witness;
            env.sleep(Duration::from_secs(1_000_000)).await;
        });
    }
    // Poll each task once (they then sleep); do not let time run out.
    for _ in 0..3 {
        assert_eq!(world.step(), Step::Polled);
    }
    assert_eq!(world.kill(NodeId(0)), 2);
    assert_eq!(
        *dropped.lock().expect("count"),
        2,
        "the killed tasks' futures were dropped"
    );
    assert_eq!(world.tasks(NodeId(1)), 1);
}

#[test]
#[should_panic(expected = "boom")]
fn a_panicking_task_fails_the_step() {
    let world = World::new(4, FaultConfig::none());
    world.spawn(NodeId(0), "panicker", async { panic!("boom") });
    world.run_until_idle(10);
}

#[test]
fn the_wall_clock_jumps_but_the_monotonic_clock_does_not() {
    let world = World::new(5, FaultConfig::none());
    let env = world.env(NodeId(0));
    let (mono, wall) = (env.now_mono(), env.now_wall_ms());
    world.jump_wall_clock(-60_000);
    assert_eq!(env.now_mono(), mono);
    assert_eq!(env.now_wall_ms(), wall - 60_000);
}
