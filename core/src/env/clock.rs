//! Clocks and timers.
//!
//! Two clocks, because they answer different questions: the monotonic clock
//! measures intervals (timeouts, TTL countdowns, latency) and never goes
//! backwards; the wall clock names moments that must survive a restart (an
//! expiry stored on disk) and may jump either way while the process runs.

use std::fmt;
use std::future::Future;
use std::ops::Add;
use std::time::Duration;

/// A point on the environment's monotonic clock, in nanoseconds since an
/// arbitrary origin fixed when the environment was created.
///
/// Only differences between two `MonoTime`s of the same environment mean
/// anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(u64);

impl MonoTime {
    /// The clock's origin.
    pub const ZERO: MonoTime = MonoTime(0);

    /// The point `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        MonoTime(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for MonoTime {
    type Output = MonoTime;

    /// Saturates at the end of time (about 584 years after the origin)
    /// rather than wrapping.
    fn add(self, rhs: Duration) -> MonoTime {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        MonoTime(self.0.saturating_add(nanos))
    }
}

impl fmt::Display for MonoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}ms", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The environment's clocks and timers.
pub trait Clock {
    /// Now, on the monotonic clock.
    fn now_mono(&self) -> MonoTime;

    /// Now, on the wall clock, in milliseconds since the Unix epoch. May jump
    /// forwards or backwards between two calls.
    fn now_wall_ms(&self) -> u64;

    /// Completes once the monotonic clock reaches `deadline` (at once if it
    /// already has).
    fn sleep_until(&self, deadline: MonoTime) -> impl Future<Output = ()> + Send;

    /// Completes after `duration` has passed on the monotonic clock.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.sleep_until(self.now_mono() + duration)
    }
}
