//! Tasks on the tokio runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use jubilant_core::env::Spawn;

use crate::RealEnv;

/// Awaits a tokio task's output; a panic in the task is resumed in the
/// awaiting task. Dropping it detaches the task.
#[derive(Debug)]
pub struct RealJoinHandle<T> {
    handle: tokio::task::JoinHandle<T>,
}

impl<T> Future for RealJoinHandle<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.handle).poll(cx) {
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            Poll::Ready(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only a runtime shutting down cancels tasks, and then nothing
            // awaits them any more.
            Poll::Ready(Err(err)) => panic!("task cancelled by runtime shutdown: {err}"),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Spawn for RealEnv {
    type JoinHandle<T: Send + 'static> = RealJoinHandle<T>;

    fn spawn<F>(&self, _name: &'static str, future: F) -> RealJoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        RealJoinHandle {
            handle: self.runtime.spawn(future),
        }
    }
}
