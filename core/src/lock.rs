//! The lock manager: strict two-phase locking over a transaction's
//! pre-declared keys (SPEC 4).
//!
//! Invariants:
//! - **Canonical order, no deadlock.** A transaction asks for its keys
//!   sorted bytewise, one at a time, and waits for each before asking for
//!   the next; two transactions therefore never wait on each other in a
//!   cycle, and no deadlock detector is needed.
//! - **FIFO per key.** A request is granted only when nothing is queued
//!   ahead of it and it is compatible with the holders (shared with shared),
//!   so a stream of readers cannot starve a writer.
//! - **Nothing is left behind.** A `LockSet` releases every lock it was
//!   granted, and withdraws any request still queued, when it is dropped,
//!   even if the transaction's future is dropped while it waits.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::oneshot;

use crate::mutex::lock;
#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;
use crate::sabotage::sabotaged;

/// How a transaction holds a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// Shared: the transaction only reads the key.
    Shared,
    /// Exclusive: the transaction may write the key.
    Exclusive,
}

/// Lock-manager counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Requests granted at once.
    pub grants_immediate: u64,
    /// Requests that had to queue.
    pub waits: u64,
    /// Keys locked right now.
    pub keys_locked: u64,
    /// Transactions holding or waiting for locks right now.
    pub holders: u64,
}

struct Waiter {
    owner: u64,
    mode: LockMode,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
struct Entry {
    /// Owners holding the key, and how.
    holders: Vec<(u64, LockMode)>,
    queue: VecDeque<Waiter>,
}

impl Entry {
    fn compatible(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Shared => self
                .holders
                .iter()
                .all(|(_, held)| *held == LockMode::Shared),
            LockMode::Exclusive => self.holders.is_empty(),
        }
    }

    /// Grants queued requests from the front while they are compatible.
    fn grant_from_queue(&mut self) {
        while let Some(front) = self.queue.front() {
            if !self.compatible(front.mode) {
                break;
            }
            let waiter = self.queue.pop_front().expect("a front exists");
            self.holders.push((waiter.owner, waiter.mode));
            debug_assert!(self.granted_consistently(waiter.owner));
            // A waiter that gave up is removed by its LockSet's drop,
            // which releases what this grant gave it.
            let _ = waiter.grant.send(());
        }
    }

    /// Checked as `owner` is granted the key: it holds it once, and no
    /// exclusive holder shares the key (O(holders), no allocation: this
    /// runs in production builds too).
    fn granted_consistently(&self, owner: u64) -> bool {
        let held_by_owner = self
            .holders
            .iter()
            .filter(|(holder, _)| *holder == owner)
            .count();
        let exclusive = self
            .holders
            .iter()
            .any(|(_, mode)| *mode == LockMode::Exclusive);
        held_by_owner == 1 && (!exclusive || self.holders.len() == 1)
    }
}

#[derive(Default)]
struct Table {
    entries: BTreeMap<Vec<u8>, Entry>,
    next_owner: u64,
    active: u64,
    stats: LockStats,
}

/// The lock table; cheap to clone (a handle).
#[derive(Clone, Default)]
pub(crate) struct LockManager {
    table: Arc<Mutex<Table>>,
    /// Switches that break locking on purpose (tests only).
    #[cfg(feature = "sabotage")]
    sabotage: Sabotage,
}

