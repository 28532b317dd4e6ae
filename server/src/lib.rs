//! Jubilant DB's TCP server: `u32`-length-prefixed FlatBuffers frames,
//! request dispatch into the engine, connection handling with limits and
//! backpressure, TOML configuration and structured logging.
//!
//! It is generic over `jubilant_core::env::Env`, so the simulator runs this
//! very code over its simulated network; listening and accepting already go
//! through `jubilant_core::env::Net`.
//!
//! Status: the configuration ([`config`]), `INFO` ([`info`]), framing
//! ([`frame`]), the wire messages ([`wire`]) and serving them
//! ([`runtime`]) are built; the binary, the client and jubectl's online
//! commands follow (issue 6). Until then the simulator is the main program
//! (see the README).

pub mod config;
pub mod info;
pub mod runtime;
pub mod wire;

pub use jubilant_schemas::frame;
