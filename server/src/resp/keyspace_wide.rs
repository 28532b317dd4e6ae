//! Commands over the whole keyspace or the server: `SCAN`, `KEYS`,
//! `DBSIZE`, `FLUSHDB`/`FLUSHALL`, and the introspection clients send
//! (`INFO`, `COMMAND`, `CONFIG GET`).
//!
//! Invariants kept here:
//! - **A key present for a whole `SCAN` is returned exactly once**: pages
//!   walk the keyspace in key order, each resuming strictly after the last
//!   key the previous page looked at; a key added or removed meanwhile may
//!   or may not show, as in Redis.
//! - **Bounded answers**: `KEYS` refuses to build more than
//!   `response_bytes_max`; `SCAN` looks at most `COUNT` keys a page.
//! - **Not atomic, and said so**: `FLUSHDB` deletes in steps, so writes
//!   running meanwhile may or may not be kept. `DBSIZE` is the engine's
//!   count (expired keys not yet deleted included, as in Redis).

use std::ops::Bound;

use jubilant_core::db::{Db, Durability, ScanRequest, Write};
use jubilant_core::env::Env;

use crate::commands::{CommandSpec, resp_commands};

use super::RespState;
use super::exec::db_error;
use super::glob;
use super::reply::Reply;

/// Keys read per step by `KEYS`, `DBSIZE` and `FLUSHDB`.
const STEP_KEYS: usize = 512;
/// The most keys one `SCAN` page may look at, whatever `COUNT` says.
const SCAN_COUNT_MAX: usize = 10_000;

/// What `SCAN` and `KEYS` show a user: the keys it may read (design
/// 13.2; Redis shows every key, but a name can be a secret too).
pub type Readable<'a> = &'a (dyn Fn(&[u8]) -> bool + Sync);

/// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]`, showing `readable` keys.
pub async fn scan<E: Env>(
    db: &Db<E>,
    state: &RespState,
    (cursor, pattern, count, type_name): (u64, Option<&[u8]>, usize, Option<&[u8]>),
    readable: Readable<'_>,
) -> Reply {
    let after = match cursor {
        0 => None,
        cursor => match state.resume_after(cursor) {
            Some(key) => Some(key),
            None => {
                return Reply::err(
                    "invalid or expired cursor (the server keeps the newest 4096); start the scan again from 0",
                );
            }
        },
    };
    // The native `Scan`'s path: keys only, the pattern's literal prefix
    // narrowing where the walk starts and stops.
    let mut request = ScanRequest::new(
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    );
    request.keys_only = true;
    request.limit = count.clamp(1, SCAN_COUNT_MAX);
    request.bytes_max = usize::MAX;
    if let Some(pattern) = pattern {
        request.within_prefix(glob::literal_prefix(pattern));
    }
    let page = match db.scan(&request).await {
        Ok(page) => page,
        Err(error) => return db_error(&error),
    };
    let strings = type_name.is_none_or(|t| t.eq_ignore_ascii_case(b"string"));
    let next = page.resume_after.map_or(0, |key| state.cursor_after(key));
    let keys = page
        .entries
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| strings && pattern.is_none_or(|p| glob::matches(p, key)) && readable(key))
        .map(Reply::Bulk)
        .collect();
    Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(keys)])
}

/// Calls `each` with every live key that begins with `prefix`, a page of
/// the native scan at a time (keys only), until it says stop.
async fn each_key<E: Env>(
    db: &Db<E>,
    prefix: &[u8],
    mut each: impl FnMut(Vec<u8>) -> Result<(), Reply>,
) -> Result<(), Reply> {
    let mut request = ScanRequest::new(Bound::Unbounded, Bound::Unbounded);
    request.keys_only = true;
    request.limit = STEP_KEYS;
    request.bytes_max = usize::MAX;
    request.within_prefix(prefix);
    loop {
        let page = db.scan(&request).await.map_err(|error| db_error(&error))?;
        for (key, _) in page.entries {
            each(key)?;
        }
        match page.resume_after {
            Some(last) => request.resume_after(last),
            None => return Ok(()),
        }
    }
}

/// `KEYS pattern`, showing `readable` keys, refused past
/// `response_bytes_max`.
pub async fn keys<E: Env>(
    db: &Db<E>,
    pattern: &[u8],
    response_bytes_max: u64,
    readable: Readable<'_>,
) -> Reply {
    let mut found = Vec::new();
    let mut bytes = 0u64;
    let walked = each_key(db, glob::literal_prefix(pattern), |key| {
        if glob::matches(pattern, &key) && readable(&key) {
            bytes += key.len() as u64 + 16;
            if bytes > response_bytes_max {
                return Err(Reply::err(format!(
                    "the matching keys would take more than limits.response_bytes_max ({response_bytes_max} bytes); use SCAN"
                )));
            }
            found.push(Reply::Bulk(key));
        }
        Ok(())
    })
    .await;
    match walked {
        Ok(()) => Reply::Array(found),
        Err(reply) => reply,
    }
}

