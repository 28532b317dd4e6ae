//! Jubilant DB's simulated environment: the engine's environment traits
//! implemented over a seeded, deterministic world.
//!
//! A [`World`] holds
//! - a single-threaded executor built on `async-task` whose next task is
//!   chosen by the seed's RNG ([`executor`](crate::World::step));
//! - virtual time that jumps to the next timer when nothing is ready;
//! - a disk per node that keeps, per file, the durable image and the writes
//!   not yet synced, and on a crash keeps, drops or tears each of them
//!   (see the `disk` module);
//! - a network with latency, resets and partitions;
//! - one [`FaultConfig`], drawn from the seed or pinned, that sets every
//!   fault's rate;
//! - a [`trace`](World::trace_hash) of every decision, hashed, so two runs
//!   of a seed can be compared byte for byte.
//!
//! Code under test sees a [`SimEnv`], the same traits production code sees.
//!
//! ```
//! use jubilant_core::env::{Clock, Spawn};
//! use jubilant_io_sim::{FaultConfig, NodeId, World};
//! use std::time::Duration;
//!
//! let world = World::new(42, FaultConfig::none());
//! let env = world.env(NodeId(0));
//! world.spawn(NodeId(0), "sleeper", {
//!     let env = env.clone();
//!     async move { env.sleep(Duration::from_secs(3600)).await }
//! });
//! world.run_until_idle(1_000);
//! // An hour of virtual time passed in a few steps.
//! assert!(world.now().as_nanos() >= 3_600_000_000_000);
//! ```

jubilant_core::declare_build_checks!();

mod disk;
mod env;
mod executor;
mod faults;
mod net;
mod node;
mod rng;
mod shared;
mod space;
mod time;
mod trace;
mod world;

pub use disk::{GARBLE_BLOCK_BYTES, SECTOR_BYTES};
pub use env::{SimDirLock, SimEnv, SimFile, SimJoinHandle, SimListener, SimStream};
pub use faults::{Fault, FaultConfig, FaultCounts};
pub use net::{PIPE_BYTES_MAX, RETRANSMIT_TIMEOUT_NANOS, node_ip};
pub use node::NodeId;
pub use rng::{SimRng, Stream};
pub use space::SPACE_BLOCK_BYTES;
pub use time::{Sleep, WALL_EPOCH_MS};
pub use trace::TAIL_LINES;
pub use world::{Step, World};
