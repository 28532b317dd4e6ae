//! The network: listen, accept, connect, names, byte streams.
//!
//! Streams are `futures-io` `AsyncRead + AsyncWrite`, the runtime-neutral
//! traits, so the server's framing code reads a tokio socket in production
//! and a simulated, lossy, partitionable connection in the simulator without
//! knowing which.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures::io::{AsyncRead, AsyncWrite};

/// Opens listening sockets and connections, and resolves host names.
pub trait Net {
    /// A bound, listening socket.
    type Listener: Listener<Stream = Self::Stream>;
    /// One accepted connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Binds `addr` and listens on it. Port 0 picks a free port; ask the
    /// listener for [`Listener::local_addr`] to learn which.
    fn listen(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Opens a connection to `addr` (the client side).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The addresses `host` (a name, or an IP address in text) has, with
    /// `port`: the real resolver in production, the simulated world's own
    /// table in the simulator (so a seed decides what a name means).
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;

    /// Turns TCP keepalive on for `stream`, first probe after `idle` (zero:
    /// off), so a peer that vanished without a word is found out.
    fn set_keepalive(&self, stream: &Self::Stream, idle: std::time::Duration) -> io::Result<()>;
}

/// A listening socket.
pub trait Listener: Send + Sync + 'static {
    /// What [`Listener::accept`] yields.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The address actually bound (with the real port when 0 was asked for).
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Waits for the next connection and returns it with the peer's address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}
