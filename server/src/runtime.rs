//! The server at run time: the database, the listener, one task per
//! connection, one task per request (pipelining), all on the environment's
//! spawner, so the simulator runs this very code.
//!
//! Invariants kept here:
//! - **Every request gets exactly one response, with its id**, unless its
//!   connection is gone. A payload that is not a valid request is answered
//!   with a typed error (id 0 when no id could be read); a stream whose
//!   framing is lost (a length over the limit or zero) is closed after the
//!   responses already due are written, and the reason is logged.
//! - **Memory is bounded by the limits, not by the clients.** A connection
//!   stops reading while it has `max_in_flight_per_connection` requests in
//!   flight, and every connection does while the server has
//!   `max_in_flight_total`: the kernel's socket buffers then push back on
//!   the clients (TCP backpressure). At most `max_connections` are served;
//!   more wait in the listen backlog.
//! - **Shutdown loses nothing acknowledged.** It stops accepting, stops
//!   reading, lets every request in flight finish and its response be
//!   written, then closes the database (a checkpoint: the WAL is durable).

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::{SinkExt, StreamExt};
use jubilant_core::db::{Db, DbError};
use jubilant_core::env::{Env, Listener, MonoTime, Net};

use crate::config::Config;
use crate::frame::{FrameReader, encode_frame, write_frames};
use crate::info::{self, ServerFacts};
use crate::wire::{self, ErrorCode, ErrorReply, Request, RequestLimits, Response};

/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// How long a reader waits before looking again at a full server.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(1);

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
    /// Closing the database at shutdown failed.
    #[error("closing the database failed: {0}")]
    Close(DbError),
}

struct Shared<E: Env> {
    env: E,
    db: Db<E>,
    config: Config,
    started: MonoTime,
    connections: AtomicU64,
    in_flight: AtomicU64,
    stopping: AtomicBool,
}

/// A running server.
pub struct Running<E: Env> {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: E::JoinHandle<Result<(), ServerError>>,
}

impl<E: Env> Running<E> {
    /// The address the server listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
    let shared = Arc::new(Shared {
        started: env.now_mono(),
        env: env.clone(),
        db,
        config,
        connections: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
    });
    let (stop, stopped) = oneshot::channel();
    let task = env.spawn("server", serve(shared, listener, stopped));
    Ok(Running {
        local_addr,
        stop,
        task,
    })
}

