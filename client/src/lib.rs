//! The Rust client for Jubilant DB's TCP protocol (`schemas/fbs/wire.fbs`,
//! docs/design.md section 9).
//!
//! A [`Client`] is cheap to clone and may be used by many tasks at once:
//! their requests are pipelined on one connection and each answer is routed
//! back by its request id. It is generic over the byte stream, so the
//! simulator's clients use it over the simulated network; [`Client::new`]
//! returns the connection's driver, a future to spawn on whatever runtime
//! runs the client. Tokio users call [`connect`] (feature `tokio`); any
//! environment of the seam (the real one, or the simulator's) can
//! [`connect_with`] a `host:port`, resolved through the environment, with
//! a connect timeout and a per-request timeout ([`ClientOptions`]).
//!
//! Transactions are built with the embedded API's own builder,
//! [`jubilant_core::txn::Txn`]:
//!
//! ```no_run
//! # async fn example() -> Result<(), jubilant_client::ClientError> {
//! use jubilant_client::Client;
//! use jubilant_core::txn::{Mode, Txn};
//!
//! let client = jubilant_client::connect("127.0.0.1:6767".parse().unwrap()).await?;
//! client.set("alice", 100i64).await?;
//! let mut transfer = Txn::new();
//! let (a, b) = (transfer.key("alice", Mode::RW), transfer.key("bob", Mode::RW));
//! transfer.add(a, -10).add(b, 10);
//! let outcome = client.transaction(&transfer).await?;
//! println!("committed at LSN {}", outcome.lsn);
//! # Ok(())
//! # }
//! ```
//!
//! Invariant kept here: **every call gets exactly one answer**: the
//! server's, or [`ClientError::Closed`] when the connection ends first (the
//! request may or may not have been applied then, as with any network
//! database).

jubilant_core::declare_build_checks!();

mod codec;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::SinkExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use jubilant_core::db::{Durability, Transactor, UpdateError, Updated, Value};
use jubilant_core::record::ValueType;
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnOutcome};
use jubilant_schemas::frame::{FrameReader, write_frames};

pub use jubilant_core::db::{ScanPage, ScanRequest};
pub use jubilant_schemas::wire::ErrorCode;

/// Whether the server serves requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// Open and writable.
    Ok,
    /// The database failed (a failed `fdatasync`, an abandoned
    /// checkpoint): every request but INFO and Health is refused with
    /// `StorageFailed` until the server restarts.
    Failed,
    /// The server is draining after SIGTERM.
    ShuttingDown,
}

/// The server's answer to [`Client::health`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Whether it serves requests.
    pub status: HealthStatus,
    /// Why the database failed; empty otherwise.
    pub reason: String,
    /// The newest applied LSN minus the durable LSN: commits accepted
    /// (`async`) but not yet durable, in LSNs.
    pub durable_lsn_lag: u64,
    /// Time since the server's last checkpoint finished; `None` before its
    /// first.
    pub checkpoint_age: Option<std::time::Duration>,
    /// WAL bytes appended since the last checkpoint: about what recovery
    /// would replay after a crash.
    pub wal_bytes_since_checkpoint: u64,
}

/// A backup the server began ([`Client::backup_begin`]): read its files
/// with [`Client::backup_read`], then end it with [`Client::backup_end`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupBegun {
    /// The id the other calls name it by.
    pub backup: u64,
    /// What it holds.
    pub info: jubilant_core::db::BackupInfo,
}

/// The largest response frame the client accepts.
pub const RESPONSE_BYTES_MAX: u32 = 1 << 30;

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a typed error.
    #[error("{code:?}: {message}")]
    Server {
        /// The error's code.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// The op it is about, if any.
        op: Option<usize>,
        /// For `AssertFailed`: the key's type as the transaction saw it.
        found_type: Option<ValueType>,
        /// For `AssertFailed`: the key's revision.
        revision: u64,
        /// For `PermissionDenied`: the key the user's ACL refused (`None`:
        /// the command was refused).
        key: Option<Vec<u8>>,
    },
    /// The connection ended before the answer came: the request may or may
    /// not have been applied.
    #[error("the connection closed before the answer: {0}")]
    Closed(String),
    /// The server sent something that is not a valid answer.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer within the request timeout: the request may or may not
    /// have been applied (the connection stays open; a late answer is
    /// dropped).
    #[error("no answer within {0:?} (the request may or may not have been applied)")]
    Timeout(Duration),
    /// The address could not be resolved or connected to within the
    /// connect timeout: nothing was sent.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The `host:port` asked for.
        target: String,
        /// Why.
        reason: String,
    },
}

