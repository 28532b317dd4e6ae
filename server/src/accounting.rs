//! What the server holds for its clients, counted, so memory is bounded by
//! the limits and not by the clients (docs/design.md 9.3).
//!
//! Invariants kept here:
//! - **A request is in flight from the moment its frame is read until its
//!   response is written** (or can never be: the connection is gone). The
//!   count is held by an [`InFlight`] guard that travels with the request
//!   and then with its response, and is released when it is dropped, so a
//!   request task that panics or a write that fails releases it too.
//! - **Answer bytes are held from the moment a transaction starts copying
//!   values into its results until the socket took the encoded response**,
//!   per connection and for the server, in an [`ByteBudget`] each: the
//!   executor reserves result bytes as it builds them (a [`ResultMeter`]:
//!   a transaction that finds the budget full of other answers fails with
//!   `Busy`), and an [`Outgoing`] frame holds its bytes while it lives.
//!
//! The readers consult these counts before they read: a connection whose
//! queue or in-flight count is at its bound, or a server at its total,
//! reads nothing more, and TCP pushes back on the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jubilant_core::txn::{ByteBudget, ResultMeter};

/// The server's counts and event counters (INFO `# Server`).
#[derive(Debug)]
pub struct ServerCounters {
    /// Connections being served.
    pub connections: AtomicU64,
    /// Requests running (read, answer not yet queued): the server's gate.
    /// A request whose answer waits for its client counts on its
    /// connection only, so clients that do not read cannot stop the
    /// server from serving the others.
    pub in_flight: AtomicU64,
    /// Answer bytes being built or waiting to be written, over all
    /// connections.
    pub answers: Arc<ByteBudget>,
    /// Request bytes read (or announced by a frame being read) and not yet
    /// answered, over all connections.
    pub requests: Arc<ByteBudget>,
    /// Connections refused at `max_connections` (told so, then closed).
    pub connections_rejected: AtomicU64,
    /// Connections closed because a frame did not arrive in time.
    pub frame_timeouts: AtomicU64,
    /// Connections closed for being idle.
    pub idle_timeouts: AtomicU64,
    /// Connections closed for announcing a frame over the limit.
    pub frames_too_large: AtomicU64,
    /// Requests refused because their answer would be too large.
    pub responses_too_large: AtomicU64,
    /// Connections dropped at the shutdown deadline with responses unwritten.
    pub shutdown_dropped: AtomicU64,
}

impl ServerCounters {
    /// Zero counts, an answer budget of `answer_bytes_max` and a request
    /// budget of `request_bytes_max`.
    pub fn new(answer_bytes_max: u64, request_bytes_max: u64) -> Self {
        ServerCounters {
            connections: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            answers: Arc::new(ByteBudget::new(answer_bytes_max)),
            requests: Arc::new(ByteBudget::new(request_bytes_max)),
            connections_rejected: AtomicU64::new(0),
            frame_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            frames_too_large: AtomicU64::new(0),
            responses_too_large: AtomicU64::new(0),
            shutdown_dropped: AtomicU64::new(0),
        }
    }

    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The value of `counter` now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Acquire)
    }
}

/// One connection's share of the counts.
#[derive(Debug)]
pub struct ConnCounters {
    /// Its requests in flight.
    pub in_flight: AtomicU64,
    /// Its answer bytes being built or waiting to be written.
    pub answers: Arc<ByteBudget>,
    /// The writer gave up on the peer (it left, or shutdown dropped it):
    /// requests already read are not worth running.
    pub peer_gone: std::sync::atomic::AtomicBool,
}

