//! Prometheus metrics (`GET /metrics` on the admin listener): every INFO
//! figure, typed, with its unit in its name, and latency histograms of
//! requests and commits.
//!
//! Invariants kept here:
//! - **Every numeric INFO figure is a metric**, named
//!   `jubilant_<section>_<figure>`: INFO is parsed, not listed again, so a
//!   figure added to INFO is exported without a change here. What only
//!   grows is a counter (`_total`); what goes up and down, a bound, or a
//!   figure of the last open is a gauge (`is_gauge`).
//! - **Base units**: a figure in milliseconds or microseconds is exported
//!   in seconds (`_seconds`), a Unix time in milliseconds as
//!   `_timestamp_seconds`; bytes keep `_bytes`.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, Opts, Registry, TextEncoder,
};

/// Latencies the server observes as it answers.
#[derive(Clone, Debug)]
pub struct Latencies {
    /// From a request's start to its answer being queued (both listeners).
    pub requests: Histogram,
    /// Transactions that wrote (native protocol), to their answer: their
    /// commit, including the wait for durability under `sync`.
    pub commits: Histogram,
}

impl Default for Latencies {
    fn default() -> Self {
        // 25 µs to about 13 s, doubling.
        let buckets: Vec<f64> = (0..20).map(|i| 0.000_025 * f64::powi(2.0, i)).collect();
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(
                HistogramOpts::new(name, help)
                    .namespace("jubilant")
                    .buckets(buckets.clone()),
            )
            .unwrap_or_else(|error| unreachable!("a valid histogram: {error}"))
        };
        Latencies {
            requests: histogram(
                "request_duration_seconds",
                "Time from a request's start to its answer being queued",
            ),
            commits: histogram(
                "commit_duration_seconds",
                "Time to answer a transaction that wrote (native protocol), durability included",
            ),
        }
    }
}

/// Registers `metric` (its name is checked when built; one that is not a
/// valid name is left out rather than fail the scrape).
fn register(registry: &Registry, metric: impl Collector + 'static) {
    let _ = registry.register(Box::new(metric));
}

/// Whether INFO figure `name` of `section` (lower case) goes up and down
/// (or is a bound, or a figure of the last open) rather than only up.
fn is_gauge(section: &str, name: &str) -> bool {
    match section {
        "limits" | "repair" => true,
        "server" => matches!(
            name,
            "durable_lsn_lag"
                | "checkpoint_age_ms"
                | "wal_bytes_since_checkpoint"
                | "uptime_ms"
                | "connections"
                | "in_flight"
                | "queued_bytes"
                | "request_bytes"
        ),
        "resp" => matches!(name, "port" | "connections"),
        "storage" => matches!(name, "pages" | "free_pages" | "tree_height" | "keys"),
        "wal" => matches!(
            name,
            "current_lsn" | "durable_lsn" | "checkpoint_lsn" | "average_batch" | "file_bytes"
        ),
        "cache" => matches!(
            name,
            "bytes" | "budget_bytes" | "pages" | "dirty_pages" | "hit_rate"
        ),
        "txn" => matches!(name, "active" | "keys_locked"),
        "vlog" => matches!(
            name,
            "segments"
                | "bytes"
                | "live_bytes"
                | "live_ratio"
                | "value_cache_bytes"
                | "gc_last_run_unix_ms"
        ),
        "ttl" => matches!(name, "tombstones" | "clock_floor_unix_ms"),
        "backup" => matches!(name, "running" | "pinned_generation" | "pinned_pages"),
        "auth" => name == "users",
        _ => false,
    }
}

/// A figure's name and value in base units.
fn in_base_units(name: &str, value: f64) -> (String, f64) {
    if let Some(stem) = name.strip_suffix("_unix_ms") {
        (format!("{stem}_timestamp_seconds"), value / 1e3)
    } else if let Some(stem) = name.strip_suffix("_ms") {
        (format!("{stem}_seconds"), value / 1e3)
    } else if let Some(stem) = name.strip_suffix("_us") {
        (format!("{stem}_seconds"), value / 1e6)
    } else {
        (name.to_owned(), value)
    }
}

