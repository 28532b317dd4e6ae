//! Background tasks.

use std::future::Future;

/// Starts tasks that run concurrently with their spawner.
///
/// Both environments give the same semantics, so code behaves alike in
/// production and in the simulator:
/// - dropping the handle detaches the task (it keeps running);
/// - awaiting the handle yields the task's output;
/// - a panic inside the task is propagated to whoever awaits the handle (and
///   in the simulator, fails the whole run with its seed).
pub trait Spawn {
    /// Awaits a spawned task's output.
    type JoinHandle<T: Send + 'static>: Future<Output = T> + Send + Sync + Unpin + 'static;

    /// Starts `future` as a new task. `name` shows up in traces and logs, so
    /// make it say what the task is for (`"wal-writer"`, `"checkpointer"`).
    fn spawn<F>(&self, name: &'static str, future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}
