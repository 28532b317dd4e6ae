//! Background writes paced against the commit path (design 10.6).
//!
//! A checkpoint's pages and a WAL segment prepared ahead are written while
//! commits run, and every commit waits for its WAL `fdatasync`. One sync of
//! a whole background write (hundreds of MiB after a bulk load, 64 MiB for
//! a segment) holds the disk as long, and the commits' syncs queue behind
//! it. So background writes go in steps of [`STEP_BYTES`], each synced,
//! and after each the disk is left idle as long as the step took: a
//! commit's sync waits for one small step's flush at most, and finds the
//! disk free half the time. Syncing such bytes early changes nothing else:
//! no durable state reaches them until their own protocol's last step.

use std::time::Duration;

use super::{Env, MonoTime};

/// Bytes a paced writer writes and syncs before it pauses.
pub(crate) const STEP_BYTES: u64 = 512 * 1024;

/// The step of a WAL segment prepared ahead: larger, because its syncs
/// compete with the commits' own for as long as the log is busy (at 512
/// KiB, the rollover benchmark's p99 doubled), while a checkpoint's run
/// only while one is written.
pub(crate) const SEGMENT_STEP_BYTES: u64 = 4 * 1024 * 1024;

/// Times the steps of one paced write.
pub(crate) struct Pacer {
    began: MonoTime,
}

impl Pacer {
    /// A paced write starting now.
    pub(crate) fn new<E: Env>(env: &E) -> Self {
        Pacer {
            began: env.now_mono(),
        }
    }

    /// Ends a step (written and synced): waits as long as it took, and
    /// starts the next. A writer in a hurry (dirty pages press on the
    /// cache, a rollover waits for the segment) skips both the steps' syncs
    /// and the pauses, and syncs once at the end.
    pub(crate) async fn pause<E: Env>(&mut self, env: &E) {
        let took: Duration = env.now_mono().saturating_since(self.began);
        env.sleep(took).await;
        self.began = env.now_mono();
    }
}
