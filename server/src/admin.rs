//! The admin HTTP listener (off by default; `[admin] listen`,
//! `--admin-listen`): `GET /metrics` (Prometheus text, [`crate::metrics`]),
//! `GET /healthz` (200 while the process serves) and `GET /readyz` (200
//! when the database is open, writable and not shutting down; 503 and the
//! reason otherwise).
//!
//! With `[admin] metrics_auth = true`, `/metrics` takes HTTP basic auth:
//! a configured user, with its password, whose ACL allows `INFO` (the
//! figures are INFO's); 401 otherwise (403 for a user its ACL forbids).
//! The probes stay open: an orchestrator asks them without credentials.
//!
//! Invariants kept here:
//! - **Bounded**: one request per connection (answered, then closed), a
//!   request head of at most [`HEAD_BYTES_MAX`] read within the server's
//!   frame timeout, at most [`CONNECTIONS_MAX`] connections at once (more
//!   are closed unanswered), so a scraper or a stranger cannot hold the
//!   server's memory or its data connections' slots.
//! - **Read-only**: nothing here changes the database.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::{Either, select};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::env::{Env, Listener};

use crate::audit::{Event, Via, Who};
use crate::info;
use crate::runtime::Shared;
use crate::wire::HealthStatus;

/// The longest request head (request line and headers) read.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// Admin connections served at once.
pub const CONNECTIONS_MAX: u64 = 16;
/// How often the accept loop looks at whether the server stopped.
const TICK: Duration = Duration::from_millis(50);

/// Serves `listener` until the server has stopped (`shared.admin_done`).
pub(crate) async fn serve<E: Env>(shared: Arc<Shared<E>>, listener: E::Listener) {
    let open = Arc::new(AtomicU64::new(0));
    loop {
        let accept = pin!(listener.accept());
        let tick = pin!(shared.env.sleep(TICK));
        match select(accept, tick).await {
            Either::Left((Ok((stream, peer)), _)) => {
                if open.load(Ordering::Acquire) >= CONNECTIONS_MAX {
                    tracing::debug!(%peer, "admin connection refused: too many open");
                    continue;
                }
                open.fetch_add(1, Ordering::AcqRel);
                let shared = Arc::clone(&shared);
                let open = Arc::clone(&open);
                drop(shared.env.clone().spawn("admin-connection", async move {
                    connection(&shared, stream, peer).await;
                    open.fetch_sub(1, Ordering::AcqRel);
                }));
            }
            Either::Left((Err(error), _)) => {
                tracing::warn!(%error, "admin accept failed");
                shared.env.sleep(TICK).await;
            }
            Either::Right(_) => {
                if shared.admin_done.load(Ordering::Acquire) {
                    return;
                }
            }
        }
    }
}

/// A response: status line, content type, body.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    /// Asks for basic auth (`WWW-Authenticate`).
    challenge: bool,
}

impl Answer {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            challenge: false,
        }
    }

    fn unauthorized(body: &str) -> Self {
        Answer {
            challenge: true,
            ..Answer::text("401 Unauthorized", body)
        }
    }
}

async fn connection<E: Env>(shared: &Shared<E>, stream: E::Stream, peer: SocketAddr) {
    let (mut reader, mut writer) = stream.split();
    let timeout = Duration::from_millis(shared.config.server.frame_read_timeout_ms);
    let head = {
        let read = pin!(read_head(&mut reader));
        let late = pin!(shared.env.sleep(timeout));
        match select(read, late).await {
            Either::Left((head, _)) => head,
            Either::Right(_) => Err(Answer::text(
                "408 Request Timeout",
                "request head too slow\n",
            )),
        }
    };
    let answer = match head {
        Ok(head) => route(shared, &head, peer).await,
        Err(answer) => answer,
    };
    tracing::debug!(%peer, status = answer.status, "admin request");
    let bytes = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n{}",
        answer.status,
        answer.content_type,
        answer.body.len(),
        if answer.challenge {
            "WWW-Authenticate: Basic realm=\"jubilant\", charset=\"UTF-8\"\r\n"
        } else {
            ""
        },
        answer.body
    );
    let write = pin!(async {
        writer.write_all(bytes.as_bytes()).await?;
        writer.close().await
    });
    let late = pin!(shared.env.sleep(timeout));
    if let Either::Left((Err(error), _)) = select(write, late).await {
        tracing::debug!(%peer, %error, "admin answer not written");
    }
}

