//! The server's configuration (SPEC 10): a TOML file whose every key has a
//! default, so the server starts with no file at all, and whose unknown keys
//! are an error that names them; command-line flags override it.
//!
//! Invariants kept here:
//! - **Nothing unchecked reaches the engine.** [`Config::from_toml`] parses
//!   and then [`Config::validate`]s every bound, so a bad value is refused
//!   at start with the key's name, never discovered later as a failure.
//! - **Every key is documented once**, in `server/jubilant.example.toml`,
//!   which a test keeps identical to the defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use jubilant_core::db::{DbOptions, Durability, VALUE_BYTES_LIMIT};
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML, has an unknown key, or a value of the wrong type.
    #[error("configuration: {0}")]
    Parse(String),
    /// A value is out of its bounds.
    #[error("configuration: `{key}` {problem}")]
    Invalid {
        /// The key, as `section.name`.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The database directory.
    pub data_dir: PathBuf,
    /// Listening, connections and requests.
    pub server: ServerConfig,
    /// What one request may carry.
    pub limits: LimitsConfig,
    /// The engine: cache, WAL, checkpoints, durability.
    pub storage: StorageConfig,
    /// The TTL sweeper.
    pub ttl: TtlConfig,
    /// The value log and its garbage collection.
    pub vlog: VlogConfig,
    /// Logging.
    pub log: LogConfig,
    /// The RESP (Redis protocol) listener.
    pub resp: RespConfig,
    /// The admin HTTP listener (metrics, health probes).
    pub admin: AdminConfig,
    /// `[[users]]`: who may connect (none: no authentication).
    pub users: Vec<UserConfig>,
    /// The audit log (design 13.4).
    pub audit: AuditConfig,
    /// TLS on every listener (design 13.3).
    pub tls: TlsConfig,
    /// Switches that break the server (and engine) on purpose (tests only).
    #[cfg(feature = "sabotage")]
    #[serde(skip)]
    pub sabotage: jubilant_core::sabotage::Sabotage,
}

/// One `[[users]]` entry (design 13.1).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's name (1 to 64 printable bytes, no spaces).
    pub name: String,
    /// An argon2id hash in PHC format (`jubectl hash-password` makes
    /// one), never a plain password.
    pub password_hash: String,
    /// The user's rules in Redis's ACL syntax (design 13.2), applied from
    /// nothing as `ACL SETUSER` applies them to a new user (so they must
    /// say `on`); absent: `on ~* +@all`, everything.
    #[serde(default)]
    pub acl: Option<String>,
}

/// The longest user name.
pub const USER_NAME_BYTES_MAX: usize = 64;

