//! The deterministic single-threaded executor.
//!
//! Invariant kept here: which task runs next is decided only by the world's
//! scheduler RNG, choosing uniformly among the tasks that are ready. Nothing
//! else (thread timing, pointer values, hash order) can influence it, so a
//! seed fixes the interleaving; and because the choice is random rather than
//! FIFO, different seeds explore different interleavings of the same code.
//!
//! Tasks belong to a node (a simulated machine or process). Killing a node
//! cancels all of its tasks and drops their futures, as a process dying
//! would, while other nodes' tasks keep running.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_task::{Runnable, Task};

use jubilant_core::mutex::lock;

use crate::node::NodeId;
use crate::rng::SimRng;

/// What the executor knows about a task.
pub(crate) struct TaskMeta {
    pub id: u64,
    pub node: NodeId,
    pub name: &'static str,
}

type Queue = Arc<Mutex<Vec<Runnable<TaskMeta>>>>;
/// Live tasks by id, with the node each belongs to.
type Registry = BTreeMap<u64, (NodeId, Task<(), TaskMeta>)>;

/// Ready tasks and the handles of all live ones.
pub(crate) struct Executor {
    /// Tasks ready to be polled. Order is insertion order, which is itself
    /// deterministic; the RNG picks from it.
    ready: Queue,
    /// Every live task by id; the handle is kept here (not given out) so that
    /// killing a node can cancel its tasks.
    tasks: Mutex<Registry>,
    next_id: AtomicU64,
}

/// The task that one [`Executor::run_one`] polled.
pub(crate) struct Polled {
    pub id: u64,
    pub node: NodeId,
    pub name: &'static str,
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            ready: Arc::new(Mutex::new(Vec::new())),
            tasks: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Starts `future` as a task of `node` and returns its id.
    pub(crate) fn spawn<F>(&self, node: NodeId, name: &'static str, future: F) -> u64
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ready = Arc::clone(&self.ready);
        let schedule = move |runnable| lock(&ready).push(runnable);
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskMeta { id, node, name })
            .spawn(move |_| future, schedule);
        lock(&self.tasks).insert(id, (node, task));
        runnable.schedule();
        id
    }

    /// Polls one ready task, chosen by `rng`; `None` if no task is ready.
    /// A panic in the task propagates to the caller.
    pub(crate) fn run_one(&self, rng: &mut SimRng) -> Option<Polled> {
        let runnable = {
            let mut ready = lock(&self.ready);
            if ready.is_empty() {
                return None;
            }
            let index = rng.below(ready.len() as u64) as usize;
            ready.swap_remove(index)
        };
        let meta = runnable.metadata();
        let polled = Polled {
            id: meta.id,
            node: meta.node,
            name: meta.name,
        };
        runnable.run();
        let finished = {
            let mut tasks = lock(&self.tasks);
            match tasks.get(&polled.id) {
                Some((_, task)) if task.is_finished() => tasks.remove(&polled.id),
                _ => None,
            }
        };
        // Dropped outside the lock: dropping a handle may schedule.
        drop(finished);
        Some(polled)
    }

    /// Cancels every task of `node` and drops their futures. Returns how
    /// many tasks died.
    pub(crate) fn kill(&self, node: NodeId) -> usize {
        self.kill_where(|n| n == node)
    }

    /// Cancels every task of every node (the world is ending). Breaks the
    /// reference cycles between tasks and the world they hold.
    pub(crate) fn shutdown(&self) -> usize {
        self.kill_where(|_| true)
    }

    fn kill_where(&self, doomed: impl Fn(NodeId) -> bool) -> usize {
        let mut killed = 0;
        // Repeat until nothing of the node is left: dropping a dead task's
        // future may spawn or wake another task of the same node.
        loop {
            let handles: Vec<_> = {
                let mut tasks = lock(&self.tasks);
                let ids: Vec<u64> = tasks
                    .iter()
                    .filter(|(_, (node, _))| doomed(*node))
                    .map(|(&id, _)| id)
                    .collect();
                ids.into_iter().filter_map(|id| tasks.remove(&id)).collect()
            };
            killed += handles.len();
            // Dropping a handle cancels the task; an idle task is
            // rescheduled so that running it drops its future.
            drop(handles);
            let batch: Vec<_> = {
                let mut ready = lock(&self.ready);
                let (dead, alive): (Vec<_>, Vec<_>) = ready
                    .drain(..)
                    .partition(|r: &Runnable<TaskMeta>| doomed(r.metadata().node));
                *ready = alive;
                dead
            };
            let registered = lock(&self.tasks).values().any(|(node, _)| doomed(*node));
            if batch.is_empty() && !registered {
                return killed;
            }
            for runnable in batch {
                // Its handle is gone, so the task is cancelled: running it
                // only drops its future (a task spawned meanwhile has its
                // handle in the registry and is cancelled next round).
                runnable.run();
            }
        }
    }

    /// Live tasks of `node`.
    pub(crate) fn tasks_of(&self, node: NodeId) -> usize {
        lock(&self.tasks)
            .values()
            .filter(|(n, _)| *n == node)
            .count()
    }
}
