//! How a bank client reaches the database: calls on the embedded `Db`, or
//! requests to the real server over the simulated network with the real
//! client library (the `server` workload).
//!
//! Invariant kept here: every transaction ends in exactly one [`Failure`]
//! class or an outcome, the same for both transports, so the bank's clients
//! and model do not know which one they use. A remote call whose answer is
//! lost (connection reset, partition past the timeout) is
//! [`Failure::Unknown`]: the transaction may or may not have committed, and
//! the model, which learns the history from the engine's commit observer
//! rather than from answers, must hold either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use jubilant_client::{Client, ClientError, ErrorCode};
use jubilant_core::db::{Db, DbError};
use jubilant_core::env::{Clock, Spawn};
use jubilant_core::txn::{Txn, TxnError, TxnOutcome};
use jubilant_io_sim::SimEnv;

/// Why a transaction (or checkpoint) did not give an outcome.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing was written, as the protocol allows: a failed ASSERT, a full
    /// disk, a lock wait past the limit. The name is the counter to bump.
    NoEffect(&'static str),
    /// The request was never sent (nothing listens yet): no effect.
    Unreachable(String),
    /// The answer was lost: possibly committed.
    Unknown(String),
    /// The engine failed (storage) or found damaged data.
    Engine {
        /// What it said.
        message: String,
        /// Whether it reported damaged data.
        corruption: bool,
        /// Whether it said its storage failed (`StorageFailed`): from then
        /// on its health must say so too.
        storage: bool,
    },
    /// A well-formed request was refused: a bug.
    Refused(String),
}

impl Failure {
    fn from_txn(error: TxnError) -> Failure {
        match error {
            TxnError::AssertFailed { .. } => Failure::NoEffect("guarded_aborts"),
            TxnError::Busy { .. } => Failure::NoEffect("busy"),
            TxnError::Db(error) => Failure::from_db(&error),
            other => Failure::Refused(other.to_string()),
        }
    }

    fn from_db(error: &DbError) -> Failure {
        match error {
            DbError::DiskFull(_) => Failure::NoEffect("commits_disk_full"),
            DbError::Unavailable(_) => Failure::NoEffect("commits_unavailable"),
            error => Failure::Engine {
                message: error.to_string(),
                corruption: error.is_corruption(),
                storage: matches!(error, DbError::StorageFailed(_)),
            },
        }
    }

    fn from_client(error: ClientError) -> Failure {
        match error {
            ClientError::Server { code, message, .. } => match code {
                ErrorCode::AssertFailed => Failure::NoEffect("guarded_aborts"),
                ErrorCode::Busy => Failure::NoEffect("busy"),
                ErrorCode::DiskFull => Failure::NoEffect("commits_disk_full"),
                ErrorCode::ShuttingDown => Failure::NoEffect("shutting_down"),
                ErrorCode::StorageFailed | ErrorCode::Internal => Failure::Engine {
                    message,
                    corruption: false,
                    storage: code == ErrorCode::StorageFailed,
                },
                ErrorCode::Corrupt => Failure::Engine {
                    message,
                    corruption: true,
                    storage: false,
                },
                other => Failure::Refused(format!("{other:?}: {message}")),
            },
            ClientError::Closed(why) => Failure::Unknown(why),
            ClientError::Timeout(after) => Failure::Unknown(format!("no answer within {after:?}")),
            ClientError::Connect { target, reason } => {
                Failure::Unreachable(format!("{target}: {reason}"))
            }
            ClientError::Protocol(why) => Failure::Refused(format!("protocol: {why}")),
        }
    }
}

/// What [`Conn::health_after_failure`] found.
#[derive(Debug)]
pub(crate) struct HealthSaid {
    /// Health reports the failure, with a reason.
    pub(crate) failed: bool,
    /// PING is refused with `StorageFailed`.
    pub(crate) ping_refused: bool,
}

/// One client's way to the database.
pub(crate) enum Conn {
    /// The database in this process.
    Embedded(Arc<Db<SimEnv>>),
    /// The server at `addr`, reached from `env`'s node.
    Remote(Remote),
}

/// A connection to the server that redials after it is lost.
pub(crate) struct Remote {
    env: SimEnv,
    addr: SocketAddr,
    /// How long an answer may take before the connection is given up.
    timeout: Duration,
    client: Option<Client>,
    /// Who to authenticate as on every connection (a world with users).
    credentials: Option<(&'static str, &'static [u8])>,
}

impl Remote {
    pub(crate) fn new(env: SimEnv, addr: SocketAddr, timeout: Duration) -> Self {
        Remote {
            env,
            addr,
            timeout,
            client: None,
            credentials: None,
        }
    }

