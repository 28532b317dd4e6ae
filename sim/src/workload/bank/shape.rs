//! The shape of one bank world, drawn from its seed: how many accounts,
//! clients and notes, how often each kind of transaction runs, and the
//! engine's and server's settings; and the transactions it builds.

use std::fmt;
use std::sync::Arc;

use jubilant_core::db::{CommitEvent, CommitObserver, DbOptions, Durability, Value};
use jubilant_core::mutex::lock;
use jubilant_core::sabotage::Sabotage;
use jubilant_core::txn::{Mode, Op, Txn};
use jubilant_io_sim::SimRng;
use jubilant_server::config::Config;

use super::hostile::Hostility;
use super::{LIVENESS_CLIENTS, Model, SERVER_PORT, data_dir, server_addr};

#[derive(Clone, Debug)]
pub(super) struct Shape {
    pub(super) hot: u64,
    pub(super) cold: u64,
    pub(super) hot_pct: u64,
    pub(super) clients: u64,
    pub(super) guarded_pct: u64,
    pub(super) audit_pct: u64,
    pub(super) async_pct: u64,
    pub(super) think_us_max: u64,
    pub(super) checkpoint_every_us_max: u64,
    pub(super) segment_bytes: u64,
    pub(super) cache_pages: u64,
    pub(super) notes: u64,
    /// Per cent of transactions that work on notes.
    pub(super) note_pct: u64,
    pub(super) note_bytes_max: u64,
    /// Per cent of note writes that set a TTL.
    pub(super) note_ttl_pct: u64,
    pub(super) vlog_gc_live_pct: u8,
    pub(super) vlog_gc_interval_ms: u64,
    pub(super) sweep_interval_ms: u64,
    /// Drawn from their own stream (added after the bank's seeds were in
    /// the corpus, which keep their worlds): a lock wait past this is
    /// `Busy` (0: none).
    pub(super) lock_wait_ms_max: u64,
    /// Server workload: how long a client waits for an answer.
    pub(super) answer_timeout_ms: u64,
    /// Server workload: requests a connection may have in flight.
    pub(super) in_flight_per_connection: usize,
    /// Server workload: the server's own timed checkpoints (0: none).
    pub(super) checkpoint_interval_ms: u64,
    /// Server workload: per cent of lives that end in a clean shutdown
    /// (as on SIGTERM) rather than a crash.
    pub(super) shutdown_pct: u64,
    /// Server workload: the hostile clients beside the honest ones.
    pub(super) hostility: Hostility,
    /// Server workload: per cent of the honest clients that speak RESP
    /// (to the RESP listener) rather than the native protocol.
    pub(super) resp_pct: u64,
}

/// The server workload's bounds on what clients make the server hold: small,
/// so hostile clients reach them within a life.
pub(super) const CONNECTION_QUEUE_BYTES: u64 = 16 * 1024;
pub(super) const QUEUED_BYTES_TOTAL: u64 = 256 * 1024;
pub(super) const REQUEST_BYTES_TOTAL: u64 = 1024 * 1024;
pub(super) const FRAME_BYTES: u32 = 256 * 1024;
pub(super) const RESPONSE_BYTES: u64 = 256 * 1024;
/// How long a clean shutdown may wait for answers to be written.
pub(super) const SHUTDOWN_TIMEOUT_MS: u64 = 30;

/// The key of account `n`: `acct-`, then `n` as 4 big-endian bytes and a
/// `0xff`, so keys are binary (not UTF-8) and ordered as the accounts are.
#[allow(
    clippy::big_endian_bytes,
    reason = "keys order bytewise: big-endian keeps them in account order"
)]
pub(super) fn account_key(n: u64) -> Vec<u8> {
    let n = u32::try_from(n).expect("fewer than 2^32 accounts");
    let mut key = ACCOUNT_PREFIX.to_vec();
    key.extend_from_slice(&n.to_be_bytes());
    key.push(0xff);
    key
}

/// What every account's key begins with.
pub(crate) const ACCOUNT_PREFIX: &[u8] = b"acct-";

/// The key of note `n`: `note`, a NUL, then `n` (binary keys again).
pub(super) fn note_key(n: u64) -> Vec<u8> {
    let mut key = b"note\x00".to_vec();
    key.extend_from_slice(format!("{n:02}").as_bytes());
    key
}

/// The inline value limit the bank's database is created with.
const INLINE_BYTES: u64 = 512;

