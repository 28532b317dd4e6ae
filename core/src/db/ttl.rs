//! Time to live (SPEC 3): the calibrated clock TTLs are judged by, and the
//! sweeper that tombstones expired keys.
//!
//! Invariants:
//! - **A jumping wall clock changes nothing while the process runs.** The
//!   wall time is read once at open and advanced by the monotonic clock
//!   from then on.
//! - **Expired means missing, everywhere**, whether or not the sweeper has
//!   been by: reads filter on the expiry; the sweeper only reclaims space.
//! - **An expired key a `sync` read saw never comes back.** Before such a
//!   read answers, the key is deleted durably (`Db::reap`), so a wall clock
//!   set back across a restart cannot revive it.
//! - **The sweeper deletes only what is still expired** when it holds the
//!   key's exclusive lock, through the normal WAL path, so a key set again
//!   in between is never lost. Each run looks at a bounded slice of keys.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{Either, select};

use crate::env::{Env, MonoTime};
use crate::lock::{LockManager, LockMode};
use crate::record::Mutation;
use crate::store::{Store, TreeScan};
use crate::wal::{Durability, GroupCommit};

/// TTL counters, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TtlStats {
    /// Reads that found a record expired (and answered missing).
    pub expired_reads: u64,
    /// Sweeper runs.
    pub sweeps: u64,
    /// Tombstones the sweeper wrote for expired keys.
    pub tombstones: u64,
    /// Tombstones written for expired keys a `sync` read saw, before it
    /// answered.
    pub reaped: u64,
}

#[derive(Default)]
pub(crate) struct TtlCounters {
    expired_reads: AtomicU64,
    sweeps: AtomicU64,
    tombstones: AtomicU64,
    reaped: AtomicU64,
}

impl TtlCounters {
    pub(crate) fn expired_read(&self) {
        self.expired_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reaped(&self, n: u64) {
        self.reaped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> TtlStats {
        TtlStats {
            reaped: self.reaped.load(Ordering::Relaxed),
            expired_reads: self.expired_reads.load(Ordering::Relaxed),
            sweeps: self.sweeps.load(Ordering::Relaxed),
            tombstones: self.tombstones.load(Ordering::Relaxed),
        }
    }
}

/// Wall-clock Unix milliseconds as calibrated at open.
#[derive(Clone)]
pub(crate) struct TtlClock<E: Env> {
    env: E,
    wall_base_ms: u64,
    mono_base: MonoTime,
}

impl<E: Env> TtlClock<E> {
    /// The environment the clock reads (for timers next to it).
    pub(crate) fn env(&self) -> &E {
        &self.env
    }

    /// Calibrates at open: the wall clock now, but never earlier than
    /// `floor_ms`, the newest reading the previous lives made durable (the
    /// superblock's, a replayed commit's). A wall clock set back across a
    /// restart therefore cannot revive an expiry anyone was told of
    /// durably; one set forward moves TTL time forward with it, as it
    /// would with the process running.
    pub(crate) fn calibrate(env: E, floor_ms: u64) -> Self {
        TtlClock {
            wall_base_ms: env.now_wall_ms().max(floor_ms),
            mono_base: env.now_mono(),
            env,
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = self.env.now_mono().saturating_since(self.mono_base);
        self.wall_base_ms
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }
}

/// What the sweeper task needs.
pub(crate) struct Sweeper<E: Env> {
    pub store: Arc<Store<E>>,
    pub wal: GroupCommit,
    pub locks: LockManager,
    pub clock: TtlClock<E>,
    pub counters: Arc<TtlCounters>,
    pub interval: Duration,
    pub keys_per_run: usize,
}

impl<E: Env> Sweeper<E> {
    /// Runs one slice every `interval` until `stop` fires (or its sender is
    /// dropped).
    pub(crate) async fn run(self, mut stop: oneshot::Receiver<()>) {
        let mut scan = TreeScan::all(self.keys_per_run);
        loop {
            let sleep = pin!(self.clock.env.sleep(self.interval));
            match select(sleep, &mut stop).await {
                Either::Left(((), _)) => {}
                Either::Right(_) => return,
            }
            if self.store.failure().is_some() {
                continue;
            }
            // The store or WAL failed: reads and the next open report it,
            // and the next run starts from the first key again.
            let swept = self.sweep(&mut scan).await;
            if swept.is_err() || scan.exhausted() {
                scan = TreeScan::all(self.keys_per_run);
            }
        }
    }

    /// Sweeps the next slice of `scan`.
    async fn sweep(&self, scan: &mut TreeScan) -> Result<(), ()> {
        self.counters.sweeps.fetch_add(1, Ordering::Relaxed);
        let Some(slice) = scan.next(&self.store).await.map_err(|_| ())? else {
            return Ok(());
        };
        let now_ms = self.clock.now_ms();
        let candidates: Vec<(Vec<u8>, LockMode)> = slice
            .into_iter()
            .filter(|(_, record)| record.expired_at(now_ms))
            .map(|(key, _)| (key, LockMode::Exclusive))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        // The range is in key order: the locks go in the canonical order.
        let locks = self.locks.acquire(&candidates).await;
        let now_ms = self.clock.now_ms();
        let mut deletes = Vec::new();
        for (key, _) in candidates {
            let still = self.store.get(&key).await.map_err(|_| ())?;
            if still.is_some_and(|record| record.expired_at(now_ms)) {
                deletes.push(Mutation::Delete { key });
            }
        }
        if deletes.is_empty() {
            return Ok(());
        }
        let count = deletes.len() as u64;
        // Async: a tombstone lost in a crash is written again by a later
        // sweep, and the key reads as missing meanwhile.
        self.wal
            .commit(deletes, Durability::Async, Some(locks), now_ms)
            .await
            .map_err(|_| ())?;
        self.counters.tombstones.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }
}
