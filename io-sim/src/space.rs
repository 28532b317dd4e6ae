//! The simulated disk's capacity: what another tenant took, and how much
//! room is left for the node's files.
//!
//! Invariant kept here: a disk is short of space only while another tenant
//! holds some ([`Fault::DiskFilled`](crate::Fault::DiskFilled)). Then the
//! free bytes are [`CAPACITY_BYTES`] less the tenant's and less the files'
//! allocated blocks, so the disk stays full until the tenant gives its
//! space back or the node removes or shrinks files; and an operation that
//! needs more blocks than are free fails with ENOSPC (EDQUOT for a quota),
//! having allocated no more than fitted.

use std::io;

/// The unit files are allocated in.
pub const SPACE_BLOCK_BYTES: u64 = 4096;
/// What the disk holds; far more than any run writes, so only another
/// tenant ever fills it.
const CAPACITY_BYTES: u64 = 1 << 40;

/// The bytes `len` bytes of a file occupy on the disk.
pub(crate) fn allocated(len: u64) -> u64 {
    len.div_ceil(SPACE_BLOCK_BYTES) * SPACE_BLOCK_BYTES
}

/// One disk's space.
#[derive(Default)]
pub(crate) struct Space {
    /// Bytes another tenant holds (0: it holds none).
    tenant_bytes: u64,
    /// Whether running out is reported as a quota (EDQUOT) rather than a
    /// full device (ENOSPC).
    quota: bool,
}

impl Space {
    /// Whether another tenant holds space, so the disk may be full.
    pub(crate) fn filled(&self) -> bool {
        self.tenant_bytes > 0
    }

    /// Another tenant takes all but `slack` of what the files (`used`
    /// bytes) leave.
    pub(crate) fn fill(&mut self, used: u64, slack: u64, quota: bool) {
        self.tenant_bytes = CAPACITY_BYTES.saturating_sub(used + slack).max(1);
        self.quota = quota;
        debug_assert!(self.free(used) <= slack);
    }

    /// The tenant gives its space back; returns whether it held any.
    pub(crate) fn release(&mut self) -> bool {
        std::mem::take(&mut self.tenant_bytes) > 0
    }

    /// Bytes free for files that occupy `used` bytes.
    pub(crate) fn free(&self, used: u64) -> u64 {
        CAPACITY_BYTES.saturating_sub(used.saturating_add(self.tenant_bytes))
    }

    /// The error an operation that needs room gets. Fixed texts (not the
    /// C library's), so traces hash the same everywhere.
    pub(crate) fn error(&self, op: &str) -> io::Error {
        if self.quota {
            io::Error::new(
                io::ErrorKind::QuotaExceeded,
                format!("simulated EDQUOT: disk quota exceeded ({op})"),
            )
        } else {
            io::Error::new(
                io::ErrorKind::StorageFull,
                format!("simulated ENOSPC: no space left on device ({op})"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_disk_leaves_the_slack_free_until_released() {
        let mut space = Space::default();
        assert!(!space.filled());
        space.fill(10 * SPACE_BLOCK_BYTES, SPACE_BLOCK_BYTES, false);
        assert!(space.filled());
        assert_eq!(space.free(10 * SPACE_BLOCK_BYTES), SPACE_BLOCK_BYTES);
        // Files removed give their blocks back.
        assert_eq!(space.free(0), 11 * SPACE_BLOCK_BYTES);
        assert_eq!(space.error("write").kind(), io::ErrorKind::StorageFull);
        space.fill(0, 0, true);
        assert_eq!(space.free(0), 0);
        assert_eq!(space.error("write").kind(), io::ErrorKind::QuotaExceeded);
        assert!(space.release());
        assert!(!space.filled());
        assert!(!space.release());
    }

    #[test]
    fn allocation_rounds_up_to_whole_blocks() {
        assert_eq!(allocated(0), 0);
        assert_eq!(allocated(1), SPACE_BLOCK_BYTES);
        assert_eq!(allocated(SPACE_BLOCK_BYTES), SPACE_BLOCK_BYTES);
        assert_eq!(allocated(SPACE_BLOCK_BYTES + 1), 2 * SPACE_BLOCK_BYTES);
    }
}