impl Shape {
    pub(super) fn draw(rng: &mut SimRng, settings: &mut SimRng) -> Self {
        Shape {
            lock_wait_ms_max: [0, 0, settings.between(1, 20)][settings.below(3) as usize],
            answer_timeout_ms: settings.between(50, 2_000),
            in_flight_per_connection: settings.between(1, 16) as usize,
            checkpoint_interval_ms: [0, settings.between(10, 500)][settings.below(2) as usize],
            shutdown_pct: [0, settings.between(10, 60)][settings.below(2) as usize],
            hostility: Hostility::draw(settings),
            resp_pct: [0, 34, 67, 100][settings.below(4) as usize],
            hot: rng.between(2, 8),
            cold: rng.between(0, 200),
            hot_pct: rng.between(20, 100),
            clients: rng.between(2, 10),
            guarded_pct: rng.between(0, 60),
            audit_pct: rng.between(1, 15),
            async_pct: [0, 50, 100, rng.between(0, 100)][rng.below(4) as usize],
            think_us_max: rng.between(0, 2_000),
            checkpoint_every_us_max: rng.between(1_000, 300_000),
            segment_bytes: rng.between(16, 256) * 1024,
            cache_pages: rng.between(64, 300),
            notes: [0, rng.between(1, 4), rng.between(1, 30)][rng.below(3) as usize],
            note_pct: rng.between(5, 50),
            note_bytes_max: rng.between(1, 3 * INLINE_BYTES),
            note_ttl_pct: [0, rng.between(1, 100)][rng.below(2) as usize],
            vlog_gc_live_pct: rng.between(20, 90) as u8,
            vlog_gc_interval_ms: rng.between(1, 50),
            sweep_interval_ms: rng.between(1, 100),
        }
    }

    pub(super) fn options(&self, sabotage: Sabotage, model: &Model) -> DbOptions {
        let observed = Arc::clone(model);
        DbOptions {
            cache_bytes: self.cache_pages * 4096,
            // A few pages, from what the seed drew already, so cuts happen.
            truncate_tail_bytes_min: (1 + self.cache_pages % 8) * 4096,
            wal_segment_bytes: self.segment_bytes,
            checkpoint_wal_bytes: self.segment_bytes,
            inline_value_bytes_max: INLINE_BYTES as u32,
            // A value is one WAL record: it must fit the smallest segment.
            value_bytes_max: 8 * 1024,
            vlog_gc_live_pct: self.vlog_gc_live_pct,
            vlog_gc_interval_ms: self.vlog_gc_interval_ms,
            sweep_interval_ms: self.sweep_interval_ms,
            sweep_keys_max: 16,
            lock_wait_ms_max: self.lock_wait_ms_max,
            commit_observer: Some(CommitObserver(Arc::new(move |event| match event {
                CommitEvent::Logged {
                    lsn,
                    now_ms,
                    mutations,
                } => lock(&observed).applied(lsn, now_ms, mutations),
                CommitEvent::Discarded { from_lsn } => lock(&observed).discarded(from_lsn),
            }))),
            sabotage,
            ..DbOptions::default()
        }
    }

    /// The server workload's server: on the node's address, with this
    /// world's limits (the database it serves is opened by the workload).
    pub(super) fn server_config(&self) -> Config {
        let mut config = Config {
            data_dir: data_dir(),
            ..Config::default()
        };
        config.server.listen_address = server_addr().ip();
        config.server.port = SERVER_PORT;
        config.resp.listen = super::resp_addr().to_string();
        config.server.max_in_flight_per_connection = self.in_flight_per_connection;
        config.server.max_in_flight_total = self.in_flight_per_connection * 4;
        config.server.connection_queue_bytes_max = CONNECTION_QUEUE_BYTES;
        config.server.queued_bytes_total_max = QUEUED_BYTES_TOTAL;
        config.server.request_bytes_total_max = REQUEST_BYTES_TOTAL;
        config.limits.frame_bytes_max = FRAME_BYTES;
        config.limits.response_bytes_max = RESPONSE_BYTES;
        config.server.frame_read_timeout_ms = self.hostility.frame_timeout_ms;
        config.server.tcp_keepalive_ms = super::hostile::KEEPALIVE_MS;
        config.server.shutdown_timeout_ms = SHUTDOWN_TIMEOUT_MS;
        // Room for every honest client (and the liveness ones) and the
        // hostile ones that hold a connection; a crowd goes past it.
        config.server.max_connections = (self.clients
            + 1
            + LIVENESS_CLIENTS
            + self.hostility.non_readers
            + self.hostility.tricklers
            + self.hostility.vanishers
            + 2) as usize;
        config.server.max_connections += self.hostility.intruders as usize;
        if self.hostility.users {
            use super::hostile::{
                BANK_PASSWORD, BANK_USER, GUEST_ACL, GUEST_PASSWORD, GUEST_USER, password_hash,
            };
            config.users = vec![
                jubilant_server::config::UserConfig {
                    name: BANK_USER.to_owned(),
                    password_hash: password_hash(BANK_PASSWORD),
                    acl: self.hostility.bank_acl.map(str::to_owned),
                },
                jubilant_server::config::UserConfig {
                    name: GUEST_USER.to_owned(),
                    password_hash: password_hash(GUEST_PASSWORD),
                    acl: Some(GUEST_ACL.to_owned()),
                },
            ];
            config.audit = super::audit::config();
        }
        config.storage.checkpoint_interval_ms = self.checkpoint_interval_ms;
        // The audit after a restart reads every account and note.
        let audit = read_all(self);
        config.limits.keys_per_txn_max = config.limits.keys_per_txn_max.max(audit.keys().len());
        config.limits.ops_per_txn_max = config.limits.ops_per_txn_max.max(audit.ops().len());
        config
    }

