//! The server at run time: the database, the listener, one task per
//! connection, one task per request (pipelining), all on the environment's
//! spawner, so the simulator runs this very code.
//!
//! Invariants kept here:
//! - **Every request gets exactly one response, with its id**, unless its
//!   connection is gone. A payload that is not a valid request is answered
//!   with a typed error (id 0 when no id could be read). A stream whose
//!   framing is lost is told why with id 0 (`FrameTooLarge` for a length
//!   over the limit, `InvalidRequest` for a zero length, `FrameTimeout` for
//!   a frame that did not arrive whole in time) after the responses
//!   already due, and closed.
//! - **Memory is bounded by the limits, not by the clients** (accounting,
//!   and docs/design.md 9.3). A connection stops reading while it has
//!   `max_in_flight_per_connection` requests in flight or
//!   `connection_queue_bytes_max` response bytes unwritten; every
//!   connection does while the server has `max_in_flight_total` or
//!   `queued_bytes_total_max`: the kernel's socket buffers then push back
//!   on the clients (TCP backpressure). A request is in flight until its
//!   response is written; no answer is built past `response_bytes_max`.
//! - **Answers within seconds.** A connection past `max_connections` is
//!   accepted, told `TooManyConnections` and closed; a frame must arrive
//!   within `frame_read_timeout_ms`; an idle connection is closed after
//!   `idle_timeout_ms` if set.
//! - **Shutdown loses nothing acknowledged, and ends.** It stops accepting
//!   and reading, lets every request in flight finish and its response be
//!   written, for at most `shutdown_timeout_ms`; then drops the
//!   connections whose peers do not read, and closes the database (a
//!   checkpoint: the WAL is durable) either way.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::db::{Db, DbError};
use jubilant_core::env::{Env, Listener, MonoTime, Net};

use crate::accounting::{ConnCounters, InFlight, Outgoing, ServerCounters};
use crate::audit::{Event, Via, Who};
use crate::config::Config;
use crate::frame::{FrameError, FrameReader, encode_frame, write_frames};
use crate::info::{self, ServerFacts};
use crate::wire::{self, ErrorCode, ErrorReply, Request, RequestLimits, Response};

/// Bytes read from a socket at a time.
pub(crate) const READ_CHUNK_BYTES: usize = 64 * 1024;
/// How long a reader waits before looking again at a full server.
/// Runs a request's `task` on the connection's own task as far as it goes
/// without waiting (run to completion, design 11.4): a read that finds its
/// keys unlocked and its data in memory is decoded, executed and answered
/// without a task of its own or a hand-off to another thread. What must
/// wait (locks another transaction holds, a page or value read from disk,
/// a commit's turn and durability) goes on in a task of its own, `name`.
/// Polling once more elsewhere is safe: every future re-registers its
/// waker when polled.
pub(crate) fn run_or_spawn<E: Env>(
    env: &E,
    name: &'static str,
    task: impl Future<Output = ()> + Send + 'static,
) {
    let mut task = Box::pin(task);
    if futures::FutureExt::now_or_never(task.as_mut()).is_none() {
        drop(env.spawn(name, task));
    }
}

pub(crate) const BACKPRESSURE_POLL: Duration = Duration::from_millis(1);
/// How often an idle reader or a blocked writer looks at the clock, the
/// timeouts and shutdown.
const TICK: Duration = Duration::from_millis(50);
/// How long a refused connection gets to take its `TooManyConnections`.
const REJECT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a refused connection's input is drained after its refusal is
/// written, so closing it does not reset it before it reads why.
const REJECT_LINGER: Duration = Duration::from_millis(20);
/// Refused connections being told so at once; past it, they are closed
/// without a word (a flood must not cost a task each).
const REJECTING_MAX: u64 = 64;

/// A connection reader's timeouts, and how often it looks at the clock:
/// often enough for either timeout to end within a quarter more than
/// itself. Both listeners' readers use it.
pub(crate) struct ReaderClock {
    /// A request must arrive whole within this.
    pub(crate) frame_timeout: Duration,
    /// A connection with nothing in flight is closed after this, if set.
    pub(crate) idle_timeout: Option<Duration>,
    /// How long a reader waits on the socket before it looks again.
    pub(crate) tick: Duration,
}

impl ReaderClock {
    pub(crate) fn new(config: &Config) -> Self {
        let frame_timeout = Duration::from_millis(config.server.frame_read_timeout_ms);
        let idle_timeout = (config.server.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(config.server.idle_timeout_ms));
        let tick = [Some(frame_timeout), idle_timeout]
            .into_iter()
            .flatten()
            .map(|timeout| timeout / 4)
            .fold(TICK, Duration::min)
            .max(Duration::from_micros(500));
        ReaderClock {
            frame_timeout,
            idle_timeout,
            tick,
        }
    }
}

