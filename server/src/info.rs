//! `INFO` (SPEC 10): plain text in `# Section` blocks of `name:value`
//! lines, rendered from the engine's counters.
//!
//! Invariant kept here: **the layout is stable** (sections, names and their
//! order), because scripts parse it; a snapshot test pins it. Values are
//! integers, or decimals with two places for ratios; names never contain a
//! colon.

use std::fmt::Write as _;

use jubilant_core::db::DbStats;
use jubilant_core::store::manifest::{FORMAT_MAJOR, FORMAT_MINOR};

/// What the server knows that the engine does not.
#[derive(Clone, Debug, Default)]
pub struct ServerFacts {
    /// Status, failure reason and staleness (`Health`).
    pub health: crate::wire::ServerHealth,
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
    /// Connections open now.
    pub connections: u64,
    /// Requests in flight now (read, response not yet written).
    pub in_flight: u64,
    /// Response bytes encoded and not yet written, now.
    pub queued_bytes: u64,
    /// Request bytes read or reserved and not yet answered, now.
    pub request_bytes: u64,
    /// Connections refused at `max_connections`.
    pub connections_rejected: u64,
    /// Connections closed because a frame did not arrive in time.
    pub frame_timeouts: u64,
    /// Connections closed for being idle.
    pub idle_timeouts: u64,
    /// Connections closed for announcing a frame over the limit.
    pub frames_too_large: u64,
    /// Requests refused because their answer would be too large.
    pub responses_too_large: u64,
    /// Connections dropped at the shutdown deadline.
    pub shutdown_dropped: u64,
    /// The configured bounds.
    pub limits: ServerLimits,
    /// The RESP listener's port (0: off).
    pub resp_port: u16,
    /// RESP connections open now.
    pub resp_connections: u64,
    /// RESP commands answered.
    pub resp_commands: u64,
    /// RESP connections closed for lost framing.
    pub resp_protocol_errors: u64,
    /// Online backups.
    pub backup: crate::backup::BackupFacts,
    /// Users and authentication.
    pub auth: crate::auth::AuthFacts,
    /// Audit events written.
    pub audit_written: u64,
    /// Audit events dropped (queue full, or the file not writable).
    pub audit_dropped: u64,
}

/// The bounds the server runs with (INFO `# Limits`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerLimits {
    /// `server.max_connections`.
    pub max_connections: u64,
    /// `server.max_in_flight_per_connection`.
    pub max_in_flight_per_connection: u64,
    /// `server.max_in_flight_total`.
    pub max_in_flight_total: u64,
    /// `server.connection_queue_bytes_max`.
    pub connection_queue_bytes_max: u64,
    /// `server.queued_bytes_total_max`.
    pub queued_bytes_total_max: u64,
    /// `server.request_bytes_total_max`.
    pub request_bytes_total_max: u64,
    /// `limits.frame_bytes_max`.
    pub frame_bytes_max: u64,
    /// `limits.response_bytes_max`.
    pub response_bytes_max: u64,
    /// `server.frame_read_timeout_ms`.
    pub frame_read_timeout_ms: u64,
    /// `server.idle_timeout_ms`.
    pub idle_timeout_ms: u64,
    /// `server.shutdown_timeout_ms`.
    pub shutdown_timeout_ms: u64,
    /// `server.tcp_keepalive_ms`.
    pub tcp_keepalive_ms: u64,
}

impl From<&crate::config::Config> for ServerLimits {
    fn from(config: &crate::config::Config) -> Self {
        let (server, limits) = (&config.server, &config.limits);
        ServerLimits {
            max_connections: server.max_connections as u64,
            max_in_flight_per_connection: server.max_in_flight_per_connection as u64,
            max_in_flight_total: server.max_in_flight_total as u64,
            connection_queue_bytes_max: server.connection_queue_bytes_max,
            queued_bytes_total_max: server.queued_bytes_total_max,
            request_bytes_total_max: server.request_bytes_total_max,
            frame_bytes_max: u64::from(limits.frame_bytes_max),
            response_bytes_max: limits.response_bytes_max,
            frame_read_timeout_ms: server.frame_read_timeout_ms,
            idle_timeout_ms: server.idle_timeout_ms,
            shutdown_timeout_ms: server.shutdown_timeout_ms,
            tcp_keepalive_ms: server.tcp_keepalive_ms,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// INFO's name of a health status.
pub fn status_name(status: crate::wire::HealthStatus) -> &'static str {
    match status {
        crate::wire::HealthStatus::Failed => "failed",
        crate::wire::HealthStatus::ShuttingDown => "shutting_down",
        _ => "ok",
    }
}

/// `text` on one line (an INFO field cannot hold a line break).
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.00".to_owned()
    } else {
        format!("{:.2}", part as f64 / whole as f64)
    }
}

