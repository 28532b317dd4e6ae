//! The simulated network: listeners, connections with latency, resets and
//! partitions.
//!
//! Invariants kept here:
//! - bytes on one connection arrive in order, each write after a random
//!   latency no shorter than the previous write's (TCP never reorders within
//!   a connection), while different connections are free to overtake each
//!   other;
//! - a partition between two nodes holds their bytes back (neither lost nor
//!   delivered) until it heals, and the end of a stream with them (a close
//!   is a FIN: it travels like data); a reset (fault) drops what was still
//!   travelling and fails every later read and write on both ends, once the
//!   bytes that had already arrived were read;
//! - a killed process's connections are closed by its kernel: the peer
//!   reads what was sent, then the end of the stream; a node that loses
//!   power says nothing: the peer's reads wait, and its writes vanish until
//!   a retransmission timeout ([`RETRANSMIT_TIMEOUT_NANOS`]) fails them;
//! - `accept` may fail (EMFILE) with a connection waiting, which stays in
//!   the backlog;
//! - each direction buffers at most [`PIPE_BYTES_MAX`]; a writer beyond that
//!   waits, so backpressure in the simulator looks like TCP's.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::{Poll, Waker};

use crate::faults::{Fault, FaultConfig, FaultCounts};
use crate::node::NodeId;
use crate::rng::SimRng;
use crate::time::{SimClock, TimerKey};
use crate::trace::Trace;

/// Bytes one direction of a connection buffers before its writer waits.
pub const PIPE_BYTES_MAX: usize = 256 * 1024;
/// How long a peer's writes to a node that lost power go unanswered before
/// they fail (TCP gives up retransmitting).
pub const RETRANSMIT_TIMEOUT_NANOS: u64 = 200_000_000;
/// First port handed out for port 0 and for client ends.
const EPHEMERAL_PORT_FIRST: u16 = 40_000;

/// What a network operation needs besides the network.
pub(crate) struct Ctx<'a> {
    pub rng: &'a mut SimRng,
    pub faults: &'a FaultConfig,
    pub counts: &'a mut FaultCounts,
    pub trace: &'a mut Trace,
    pub clock: &'a SimClock,
}

impl Ctx<'_> {
    fn trace(&mut self, args: std::fmt::Arguments<'_>) {
        self.trace
            .record(self.clock.now_nanos(), format_args!("net {args}"));
    }
}

