//! Virtual time: a clock that moves only when the world has nothing else to
//! do, and the timers that make it move.
//!
//! Invariant kept here: the monotonic clock never goes backwards and jumps
//! straight to the earliest timer when no task is ready, so a simulated hour
//! of idle waiting costs nothing, and timers with equal deadlines fire in the
//! order they were set. The wall clock is the monotonic clock plus an offset
//! that fault injection may move either way.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use jubilant_core::mutex::lock;

/// The simulated wall clock's reading at monotonic time zero:
/// 2026-01-01T00:00:00Z.
pub const WALL_EPOCH_MS: u64 = 1_767_225_600_000;

/// Monotonic time, the wall-clock offset and pending timers.
pub(crate) struct SimClock {
    now_nanos: AtomicU64,
    wall_offset_ms: AtomicI64,
    timers: Mutex<Timers>,
}

struct Timers {
    /// `(deadline, sequence)` to the waker to call; the sequence number
    /// orders equal deadlines by registration.
    entries: BTreeMap<(u64, u64), Waker>,
    next_seq: u64,
}

/// Identifies a registered timer so it can be updated or cancelled.
pub(crate) type TimerKey = (u64, u64);

impl SimClock {
    pub(crate) fn new() -> Self {
        SimClock {
            now_nanos: AtomicU64::new(0),
            wall_offset_ms: AtomicI64::new(0),
            timers: Mutex::new(Timers {
                entries: BTreeMap::new(),
                next_seq: 0,
            }),
        }
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.now_nanos.load(Ordering::Relaxed)
    }

    pub(crate) fn wall_ms(&self) -> u64 {
        let mono_ms = self.now_nanos() / 1_000_000;
        let wall = i128::from(WALL_EPOCH_MS)
            + i128::from(mono_ms)
            + i128::from(self.wall_offset_ms.load(Ordering::Relaxed));
        u64::try_from(wall.max(0)).unwrap_or(u64::MAX)
    }

    /// Moves the wall clock by `delta_ms` (either way); the monotonic clock
    /// is untouched.
    pub(crate) fn jump_wall(&self, delta_ms: i64) {
        self.wall_offset_ms.fetch_add(delta_ms, Ordering::Relaxed);
    }

    /// Registers `waker` to be woken at `deadline`, or updates the waker of
    /// the timer `key` already names.
    pub(crate) fn register(&self, deadline: u64, key: &mut Option<TimerKey>, waker: &Waker) {
        let mut timers = lock(&self.timers);
        if let Some(existing) = key
            && let Some(slot) = timers.entries.get_mut(existing)
        {
            if !slot.will_wake(waker) {
                *slot = waker.clone();
            }
            return;
        }
        let seq = timers.next_seq;
        timers.next_seq += 1;
        timers.entries.insert((deadline, seq), waker.clone());
        *key = Some((deadline, seq));
    }

    pub(crate) fn cancel(&self, key: TimerKey) {
        lock(&self.timers).entries.remove(&key);
    }

    /// Advances to the earliest timer and wakes it. Returns `false` if no
    /// timer is pending.
    pub(crate) fn fire_next(&self) -> bool {
        let fired = lock(&self.timers).entries.pop_first();
        let Some(((deadline, _), waker)) = fired else {
            return false;
        };
        // fetch_max: a timer set in the past must not move time backwards.
        self.now_nanos.fetch_max(deadline, Ordering::Relaxed);
        waker.wake();
        true
    }
}

/// Completes when virtual time reaches its deadline.
pub struct Sleep {
    clock: Arc<SimClock>,
    deadline: u64,
    key: Option<TimerKey>,
}

impl Sleep {
    pub(crate) fn new(clock: Arc<SimClock>, deadline: u64) -> Self {
        Sleep {
            clock,
            deadline,
            key: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now_nanos() >= self.deadline {
            if let Some(key) = self.key.take() {
                self.clock.cancel(key);
            }
            return Poll::Ready(());
        }
        let this = &mut *self;
        this.clock
            .register(this.deadline, &mut this.key, cx.waker());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.cancel(key);
        }
    }
}

/// Returns `Pending` once (rescheduling itself), then `Ready`: a point where
/// the scheduler may run another task.
pub(crate) struct YieldNow {
    yielded: bool,
}

impl YieldNow {
    pub(crate) fn new() -> Self {
        YieldNow { yielded: false }
    }
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