/// How [`connect_with`] connects and how long a call may wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Resolving the name and opening the connection, all addresses tried.
    pub connect_timeout: Duration,
    /// Each call's wait for its answer (`None`: no limit).
    pub request_timeout: Option<Duration>,
    /// Who to authenticate as on every connection, before any call (a
    /// server with `[[users]]` serves nothing else first).
    pub credentials: Option<Credentials>,
}

/// A user and password to authenticate with ([`Client::auth`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user's name.
    pub user: String,
    /// The password.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    /// The password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    /// 5 s to connect, 30 s per request.
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(Duration::from_secs(30)),
            credentials: None,
        }
    }
}

/// A timer, from the environment the client runs in.
type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
/// Connects again, as the client first connected.
type Redial =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Link, ClientError>> + Send>> + Send + Sync>;

/// One connection's way out and its calls waiting for answers.
#[derive(Clone)]
struct Link {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
}

/// Why one attempt of a call failed before an answer.
enum Attempt {
    /// The connection was gone before the request left: nothing was sent.
    NotSent,
    /// Anything else, answer included.
    Done(Answer),
}

/// Connects to `target` (`host:port`; the host a name or an IP address)
/// through `env`: the name is resolved by the environment (the real
/// resolver, or the simulated world's table), each address is tried in
/// turn within `options.connect_timeout`, and the driver is spawned on the
/// environment. Calls then time out after `options.request_timeout`.
///
/// **Reconnecting.** When the connection is lost, the next call connects
/// again (after a backoff of 10 ms, doubling, at most
/// [`RECONNECT_ATTEMPTS`] times). A call whose request was never sent
/// (the connection was already gone) is sent on the new connection,
/// whatever it is. A call whose request was sent and whose answer was lost
/// is repeated only if it is idempotent: reads (`get`, `ttl`, `ping`,
/// `info`, `health`, `scan_page`, and transactions without a write op).
/// Anything else fails with [`ClientError::Closed`]: it may or may not
/// have been applied, and only the caller knows whether repeating it is
/// safe (a transaction guarded by `ASSERT_REVISION_EQ` is).
pub async fn connect_with<E>(
    env: &E,
    target: &str,
    options: ClientOptions,
) -> Result<Client, ClientError>
where
    E: jubilant_core::env::Env,
{
    let link = dial(env, target, &options).await?;
    let sleep: Sleep = {
        let env = env.clone();
        Arc::new(move |after| {
            let env = env.clone();
            Box::pin(async move { env.sleep(after).await })
        })
    };
    let redial: Redial = {
        let env = env.clone();
        let target = target.to_owned();
        let options = options.clone();
        Arc::new(move || {
            let (env, target, options) = (env.clone(), target.clone(), options.clone());
            Box::pin(async move { dial(&env, &target, &options).await })
        })
    };
    Ok(Client {
        link: Arc::new(Mutex::new(link)),
        next_id: Arc::new(AtomicU64::new(1)),
        timeout: options.request_timeout,
        redial: Some(redial),
        sleep: Some(sleep),
    })
}

impl Transactor for Client {
    type Error = ClientError;

    fn transact(&self, txn: &Txn) -> impl Future<Output = Result<TxnOutcome, ClientError>> + Send {
        self.transaction(txn)
    }

    fn found_revision(error: &ClientError) -> Option<u64> {
        match error {
            ClientError::Server {
                code: ErrorCode::AssertFailed,
                revision,
                ..
            } => Some(*revision),
            _ => None,
        }
    }

    fn pause(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        // A client made by `connect_with` sleeps on its environment, one
        // made by `connect` on tokio's timer; one made from a bare stream
        // has no clock, and tries again at once.
        let sleep = self.sleep.as_ref().map(|sleep| sleep(duration));
        async move {
            if let Some(sleep) = sleep {
                sleep.await;
            }
        }
    }
}

