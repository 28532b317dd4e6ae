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

use super::RespState;
use super::exec::db_error;
use super::glob;
use super::reply::Reply;

/// Keys read per step by `KEYS`, `DBSIZE` and `FLUSHDB`.
const STEP_KEYS: usize = 512;
/// The most keys one `SCAN` page may look at, whatever `COUNT` says.
const SCAN_COUNT_MAX: usize = 10_000;

/// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]`.
pub async fn scan<E: Env>(
    db: &Db<E>,
    state: &RespState,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: usize,
    type_name: Option<&[u8]>,
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
        .filter(|key| strings && pattern.is_none_or(|p| glob::matches(p, key)))
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

/// `KEYS pattern`, refused past `response_bytes_max`.
pub async fn keys<E: Env>(db: &Db<E>, pattern: &[u8], response_bytes_max: u64) -> Reply {
    let mut found = Vec::new();
    let mut bytes = 0u64;
    let walked = each_key(db, glob::literal_prefix(pattern), |key| {
        if glob::matches(pattern, &key) {
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

/// The commands served, with their arity (negative: at least), flags, and
/// first key, last key and step, as `COMMAND` lists them.
/// One `COMMAND` entry: name, arity, flags, first key, last key, step, summary.
type CommandEntry = (
    &'static str,
    i64,
    &'static [&'static str],
    i64,
    i64,
    i64,
    &'static str,
);

const COMMANDS: &[CommandEntry] = &[
    (
        "get",
        2,
        &["readonly", "fast"],
        1,
        1,
        1,
        "Returns the string value of a key.",
    ),
    (
        "set",
        -3,
        &["write", "denyoom"],
        1,
        1,
        1,
        "Sets the string value of a key, ignoring its type.",
    ),
    (
        "setnx",
        3,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Set the string value of a key only when the key doesn't exist.",
    ),
    (
        "getset",
        3,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Returns the previous string value of a key after setting it to a new value.",
    ),
    (
        "getdel",
        2,
        &["write", "fast"],
        1,
        1,
        1,
        "Returns the string value of a key after deleting the key.",
    ),
    (
        "mget",
        -2,
        &["readonly", "fast"],
        1,
        -1,
        1,
        "Atomically returns the string values of one or more keys.",
    ),
    (
        "mset",
        -3,
        &["write", "denyoom"],
        1,
        -1,
        2,
        "Atomically creates or modifies the string values of one or more keys.",
    ),
    (
        "msetnx",
        -3,
        &["write", "denyoom"],
        1,
        -1,
        2,
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    ),
    ("del", -2, &["write"], 1, -1, 1, "Deletes one or more keys."),
    (
        "unlink",
        -2,
        &["write", "fast"],
        1,
        -1,
        1,
        "Deletes one or more keys.",
    ),
    (
        "exists",
        -2,
        &["readonly", "fast"],
        1,
        -1,
        1,
        "Determines whether one or more keys exist.",
    ),
    (
        "incr",
        2,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Increments the integer value of a key by one.",
    ),
    (
        "decr",
        2,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Decrements the integer value of a key by one.",
    ),
    (
        "incrby",
        3,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Increments the integer value of a key by a number.",
    ),
    (
        "decrby",
        3,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Decrements a number from the integer value of a key.",
    ),
    (
        "append",
        3,
        &["write", "denyoom", "fast"],
        1,
        1,
        1,
        "Appends a string to the value of a key.",
    ),
    (
        "strlen",
        2,
        &["readonly", "fast"],
        1,
        1,
        1,
        "Returns the length of a string value.",
    ),
    (
        "expire",
        -3,
        &["write", "fast"],
        1,
        1,
        1,
        "Sets the expiration time of a key in seconds.",
    ),
    (
        "pexpire",
        -3,
        &["write", "fast"],
        1,
        1,
        1,
        "Sets the expiration time of a key in milliseconds.",
    ),
    (
        "expireat",
        -3,
        &["write", "fast"],
        1,
        1,
        1,
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    (
        "pexpireat",
        -3,
        &["write", "fast"],
        1,
        1,
        1,
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    (
        "ttl",
        2,
        &["readonly", "fast"],
        1,
        1,
        1,
        "Returns the expiration time in seconds of a key.",
    ),
    (
        "pttl",
        2,
        &["readonly", "fast"],
        1,
        1,
        1,
        "Returns the expiration time in milliseconds of a key.",
    ),
    (
        "persist",
        2,
        &["write", "fast"],
        1,
        1,
        1,
        "Removes the expiration time of a key.",
    ),
    (
        "type",
        2,
        &["readonly", "fast"],
        1,
        1,
        1,
        "Determines the type of value stored at a key.",
    ),
    (
        "scan",
        -2,
        &["readonly"],
        0,
        0,
        0,
        "Iterates over the key names in the database.",
    ),
    (
        "keys",
        2,
        &["readonly"],
        0,
        0,
        0,
        "Returns all key names that match a pattern.",
    ),
    (
        "dbsize",
        1,
        &["readonly", "fast"],
        0,
        0,
        0,
        "Returns the number of keys in the database.",
    ),
    (
        "flushdb",
        -1,
        &["write"],
        0,
        0,
        0,
        "Remove all keys from the current database.",
    ),
    (
        "flushall",
        -1,
        &["write"],
        0,
        0,
        0,
        "Removes all keys from all databases.",
    ),
    (
        "info",
        -1,
        &["loading", "stale"],
        0,
        0,
        0,
        "Returns information and statistics about the server.",
    ),
    (
        "ping",
        -1,
        &["fast"],
        0,
        0,
        0,
        "Returns the server's liveliness response.",
    ),
    ("echo", 2, &["fast"], 0, 0, 0, "Returns the given string."),
    (
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        "Handshakes with the Redis server.",
    ),
    (
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        "Authenticates the connection.",
    ),
    (
        "client",
        -2,
        &[],
        0,
        0,
        0,
        "A container for client connection commands.",
    ),
    (
        "select",
        2,
        &["loading", "stale", "fast"],
        0,
        0,
        0,
        "Changes the selected database.",
    ),
    ("quit", -1, &["fast"], 0, 0, 0, "Closes the connection."),
    (
        "command",
        -1,
        &["loading", "stale"],
        0,
        0,
        0,
        "Returns detailed information about all commands.",
    ),
    (
        "config",
        -2,
        &[],
        0,
        0,
        0,
        "A container for server configuration commands.",
    ),
    (
        "multi",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        "Starts a transaction.",
    ),
    (
        "exec",
        1,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        "Executes all commands in a transaction.",
    ),
    (
        "discard",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        "Discards a transaction.",
    ),
    (
        "watch",
        -2,
        &["noscript", "loading", "stale", "fast"],
        1,
        -1,
        1,
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
    (
        "unwatch",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        "Forgets about watched keys of a transaction.",
    ),
    (
        "jubilant.durability",
        -1,
        &["fast"],
        0,
        0,
        0,
        "Shows or sets this connection's durability class (sync, async, default).",
    ),
];

fn command_info(entry: &CommandEntry) -> Reply {
    let (name, arity, flags, first, last, step, _) = *entry;
    Reply::Array(vec![
        Reply::text(name),
        Reply::Int(arity),
        Reply::Array(flags.iter().map(|f| Reply::Status((*f).into())).collect()),
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

fn command_docs(entry: &CommandEntry) -> Reply {
    let (name, _, _, _, _, _, summary) = *entry;
    Reply::Map(vec![
        (Reply::text("summary"), Reply::text(summary)),
        (Reply::text("since"), Reply::text("1.0.0")),
        (Reply::text("group"), Reply::text(group(name))),
    ])
}

/// `COMMAND [COUNT | DOCS [name...] | INFO [name...] | LIST]`.
pub fn command(args: &[Vec<u8>]) -> Reply {
    let named = |names: &[Vec<u8>]| -> Vec<&CommandEntry> {
        if names.is_empty() {
            COMMANDS.iter().collect()
        } else {
            COMMANDS
                .iter()
                .filter(|entry| {
                    names
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(entry.0.as_bytes()))
                })
                .collect()
        }
    };
    let sub = args
        .first()
        .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase());
    match sub.as_deref() {
        None => Reply::Array(COMMANDS.iter().map(command_info).collect()),
        Some("COUNT") => Reply::Int(COMMANDS.len() as i64),
        Some("LIST") => Reply::Array(COMMANDS.iter().map(|entry| Reply::text(entry.0)).collect()),
        Some("INFO") => Reply::Array(named(&args[1..]).into_iter().map(command_info).collect()),
        Some("DOCS") => Reply::Map(
            named(&args[1..])
                .into_iter()
                .map(|entry| (Reply::text(entry.0), command_docs(entry)))
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
