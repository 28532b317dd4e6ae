//! `jubectl`, the Jubilant DB admin CLI.
//!
//! Today it has the offline command the log-file layer supports:
//! `jubectl dump-wal DIR` lists every segment and record of a WAL directory
//! without modifying it. The online commands (`get`, `set`, `txn`, `info`,
//! ...) arrive with the server; `init`, `validate` and `repair` with the
//! storage engine.
//!
//! Exit codes (stable, for scripts):
//! - 0: success;
//! - 1: the command ran and found a problem (e.g. corruption in the WAL);
//! - 2: bad usage (unknown command or flag);
//! - 3: an operating error (a directory that cannot be read).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dump_wal;

#[derive(Parser, Debug)]
#[command(name = "jubectl", version, about = "Administer Jubilant DB")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the segments and records of a WAL directory (read-only).
    DumpWal {
        /// The WAL directory (holding wal-NNNNNN.log files).
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print only the segment summary, not every record.
        #[arg(long)]
        summary: bool,
    },
}

/// The exit codes documented above.
pub(crate) mod exit {
    pub const OK: u8 = 0;
    pub const FINDING: u8 = 1;
    pub const OPERATING_ERROR: u8 = 3;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        match cli.command {
            Command::DumpWal { dir, json, summary } => dump_wal::run(&dir, json, summary).await,
        }
    });
    ExitCode::from(code)
}
