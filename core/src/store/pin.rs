//! A backup's pin on the durable superblock (design 12.1).
//!
//! Invariant kept here: **while a pin lives, every page the pinned
//! superblock reaches keeps its bytes in `data.pages`**. Checkpoints write
//! only pages the allocator hands out, and the allocator keeps every page
//! freed after the pinned generation pending until the pin is dropped; so
//! a copy of `data.pages` taken page by page while writers and checkpoints
//! run holds the pinned tree whole. The log's retention asks
//! [`Store::pinned`] and keeps every WAL segment meanwhile.

use super::superblock::Superblock;
use super::{Store, StoreError};
use crate::env::Env;

impl<E: Env> Store<E> {
    /// Pins the durable superblock and returns it; `None` when a pin
    /// already lives (one at a time).
    pub(crate) fn pin(&self) -> Result<Option<Superblock>, StoreError> {
        let mut state = self.state();
        if let Some(reason) = &state.failed {
            return Err(StoreError::Failed {
                reason: reason.clone(),
            });
        }
        if state.pinned {
            return Ok(None);
        }
        state.pinned = true;
        let durable = state.durable;
        // Broken on purpose (tests only): the pages stay unpinned, so a
        // checkpoint may reuse one the pinned superblock reaches.
        if !crate::sabotage::sabotaged!(state.tree, BackupPagesUnpinned) {
            state.tree.allocator.pin(durable.generation);
        }
        Ok(Some(durable))
    }

    /// Drops the pin [`Store::pin`] took.
    pub(crate) fn unpin(&self) {
        let mut state = self.state();
        assert!(state.pinned, "unpin without a pin");
        state.pinned = false;
        if state.tree.allocator.pinned().is_some() {
            state.tree.allocator.unpin();
        }
    }

    /// Whether a backup pins the durable superblock (and with it every
    /// WAL segment).
    pub(crate) fn pinned(&self) -> bool {
        self.state().pinned
    }
}
