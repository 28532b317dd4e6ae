//! The commands the server serves, on either listener, and what Redis's
//! command table says of each: arity, flags, key positions and **ACL
//! categories** (design 13.2). `COMMAND` lists the RESP ones; the ACLs
//! judge every request by the entry it corresponds to, so a rule means
//! here what it means in Redis (`+@all -@dangerous` forbids `FLUSHALL`).
//!
//! Invariant kept here: **every request either listener serves has one
//! entry** (a native transaction's ops count as the RESP commands they
//! correspond to), so no request escapes the ACL check by having no
//! name. A test walks both listeners' requests.

/// An ACL category, as Redis names them (`@read`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Reads keys.
    Read,
    /// Writes keys.
    Write,
    /// Works on keys whatever their type.
    Keyspace,
    /// Works on string values.
    String,
    /// O(1) or O(log n).
    Fast,
    /// Everything not `@fast`.
    Slow,
    /// Administers the server.
    Admin,
    /// May harm the server or its data if used carelessly.
    Dangerous,
    /// About the connection.
    Connection,
    /// `MULTI`/`EXEC`/`WATCH`.
    Transaction,
}

impl Category {
    /// Every category, in the order `ACL CAT` lists them.
    pub const ALL: [Category; 10] = [
        Category::Keyspace,
        Category::Read,
        Category::Write,
        Category::String,
        Category::Fast,
        Category::Slow,
        Category::Admin,
        Category::Dangerous,
        Category::Connection,
        Category::Transaction,
    ];

    /// Its name, without the `@`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Read => "read",
            Category::Write => "write",
            Category::Keyspace => "keyspace",
            Category::String => "string",
            Category::Fast => "fast",
            Category::Slow => "slow",
            Category::Admin => "admin",
            Category::Dangerous => "dangerous",
            Category::Connection => "connection",
            Category::Transaction => "transaction",
        }
    }

    /// The category named `name` (no `@`, any case).
    pub fn named(name: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|category| category.name().eq_ignore_ascii_case(name))
    }
}

/// Where a command is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// On the RESP listener (and listed by `COMMAND`).
    Resp,
    /// A subcommand of a RESP command (`acl|whoami`): ACL rules name it
    /// alone, `COMMAND` lists its parent.
    Sub,
    /// On the native listener only (`checkpoint`, `backup`, `health`).
    Native,
}

/// One command: what `COMMAND INFO` says of it, and its ACL categories.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower case; `parent|sub` for a subcommand.
    pub name: &'static str,
    /// Arguments with the name (negative: at least that many).
    pub arity: i64,
    /// Redis's command flags.
    pub flags: &'static [&'static str],
    /// First key, last key, step (as `COMMAND` gives them).
    pub keys: (i64, i64, i64),
    /// ACL categories.
    pub categories: &'static [Category],
    /// One line on what it does.
    pub summary: &'static str,
    /// Where it is served.
    pub served: Served,
}

use jubilant_core::txn::Op;

use crate::acl::Access;
use crate::wire::Request;

use Category as C;

macro_rules! resp {
    ($($spec:tt)*) => { CommandSpec { $($spec)* served: Served::Resp } };
}

