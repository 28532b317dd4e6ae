//! The server's online backup (design 12.2): one at a time, read by its
//! client in chunks, ended by the client or, once idle past
//! `storage.backup_pin_timeout_ms`, by the server.
//!
//! Invariant kept here: **no pin outlives its use by more than the
//! timeout**: a client that stalls or vanishes mid-backup cannot hold WAL
//! segments and freed pages (disk space) forever. The pin itself lives in
//! [`Backup`], released when the last in-flight read of it is done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jubilant_core::db::{BACKUP_CHUNK_BYTES_MAX, Backup, Db};
use jubilant_core::env::{Env, MonoTime};
use jubilant_core::mutex::lock;

use crate::wire::{ErrorCode, ErrorReply, Response};

/// The one backup a server runs, and its counters.
pub(crate) struct BackupSlot<E: Env> {
    active: Mutex<Option<Active<E>>>,
    next_id: AtomicU64,
    started: AtomicU64,
    ended: AtomicU64,
    expired: AtomicU64,
    bytes_sent: AtomicU64,
}

struct Active<E: Env> {
    id: u64,
    backup: Arc<Backup<E>>,
    last_used: MonoTime,
}

/// INFO's `# Backup` figures from the server's side.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackupFacts {
    /// Whether a backup runs now.
    pub running: bool,
    /// Backups begun.
    pub started: u64,
    /// Backups their clients ended.
    pub ended: u64,
    /// Backups ended by the server after the pin timeout.
    pub expired: u64,
    /// File bytes sent to backup clients.
    pub bytes_sent: u64,
}

impl<E: Env> BackupSlot<E> {
    pub(crate) fn new() -> Self {
        BackupSlot {
            active: Mutex::new(None),
            next_id: AtomicU64::new(1),
            started: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// Begins a backup of `db` (a checkpoint, then the pin).
    pub(crate) async fn begin(&self, db: &Db<E>, now: MonoTime, timeout: Duration) -> Response {
        self.expire(now, timeout);
        if lock(&self.active).is_some() {
            return in_progress();
        }
        let backup = match db.backup().await {
            Ok(backup) => backup,
            Err(error) => return Response::Error(ErrorReply::from_db(&error)),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let begun = backup.info();
        let mut active = lock(&self.active);
        // The store allows one pin, so no other begin got this far.
        assert!(active.is_none(), "one backup at a time");
        *active = Some(Active {
            id,
            backup: Arc::new(backup),
            last_used: now,
        });
        self.started.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            backup = id,
            generation = begun.generation,
            end_lsn = begun.end_lsn,
            "backup began"
        );
        Response::BackupBegun(id, begun)
    }

    /// Up to `length` bytes (at most a chunk, and half the answer bound)
    /// of file `file` of backup `id`.
    pub(crate) async fn read(
        &self,
        id: u64,
        (file, offset, length): (u32, u64, u32),
        now: MonoTime,
        response_bytes_max: u64,
    ) -> Response {
        let backup = {
            let mut active = lock(&self.active);
            match active.as_mut().filter(|active| active.id == id) {
                Some(active) => {
                    active.last_used = now;
                    Arc::clone(&active.backup)
                }
                None => return no_such(id),
            }
        };
        let most = usize::try_from(response_bytes_max / 2)
            .unwrap_or(usize::MAX)
            .clamp(1, BACKUP_CHUNK_BYTES_MAX);
        let length = (length as usize).min(most);
        match backup.read(file as usize, offset, length).await {
            Ok(data) => {
                self.bytes_sent
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Response::BackupChunk(data)
            }
            Err(error) => Response::Error(ErrorReply::from_db(&error)),
        }
    }

    /// Ends backup `id`, releasing its pin.
    pub(crate) fn end(&self, id: u64) -> Response {
        let mut active = lock(&self.active);
        if active.as_ref().is_none_or(|active| active.id != id) {
            return no_such(id);
        }
        *active = None;
        self.ended.fetch_add(1, Ordering::Relaxed);
        tracing::info!(backup = id, "backup ended");
        Response::BackupEnded
    }

    /// Ends a backup idle for `timeout` or longer.
    pub(crate) fn expire(&self, now: MonoTime, timeout: Duration) {
        let mut active = lock(&self.active);
        if let Some(idle) = active
            .as_ref()
            .filter(|active| now.saturating_since(active.last_used) >= timeout)
        {
            tracing::warn!(
                backup = idle.id,
                timeout_ms = timeout.as_millis() as u64,
                "a backup read nothing within backup_pin_timeout_ms; its pin is released"
            );
            *active = None;
            self.expired.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether backup `id` runs.
    fn running(&self, id: u64) -> bool {
        lock(&self.active)
            .as_ref()
            .is_some_and(|active| active.id == id)
    }

    /// Ends any backup (shutdown).
    pub(crate) fn clear(&self) {
        *lock(&self.active) = None;
    }

    pub(crate) fn facts(&self) -> BackupFacts {
        BackupFacts {
            running: lock(&self.active).is_some(),
            started: self.started.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

/// Ends backup `id` once it is idle for `timeout`, checking a few times
/// per timeout, until it ends or the server stops.
pub(crate) async fn watchdog<E: Env>(
    shared: Arc<crate::runtime::Shared<E>>,
    id: u64,
    timeout: Duration,
) {
    let step = (timeout / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    while shared.backup.running(id) && !shared.stopping.load(Ordering::Acquire) {
        shared.env.sleep(step).await;
        shared.backup.expire(shared.env.now_mono(), timeout);
    }
}

fn in_progress() -> Response {
    Response::Error(ErrorReply::new(
        ErrorCode::BackupInProgress,
        "a backup is already running; one runs at a time".to_owned(),
    ))
}

fn no_such(id: u64) -> Response {
    Response::Error(ErrorReply::new(
        ErrorCode::NoSuchBackup,
        format!(
            "no backup {id} is running: it ended, or read nothing within \
             storage.backup_pin_timeout_ms and its pin was released"
        ),
    ))
}