/// Renders `INFO` for `stats`.
pub fn render(stats: &DbStats, server: ServerFacts) -> String {
    let store = &stats.store;
    let wal = &stats.wal;
    let cache = &store.cache;
    let vlog = &stats.vlog;
    let limits = &server.limits;
    let sections: [(&str, Vec<(&str, String)>); 13] = [
        (
            "Server",
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("status", status_name(server.health.status).to_owned()),
                ("failure_reason", one_line(&server.health.reason)),
                ("durable_lsn_lag", server.health.durable_lsn_lag.to_string()),
                (
                    "checkpoint_age_ms",
                    server
                        .health
                        .checkpoint_age_ms
                        .map_or_else(|| "-1".to_owned(), |ms| ms.to_string()),
                ),
                (
                    "wal_bytes_since_checkpoint",
                    server.health.wal_bytes_since_checkpoint.to_string(),
                ),
                ("format", format!("{FORMAT_MAJOR}.{FORMAT_MINOR}")),
                ("schema_disk", hex(&jubilant_schemas::DISK_SCHEMA_HASH)),
                ("schema_wal", hex(&jubilant_schemas::WAL_SCHEMA_HASH)),
                ("schema_wire", hex(&jubilant_schemas::WIRE_SCHEMA_HASH)),
                ("uptime_ms", server.uptime_ms.to_string()),
                ("connections", server.connections.to_string()),
                ("in_flight", server.in_flight.to_string()),
                ("queued_bytes", server.queued_bytes.to_string()),
                ("request_bytes", server.request_bytes.to_string()),
                (
                    "connections_rejected",
                    server.connections_rejected.to_string(),
                ),
                ("frame_timeouts", server.frame_timeouts.to_string()),
                ("idle_timeouts", server.idle_timeouts.to_string()),
                ("frames_too_large", server.frames_too_large.to_string()),
                (
                    "responses_too_large",
                    server.responses_too_large.to_string(),
                ),
                ("shutdown_dropped", server.shutdown_dropped.to_string()),
            ],
        ),
        (
            "Resp",
            vec![
                ("port", server.resp_port.to_string()),
                ("connections", server.resp_connections.to_string()),
                ("commands", server.resp_commands.to_string()),
                ("protocol_errors", server.resp_protocol_errors.to_string()),
            ],
        ),
        (
            "Limits",
            vec![
                ("max_connections", limits.max_connections.to_string()),
                (
                    "max_in_flight_per_connection",
                    limits.max_in_flight_per_connection.to_string(),
                ),
                (
                    "max_in_flight_total",
                    limits.max_in_flight_total.to_string(),
                ),
                (
                    "connection_queue_bytes_max",
                    limits.connection_queue_bytes_max.to_string(),
                ),
                (
                    "queued_bytes_total_max",
                    limits.queued_bytes_total_max.to_string(),
                ),
                (
                    "request_bytes_total_max",
                    limits.request_bytes_total_max.to_string(),
                ),
                ("frame_bytes_max", limits.frame_bytes_max.to_string()),
                ("response_bytes_max", limits.response_bytes_max.to_string()),
                (
                    "frame_read_timeout_ms",
                    limits.frame_read_timeout_ms.to_string(),
                ),
                ("idle_timeout_ms", limits.idle_timeout_ms.to_string()),
                (
                    "shutdown_timeout_ms",
                    limits.shutdown_timeout_ms.to_string(),
                ),
                ("tcp_keepalive_ms", limits.tcp_keepalive_ms.to_string()),
            ],
        ),
        (
            "Storage",
            vec![
                ("pages", store.page_count.to_string()),
                ("free_pages", store.free_pages.to_string()),
                ("tree_height", store.tree_height.to_string()),
                ("keys", store.keys.to_string()),
                ("checkpoints", store.checkpoints.to_string()),
                (
                    "checkpoints_out_of_space",
                    store.checkpoints_out_of_space.to_string(),
                ),
                ("truncations", store.truncations.to_string()),
                ("pages_truncated", store.pages_truncated.to_string()),
                ("pages_relocated", store.pages_relocated.to_string()),
                ("pages_written", store.pages_written.to_string()),
                ("pages_read", store.pages_read.to_string()),
                ("bulk_builds", store.bulk_builds.to_string()),
            ],
        ),
        (
            "Wal",
            vec![
                ("current_lsn", store.applied_lsn.to_string()),
                ("durable_lsn", stats.lsn_durable.to_string()),
                ("checkpoint_lsn", store.durable_checkpoint_lsn.to_string()),
                ("segments_created", wal.log.rollovers.to_string()),
                (
                    "segments_prepared_ahead",
                    wal.log.rollovers_prepared_ahead.to_string(),
                ),
                ("segments_removed", wal.log.segments_removed.to_string()),
                ("commits", wal.commits.to_string()),
                ("commits_spanning", wal.commits_spanning.to_string()),
                ("batches", wal.batches.to_string()),
                ("fsyncs", wal.fsyncs.to_string()),
                ("average_batch", format!("{:.2}", wal.batch_commits_mean())),
                ("commits_disk_full", wal.commits_disk_full.to_string()),
                (
                    "write_disk_full_errors",
                    wal.log.disk_full_errors.to_string(),
                ),
                ("rollover_errors", wal.log.rollover_errors.to_string()),
                ("record_bytes", wal.log.append_bytes.to_string()),
                ("file_bytes", wal.log.file_bytes.to_string()),
            ],
        ),
        (
            "Cache",
            vec![
                ("bytes", cache.bytes.to_string()),
                ("budget_bytes", cache.budget_bytes.to_string()),
                ("pages", cache.pages.to_string()),
                ("dirty_pages", cache.dirty_pages.to_string()),
                ("hits", cache.hits.to_string()),
                ("misses", cache.misses.to_string()),
                ("hit_rate", ratio(cache.hits, cache.hits + cache.misses)),
                ("evictions", cache.evictions.to_string()),
                ("index_builds", cache.index_builds.to_string()),
            ],
        ),
        (
            "Txn",
            vec![
                ("active", stats.txns.active.to_string()),
                ("commits", stats.txns.commits.to_string()),
                ("reads", stats.txns.reads.to_string()),
                ("aborts", stats.txns.aborts.to_string()),
                ("assert_failures", stats.txns.assert_failures.to_string()),
                ("busy", stats.txns.busy.to_string()),
                ("updates", stats.txns.updates.to_string()),
                ("update_retries", stats.txns.update_retries.to_string()),
                ("update_conflicts", stats.txns.update_conflicts.to_string()),
                ("pressure_pauses", stats.txns.pressure_pauses.to_string()),
                (
                    "pressure_paused_us",
                    stats.txns.pressure_paused_us.to_string(),
                ),
                ("lock_waits", stats.locks.waits.to_string()),
                ("keys_locked", stats.locks.keys_locked.to_string()),
            ],
        ),
        (
            "Vlog",
            vec![
                ("segments", vlog.segments.to_string()),
                ("bytes", vlog.bytes.to_string()),
                ("live_bytes", vlog.live_bytes.to_string()),
                ("live_ratio", format!("{:.2}", vlog.live_ratio())),
                ("reads", vlog.reads.to_string()),
                ("segment_opens", vlog.segment_opens.to_string()),
                ("value_cache_hits", vlog.value_cache_hits.to_string()),
                ("value_cache_misses", vlog.value_cache_misses.to_string()),
                ("value_cache_bytes", vlog.value_cache_bytes.to_string()),
                ("gc_runs", vlog.gc_runs.to_string()),
                ("gc_last_run_unix_ms", vlog.gc_last_run_unix_ms.to_string()),
                ("gc_values_relocated", vlog.gc_values_relocated.to_string()),
                ("gc_segments_removed", vlog.gc_segments_removed.to_string()),
                ("gc_bytes_reclaimed", vlog.gc_bytes_reclaimed.to_string()),
            ],
        ),
        (
            "Ttl",
            vec![
                ("expired_reads", stats.ttl.expired_reads.to_string()),
                ("sweeper_runs", stats.ttl.sweeps.to_string()),
                ("tombstones", stats.ttl.tombstones.to_string()),
                ("reaped", stats.ttl.reaped.to_string()),
                (
                    "clock_floor_unix_ms",
                    stats.recovery.ttl_floor_ms.to_string(),
                ),
            ],
        ),
        (
            "Auth",
            vec![
                ("users", server.auth.users.to_string()),
                ("successes", server.auth.successes.to_string()),
                ("failures", server.auth.failures.to_string()),
                ("delayed", server.auth.delayed.to_string()),
                ("refused_unauthenticated", server.auth.refused.to_string()),
                ("denied_by_acl", server.auth.denied.to_string()),
                ("reloads", server.auth.reloads.to_string()),
                ("audit_events", server.audit_written.to_string()),
                ("audit_dropped", server.audit_dropped.to_string()),
            ],
        ),
        (
            "Backup",
            vec![
                ("running", u8::from(server.backup.running).to_string()),
                ("pinned_generation", store.pinned_generation.to_string()),
                ("pinned_pages", store.pinned_pages.to_string()),
                ("started", server.backup.started.to_string()),
                ("ended", server.backup.ended.to_string()),
                ("expired", server.backup.expired.to_string()),
                ("bytes_sent", server.backup.bytes_sent.to_string()),
            ],
        ),
        (
            "Snapshots",
            vec![
                ("live", stats.snapshots.live.to_string()),
                ("opened", stats.snapshots.opened.to_string()),
                (
                    "oldest_read_lsn",
                    stats.snapshots.oldest_read_lsn.to_string(),
                ),
                ("oldest_age_ms", stats.snapshots.oldest_age_ms.to_string()),
                ("image_bytes", stats.snapshots.image_bytes.to_string()),
                ("images_saved", stats.snapshots.images_saved.to_string()),
                ("ended_too_old", stats.snapshots.ended_too_old.to_string()),
                (
                    "ended_unreadable",
                    stats.snapshots.ended_unreadable.to_string(),
                ),
            ],
        ),
        (
            "Repair",
            vec![
                ("actions", stats.recovery.repair_actions().to_string()),
                ("txns_replayed", stats.recovery.txns_replayed.to_string()),
                (
                    "wal_tail_bytes_zeroed",
                    stats.recovery.tail_bytes_zeroed.to_string(),
                ),
                (
                    "data_loss_cuts",
                    stats.recovery.loss_history.cuts.to_string(),
                ),
                (
                    "data_loss_durable_lsns",
                    stats.recovery.loss_history.durable_lsns_lost.to_string(),
                ),
                (
                    "data_loss_last_unix_ms",
                    stats.recovery.loss_history.last_cut_unix_ms.to_string(),
                ),
                (
                    "data_loss_unreadable_records",
                    stats.recovery.loss_history.unreadable_records.to_string(),
                ),
            ],
        ),
    ];
    let mut out = String::new();
    for (index, (title, lines)) in sections.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "# {title}");
        for (name, value) in lines {
            debug_assert!(!name.contains(':'));
            let _ = writeln!(out, "{name}:{value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout with every value replaced, so the snapshot pins sections,
    /// names and order, not figures.
    fn layout(info: &str) -> String {
        info.lines()
            .map(|line| match line.split_once(':') {
                Some((name, _)) => format!("{name}:<value>"),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_layout_is_stable() {
        let info = render(&DbStats::default(), ServerFacts::default());
        insta::assert_snapshot!(layout(&info));
    }

    #[test]
    fn values_are_the_engines_figures() {
        let mut stats = DbStats::default();
        stats.store.cache.hits = 3;
        stats.store.cache.misses = 1;
        stats.vlog.bytes = 200;
        stats.vlog.live_bytes = 50;
        stats.wal.commits = 10;
        stats.wal.batches = 4;
        let info = render(
            &stats,
            ServerFacts {
                uptime_ms: 1234,
                connections: 2,
                queued_bytes: 4096,
                limits: ServerLimits::from(&crate::config::Config::default()),
                resp_port: 6379,
                resp_commands: 5,
                ..ServerFacts::default()
            },
        );
        for line in [
            "queued_bytes:4096",
            "response_bytes_max:67108864",
            "frame_read_timeout_ms:10000",
            "hit_rate:0.75",
            "live_ratio:0.25",
            "average_batch:2.50",
            "uptime_ms:1234",
            "format:3.0",
        ] {
            assert!(info.lines().any(|l| l == line), "missing {line}:\n{info}");
        }
        assert!(info.starts_with("# Server\nversion:"));
    }
}