/// `[server]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address to listen on.
    pub listen_address: IpAddr,
    /// The port to listen on (0: any free port; the log names it).
    pub port: u16,
    /// Runtime worker threads.
    pub workers: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests one connection may have in flight before the server stops
    /// reading from it.
    pub max_in_flight_per_connection: usize,
    /// Requests in flight over all connections before the server stops
    /// reading from sockets.
    pub max_in_flight_total: usize,
    /// A transaction that waited this long for its keys' locks (held by
    /// other transactions) is answered `Busy`, having written nothing.
    pub request_queue_timeout_ms: u64,
    /// Response bytes one connection may have waiting to be written before
    /// the server stops reading from it (a client that does not read).
    pub connection_queue_bytes_max: u64,
    /// Response bytes waiting over all connections before the server stops
    /// reading from sockets.
    pub queued_bytes_total_max: u64,
    /// Request bytes read, or announced by frames being read, and not yet
    /// answered, over all connections: a frame's bytes are reserved when
    /// its length arrives, and no more of it is read until they fit.
    pub request_bytes_total_max: u64,
    /// A frame must arrive whole within this (ms) of its first byte, or the
    /// connection is told `FrameTimeout` and closed.
    pub frame_read_timeout_ms: u64,
    /// A connection with nothing in flight and no request for this long
    /// (ms) is closed (0: never, as in Redis).
    pub idle_timeout_ms: u64,
    /// At shutdown, how long (ms) to wait for responses to be written;
    /// after it, connections whose peers do not read are dropped, and the
    /// database is closed all the same.
    pub shutdown_timeout_ms: u64,
    /// TCP keepalive: idle milliseconds before the first probe (0: off; the
    /// kernel counts whole seconds). A client that vanished (power loss, NAT
    /// timeout) is then found out.
    pub tcp_keepalive_ms: u64,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The largest frame a client may send.
    pub frame_bytes_max: u32,
    /// Keys one transaction may declare.
    pub keys_per_txn_max: usize,
    /// Ops one transaction may carry.
    pub ops_per_txn_max: usize,
    /// The largest value accepted.
    pub value_bytes_max: usize,
    /// The largest answer the server builds: a request whose results would
    /// exceed it gets `ResponseTooLarge`, checked as they accumulate.
    pub response_bytes_max: u64,
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Memory budget for cached pages.
    pub cache_bytes: u64,
    /// The cap on a commit's wait for its batch (SPEC 7.3: a cap, not a
    /// sleep; batches never wait for company), and how long written `async`
    /// commits may wait for an fsync when no `sync` commit asks for one.
    pub group_commit_max_latency_ms: u64,
    /// `sync` or `async`: the durability of requests that name none.
    pub durability: DurabilityName,
    /// A checkpoint at least this often while there are changes (0: only
    /// by WAL size, memory pressure and at shutdown).
    pub checkpoint_interval_ms: u64,
    /// A checkpoint once this many WAL bytes were written since the last.
    pub checkpoint_wal_bytes: u64,
    /// Size of each (preallocated) WAL segment file.
    pub wal_segment_bytes: u64,
    /// An online backup not read from for this long is ended for its
    /// client, releasing its pin (design 12.1).
    pub backup_pin_timeout_ms: u64,
}

/// `[ttl]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TtlConfig {
    /// How often the sweeper runs (0: never; expired keys still read as
    /// missing).
    pub sweep_interval_ms: u64,
    /// Keys the sweeper looks at per run.
    pub sweep_keys_max: usize,
}

/// `[vlog]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VlogConfig {
    /// A WAL segment kept for its values whose live bytes fall under this
    /// per cent of its size is compacted.
    pub gc_live_pct: u8,
    /// How often GC runs (0: never).
    pub gc_interval_ms: u64,
}

/// `[resp]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RespConfig {
    /// `ADDR:PORT` for the RESP listener, or `off`.
    pub listen: String,
    /// Whether `FLUSHDB` and `FLUSHALL` may delete every key.
    pub flush_enabled: bool,
}

/// The RESP listener's address when told none.
pub const RESP_LISTEN_DEFAULT: &str = "127.0.0.1:6379";

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            listen: RESP_LISTEN_DEFAULT.to_owned(),
            flush_enabled: false,
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `ADDR:PORT` for the admin HTTP listener (`/metrics`, `/healthz`,
    /// `/readyz`), or `off` (the default).
    pub listen: String,
    /// Whether `/metrics` takes HTTP basic auth (a configured user whose
    /// ACL allows `INFO`); the probes stay open. Needs `[[users]]`.
    pub metrics_auth: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "off".to_owned(),
            metrics_auth: false,
        }
    }
}

/// `[tls]`: every listener speaks TLS (1.2 or 1.3) when `cert_file` and
/// `key_file` are set; with `ca_file` too, clients must present a
/// certificate that chains to it (mTLS). SIGHUP reloads the files.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA certificates (PEM) client certificates must chain to: mTLS.
    pub ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the listeners speak TLS.
    pub fn on(&self) -> bool {
        self.cert_file.is_some()
    }
}

