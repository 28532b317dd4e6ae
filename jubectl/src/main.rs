//! `jubectl`, the Jubilant DB admin CLI.
//!
//! Online commands talk to a running server (`--addr`, or `JUBILANT_ADDR`,
//! default `127.0.0.1:6767`): `ping`, `get`, `set`, `del`, `add`, `ttl`,
//! `expire`, `persist`, `info`, `checkpoint`. Offline: `dump-wal DIR` lists
//! every segment and record of a WAL directory without modifying it.
//! `--json` prints one JSON object instead of text.
//!
//! Exit codes (stable, for scripts):
//! - 0: success;
//! - 1: the command ran and found a problem (a missing key for `get` and
//!   `ttl`, corruption in the WAL);
//! - 2: bad usage (unknown command or flag, a value that does not parse);
//! - 3: an operating error (no server at the address, a directory that
//!   cannot be read, the connection lost);
//! - 4: the server refused the request (a typed error, printed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dump_wal;
mod online;
mod txn_json;
mod validate;

use online::{DurabilityName, Online, TypeName};

#[derive(Parser, Debug)]
#[command(name = "jubectl", version, about = "Administer Jubilant DB")]
struct Cli {
    /// The server's address, for online commands.
    #[arg(
        long,
        env = "JUBILANT_ADDR",
        default_value = "127.0.0.1:6767",
        global = true
    )]
    addr: SocketAddr,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the server answers.
    Ping,
    /// Print a key's value (exit 1 if it is missing).
    Get {
        /// The key.
        key: String,
    },
    /// Set a key's value.
    Set {
        /// The key.
        key: String,
        /// The value (hexadecimal with --type bytes).
        value: String,
        /// Expire after this many milliseconds.
        #[arg(long)]
        ttl_ms: Option<u64>,
        /// How to read VALUE.
        #[arg(long = "type", value_enum, default_value = "string")]
        type_name: TypeName,
        /// Answer after the commit is durable (sync) or once accepted.
        #[arg(long, value_enum)]
        durability: Option<DurabilityName>,
    },
    /// Delete a key; prints 1 if it existed, else 0.
    Del {
        /// The key.
        key: String,
    },
    /// Add to an integer (a missing key counts as 0); prints the new value.
    Add {
        /// The key.
        key: String,
        /// What to add (may be negative).
        #[arg(allow_hyphen_values = true)]
        delta: i64,
    },
    /// Print a key's remaining TTL in ms, or "no expiry" (exit 1 if missing).
    Ttl {
        /// The key.
        key: String,
    },
    /// Give a key a TTL; prints 1 if it existed, else 0.
    Expire {
        /// The key.
        key: String,
        /// Milliseconds from now.
        ttl_ms: u64,
    },
    /// Remove a key's TTL; prints 1 if it had one, else 0.
    Persist {
        /// The key.
        key: String,
    },
    /// Print the server's INFO.
    Info,
    /// Write a checkpoint now; prints its LSN.
    Checkpoint,
    /// Run a transaction written as JSON (see `jubectl txn --help` and the
    /// README), from FILE or standard input.
    Txn {
        /// The JSON file (standard input when left out or `-`).
        file: Option<PathBuf>,
    },
    /// Check a stopped database's durable tree page by page (read-only;
    /// exit 1 on any finding).
    Validate {
        /// The database directory.
        dir: PathBuf,
    },
    /// List the segments and records of a WAL directory (read-only).
    DumpWal {
        /// The WAL directory (holding wal-NNNNNN.log files).
        dir: PathBuf,
        /// Print only the segment summary, not every record.
        #[arg(long)]
        summary: bool,
    },
}

/// The exit codes documented above.
pub(crate) mod exit {
    pub const OK: u8 = 0;
    pub const FINDING: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const OPERATING_ERROR: u8 = 3;
    pub const REFUSED: u8 = 4;
}

/// A command that works on a directory, without a server.
enum Offline {
    DumpWal(PathBuf, bool),
    Validate(PathBuf),
}

/// Reads and parses a JSON transaction from `file` (or standard input).
fn read_txn(file: Option<&std::path::Path>) -> Result<jubilant_core::txn::Txn, String> {
    let text = match file {
        Some(path) if path != std::path::Path::new("-") => {
            // A CLI reading its argument file: outside the engine's rules.
            #[allow(clippy::disallowed_methods)]
            let text = std::fs::read_to_string(path);
            text.map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        _ => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            text
        }
    };
    txn_json::parse(&text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (addr, json) = (cli.addr, cli.json);
    let (online, offline) = match cli.command {
        Command::DumpWal { dir, summary } => (None, Some(Offline::DumpWal(dir, summary))),
        Command::Validate { dir } => (None, Some(Offline::Validate(dir))),
        online => (Some(online), None),
    };
    let online = match online {
        None => None,
        Some(Command::DumpWal { .. } | Command::Validate { .. }) => {
            unreachable!("offline commands are split off above")
        }
        Some(Command::Ping) => Some(Online::Ping),
        Some(Command::Get { key }) => Some(Online::Get(key)),
        Some(Command::Set {
            key,
            value,
            ttl_ms,
            type_name,
            durability,
        }) => match online::parse_value(&value, type_name) {
            Ok(value) => Some(Online::Set {
                key,
                value,
                ttl_ms,
                durability,
            }),
            Err(message) => {
                eprintln!("jubectl: {message}");
                return ExitCode::from(exit::USAGE);
            }
        },
        Some(Command::Del { key }) => Some(Online::Del(key)),
        Some(Command::Add { key, delta }) => Some(Online::Add(key, delta)),
        Some(Command::Ttl { key }) => Some(Online::Ttl(key)),
        Some(Command::Expire { key, ttl_ms }) => Some(Online::Expire(key, ttl_ms)),
        Some(Command::Persist { key }) => Some(Online::Persist(key)),
        Some(Command::Info) => Some(Online::Info),
        Some(Command::Checkpoint) => Some(Online::Checkpoint),
        Some(Command::Txn { file }) => match read_txn(file.as_deref()) {
            Ok(txn) => Some(Online::Txn(txn)),
            Err(message) => {
                eprintln!("jubectl: {message}");
                return ExitCode::from(exit::USAGE);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("jubectl: cannot start the async runtime: {err}");
            return ExitCode::from(exit::OPERATING_ERROR);
        }
    };
    let code = runtime.block_on(async {
        match (online, offline) {
            (Some(online), _) => online::run(addr, online, json).await,
            (None, Some(Offline::DumpWal(dir, summary))) => {
                dump_wal::run(&dir, json, summary).await
            }
            (None, Some(Offline::Validate(dir))) => validate::run(&dir, json).await,
            (None, None) => unreachable!("a command is online or offline"),
        }
    });
    ExitCode::from(code)
}
