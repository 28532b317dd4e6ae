//! Memory for answers, bounded while they are built: a transaction's
//! results reserve their bytes against the budgets of whoever will hold
//! them (a server's connection, the server) before the values are copied.
//!
//! Invariant kept here: **a budget's bytes are either reserved by a
//! transaction still building its results, or held by someone who added
//! them (a queued answer), and each is given back exactly once** (a
//! [`ResultMeter`] gives back all it reserved when dropped). A reservation
//! that would take a budget past its bound is refused (the transaction
//! fails, and releases its locks), unless the budget holds nothing but the
//! transaction's own bytes: one answer may always be built, so a client
//! that reads is never refused for its own request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes held (for answers, for requests), and the bound past which no
/// more are taken.
#[derive(Debug)]
pub struct ByteBudget {
    held: AtomicU64,
    bound: u64,
}

impl ByteBudget {
    /// An empty budget of `bound` bytes.
    pub fn new(bound: u64) -> Self {
        ByteBudget {
            held: AtomicU64::new(0),
            bound,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// The bound.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Whether the budget is at or past its bound.
    pub fn is_full(&self) -> bool {
        self.held() >= self.bound
    }

    /// Adds `bytes` held by the caller (who gives them back with
    /// [`ByteBudget::give_back`]).
    pub fn take(&self, bytes: u64) {
        self.held.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Takes `bytes` if they fit under the bound, or if the budget holds
    /// nothing (one claim may always go ahead); returns whether it took.
    pub fn try_take(&self, bytes: u64) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held == 0 || held.saturating_add(bytes) <= self.bound).then_some(held + bytes)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken before.
    pub fn give_back(&self, bytes: u64) {
        let before = self.held.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "an answer budget went below zero");
    }
}

/// One transaction's reservations against its budgets; all given back when
/// it is dropped.
#[derive(Debug)]
pub struct ResultMeter {
    budgets: Vec<Arc<ByteBudget>>,
    reserved: AtomicU64,
}

impl ResultMeter {
    /// A meter reserving against every one of `budgets`.
    pub fn new(budgets: Vec<Arc<ByteBudget>>) -> Self {
        ResultMeter {
            budgets,
            reserved: AtomicU64::new(0),
        }
    }

    /// Reserves `bytes` against every budget, if each has room for them
    /// or holds nothing but this meter's own bytes; otherwise reserves
    /// nothing and returns false (try again once answers were written).
    pub fn try_reserve(&self, bytes: u64) -> bool {
        let mine = self.reserved.load(Ordering::Acquire);
        let room = self.budgets.iter().all(|budget| {
            let held = budget.held();
            held.saturating_sub(mine) == 0 || held.saturating_add(bytes) <= budget.bound()
        });
        if room {
            for budget in &self.budgets {
                budget.take(bytes);
            }
            self.reserved.fetch_add(bytes, Ordering::AcqRel);
        }
        room
    }

    /// Bytes reserved so far.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }
}

/// A meter is the same only as itself: two transactions are equal with
/// the same meter, or none.
impl PartialEq for ResultMeter {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ResultMeter {}

impl Drop for ResultMeter {
    fn drop(&mut self) {
        let reserved = self.reserved.load(Ordering::Acquire);
        for budget in &self.budgets {
            budget.give_back(reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_answer_is_always_built_later_ones_wait_for_room() {
        let budget = Arc::new(ByteBudget::new(100));
        let first = ResultMeter::new(vec![Arc::clone(&budget)]);
        // Over the bound, but nothing else is held: one answer may be built.
        assert!(first.try_reserve(150));
        assert!(first.try_reserve(10), "and go on growing on its own");
        let second = ResultMeter::new(vec![Arc::clone(&budget)]);
        assert!(!second.try_reserve(1), "the budget is full of the first's");
        assert_eq!(second.reserved(), 0);
        drop(first);
        assert_eq!(budget.held(), 0, "all given back");
        assert!(second.try_reserve(60));
        assert!(!budget.is_full());
        let third = ResultMeter::new(vec![Arc::clone(&budget)]);
        assert!(third.try_reserve(40), "fits within the bound");
        assert!(!third.try_reserve(1), "past it, with others holding bytes");
        assert!(budget.is_full());
    }
}