/// Times a lost connection is dialled again for one call.
pub const RECONNECT_ATTEMPTS: u32 = 5;
/// The first wait before dialling again; each next one doubles.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Resolves and connects `target` within `options.connect_timeout`, and
/// spawns the connection's driver on `env`.
async fn dial<E: jubilant_core::env::Env>(
    env: &E,
    target: &str,
    options: &ClientOptions,
) -> Result<Link, ClientError> {
    use futures::FutureExt;
    let refused = |reason: String| ClientError::Connect {
        target: target.to_owned(),
        reason,
    };
    let (host, port) = target
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .ok_or_else(|| refused("give HOST:PORT".to_owned()))?;
    // `[::1]:6767`: the brackets are the address's, not the name's.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = async {
        let addrs = env
            .resolve(host, port)
            .await
            .map_err(|error| refused(format!("cannot resolve {host:?}: {error}")))?;
        let mut last = format!("{host:?} has no address");
        for addr in addrs {
            match env.connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = format!("{addr}: {error}"),
            }
        }
        Err(refused(last))
    };
    let stream = futures::select! {
        stream = connect.fuse() => stream?,
        () = env.sleep(options.connect_timeout).fuse() => {
            return Err(refused(format!("no connection within {:?}", options.connect_timeout)));
        }
    };
    let (client, driver) = Client::new(stream);
    drop(env.spawn("client-driver", driver));
    if let Some(credentials) = &options.credentials {
        let auth = client.auth(&credentials.user, &credentials.password);
        let limit = options.request_timeout.unwrap_or(options.connect_timeout);
        futures::select! {
            authenticated = auth.fuse() => authenticated?,
            () = env.sleep(limit).fuse() => return Err(ClientError::Timeout(limit)),
        }
    }
    Ok(client.link())
}

type Answer = Result<codec::Reply, ClientError>;
type Pending = Arc<Mutex<Option<BTreeMap<u64, oneshot::Sender<Answer>>>>>;

fn pending(map: &Pending) -> MutexGuard<'_, Option<BTreeMap<u64, oneshot::Sender<Answer>>>> {
    jubilant_core::mutex::lock(map)
}

/// A connection to a server.
#[derive(Clone)]
pub struct Client {
    /// The connection calls go out on (replaced when it is dialled again).
    link: Arc<Mutex<Link>>,
    next_id: Arc<AtomicU64>,
    /// Each call's limit (kept only with a timer to measure it).
    timeout: Option<Duration>,
    /// How to connect again ([`connect_with`] only).
    redial: Option<Redial>,
    /// The client's timer: call timeouts, the backoff before dialling
    /// again, `update`'s pauses. Without one (a client over a bare
    /// stream) calls never time out and `update` tries again at once.
    sleep: Option<Sleep>,
}

/// Connects over TCP on the current tokio runtime and spawns the driver.
#[cfg(feature = "tokio")]
pub async fn connect(addr: std::net::SocketAddr) -> Result<Client, ClientError> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|error| ClientError::Closed(format!("cannot connect to {addr}: {error}")))?;
    let _ = stream.set_nodelay(true);
    let (mut client, driver) = Client::new(stream.compat());
    // The client's one task on tokio: a connection's reader and writer.
    #[allow(clippy::disallowed_methods)]
    drop(tokio::spawn(driver));
    // `update`'s backoff on tokio's timer: this entry point is tokio's.
    #[allow(clippy::disallowed_methods)]
    let sleep: Sleep = Arc::new(|after| Box::pin(tokio::time::sleep(after)));
    client.sleep = Some(sleep);
    Ok(client)
}

/// The frame of a transaction request with id `id`, for tools and tests
/// that drive the protocol by hand (a client that pipelines without
/// reading, say).
pub fn txn_request_frame(id: u64, txn: &Txn) -> Vec<u8> {
    codec::encode_txn(id, txn)
}

impl Client {
    /// A client over `stream`, and the driver that moves its bytes: spawn
    /// it; it ends when the connection does (or every clone of the client
    /// is dropped).
    pub fn new<S>(stream: S) -> (Client, impl Future<Output = ()> + Send + 'static)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (outgoing, queued) = mpsc::unbounded();
        let pending: Pending = Arc::new(Mutex::new(Some(BTreeMap::new())));
        let client = Client {
            link: Arc::new(Mutex::new(Link {
                outgoing,
                pending: Arc::clone(&pending),
            })),
            next_id: Arc::new(AtomicU64::new(1)),
            timeout: None,
            redial: None,
            sleep: None,
        };
        (client, drive(stream, queued, pending))
    }

    fn link(&self) -> Link {
        jubilant_core::mutex::lock(&self.link).clone()
    }

