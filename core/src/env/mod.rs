//! The environment seam: the one door through which the engine reaches files,
//! clocks, tasks and the network.
//!
//! Invariant kept here: nothing in `core`, `server` or `client` touches the
//! outside world except through [`Env`]. Production plugs in `io-real`
//! (files, system clocks, tokio); the simulator plugs in `io-sim`, where the
//! same code runs over a simulated disk, network and clock driven by one seed.
//! `clippy.toml` at the workspace root turns any bypass into a lint error.
//!
//! # Why generic, not `dyn`
//!
//! The traits use `async fn`-style methods (return-position `impl Future`),
//! which are not object-safe. The engine is instead generic over `E: Env`:
//!
//! - every IO call is a direct, inlinable call with no boxing of futures; the
//!   WAL's hot path issues a write and an `fdatasync` per batch and should pay
//!   nothing for the seam;
//! - there are exactly two implementations, chosen once at the top (the
//!   server binary or the simulator), so monomorphisation costs one copy of
//!   the engine per environment, which is cheap;
//! - associated types (the file handle, the directory lock, the byte stream)
//!   keep each environment's own types without downcasts.
//!
//! All futures are `Send`, so production can run the engine on a
//! multi-threaded tokio runtime; the simulator's single-threaded executor does
//! not need `Send` but pays nothing for it.
//!
//! # Buffers
//!
//! Reads return an owned `Vec<u8>` and writes borrow a slice: production runs
//! blocking `pread`/`pwrite` on a thread pool, which needs owned data, and the
//! copy costs far less than the system call it accompanies.

mod clock;
mod fs;
mod net;
pub(crate) mod pace;
mod salvage;
mod spawn;

pub use clock::{Clock, MonoTime};
pub use fs::{File, Fs, OpenMode, create_dir_durably, is_out_of_space};
pub use net::{Listener, Net};
pub use salvage::{SALVAGE_SECTOR_BYTES, Salvaged, UNREADABLE_FILL, read_salvaging};
pub use spawn::Spawn;

/// Everything the engine may use from the outside world, in one bound.
///
/// Cloning an environment is cheap (a handle); every clone refers to the same
/// world.
pub trait Env: Fs + Clock + Spawn + Net + Clone + Send + Sync + 'static {}

impl<T> Env for T where T: Fs + Clock + Spawn + Net + Clone + Send + Sync + 'static {}
