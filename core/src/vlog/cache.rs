//! Values read through pointers, kept in memory within a share of the
//! database's cache budget (design 8.3, 11.3), so a hot value is served
//! without a read, a checksum or a decode.
//!
//! Invariants:
//! - an entry is the verified value of the record at its `(segment,
//!   offset)`, which never changes while the segment exists (records are
//!   never rewritten, and segment ids are never reused), so no entry is
//!   ever stale;
//! - a segment's entries go when GC removes it, and none is added for a
//!   segment already removed (the caller checks under the same lock);
//! - the bytes held never stay above the budget: each insertion evicts
//!   (CLOCK: a value read since the hand last passed is spared once), and
//!   a value larger than an eighth of the budget is not kept at all;
//! - what it holds is published in a counter the page cache reads, so
//!   pages and values together keep to `cache_bytes`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::reader::VlogValue;

/// What an entry costs beyond its key and value bytes: the map's node, the
/// ring slot, the `Arc` and the `VlogValue` itself, rounded up.
const ENTRY_OVERHEAD_BYTES: u64 = 128;

struct Entry {
    value: Arc<VlogValue>,
    charge: u64,
    /// Read since the clock hand last passed it.
    referenced: bool,
}

/// The cached values, by `(segment, offset)`.
pub(crate) struct ValueCache {
    budget_bytes: u64,
    /// Bytes held, shared with the page cache (which evicts pages while
    /// pages and values together exceed the budget).
    charged: Arc<AtomicU64>,
    entries: BTreeMap<(u32, u64), Entry>,
    /// Keys in the order the hand visits them; a key whose entry went
    /// (its segment was removed) is skipped when the hand reaches it.
    ring: VecDeque<(u32, u64)>,
    hits: u64,
    misses: u64,
}

impl ValueCache {
    /// A cache of at most `budget_bytes`, publishing its bytes in
    /// `charged`. A budget of 0 keeps nothing.
    pub(crate) fn new(budget_bytes: u64, charged: Arc<AtomicU64>) -> Self {
        charged.store(0, Ordering::Relaxed);
        ValueCache {
            budget_bytes,
            charged,
            entries: BTreeMap::new(),
            ring: VecDeque::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The value of the record at `offset` of `segment`, if cached.
    pub(crate) fn get(&mut self, segment: u32, offset: u64) -> Option<Arc<VlogValue>> {
        match self.entries.get_mut(&(segment, offset)) {
            Some(entry) => {
                entry.referenced = true;
                self.hits += 1;
                Some(Arc::clone(&entry.value))
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps `value`, just read and verified at `offset` of `segment`.
    pub(crate) fn insert(&mut self, segment: u32, offset: u64, value: Arc<VlogValue>) {
        let charge = (value.bytes.len() + value.key.len()) as u64 + ENTRY_OVERHEAD_BYTES;
        if charge > self.budget_bytes / 8 || self.entries.contains_key(&(segment, offset)) {
            return;
        }
        self.entries.insert(
            (segment, offset),
            Entry {
                value,
                charge,
                referenced: false,
            },
        );
        self.ring.push_back((segment, offset));
        self.charged.fetch_add(charge, Ordering::Relaxed);
        self.evict();
    }

    /// Forgets every value of `segment` (GC is removing it).
    pub(crate) fn remove_segment(&mut self, segment: u32) {
        let keys: Vec<(u32, u64)> = self
            .entries
            .range((segment, 0)..=(segment, u64::MAX))
            .map(|(&key, _)| key)
            .collect();
        for key in keys {
            if let Some(entry) = self.entries.remove(&key) {
                self.charged.fetch_sub(entry.charge, Ordering::Relaxed);
            }
        }
        self.ring.retain(|&(id, _)| id != segment);
    }

    /// CLOCK over the ring until the bytes fit the budget. Terminates:
    /// every step evicts, drops a stale key, or clears a bit (at most once
    /// per entry before that entry can be evicted).
    fn evict(&mut self) {
        while self.bytes() > self.budget_bytes {
            let Some(key) = self.ring.pop_front() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                self.ring.push_back(key);
            } else {
                let charge = entry.charge;
                self.entries.remove(&key);
                self.charged.fetch_sub(charge, Ordering::Relaxed);
            }
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.charged.load(Ordering::Relaxed)
    }

    /// `(hits, misses, values held)`.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (self.hits, self.misses, self.entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ValueType;

    fn value(key: &str, len: usize) -> Arc<VlogValue> {
        Arc::new(VlogValue {
            key: key.as_bytes().to_vec(),
            value_type: ValueType::Bytes,
            bytes: vec![7; len],
        })
    }

    #[test]
    fn values_are_kept_by_position_within_the_budget_and_go_with_their_segment() {
        let charged = Arc::new(AtomicU64::new(0));
        let mut cache = ValueCache::new(64 * 1024, Arc::clone(&charged));
        assert!(cache.get(1, 0).is_none());
        cache.insert(1, 0, value("a", 1000));
        cache.insert(2, 0, value("b", 1000));
        assert_eq!(cache.get(1, 0).map(|v| v.key.clone()), Some(b"a".to_vec()));
        assert_eq!(
            cache.get(2, 0).map(|v| v.key.clone()),
            Some(b"b".to_vec()),
            "the same offset in another segment is another value"
        );
        assert_eq!(charged.load(Ordering::Relaxed), cache.bytes());
        // Far more than the budget: the bytes never stay above it, and a
        // value read since the hand passed is spared.
        for offset in 1..200 {
            cache.get(1, 0);
            cache.insert(3, offset * 2000, value("c", 1000));
            assert!(cache.bytes() <= 64 * 1024);
        }
        assert!(
            cache.get(1, 0).is_some(),
            "the value read every round stays"
        );
        cache.remove_segment(1);
        assert!(cache.get(1, 0).is_none());
        cache.remove_segment(3);
        cache.remove_segment(2);
        assert_eq!(cache.bytes(), 0);
        assert_eq!(charged.load(Ordering::Relaxed), 0);
        // A value over an eighth of the budget is not kept.
        cache.insert(4, 0, value("big", 9000));
        assert!(cache.get(4, 0).is_none());
        let (hits, misses, held) = cache.counts();
        assert!(hits > 0 && misses > 0 && held == 0);
    }
}
