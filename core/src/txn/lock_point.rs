//! A transaction's lock point, told to whoever waits for it: the moment
//! it holds every lock it will hold and every op has passed. Under strict
//! two-phase locking, transactions serialize in the order of their lock
//! points, so a caller that starts its next transaction only after this
//! one's keeps its own order in the serial order, while this one still
//! waits for its commit's fsync (a server pipelining one connection's
//! commands). A transaction that fails (an op, an ASSERT, a lock wait)
//! is never told reached: its waiter goes on once it is dropped, after it
//! has let its locks go, so a caller may retry it another way first.
//!
//! Invariant kept here: **told at most once, and always**: when the ops
//! passed, or, if the transaction never gets that far, when it is dropped
//! (the waiter sees the channel close).

use futures::channel::oneshot;

use crate::mutex::lock;

/// The sending half: set on a [`Txn`](super::Txn) with
/// [`Txn::tell_lock_point`](super::Txn::tell_lock_point).
#[derive(Debug)]
pub struct LockPoint {
    tell: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl LockPoint {
    /// A lock point and the receiver that resolves when it is reached (or
    /// is cancelled when the transaction ends without reaching it).
    pub fn new() -> (LockPoint, oneshot::Receiver<()>) {
        let (tell, told) = oneshot::channel();
        (
            LockPoint {
                tell: std::sync::Mutex::new(Some(tell)),
            },
            told,
        )
    }

    /// The transaction holds its locks and its ops passed.
    pub(crate) fn reached(&self) {
        if let Some(tell) = lock(&self.tell).take() {
            let _ = tell.send(());
        }
    }
}

/// A lock point is the same only as itself.
impl PartialEq for LockPoint {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for LockPoint {}

#[cfg(test)]
mod tests {
    use super::LockPoint;

    #[test]
    fn the_waiter_hears_once_or_sees_the_end() {
        let (point, mut told) = LockPoint::new();
        point.reached();
        point.reached();
        assert_eq!(told.try_recv(), Ok(Some(())));
        let (point, mut told) = LockPoint::new();
        drop(point);
        assert!(told.try_recv().is_err(), "dropped unreached: cancelled");
    }
}
