//! A request's arguments read as one of the commands the RESP listener
//! serves, with Redis's own error texts for a wrong argument count, a
//! syntax error or a number that does not parse.
//!
//! Invariants kept here:
//! - **Nothing runs that did not parse.** Every argument is checked here,
//!   so execution never meets a malformed command.
//! - **Names are case-insensitive**, as in Redis; keys and values are bytes.

use super::reply::Reply;
use crate::acl::Access;

/// When a `SET` or `EXPIRE` makes a key expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// In this many milliseconds from now (may be 0 or negative: at once).
    In(i64),
    /// At this Unix time in milliseconds.
    At(i64),
}

/// `SET`'s TTL option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTtl {
    /// No TTL (any old one is removed).
    None,
    /// `EX`/`PX`/`EXAT`/`PXAT`.
    Expiry(Expiry),
    /// `KEEPTTL`: the old TTL stays.
    Keep,
}

/// `SET NX`/`XX`, `EXPIRE NX`/`XX`/`GT`/`LT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    Always,
    /// Only if the key (or, for `EXPIRE`, its TTL) does not exist.
    Nx,
    /// Only if it exists.
    Xx,
    /// `EXPIRE`: only if the new expiry is later.
    Gt,
    /// `EXPIRE`: only if the new expiry is sooner.
    Lt,
}

/// A command on keys: what `MULTI` queues, and what runs as (part of) one
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataCommand {
    /// `GET k`.
    Get(Vec<u8>),
    /// `SET k v [NX|XX] [GET] [EX|PX|EXAT|PXAT n|KEEPTTL]`.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// `NX`/`XX`.
        condition: Condition,
        /// `GET`: answer the old value.
        get: bool,
        /// The TTL option.
        ttl: SetTtl,
    },
    /// `SETNX k v`.
    SetNx(Vec<u8>, Vec<u8>),
    /// `GETSET k v`.
    GetSet(Vec<u8>, Vec<u8>),
    /// `GETDEL k`.
    GetDel(Vec<u8>),
    /// `MGET k...`.
    MGet(Vec<Vec<u8>>),
    /// `MSET k v ...`.
    MSet(Vec<(Vec<u8>, Vec<u8>)>),
    /// `MSETNX k v ...`.
    MSetNx(Vec<(Vec<u8>, Vec<u8>)>),
    /// `DEL`/`UNLINK k...`.
    Del(Vec<Vec<u8>>),
    /// `EXISTS k...`.
    Exists(Vec<Vec<u8>>),
    /// `INCR`/`DECR`/`INCRBY`/`DECRBY`.
    IncrBy(Vec<u8>, i64),
    /// `APPEND k v`.
    Append(Vec<u8>, Vec<u8>),
    /// `STRLEN k`.
    StrLen(Vec<u8>),
    /// `EXPIRE`/`PEXPIRE`/`EXPIREAT`/`PEXPIREAT k n [NX|XX|GT|LT]`.
    Expire(Vec<u8>, Expiry, Condition),
    /// `TTL`/`PTTL k`: `true` for milliseconds.
    Ttl(Vec<u8>, bool),
    /// `PERSIST k`.
    Persist(Vec<u8>),
    /// `TYPE k`.
    Type(Vec<u8>),
}

