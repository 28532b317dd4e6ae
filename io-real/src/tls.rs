//! TLS over the real network (design 13.3), with rustls: TLS 1.2 and 1.3
//! only, certificates and keys read from PEM files.
//!
//! The seam stays below TLS: the engine and the server see byte streams,
//! and only this crate knows that a [`RealStream`] is encrypted. A server
//! stream does its handshake lazily, on its first read or write, so a slow
//! or silent client holds its own connection (bounded by the server's
//! timeouts), never the accept loop.
//!
//! Invariants kept here:
//! - **No plaintext on a TLS listener**: a client that does not speak TLS
//!   fails its handshake and its connection ends unanswered.
//! - **A reload never breaks what is open**: [`TlsServer::reload`] swaps the
//!   configuration new connections get; open ones keep theirs.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use futures::io::{AsyncRead, AsyncWrite};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where a server's certificate, key and (for mTLS) client CA are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; with
    /// it, a client without a valid certificate is refused (mTLS).
    pub ca_file: Option<PathBuf>,
}

fn invalid(path: &Path, what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} {}: {error}", path.display()),
    )
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(path, "cannot read certificates from", error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(path, "cannot read certificates from", error))?;
    if certs.is_empty() {
        return Err(invalid(path, "no certificate in", "(expected PEM)"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|error| invalid(path, "cannot read a private key from", error))
}

fn roots(path: &Path) -> io::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|error| invalid(path, "not a CA certificate in", error))?;
    }
    Ok(roots)
}

/// ring's provider (not aws-lc-rs: a build needs no cmake); its only
/// lack is post-quantum key exchange, which neither redis-cli nor redis-py
/// offer.
#[allow(
    deprecated,
    reason = "deprecated only for lacking post-quantum key exchange"
)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS configuration from `files`.
pub fn server_config(files: &TlsFiles) -> io::Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(io::Error::other)?;
    let builder = match &files.ca_file {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|error| invalid(ca, "cannot verify clients with", error))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            certificates(&files.cert_file)?,
            private_key(&files.key_file)?,
        )
        .map_err(|error| {
            invalid(
                &files.key_file,
                "the key does not fit the certificate in",
                error,
            )
        })?;
    Ok(Arc::new(config))
}

/// A client's TLS configuration: servers must chain to `ca_file` (absent:
/// to nothing, so every server is refused; give the CA that signed the
/// server's certificate), and `identity` (certificate, key) is presented
/// when a server asks (mTLS).
pub fn client_config(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> io::Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(io::Error::other)?
        .with_root_certificates(roots(ca_file)?);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|error| invalid(key, "the key does not fit the certificate in", error))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server's TLS, reloadable: new connections get the configuration of
/// the last [`TlsServer::reload`].
#[derive(Debug)]
pub struct TlsServer {
    config: Mutex<Arc<rustls::ServerConfig>>,
}

impl TlsServer {
    /// TLS with `config`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Arc<Self> {
        Arc::new(TlsServer {
            config: Mutex::new(config),
        })
    }

    /// Takes `config` for every connection from now on.
    pub fn reload(&self, config: Arc<rustls::ServerConfig>) {
        *self
            .config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        TlsAcceptor::from(Arc::clone(&config))
    }

    /// `tcp`, to be served over TLS once its handshake is done.
    pub(crate) fn wrap(&self, tcp: TcpStream) -> RealStream {
        RealStream {
            state: State::Handshaking(Box::pin(self.acceptor().accept(tcp))),
        }
    }
}

/// A client's TLS: the configuration and the name the server's
/// certificate must carry.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// TLS with `config`, expecting a certificate for `server_name` (a DNS
    /// name or an IP address).
    pub fn new(config: Arc<rustls::ClientConfig>, server_name: &str) -> io::Result<Self> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{server_name:?} is not a server name: {error}"),
            )
        })?;
        Ok(TlsClient {
            config,
            server_name,
        })
    }

    pub(crate) async fn connect(&self, tcp: TcpStream) -> io::Result<RealStream> {
        let connector = TlsConnector::from(Arc::clone(&self.config));
        let stream = connector.connect(self.server_name.clone(), tcp).await?;
        Ok(RealStream {
            state: State::Client(Box::new(stream)),
        })
    }
}

/// A TCP stream of the real environment, plain or TLS.
pub struct RealStream {
    state: State,
}

impl std::fmt::Debug for RealStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Plain(_) => "plain",
            State::Handshaking(_) => "handshaking",
            State::Server(_) => "tls",
            State::Client(_) => "tls (client)",
            State::Failed => "failed",
        };
        f.debug_struct("RealStream").field("state", &state).finish()
    }
}

enum State {
    Plain(TcpStream),
    Handshaking(Pin<Box<tokio_rustls::Accept<TcpStream>>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// The handshake failed: every call fails.
    Failed,
}

impl RealStream {
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        RealStream {
            state: State::Plain(tcp),
        }
    }

    /// The TCP socket under it, for its options (`None` once a handshake
    /// failed).
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match &self.state {
            State::Plain(tcp) => Some(tcp),
            State::Handshaking(accept) => accept.get_ref(),
            State::Server(tls) => Some(tls.get_ref().0),
            State::Client(tls) => Some(tls.get_ref().0),
            State::Failed => None,
        }
    }

    /// Finishes the handshake if it is under way; then the stream, as
    /// tokio sees it.
    fn ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Pin<&mut (dyn TokioStream + Send)>>> {
        if let State::Handshaking(accept) = &mut self.state {
            match ready!(accept.as_mut().poll(cx)) {
                Ok(stream) => self.state = State::Server(Box::new(stream)),
                Err(error) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(error));
                }
            }
        }
        Poll::Ready(match &mut self.state {
            State::Plain(tcp) => Ok(Pin::new(tcp as &mut (dyn TokioStream + Send))),
            State::Server(tls) => Ok(Pin::new(tls.as_mut() as &mut (dyn TokioStream + Send))),
            State::Client(tls) => Ok(Pin::new(tls.as_mut() as &mut (dyn TokioStream + Send))),
            State::Handshaking(_) | State::Failed => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the TLS handshake failed",
            )),
        })
    }
}

/// What tokio's streams are: readable and writable.
trait TokioStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> TokioStream for T {}

impl AsyncRead for RealStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.ready(cx))?;
        let mut read = ReadBuf::new(buf);
        ready!(stream.poll_read(cx, &mut read))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl AsyncWrite for RealStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.ready(cx))?;
        stream.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.ready(cx))?;
        stream.poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.ready(cx))?;
        stream.poll_shutdown(cx)
    }
}
