//! The audit log (design 13.4): who authenticated, who was refused, and
//! every administrative command with its outcome, one JSON object per
//! line, in a file of its own (`[audit] file`; off by default), apart from
//! the operational log.
//!
//! Invariants kept here:
//! - **Auditing never stalls a request**: events go through a bounded
//!   queue ([`QUEUE_EVENTS_MAX`]) to one writer task; when it is full an
//!   event is counted as dropped (INFO `audit_dropped`), never waited for.
//! - **The file is bounded**: past `max_bytes` it is rotated (`file` →
//!   `file.1` → ... → `file.keep`, the oldest removed), so the log holds at
//!   most `(keep + 1) × max_bytes` and one event.
//! - **Every line is whole, or belongs to a batch whose fate is
//!   unknown**: each batch is written then synced. A crash may cut or
//!   garble a batch not yet synced, and a failed write or sync leaves
//!   unknown what of its batch reached the disk (the next batch is written
//!   over it, from the last synced length, but a cut line or zeros may
//!   survive). The next open ends a cut line, so what follows starts on a
//!   line of its own; a reader skips a line that does not parse.
//! - **A file is rotated before an append once it holds `max_bytes`**: all
//!   but its last batch (at most [`BATCH_EVENTS_MAX`] lines) is under
//!   `max_bytes`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::mpsc;
use jubilant_core::env::{Env, File, OpenMode};
use jubilant_core::mutex::lock;

use crate::config::AuditConfig;

/// Events waiting for the writer at most.
pub const QUEUE_EVENTS_MAX: usize = 4096;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A password verified.
    AuthOk,
    /// A password did not verify (or the user does not exist).
    AuthFailed,
    /// An ACL refused a request.
    Denied,
    /// An administrative command ran (`@admin`, or `@dangerous` and
    /// `@write`): `outcome` says how it ended.
    Admin,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::AuthOk => "auth_ok",
            Event::AuthFailed => "auth_failed",
            Event::Denied => "denied",
            Event::Admin => "admin",
        }
    }
}

/// Which listener an event came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The native protocol.
    Native,
    /// RESP.
    Resp,
    /// Admin HTTP.
    Admin,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Native => "native",
            Via::Resp => "resp",
            Via::Admin => "admin",
        }
    }
}

/// Who an event is about: a user on a connection.
#[derive(Clone, Copy, Debug)]
pub struct Who<'a> {
    /// The user (as given, for a failed authentication; empty: none).
    pub user: &'a str,
    /// The client's address.
    pub client: SocketAddr,
    /// The listener.
    pub listener: Via,
}

/// One event, as the writer receives it.
#[derive(Debug)]
pub struct Record {
    /// When (Unix ms).
    pub ts_ms: u64,
    /// What.
    pub event: Event,
    /// The user it concerns (as given, for a failure).
    pub user: String,
    /// The client's address.
    pub client: SocketAddr,
    /// The listener.
    pub listener: Via,
    /// The command's ACL name (`auth` for authentication).
    pub command: &'static str,
    /// The key an ACL refused.
    pub key: Option<Vec<u8>>,
    /// `ok`, or why not.
    pub outcome: String,
}