async fn serve<E: Env>(
    shared: Arc<Shared<E>>,
    listener: <E as Net>::Listener,
    mut stopped: oneshot::Receiver<()>,
) -> Result<(), ServerError> {
    let checkpoints = (shared.config.storage.checkpoint_interval_ms > 0).then(|| {
        shared
            .env
            .spawn("checkpoint-timer", checkpoint_timer(Arc::clone(&shared)))
    });
    loop {
        // At the connection limit, accept nothing: clients wait in the
        // kernel's backlog.
        if shared.connections.load(Ordering::Acquire) >= shared.config.server.max_connections as u64
        {
            let wait = pin!(shared.env.sleep(BACKPRESSURE_POLL));
            if let Either::Right(_) = select(wait, &mut stopped).await {
                break;
            }
            continue;
        }
        let accept = pin!(listener.accept());
        match select(accept, &mut stopped).await {
            Either::Left((Ok((stream, peer)), _)) => {
                shared.connections.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(%peer, "connection opened");
                let task = connection(Arc::clone(&shared), stream, peer);
                // Detached: shutdown waits on the connection count instead,
                // so no handle piles up over the server's life.
                drop(shared.env.spawn("connection", task));
            }
            Either::Left((Err(error), _)) => {
                tracing::warn!(%error, "accept failed");
                shared.env.sleep(BACKPRESSURE_POLL).await;
            }
            Either::Right(_) => break,
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    shared.stopping.store(true, Ordering::Release);
    drop(listener);
    while shared.connections.load(Ordering::Acquire) > 0 {
        shared.env.sleep(BACKPRESSURE_POLL).await;
    }
    if let Some(task) = checkpoints {
        task.await;
    }
    // Connection and request tasks drop their handles on the state just
    // after they count themselves out.
    let mut pending = shared;
    let shared = loop {
        match Arc::try_unwrap(pending) {
            Ok(shared) => break shared,
            Err(again) => {
                pending = again;
                pending.env.sleep(BACKPRESSURE_POLL).await;
            }
        }
    };
    shared.db.close().await.map_err(ServerError::Close)?;
    tracing::info!("shut down cleanly");
    Ok(())
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

/// Serves one connection until the peer closes it, its framing is lost,
/// or the server stops.
async fn connection<E: Env>(shared: Arc<Shared<E>>, stream: E::Stream, peer: SocketAddr) {
    let (mut reader, writer) = stream.split();
    let (responses, outgoing) = mpsc::unbounded::<Vec<u8>>();
    let writing = shared
        .env
        .spawn("connection-writer", write_responses(writer, outgoing));
    let (done_tx, mut done) = mpsc::unbounded::<()>();
    let limits = RequestLimits {
        keys_per_txn_max: shared.config.limits.keys_per_txn_max,
        ops_per_txn_max: shared.config.limits.ops_per_txn_max,
    };
    let mut frames = FrameReader::new(shared.config.limits.frame_bytes_max);
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut in_flight = 0usize;
    'reading: loop {
        // Backpressure: read nothing more while this connection or the
        // whole server is at its limit.
        while in_flight >= shared.config.server.max_in_flight_per_connection
            || shared.in_flight.load(Ordering::Acquire)
                >= shared.config.server.max_in_flight_total as u64
        {
            let tick = pin!(shared.env.sleep(BACKPRESSURE_POLL));
            if let Either::Left((Some(()), _)) = select(done.next(), tick).await {
                in_flight -= 1;
            }
        }
        while let Ok(()) = done.try_recv() {
            in_flight -= 1;
        }
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        let read = {
            let read = pin!(reader.read(&mut buffer));
            let tick = pin!(shared.env.sleep(Duration::from_millis(50)));
            match select(read, tick).await {
                Either::Left((read, _)) => read,
                // Look at `stopping` now and then while the peer is idle.
                Either::Right(_) => continue,
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
                tracing::debug!(%peer, %error, "read failed; closing");
                break;
            }
        };
        frames.extend(&buffer[..n]);
        loop {
            let payload = match frames.next_frame() {
                Ok(Some(payload)) => payload,
                Ok(None) => break,
                Err(error) => {
                    tracing::info!(%peer, %error, "unreadable frame; closing the connection");
                    break 'reading;
                }
            };
            let (id, decoded) = wire::decode_request(&payload, &limits);
            match decoded {
                Err(error) => {
                    tracing::debug!(%peer, id, code = ?error.code, message = %error.message, "invalid request");
                    let frame = encode_frame(&wire::encode_response(id, &Response::Error(error)));
                    let _ = responses.unbounded_send(frame);
                }
                Ok(request) => {
                    in_flight += 1;
                    shared.in_flight.fetch_add(1, Ordering::AcqRel);
                    let task = answer(
                        Arc::clone(&shared),
                        id,
                        request,
                        responses.clone(),
                        done_tx.clone(),
                    );
                    drop(shared.env.spawn("request", task));
                }
            }
        }
    }
    // Every request in flight is answered before the connection closes.
    drop(done_tx);
    while in_flight > 0 && done.next().await.is_some() {
        in_flight -= 1;
    }
    drop(responses);
    writing.await;
    shared.connections.fetch_sub(1, Ordering::AcqRel);
    tracing::debug!(%peer, "connection closed");
}

/// Runs one request and queues its response.
async fn answer<E: Env>(
    shared: Arc<Shared<E>>,
    id: u64,
    request: Request,
    responses: mpsc::UnboundedSender<Vec<u8>>,
    mut done: mpsc::UnboundedSender<()>,
) {
    let response = match request {
        Request::Ping => Response::Pong,
        Request::Info => {
            let facts = ServerFacts {
                uptime_ms: u64::try_from(
                    shared
                        .env
                        .now_mono()
                        .saturating_since(shared.started)
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
                connections: shared.connections.load(Ordering::Acquire),
            };
            Response::Info(info::render(&shared.db.stats(), facts))
        }
        Request::Checkpoint => match shared.db.checkpoint().await {
            Ok(report) => Response::Checkpoint(report.checkpoint_lsn),
            Err(error) => Response::Error(ErrorReply::from_db(&error)),
        },
        Request::Txn(txn) => match shared.db.transaction(&txn).await {
            Ok(outcome) => Response::Txn {
                kinds: txn.ops().iter().map(wire::op_kind).collect(),
                outcome,
            },
            Err(error) => {
                let reply = ErrorReply::from_txn(&error);
                if matches!(
                    reply.code,
                    ErrorCode::Internal | ErrorCode::StorageFailed | ErrorCode::Corrupt
                ) {
                    tracing::error!(id, %error, "a transaction failed");
                }
                Response::Error(reply)
            }
        },
    };
    let _ = responses.unbounded_send(encode_frame(&wire::encode_response(id, &response)));
    shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    let _ = done.send(()).await;
}

/// Writes queued response frames (those ready together in one write)
/// until every sender is gone.
async fn write_responses<W: futures::io::AsyncWrite + Unpin>(
    mut writer: W,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    if write_frames(&mut writer, &mut outgoing).await.is_err() {
        // The peer is gone; drain so senders never block.
        while outgoing.next().await.is_some() {}
        return;
    }
    let _ = writer.close().await;
}