    /// Sends the request `encode` makes and waits for its answer; on a lost
    /// connection, dials again and repeats it as [`connect_with`] says
    /// (`idempotent`: it may be repeated after it was sent).
    async fn call(&self, encode: impl Fn(u64) -> Vec<u8>, idempotent: bool) -> Answer {
        let mut attempt = 0;
        loop {
            let link = self.link();
            let (sent, answer) = match self.attempt(&link, &encode).await {
                Attempt::NotSent => (
                    false,
                    Err(ClientError::Closed("the connection is closed".to_owned())),
                ),
                Attempt::Done(answer) => (true, answer),
            };
            let (Some(redial), Some(sleep)) = (&self.redial, &self.sleep) else {
                return answer;
            };
            if !matches!(answer, Err(ClientError::Closed(_)))
                || (sent && !idempotent)
                || attempt >= RECONNECT_ATTEMPTS
            {
                return answer;
            }
            sleep(RECONNECT_BACKOFF * 2u32.pow(attempt)).await;
            attempt += 1;
            if let Ok(fresh) = redial().await {
                let mut current = jubilant_core::mutex::lock(&self.link);
                // Another call may have dialled already.
                if Arc::ptr_eq(&current.pending, &link.pending) {
                    *current = fresh;
                }
            }
        }
    }

    /// One try of a call on `link`.
    async fn attempt(&self, link: &Link, encode: &impl Fn(u64) -> Vec<u8>) -> Attempt {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        match pending(&link.pending).as_mut() {
            Some(map) => {
                map.insert(id, reply);
            }
            None => return Attempt::NotSent,
        }
        let mut outgoing = link.outgoing.clone();
        if outgoing.send(encode(id)).await.is_err() {
            if let Some(map) = pending(&link.pending).as_mut() {
                map.remove(&id);
            }
            return Attempt::NotSent;
        }
        let answered = |answer: Result<Answer, oneshot::Canceled>| {
            answer.unwrap_or_else(|_| Err(ClientError::Closed("the connection closed".to_owned())))
        };
        let (Some(limit), Some(sleep)) = (&self.timeout, &self.sleep) else {
            return Attempt::Done(answered(answer.await));
        };
        Attempt::Done(match select(answer, sleep(*limit)).await {
            Either::Left((answer, _)) => answered(answer),
            Either::Right(_) => {
                // A late answer finds no one waiting and is dropped.
                if let Some(map) = pending(&link.pending).as_mut() {
                    map.remove(&id);
                }
                Err(ClientError::Timeout(*limit))
            }
        })
    }

    /// Runs `txn` (its ops in order, all or nothing; see SPEC 2).
    pub async fn transaction(&self, txn: &Txn) -> Result<TxnOutcome, ClientError> {
        let reads_only = txn.ops().iter().all(|op| !op.writes());
        match self
            .call(|id| codec::encode_txn(id, txn), reads_only)
            .await?
        {
            codec::Reply::Txn(outcome) => Ok(outcome),
            other => Err(codec::unexpected(&other)),
        }
    }

    async fn one(
        &self,
        key: impl AsRef<[u8]>,
        mode: Mode,
        op: impl FnOnce(u32) -> Op,
    ) -> Result<OpResult, ClientError> {
        let mut txn = Txn::new();
        let id = txn.key(key, mode);
        txn.op(op(id));
        let outcome = self.transaction(&txn).await?;
        outcome.results.into_iter().next().ok_or_else(|| {
            ClientError::Protocol("a transaction answered without results".to_owned())
        })
    }

