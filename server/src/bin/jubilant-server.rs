//! `jubilant-server`: the Jubilant DB server on the real environment.
//!
//!     jubilant-server [--config FILE] [--data-dir DIR] [--listen ADDR:PORT]
//!                     [--resp-listen ADDR:PORT|off]
//!
//! With no file it serves `./jubilant-data` on `127.0.0.1:6767` (native
//! protocol) and `127.0.0.1:6379` (RESP, for Redis clients). It logs
//! `listening on ADDR` (and `RESP listening on ADDR`) once it accepts connections, and on SIGINT or
//! SIGTERM shuts down gracefully (no new connections, requests in flight
//! finished, the WAL made durable) and exits 0. SIGHUP reads the
//! configuration again and takes its `[[users]]` (passwords and ACLs)
//! and its `[tls]` files (for new connections) without dropping a
//! connection; a file that does not load changes nothing (the log says
//! why).
//!
//! Every flag may instead come from the environment: `JUBILANT_CONFIG`,
//! `JUBILANT_DATA_DIR`, `JUBILANT_LISTEN`, `JUBILANT_RESP_LISTEN`,
//! `JUBILANT_ADMIN_LISTEN` (a flag given on the command line wins).
//!
//! Exit codes: 0 after a clean shutdown; 1 if the server could not start
//! or stop cleanly (the log says why); 2 for a bad command line or
//! configuration.

// The binary is where the server meets the real world: it reads its
// configuration file and builds the tokio runtime and signal handlers. The
// library below it reaches the world only through `jubilant_core::env`.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use jubilant_io_real::RealEnv;
use jubilant_io_real::tls::{self, TlsFiles, TlsServer};
use jubilant_server::config::{Config, LogFormat, LogLevel};
use jubilant_server::runtime;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "jubilant-server",
    version,
    about = "Serve a Jubilant DB database over TCP"
)]
struct Cli {
    /// The TOML configuration file (every key optional; see
    /// server/jubilant.example.toml).
    #[arg(long, value_name = "FILE", env = "JUBILANT_CONFIG")]
    config: Option<PathBuf>,
    /// The database directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR", env = "JUBILANT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The address to listen on (overrides `[server] listen_address` and
    /// `port`); port 0 picks a free one.
    #[arg(long, value_name = "ADDR:PORT", env = "JUBILANT_LISTEN")]
    listen: Option<SocketAddr>,
    /// The RESP (Redis protocol) listener's address, or `off` (overrides
    /// `[resp] listen`); port 0 picks a free one.
    #[arg(long, value_name = "ADDR:PORT|off", env = "JUBILANT_RESP_LISTEN")]
    resp_listen: Option<String>,
    /// The admin HTTP listener's address (`/metrics`, `/healthz`,
    /// `/readyz`), or `off` (overrides `[admin] listen`; off by default).
    #[arg(long, value_name = "ADDR:PORT|off", env = "JUBILANT_ADMIN_LISTEN")]
    admin_listen: Option<String>,
}

fn load(cli: Cli) -> Result<Config, String> {
    let text = match &cli.config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
        None => String::new(),
    };
    let config =
        Config::from_toml(&text).and_then(|config| config.with_overrides(cli.data_dir, cli.listen));
    let config = match cli.resp_listen {
        Some(listen) => config.and_then(|config| config.with_resp_listen(&listen)),
        None => config,
    };
    match cli.admin_listen {
        Some(listen) => config.and_then(|config| config.with_admin_listen(&listen)),
        None => config,
    }
    .map_err(|error| error.to_string())
}

/// The server's TLS configuration from `[tls]`, if it is on.
fn tls_config(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let (Some(cert_file), Some(key_file)) = (&config.tls.cert_file, &config.tls.key_file) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        ca_file: config.tls.ca_file.clone(),
    };
    tls::server_config(&files)
        .map(Some)
        .map_err(|error| format!("[tls]: {error}"))
}

/// Takes the users and TLS files of the configuration again (SIGHUP).
fn reload<E: jubilant_core::env::Env>(
    cli: &Cli,
    server: &runtime::Running<E>,
    tls: Option<&Arc<TlsServer>>,
) -> Result<(), String> {
    let config = load(cli.clone())?;
    let tls_config = tls_config(&config)?;
    match (tls, tls_config) {
        (Some(tls), Some(tls_config)) => {
            server.reload_users(&config)?;
            tls.reload(tls_config);
            tracing::info!("TLS certificates reloaded");
            Ok(())
        }
        (None, None) => server.reload_users(&config),
        _ => Err("a reload cannot turn TLS on or off (restart to do that)".to_owned()),
    }
}

fn init_logging(config: &Config) {
    let level = match config.log.level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: a log file or collector gets plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Starts watching for SIGINT and SIGTERM, and returns what waits for the
/// first. Called before the server starts listening, so a signal that
/// comes as soon as it listens is a clean shutdown rather than the
/// default action (the process killed with nothing closed).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            let watched =
                |name: &'static str, signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                    match signal {
                        Ok(mut signal) => {
                            signal.recv().await;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot watch {name}; it does not stop the server cleanly");
                            std::future::pending::<()>().await;
                        }
                    }
                };
            tokio::select! {
                _ = watched("SIGTERM", terminate) => {}
                _ = watched("SIGINT", interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// SIGHUPs, one message each (none where there are no such signals).
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (send, receive) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        // One pending reload covers any number of signals.
                        let _ = send.try_send(());
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "cannot watch SIGHUP; users are not reloaded"),
        }
    }
    #[cfg(not(unix))]
    drop(send);
    receive
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(cli.clone()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("jubilant-server: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let tls = match tls_config(&config) {
        Ok(tls) => tls.map(TlsServer::new),
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let signalled = shutdown_signal();
        // Watched before listening too: SIGHUP's default action ends the
        // process.
        let mut hangups = hangups();
        let env = match &tls {
            Some(tls) => RealEnv::current().with_tls_server(Arc::clone(tls)),
            None => RealEnv::current(),
        };
        let server = match runtime::start(env, config).await {
            Ok(server) => server,
            Err(error) => {
                tracing::error!("{error}");
                return ExitCode::from(1);
            }
        };
        let mut signalled = std::pin::pin!(signalled);
        loop {
            tokio::select! {
                () = &mut signalled => break,
                Some(()) = hangups.recv() => {
                    if let Err(error) = reload(&cli, &server, tls.as_ref()) {
                        tracing::error!("SIGHUP: not reloaded: {error}");
                    }
                }
            }
        }
        tracing::info!("signal received: shutting down");
        match server.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error}");
                ExitCode::from(1)
            }
        }
    })
}
