//! `jubectl`, the Jubilant DB admin CLI.
//!
//! Online commands talk to a running server (`--addr`, or `JUBILANT_ADDR`,
//! default `127.0.0.1:6767`): `ping`, `get`, `set`, `del`, `add`, `ttl`,
//! `expire`, `persist`, `info`, `health`, `scan`, `checkpoint`, `txn`, and
//! `backup DIR` (an online, consistent copy). Offline, on a
//! database directory no server holds: `init DIR` creates a database;
//! `restore BACKUP DIR` installs a backup as a new database;
//! `validate DIR` checks it page by page and follows its value-log
//! pointers; `repair DIR` runs open's recovery and repair and reports each
//! action; `dump-manifest DIR` prints the MANIFEST and both superblocks;
//! `dump-wal DIR` lists every segment and record of a WAL directory. Only
//! `init` and `repair` change anything. `completions SHELL` and `man` print
//! a shell completion script and the man page; `hash-password` turns a
//! password read from standard input into a `[[users]]` hash. `--json` prints one JSON object
//! instead of text.
//!
//! Exit codes (stable, for scripts):
//! - 0: success (`repair`: repaired, or nothing to repair);
//! - 1: the command ran and found a problem (a missing key for `get` and
//!   `ttl`; a server that is not healthy for `health`; corruption in the WAL; a `validate` finding;
//!   a backup copy that does not open and validate; a MANIFEST that
//!   does not verify or no valid superblock for `dump-manifest`; damage
//!   `repair` cannot repair);
//! - 2: bad usage (unknown command or flag, a value that does not parse,
//!   `init` options the engine refuses);
//! - 3: an operating error (no server at the address, the connection lost;
//!   a directory that is missing, unreadable, in use by a server, holding
//!   no database for `validate`/`repair`/`dump-manifest`, or already
//!   holding one for `init`, or files for `backup` and `restore`);
//! - 4: the server refused the request (a typed error, printed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backup;
mod dump_manifest;
mod dump_wal;
mod hash_password;
mod init;
mod online;
mod repair;
mod text;
mod txn_json;
mod validate;

use online::{DurabilityName, Online};
use text::TypeName;

