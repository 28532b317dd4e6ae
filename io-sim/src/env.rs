//! [`SimEnv`]: the engine's environment traits, implemented over a world.
//!
//! Invariant kept here: every file operation takes simulated time (a random
//! latency, or at least a yield to the scheduler) before it acts, so
//! concurrent tasks interleave around every IO, and it acts atomically at
//! that moment, when its faults are drawn.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::io::{AsyncRead, AsyncWrite};
use jubilant_core::env::{Clock, File, Fs, Listener, MonoTime, Net, OpenMode, Spawn};

use crate::disk::Handle;
use crate::faults::Fault;
use crate::node::NodeId;
use crate::shared::Shared;
use crate::time::{Sleep, TimerKey, YieldNow};
use jubilant_core::mutex::lock;

/// The environment seen by code running on one node of a world.
#[derive(Clone)]
pub struct SimEnv {
    shared: Arc<Shared>,
    node: NodeId,
}

impl SimEnv {
    pub(crate) fn new(shared: Arc<Shared>, node: NodeId) -> Self {
        SimEnv { shared, node }
    }

    /// The node this environment belongs to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// How often each fault has been injected in this world so far (for
    /// workloads whose oracle must know whether data could have been
    /// damaged).
    pub fn fault_counts(&self) -> crate::faults::FaultCounts {
        lock(&self.shared.state).counts.clone()
    }

    /// A fingerprint of every file under `dir` as reads would see it (names
    /// and bytes), for oracles that demand an operation changed nothing.
    /// Takes no simulated time and injects no fault.
    pub fn files_fingerprint(&self, dir: &Path) -> u64 {
        self.shared
            .with_disk(self.node, |disk, _| disk.fingerprint(dir))
    }

    /// Whether `path` names a file now (as reads see it), for oracles.
    /// Takes no simulated time and injects no fault.
    pub fn file_exists(&self, path: &Path) -> bool {
        self.shared
            .with_disk(self.node, |disk, _| disk.file_exists(path))
    }

    /// Adds a line to the world's trace, tagged with this node.
    pub fn trace(&self, args: std::fmt::Arguments<'_>) {
        let node = self.node;
        self.shared.trace(format_args!("{node} {args}"));
    }

    /// Opens a connection from this node to `addr` (the client side of the
    /// network, which the engine's traits do not need).
    pub fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<SimStream>> + Send + use<> {
        let env = self.clone();
        async move {
            env.net_delay().await;
            let conn = env
                .shared
                .with_net(|net, ctx| net.connect(ctx, env.node, addr))?;
            Ok(SimStream {
                shared: Arc::clone(&env.shared),
                conn,
                side: 0,
                timer: None,
            })
        }
    }

    /// Waits a random disk latency (or yields, if it draws zero).
    async fn io_delay(&self) {
        self.random_delay(Fault::IoLatencyUs).await;
    }

    async fn net_delay(&self) {
        self.random_delay(Fault::NetLatencyUs).await;
    }

    /// Waits up to the latency bound `knob` sets, drawn from the RNG of the
    /// subsystem the knob belongs to.
    async fn random_delay(&self, knob: Fault) {
        let us = {
            let mut state = lock(&self.shared.state);
            let max_us = state.faults.get(knob) as u64;
            let rng = if knob == Fault::NetLatencyUs {
                &mut state.net_rng
            } else {
                &mut state.disk_rng
            };
            rng.between(0, max_us)
        };
        self.delay(us).await;
    }

    async fn delay(&self, us: u64) {
        if us == 0 {
            YieldNow::new().await;
        } else {
            let deadline = self.shared.clock.now_nanos() + us * 1_000;
            Sleep::new(Arc::clone(&self.shared.clock), deadline).await;
        }
    }

