//! Pins: a freshly appended record's segment held from GC until the commit
//! that points to it is answered (then the tree's usage counts cover it).
//!
//! Invariant kept here: **a segment with a pin is never offered to GC**
//! (`Vlog::sealed_unpinned`); a pin whose commit's outcome is unknown is
//! kept for good.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::mutex::lock;

/// Records appended but not yet in the tree (or given up), per segment:
/// GC must not take a segment a commit in flight is about to point into.
pub(super) type Pins = Arc<Mutex<BTreeMap<u32, u64>>>;

/// Holds a freshly appended record's segment from GC until the commit that
/// points to it is answered (then the tree's usage counts cover it).
#[derive(Debug)]
pub struct VlogPin {
    pins: Pins,
    segment: u32,
}

impl VlogPin {
    /// Pins `segment` once more.
    pub(super) fn new(pins: &Pins, segment: u32) -> Self {
        *lock(pins).entry(segment).or_default() += 1;
        VlogPin {
            pins: Arc::clone(pins),
            segment,
        }
    }
}

impl VlogPin {
    /// Never releases the pin: for records a commit whose outcome is
    /// unknown points to (only reopening, which rebuilds all counts, can
    /// tell whether they are reachable).
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for VlogPin {
    fn drop(&mut self) {
        let mut pins = lock(&self.pins);
        if let Some(count) = pins.get_mut(&self.segment) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&self.segment);
            }
        }
    }
}
