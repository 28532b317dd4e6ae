//! The durable LSN: the highest LSN whose records an `fdatasync` has
//! covered, and the tasks waiting for it to grow.
//!
//! Invariants kept here:
//! - **The durable LSN never moves back.**
//! - **Once the WAL has failed, every wait fails** with the error that
//!   stopped it: nothing waits for a durability that will never come.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::channel::{mpsc, oneshot};

use crate::mutex::lock;

use super::CommitError;

/// The highest LSN known durable, and the tasks waiting for it to grow.
/// The checkpointer waits here before writing pages (write-ahead rule), and
/// so does a `sync` read.
pub(crate) struct DurableWatch {
    state: Mutex<WatchState>,
    /// Set once the WAL failed (not merely stopped at close): asked on
    /// every server request, answered without the lock.
    failed: AtomicBool,
}

struct WatchState {
    lsn_durable: u64,
    stopped: Option<CommitError>,
    waiters: Vec<(u64, oneshot::Sender<Result<(), CommitError>>)>,
    /// Tells the writer someone waits, so a deferred sync runs now.
    nudge: Option<mpsc::UnboundedSender<()>>,
}

impl DurableWatch {
    pub(crate) fn new(lsn_durable: u64) -> Self {
        DurableWatch {
            state: Mutex::new(WatchState {
                lsn_durable,
                stopped: None,
                waiters: Vec::new(),
                nudge: None,
            }),
            failed: AtomicBool::new(false),
        }
    }

    /// Why the WAL failed (a write or sync that failed: it accepts no
    /// commit until reopened), if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        match &self.lock().stopped {
            Some(CommitError::Failed(reason)) => Some(reason.clone()),
            _ => None,
        }
    }

    /// The channel on which every wait that has to wait is announced (for
    /// the writer, replacing any earlier one).
    pub(super) fn nudges(&self) -> mpsc::UnboundedReceiver<()> {
        let (nudge, nudges) = mpsc::unbounded();
        self.lock().nudge = Some(nudge);
        nudges
    }

    /// Whether anyone waits for an LSN not yet durable.
    pub(super) fn awaited(&self) -> bool {
        !self.lock().waiters.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        lock(&self.state)
    }

    /// The highest LSN known durable.
    pub(crate) fn lsn_durable(&self) -> u64 {
        self.lock().lsn_durable
    }

    /// Returns once everything up to `lsn` is durable, or the error that
    /// means it may never be.
    pub(crate) async fn wait(&self, lsn: u64) -> Result<(), CommitError> {
        let answer = {
            let mut state = self.lock();
            if state.lsn_durable >= lsn {
                return Ok(());
            }
            if let Some(error) = &state.stopped {
                return Err(error.clone());
            }
            let (tell, answer) = oneshot::channel();
            state.waiters.push((lsn, tell));
            if let Some(nudge) = &state.nudge {
                let _ = nudge.unbounded_send(());
            }
            answer
        };
        answer.await.unwrap_or(Err(CommitError::Stopped))
    }

    pub(super) fn advance(&self, lsn: u64) {
        let mut state = self.lock();
        assert!(lsn >= state.lsn_durable, "the durable LSN never moves back");
        state.lsn_durable = lsn;
        let waiters = std::mem::take(&mut state.waiters);
        for (want, tell) in waiters {
            if want <= lsn {
                let _ = tell.send(Ok(()));
            } else {
                state.waiters.push((want, tell));
            }
        }
    }

    /// Answers everyone waiting now with `error` (a sync the disk had no
    /// room for), without stopping: later waits try again.
    pub(super) fn refuse_waiting(&self, error: &CommitError) {
        for (_, tell) in self.lock().waiters.drain(..) {
            let _ = tell.send(Err(error.clone()));
        }
    }

    pub(super) fn stop(&self, error: CommitError) {
        let mut state = self.lock();
        for (_, tell) in state.waiters.drain(..) {
            let _ = tell.send(Err(error.clone()));
        }
        let first = state.stopped.get_or_insert(error);
        if matches!(first, CommitError::Failed(_)) {
            self.failed.store(true, Ordering::Release);
        }
    }
}
