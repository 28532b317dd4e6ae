//! The system clocks and tokio timers.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jubilant_core::env::{Clock, MonoTime};

use crate::RealEnv;

impl Clock for RealEnv {
    fn now_mono(&self) -> MonoTime {
        let nanos = self.origin.elapsed().as_nanos();
        MonoTime::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn now_wall_ms(&self) -> u64 {
        // A clock set before 1970 reads as the epoch rather than failing.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }

    fn sleep_until(&self, deadline: MonoTime) -> impl Future<Output = ()> + Send {
        let at = self.origin + Duration::from_nanos(deadline.as_nanos());
        tokio::time::sleep_until(tokio::time::Instant::from_std(at))
    }
}