impl DataCommand {
    /// The keys it touches, in argument order (repeats kept).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            DataCommand::Get(k)
            | DataCommand::Set { key: k, .. }
            | DataCommand::SetNx(k, _)
            | DataCommand::GetSet(k, _)
            | DataCommand::GetDel(k)
            | DataCommand::IncrBy(k, _)
            | DataCommand::Append(k, _)
            | DataCommand::StrLen(k)
            | DataCommand::Expire(k, ..)
            | DataCommand::Ttl(k, _)
            | DataCommand::Persist(k)
            | DataCommand::Type(k) => vec![k],
            DataCommand::MGet(keys) | DataCommand::Del(keys) | DataCommand::Exists(keys) => {
                keys.iter().map(Vec::as_slice).collect()
            }
            DataCommand::MSet(pairs) | DataCommand::MSetNx(pairs) => {
                pairs.iter().map(|(k, _)| k.as_slice()).collect()
            }
        }
    }

    /// What it does with its keys, as the ACLs judge it (design 13.2):
    /// Redis's key specs, where a command that answers a value reads it.
    pub fn access(&self) -> Access {
        match self {
            DataCommand::Get(_)
            | DataCommand::MGet(_)
            | DataCommand::Exists(_)
            | DataCommand::StrLen(_)
            | DataCommand::Ttl(..)
            | DataCommand::Type(_) => Access::Read,
            DataCommand::Set { get: true, .. }
            | DataCommand::GetSet(..)
            | DataCommand::GetDel(_)
            | DataCommand::IncrBy(..) => Access::ReadWrite,
            DataCommand::Set { get: false, .. }
            | DataCommand::SetNx(..)
            | DataCommand::MSet(_)
            | DataCommand::MSetNx(_)
            | DataCommand::Del(_)
            | DataCommand::Append(..)
            | DataCommand::Expire(..)
            | DataCommand::Persist(_) => Access::Write,
        }
    }

    /// Whether it may change a key.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            DataCommand::Get(_)
                | DataCommand::MGet(_)
                | DataCommand::Exists(_)
                | DataCommand::StrLen(_)
                | DataCommand::Ttl(..)
                | DataCommand::Type(_)
        )
    }
}

/// `JUBILANT.DURABILITY`'s argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityArg {
    /// Show the connection's class.
    Show,
    /// `sync`.
    Sync,
    /// `async`.
    Async,
    /// `default`: the server's.
    Default,
}