impl LockManager {
    /// An empty lock table.
    pub(crate) fn new(#[cfg(feature = "sabotage")] sabotage: Sabotage) -> Self {
        LockManager {
            table: Arc::default(),
            #[cfg(feature = "sabotage")]
            sabotage,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Counters and the current occupancy.
    pub(crate) fn stats(&self) -> LockStats {
        let table = self.lock();
        LockStats {
            keys_locked: table.entries.len() as u64,
            holders: table.active,
            ..table.stats
        }
    }

    /// Locks `keys` in the order given (callers pass them sorted bytewise,
    /// each at most once), waiting for each in turn. The locks are held
    /// until the returned set is dropped.
    pub(crate) async fn acquire(&self, keys: &[(Vec<u8>, LockMode)]) -> LockSet {
        // The canonical order is what rules deadlock out: assert it where
        // every caller's request arrives.
        debug_assert!(
            keys.windows(2).all(|pair| pair[0].0 < pair[1].0)
                || sabotaged!(self, LocksInRequestOrder),
            "locks are requested in bytewise key order, each key once"
        );
        let owner = {
            let mut table = self.lock();
            table.next_owner += 1;
            table.active += 1;
            table.next_owner
        };
        let mut set = LockSet {
            manager: self.clone(),
            owner,
            keys: Vec::with_capacity(keys.len()),
        };
        for (key, mode) in keys {
            let waiting = {
                let mut table = self.lock();
                let entry = table.entries.entry(key.clone()).or_default();
                set.keys.push(key.clone());
                if entry.queue.is_empty() && entry.compatible(*mode) {
                    entry.holders.push((owner, *mode));
                    debug_assert!(entry.granted_consistently(owner));
                    table.stats.grants_immediate += 1;
                    None
                } else {
                    let (grant, granted) = oneshot::channel();
                    entry.queue.push_back(Waiter {
                        owner,
                        mode: *mode,
                        grant,
                    });
                    table.stats.waits += 1;
                    Some(granted)
                }
            };
            if let Some(granted) = waiting {
                // The sender lives in the table until granted or withdrawn
                // by this set's drop, so it is never dropped unsent here.
                let _ = granted.await;
            }
        }
        set
    }

    fn release(&self, owner: u64, keys: &[Vec<u8>]) {
        let mut table = self.lock();
        for key in keys {
            let Some(entry) = table.entries.get_mut(key) else {
                continue;
            };
            entry.holders.retain(|(held_by, _)| *held_by != owner);
            entry.queue.retain(|waiter| waiter.owner != owner);
            entry.grant_from_queue();
            if entry.holders.is_empty() && entry.queue.is_empty() {
                table.entries.remove(key);
            }
        }
        table.active -= 1;
    }
}

/// The locks of one transaction; dropping it releases them all.
pub(crate) struct LockSet {
    manager: LockManager,
    owner: u64,
    /// Keys locked or asked for, in request order.
    keys: Vec<Vec<u8>>,
}

impl Drop for LockSet {
    fn drop(&mut self) {
        self.manager.release(self.owner, &self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn key(k: &str, mode: LockMode) -> (Vec<u8>, LockMode) {
        (k.as_bytes().to_vec(), mode)
    }

    #[test]
    fn shared_locks_share_and_exclusive_ones_wait_in_fifo_order() {
        let locks = LockManager::default();
        let a = locks
            .acquire(&[key("k", LockMode::Shared)])
            .now_or_never()
            .expect("free");
        let b = locks
            .acquire(&[key("k", LockMode::Shared)])
            .now_or_never()
            .expect("shared with shared");
        let exclusive = [key("k", LockMode::Exclusive)];
        let mut writer = Box::pin(locks.acquire(&exclusive));
        assert!((&mut writer).now_or_never().is_none(), "exclusive waits");
        // A reader arriving after the queued writer queues behind it.
        let shared = [key("k", LockMode::Shared)];
        let mut late_reader = Box::pin(locks.acquire(&shared));
        assert!((&mut late_reader).now_or_never().is_none(), "no starvation");
        drop(a);
        assert!((&mut writer).now_or_never().is_none());
        drop(b);
        let writer = writer.now_or_never().expect("granted after both readers");
        assert!((&mut late_reader).now_or_never().is_none());
        drop(writer);
        assert!(late_reader.now_or_never().is_some());
        assert_eq!(locks.stats().keys_locked, 0, "the table empties");
        assert_eq!(locks.stats().holders, 0);
    }

    #[test]
    fn a_dropped_waiter_leaves_nothing_behind() {
        let locks = LockManager::default();
        let held = locks
            .acquire(&[key("a", LockMode::Exclusive)])
            .now_or_never()
            .expect("free");
        let both = [key("a", LockMode::Exclusive), key("b", LockMode::Exclusive)];
        let mut waiting = Box::pin(locks.acquire(&both));
        assert!((&mut waiting).now_or_never().is_none());
        drop(waiting);
        drop(held);
        assert_eq!(locks.stats().keys_locked, 0);
        let again = locks
            .acquire(&[key("a", LockMode::Exclusive), key("b", LockMode::Exclusive)])
            .now_or_never();
        assert!(again.is_some(), "the abandoned request does not block");
    }

    #[test]
    #[should_panic(expected = "bytewise key order")]
    fn keys_asked_for_out_of_order_fail_an_assertion() {
        let locks = LockManager::default();
        let unsorted = [key("b", LockMode::Shared), key("a", LockMode::Shared)];
        let _ = locks.acquire(&unsorted).now_or_never();
    }
}