    /// Runs a disk operation after its latency.
    async fn disk_op<R>(
        &self,
        op: impl FnOnce(&mut crate::disk::Disk, &mut crate::disk::Ctx<'_>) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_delay().await;
        self.shared.with_disk(self.node, op)
    }
}

impl Fs for SimEnv {
    type File = SimFile;
    type DirLock = SimDirLock;

    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
    ) -> impl Future<Output = io::Result<SimFile>> + Send {
        let path = path.to_path_buf();
        async move {
            let create = mode == OpenMode::CreateNew;
            let handle = self
                .disk_op(|disk, ctx| disk.open(ctx, &path, create))
                .await?;
            Ok(SimFile {
                env: self.clone(),
                handle,
            })
        }
    }

    fn create_dir_all(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let dir = dir.to_path_buf();
        async move {
            self.disk_op(|disk, ctx| disk.create_dir_all(ctx, &dir))
                .await
        }
    }

    fn list(&self, dir: &Path) -> impl Future<Output = io::Result<Vec<String>>> + Send {
        let dir = dir.to_path_buf();
        async move { self.disk_op(|disk, ctx| disk.list(ctx, &dir)).await }
    }

    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        async move { self.disk_op(|disk, ctx| disk.rename(ctx, &from, &to)).await }
    }

    fn remove(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let path = path.to_path_buf();
        async move { self.disk_op(|disk, ctx| disk.remove(ctx, &path)).await }
    }

    fn sync_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let dir = dir.to_path_buf();
        async move { self.disk_op(|disk, ctx| disk.sync_dir(ctx, &dir)).await }
    }

    fn lock_dir(&self, dir: &Path) -> impl Future<Output = io::Result<SimDirLock>> + Send {
        let dir = dir.to_path_buf();
        async move {
            let token = self.disk_op(|disk, ctx| disk.lock_dir(ctx, &dir)).await?;
            Ok(SimDirLock {
                env: self.clone(),
                token,
            })
        }
    }
}

/// An open file on a node's simulated disk.
pub struct SimFile {
    env: SimEnv,
    handle: Handle,
}

impl File for SimFile {
    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.env
            .disk_op(|disk, ctx| disk.read(ctx, &self.handle, offset, len))
            .await
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.env
            .disk_op(|disk, ctx| disk.write(ctx, &self.handle, offset, data))
            .await
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.env
            .disk_op(|disk, ctx| disk.sync_data(ctx, &self.handle))
            .await
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.env
            .disk_op(|disk, ctx| disk.set_len(ctx, &self.handle, len))
            .await
    }

    async fn len(&self) -> io::Result<u64> {
        self.env.disk_op(|disk, _| disk.len(&self.handle)).await
    }
}

/// A held directory lock; dropping it releases the lock.
pub struct SimDirLock {
    env: SimEnv,
    token: u64,
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let token = self.token;
        self.env
            .shared
            .with_disk(self.env.node, |disk, _| disk.unlock_dir(token));
    }
}

impl Clock for SimEnv {
    fn now_mono(&self) -> MonoTime {
        MonoTime::from_nanos(self.shared.clock.now_nanos())
    }

    fn now_wall_ms(&self) -> u64 {
        self.shared.clock.wall_ms()
    }

    fn sleep_until(&self, deadline: MonoTime) -> impl Future<Output = ()> + Send {
        Sleep::new(Arc::clone(&self.shared.clock), deadline.as_nanos())
    }
}

/// Awaits a simulated task's output.
pub struct SimJoinHandle<T> {
    output: oneshot::Receiver<T>,
}

impl<T> Future for SimJoinHandle<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.output).poll(cx) {
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            // Only a task of the same node can await it, and a node's tasks
            // all die together, so nobody is left to see this.
            Poll::Ready(Err(oneshot::Canceled)) => panic!("awaited a task that was killed"),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Spawn for SimEnv {
    type JoinHandle<T: Send + 'static> = SimJoinHandle<T>;

    fn spawn<F>(&self, name: &'static str, future: F) -> SimJoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.shared.exec.spawn(self.node, name, async move {
            // The receiver may be gone (detached): the output is dropped.
            let _ = tx.send(future.await);
        });
        SimJoinHandle { output: rx }
    }
}