/// Whether sabotage switch `switch` is on in `config` (never without the
/// `sabotage` feature).
#[cfg_attr(not(feature = "sabotage"), allow(unused_variables))]
pub(crate) fn sabotaged(config: &Config, switch: jubilant_core::sabotage::Sabotage) -> bool {
    #[cfg(feature = "sabotage")]
    let on = config.sabotage == switch;
    #[cfg(not(feature = "sabotage"))]
    let on = false;
    on
}

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database would not open (another server holds it, damage, ...).
    #[error(
        "cannot open the database in {dir}: {source}{}",
        if source.is_corruption() {
            "; nothing was changed: `jubectl repair` reports what it can repair"
        } else {
            ""
        }
    )]
    Open {
        /// The data directory.
        dir: String,
        /// Why.
        source: DbError,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The RESP listener's address could not be bound.
    #[error(
        "cannot listen for RESP (Redis's protocol) on {addr}: {source}; if Redis runs there, give \
         `--resp-listen ADDR:PORT` (`[resp] listen`) another port, or `--resp-listen off`"
    )]
    ListenResp {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin HTTP listener's address could not be bound.
    #[error(
        "cannot listen for admin HTTP on {addr}: {source}; give `--admin-listen ADDR:PORT` \
         (`[admin] listen`) another port, or `--admin-listen off`"
    )]
    ListenAdmin {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Closing the database at shutdown failed.
    #[error("closing the database failed: {0}")]
    Close(DbError),
}

pub(crate) struct Shared<E: Env> {
    pub(crate) env: E,
    pub(crate) db: Db<E>,
    pub(crate) config: Config,
    started: MonoTime,
    pub(crate) counters: Arc<ServerCounters>,
    /// The RESP listener's shared state.
    pub(crate) resp: crate::resp::RespState,
    /// The RESP listener's port (0: off).
    resp_port: u16,
    /// Refused connections being told so now.
    rejecting: AtomicU64,
    pub(crate) stopping: AtomicBool,
    /// Past the shutdown deadline: writers stop waiting for their peers.
    abandoning: AtomicBool,
    /// Request and commit latencies (`/metrics`).
    pub(crate) latencies: crate::metrics::Latencies,
    /// The server stopped: the admin listener closes.
    pub(crate) admin_done: AtomicBool,
    /// The online backup, if one runs.
    pub(crate) backup: crate::backup::BackupSlot<E>,
    /// Users and authentication.
    pub(crate) auth: Arc<crate::auth::Auth>,
    /// The audit log (off unless `[audit] file` is set).
    pub(crate) audit: crate::audit::Audit,
    /// Its writer, awaited at shutdown: a restarted server's writer must
    /// not append beside the old one.
    audit_writer: Option<E::JoinHandle<()>>,
}

impl<E: Env> Shared<E> {
    /// The server's health: the database's, and whether it is stopping.
    pub(crate) fn health(&self) -> wire::ServerHealth {
        let db = self.db.health();
        let status = if db.failure.is_some() {
            wire::HealthStatus::Failed
        } else if self.stopping.load(Ordering::Acquire) {
            wire::HealthStatus::ShuttingDown
        } else {
            wire::HealthStatus::Ok
        };
        wire::ServerHealth {
            status,
            reason: db.failure.unwrap_or_default(),
            durable_lsn_lag: db.durable_lsn_lag,
            checkpoint_age_ms: db
                .since_checkpoint
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            wal_bytes_since_checkpoint: db.wal_bytes_since_checkpoint,
        }
    }

    pub(crate) fn facts(&self) -> ServerFacts {
        let counters = &self.counters;
        ServerFacts {
            health: self.health(),
            uptime_ms: u64::try_from(
                self.env
                    .now_mono()
                    .saturating_since(self.started)
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            connections: ServerCounters::get(&counters.connections),
            in_flight: ServerCounters::get(&counters.in_flight),
            queued_bytes: counters.answers.held(),
            request_bytes: counters.requests.held(),
            connections_rejected: ServerCounters::get(&counters.connections_rejected),
            frame_timeouts: ServerCounters::get(&counters.frame_timeouts),
            idle_timeouts: ServerCounters::get(&counters.idle_timeouts),
            frames_too_large: ServerCounters::get(&counters.frames_too_large),
            responses_too_large: ServerCounters::get(&counters.responses_too_large),
            shutdown_dropped: ServerCounters::get(&counters.shutdown_dropped),
            limits: info::ServerLimits::from(&self.config),
            resp_port: self.resp_port,
            resp_connections: ServerCounters::get(&self.resp.connections),
            resp_commands: ServerCounters::get(&self.resp.commands),
            resp_protocol_errors: ServerCounters::get(&self.resp.protocol_errors),
            backup: self.backup.facts(),
            auth: self.auth.facts(),
            audit_written: self.audit.counts().0,
            audit_dropped: self.audit.counts().1,
        }
    }

    /// Whether a connection with `conn`'s counts must read nothing more for
    /// now. A server answer budget full of *other* connections' answers
    /// does not stop it (their unread answers are theirs, or a few clients
    /// that do not read could stop the server reading anyone, and a client
    /// that vanished meanwhile would go unnoticed: server seed 87); its
    /// transactions then fail with `Busy` (the result meter) rather than
    /// add to the budget.
    /// Records an audit event about `who` (nothing when auditing is off).
    pub(crate) fn audit(
        &self,
        event: crate::audit::Event,
        who: crate::audit::Who<'_>,
        command: (&'static str, Option<&[u8]>),
        outcome: impl Into<String>,
    ) {
        self.audit
            .event(self.env.now_wall_ms(), event, who, command, outcome);
    }

    pub(crate) fn must_wait(&self, conn: &ConnCounters) -> bool {
        let server = &self.config.server;
        let counters = &self.counters;
        ServerCounters::get(&conn.in_flight) >= server.max_in_flight_per_connection as u64
            || conn.answers.is_full()
            || ServerCounters::get(&counters.in_flight) >= server.max_in_flight_total as u64
            || (counters.answers.is_full() && conn.answers.held() > 0)
    }
}

/// A running server.
pub struct Running<E: Env> {
    local_addr: SocketAddr,
    resp_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    counters: Arc<ServerCounters>,
    auth: Arc<crate::auth::Auth>,
    stop: oneshot::Sender<()>,
    task: E::JoinHandle<Result<(), ServerError>>,
}

impl<E: Env> Running<E> {
    /// Takes `config`'s `[[users]]` (their passwords and ACLs) in place of
    /// the running ones (SIGHUP): every connection's next command is
    /// judged by them, and no connection is dropped. The rest of `config`
    /// is not applied (it needs a restart). Refused, changing nothing, if
    /// `config` is invalid or would turn authentication on or off.
    pub fn reload_users(&self, config: &Config) -> Result<(), String> {
        config.validate().map_err(|error| error.to_string())?;
        self.auth.reload(&config.users)?;
        tracing::info!(users = config.users.len(), "users reloaded");
        Ok(())
    }

    /// The address the server listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the RESP listener listens on, if it is on.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp_addr
    }

    /// The address the admin HTTP listener listens on, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// What the server holds and has counted (INFO `# Server`).
    pub fn counters(&self) -> &Arc<ServerCounters> {
        &self.counters
    }

    /// Shuts down gracefully: stop accepting and reading, finish every
    /// request in flight, close the database.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        drop(self.stop);
        self.task.await
    }
}