/// One command of the RESP listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A command on keys.
    Data(DataCommand),
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// `ECHO message`.
    Echo(Vec<u8>),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello {
        /// The protocol version asked for.
        version: Option<i64>,
        /// `AUTH user password`, if given.
        auth: Option<(Vec<u8>, Vec<u8>)>,
        /// `SETNAME`.
        name: Option<Vec<u8>>,
    },
    /// `AUTH [user] password` (no user: `default`).
    Auth {
        /// The user, if named.
        user: Option<Vec<u8>>,
        /// The password.
        password: Vec<u8>,
    },
    /// `CLIENT SETNAME name`.
    ClientSetName(Vec<u8>),
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT ID`.
    ClientId,
    /// `CLIENT SETINFO ...` (client libraries send it; accepted and ignored).
    ClientSetInfo,
    /// `SELECT db`.
    Select(i64),
    /// `QUIT`.
    Quit,
    /// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`, `COMMAND INFO`.
    Command(Vec<Vec<u8>>),
    /// `CONFIG GET pattern...`.
    ConfigGet(Vec<Vec<u8>>),
    /// `INFO [section...]`.
    Info(Vec<String>),
    /// `DBSIZE`.
    DbSize,
    /// `FLUSHDB`/`FLUSHALL`.
    Flush,
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`.
    Scan {
        /// The cursor (0 to start).
        cursor: u64,
        /// `MATCH`.
        pattern: Option<Vec<u8>>,
        /// `COUNT`.
        count: usize,
        /// `TYPE`: only `string` finds anything.
        type_name: Option<Vec<u8>>,
    },
    /// `KEYS pattern`.
    Keys(Vec<u8>),
    /// `MULTI`.
    Multi,
    /// `EXEC`.
    Exec,
    /// `DISCARD`.
    Discard,
    /// `WATCH k...`.
    Watch(Vec<Vec<u8>>),
    /// `UNWATCH`.
    Unwatch,
    /// `JUBILANT.DURABILITY [sync|async|default]`.
    Durability(DurabilityArg),
    /// `ACL WHOAMI|LIST|USERS|GETUSER|CAT` (read-only: users are defined
    /// in the configuration).
    Acl(AclCommand),
}

impl AclCommand {
    /// Its ACL name if it is administrative (`@admin`: audited).
    pub fn admin_name(&self) -> Option<&'static str> {
        match self {
            AclCommand::List => Some("acl|list"),
            AclCommand::Users => Some("acl|users"),
            AclCommand::GetUser(_) => Some("acl|getuser"),
            AclCommand::WhoAmI | AclCommand::Cat(_) => None,
        }
    }
}

/// The `ACL` subcommands served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclCommand {
    /// `ACL WHOAMI`.
    WhoAmI,
    /// `ACL LIST`.
    List,
    /// `ACL USERS`.
    Users,
    /// `ACL GETUSER name`.
    GetUser(Vec<u8>),
    /// `ACL CAT [category]`.
    Cat(Option<Vec<u8>>),
}

impl Command {
    /// What `MULTI` may queue: commands on keys, and the harmless
    /// connection ones run at `EXEC` in order (here: only `PING`/`ECHO` are
    /// queued; everything else is refused inside `MULTI`).
    pub fn queueable(&self) -> bool {
        matches!(self, Command::Data(_) | Command::Ping(_) | Command::Echo(_))
    }
}

/// Keys with their values, as `MSET` takes them.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn arity(name: &str) -> Reply {
    Reply::err(format!(
        "wrong number of arguments for '{}' command",
        name.to_lowercase()
    ))
}

fn syntax() -> Reply {
    Reply::err("syntax error")
}

fn not_int() -> Reply {
    Reply::err("value is not an integer or out of range")
}

/// An integer argument as Redis's `string2ll` reads one.
pub fn parse_int(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty()
        || text.starts_with('+')
        || (text.len() > 1 && text.starts_with('0'))
        || text.starts_with("-0")
    {
        return None;
    }
    text.parse().ok()
}

fn int_arg(bytes: &[u8]) -> Result<i64, Reply> {
    parse_int(bytes).ok_or_else(not_int)
}

fn upper(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_uppercase()
}

/// Reads `args` (the name first) as a command, or the error to answer.
pub fn parse(args: Vec<Vec<u8>>) -> Result<Command, Reply> {
    let mut args = args.into_iter();
    let Some(name_bytes) = args.next() else {
        return Err(Reply::err("empty command"));
    };
    let name = upper(&name_bytes);
    let rest: Vec<Vec<u8>> = args.collect();
    let n = rest.len();
    let one = |rest: Vec<Vec<u8>>| -> Result<Vec<u8>, Reply> {
        let mut rest = rest;
        if rest.len() == 1 {
            Ok(rest.remove(0))
        } else {
            Err(arity(&name))
        }
    };
    let pair = |rest: Vec<Vec<u8>>| -> Result<(Vec<u8>, Vec<u8>), Reply> {
        let mut it = rest.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), None) => Ok((a, b)),
            _ => Err(arity(&name)),
        }
    };
    let some_keys = |rest: Vec<Vec<u8>>| -> Result<Vec<Vec<u8>>, Reply> {
        if rest.is_empty() {
            Err(arity(&name))
        } else {
            Ok(rest)
        }
    };
    let pairs = |rest: Vec<Vec<u8>>| -> Result<Pairs, Reply> {
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(arity(&name));
        }
        let mut it = rest.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    };
    use DataCommand as D;
    let data = |command: DataCommand| Ok(Command::Data(command));
    match name.as_str() {
        "GET" => data(D::Get(one(rest)?)),
        "SET" => parse_set(rest).map(Command::Data),
        "SETNX" => {
            let (k, v) = pair(rest)?;
            data(D::SetNx(k, v))
        }
        "GETSET" => {
            let (k, v) = pair(rest)?;
            data(D::GetSet(k, v))
        }
        "GETDEL" => data(D::GetDel(one(rest)?)),
        "MGET" => data(D::MGet(some_keys(rest)?)),
        "MSET" => data(D::MSet(pairs(rest)?)),
        "MSETNX" => data(D::MSetNx(pairs(rest)?)),
        "DEL" | "UNLINK" => data(D::Del(some_keys(rest)?)),
        "EXISTS" => data(D::Exists(some_keys(rest)?)),
        "INCR" => data(D::IncrBy(one(rest)?, 1)),
        "DECR" => data(D::IncrBy(one(rest)?, -1)),
        "INCRBY" | "DECRBY" => {
            let (k, by) = pair(rest)?;
            let by = int_arg(&by)?;
            let by = if name == "DECRBY" {
                by.checked_neg()
                    .ok_or_else(|| Reply::err("decrement would overflow"))?
            } else {
                by
            };
            data(D::IncrBy(k, by))
        }
        "APPEND" => {
            let (k, v) = pair(rest)?;
            data(D::Append(k, v))
        }
        "STRLEN" => data(D::StrLen(one(rest)?)),
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
            if !(2..=3).contains(&n) {
                return Err(arity(&name));
            }
            let mut it = rest.into_iter();
            let key = it.next().unwrap_or_default();
            let amount = int_arg(&it.next().unwrap_or_default())?;
            let condition = match it.next().map(|c| upper(&c)) {
                None => Condition::Always,
                Some(c) if c == "NX" => Condition::Nx,
                Some(c) if c == "XX" => Condition::Xx,
                Some(c) if c == "GT" => Condition::Gt,
                Some(c) if c == "LT" => Condition::Lt,
                Some(c) => return Err(Reply::err(format!("Unsupported option {c}"))),
            };
            let invalid = || {
                Reply::err(format!(
                    "invalid expire time in '{}' command",
                    name.to_lowercase()
                ))
            };
            let expiry = match name.as_str() {
                "EXPIRE" => Expiry::In(amount.checked_mul(1000).ok_or_else(invalid)?),
                "PEXPIRE" => Expiry::In(amount),
                "EXPIREAT" => Expiry::At(amount.checked_mul(1000).ok_or_else(invalid)?),
                _ => Expiry::At(amount),
            };
            data(D::Expire(key, expiry, condition))
        }
        "TTL" => data(D::Ttl(one(rest)?, false)),
        "PTTL" => data(D::Ttl(one(rest)?, true)),
        "PERSIST" => data(D::Persist(one(rest)?)),
        "TYPE" => data(D::Type(one(rest)?)),
        "PING" => match n {
            0 => Ok(Command::Ping(None)),
            1 => Ok(Command::Ping(Some(one(rest)?))),
            _ => Err(arity(&name)),
        },
        "ECHO" => Ok(Command::Echo(one(rest)?)),
        "HELLO" => parse_hello(rest),
        "AUTH" => {
            let mut it = rest.into_iter();
            match (it.next(), it.next(), n) {
                (Some(password), None, 1) => Ok(Command::Auth {
                    user: None,
                    password,
                }),
                (Some(user), Some(password), 2) => Ok(Command::Auth {
                    user: Some(user),
                    password,
                }),
                _ => Err(arity(&name)),
            }
        }
        "CLIENT" => parse_client(rest),
        "SELECT" => Ok(Command::Select(int_arg(&one(rest)?)?)),
        "QUIT" => Ok(Command::Quit),
        "COMMAND" => Ok(Command::Command(rest)),
        "CONFIG" => {
            let mut it = rest.into_iter();
            match it.next().map(|s| upper(&s)) {
                Some(sub) if sub == "GET" => {
                    let patterns: Vec<Vec<u8>> = it.collect();
                    if patterns.is_empty() {
                        Err(Reply::err(
                            "wrong number of arguments for 'config|get' command",
                        ))
                    } else {
                        Ok(Command::ConfigGet(patterns))
                    }
                }
                Some(sub) => Err(Reply::err(format!(
                    "unknown subcommand '{}'. Only CONFIG GET is served.",
                    sub.to_lowercase()
                ))),
                None => Err(arity(&name)),
            }
        }
        "INFO" => Ok(Command::Info(
            rest.iter()
                .map(|s| String::from_utf8_lossy(s).to_lowercase())
                .collect(),
        )),
        "DBSIZE" if n == 0 => Ok(Command::DbSize),
        "FLUSHDB" | "FLUSHALL" => {
            if n > 1 {
                return Err(syntax());
            }
            if let Some(mode) = rest.first().map(|m| upper(m))
                && mode != "SYNC"
                && mode != "ASYNC"
            {
                return Err(syntax());
            }
            Ok(Command::Flush)
        }
        "SCAN" => parse_scan(rest),
        "KEYS" => Ok(Command::Keys(one(rest)?)),
        "MULTI" if n == 0 => Ok(Command::Multi),
        "EXEC" if n == 0 => Ok(Command::Exec),
        "DISCARD" if n == 0 => Ok(Command::Discard),
        "WATCH" => Ok(Command::Watch(some_keys(rest)?)),
        "UNWATCH" if n == 0 => Ok(Command::Unwatch),
        "DBSIZE" | "MULTI" | "EXEC" | "DISCARD" | "UNWATCH" => Err(arity(&name)),
        "ACL" => parse_acl(rest),
        "JUBILANT.DURABILITY" => {
            let arg = match rest.first().map(|a| upper(a)) {
                None => DurabilityArg::Show,
                Some(a) if n == 1 && a == "SYNC" => DurabilityArg::Sync,
                Some(a) if n == 1 && a == "ASYNC" => DurabilityArg::Async,
                Some(a) if n == 1 && a == "DEFAULT" => DurabilityArg::Default,
                Some(_) if n == 1 => {
                    return Err(Reply::err(
                        "the durability class is one of sync, async, default",
                    ));
                }
                Some(_) => return Err(arity(&name)),
            };
            Ok(Command::Durability(arg))
        }
        _ => {
            let shown: Vec<String> = rest
                .iter()
                .take(8)
                .map(|a| format!("'{}' ", String::from_utf8_lossy(a)))
                .collect();
            Err(Reply::err(format!(
                "unknown command '{}', with args beginning with: {}",
                String::from_utf8_lossy(&name_bytes),
                shown.concat()
            )))
        }
    }
}

fn parse_acl(rest: Vec<Vec<u8>>) -> Result<Command, Reply> {
    let mut it = rest.into_iter();
    let Some(sub) = it.next().map(|s| upper(&s)) else {
        return Err(arity("acl"));
    };
    let args: Vec<Vec<u8>> = it.collect();
    let none = |command: AclCommand| {
        if args.is_empty() {
            Ok(Command::Acl(command))
        } else {
            Err(arity(&format!("acl|{sub}")))
        }
    };
    match sub.as_str() {
        "WHOAMI" => none(AclCommand::WhoAmI),
        "LIST" => none(AclCommand::List),
        "USERS" => none(AclCommand::Users),
        "GETUSER" if args.len() == 1 => Ok(Command::Acl(AclCommand::GetUser(
            args.into_iter().next().unwrap_or_default(),
        ))),
        "GETUSER" => Err(arity("acl|getuser")),
        "CAT" if args.len() <= 1 => Ok(Command::Acl(AclCommand::Cat(args.into_iter().next()))),
        "CAT" => Err(arity("acl|cat")),
        "SETUSER" | "DELUSER" | "SAVE" | "LOAD" | "DRYRUN" | "GENPASS" | "LOG" => {
            Err(Reply::err(format!(
                "ACL {sub} is not served: users are defined in [[users]] of the configuration file; edit it and send the server SIGHUP"
            )))
        }
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try ACL HELP.",
            sub.to_lowercase()
        ))),
    }
}

fn parse_set(rest: Vec<Vec<u8>>) -> Result<DataCommand, Reply> {
    if rest.len() < 2 {
        return Err(arity("set"));
    }
    let mut it = rest.into_iter();
    let key = it.next().unwrap_or_default();
    let value = it.next().unwrap_or_default();
    let mut condition = Condition::Always;
    let mut get = false;
    let mut ttl = SetTtl::None;
    while let Some(option) = it.next() {
        let option = upper(&option);
        match option.as_str() {
            "NX" if condition == Condition::Always => condition = Condition::Nx,
            "XX" if condition == Condition::Always => condition = Condition::Xx,
            "GET" if !get => get = true,
            "KEEPTTL" if ttl == SetTtl::None => ttl = SetTtl::Keep,
            "EX" | "PX" | "EXAT" | "PXAT" if ttl == SetTtl::None => {
                let amount = int_arg(&it.next().ok_or_else(syntax)?)?;
                let invalid = || Reply::err("invalid expire time in 'set' command");
                if amount <= 0 {
                    return Err(invalid());
                }
                let ms = |n: i64| n.checked_mul(1000).ok_or_else(invalid);
                ttl = SetTtl::Expiry(match option.as_str() {
                    "EX" => Expiry::In(ms(amount)?),
                    "PX" => Expiry::In(amount),
                    "EXAT" => Expiry::At(ms(amount)?),
                    _ => Expiry::At(amount),
                });
            }
            _ => return Err(syntax()),
        }
    }
    Ok(DataCommand::Set {
        key,
        value,
        condition,
        get,
        ttl,
    })
}

fn parse_hello(rest: Vec<Vec<u8>>) -> Result<Command, Reply> {
    let mut it = rest.into_iter();
    let version = match it.next() {
        None => None,
        Some(v) => Some(parse_int(&v).ok_or_else(|| {
            Reply::Error("ERR Protocol version is not an integer or out of range".into())
        })?),
    };
    let mut auth = None;
    let mut name = None;
    while let Some(option) = it.next() {
        match upper(&option).as_str() {
            "AUTH" => {
                let user = it.next().ok_or_else(syntax)?;
                let password = it.next().ok_or_else(syntax)?;
                auth = Some((user, password));
            }
            "SETNAME" => name = Some(it.next().ok_or_else(syntax)?),
            other => {
                return Err(Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    other.to_lowercase()
                )));
            }
        }
    }
    Ok(Command::Hello {
        version,
        auth,
        name,
    })
}

fn parse_client(rest: Vec<Vec<u8>>) -> Result<Command, Reply> {
    let mut it = rest.into_iter();
    let Some(sub) = it.next() else {
        return Err(arity("client"));
    };
    let args: Vec<Vec<u8>> = it.collect();
    let sub = upper(&sub);
    match (sub.as_str(), args.len()) {
        ("SETNAME", 1) => Ok(Command::ClientSetName(
            args.into_iter().next().unwrap_or_default(),
        )),
        ("GETNAME", 0) => Ok(Command::ClientGetName),
        ("ID", 0) => Ok(Command::ClientId),
        ("SETINFO", 2) => Ok(Command::ClientSetInfo),
        ("SETNAME" | "GETNAME" | "ID" | "SETINFO", _) => Err(Reply::err(format!(
            "wrong number of arguments for 'client|{}' command",
            sub.to_lowercase()
        ))),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            sub.to_lowercase()
        ))),
    }
}

fn parse_scan(rest: Vec<Vec<u8>>) -> Result<Command, Reply> {
    let mut it = rest.into_iter();
    let Some(cursor) = it.next() else {
        return Err(arity("scan"));
    };
    let cursor = std::str::from_utf8(&cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10usize;
    let mut type_name = None;
    while let Some(option) = it.next() {
        match upper(&option).as_str() {
            "MATCH" => pattern = Some(it.next().ok_or_else(syntax)?),
            "COUNT" => {
                let n = int_arg(&it.next().ok_or_else(syntax)?)?;
                if n < 1 {
                    return Err(syntax());
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "TYPE" => type_name = Some(it.next().ok_or_else(syntax)?),
            _ => return Err(syntax()),
        }
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn commands_parse_with_their_options_and_bad_ones_get_redis_errors() {
        assert_eq!(
            parse(args("set k v nx get px 1500")),
            Ok(Command::Data(DataCommand::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                condition: Condition::Nx,
                get: true,
                ttl: SetTtl::Expiry(Expiry::In(1500)),
            }))
        );
        assert_eq!(
            parse(args("DECRBY n 5")),
            Ok(Command::Data(DataCommand::IncrBy(b"n".to_vec(), -5)))
        );
        let error = |line: &str| match parse(args(line)) {
            Err(Reply::Error(text)) => text,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            error("get"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(error("set k v nx xx"), "ERR syntax error");
        assert_eq!(
            error("set k v ex 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            error("incrby k x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            error("incrby k 007"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            error("nosuch a b"),
            "ERR unknown command 'nosuch', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            error("mset a"),
            "ERR wrong number of arguments for 'mset' command"
        );
    }
}
