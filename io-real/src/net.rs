//! TCP over tokio, seen through `futures-io`; TLS on it when the
//! environment is given a configuration ([`crate::tls`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use jubilant_core::env::{Listener, Net};

use crate::RealEnv;
use crate::tls::{RealStream, TlsServer};

/// A listening TCP socket.
#[derive(Debug)]
pub struct RealListener {
    listener: tokio::net::TcpListener,
    /// Accepted streams speak TLS.
    tls: Option<Arc<TlsServer>>,
}

impl Net for RealEnv {
    type Listener = RealListener;
    type Stream = RealStream;

    async fn listen(&self, addr: SocketAddr) -> io::Result<RealListener> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(RealListener {
            listener,
            tls: self.tls_server.clone(),
        })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        // Requests and responses are small and latency-bound.
        stream.set_nodelay(true)?;
        match &self.tls_client {
            Some(tls) => tls.connect(stream).await,
            None => Ok(RealStream::plain(stream)),
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }

    fn set_keepalive(&self, stream: &Self::Stream, idle: std::time::Duration) -> io::Result<()> {
        let Some(tcp) = stream.tcp() else {
            // Its handshake failed: it is closing.
            return Ok(());
        };
        let socket = socket2::SockRef::from(tcp);
        if idle.is_zero() {
            return socket.set_keepalive(false);
        }
        // The kernel counts whole seconds, at least one.
        let idle_secs = idle.as_secs().max(1);
        // Then a probe every 10 s, 6 unanswered ones: a vanished peer is
        // dropped about a minute after the idle time.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(std::time::Duration::from_secs(idle_secs))
            .with_interval(std::time::Duration::from_secs(10))
            .with_retries(6);
        socket.set_tcp_keepalive(&keepalive)
    }
}

impl Listener for RealListener {
    type Stream = RealStream;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = self.listener.accept().await?;
        // Requests and responses are small and latency-bound.
        stream.set_nodelay(true)?;
        // The handshake happens on the stream's first read or write, not
        // here: a slow client never holds the accept loop.
        let stream = match &self.tls {
            Some(tls) => tls.wrap(stream),
            None => RealStream::plain(stream),
        };
        Ok((stream, peer))
    }
}
