//! Live bytes per WAL segment (the frames of the records leaves point to),
//! kept in step with the tree.
//!
//! Invariant kept here: **for every segment, `live_bytes` is the sum of the
//! lengths of the records that pointers in the tree (as applied in memory)
//! name.** The store updates it under its state lock in the same step that
//! changes a leaf, from the pointer the change adds and the one it replaces
//! or removes; it is built by one scan of the tree after recovery. A
//! segment whose count is zero is therefore unreachable from the tree in
//! memory, and from any durable state once a durable checkpoint is at or
//! past [`SegmentUsage::released_lsn`].

use std::collections::BTreeMap;

use crate::record::VlogPointer;

/// What the tree holds in one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentUsage {
    /// Bytes of the records the tree points to.
    pub live_bytes: u64,
    /// How many records the tree points to.
    pub live_values: u64,
    /// The LSN of the last change that took a pointer to this segment out
    /// of the tree (or the LSN recovery ended at, for counts it built).
    pub released_lsn: u64,
}

/// Live bytes of every segment the tree points into.
#[derive(Clone, Debug, Default)]
pub(crate) struct VlogUsage {
    segments: BTreeMap<u32, SegmentUsage>,
    /// Where the counts were built: segments the scan found no pointer to
    /// were last released at or before it.
    built_at_lsn: u64,
}

impl VlogUsage {
    /// Empty counts, as of the tree at `lsn`.
    pub(crate) fn new(lsn: u64) -> Self {
        VlogUsage {
            segments: BTreeMap::new(),
            built_at_lsn: lsn,
        }
    }

    /// A pointer to `pointer`'s record entered the tree.
    pub(crate) fn add(&mut self, pointer: &VlogPointer) {
        let usage = self.segments.entry(pointer.segment).or_default();
        usage.live_bytes += pointer.frame_bytes();
        usage.live_values += 1;
    }

    /// The pointer to `pointer`'s record left the tree at `lsn`.
    pub(crate) fn release(&mut self, pointer: &VlogPointer, lsn: u64) {
        let usage = self.segments.entry(pointer.segment).or_default();
        debug_assert!(usage.live_bytes >= pointer.frame_bytes());
        debug_assert!(usage.live_values >= 1);
        usage.live_bytes = usage.live_bytes.saturating_sub(pointer.frame_bytes());
        usage.live_values = usage.live_values.saturating_sub(1);
        usage.released_lsn = usage.released_lsn.max(lsn);
    }

    /// What the tree holds in `segment`.
    pub(crate) fn segment(&self, segment: u32) -> SegmentUsage {
        let usage = self.segments.get(&segment).copied().unwrap_or_default();
        SegmentUsage {
            released_lsn: usage.released_lsn.max(self.built_at_lsn),
            ..usage
        }
    }

    /// Live bytes over `segments`.
    pub(crate) fn live_bytes_in(&self, segments: &[u32]) -> u64 {
        segments
            .iter()
            .filter_map(|segment| self.segments.get(segment))
            .map(|usage| usage.live_bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(segment: u32, length: u32) -> VlogPointer {
        VlogPointer {
            segment,
            length: length - 8,
            offset: 0,
            lsn: 1,
            crc: 0,
        }
    }

    #[test]
    fn counts_follow_adds_and_releases() {
        let mut usage = VlogUsage::new(10);
        usage.add(&pointer(1, 100));
        usage.add(&pointer(1, 50));
        usage.add(&pointer(2, 70));
        assert_eq!(usage.live_bytes_in(&[1, 2, 3]), 220);
        assert_eq!(usage.live_bytes_in(&[2]), 70);
        usage.release(&pointer(1, 100), 12);
        let one = usage.segment(1);
        assert_eq!(
            (one.live_bytes, one.live_values, one.released_lsn),
            (50, 1, 12)
        );
        assert_eq!(usage.segment(2).released_lsn, 10, "built at 10");
        assert_eq!(
            usage.segment(9),
            SegmentUsage {
                released_lsn: 10,
                ..SegmentUsage::default()
            }
        );
    }
}
