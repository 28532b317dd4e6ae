//! TCP over tokio, seen through `futures-io`.

use std::io;
use std::net::SocketAddr;

use jubilant_core::env::{Listener, Net};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::RealEnv;

/// A listening TCP socket.
#[derive(Debug)]
pub struct RealListener {
    listener: tokio::net::TcpListener,
}

impl Net for RealEnv {
    type Listener = RealListener;
    type Stream = Compat<tokio::net::TcpStream>;

    async fn listen(&self, addr: SocketAddr) -> io::Result<RealListener> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(RealListener { listener })
    }
}

impl Listener for RealListener {
    type Stream = Compat<tokio::net::TcpStream>;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = self.listener.accept().await?;
        // Requests and responses are small and latency-bound.
        stream.set_nodelay(true)?;
        Ok((stream.compat(), peer))
    }
}
