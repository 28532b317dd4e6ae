//! The RESP listener: Redis's protocol (RESP2, and RESP3 after `HELLO 3`)
//! on its own port, so `redis-cli`, `redis-py`, `redis-benchmark` and every
//! Redis client reach the same database as the native protocol, with the
//! same limits and backpressure (docs/design.md 9.6).
//!
//! - [`request`] splits the byte stream into requests;
//! - [`command`] reads a request as a command;
//! - [`session`] keeps a connection's state (`MULTI`, `WATCH`, `HELLO`);
//! - [`keyspace`] gives the string commands Redis's meaning over a view of
//!   their keys, and [`exec`] runs them as engine transactions;
//! - [`keyspace_wide`] serves `SCAN`, `KEYS`, `DBSIZE`, `FLUSHDB`, `INFO`,
//!   `COMMAND`, `CONFIG GET`;
//! - [`reply`] writes the answers; [`glob`] matches `KEYS` patterns.
//!
//! Invariants kept here (the connection loop):
//! - **One connection's commands take effect in the order sent.** The next
//!   command starts only once the one before it holds its locks (its place
//!   in the serial order is then fixed: strict two-phase locking), or has
//!   been answered when it had to read before it could write. Commands of
//!   a pipeline still share one group commit: a `SET` waiting for its fsync
//!   does not hold up the next.
//! - **Replies are written in the order of the requests**, whatever order
//!   they finish in.
//! - **Memory is bounded as on the native listener**: a connection stops
//!   reading while its (or the server's) requests in flight or unwritten
//!   answers are at their limits, a request must arrive whole within
//!   `frame_read_timeout_ms` and is at most `frame_bytes_max` bytes.

mod acl;
pub mod command;
mod connection;
pub mod exec;
pub mod glob;
pub mod keyspace;
pub mod keyspace_wide;
pub mod reply;
pub mod request;
pub mod session;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use connection::connection;

/// Scan cursors the server remembers at once; past it the oldest is
/// forgotten (a scan resumed from it is told to start over).
pub const CURSORS_MAX: usize = 4096;

/// What the RESP listener shares across its connections.
#[derive(Debug, Default)]
pub struct RespState {
    /// The last connection id handed out.
    next_client_id: AtomicU64,
    /// Commands answered.
    pub commands: AtomicU64,
    /// Connections closed for lost framing.
    pub protocol_errors: AtomicU64,
    /// RESP connections open now.
    pub connections: AtomicU64,
    cursors: Mutex<Cursors>,
}

/// `SCAN` cursors: a number standing for the key a scan resumes after
/// (clients parse cursors as 64-bit integers, so the key cannot travel in
/// it). Numbers are never reused.
#[derive(Debug, Default)]
struct Cursors {
    last: u64,
    resume_after: BTreeMap<u64, Vec<u8>>,
}

impl RespState {
    /// A fresh connection id.
    pub fn client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A cursor resuming after `key`.
    pub fn cursor_after(&self, key: Vec<u8>) -> u64 {
        let mut cursors = jubilant_core::mutex::lock(&self.cursors);
        cursors.last += 1;
        let cursor = cursors.last;
        cursors.resume_after.insert(cursor, key);
        while cursors.resume_after.len() > CURSORS_MAX {
            cursors.resume_after.pop_first();
        }
        cursor
    }

    /// The key cursor `cursor` resumes after (`None`: unknown or forgotten).
    pub fn resume_after(&self, cursor: u64) -> Option<Vec<u8>> {
        jubilant_core::mutex::lock(&self.cursors)
            .resume_after
            .get(&cursor)
            .cloned()
    }
}
