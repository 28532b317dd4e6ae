//! The online commands: one request to a running server through the Rust
//! client, its answer printed for people (or as one JSON object with
//! `--json`), and an exit code a script can rely on (see `main.rs`).

use std::time::Duration;

use jubilant_client::{Client, ClientError, HealthStatus};
use jubilant_core::db::{Durability, Value};
use jubilant_core::record::Escaped;
use jubilant_core::txn::Ttl;
use serde_json::json;

use crate::exit;
use crate::text::{hex, value_json, value_text};

/// `--durability`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum DurabilityName {
    /// Answered once durable.
    Sync,
    /// Answered once accepted.
    Async,
}

/// One online request.
#[derive(Debug)]
pub(crate) enum Online {
    Ping,
    Get(Vec<u8>),
    Set {
        key: Vec<u8>,
        value: Value,
        ttl_ms: Option<u64>,
        durability: Option<DurabilityName>,
    },
    Del(Vec<u8>),
    Add(Vec<u8>, i64),
    Ttl(Vec<u8>),
    Expire(Vec<u8>, u64),
    Persist(Vec<u8>),
    Info,
    Health,
    /// A scan: the request (its first page), and how many entries to
    /// print at most.
    Scan(jubilant_client::ScanRequest, Option<u64>),
    Checkpoint,
    Txn(jubilant_core::txn::Txn),
}

/// What a command prints and how it exits.
struct Outcome {
    text: String,
    json: serde_json::Value,
    code: u8,
}

fn ok(text: impl Into<String>, json: serde_json::Value) -> Outcome {
    Outcome {
        text: text.into(),
        json,
        code: exit::OK,
    }
}

async fn request(client: &Client, command: Online) -> Result<Outcome, ClientError> {
    Ok(match command {
        Online::Ping => {
            client.ping().await?;
            ok("PONG", json!({"pong": true}))
        }
        Online::Get(key) => match client.get(&key).await? {
            Some((value, revision)) => {
                let mut object = value_json(&value);
                object["revision"] = json!(revision);
                ok(value_text(&value), object)
            }
            None => Outcome {
                text: format!("(missing) {}", Escaped(&key)),
                json: json!({"missing": true}),
                code: exit::FINDING,
            },
        },
        Online::Set {
            key,
            value,
            ttl_ms,
            durability,
        } => {
            let mut txn = jubilant_core::txn::Txn::new();
            let id = txn.key(key, jubilant_core::txn::Mode::RW);
            match ttl_ms {
                Some(ttl) => txn.set_ttl(id, value, ttl),
                None => txn.set(id, value),
            };
            if let Some(durability) = durability {
                txn.durability(match durability {
                    DurabilityName::Sync => Durability::Sync,
                    DurabilityName::Async => Durability::Async,
                });
            }
            let outcome = client.transaction(&txn).await?;
            ok("OK", json!({"lsn": outcome.lsn}))
        }
        Online::Del(key) => {
            let existed = client.del(&key).await?;
            ok(u8::from(existed).to_string(), json!({"deleted": existed}))
        }
        Online::Add(key, delta) => {
            let n = client.add(&key, delta).await?;
            ok(n.to_string(), json!({"value": n}))
        }
        Online::Ttl(key) => match client.ttl(&key).await? {
            Ttl::Ms(ms) => ok(ms.to_string(), json!({"ttl_ms": ms})),
            Ttl::NoExpiry => ok("no expiry", json!({"ttl_ms": null})),
            Ttl::Missing => Outcome {
                text: format!("(missing) {}", Escaped(&key)),
                json: json!({"missing": true}),
                code: exit::FINDING,
            },
        },
        Online::Expire(key, ms) => {
            let existed = client.expire(&key, ms).await?;
            ok(u8::from(existed).to_string(), json!({"existed": existed}))
        }
        Online::Persist(key) => {
            let had = client.persist(&key).await?;
            ok(u8::from(had).to_string(), json!({"had_ttl": had}))
        }
        Online::Info => {
            let text = client.info().await?;
            let mut sections = serde_json::Map::new();
            let mut current = String::new();
            for line in text.lines() {
                if let Some(title) = line.strip_prefix("# ") {
                    current = title.to_lowercase();
                    sections.insert(current.clone(), json!({}));
                } else if let Some((name, value)) = line.split_once(':')
                    && let Some(section) = sections.get_mut(&current)
                {
                    section[name] = info_value(value);
                }
            }
            ok(
                text.trim_end().to_owned(),
                serde_json::Value::Object(sections),
            )
        }
        Online::Txn(txn) => {
            let outcome = client.transaction(&txn).await?;
            let (text, json) = crate::txn_json::render(&outcome);
            ok(text, json)
        }
        Online::Scan(mut scan, total) => {
            let mut lines = Vec::new();
            let mut entries = Vec::new();
            let mut more = false;
            loop {
                let left = total.map(|total| total - entries.len() as u64);
                if left == Some(0) {
                    break;
                }
                if let Some(left) = left {
                    scan.limit = scan.limit.min(usize::try_from(left).unwrap_or(usize::MAX));
                }
                let page = client.scan_page(&scan).await?;
                for (key, value) in page.entries {
                    lines.push(match &value {
                        Some(value) => format!("{} {}", Escaped(&key), value_text(value)),
                        None => Escaped(&key).to_string(),
                    });
                    // The key as text when it is UTF-8 (else null), and
                    // always as hex.
                    let mut object = json!({
                        "key": std::str::from_utf8(&key).ok(),
                        "key_hex": hex(&key),
                    });
                    if let Some(value) = &value {
                        object["value"] = value_json(value);
                    }
                    entries.push(object);
                }
                match page.resume_after {
                    Some(last) => {
                        more = true;
                        scan.resume_after(last);
                    }
                    None => {
                        more = false;
                        break;
                    }
                }
            }
            ok(
                lines.join("\n"),
                json!({"count": entries.len(), "more": more, "entries": entries}),
            )
        }
        Online::Health => {
            let health = client.health().await?;
            let status = match health.status {
                HealthStatus::Ok => "ok",
                HealthStatus::Failed => "failed",
                HealthStatus::ShuttingDown => "shutting_down",
            };
            let age_ms = health
                .checkpoint_age
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
            let mut text = format!(
                "status: {status}\ndurable_lsn_lag: {}\ncheckpoint_age_ms: {}\nwal_bytes_since_checkpoint: {}",
                health.durable_lsn_lag,
                age_ms.map_or_else(|| "none".to_owned(), |ms| ms.to_string()),
                health.wal_bytes_since_checkpoint
            );
            if !health.reason.is_empty() {
                text.push_str(&format!("\nreason: {}", health.reason));
            }
            Outcome {
                text,
                json: json!({
                    "status": status,
                    "reason": health.reason,
                    "durable_lsn_lag": health.durable_lsn_lag,
                    "checkpoint_age_ms": age_ms,
                    "wal_bytes_since_checkpoint": health.wal_bytes_since_checkpoint,
                }),
                code: if health.status == HealthStatus::Ok {
                    exit::OK
                } else {
                    exit::FINDING
                },
            }
        }
        Online::Checkpoint => {
            let lsn = client.checkpoint().await?;
            ok(
                format!("checkpoint at LSN {lsn}"),
                json!({"checkpoint_lsn": lsn}),
            )
        }
    })
}