    pub(super) fn accounts(&self) -> u64 {
        self.hot + self.cold
    }

    /// An account index below `universe`, hot ones `hot_pct` of the time.
    pub(super) fn account(&self, rng: &mut SimRng, universe: u64) -> u64 {
        if universe <= self.hot || rng.below(100) < self.hot_pct {
            rng.below(self.hot.min(universe))
        } else {
            self.hot + rng.below(universe - self.hot)
        }
    }

    pub(super) fn note(&self, rng: &mut SimRng) -> Vec<u8> {
        note_key(rng.below(self.notes))
    }

    /// A note's value: its writer's tag, then filler up to a random size.
    pub(super) fn note_value(&self, tag: &str, rng: &mut SimRng) -> Value {
        let mut text = format!("{tag}-");
        let len = rng.between(1, self.note_bytes_max) as usize;
        while text.len() < len {
            text.push((b'a' + (text.len() % 26) as u8) as char);
        }
        Value::String(text)
    }

    /// A TTL for a note write, if it gets one: short ones expire while the
    /// clients run, long ones survive restarts unless the clock jumps.
    pub(super) fn note_ttl(&self, rng: &mut SimRng) -> Option<u64> {
        (rng.below(100) < self.note_ttl_pct).then(|| {
            if rng.chance(0.6) {
                rng.between(0, 40)
            } else {
                rng.between(1_000, 3_600_000)
            }
        })
    }

    /// A transaction over notes: a read of one (and its TTL), or a change to
    /// one (set, delete, expire or persist) that also reads another.
    pub(super) fn note_txn(&self, tag: &str, rng: &mut SimRng) -> Txn {
        let mut txn = Txn::new();
        let a = self.note(rng);
        if rng.chance(0.3) {
            let id = txn.key(a, Mode::R);
            txn.get(id).op(Op::Ttl(id));
            return txn;
        }
        let b = self.note(rng);
        let id = txn.key(a.clone(), Mode::RW);
        let other = (b != a).then(|| txn.key(b, Mode::R));
        txn.get(id);
        match rng.below(10) {
            0 => {
                txn.del(id);
            }
            1 => {
                txn.op(Op::Expire(id, rng.between(0, 40)));
            }
            2 => {
                txn.op(Op::Persist(id));
            }
            _ => {
                let value = self.note_value(tag, rng);
                txn.op(Op::Set(id, value, self.note_ttl(rng)));
            }
        }
        txn.op(Op::Ttl(id));
        if let Some(other) = other {
            txn.get(other).op(Op::Ttl(other));
        }
        txn
    }

    pub(super) fn durability(&self, rng: &mut SimRng) -> Durability {
        if rng.below(100) < self.async_pct {
            Durability::Async
        } else {
            Durability::Sync
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hot={} cold={} hot_pct={} clients={} guarded_pct={} audit_pct={} async_pct={} think_us_max={} checkpoint_every_us_max={} segment_bytes={} cache_pages={} notes={} note_pct={} note_bytes_max={} note_ttl_pct={} vlog_gc_live_pct={} vlog_gc_interval_ms={} sweep_interval_ms={} lock_wait_ms_max={} answer_timeout_ms={} in_flight_per_connection={} checkpoint_interval_ms={} shutdown_pct={} non_readers={} tricklers={} crowd={} vanishers={} resp_pct={}",
            self.hot,
            self.cold,
            self.hot_pct,
            self.clients,
            self.guarded_pct,
            self.audit_pct,
            self.async_pct,
            self.think_us_max,
            self.checkpoint_every_us_max,
            self.segment_bytes,
            self.cache_pages,
            self.notes,
            self.note_pct,
            self.note_bytes_max,
            self.note_ttl_pct,
            self.vlog_gc_live_pct,
            self.vlog_gc_interval_ms,
            self.sweep_interval_ms,
            self.lock_wait_ms_max,
            self.answer_timeout_ms,
            self.in_flight_per_connection,
            self.checkpoint_interval_ms,
            self.shutdown_pct,
            self.hostility.non_readers,
            self.hostility.tricklers,
            self.hostility.crowd,
            self.hostility.vanishers,
            self.resp_pct
        )
    }
}

/// A read-only transaction over every account: the audit.
pub(super) fn audit(shape: &Shape) -> Txn {
    let mut txn = Txn::new();
    for n in 0..shape.accounts() {
        let id = txn.key(account_key(n), Mode::R);
        txn.get(id);
    }
    txn
}

/// The audit and a read of every note with its TTL: what a check after a
/// restart reads.
pub(super) fn read_all(shape: &Shape) -> Txn {
    let mut txn = audit(shape);
    for n in 0..shape.notes {
        let id = txn.key(note_key(n), Mode::R);
        txn.get(id).op(Op::Ttl(id));
    }
    txn
}