impl ConnCounters {
    /// Nothing in flight, and an answer budget of `answer_bytes_max`.
    pub fn new(answer_bytes_max: u64) -> Self {
        ConnCounters {
            in_flight: AtomicU64::new(0),
            answers: Arc::new(ByteBudget::new(answer_bytes_max)),
            peer_gone: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the writer gave up on the peer.
    pub fn peer_gone(&self) -> bool {
        self.peer_gone.load(Ordering::Acquire)
    }

    /// A meter for a transaction of this connection: its results reserve
    /// against this connection's budget and the server's.
    pub fn meter(&self, server: &ServerCounters) -> ResultMeter {
        ResultMeter::new(vec![Arc::clone(&self.answers), Arc::clone(&server.answers)])
    }
}

/// One request in flight, with the request bytes it holds (taken on the
/// server's request budget); released when dropped. It counts on the
/// server until it has run ([`InFlight::request_done`]), and on its
/// connection until its answer is written.
#[derive(Debug)]
pub struct InFlight {
    server: Arc<ServerCounters>,
    conn: Arc<ConnCounters>,
    request_bytes: u64,
    running: bool,
}

impl InFlight {
    /// Counts a request read on `conn`, holding `request_bytes` already
    /// taken on the server's request budget.
    pub fn begin(
        server: &Arc<ServerCounters>,
        conn: &Arc<ConnCounters>,
        request_bytes: u64,
    ) -> Self {
        server.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            server: Arc::clone(server),
            conn: Arc::clone(conn),
            request_bytes,
            running: true,
        }
    }
}

impl InFlight {
    /// The request has run and its bytes are gone: gives them back now,
    /// not when the answer is written (a client that does not read must
    /// not hold request memory other clients need).
    pub fn request_done(&mut self) {
        self.server
            .requests
            .give_back(std::mem::take(&mut self.request_bytes));
        if std::mem::take(&mut self.running) {
            let server = self.server.in_flight.fetch_sub(1, Ordering::AcqRel);
            debug_assert!(server > 0, "the server's in-flight count went below zero");
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.request_done();
        let conn = self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(conn > 0, "an in-flight count went below zero");
    }
}

/// A response frame on its way to the socket, with the request it
/// answers (if any); its bytes count as queued until it is dropped.
#[derive(Debug)]
pub struct Outgoing {
    frame: Vec<u8>,
    server: Arc<ServerCounters>,
    conn: Arc<ConnCounters>,
    _request: Option<InFlight>,
}

impl Outgoing {
    /// Queues `frame` on `conn`, answering `request`.
    pub fn new(
        frame: Vec<u8>,
        server: &Arc<ServerCounters>,
        conn: &Arc<ConnCounters>,
        request: Option<InFlight>,
    ) -> Self {
        let len = frame.len() as u64;
        server.answers.take(len);
        conn.answers.take(len);
        Outgoing {
            frame,
            server: Arc::clone(server),
            conn: Arc::clone(conn),
            _request: request,
        }
    }
}

impl AsRef<[u8]> for Outgoing {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        let len = self.frame.len() as u64;
        self.server.answers.give_back(len);
        self.conn.answers.give_back(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_until_its_response_is_dropped_and_bytes_until_written() {
        let server = Arc::new(ServerCounters::new(1000, 1000));
        let conn = Arc::new(ConnCounters::new(100));
        let request = InFlight::begin(&server, &conn, 0);
        assert_eq!(ServerCounters::get(&server.in_flight), 1);
        let meter = conn.meter(&server);
        assert!(meter.try_reserve(70), "building: reserved on both budgets");
        assert_eq!(server.answers.held(), 70);
        let outgoing = Outgoing::new(vec![0; 100], &server, &conn, Some(request));
        drop(meter);
        // Queued: still in flight, and its bytes held.
        assert_eq!(ServerCounters::get(&conn.in_flight), 1);
        assert_eq!(server.answers.held(), 100);
        assert_eq!(conn.answers.held(), 100);
        assert!(conn.answers.is_full());
        drop(outgoing);
        assert_eq!(ServerCounters::get(&server.in_flight), 0);
        assert_eq!(ServerCounters::get(&conn.in_flight), 0);
        assert_eq!(server.answers.held(), 0);
    }

    #[test]
    fn a_request_task_that_panics_releases_its_count() {
        let server = Arc::new(ServerCounters::new(1000, 1000));
        let conn = Arc::new(ConnCounters::new(100));
        let request = InFlight::begin(&server, &conn, 0);
        let panicked = std::panic::catch_unwind(move || {
            let _held = request;
            panic!("a request task fails");
        });
        assert!(panicked.is_err());
        assert_eq!(ServerCounters::get(&server.in_flight), 0);
        assert_eq!(ServerCounters::get(&conn.in_flight), 0);
    }
}