/// Opens the database, binds the listener and starts serving.
pub async fn start<E: Env>(env: E, config: Config) -> Result<Running<E>, ServerError> {
    let db = Db::open(env.clone(), &config.data_dir, config.db_options())
        .await
        .map_err(|source| ServerError::Open {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
    serve_db(env, config, db).await
}

/// Binds the listener and starts serving `db`, opened by the caller (the
/// simulator opens it with a commit observer and checks its recovery
/// first). `config`'s storage keys are not applied to it again.
pub async fn serve_db<E: Env>(
    env: E,
    config: Config,
    db: Db<E>,
) -> Result<Running<E>, ServerError> {
    let addr = config.listen();
    let listener = env
        .listen(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen { addr, source })?;
    tracing::info!(%local_addr, data_dir = %config.data_dir.display(), "listening on {local_addr}");
    if config.users.is_empty() && !local_addr.ip().is_loopback() {
        tracing::warn!(
            %local_addr,
            "no [[users]] are configured: anyone who can reach this address can read and write everything"
        );
    }
    let config_users = config.users.clone();
    // Broken on purpose: ACLs skip a request's second key.
    let skip_second_key = sabotaged(
        &config,
        jubilant_core::sabotage::Sabotage::AclSecondKeyUnchecked,
    );
    let resp_listener = bind_optional(
        &env,
        config.resp_listen(),
        "RESP listening on",
        |addr, source| ServerError::ListenResp { addr, source },
    )
    .await?;
    let resp_addr = resp_listener.as_ref().map(|(_, addr)| *addr);
    let admin_listener = bind_optional(
        &env,
        config.admin_listen(),
        "admin HTTP listening on",
        |addr, source| ServerError::ListenAdmin { addr, source },
    )
    .await?;
    let admin_addr = admin_listener.as_ref().map(|(_, addr)| *addr);
    // Broken on purpose: answers queue without bound.
    let unbounded = sabotaged(
        &config,
        jubilant_core::sabotage::Sabotage::UnboundedAnswerQueue,
    );
    let answer_bytes_max = if unbounded {
        u64::MAX
    } else {
        config.server.queued_bytes_total_max
    };
    let request_bytes_max = config.server.request_bytes_total_max;
    // Broken on purpose: the audit log is never rotated.
    let unrotated = sabotaged(&config, jubilant_core::sabotage::Sabotage::AuditUnrotated);
    let (audit, audit_writer) = crate::audit::Audit::start(&env, &config.audit, unrotated);
    let audit_writer = audit_writer.map(|writer| env.spawn("audit-writer", writer));
    let shared = Arc::new(Shared {
        started: env.now_mono(),
        env: env.clone(),
        db,
        config,
        counters: Arc::new(ServerCounters::new(answer_bytes_max, request_bytes_max)),
        resp: crate::resp::RespState::default(),
        resp_port: resp_addr.map_or(0, |addr| addr.port()),
        rejecting: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        abandoning: AtomicBool::new(false),
        latencies: crate::metrics::Latencies::default(),
        admin_done: AtomicBool::new(false),
        backup: crate::backup::BackupSlot::new(),
        auth: Arc::new(crate::auth::Auth::new(&config_users, skip_second_key)),
        audit,
        audit_writer,
    });
    let admin = admin_listener.map(|(listener, _)| {
        env.spawn("admin", crate::admin::serve(Arc::clone(&shared), listener))
    });
    let (stop, stopped) = oneshot::channel();
    let counters = Arc::clone(&shared.counters);
    let auth = Arc::clone(&shared.auth);
    let task = env.spawn(
        "server",
        serve(
            shared,
            listener,
            resp_listener.map(|(listener, _)| listener),
            admin,
            stopped,
        ),
    );
    Ok(Running {
        local_addr,
        resp_addr,
        admin_addr,
        counters,
        auth,
        stop,
        task,
    })
}

/// Binds a listener that may be off (`addr` `None`), and logs
/// `{what} ADDR` once it is bound; `error` names the listener on failure.
async fn bind_optional<E: Env>(
    env: &E,
    addr: Option<SocketAddr>,
    what: &str,
    error: impl Fn(SocketAddr, std::io::Error) -> ServerError,
) -> Result<Option<(<E as Net>::Listener, SocketAddr)>, ServerError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = env
        .listen(addr)
        .await
        .map_err(|source| error(addr, source))?;
    let bound = listener
        .local_addr()
        .map_err(|source| error(addr, source))?;
    tracing::info!(%bound, "{what} {bound}");
    Ok(Some((listener, bound)))
}

async fn serve<E: Env>(
    shared: Arc<Shared<E>>,
    listener: <E as Net>::Listener,
    resp_listener: Option<<E as Net>::Listener>,
    admin: Option<E::JoinHandle<()>>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<(), ServerError> {
    let checkpoints = (shared.config.storage.checkpoint_interval_ms > 0).then(|| {
        shared
            .env
            .spawn("checkpoint-timer", checkpoint_timer(Arc::clone(&shared)))
    });
    let counters = Arc::clone(&shared.counters);
    loop {
        let native = pin!(listener.accept());
        let resp = pin!(async {
            match &resp_listener {
                Some(listener) => listener.accept().await,
                None => futures::future::pending().await,
            }
        });
        let (accepted, is_resp) = match select(select(native, resp), &mut stopped).await {
            Either::Left((Either::Left((accepted, _)), _)) => (accepted, false),
            Either::Left((Either::Right((accepted, _)), _)) => (accepted, true),
            Either::Right(_) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if ServerCounters::get(&counters.connections)
                    >= shared.config.server.max_connections as u64
                {
                    ServerCounters::count(&counters.connections_rejected);
                    tracing::debug!(%peer, "connection refused: at max_connections");
                    if shared.rejecting.load(Ordering::Acquire) < REJECTING_MAX {
                        shared.rejecting.fetch_add(1, Ordering::AcqRel);
                        drop(
                            shared
                                .env
                                .spawn("reject", reject(Arc::clone(&shared), stream, is_resp)),
                        );
                    }
                    continue;
                }
                let keepalive = if sabotaged(
                    &shared.config,
                    jubilant_core::sabotage::Sabotage::NoKeepalive,
                ) {
                    0
                } else {
                    shared.config.server.tcp_keepalive_ms
                };
                if let Err(error) = shared
                    .env
                    .set_keepalive(&stream, Duration::from_millis(keepalive))
                {
                    tracing::debug!(%peer, %error, "TCP keepalive could not be set");
                }
                counters.connections.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(%peer, is_resp, "connection opened");
                // Detached: shutdown waits on the connection count instead,
                // so no handle piles up over the server's life.
                if is_resp {
                    let task = crate::resp::connection(Arc::clone(&shared), stream, peer);
                    drop(shared.env.spawn("resp-connection", task));
                } else {
                    let task = connection(Arc::clone(&shared), stream, peer);
                    drop(shared.env.spawn("connection", task));
                }
            }
            Err(error) => {
                // Out of descriptors (EMFILE) and the like: the backlog
                // keeps the client until a slot frees.
                tracing::warn!(%error, "accept failed");
                shared.env.sleep(BACKPRESSURE_POLL).await;
            }
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    shared.stopping.store(true, Ordering::Release);
    drop(listener);
    drop(resp_listener);
    let deadline =
        shared.env.now_mono() + Duration::from_millis(shared.config.server.shutdown_timeout_ms);
    while ServerCounters::get(&counters.connections) > 0 {
        if !shared.abandoning.load(Ordering::Acquire)
            && shared.env.now_mono() >= deadline
            && !sabotaged(
                &shared.config,
                jubilant_core::sabotage::Sabotage::NoShutdownDeadline,
            )
        {
            tracing::warn!(
                connections = ServerCounters::get(&counters.connections),
                "shutdown deadline passed: dropping connections whose peers do not read"
            );
            shared.abandoning.store(true, Ordering::Release);
        }
        shared.env.sleep(BACKPRESSURE_POLL).await;
    }
    if let Some(task) = checkpoints {
        task.await;
    }
    // The admin listener answers (`/readyz`: 503) until the connections
    // are done.
    shared.admin_done.store(true, Ordering::Release);
    if let Some(task) = admin {
        task.await;
    }
    // Connection and request tasks drop their handles on the state just
    // after they count themselves out.
    let mut pending = shared;
    // A backup still running ends: its client hears `NoSuchBackup`.
    pending.backup.clear();
    let shared = loop {
        match Arc::try_unwrap(pending) {
            Ok(shared) => break shared,
            Err(again) => {
                pending = again;
                pending.env.sleep(BACKPRESSURE_POLL).await;
            }
        }
    };
    let closed = shared.db.close().await.map_err(ServerError::Close);
    // The audit writer writes what is queued, then ends.
    let Shared {
        audit,
        audit_writer,
        ..
    } = shared;
    drop(audit);
    if let Some(writer) = audit_writer {
        writer.await;
    }
    closed?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Tells a connection past `max_connections` why it is closed, if it takes
/// the bytes within a second.
async fn reject<E: Env>(shared: Arc<Shared<E>>, stream: E::Stream, is_resp: bool) {
    let message = format!(
        "the server serves at most {} connections (server.max_connections); try again later",
        shared.config.server.max_connections
    );
    let frame = if is_resp {
        // Redis's own words, which clients recognise.
        b"-ERR max number of clients reached\r\n".to_vec()
    } else {
        let reply = ErrorReply::new(ErrorCode::TooManyConnections, message);
        encode_frame(&wire::encode_response(0, &Response::Error(reply)))
    };
    let (mut reader, mut writer) = stream.split();
    let write =
        pin!(async move { writer.write_all(&frame).await.is_ok() && writer.close().await.is_ok() });
    let timeout = pin!(shared.env.sleep(REJECT_WRITE_TIMEOUT));
    let written = matches!(select(write, timeout).await, Either::Left((true, _)));
    // The slot goes now: lingering below is short and costs no write.
    shared.rejecting.fetch_sub(1, Ordering::AcqRel);
    if written {
        // What the client sent meanwhile is read and dropped for a moment:
        // a socket closed with unread bytes is reset, and the reset can
        // overtake the refusal, so the client would see `connection reset`
        // instead of why.
        let drain = pin!(async move {
            let mut sink = [0u8; 512];
            while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let linger = pin!(shared.env.sleep(REJECT_LINGER));
        select(drain, linger).await;
    }
}

/// Checkpoints every `checkpoint_interval_ms` until shutdown.
async fn checkpoint_timer<E: Env>(shared: Arc<Shared<E>>) {
    let interval = Duration::from_millis(shared.config.storage.checkpoint_interval_ms);
    let step = interval.min(Duration::from_millis(100));
    let mut waited = Duration::ZERO;
    while !shared.stopping.load(Ordering::Acquire) {
        shared.env.sleep(step).await;
        waited += step;
        if waited < interval {
            continue;
        }
        waited = Duration::ZERO;
        if let Err(error) = shared.db.checkpoint().await {
            tracing::warn!(%error, "timed checkpoint failed");
        } else {
            tracing::debug!("timed checkpoint");
        }
    }
}

/// `user` on the native connection from `peer`, for the audit log.
fn native(user: &str, peer: SocketAddr) -> Who<'_> {
    Who {
        user,
        client: peer,
        listener: Via::Native,
    }
}

/// Serves one connection until the peer closes it, its framing is lost,
/// a timeout ends it, or the server stops.
async fn connection<E: Env>(shared: Arc<Shared<E>>, stream: E::Stream, peer: SocketAddr) {
    let (mut reader, writer) = stream.split();
    let counters = Arc::clone(&shared.counters);
    let unbounded = sabotaged(
        &shared.config,
        jubilant_core::sabotage::Sabotage::UnboundedAnswerQueue,
    );
    let conn = Arc::new(ConnCounters::new(if unbounded {
        u64::MAX
    } else {
        shared.config.server.connection_queue_bytes_max
    }));
    let (responses, outgoing) = mpsc::unbounded::<Outgoing>();
    let writing = shared.env.spawn(
        "connection-writer",
        write_responses(Arc::clone(&shared), Arc::clone(&conn), writer, outgoing),
    );
    let send = |id: u64, response: &Response, request: Option<InFlight>| {
        let frame = encode_frame(&wire::encode_response(id, response));
        // A send fails only once the writer is gone (the peer left): the
        // frame is dropped, and with it its accounting.
        let _ = responses.unbounded_send(Outgoing::new(frame, &counters, &conn, request));
    };
    let limits = RequestLimits {
        keys_per_txn_max: shared.config.limits.keys_per_txn_max,
        ops_per_txn_max: shared.config.limits.ops_per_txn_max,
    };
    let ReaderClock {
        frame_timeout,
        idle_timeout,
        tick,
    } = ReaderClock::new(&shared.config);
    let mut frames = FrameReader::new(shared.config.limits.frame_bytes_max);
    // With no users configured, every connection may do everything.
    // Broken on purpose (tests only): so may every connection anyway.
    let open = !shared.auth.required()
        || sabotaged(
            &shared.config,
            jubilant_core::sabotage::Sabotage::AuthSkipped,
        );
    // The user the connection authenticated as.
    let mut user: Option<String> = None;
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    // When the frame now arriving began to (it must end in time), and when
    // the last request arrived (for the idle timeout).
    let mut frame_began: Option<MonoTime> = None;
    let mut last_request = shared.env.now_mono();
    // Request bytes reserved for the frame now arriving (its announced
    // length), handed to its request once it is whole.
    let mut reserved = 0u64;
    'reading: loop {
        // Requests already read, one at a time while there is room: a
        // read may bring hundreds of pipelined frames.
        while !shared.must_wait(&conn) {
            if conn.peer_gone() {
                break 'reading;
            }
            let payload = match frames.next_frame() {
                Ok(Some(payload)) => payload,
                Ok(None) => break,
                Err(error) => {
                    tracing::info!(%peer, %error, "unreadable frame; closing the connection");
                    let code = match error {
                        FrameError::TooLarge { .. } => {
                            ServerCounters::count(&counters.frames_too_large);
                            ErrorCode::FrameTooLarge
                        }
                        FrameError::Empty => ErrorCode::InvalidRequest,
                    };
                    let message = format!("{error}; closing the connection");
                    send(0, &Response::Error(ErrorReply::new(code, message)), None);
                    break 'reading;
                }
            };
            // A whole frame: the next one's clock starts with its bytes.
            let now = shared.env.now_mono();
            last_request = now;
            frame_began = (frames.pending() > 0).then_some(now);
            // A frame that came whole in one read was never reserved: it
            // is taken now (at most one read's worth past the bound).
            let request_bytes = if reserved > 0 {
                std::mem::take(&mut reserved)
            } else {
                let bytes = payload.len() as u64;
                counters.requests.take(bytes);
                bytes
            };
            let (id, decoded) = wire::decode_request(&payload, &limits);
            drop(payload);
            match decoded {
                Err(error) => {
                    counters.requests.give_back(request_bytes);
                    tracing::debug!(%peer, id, code = ?error.code, message = %error.message, "invalid request");
                    send(id, &Response::Error(error), None);
                }
                Ok(Request::Auth {
                    user: name,
                    password,
                }) => {
                    // Here, in order: the requests after it are checked
                    // against its outcome.
                    counters.requests.give_back(request_bytes);
                    let response = if !shared.auth.required() {
                        Response::Error(ErrorReply::new(
                            ErrorCode::WrongPass,
                            "no users are configured: authentication is off".to_owned(),
                        ))
                    } else if shared
                        .auth
                        .authenticate(&shared.env, peer.ip(), (&name, &password), &shared.stopping)
                        .await
                    {
                        tracing::info!(%peer, user = %name, "authenticated");
                        shared.audit(Event::AuthOk, native(&name, peer), ("auth", None), "ok");
                        user = Some(name.clone());
                        Response::AuthOk(name)
                    } else {
                        tracing::info!(%peer, user = %name, "authentication failed");
                        let outcome = "invalid username-password pair or user is disabled";
                        shared.audit(
                            Event::AuthFailed,
                            native(&name, peer),
                            ("auth", None),
                            outcome,
                        );
                        Response::Error(ErrorReply::new(
                            ErrorCode::WrongPass,
                            "invalid username-password pair or user is disabled".to_owned(),
                        ))
                    };
                    send(id, &response, None);
                }
                Ok(request) => {
                    // The user's rules as they are now: a reload may have
                    // changed them, or removed the user.
                    let acl = user.as_deref().and_then(|name| shared.auth.acl(name));
                    if acl.is_none() {
                        user = None;
                    }
                    let refused = if !open && acl.is_none() && !matches!(request, Request::Ping) {
                        shared.auth.refused();
                        Some(ErrorReply::new(
                            ErrorCode::AuthRequired,
                            "authentication required: send Auth first (jubectl --user/--password)",
                        ))
                    } else if let Some(acl) = acl.as_ref().filter(|_| !open)
                        && let Err((op, denied)) = acl.check_request(&request)
                    {
                        let name = user.as_deref().unwrap_or_default();
                        shared.auth.denied();
                        tracing::info!(%peer, user = name, ?denied, "denied by an ACL");
                        let reply = ErrorReply::denied(name, op, &denied);
                        shared.audit(
                            Event::Denied,
                            native(name, peer),
                            denied.command_and_key(),
                            reply.message.as_str(),
                        );
                        Some(reply)
                    } else {
                        None
                    };
                    if let Some(reply) = refused {
                        counters.requests.give_back(request_bytes);
                        send(id, &Response::Error(reply), None);
                        continue;
                    }
                    let in_flight = InFlight::begin(&counters, &conn, request_bytes);
                    let task = answer(
                        Arc::clone(&shared),
                        Arc::clone(&conn),
                        (id, request, acl.filter(|_| !open)),
                        (user.clone(), peer),
                        responses.clone(),
                        in_flight,
                    );
                    run_or_spawn(&shared.env, "request", task);
                }
            }
        }
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        // Backpressure: a whole frame waiting for room is not followed by
        // more reads, so the buffer holds at most one frame and one read,
        // and the kernel pushes back on the client. A frame still
        // arriving is read on (its bytes are reserved), so its clock
        // never waits on the server.
        if frames.has_frame() {
            while shared.must_wait(&conn) {
                if shared.stopping.load(Ordering::Acquire) || conn.peer_gone() {
                    break 'reading;
                }
                shared.env.sleep(BACKPRESSURE_POLL).await;
            }
            last_request = shared.env.now_mono();
            continue;
        }
        // A frame whose length has arrived reserves it before any more of
        // it is read: the server reads no more request bytes than its
        // budget holds (and one read's worth).
        if reserved == 0
            && let Some(len) = frames.next_len()
            && len > 0
            && len <= shared.config.limits.frame_bytes_max
        {
            let want = u64::from(len);
            if !counters.requests.try_take(want) {
                while !counters.requests.try_take(want) {
                    if shared.stopping.load(Ordering::Acquire) || conn.peer_gone() {
                        break 'reading;
                    }
                    shared.env.sleep(BACKPRESSURE_POLL).await;
                }
                frame_began = frame_began.map(|_| shared.env.now_mono());
            }
            reserved = want;
        }
        let read = {
            let read = pin!(reader.read(&mut buffer));
            let tick = pin!(shared.env.sleep(tick));
            match select(read, tick).await {
                Either::Left((read, _)) => read,
                Either::Right(_) => {
                    // Look at the clock and at `stopping` now and then
                    // while the peer is quiet.
                    let now = shared.env.now_mono();
                    if frame_began.is_some_and(|began| now.saturating_since(began) >= frame_timeout)
                        && !sabotaged(
                            &shared.config,
                            jubilant_core::sabotage::Sabotage::NoFrameTimeout,
                        )
                    {
                        ServerCounters::count(&counters.frame_timeouts);
                        tracing::info!(%peer, bytes = frames.pending(), "a frame did not arrive in time; closing the connection");
                        let reply = ErrorReply::new(
                            ErrorCode::FrameTimeout,
                            format!(
                                "a frame must arrive whole within {} ms (server.frame_read_timeout_ms); {} bytes of it came",
                                frame_timeout.as_millis(),
                                frames.pending()
                            ),
                        );
                        send(0, &Response::Error(reply), None);
                        break 'reading;
                    }
                    if let Some(idle) = idle_timeout
                        && frame_began.is_none()
                        && ServerCounters::get(&conn.in_flight) == 0
                        && now.saturating_since(last_request) >= idle
                    {
                        ServerCounters::count(&counters.idle_timeouts);
                        tracing::debug!(%peer, "idle; closing the connection");
                        break 'reading;
                    }
                    continue;
                }
            }
        };
        let n = match read {
            Ok(0) => {
                if frames.pending() > 0 {
                    tracing::debug!(%peer, bytes = frames.pending(), "connection closed mid-frame");
                }
                break;
            }
            Ok(n) => n,
            Err(error) => {
                // Reset, or keepalive found the peer gone: nobody will
                // read the answers still being built either.
                tracing::debug!(%peer, %error, "read failed; closing");
                conn.peer_gone.store(true, Ordering::Release);
                break;
            }
        };
        frames.extend(&buffer[..n]);
        if frame_began.is_none() {
            frame_began = Some(shared.env.now_mono());
        }
    }
    counters.requests.give_back(reserved);
    // The writer ends once every request in flight has queued its answer
    // and all of it is written (or the peer is gone, or shutdown gave up).
    drop(responses);
    writing.await;
    counters.connections.fetch_sub(1, Ordering::AcqRel);
    tracing::debug!(%peer, "connection closed");
}

/// Runs one request and queues its response, which carries the request's
/// in-flight count until it is written.
async fn answer<E: Env>(
    shared: Arc<Shared<E>>,
    conn: Arc<ConnCounters>,
    (id, request, acl): (u64, Request, Option<Arc<crate::acl::Acl>>),
    (user, peer): (Option<String>, SocketAddr),
    responses: mpsc::UnboundedSender<Outgoing>,
    mut in_flight: InFlight,
) {
    // Administrative requests are audited with their outcome.
    let administrative = match &request {
        Request::Checkpoint => Some("checkpoint"),
        Request::BackupBegin | Request::BackupEnd { .. } => Some("backup"),
        _ => None,
    };
    let began = shared.env.now_mono();
    // A failed database answers nothing but INFO and Health: what it would
    // read may include commits that never became durable.
    let failure = shared.db.failure().filter(|_| {
        // Broken on purpose: PING answers PONG whatever the database's state.
        !(matches!(request, Request::Ping)
            && sabotaged(
                &shared.config,
                jubilant_core::sabotage::Sabotage::PingIgnoresFailure,
            ))
    });
    let response = match request {
        Request::Health => Response::Health(shared.health()),
        Request::Info => Response::Info(info::render(&shared.db.stats(), shared.facts())),
        Request::BackupEnd { backup } => shared.backup.end(backup),
        // The connection's reader answers it, in order with the requests
        // around it.
        Request::Auth { .. } => Response::Error(ErrorReply::new(
            ErrorCode::Internal,
            "authentication runs on the connection".to_owned(),
        )),
        _ if let Some(reason) = failure => Response::Error(ErrorReply::from_db(
            &jubilant_core::db::DbError::StorageFailed(reason),
        )),
        Request::Ping => Response::Pong,
        Request::Scan(mut scan) => {
            scan.bytes_max = wire::scan_bytes_max(shared.config.limits.response_bytes_max);
            match shared.db.scan(&scan).await {
                Ok(mut page) => {
                    // A scan shows only the keys the user may read.
                    if let Some(acl) = &acl {
                        page.entries
                            .retain(|(key, _)| acl.allows_key(key, crate::acl::Access::Read));
                    }
                    Response::Scan(page)
                }
                Err(error) => Response::Error(ErrorReply::from_db(&error)),
            }
        }
        Request::BackupBegin => {
            let timeout = Duration::from_millis(shared.config.storage.backup_pin_timeout_ms);
            let begun = shared
                .backup
                .begin(&shared.db, shared.env.now_mono(), timeout)
                .await;
            if let Response::BackupBegun(id, _) = &begun {
                let watch = crate::backup::watchdog(Arc::clone(&shared), *id, timeout);
                drop(shared.env.spawn("backup-watchdog", watch));
            }
            begun
        }
        Request::BackupRead {
            backup,
            file,
            offset,
            length,
        } => {
            shared
                .backup
                .read(
                    backup,
                    (file, offset, length),
                    shared.env.now_mono(),
                    shared.config.limits.response_bytes_max,
                )
                .await
        }
        Request::Checkpoint => match shared.db.checkpoint().await {
            Ok(report) => Response::Checkpoint(report.checkpoint_lsn),
            Err(error) => Response::Error(ErrorReply::from_db(&error)),
        },
        Request::Txn(mut txn) => {
            txn.limit_result_bytes(shared.config.limits.response_bytes_max)
                .meter_results(Arc::new(conn.meter(&shared.counters)));
            match shared.db.transaction(&txn).await {
                Ok(outcome) if !outcome.read_only => {
                    shared
                        .latencies
                        .commits
                        .observe(seconds_since(&shared.env, began));
                    Response::Txn {
                        kinds: txn.ops().iter().map(wire::op_kind).collect(),
                        outcome,
                    }
                }
                Ok(outcome) => Response::Txn {
                    kinds: txn.ops().iter().map(wire::op_kind).collect(),
                    outcome,
                },
                Err(error) => {
                    let reply = ErrorReply::from_txn(&error);
                    match reply.code {
                        ErrorCode::Internal | ErrorCode::StorageFailed | ErrorCode::Corrupt => {
                            tracing::error!(id, %error, "a transaction failed");
                        }
                        ErrorCode::ResponseTooLarge => {
                            ServerCounters::count(&shared.counters.responses_too_large);
                        }
                        _ => {}
                    }
                    Response::Error(reply)
                }
            }
        }
    };
    in_flight.request_done();
    if let Some(command) = administrative {
        let outcome = match &response {
            Response::Error(error) => error.message.clone(),
            _ => "ok".to_owned(),
        };
        let who = native(user.as_deref().unwrap_or_default(), peer);
        shared.audit(Event::Admin, who, (command, None), outcome);
    }
    shared
        .latencies
        .requests
        .observe(seconds_since(&shared.env, began));
    let frame = encode_frame(&wire::encode_response(id, &response));
    drop(response);
    // Broken on purpose: the request counts as done once queued.
    let request = if sabotaged(
        &shared.config,
        jubilant_core::sabotage::Sabotage::UnboundedAnswerQueue,
    ) {
        None
    } else {
        Some(in_flight)
    };
    let _ = responses.unbounded_send(Outgoing::new(frame, &shared.counters, &conn, request));
}

/// Seconds from `began` to now, by `env`'s clock.
pub(crate) fn seconds_since<E: Env>(env: &E, began: MonoTime) -> f64 {
    env.now_mono().saturating_since(began).as_secs_f64()
}

/// Writes queued response frames (those ready together in one write)
/// until every sender is gone, the peer is, or shutdown gives up on it.
pub(crate) async fn write_responses<E: Env, W: futures::io::AsyncWrite + Unpin>(
    shared: Arc<Shared<E>>,
    conn: Arc<ConnCounters>,
    mut writer: W,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    let written = {
        let mut write = pin!(write_frames(&mut writer, &mut outgoing));
        loop {
            let tick = pin!(shared.env.sleep(TICK));
            match select(write.as_mut(), tick).await {
                Either::Left((result, _)) => break result.is_ok(),
                Either::Right(_) => {
                    if shared.abandoning.load(Ordering::Acquire) {
                        ServerCounters::count(&shared.counters.shutdown_dropped);
                        break false;
                    }
                    // The reader found the peer gone: answers of requests
                    // still running need not be waited for.
                    if conn.peer_gone() {
                        break false;
                    }
                }
            }
        }
    };
    if !written {
        conn.peer_gone.store(true, Ordering::Release);
    }
    // Unwritten frames go with the receiver, and their accounting with them.
    drop(outgoing);
    if written && !shared.abandoning.load(Ordering::Acquire) {
        let close = pin!(writer.close());
        let tick = pin!(shared.env.sleep(REJECT_WRITE_TIMEOUT));
        select(close, tick).await;
    }
}