/// The address of `node` on the simulated network.
pub fn node_ip(node: NodeId) -> IpAddr {
    let n = node.0;
    IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

struct Listening {
    node: NodeId,
    backlog: VecDeque<(u64, SocketAddr)>,
    waker: Option<Waker>,
}

struct Chunk {
    deliver_at: u64,
    data: Vec<u8>,
    read: usize,
}

/// One end of a connection, with the bytes travelling towards it.
struct End {
    node: NodeId,
    inbox: VecDeque<Chunk>,
    inbox_bytes: usize,
    reader: Option<Waker>,
    /// The other end's writer, waiting for room in this inbox.
    blocked_writer: Option<Waker>,
    /// The other end will write no more: the end of the stream arrives at
    /// this time (after everything sent before it).
    closed_at: Option<u64>,
    /// This end's node lost power at this time: it says nothing more, and
    /// the other end's writes fail a retransmission timeout later.
    vanished_at: Option<u64>,
    /// TCP keepalive on this end: this long after the peer vanished, its
    /// probes have gone unanswered and reads fail.
    keepalive_nanos: Option<u64>,
    /// This end's stream was dropped.
    dropped: bool,
    last_deliver_at: u64,
}

impl End {
    fn new(node: NodeId) -> Self {
        End {
            node,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            reader: None,
            blocked_writer: None,
            closed_at: None,
            vanished_at: None,
            keepalive_nanos: None,
            dropped: false,
            last_deliver_at: 0,
        }
    }

    fn wake_all(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.blocked_writer.take() {
            w.wake();
        }
    }
}

struct Conn {
    /// `[client, server]`.
    ends: [End; 2],
    reset: bool,
}

impl Conn {
    fn nodes(&self) -> (NodeId, NodeId) {
        (self.ends[0].node, self.ends[1].node)
    }

    /// Resets the connection at `now`: what was still travelling is lost,
    /// what had arrived stays readable, and every waiter wakes.
    fn reset(&mut self, now: u64) {
        self.reset = true;
        for end in &mut self.ends {
            let before = end.inbox.len();
            end.inbox.retain(|chunk| chunk.deliver_at <= now);
            if end.inbox.len() != before {
                end.inbox_bytes = end.inbox.iter().map(|c| c.data.len() - c.read).sum();
            }
            end.wake_all();
        }
    }
}

/// Every listener and connection of the world.
#[derive(Default)]
pub(crate) struct Network {
    listeners: BTreeMap<SocketAddr, Listening>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    next_port: u16,
    partitions: BTreeSet<(NodeId, NodeId)>,
}

fn ordered(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Network {
    fn ephemeral_port(&mut self) -> u16 {
        if self.next_port < EPHEMERAL_PORT_FIRST {
            self.next_port = EPHEMERAL_PORT_FIRST;
        }
        let port = self.next_port;
        self.next_port = self
            .next_port
            .checked_add(1)
            .unwrap_or(EPHEMERAL_PORT_FIRST);
        port
    }

    fn partitioned(&self, a: NodeId, b: NodeId) -> bool {
        a != b && self.partitions.contains(&ordered(a, b))
    }

    pub(crate) fn listen(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: NodeId,
        addr: SocketAddr,
    ) -> io::Result<SocketAddr> {
        let ip = if addr.ip().is_unspecified() {
            node_ip(node)
        } else {
            addr.ip()
        };
        let port = if addr.port() == 0 {
            self.ephemeral_port()
        } else {
            addr.port()
        };
        let bound = SocketAddr::new(ip, port);
        if self.listeners.contains_key(&bound) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{bound} is already bound"),
            ));
        }
        self.listeners.insert(
            bound,
            Listening {
                node,
                backlog: VecDeque::new(),
                waker: None,
            },
        );
        ctx.trace(format_args!("{node} listen {bound}"));
        Ok(bound)
    }

    pub(crate) fn unlisten(&mut self, addr: SocketAddr) {
        self.listeners.remove(&addr);
    }

    pub(crate) fn poll_accept(
        &mut self,
        ctx: &mut Ctx<'_>,
        addr: SocketAddr,
        waker: &Waker,
    ) -> Poll<io::Result<(u64, SocketAddr)>> {
        let Some(listener) = self.listeners.get_mut(&addr) else {
            return Poll::Ready(Err(io::Error::other(format!("listener {addr} was closed"))));
        };
        // Drawn only when switched on, so seeds without it draw the same
        // numbers as before it existed.
        if !listener.backlog.is_empty()
            && ctx.faults.get(Fault::AcceptError) > 0.0
            && ctx.rng.chance(ctx.faults.get(Fault::AcceptError))
        {
            ctx.counts.add(Fault::AcceptError);
            ctx.trace(format_args!("accept {addr} FAULT accept_error"));
            return Poll::Ready(Err(io::Error::other(
                "simulated EMFILE: too many open files",
            )));
        }
        match listener.backlog.pop_front() {
            Some(accepted) => Poll::Ready(Ok(accepted)),
            None => {
                listener.waker = Some(waker.clone());
                Poll::Pending
            }
        }
    }

    /// Opens a connection from `node` to `addr`; returns its id (the caller
    /// holds end 0, the listener gets end 1).
    pub(crate) fn connect(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: NodeId,
        addr: SocketAddr,
    ) -> io::Result<u64> {
        let target = match self.listeners.get(&addr) {
            Some(l) => l.node,
            None => {
                ctx.trace(format_args!("{node} connect {addr} -> refused"));
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("nothing listens on {addr}"),
                ));
            }
        };
        if self.partitioned(node, target) {
            ctx.trace(format_args!("{node} connect {addr} -> partitioned"));
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr} is unreachable (partition)"),
            ));
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let peer = SocketAddr::new(node_ip(node), self.ephemeral_port());
        self.conns.insert(
            id,
            Conn {
                ends: [End::new(node), End::new(target)],
                reset: false,
            },
        );
        let listener = self.listeners.get_mut(&addr).expect("checked above");
        listener.backlog.push_back((id, peer));
        if let Some(w) = listener.waker.take() {
            w.wake();
        }
        ctx.trace(format_args!(
            "{node} connect {addr} -> conn {id} from {peer}"
        ));
        Ok(id)
    }

    pub(crate) fn poll_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: u64,
        side: usize,
        buf: &mut [u8],
        waker: &Waker,
        timer: &mut Option<TimerKey>,
    ) -> Poll<io::Result<usize>> {
        let Some(c) = self.conns.get(&conn) else {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        };
        let (a, b) = c.nodes();
        let held = self.partitioned(a, b);
        let now = ctx.clock.now_nanos();
        let c = self.conns.get_mut(&conn).expect("looked up above");
        let reset = c.reset;
        let peer_vanished_at = c.ends[1 - side].vanished_at;
        let end = &mut c.ends[side];
        // After a reset, only bytes that had already arrived can be read.
        if reset
            && end
                .inbox
                .front()
                .is_none_or(|chunk| chunk.deliver_at > now || held)
        {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        match end.inbox.front_mut() {
            Some(chunk) if chunk.deliver_at <= now && !held => {
                let n = buf.len().min(chunk.data.len() - chunk.read);
                buf[..n].copy_from_slice(&chunk.data[chunk.read..chunk.read + n]);
                chunk.read += n;
                if chunk.read == chunk.data.len() {
                    end.inbox.pop_front();
                }
                end.inbox_bytes -= n;
                if let Some(w) = end.blocked_writer.take() {
                    w.wake();
                }
                ctx.trace(format_args!("conn {conn}.{side} read {n}"));
                Poll::Ready(Ok(n))
            }
            Some(chunk) => {
                let deliver_at = chunk.deliver_at;
                end.reader = Some(waker.clone());
                if !held {
                    // One timer per stream: replace one set for another time.
                    if let Some(old) = *timer
                        && old.0 != deliver_at
                    {
                        ctx.clock.cancel(old);
                        *timer = None;
                    }
                    ctx.clock.register(deliver_at, timer, waker);
                }
                Poll::Pending
            }
            None if end.keepalive_nanos.is_some() && peer_vanished_at.is_some() => {
                // The keepalive time covers its probes going unanswered.
                let deadline = peer_vanished_at.unwrap_or(now) + end.keepalive_nanos.unwrap_or(0);
                if now >= deadline {
                    ctx.trace(format_args!(
                        "conn {conn}.{side} keepalive: the peer is gone"
                    ));
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                end.reader = Some(waker.clone());
                if let Some(old) = *timer
                    && old.0 != deadline
                {
                    ctx.clock.cancel(old);
                    *timer = None;
                }
                ctx.clock.register(deadline, timer, waker);
                Poll::Pending
            }
            None => match end.closed_at {
                Some(at) if at <= now && !held => Poll::Ready(Ok(0)),
                Some(at) => {
                    end.reader = Some(waker.clone());
                    if !held {
                        if let Some(old) = *timer
                            && old.0 != at
                        {
                            ctx.clock.cancel(old);
                            *timer = None;
                        }
                        ctx.clock.register(at, timer, waker);
                    }
                    Poll::Pending
                }
                None => {
                    end.reader = Some(waker.clone());
                    Poll::Pending
                }
            },
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: u64,
        side: usize,
        buf: &[u8],
        waker: &Waker,
    ) -> Poll<io::Result<usize>> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        };
        if c.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let peer = &mut c.ends[1 - side];
        if let Some(at) = peer.vanished_at {
            // Nobody acknowledges: the bytes vanish, and once TCP gives up
            // retransmitting, the write fails.
            if ctx.clock.now_nanos() >= at + RETRANSMIT_TIMEOUT_NANOS {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        if peer.dropped {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if peer.inbox_bytes >= PIPE_BYTES_MAX {
            peer.blocked_writer = Some(waker.clone());
            return Poll::Pending;
        }
        let drop_now = ctx.rng.chance(ctx.faults.get(Fault::NetDrop));
        if drop_now {
            ctx.counts.add(Fault::NetDrop);
            c.reset(ctx.clock.now_nanos());
            ctx.trace(format_args!("conn {conn}.{side} write FAULT net_drop"));
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let latency_us = ctx
            .rng
            .between(0, ctx.faults.get(Fault::NetLatencyUs) as u64);
        let peer = &mut c.ends[1 - side];
        let n = buf.len().min(PIPE_BYTES_MAX - peer.inbox_bytes);
        let deliver_at = (ctx.clock.now_nanos() + latency_us * 1_000).max(peer.last_deliver_at);
        peer.last_deliver_at = deliver_at;
        peer.inbox.push_back(Chunk {
            deliver_at,
            data: buf[..n].to_vec(),
            read: 0,
        });
        peer.inbox_bytes += n;
        if let Some(w) = peer.reader.take() {
            w.wake();
        }
        ctx.trace(format_args!(
            "conn {conn}.{side} write {n} arrives {}us",
            deliver_at / 1_000
        ));
        Poll::Ready(Ok(n))
    }

    /// End `side` will write no more: the other end reads EOF once what was
    /// sent before has arrived. A node that lost power closes nothing.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>, conn: u64, side: usize) {
        let now = ctx.clock.now_nanos();
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.ends[side].vanished_at.is_some() {
                return;
            }
            let peer = &mut c.ends[1 - side];
            if peer.closed_at.is_none() {
                peer.closed_at = Some(peer.last_deliver_at.max(now));
            }
            peer.wake_all();
        }
    }

    /// End `side`'s stream was dropped.
    pub(crate) fn drop_end(&mut self, ctx: &mut Ctx<'_>, conn: u64, side: usize) {
        self.close(ctx, conn, side);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.ends[side].dropped = true;
        if c.ends.iter().all(|e| e.dropped) {
            self.conns.remove(&conn);
        }
    }

    pub(crate) fn partition(&mut self, ctx: &mut Ctx<'_>, a: NodeId, b: NodeId) {
        if a != b && self.partitions.insert(ordered(a, b)) {
            ctx.counts.add(Fault::NetPartition);
            ctx.trace(format_args!("partition {a} {b}"));
        }
    }

    pub(crate) fn heal(&mut self, ctx: &mut Ctx<'_>, a: NodeId, b: NodeId) {
        if self.partitions.remove(&ordered(a, b)) {
            ctx.trace(format_args!("heal {a} {b}"));
            for c in self.conns.values_mut() {
                for end in &mut c.ends {
                    end.wake_all();
                }
            }
        }
    }

    /// `node`'s process died: its listeners close, and its kernel closes
    /// its connections (the peer reads what was sent, then the end of the
    /// stream; its writes fail, as nobody will read them).
    pub(crate) fn kill(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        self.listeners.retain(|_, l| l.node != node);
        let ends: Vec<(u64, usize)> = self
            .conns
            .iter()
            .flat_map(|(&id, c)| {
                (0..2)
                    .filter(move |&side| c.ends[side].node == node && !c.ends[side].dropped)
                    .map(move |side| (id, side))
            })
            .collect();
        for (conn, side) in ends {
            self.close(ctx, conn, side);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.ends[side].dropped = true;
                c.ends[side].wake_all();
            }
        }
    }

    /// Turns keepalive on for end `side` of `conn`.
    pub(crate) fn set_keepalive(&mut self, conn: u64, side: usize, idle_nanos: Option<u64>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.ends[side].keepalive_nanos = idle_nanos;
        }
    }

    /// End `side` of `conn` goes silent, as if its node lost power (a
    /// client that vanished; its own process can still look at it).
    pub(crate) fn vanish(&mut self, ctx: &mut Ctx<'_>, conn: u64, side: usize) {
        let now = ctx.clock.now_nanos();
        if let Some(c) = self.conns.get_mut(&conn)
            && c.ends[side].vanished_at.is_none()
        {
            c.ends[side].vanished_at = Some(now);
            c.ends[side].wake_all();
            c.ends[1 - side].wake_all();
            ctx.trace(format_args!("conn {conn}.{side} vanishes"));
        }
    }

    /// Whether the process at the other end of `conn` from `side` closed or
    /// dropped its end (or the connection is gone).
    pub(crate) fn peer_dropped(&self, conn: u64, side: usize) -> bool {
        self.conns
            .get(&conn)
            .is_none_or(|c| c.reset || c.ends[1 - side].dropped)
    }

    /// `node` lost power: its listeners go, and its ends of connections go
    /// silent (nothing more is sent, not even a close); the peers learn
    /// only when their writes time out.
    pub(crate) fn crash(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        self.listeners.retain(|_, l| l.node != node);
        let now = ctx.clock.now_nanos();
        for c in self.conns.values_mut() {
            for side in 0..2 {
                if c.ends[side].node == node && c.ends[side].vanished_at.is_none() {
                    c.ends[side].vanished_at = Some(now);
                    // What it had sent is on the wire and still arrives;
                    // a writer blocked on its full inbox may go on, and a
                    // reader with keepalive starts its clock.
                    c.ends[side].wake_all();
                    c.ends[1 - side].wake_all();
                }
            }
        }
        ctx.trace(format_args!(
            "{node} silent: its connections say nothing more"
        ));
    }
}