/// `[audit]`: authentications, denials and administrative commands, one
/// JSON object per line (design 13.4).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The file (absent: no audit log).
    pub file: Option<PathBuf>,
    /// Rotated once it holds this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`file.1` is the newest).
    pub keep: u32,
}

/// The fewest bytes an audit file holds before it is rotated.
pub const AUDIT_MAX_BYTES_MIN: u64 = 4096;
/// The most rotated audit files kept.
pub const AUDIT_KEEP_MAX: u32 = 100;

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: None,
            max_bytes: 64 << 20,
            keep: 4,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (`RUST_LOG`, when set,
    /// wins).
    pub level: LogLevel,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// A durability class as the configuration names it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityName {
    /// Answer after the commit is durable.
    Sync,
    /// Answer once the commit is accepted.
    Async,
}

impl From<DurabilityName> for Durability {
    fn from(name: DurabilityName) -> Self {
        match name {
            DurabilityName::Sync => Durability::Sync,
            DurabilityName::Async => Durability::Async,
        }
    }
}

/// The least severe level logged.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// And warnings.
    Warn,
    /// And what the server did (the default).
    Info,
    /// And every connection event and background job run.
    Debug,
    /// Everything.
    Trace,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// The directory the server uses when told none.
pub const DATA_DIR_DEFAULT: &str = "./jubilant-data";
/// The port the server listens on when told none.
pub const PORT_DEFAULT: u16 = 6767;

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            server: ServerConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            ttl: TtlConfig::default(),
            vlog: VlogConfig::default(),
            log: LogConfig::default(),
            resp: RespConfig::default(),
            admin: AdminConfig::default(),
            audit: AuditConfig::default(),
            tls: TlsConfig::default(),
            users: Vec::new(),
            #[cfg(feature = "sabotage")]
            sabotage: jubilant_core::sabotage::Sabotage::None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: PORT_DEFAULT,
            workers: 2,
            max_connections: 1024,
            max_in_flight_per_connection: 128,
            max_in_flight_total: 8192,
            request_queue_timeout_ms: 5_000,
            connection_queue_bytes_max: 8 * 1024 * 1024,
            queued_bytes_total_max: 256 * 1024 * 1024,
            request_bytes_total_max: 256 * 1024 * 1024,
            frame_read_timeout_ms: 10_000,
            idle_timeout_ms: 0,
            shutdown_timeout_ms: 10_000,
            tcp_keepalive_ms: 60_000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            frame_bytes_max: 16 * 1024 * 1024,
            keys_per_txn_max: 128,
            ops_per_txn_max: 1024,
            value_bytes_max: 8 * 1024 * 1024,
            response_bytes_max: 64 * 1024 * 1024,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        let db = DbOptions::default();
        StorageConfig {
            cache_bytes: db.cache_bytes,
            group_commit_max_latency_ms: db.group_commit_max_latency_ms,
            durability: DurabilityName::Sync,
            checkpoint_interval_ms: 60_000,
            checkpoint_wal_bytes: db.checkpoint_wal_bytes,
            wal_segment_bytes: db.wal_segment_bytes,
            backup_pin_timeout_ms: 60_000,
        }
    }
}

impl Default for TtlConfig {
    fn default() -> Self {
        let db = DbOptions::default();
        TtlConfig {
            sweep_interval_ms: db.sweep_interval_ms,
            sweep_keys_max: db.sweep_keys_max,
        }
    }
}