impl Net for SimEnv {
    type Listener = SimListener;
    type Stream = SimStream;

    /// A peer that vanished (lost power) is found out `idle` after it went
    /// silent (the probes included): reads then fail.
    fn set_keepalive(&self, stream: &SimStream, idle: std::time::Duration) -> io::Result<()> {
        let idle = (!idle.is_zero()).then(|| u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX));
        self.shared
            .with_net(|net, _| net.set_keepalive(stream.conn, stream.side, idle));
        Ok(())
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<SimStream> {
        SimEnv::connect(self, addr).await
    }

    /// IP addresses in text are themselves; `localhost` is this node;
    /// `node-N` is node N. Any other name does not resolve.
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.net_delay().await;
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let node = match host {
            "localhost" => Some(self.node),
            name => name
                .strip_prefix("node-")
                .and_then(|n| n.parse().ok())
                .map(crate::NodeId),
        };
        match node {
            Some(node) => Ok(vec![SocketAddr::new(crate::node_ip(node), port)]),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no simulated host is called {host:?}"),
            )),
        }
    }

    async fn listen(&self, addr: SocketAddr) -> io::Result<SimListener> {
        self.net_delay().await;
        let bound = self
            .shared
            .with_net(|net, ctx| net.listen(ctx, self.node, addr))?;
        Ok(SimListener {
            shared: Arc::clone(&self.shared),
            addr: bound,
        })
    }
}

/// A listening socket on the simulated network.
pub struct SimListener {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Listener for SimListener {
    type Stream = SimStream;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    fn accept(&self) -> impl Future<Output = io::Result<(SimStream, SocketAddr)>> + Send {
        futures::future::poll_fn(move |cx| {
            let accepted = self
                .shared
                .with_net(|net, ctx| net.poll_accept(ctx, self.addr, cx.waker()));
            accepted.map_ok(|(conn, peer)| {
                (
                    SimStream {
                        shared: Arc::clone(&self.shared),
                        conn,
                        side: 1,
                        timer: None,
                    },
                    peer,
                )
            })
        })
    }
}

impl Drop for SimListener {
    fn drop(&mut self) {
        self.shared.with_net(|net, _| net.unlisten(self.addr));
    }
}

/// One end of a simulated connection.
pub struct SimStream {
    shared: Arc<Shared>,
    conn: u64,
    side: usize,
    timer: Option<TimerKey>,
}

impl SimStream {
    /// This end goes silent, as if its node lost power: the peer hears
    /// nothing more (a client that vanished, for the simulator's hostile
    /// clients; the task holding it can still ask [`SimStream::peer_dropped`]).
    pub fn vanish(&self) {
        self.shared
            .with_net(|net, ctx| net.vanish(ctx, self.conn, self.side));
    }

    /// Whether the other end's process closed or dropped its end (or the
    /// connection was reset).
    pub fn peer_dropped(&self) -> bool {
        self.shared
            .with_net(|net, _| net.peer_dropped(self.conn, self.side))
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let (conn, side, timer) = (this.conn, this.side, &mut this.timer);
        this.shared
            .with_net(|net, ctx| net.poll_read(ctx, conn, side, buf, cx.waker(), timer))
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let (conn, side) = (self.conn, self.side);
        self.shared
            .with_net(|net, ctx| net.poll_write(ctx, conn, side, buf, cx.waker()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (conn, side) = (self.conn, self.side);
        self.shared.with_net(|net, ctx| net.close(ctx, conn, side));
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            self.shared.clock.cancel(key);
        }
        let (conn, side) = (self.conn, self.side);
        self.shared
            .with_net(|net, ctx| net.drop_end(ctx, conn, side));
    }
}