/// Every command, RESP ones first in `COMMAND`'s order.
pub const COMMANDS: &[CommandSpec] = &[
    resp! {
        name: "get",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Read, C::String, C::Fast],
        summary: "Returns the string value of a key.",
    },
    resp! {
        name: "set",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Slow],
        summary: "Sets the string value of a key, ignoring its type.",
    },
    resp! {
        name: "setnx",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Set the string value of a key only when the key doesn't exist.",
    },
    resp! {
        name: "getset",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Returns the previous string value of a key after setting it to a new value.",
    },
    resp! {
        name: "getdel",
        arity: 2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Returns the string value of a key after deleting the key.",
    },
    resp! {
        name: "mget",
        arity: -2,
        flags: &["readonly", "fast"],
        keys: (1, -1, 1),
        categories: &[C::Read, C::String, C::Fast],
        summary: "Atomically returns the string values of one or more keys.",
    },
    resp! {
        name: "mset",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, -1, 2),
        categories: &[C::Write, C::String, C::Slow],
        summary: "Atomically creates or modifies the string values of one or more keys.",
    },
    resp! {
        name: "msetnx",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, -1, 2),
        categories: &[C::Write, C::String, C::Slow],
        summary: "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    },
    resp! {
        name: "del",
        arity: -2,
        flags: &["write"],
        keys: (1, -1, 1),
        categories: &[C::Keyspace, C::Write, C::Slow],
        summary: "Deletes one or more keys.",
    },
    resp! {
        name: "unlink",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, -1, 1),
        categories: &[C::Keyspace, C::Write, C::Fast],
        summary: "Deletes one or more keys.",
    },
    resp! {
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        keys: (1, -1, 1),
        categories: &[C::Keyspace, C::Read, C::Fast],
        summary: "Determines whether one or more keys exist.",
    },
    resp! {
        name: "incr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Increments the integer value of a key by one.",
    },
    resp! {
        name: "decr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Decrements the integer value of a key by one.",
    },
    resp! {
        name: "incrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Increments the integer value of a key by a number.",
    },
    resp! {
        name: "decrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Decrements a number from the integer value of a key.",
    },
    resp! {
        name: "append",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Write, C::String, C::Fast],
        summary: "Appends a string to the value of a key.",
    },
    resp! {
        name: "strlen",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Read, C::String, C::Fast],
        summary: "Returns the length of a string value.",
    },
    resp! {
        name: "expire",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Write, C::Fast],
        summary: "Sets the expiration time of a key in seconds.",
    },
    resp! {
        name: "pexpire",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Write, C::Fast],
        summary: "Sets the expiration time of a key in milliseconds.",
    },
    resp! {
        name: "expireat",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Write, C::Fast],
        summary: "Sets the expiration time of a key to a Unix timestamp.",
    },
    resp! {
        name: "pexpireat",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Write, C::Fast],
        summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    },
    resp! {
        name: "ttl",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Read, C::Fast],
        summary: "Returns the expiration time in seconds of a key.",
    },
    resp! {
        name: "pttl",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Read, C::Fast],
        summary: "Returns the expiration time in milliseconds of a key.",
    },
    resp! {
        name: "persist",
        arity: 2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Write, C::Fast],
        summary: "Removes the expiration time of a key.",
    },
    resp! {
        name: "type",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        categories: &[C::Keyspace, C::Read, C::Fast],
        summary: "Determines the type of value stored at a key.",
    },
    resp! {
        name: "scan",
        arity: -2,
        flags: &["readonly"],
        keys: (0, 0, 0),
        categories: &[C::Keyspace, C::Read, C::Slow],
        summary: "Iterates over the key names in the database.",
    },
    resp! {
        name: "keys",
        arity: 2,
        flags: &["readonly"],
        keys: (0, 0, 0),
        categories: &[C::Keyspace, C::Read, C::Slow, C::Dangerous],
        summary: "Returns all key names that match a pattern.",
    },
    resp! {
        name: "dbsize",
        arity: 1,
        flags: &["readonly", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Keyspace, C::Read, C::Fast],
        summary: "Returns the number of keys in the database.",
    },
    resp! {
        name: "flushdb",
        arity: -1,
        flags: &["write"],
        keys: (0, 0, 0),
        categories: &[C::Keyspace, C::Write, C::Slow, C::Dangerous],
        summary: "Remove all keys from the current database.",
    },
    resp! {
        name: "flushall",
        arity: -1,
        flags: &["write"],
        keys: (0, 0, 0),
        categories: &[C::Keyspace, C::Write, C::Slow, C::Dangerous],
        summary: "Removes all keys from all databases.",
    },
    resp! {
        name: "info",
        arity: -1,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Slow, C::Dangerous],
        summary: "Returns information and statistics about the server.",
    },
    resp! {
        name: "ping",
        arity: -1,
        flags: &["fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Returns the server's liveliness response.",
    },
    resp! {
        name: "echo",
        arity: 2,
        flags: &["fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Returns the given string.",
    },
    resp! {
        name: "hello",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Handshakes with the Redis server.",
    },
    resp! {
        name: "auth",
        arity: -2,
        flags: &["noscript", "loading", "stale", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Authenticates the connection.",
    },
    resp! {
        name: "client",
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        categories: &[C::Slow, C::Connection],
        summary: "A container for client connection commands.",
    },
    resp! {
        name: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Changes the selected database.",
    },
    resp! {
        name: "quit",
        arity: -1,
        flags: &["fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Closes the connection.",
    },
    resp! {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Slow, C::Connection],
        summary: "Returns detailed information about all commands.",
    },
    resp! {
        name: "config",
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        categories: &[C::Admin, C::Slow, C::Dangerous],
        summary: "A container for server configuration commands.",
    },
    resp! {
        name: "multi",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Transaction],
        summary: "Starts a transaction.",
    },
    resp! {
        name: "exec",
        arity: 1,
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Slow, C::Transaction],
        summary: "Executes all commands in a transaction.",
    },
    resp! {
        name: "discard",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Transaction],
        summary: "Discards a transaction.",
    },
    resp! {
        name: "watch",
        arity: -2,
        flags: &["noscript", "loading", "stale", "fast"],
        keys: (1, -1, 1),
        categories: &[C::Fast, C::Transaction],
        summary: "Monitors changes to keys to determine the execution of a transaction.",
    },
    resp! {
        name: "unwatch",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Transaction],
        summary: "Forgets about watched keys of a transaction.",
    },
    resp! {
        name: "jubilant.durability",
        arity: -1,
        flags: &["fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Shows or sets this connection's durability class (sync, async, default).",
    },
    resp! {
        name: "acl",
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        categories: &[],
        summary: "A container for Access List Control commands (WHOAMI, LIST, USERS, GETUSER, CAT are served; users are defined in the configuration).",
    },
    CommandSpec {
        name: "acl|whoami",
        arity: 2,
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Slow],
        summary: "Returns the authenticated username of the current connection.",
        served: Served::Sub,
    },
    CommandSpec {
        name: "acl|list",
        arity: 2,
        flags: &["admin", "noscript", "loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Admin, C::Slow, C::Dangerous],
        summary: "Dumps the effective rules in ACL file format.",
        served: Served::Sub,
    },
    CommandSpec {
        name: "acl|users",
        arity: 2,
        flags: &["admin", "noscript", "loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Admin, C::Slow, C::Dangerous],
        summary: "Lists all ACL users.",
        served: Served::Sub,
    },
    CommandSpec {
        name: "acl|getuser",
        arity: 3,
        flags: &["admin", "noscript", "loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Admin, C::Slow, C::Dangerous],
        summary: "Lists the ACL rules of a user.",
        served: Served::Sub,
    },
    CommandSpec {
        name: "acl|cat",
        arity: -2,
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
        categories: &[C::Slow],
        summary: "Lists the ACL categories, or the commands inside a category.",
        served: Served::Sub,
    },
    CommandSpec {
        name: "checkpoint",
        arity: 1,
        flags: &["admin"],
        keys: (0, 0, 0),
        categories: &[C::Admin, C::Slow, C::Dangerous],
        summary: "Writes a checkpoint (native protocol).",
        served: Served::Native,
    },
    CommandSpec {
        name: "backup",
        arity: 1,
        flags: &["admin"],
        keys: (0, 0, 0),
        categories: &[C::Admin, C::Slow, C::Dangerous],
        summary: "Begins, reads or ends an online backup (native protocol).",
        served: Served::Native,
    },
    CommandSpec {
        name: "health",
        arity: 1,
        flags: &["fast"],
        keys: (0, 0, 0),
        categories: &[C::Fast, C::Connection],
        summary: "Whether the database accepts writes, and why not (native protocol).",
        served: Served::Native,
    },
];

/// The entry named `name` (lower case, `parent|sub` for a subcommand).
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name == name)
}