    /// Authenticates every connection as `user` first.
    pub(crate) fn with_credentials(mut self, user: &'static str, password: &'static [u8]) -> Self {
        self.credentials = Some((user, password));
        self
    }

    async fn client(&mut self) -> Result<Client, Failure> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let stream = self
            .env
            .connect(self.addr)
            .await
            .map_err(|error| Failure::Unreachable(format!("connect: {error}")))?;
        let (client, driver) = Client::new(stream);
        drop(self.env.spawn("client-driver", driver));
        if let Some((user, password)) = self.credentials {
            // Nothing else was sent: a failure leaves no effect.
            let authenticated = futures::select! {
                answer = client.auth(user, password).fuse() => answer,
                () = self.env.sleep(self.timeout).fuse() => {
                    Err(ClientError::Timeout(self.timeout))
                }
            };
            authenticated.map_err(|error| Failure::Unreachable(format!("auth: {error}")))?;
        }
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Runs `call` on the connection, dialling first if there is none; a
    /// lost or late answer drops the connection (its driver then ends).
    async fn call<T, F>(&mut self, call: impl FnOnce(Client) -> F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, ClientError>>,
    {
        let client = self.client().await?;
        let answer = futures::select! {
            answer = call(client).fuse() => answer.map_err(Failure::from_client),
            () = self.env.sleep(self.timeout).fuse() => {
                Err(Failure::Unknown(format!("no answer within {:?}", self.timeout)))
            }
        };
        if matches!(answer, Err(Failure::Unknown(_))) {
            self.client = None;
        }
        answer
    }
}

impl Conn {
    /// Runs `txn`.
    pub(crate) async fn transaction(&mut self, txn: &Txn) -> Result<TxnOutcome, Failure> {
        match self {
            Conn::Embedded(db) => db.transaction(txn).await.map_err(Failure::from_txn),
            Conn::Remote(remote) => {
                let txn = txn.clone();
                remote
                    .call(|client| async move { client.transaction(&txn).await })
                    .await
            }
        }
    }

    /// Asks for a checkpoint; returns whether one was written (always
    /// `true` over the network, which does not say).
    pub(crate) async fn checkpoint(&mut self) -> Result<bool, Failure> {
        match self {
            Conn::Embedded(db) => db
                .checkpoint()
                .await
                .map(|report| report.wrote)
                .map_err(|error| Failure::from_db(&error)),
            Conn::Remote(remote) => remote
                .call(|client| async move { client.checkpoint().await })
                .await
                .map(|_| true),
        }
    }

    /// What the server says of its health after a request failed with
    /// `StorageFailed`: whether Health reports the failure, and whether
    /// PING is refused with `StorageFailed` too (`None` embedded).
    pub(crate) async fn health_after_failure(&mut self) -> Result<Option<HealthSaid>, Failure> {
        match self {
            // Embedded there is no PING and no second path to the
            // failure: nothing to compare.
            Conn::Embedded(_) => Ok(None),
            Conn::Remote(remote) => {
                let health = remote
                    .call(|client| async move { client.health().await })
                    .await?;
                // A refusal is an answer; a lost ping is not.
                let ping_refused = remote
                    .call(|client| async move {
                        match client.ping().await {
                            Ok(()) => Ok(false),
                            Err(ClientError::Server {
                                code: ErrorCode::StorageFailed,
                                ..
                            }) => Ok(true),
                            Err(error) => Err(error),
                        }
                    })
                    .await?;
                Ok(Some(HealthSaid {
                    failed: health.status == jubilant_client::HealthStatus::Failed
                        && !health.reason.is_empty(),
                    ping_refused,
                }))
            }
        }
    }

    /// One page of a scan.
    pub(crate) async fn scan_page(
        &mut self,
        request: &jubilant_core::db::ScanRequest,
    ) -> Result<jubilant_core::db::ScanPage, Failure> {
        match self {
            Conn::Embedded(db) => db
                .scan(request)
                .await
                .map_err(|error| Failure::from_db(&error)),
            Conn::Remote(remote) => {
                let request = request.clone();
                remote
                    .call(|client| async move { client.scan_page(&request).await })
                    .await
            }
        }
    }

    /// Keys locked right now (over the network, as INFO reports them).
    pub(crate) async fn keys_locked(&mut self) -> Result<u64, Failure> {
        match self {
            Conn::Embedded(db) => {
                let locks = db.stats().locks;
                Ok(locks.keys_locked.max(locks.holders))
            }
            Conn::Remote(remote) => {
                let info = remote
                    .call(|client| async move { client.info().await })
                    .await?;
                info.lines()
                    .find_map(|line| line.strip_prefix("keys_locked:"))
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| Failure::Refused(format!("INFO has no keys_locked: {info}")))
            }
        }
    }
}
