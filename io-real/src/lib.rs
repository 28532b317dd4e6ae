//! Jubilant DB's production environment: the engine's environment traits
//! (`jubilant_core::env`) over real files, the system clocks, and tokio.
//!
//! - files: positional `pread`/`pwrite` on tokio's blocking pool, so a slow
//!   disk never stalls the async workers; `fdatasync` for
//!   [`File::sync_data`](jubilant_core::env::File::sync_data); `fsync` on
//!   the directory for [`Fs::sync_dir`](jubilant_core::env::Fs::sync_dir),
//!   which the engine calls after every create, rename and remove it
//!   depends on; an exclusive `flock` on a `LOCK` file for
//!   [`Fs::lock_dir`](jubilant_core::env::Fs::lock_dir);
//! - clocks: `Instant` for the monotonic clock, `SystemTime` for the wall
//!   clock, tokio timers for sleeping;
//! - tasks: `tokio::spawn`;
//! - network: tokio TCP sockets adapted to `futures-io`, with TLS
//!   (rustls) when the environment is given a configuration
//!   ([`RealEnv::with_tls_server`], [`RealEnv::with_tls_client`]).
//!
//! This crate and `io-sim` are the only places allowed to touch the real
//! world (see `clippy.toml`).
//!
//! ```
//! use jubilant_core::env::{File, Fs, OpenMode};
//! use jubilant_io_real::RealEnv;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! runtime.block_on(async {
//!     let env = RealEnv::current();
//!     let file = env.open(&dir.path().join("hello"), OpenMode::CreateNew).await.unwrap();
//!     file.write_at(0, b"hello").await.unwrap();
//!     file.sync_data().await.unwrap();
//!     env.sync_dir(dir.path()).await.unwrap();
//!     assert_eq!(file.read_at(0, 5).await.unwrap(), b"hello");
//! });
//! ```

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "io-real is the production implementation of the environment seam: it is where real files, clocks and threads are supposed to be used"
)]

mod clock;
mod fs;
mod net;
mod spawn;
pub mod tls;

pub use fs::{RealDirLock, RealFile};
pub use net::RealListener;
pub use spawn::RealJoinHandle;
pub use tls::RealStream;

/// The production environment: a handle to a tokio runtime plus the origin
/// of the monotonic clock. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RealEnv {
    runtime: tokio::runtime::Handle,
    origin: std::time::Instant,
    /// Listeners accept TLS only.
    tls_server: Option<std::sync::Arc<tls::TlsServer>>,
    /// Connections speak TLS.
    tls_client: Option<tls::TlsClient>,
}

impl RealEnv {
    /// An environment on the given runtime.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        RealEnv {
            runtime,
            origin: std::time::Instant::now(),
            tls_server: None,
            tls_client: None,
        }
    }

    /// This environment, its listeners speaking TLS only (every one).
    pub fn with_tls_server(mut self, tls: std::sync::Arc<tls::TlsServer>) -> Self {
        self.tls_server = Some(tls);
        self
    }

    /// This environment, its connections speaking TLS.
    pub fn with_tls_client(mut self, tls: tls::TlsClient) -> Self {
        self.tls_client = Some(tls);
        self
    }

    /// An environment on the runtime the caller is running on.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn current() -> Self {
        Self::new(tokio::runtime::Handle::current())
    }
}