/// The entry a RESP request's arguments name (its subcommand's for
/// `ACL`), if the server has one.
pub fn named_by(args: &[Vec<u8>]) -> Option<&'static CommandSpec> {
    let name = String::from_utf8_lossy(args.first()?).to_ascii_lowercase();
    if name == "acl" {
        let sub = String::from_utf8_lossy(args.get(1)?).to_ascii_lowercase();
        return find(&format!("acl|{sub}"));
    }
    find(&name)
}

/// The entry named `name`, one of this table's own (a test resolves
/// every name the server asks for).
fn entry(name: &str) -> &'static CommandSpec {
    find(name).unwrap_or_else(|| panic!("the command table has no {name:?}"))
}

/// The entry a native request corresponds to, and `None` for the two
/// judged otherwise: `Auth` needs no rule, and a transaction is judged op
/// by op ([`native_op`]).
pub fn native_request(request: &Request) -> Option<&'static CommandSpec> {
    Some(entry(match request {
        Request::Txn(_) | Request::Auth { .. } => return None,
        Request::Info => "info",
        Request::Checkpoint => "checkpoint",
        Request::Ping => "ping",
        Request::Health => "health",
        Request::Scan(_) => "scan",
        Request::BackupBegin | Request::BackupRead { .. } | Request::BackupEnd { .. } => "backup",
    }))
}