    /// `GET`: the value and its revision, if the key exists. Keys are any
    /// bytes; `&str` works.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<(Value, u64)>, ClientError> {
        match self.one(key, Mode::R, Op::Get).await? {
            OpResult::Get(found) => Ok(found),
            other => Err(codec::wrong_result(&other)),
        }
    }

    /// `SET` without a TTL, with the server's default durability; answers
    /// the key's new revision (the commit's LSN), as the embedded
    /// `Db::set` does.
    pub async fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
    ) -> Result<u64, ClientError> {
        let mut txn = Txn::new();
        let id = txn.key(key, Mode::RW);
        txn.set(id, value);
        Ok(self.transaction(&txn).await?.lsn)
    }

    /// Reads `key`, computes `f(old)`, and writes the result (`None`
    /// deletes) only if the key has not changed since the read, trying
    /// again with backoff up to
    /// [`UPDATE_ATTEMPTS_MAX`](jubilant_core::db::UPDATE_ATTEMPTS_MAX)
    /// times: the embedded `Db::update`, over the network (design 14.4).
    pub async fn update(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnMut(Option<&Value>) -> Option<Value>,
    ) -> Result<Updated, UpdateError<ClientError>> {
        jubilant_core::db::update(self, key.as_ref(), f).await
    }

    /// Writes `new` (`None` deletes) to `key` only if its revision is
    /// `expected` (0: the key must be missing); one attempt.
    pub async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: u64,
        new: Option<Value>,
    ) -> Result<Updated, UpdateError<ClientError>> {
        jubilant_core::db::compare_and_swap(self, key.as_ref(), expected, new).await
    }

    /// `SET` with a TTL in milliseconds.
    pub async fn set_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<(), ClientError> {
        let value = value.into();
        self.one(key, Mode::RW, |id| Op::Set(id, value, Some(ttl_ms)))
            .await?;
        Ok(())
    }

    /// `SET` with an explicit durability.
    pub async fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Value>,
        durability: Durability,
    ) -> Result<u64, ClientError> {
        let mut txn = Txn::new();
        let id = txn.key(key, Mode::RW);
        txn.set(id, value).durability(durability);
        Ok(self.transaction(&txn).await?.lsn)
    }

    /// `DEL`: whether the key existed.
    pub async fn del(&self, key: impl AsRef<[u8]>) -> Result<bool, ClientError> {
        match self.one(key, Mode::RW, Op::Del).await? {
            OpResult::Del(existed) => Ok(existed),
            other => Err(codec::wrong_result(&other)),
        }
    }

    /// `ADD`: the new value.
    pub async fn add(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64, ClientError> {
        match self.one(key, Mode::RW, |id| Op::Add(id, delta)).await? {
            OpResult::Add(n) => Ok(n),
            other => Err(codec::wrong_result(&other)),
        }
    }

    /// `EXPIRE`: whether the key existed.
    pub async fn expire(&self, key: impl AsRef<[u8]>, ttl_ms: u64) -> Result<bool, ClientError> {
        match self.one(key, Mode::RW, |id| Op::Expire(id, ttl_ms)).await? {
            OpResult::Expire(existed) => Ok(existed),
            other => Err(codec::wrong_result(&other)),
        }
    }

    /// `PERSIST`: whether the key had a TTL.
    pub async fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool, ClientError> {
        match self.one(key, Mode::RW, Op::Persist).await? {
            OpResult::Persist(had) => Ok(had),
            other => Err(codec::wrong_result(&other)),
        }
    }

    /// `TTL`.
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl, ClientError> {
        match self.one(key, Mode::R, Op::Ttl).await? {
            OpResult::Ttl(ttl) => Ok(ttl),
            other => Err(codec::wrong_result(&other)),
        }
    }

    /// `INFO`'s text.
    pub async fn info(&self) -> Result<String, ClientError> {
        match self.call(codec::encode_info, true).await? {
            codec::Reply::Info(text) => Ok(text),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// `CHECKPOINT`: the checkpoint's LSN.
    pub async fn checkpoint(&self) -> Result<u64, ClientError> {
        match self.call(codec::encode_checkpoint, false).await? {
            codec::Reply::Checkpoint(lsn) => Ok(lsn),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// One page of a scan, as [`jubilant_core::db::Db::scan`] answers it
    /// (the server sets the page's byte bound; `request.bytes_max` is not
    /// sent). A key present for the whole scan is in exactly one page.
    pub async fn scan_page(&self, request: &ScanRequest) -> Result<ScanPage, ClientError> {
        match self
            .call(|id| codec::encode_scan(id, request), true)
            .await?
        {
            codec::Reply::Scan(page) => Ok(page),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// Every entry of `request`'s range, in its order, fetched a page at a
    /// time as the stream is read (so it holds one page at most). Not a
    /// snapshot: each key as of some moment during the scan, and a key
    /// present for the whole scan exactly once. The first error ends it.
    pub fn scan(
        &self,
        request: ScanRequest,
    ) -> impl futures::Stream<Item = Result<(Vec<u8>, Option<Value>), ClientError>> + Send + 'static
    {
        let client = self.clone();
        let state = (client, Some(request), std::collections::VecDeque::new());
        futures::stream::unfold(state, |(client, mut next, mut buffered)| async move {
            loop {
                if let Some(entry) = buffered.pop_front() {
                    return Some((Ok(entry), (client, next, buffered)));
                }
                let request = next.take()?;
                match client.scan_page(&request).await {
                    Ok(page) => {
                        buffered.extend(page.entries);
                        if let Some(last) = page.resume_after {
                            let mut request = request;
                            request.resume_after(last);
                            next = Some(request);
                        }
                    }
                    Err(error) => return Some((Err(error), (client, None, buffered))),
                }
            }
        })
    }

    /// Authenticates this connection as `user` (a server with `[[users]]`
    /// serves only `ping` and this until it succeeds; a wrong password is
    /// [`ErrorCode::WrongPass`]). [`connect_with`] does it on every
    /// connection when its options carry [`Credentials`].
    pub async fn auth(&self, user: &str, password: &[u8]) -> Result<(), ClientError> {
        match self
            .call(|id| codec::encode_auth(id, user, password), true)
            .await?
        {
            codec::Reply::AuthOk => Ok(()),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// Starts an online backup: the server checkpoints and pins what a
    /// consistent copy needs (design 12). One runs at a time
    /// ([`ErrorCode::BackupInProgress`]); one that reads nothing for the
    /// server's `storage.backup_pin_timeout_ms` is ended for it.
    pub async fn backup_begin(&self) -> Result<BackupBegun, ClientError> {
        match self.call(codec::encode_backup_begin, false).await? {
            codec::Reply::BackupBegun(begun) => Ok(begun),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// Up to `length` bytes of file `file` of backup `backup` from
    /// `offset` (the server may send fewer; none at the file's
    /// `data_bytes`), verified against the BLAKE3 hash sent with them.
    pub async fn backup_read(
        &self,
        backup: u64,
        file: u32,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, ClientError> {
        let encode = |id| codec::encode_backup_read(id, backup, (file, offset, length));
        match self.call(encode, true).await? {
            codec::Reply::BackupChunk(data) => Ok(data),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// Ends backup `backup`, releasing the server's pin.
    pub async fn backup_end(&self, backup: u64) -> Result<(), ClientError> {
        match self
            .call(|id| codec::encode_backup_end(id, backup), true)
            .await?
        {
            codec::Reply::BackupEnded => Ok(()),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// The server's health as fields; answered even when its database has
    /// failed (when `ping` and every other request get `StorageFailed`).
    pub async fn health(&self) -> Result<Health, ClientError> {
        match self.call(codec::encode_health, true).await? {
            codec::Reply::Health(health) => Ok(health),
            other => Err(codec::unexpected(&other)),
        }
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.call(codec::encode_ping, true).await? {
            codec::Reply::Pong => Ok(()),
            other => Err(codec::unexpected(&other)),
        }
    }
}

/// Moves request frames out and response frames in until the connection
/// ends; then fails every call still waiting.
async fn drive<S>(stream: S, mut queued: mpsc::UnboundedReceiver<Vec<u8>>, pending_map: Pending)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, mut writer) = stream.split();
    let writing = async {
        // Requests queued together (pipelined calls) go out in one write.
        if let Err(error) = write_frames(&mut writer, &mut queued).await {
            return format!("write failed: {error}");
        }
        let _ = writer.close().await;
        "the client was dropped".to_owned()
    };
    let reading = async {
        let mut frames = FrameReader::new(RESPONSE_BYTES_MAX);
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buffer).await {
                Ok(0) => return "the server closed the connection".to_owned(),
                Ok(n) => n,
                Err(error) => return format!("read failed: {error}"),
            };
            frames.extend(&buffer[..n]);
            loop {
                let frame = match frames.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => return error.to_string(),
                };
                let (id, answer) = codec::decode_response(&frame);
                let waiter = pending(&pending_map)
                    .as_mut()
                    .and_then(|map| map.remove(&id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(answer);
                    }
                    // Id 0: the server is closing the connection and
                    // says why (too many connections, a frame too large or
                    // too slow): every request waiting hears it.
                    None if id == 0 => {
                        return match answer {
                            Err(error) => format!("the server closed the connection: {error}"),
                            Ok(reply) => format!("an answer to request 0: {reply:?}"),
                        };
                    }
                    // Any other answer nobody waits for is a protocol error.
                    None => return format!("an answer to unknown request {id}: {answer:?}"),
                }
            }
        }
    };
    let reason = match select(std::pin::pin!(writing), std::pin::pin!(reading)).await {
        Either::Left((reason, _)) | Either::Right((reason, _)) => reason,
    };
    let waiting = pending(&pending_map).take().unwrap_or_default();
    for (_, waiter) in waiting {
        let _ = waiter.send(Err(ClientError::Closed(reason.clone())));
    }
}