/// Reads up to the blank line that ends a request head.
async fn read_head(reader: &mut (impl futures::io::AsyncRead + Unpin)) -> Result<String, Answer> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = reader
            .read(&mut buffer)
            .await
            .map_err(|_| Answer::text("400 Bad Request", "unreadable request\n"))?;
        if n == 0 {
            return Err(Answer::text("400 Bad Request", "the request ended early\n"));
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return String::from_utf8(head)
                .map_err(|_| Answer::text("400 Bad Request", "a request head is ASCII\n"));
        }
        if head.len() > HEAD_BYTES_MAX {
            return Err(Answer::text(
                "431 Request Header Fields Too Large",
                format!("a request head is at most {HEAD_BYTES_MAX} bytes\n"),
            ));
        }
    }
}

/// The user and password of a head's `Authorization: Basic` header.
fn basic_credentials(head: &str) -> Option<(String, Vec<u8>)> {
    use base64ct::{Base64, Encoding};
    let value = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim())
    })?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Base64::decode_vec(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// `None` if `head` may read the metrics, else the refusal.
async fn metrics_refusal<E: Env>(
    shared: &Shared<E>,
    head: &str,
    peer: SocketAddr,
) -> Option<Answer> {
    if !shared.config.admin.metrics_auth {
        return None;
    }
    let Some((user, password)) = basic_credentials(head) else {
        return Some(Answer::unauthorized(
            "basic auth required: a user whose ACL allows INFO\n",
        ));
    };
    let verified = shared
        .auth
        .authenticate(&shared.env, peer.ip(), (&user, &password), &shared.stopping)
        .await;
    let who = Who {
        user: &user,
        client: peer,
        listener: Via::Admin,
    };
    if !verified {
        tracing::info!(%peer, user, "authentication failed (admin)");
        let text = "invalid username-password pair or user is disabled";
        shared.audit(Event::AuthFailed, who, ("auth", None), text);
        return Some(Answer::unauthorized(&format!("{text}\n")));
    }
    shared.audit(Event::AuthOk, who, ("auth", None), "ok");
    let info = crate::commands::find("info")
        .filter(|info| shared.auth.acl(&user).is_some_and(|acl| acl.allows(info)));
    if info.is_none() {
        shared.auth.denied();
        tracing::info!(%peer, user, "denied by an ACL (admin /metrics)");
        let text = format!("user {user} has no permission to run 'info'");
        shared.audit(Event::Denied, who, ("info", None), text.as_str());
        return Some(Answer::text("403 Forbidden", format!("{text}\n")));
    }
    None
}

async fn route<E: Env>(shared: &Shared<E>, head: &str, peer: SocketAddr) -> Answer {
    let line = head.lines().next().unwrap_or_default();
    let mut words = line.split(' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    if !words
        .next()
        .is_some_and(|version| version.starts_with("HTTP/1."))
    {
        return Answer::text("400 Bad Request", "expected METHOD PATH HTTP/1.x\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return Answer::text("404 Not Found", "try /metrics, /healthz or /readyz\n");
    }
    if method != "GET" {
        return Answer::text("405 Method Not Allowed", "GET only\n");
    }
    match path {
        "/metrics" => {
            if let Some(refusal) = metrics_refusal(shared, head, peer).await {
                return refusal;
            }
            let text = info::render(&shared.db.stats(), shared.facts());
            Answer {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: crate::metrics::render(&text, &shared.latencies),
                challenge: false,
            }
        }
        "/healthz" => Answer::text("200 OK", "ok\n"),
        _ => {
            let health = shared.health();
            match health.status {
                HealthStatus::Ok => Answer::text("200 OK", "ready\n"),
                HealthStatus::ShuttingDown => {
                    Answer::text("503 Service Unavailable", "shutting down\n")
                }
                _ => Answer::text(
                    "503 Service Unavailable",
                    format!("failed: {}\n", health.reason.replace(['\r', '\n'], " ")),
                ),
            }
        }
    }
}