/// The RESP command a native transaction's op corresponds to, and what it
/// does with its key.
pub fn native_op(op: &Op) -> (&'static CommandSpec, Access) {
    let (name, access) = match op {
        Op::Get(_)
        | Op::AssertIntEq(..)
        | Op::AssertBytesHashEq(..)
        | Op::AssertStringHashEq(..)
        | Op::AssertRevisionEq(..) => ("get", Access::Read),
        Op::AssertExists(_) | Op::AssertNotExists(_) => ("exists", Access::Read),
        Op::AssertType(..) => ("type", Access::Read),
        Op::Ttl(_) => ("pttl", Access::Read),
        Op::Set(..) => ("set", Access::Write),
        Op::Del(_) => ("del", Access::Write),
        Op::Expire(..) => ("pexpire", Access::Write),
        Op::Persist(_) => ("persist", Access::Write),
        Op::Add(..) => ("incrby", Access::ReadWrite),
    };
    (entry(name), access)
}

/// The commands `COMMAND` lists (the RESP listener's).
pub fn resp_commands() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().filter(|spec| spec.served == Served::Resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jubilant_core::db::Value;

    #[test]
    fn every_native_request_and_op_has_an_entry() {
        let requests = [
            Request::Info,
            Request::Checkpoint,
            Request::Ping,
            Request::Health,
            Request::Scan(jubilant_core::db::ScanRequest::new(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
            )),
            Request::BackupBegin,
            Request::BackupEnd { backup: 1 },
        ];
        for request in &requests {
            assert!(native_request(request).is_some(), "{request:?}");
        }
        let ops = [
            Op::Get(0),
            Op::Set(0, Value::Int(1), None),
            Op::Del(0),
            Op::Add(0, 1),
            Op::Expire(0, 1),
            Op::Persist(0),
            Op::Ttl(0),
            Op::AssertExists(0),
            Op::AssertNotExists(0),
            Op::AssertType(0, None),
            Op::AssertIntEq(0, 1),
            Op::AssertBytesHashEq(0, [0; 32]),
            Op::AssertStringHashEq(0, [0; 32]),
            Op::AssertRevisionEq(0, 1),
        ];
        for op in &ops {
            let (spec, access) = native_op(op);
            assert_eq!(
                op.writes(),
                access != Access::Read,
                "{op:?} is judged as {}",
                spec.name
            );
        }
    }

    #[test]
    fn every_resp_command_that_parses_has_an_entry() {
        let lines = [
            "GET k",
            "SET k v",
            "SETNX k v",
            "GETSET k v",
            "GETDEL k",
            "MGET k",
            "MSET k v",
            "MSETNX k v",
            "DEL k",
            "UNLINK k",
            "EXISTS k",
            "INCR k",
            "DECR k",
            "INCRBY k 1",
            "DECRBY k 1",
            "APPEND k v",
            "STRLEN k",
            "EXPIRE k 1",
            "PEXPIRE k 1",
            "EXPIREAT k 1",
            "PEXPIREAT k 1",
            "TTL k",
            "PTTL k",
            "PERSIST k",
            "TYPE k",
            "SCAN 0",
            "KEYS *",
            "DBSIZE",
            "FLUSHDB",
            "FLUSHALL",
            "INFO",
            "PING",
            "ECHO x",
            "HELLO",
            "AUTH p",
            "CLIENT ID",
            "SELECT 0",
            "QUIT",
            "COMMAND",
            "CONFIG GET x",
            "MULTI",
            "EXEC",
            "DISCARD",
            "WATCH k",
            "UNWATCH",
            "JUBILANT.DURABILITY",
            "ACL WHOAMI",
            "ACL LIST",
            "ACL USERS",
            "ACL GETUSER u",
            "ACL CAT",
        ];
        for line in lines {
            let args: Vec<Vec<u8>> = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
            assert!(
                crate::resp::command::parse(args.clone()).is_ok(),
                "{line} parses"
            );
            assert!(named_by(&args).is_some(), "{line} has an entry");
        }
        let listed = resp_commands()
            .filter(|spec| !spec.categories.is_empty())
            .count();
        assert_eq!(listed, lines.len() - 5, "a line per command");
    }

    #[test]
    fn names_are_unique_lower_case_and_every_command_but_a_container_has_categories() {
        let mut names = std::collections::BTreeSet::new();
        for spec in COMMANDS {
            assert!(names.insert(spec.name), "{} twice", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            let container = COMMANDS
                .iter()
                .any(|other| other.name.starts_with(&format!("{}|", spec.name)));
            assert_eq!(spec.categories.is_empty(), container, "{}", spec.name);
            if !container {
                assert!(
                    spec.categories.contains(&C::Fast) != spec.categories.contains(&C::Slow),
                    "{} is either @fast or @slow",
                    spec.name
                );
            }
        }
    }
}