impl Default for VlogConfig {
    fn default() -> Self {
        let db = DbOptions::default();
        VlogConfig {
            gc_live_pct: db.vlog_gc_live_pct,
            gc_interval_ms: db.vlog_gc_interval_ms,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

/// The smallest page cache the server accepts.
const CACHE_BYTES_MIN: u64 = 1024 * 1024;
/// The smallest WAL segment the server accepts.
const WAL_SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// The smallest frame limit: room for a transaction with a few keys.
const FRAME_BYTES_MIN: u32 = 4096;
/// The shortest timeout accepted (ms): anything shorter cuts off honest
/// clients on a busy network.
const TIMEOUT_MS_MIN: u64 = 100;

impl Config {
    /// Parses `text` (an empty text gives the defaults) and validates it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|error| ConfigError::Parse(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The address to listen on.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.server.listen_address, self.server.port)
    }

    /// The RESP listener's address (`None`: off).
    pub fn resp_listen(&self) -> Option<SocketAddr> {
        if self.resp.listen == "off" {
            return None;
        }
        self.resp.listen.parse().ok()
    }

    /// The admin HTTP listener's address, or `None` when it is off.
    pub fn admin_listen(&self) -> Option<SocketAddr> {
        if self.admin.listen == "off" {
            return None;
        }
        self.admin.listen.parse().ok()
    }

    /// Applies `--admin-listen` (`ADDR:PORT` or `off`), then validates
    /// again.
    pub fn with_admin_listen(mut self, listen: &str) -> Result<Config, ConfigError> {
        listen.clone_into(&mut self.admin.listen);
        self.validate()?;
        Ok(self)
    }

    /// Applies `--resp-listen` (`ADDR:PORT` or `off`), then validates again.
    pub fn with_resp_listen(mut self, listen: &str) -> Result<Config, ConfigError> {
        listen.clone_into(&mut self.resp.listen);
        self.validate()?;
        Ok(self)
    }

    /// Applies command-line overrides (`--data-dir`, `--listen`), then
    /// validates again.
    pub fn with_overrides(
        mut self,
        data_dir: Option<PathBuf>,
        listen: Option<SocketAddr>,
    ) -> Result<Config, ConfigError> {
        if let Some(dir) = data_dir {
            self.data_dir = dir;
        }
        if let Some(addr) = listen {
            self.server.listen_address = addr.ip();
            self.server.port = addr.port();
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks every bound; the error names the first key out of bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, problem: String| Err(ConfigError::Invalid { key, problem });
        let at_least = |key: &'static str, value: u64, min: u64| {
            if value < min {
                invalid(key, format!("is {value}, below its minimum {min}"))
            } else {
                Ok(())
            }
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "is empty".to_owned());
        }
        let mut names = std::collections::BTreeSet::new();
        for user in &self.users {
            if user.name.is_empty()
                || user.name.len() > USER_NAME_BYTES_MAX
                || !user.name.bytes().all(|b| b.is_ascii_graphic())
            {
                return invalid(
                    "users.name",
                    format!(
                        "is {:?}: give 1 to {USER_NAME_BYTES_MAX} printable characters, no spaces",
                        user.name
                    ),
                );
            }
            if !names.insert(user.name.as_str()) {
                return invalid("users.name", format!("{:?} is defined twice", user.name));
            }
            if let Err(problem) = crate::auth::check_password_hash(&user.password_hash) {
                return invalid(
                    "users.password_hash",
                    format!("of user {:?} {problem}", user.name),
                );
            }
            if let Some(rules) = &user.acl
                && let Err(problem) = crate::acl::Acl::parse(rules)
            {
                return invalid("users.acl", format!("of user {:?}: {problem}", user.name));
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return invalid(
                "tls.cert_file",
                "and tls.key_file go together: give both, or neither".to_owned(),
            );
        }
        if self.tls.ca_file.is_some() && !self.tls.on() {
            return invalid(
                "tls.ca_file",
                "requires tls.cert_file and tls.key_file (the server's own certificate)".to_owned(),
            );
        }
        at_least("audit.max_bytes", self.audit.max_bytes, AUDIT_MAX_BYTES_MIN)?;
        if self.audit.keep > AUDIT_KEEP_MAX {
            return invalid(
                "audit.keep",
                format!("is {}, above its maximum {AUDIT_KEEP_MAX}", self.audit.keep),
            );
        }
        if self.admin.metrics_auth && self.users.is_empty() {
            return invalid(
                "admin.metrics_auth",
                "is true, but no [[users]] are configured to authenticate".to_owned(),
            );
        }
        if self.resp.listen != "off" && self.resp.listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "resp.listen",
                format!(
                    "is {:?}: give ADDR:PORT (e.g. 127.0.0.1:6379) or \"off\"",
                    self.resp.listen
                ),
            );
        }
        if self.admin.listen != "off" && self.admin.listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "admin.listen",
                format!(
                    "is {:?}: give ADDR:PORT (e.g. 127.0.0.1:9187) or \"off\"",
                    self.admin.listen
                ),
            );
        }
        at_least("server.workers", self.server.workers as u64, 1)?;
        at_least(
            "server.max_connections",
            self.server.max_connections as u64,
            1,
        )?;
        at_least(
            "server.max_in_flight_per_connection",
            self.server.max_in_flight_per_connection as u64,
            1,
        )?;
        if self.server.max_in_flight_total < self.server.max_in_flight_per_connection {
            return invalid(
                "server.max_in_flight_total",
                format!(
                    "is {}, below server.max_in_flight_per_connection ({})",
                    self.server.max_in_flight_total, self.server.max_in_flight_per_connection
                ),
            );
        }
        at_least(
            "server.request_queue_timeout_ms",
            self.server.request_queue_timeout_ms,
            1,
        )?;
        at_least(
            "server.connection_queue_bytes_max",
            self.server.connection_queue_bytes_max,
            u64::from(FRAME_BYTES_MIN),
        )?;
        if self.server.queued_bytes_total_max < self.server.connection_queue_bytes_max {
            return invalid(
                "server.queued_bytes_total_max",
                format!(
                    "is {}, below server.connection_queue_bytes_max ({})",
                    self.server.queued_bytes_total_max, self.server.connection_queue_bytes_max
                ),
            );
        }
        if self.server.request_bytes_total_max < u64::from(self.limits.frame_bytes_max) {
            return invalid(
                "server.request_bytes_total_max",
                format!(
                    "is {}, below limits.frame_bytes_max ({})",
                    self.server.request_bytes_total_max, self.limits.frame_bytes_max
                ),
            );
        }
        at_least(
            "server.frame_read_timeout_ms",
            self.server.frame_read_timeout_ms,
            TIMEOUT_MS_MIN,
        )?;
        if self.server.idle_timeout_ms != 0 {
            at_least(
                "server.idle_timeout_ms",
                self.server.idle_timeout_ms,
                TIMEOUT_MS_MIN,
            )?;
        }
        at_least(
            "server.shutdown_timeout_ms",
            self.server.shutdown_timeout_ms,
            TIMEOUT_MS_MIN,
        )?;
        at_least(
            "limits.response_bytes_max",
            self.limits.response_bytes_max,
            u64::from(FRAME_BYTES_MIN),
        )?;
        if self.limits.response_bytes_max >= u64::from(u32::MAX) {
            return invalid(
                "limits.response_bytes_max",
                format!(
                    "is {}, not below 4 GiB (a frame's length is 32 bits)",
                    self.limits.response_bytes_max
                ),
            );
        }
        at_least(
            "limits.frame_bytes_max",
            u64::from(self.limits.frame_bytes_max),
            u64::from(FRAME_BYTES_MIN),
        )?;
        at_least(
            "limits.keys_per_txn_max",
            self.limits.keys_per_txn_max as u64,
            1,
        )?;
        at_least(
            "limits.ops_per_txn_max",
            self.limits.ops_per_txn_max as u64,
            1,
        )?;
        if self.limits.value_bytes_max > VALUE_BYTES_LIMIT {
            return invalid(
                "limits.value_bytes_max",
                format!(
                    "is {}, above what one value-log record holds ({VALUE_BYTES_LIMIT})",
                    self.limits.value_bytes_max
                ),
            );
        }
        at_least(
            "storage.cache_bytes",
            self.storage.cache_bytes,
            CACHE_BYTES_MIN,
        )?;
        at_least(
            "storage.wal_segment_bytes",
            self.storage.wal_segment_bytes,
            WAL_SEGMENT_BYTES_MIN,
        )?;
        at_least(
            "storage.checkpoint_wal_bytes",
            self.storage.checkpoint_wal_bytes,
            1,
        )?;
        at_least(
            "storage.backup_pin_timeout_ms",
            self.storage.backup_pin_timeout_ms,
            1,
        )?;
        at_least("ttl.sweep_keys_max", self.ttl.sweep_keys_max as u64, 1)?;
        if self.vlog.gc_live_pct > 100 {
            return invalid(
                "vlog.gc_live_pct",
                format!("is {}, above 100", self.vlog.gc_live_pct),
            );
        }
        Ok(())
    }

    /// The engine's options for this configuration.
    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            cache_bytes: self.storage.cache_bytes,
            durability: self.storage.durability.into(),
            wal_segment_bytes: self.storage.wal_segment_bytes,
            checkpoint_wal_bytes: self.storage.checkpoint_wal_bytes,
            value_bytes_max: self.limits.value_bytes_max,
            vlog_gc_live_pct: self.vlog.gc_live_pct,
            vlog_gc_interval_ms: self.vlog.gc_interval_ms,
            sweep_interval_ms: self.ttl.sweep_interval_ms,
            sweep_keys_max: self.ttl.sweep_keys_max,
            lock_wait_ms_max: self.server.request_queue_timeout_ms,
            group_commit_max_latency_ms: self.storage.group_commit_max_latency_ms,
            ..DbOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../jubilant.example.toml");

    #[test]
    fn no_file_means_the_defaults_and_the_example_documents_exactly_them() {
        let empty = Config::from_toml("").expect("an empty file is valid");
        assert_eq!(empty, Config::default());
        assert_eq!(empty.listen().to_string(), "127.0.0.1:6767");
        assert_eq!(empty.data_dir, PathBuf::from("./jubilant-data"));
        let example = Config::from_toml(EXAMPLE).expect("the example is valid");
        assert_eq!(
            example,
            Config::default(),
            "the example drifted from the defaults"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        for (text, name) in [
            ("dat_dir = \"x\"", "dat_dir"),
            ("[server]\nprot = 1", "prot"),
            ("[storage]\ncache = 5", "cache"),
            ("[nonsense]\na = 1", "nonsense"),
        ] {
            let error = Config::from_toml(text).expect_err("unknown key");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn wrong_types_and_bad_bounds_are_refused_with_the_key() {
        let error = Config::from_toml("[storage]\ndurability = \"sometimes\"").expect_err("enum");
        assert!(error.to_string().contains("durability"), "{error}");
        let error = Config::from_toml("[server]\nworkers = 0").expect_err("bound");
        assert_eq!(
            error.to_string(),
            "configuration: `server.workers` is 0, below its minimum 1"
        );
        let error = Config::from_toml("[vlog]\ngc_live_pct = 101").expect_err("bound");
        assert!(error.to_string().contains("vlog.gc_live_pct"), "{error}");
        let error = Config::from_toml("[limits]\nvalue_bytes_max = 2147483648").expect_err("bound");
        assert!(
            error.to_string().contains("limits.value_bytes_max"),
            "{error}"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let config = Config::from_toml("data_dir = \"/a\"\n[server]\nport = 1")
            .expect("valid")
            .with_overrides(
                Some(PathBuf::from("/b")),
                Some("127.0.0.1:0".parse().expect("address")),
            )
            .expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/b"));
        assert_eq!(config.listen().to_string(), "127.0.0.1:0");
        let options = config.db_options();
        assert_eq!(options.cache_bytes, config.storage.cache_bytes);
        assert_eq!(options.durability, Durability::Sync);
    }
}