impl Record {
    /// The record as one JSON line (design 13.4).
    pub fn to_line(&self) -> String {
        let mut object = serde_json::json!({
            "ts_ms": self.ts_ms,
            "event": self.event.name(),
            "user": self.user,
            "client": self.client.to_string(),
            "listener": self.listener.name(),
            "command": self.command,
            "outcome": self.outcome,
        });
        if let Some(key) = &self.key {
            object["key"] = serde_json::Value::from(hex(key));
        }
        let mut line = object.to_string();
        line.push('\n');
        line
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The audit log's sending end, shared by every connection.
#[derive(Default)]
pub struct Audit {
    /// One sender, kept: a futures channel gives every sender a slot of
    /// its own, so a sender cloned per event would never find it full.
    queue: Option<Mutex<mpsc::Sender<Record>>>,
    counts: Arc<AuditCounts>,
}

/// What the audit log has done (INFO `# Auth`).
#[derive(Debug, Default)]
pub struct AuditCounts {
    /// Events written.
    pub written: AtomicU64,
    /// Events dropped: the queue was full, or the file could not be
    /// written.
    pub dropped: AtomicU64,
}

impl Audit {
    /// The audit log of `config`, and its writer task (to spawn); none
    /// when it is off.
    /// `unrotated` is sabotage `audit-unrotated`: `false` in every real
    /// call.
    pub fn start<E: Env>(
        env: &E,
        config: &AuditConfig,
        unrotated: bool,
    ) -> (Audit, Option<impl Future<Output = ()> + Send + 'static>) {
        let Some(file) = config.file.clone() else {
            return (Audit::default(), None);
        };
        let (queue, events) = mpsc::channel(QUEUE_EVENTS_MAX);
        let counts = Arc::new(AuditCounts::default());
        let writer = Writer {
            env: env.clone(),
            path: file,
            max_bytes: if unrotated {
                u64::MAX
            } else {
                config.max_bytes
            },
            keep: config.keep,
            counts: Arc::clone(&counts),
        };
        let audit = Audit {
            queue: Some(Mutex::new(queue)),
            counts,
        };
        (audit, Some(writer.run(events)))
    }

    /// Whether events are recorded.
    pub fn on(&self) -> bool {
        self.queue.is_some()
    }

    /// Records `event` about `who` at `ts_ms`.
    pub fn event(
        &self,
        ts_ms: u64,
        event: Event,
        who: Who<'_>,
        (command, key): (&'static str, Option<&[u8]>),
        outcome: impl Into<String>,
    ) {
        if !self.on() {
            return;
        }
        self.record(Record {
            ts_ms,
            event,
            user: who.user.to_owned(),
            client: who.client,
            listener: who.listener,
            command,
            key: key.map(<[u8]>::to_vec),
            outcome: outcome.into(),
        });
    }

    /// Queues `record`, or counts it dropped if the queue is full.
    pub fn record(&self, record: Record) {
        let Some(queue) = &self.queue else {
            return;
        };
        if lock(queue).try_send(record).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events written and dropped.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.written.load(Ordering::Relaxed),
            self.counts.dropped.load(Ordering::Relaxed),
        )
    }
}

struct Writer<E: Env> {
    env: E,
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    counts: Arc<AuditCounts>,
}

/// Events written per batch at most (then synced).
pub const BATCH_EVENTS_MAX: usize = 256;

impl<E: Env> Writer<E> {
    /// Writes events until every sender is gone.
    async fn run(self, events: mpsc::Receiver<Record>) {
        let mut batches = events.ready_chunks(BATCH_EVENTS_MAX);
        let mut file: Option<(E::File, u64)> = None;
        while let Some(batch) = batches.next().await {
            let mut text = String::new();
            for record in &batch {
                text.push_str(&record.to_line());
            }
            let events = batch.len() as u64;
            match self.append(&mut file, text.as_bytes()).await {
                Ok(()) => {
                    self.counts.written.fetch_add(events, Ordering::Relaxed);
                }
                Err(error) => {
                    // The next batch goes where this one began, over
                    // whatever of it landed.
                    self.counts.dropped.fetch_add(events, Ordering::Relaxed);
                    tracing::warn!(%error, path = %self.path.display(), "audit events not written");
                }
            }
        }
    }

    async fn append(&self, file: &mut Option<(E::File, u64)>, bytes: &[u8]) -> std::io::Result<()> {
        if file.is_none() {
            *file = Some(self.open().await?);
        }
        if file.as_ref().is_some_and(|(_, len)| *len >= self.max_bytes) {
            *file = None;
            self.rotate().await?;
            *file = Some(self.open().await?);
        }
        let Some((open, len)) = file.as_mut() else {
            return Ok(());
        };
        // What a failed batch left past the last synced one (bytes, or
        // zeros a full disk's writeback lost) goes first.
        if open.len().await? > *len {
            open.set_len(*len).await?;
        }
        open.write_at(*len, bytes).await?;
        open.sync_data().await?;
        *len += bytes.len() as u64;
        Ok(())
    }

    /// The file, created if missing, and its length.
    async fn open(&self) -> std::io::Result<(E::File, u64)> {
        let file = match self.env.open(&self.path, OpenMode::Existing).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    self.env.create_dir_all(dir).await?;
                }
                self.env.open(&self.path, OpenMode::CreateNew).await?
            }
            Err(error) => return Err(error),
        };
        let mut len = file.len().await?;
        // A crash can cut the last line: end it, so the next line starts
        // on a line of its own (a reader skips the cut one).
        if len > 0 && file.read_at(len - 1, 1).await? != b"\n" {
            file.write_at(len, b"\n").await?;
            len += 1;
        }
        Ok((file, len))
    }

    /// `file.k` → `file.k+1` for each kept one (the oldest goes), then
    /// `file` → `file.1`.
    async fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: u32| numbered(&self.path, n);
        if self.keep == 0 {
            return ignore_missing(self.env.remove(&self.path).await);
        }
        ignore_missing(self.env.remove(&numbered(self.keep)).await)?;
        for n in (1..self.keep).rev() {
            ignore_missing(self.env.rename(&numbered(n), &numbered(n + 1)).await)?;
        }
        ignore_missing(self.env.rename(&self.path, &numbered(1)).await)
    }
}

/// `path` with `.n` appended.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line_with_the_key_in_hex() {
        let record = Record {
            ts_ms: 7,
            event: Event::Denied,
            user: "al\"ice".to_owned(),
            client: "10.0.0.1:4000".parse().expect("address"),
            listener: Via::Resp,
            command: "set",
            key: Some(b"k\n".to_vec()),
            outcome: "NOPERM".to_owned(),
        };
        let line = record.to_line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(parsed["user"], "al\"ice");
        assert_eq!(parsed["key"], "6b0a");
        assert_eq!(parsed["event"], "denied");
        assert_eq!(parsed["listener"], "resp");
        assert_eq!(parsed["client"], "10.0.0.1:4000");
    }

    #[test]
    fn a_full_queue_drops_events_and_counts_them() {
        let (queue, _events) = mpsc::channel(QUEUE_EVENTS_MAX);
        let audit = Audit {
            queue: Some(Mutex::new(queue)),
            counts: Arc::default(),
        };
        let who = Who {
            user: "u",
            client: "10.0.0.1:1".parse().expect("address"),
            listener: Via::Native,
        };
        for _ in 0..QUEUE_EVENTS_MAX + 10 {
            audit.event(1, Event::AuthOk, who, ("auth", None), "ok");
        }
        let (_, dropped) = audit.counts();
        assert!((9..=10).contains(&dropped), "{dropped} dropped");
    }

    #[test]
    fn rotation_names_number_the_kept_files() {
        assert_eq!(
            numbered(Path::new("/var/log/audit.log"), 2),
            PathBuf::from("/var/log/audit.log.2")
        );
    }
}