/// The Prometheus text exposition (format 0.0.4) of `info` (INFO's
/// text) and `latencies`.
pub fn render(info: &str, latencies: &Latencies) -> String {
    let registry = Registry::new();
    let mut section = String::new();
    let mut build: Vec<(String, String)> = Vec::new();
    let opts = |name: String, help: String| Opts::new(name, help).namespace("jubilant");
    for line in info.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            section = title.to_lowercase();
            continue;
        }
        let Some((name, text)) = line.split_once(':') else {
            continue;
        };
        if section == "server" && matches!(name, "version" | "format") {
            build.push((name.to_owned(), text.to_owned()));
            continue;
        }
        let Ok(value) = text.parse::<f64>() else {
            // Other text figures (schema hashes, a failure's reason) are
            // for people: INFO has them.
            if (section.as_str(), name) == ("server", "status") {
                for status in ["ok", "failed", "shutting_down"] {
                    if let Ok(gauge) = Gauge::with_opts(opts(
                        format!("server_status_{status}"),
                        format!("1 while the server's status is {status} (INFO server.status)"),
                    )) {
                        gauge.set(f64::from(u8::from(text == status)));
                        register(&registry, gauge);
                    }
                }
            }
            continue;
        };
        // A negative figure means "none yet" (`checkpoint_age_ms` before
        // the first checkpoint): left out, as Prometheus expects.
        if !value.is_finite() || value < 0.0 {
            continue;
        }
        let (metric, value) = in_base_units(name, value);
        let help = format!("INFO {section}.{name}");
        if is_gauge(&section, name) {
            // `_total` names counters in Prometheus: a gauge called so (a
            // server-wide bound) says `_overall` instead.
            let metric = match metric.strip_suffix("_total") {
                Some(stem) => format!("{stem}_overall"),
                None => metric,
            };
            if let Ok(gauge) = Gauge::with_opts(opts(format!("{section}_{metric}"), help)) {
                gauge.set(value);
                register(&registry, gauge);
            }
        } else if let Ok(counter) =
            IntCounter::with_opts(opts(format!("{section}_{metric}_total"), help))
        {
            counter.inc_by(value.max(0.0) as u64);
            register(&registry, counter);
        }
    }
    if !build.is_empty() {
        let labels: Vec<&str> = build.iter().map(|(name, _)| name.as_str()).collect();
        let values: Vec<&str> = build.iter().map(|(_, value)| value.as_str()).collect();
        if let Ok(family) = GaugeVec::new(
            opts(
                "build_info".to_owned(),
                "The server's version and on-disk format (always 1)".to_owned(),
            ),
            &labels,
        ) {
            if let Ok(gauge) = family.get_metric_with_label_values(&values) {
                gauge.set(1.0);
            }
            register(&registry, family);
        }
    }
    register(&registry, latencies.requests.clone());
    register(&registry, latencies.commits.clone());
    let mut out = Vec::new();
    // Encoding into memory fails only on a malformed family, which the
    // registry refused above.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_typed_in_base_units_and_text_becomes_labels() {
        let info = "# Server\nversion:0.1.0\nformat:3.0\ncheckpoint_age_ms:-1\nstatus:ok\nuptime_ms:1500\nconnections:3\nframe_timeouts:2\n# Wal\ncommits:7\naverage_batch:1.50\n# Txn\npressure_paused_us:2000000\n# Vlog\ngc_last_run_unix_ms:1700000000000\n";
        let latencies = Latencies::default();
        latencies.requests.observe(0.001);
        let text = render(info, &latencies);
        for wanted in [
            "# TYPE jubilant_server_uptime_seconds gauge",
            "jubilant_server_uptime_seconds 1.5",
            "jubilant_server_connections 3",
            "# TYPE jubilant_server_frame_timeouts_total counter",
            "jubilant_server_frame_timeouts_total 2",
            "jubilant_wal_commits_total 7",
            "jubilant_wal_average_batch 1.5",
            "jubilant_txn_pressure_paused_seconds_total 2",
            "jubilant_vlog_gc_last_run_timestamp_seconds 1700000000",
            "jubilant_server_status_ok 1",
            "jubilant_server_status_failed 0",
            "jubilant_build_info{format=\"3.0\",version=\"0.1.0\"} 1",
            "jubilant_request_duration_seconds_count 1",
            "# TYPE jubilant_commit_duration_seconds histogram",
        ] {
            assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
        }
        assert!(!text.contains("checkpoint_age"), "none yet: left out");
        assert!(!text.contains("server_format "), "a label, not a figure");
    }
}