/// `DBSIZE`: the keys in the tree, as the engine counts them (O(1)). As
/// in Redis, a key whose TTL ran out counts until it is deleted (by the
/// sweeper, or a read that finds it expired).
pub fn dbsize<E: Env>(db: &Db<E>) -> Reply {
    Reply::Int(i64::try_from(db.stats().store.keys).unwrap_or(i64::MAX))
}

/// `FLUSHDB`/`FLUSHALL`: deletes every key, a step per commit.
pub async fn flush<E: Env>(db: &Db<E>, durability: Durability) -> Reply {
    loop {
        let entries = match db
            .range(Bound::Unbounded, Bound::Unbounded, STEP_KEYS)
            .await
        {
            Ok(entries) => entries,
            Err(error) => return db_error(&error),
        };
        if entries.is_empty() {
            return Reply::Ok;
        }
        let deletes = entries
            .into_iter()
            .map(|(key, _)| Write::Del { key })
            .collect();
        if let Err(error) = db.write(deletes, durability).await {
            return db_error(&error);
        }
    }
}

/// `INFO [section...]`: the sections of `text` asked for (all when none,
/// or `all`/`everything`/`default`), by case-insensitive name.
pub fn info(text: &str, sections: &[String]) -> Reply {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "everything" || s == "default");
    let mut out = String::new();
    let mut keep = false;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            keep = all || sections.iter().any(|s| s.eq_ignore_ascii_case(title));
        }
        if keep {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    Reply::Bulk(out.into_bytes())
}

fn command_info(spec: &CommandSpec) -> Reply {
    let (first, last, step) = spec.keys;
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Int(spec.arity),
        Reply::Array(
            spec.flags
                .iter()
                .map(|f| Reply::Status((*f).into()))
                .collect(),
        ),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
    ])
}

/// The command's group, as Redis's `COMMAND DOCS` names it.
fn group(name: &str) -> &'static str {
    match name {
        "get" | "set" | "setnx" | "getset" | "getdel" | "mget" | "mset" | "msetnx" | "incr"
        | "decr" | "incrby" | "decrby" | "append" | "strlen" => "string",
        "del" | "unlink" | "exists" | "expire" | "pexpire" | "expireat" | "pexpireat" | "ttl"
        | "pttl" | "persist" | "type" | "scan" | "keys" => "generic",
        "multi" | "exec" | "discard" | "watch" | "unwatch" => "transactions",
        "ping" | "echo" | "hello" | "auth" | "client" | "select" | "quit" => "connection",
        _ => "server",
    }
}

fn command_docs(spec: &CommandSpec) -> Reply {
    Reply::Map(vec![
        (Reply::text("summary"), Reply::text(spec.summary)),
        (Reply::text("since"), Reply::text("1.0.0")),
        (Reply::text("group"), Reply::text(group(spec.name))),
    ])
}

/// `COMMAND [COUNT | DOCS [name...] | INFO [name...] | LIST]`.
pub fn command(args: &[Vec<u8>]) -> Reply {
    let named = |names: &[Vec<u8>]| -> Vec<&CommandSpec> {
        resp_commands()
            .filter(|spec| {
                names.is_empty()
                    || names
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(spec.name.as_bytes()))
            })
            .collect()
    };
    let sub = args
        .first()
        .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase());
    match sub.as_deref() {
        None => Reply::Array(resp_commands().map(command_info).collect()),
        Some("COUNT") => Reply::Int(resp_commands().count() as i64),
        Some("LIST") => Reply::Array(resp_commands().map(|spec| Reply::text(spec.name)).collect()),
        Some("INFO") => Reply::Array(named(&args[1..]).into_iter().map(command_info).collect()),
        Some("DOCS") => Reply::Map(
            named(&args[1..])
                .into_iter()
                .map(|spec| (Reply::text(spec.name), command_docs(spec)))
                .collect(),
        ),
        Some(other) => Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            other.to_lowercase()
        )),
    }
}

/// `CONFIG GET pattern...`: the few parameters clients look for
/// (`redis-benchmark` asks for `save` and `appendonly`).
pub fn config_get(patterns: &[Vec<u8>], durability: Durability) -> Reply {
    let parameters = [
        ("save", String::new()),
        ("appendonly", "yes".to_owned()),
        (
            "appendfsync",
            match durability {
                Durability::Sync => "always",
                Durability::Async => "everysec",
            }
            .to_owned(),
        ),
        ("databases", "1".to_owned()),
    ];
    Reply::Map(
        parameters
            .into_iter()
            .filter(|(name, _)| {
                patterns
                    .iter()
                    .any(|p| glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
            })
            .map(|(name, value)| (Reply::text(name), Reply::text(value)))
            .collect(),
    )
}