#[derive(Parser, Debug)]
#[command(name = "jubectl", version, about = "Administer Jubilant DB")]
struct Cli {
    /// The server's address, `HOST:PORT` (a name or an IP address), for
    /// online commands.
    #[arg(
        long,
        env = "JUBILANT_ADDR",
        default_value = "127.0.0.1:6767",
        global = true
    )]
    addr: String,
    /// Seconds to wait for the connection, and then for each answer.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
    /// Authenticate as this user (a server with `[[users]]`); with only
    /// a password, the user is `default`.
    #[arg(long, env = "JUBILANT_USER", global = true)]
    user: Option<String>,
    /// The user's password (prefer the environment variable: a command
    /// line is visible to other users of the machine).
    #[arg(long, env = "JUBILANT_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// Speak TLS to the server (its `[tls]` is on); needs `--tls-ca`.
    #[arg(long, env = "JUBILANT_TLS", global = true)]
    tls: bool,
    /// The CA certificate (PEM) the server's certificate must chain to
    /// (implies `--tls`).
    #[arg(long, env = "JUBILANT_TLS_CA", value_name = "FILE", global = true)]
    tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for a server that requires one
    /// (mTLS); with `--tls-key`.
    #[arg(long, env = "JUBILANT_TLS_CERT", value_name = "FILE", global = true)]
    tls_cert: Option<PathBuf>,
    /// This client's private key (PEM); with `--tls-cert`.
    #[arg(long, env = "JUBILANT_TLS_KEY", value_name = "FILE", global = true)]
    tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of
    /// `--addr`).
    #[arg(long, value_name = "NAME", global = true)]
    tls_server_name: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Read KEY arguments as hexadecimal bytes (keys are any bytes; without
    /// it a key is the argument's UTF-8 text). Keys that are not printable
    /// text are shown quoted and escaped, as redis-cli shows them.
    #[arg(long, global = true)]
    hex: bool,
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
    /// List keys (and values) in key order, a page at a time: each key
    /// present for the whole scan exactly once (not a snapshot).
    Scan {
        /// Only keys that begin with this.
        #[arg(long)]
        prefix: Option<String>,
        /// The first key (included).
        #[arg(long)]
        from: Option<String>,
        /// The key to stop before (excluded).
        #[arg(long)]
        to: Option<String>,
        /// Print at most this many entries (default: all).
        #[arg(long)]
        limit: Option<u64>,
        /// Keys only, without their values.
        #[arg(long)]
        keys_only: bool,
        /// Descending key order.
        #[arg(long)]
        reverse: bool,
    },
    /// Print the server's health: status (ok, failed, shutting_down), the
    /// failure's reason, durable LSN lag, checkpoint age and WAL bytes
    /// since the checkpoint (exit 1 unless ok).
    Health,
    /// Write a checkpoint now; prints its LSN.
    Checkpoint,
    /// Take an online backup of the server into DIR (a new directory):
    /// a consistent copy holding every commit answered before it began,
    /// written to DIR.tmp, opened and validated, then renamed to DIR.
    /// Writers keep running meanwhile.
    Backup {
        /// The directory to create.
        dir: PathBuf,
    },
    /// Install a backup as a new database in DIR (offline: no server may
    /// use DIR), then open, validate and close it. Refuses a DIR that
    /// holds any file (exit 3): it never overwrites a database.
    Restore {
        /// The backup's directory (made by `jubectl backup`).
        backup: PathBuf,
        /// The new database directory.
        dir: PathBuf,
    },
    /// Run a transaction written as JSON (`jubectl txn --help` shows the
    /// format), from FILE or standard input.
    #[command(after_help = txn_json::FORMAT)]
    Txn {
        /// The JSON file (standard input when left out or `-`).
        file: Option<PathBuf>,
    },
    /// Create a new, empty database in DIR (created if missing); refuses a
    /// directory that already holds one (exit 3).
    Init {
        /// The database directory.
        dir: PathBuf,
        /// Page size in bytes, fixed for the database's life (a power of
        /// two; default 4096).
        #[arg(long)]
        page_bytes: Option<u32>,
        /// Values longer than this go to the value log; fixed for the
        /// database's life (default 512).
        #[arg(long)]
        inline_value_bytes_max: Option<u32>,
    },
    /// Check a stopped database's durable tree page by page and follow its
    /// value-log pointers (read-only; exit 1 on any finding).
    Validate {
        /// The database directory.
        dir: PathBuf,
    },
    /// Run a stopped database's recovery and repair (as open does), then
    /// checkpoint and close; print each repair action (exit 1 if it cannot
    /// be repaired).
    Repair {
        /// The database directory.
        dir: PathBuf,
        /// Cut the WAL at damage that is not a torn tail, giving up every
        /// commit after it (acknowledged ones included), instead of
        /// refusing. Prints what was given up.
        #[arg(long)]
        accept_data_loss: bool,
    },
    /// Print every field of the MANIFEST and both superblocks, and which
    /// superblock is active (read-only; exit 1 if open would refuse them).
    DumpManifest {
        /// The database directory.
        dir: PathBuf,
    },
    /// Print a shell completion script for jubectl (bash, zsh, fish,
    /// elvish or powershell), e.g. `jubectl completions bash >
    /// /etc/bash_completion.d/jubectl`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print jubectl's man page (roff), e.g. `jubectl man > jubectl.1`.
    Man,
    /// Read a password from standard input (one line) and print its
    /// argon2id hash (PHC string) for a `[[users]]` entry's
    /// `password_hash`.
    HashPassword,
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
    Backup(PathBuf),
    Restore(PathBuf, PathBuf),
    DumpManifest(PathBuf),
    DumpWal(PathBuf, bool),
    Init(PathBuf, init::InitOptions),
    Repair(PathBuf, bool),
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

/// A KEY argument: its UTF-8 text, or with `--hex` the bytes it spells.
fn key_arg(text: String, hex: bool) -> Result<Vec<u8>, String> {
    if hex {
        text::parse_hex(&text)
            .ok_or_else(|| format!("key {text:?} is not hexadecimal bytes (--hex)"))
    } else {
        Ok(text.into_bytes())
    }
}

/// The online request a command line asks for.
fn online_command(command: Command, hex: bool) -> Result<Online, String> {
    let key = |text| key_arg(text, hex);
    Ok(match command {
        Command::DumpWal { .. }
        | Command::Validate { .. }
        | Command::DumpManifest { .. }
        | Command::Repair { .. }
        | Command::Init { .. }
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Completions { .. }
        | Command::HashPassword
        | Command::Man => {
            unreachable!("offline and generated commands are split off above")
        }
        Command::Ping => Online::Ping,
        Command::Get { key: k } => Online::Get(key(k)?),
        Command::Set {
            key: k,
            value,
            ttl_ms,
            type_name,
            durability,
        } => Online::Set {
            key: key(k)?,
            value: text::parse_value(&value, type_name)?,
            ttl_ms,
            durability,
        },
        Command::Del { key: k } => Online::Del(key(k)?),
        Command::Add { key: k, delta } => Online::Add(key(k)?, delta),
        Command::Ttl { key: k } => Online::Ttl(key(k)?),
        Command::Expire { key: k, ttl_ms } => Online::Expire(key(k)?, ttl_ms),
        Command::Persist { key: k } => Online::Persist(key(k)?),
        Command::Info => Online::Info,
        Command::Health => Online::Health,
        Command::Scan {
            prefix,
            from,
            to,
            limit,
            keys_only,
            reverse,
        } => {
            use std::ops::Bound;
            let mut scan = jubilant_client::ScanRequest::new(
                from.map(key)
                    .transpose()?
                    .map_or(Bound::Unbounded, Bound::Included),
                to.map(key)
                    .transpose()?
                    .map_or(Bound::Unbounded, Bound::Excluded),
            );
            if let Some(prefix) = prefix {
                scan.within_prefix(&key(prefix)?);
            }
            scan.keys_only = keys_only;
            scan.reverse = reverse;
            Online::Scan(scan, limit)
        }
        Command::Checkpoint => Online::Checkpoint,
        Command::Txn { file } => Online::Txn(read_txn(file.as_deref())?),
    })
}

/// Writes what `completions` and `man` generate from the command line's
/// own definition; exit 3 if standard output fails.
fn generate(command: &Command) -> ExitCode {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    let mut out = std::io::stdout();
    let written = match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cli, "jubectl", &mut out);
            Ok(())
        }
        _ => clap_mangen::Man::new(cli).render(&mut out),
    };
    match written {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            eprintln!("jubectl: cannot write: {error}");
            ExitCode::from(exit::OPERATING_ERROR)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Completions { .. } | Command::Man) {
        return generate(&cli.command);
    }
    if matches!(cli.command, Command::HashPassword) {
        return hash_password::run();
    }
    let json = cli.json;
    let credentials = match (cli.user, cli.password) {
        (user, Some(password)) => Some(jubilant_client::Credentials {
            user: user.unwrap_or_else(|| "default".to_owned()),
            password: password.into_bytes(),
        }),
        (Some(_), None) => {
            eprintln!("jubectl: --user needs --password (or JUBILANT_PASSWORD)");
            return ExitCode::from(exit::USAGE);
        }
        (None, None) => None,
    };
    let Some(timeout) = std::time::Duration::try_from_secs_f64(cli.timeout)
        .ok()
        .filter(|timeout| !timeout.is_zero())
    else {
        eprintln!("jubectl: --timeout must be a positive number of seconds");
        return ExitCode::from(exit::USAGE);
    };
    let tls = match online::tls_client(
        &cli.addr,
        cli.tls,
        cli.tls_ca.as_deref(),
        (cli.tls_cert.as_deref(), cli.tls_key.as_deref()),
        cli.tls_server_name.as_deref(),
    ) {
        Ok(tls) => tls,
        Err(message) => {
            eprintln!("jubectl: {message}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let target = online::Target {
        addr: cli.addr,
        timeout,
        credentials,
        tls,
    };
    let hex = cli.hex;
    let (online, offline) = match cli.command {
        Command::DumpWal { dir, summary } => (None, Some(Offline::DumpWal(dir, summary))),
        Command::Validate { dir } => (None, Some(Offline::Validate(dir))),
        Command::Backup { dir } => (None, Some(Offline::Backup(dir))),
        Command::Restore { backup, dir } => (None, Some(Offline::Restore(backup, dir))),
        Command::DumpManifest { dir } => (None, Some(Offline::DumpManifest(dir))),
        Command::Repair {
            dir,
            accept_data_loss,
        } => (None, Some(Offline::Repair(dir, accept_data_loss))),
        Command::Init {
            dir,
            page_bytes,
            inline_value_bytes_max,
        } => {
            let options = init::InitOptions {
                page_bytes,
                inline_value_bytes_max,
            };
            (None, Some(Offline::Init(dir, options)))
        }
        online => (Some(online), None),
    };
    let online = match online.map(|command| online_command(command, hex)) {
        None => None,
        Some(Ok(online)) => Some(online),
        Some(Err(message)) => {
            eprintln!("jubectl: {message}");
            return ExitCode::from(exit::USAGE);
        }
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
            (Some(online), _) => online::run(&target, online, json).await,
            (None, Some(Offline::DumpWal(dir, summary))) => {
                dump_wal::run(&dir, json, summary).await
            }
            (None, Some(Offline::Validate(dir))) => validate::run(&dir, json).await,
            (None, Some(Offline::Backup(dir))) => backup::run_backup(&target, &dir, json).await,
            (None, Some(Offline::Restore(from, to))) => backup::run_restore(&from, &to, json).await,
            (None, Some(Offline::DumpManifest(dir))) => dump_manifest::run(&dir, json).await,
            (None, Some(Offline::Repair(dir, accept_data_loss))) => {
                repair::run(&dir, accept_data_loss, json).await
            }
            (None, Some(Offline::Init(dir, options))) => init::run(&dir, options, json).await,
            (None, None) => unreachable!("a command is online or offline"),
        }
    });
    ExitCode::from(code)
}