/// An INFO figure as JSON: a number when it is one (integers exactly),
/// text otherwise.
fn info_value(text: &str) -> serde_json::Value {
    if let Ok(n) = text.parse::<u64>() {
        json!(n)
    } else if let Ok(n) = text.parse::<i64>() {
        json!(n)
    } else if let Ok(x) = text.parse::<f64>()
        && x.is_finite()
    {
        json!(x)
    } else {
        json!(text)
    }
}

/// Where and how online commands connect: `--addr`, `--timeout`,
/// `--user`/`--password` (authenticated on every connection), and TLS.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub addr: String,
    pub timeout: Duration,
    pub credentials: Option<jubilant_client::Credentials>,
    pub tls: Option<jubilant_io_real::tls::TlsClient>,
}

/// The TLS the flags ask for: `None` without `--tls` or `--tls-ca`.
pub(crate) fn tls_client(
    addr: &str,
    tls: bool,
    ca: Option<&std::path::Path>,
    (cert, key): (Option<&std::path::Path>, Option<&std::path::Path>),
    server_name: Option<&str>,
) -> Result<Option<jubilant_io_real::tls::TlsClient>, String> {
    use jubilant_io_real::tls;
    if !tls && ca.is_none() {
        if cert.is_some() || key.is_some() {
            return Err("--tls-cert and --tls-key need --tls-ca".to_owned());
        }
        return Ok(None);
    }
    let Some(ca) = ca else {
        return Err(
            "--tls needs --tls-ca FILE: the CA certificate that signed the server's".to_owned(),
        );
    };
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".to_owned()),
    };
    let config = tls::client_config(ca, identity).map_err(|error| error.to_string())?;
    // The host of HOST:PORT ([v6]:PORT too).
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    tls::TlsClient::new(config, server_name.unwrap_or(host))
        .map(Some)
        .map_err(|error| error.to_string())
}

impl Target {
    /// The environment to connect through (TLS when asked for).
    pub(crate) fn env(&self) -> jubilant_io_real::RealEnv {
        let env = jubilant_io_real::RealEnv::current();
        match &self.tls {
            Some(tls) => env.with_tls_client(tls.clone()),
            None => env,
        }
    }

    pub(crate) fn options(&self) -> jubilant_client::ClientOptions {
        jubilant_client::ClientOptions {
            connect_timeout: self.timeout,
            request_timeout: Some(self.timeout),
            credentials: self.credentials.clone(),
        }
    }
}

/// Runs `command` against the server `target` names; returns the exit code.
pub(crate) async fn run(target: &Target, command: Online, as_json: bool) -> u8 {
    let env = target.env();
    let client = match jubilant_client::connect_with(&env, &target.addr, target.options()).await {
        Ok(client) => client,
        Err(error @ ClientError::Server { .. }) => {
            // The server refused the credentials.
            eprintln!("jubectl: the server refused: {error}");
            return exit::REFUSED;
        }
        Err(error) => {
            eprintln!("jubectl: {error}");
            return exit::OPERATING_ERROR;
        }
    };
    match request(&client, command).await {
        Ok(outcome) => {
            if as_json {
                println!("{}", outcome.json);
            } else {
                println!("{}", outcome.text);
            }
            outcome.code
        }
        Err(error @ ClientError::Server { .. }) => {
            if as_json {
                if let ClientError::Server {
                    code, message, op, ..
                } = &error
                {
                    println!(
                        "{}",
                        json!({"error": format!("{code:?}"), "message": message, "op": op})
                    );
                }
            } else {
                eprintln!("jubectl: the server refused: {error}");
            }
            exit::REFUSED
        }
        Err(error) => {
            eprintln!("jubectl: {error}");
            exit::OPERATING_ERROR
        }
    }
}
