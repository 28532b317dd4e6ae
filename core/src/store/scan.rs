//! A walk over a range of the tree in steps: the one paged scan that
//! `validate`, ranges, the value-log usage count and the TTL sweeper share.
//!
//! Invariant kept here: **a key present for the whole walk is returned
//! exactly once**, in order. Each step is read under the store's lock and
//! is consistent in itself; the next step starts just after the last key
//! returned, so keys written between steps may or may not show.

use std::ops::Bound;

use crate::env::Env;
use crate::record::Record;

use super::{RangeQuery, Store, StoreError};

/// A range of the tree walked in steps of at most `step` entries.
#[derive(Clone, Debug)]
pub struct TreeScan {
    query: RangeQuery,
    done: bool,
}

impl TreeScan {
    /// Walks keys from `start` to `end`, ascending.
    pub fn new(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, step: usize) -> Self {
        assert!(step > 0, "a scan step takes at least one entry");
        TreeScan {
            query: RangeQuery {
                start,
                end,
                reverse: false,
                limit: step,
            },
            done: false,
        }
    }

    /// Walks every key, ascending.
    pub fn all(step: usize) -> Self {
        TreeScan::new(Bound::Unbounded, Bound::Unbounded, step)
    }

    /// Takes at most `step` entries in each later step.
    pub fn set_step(&mut self, step: usize) {
        assert!(step > 0, "a scan step takes at least one entry");
        self.query.limit = step;
    }

    /// Whether the last step reached the end of the range.
    pub fn exhausted(&self) -> bool {
        self.done
    }

    /// Where the next step starts.
    pub fn resume_after(&self) -> &Bound<Vec<u8>> {
        &self.query.start
    }

    /// The next step's entries, in key order, or `None` once the range is
    /// exhausted (a step shorter than its limit is the last one).
    pub async fn next<E: Env>(
        &mut self,
        store: &Store<E>,
    ) -> Result<Option<Vec<(Vec<u8>, Record)>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let entries = store.range(&self.query).await?;
        debug_assert!(entries.len() <= self.query.limit);
        debug_assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0));
        self.done = entries.len() < self.query.limit;
        match entries.last() {
            Some((last, _)) => self.query.start = Bound::Excluded(last.clone()),
            None => return Ok(None),
        }
        Ok(Some(entries))
    }
}
