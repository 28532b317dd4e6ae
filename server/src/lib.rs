//! Jubilant DB's TCP server: `u32`-length-prefixed FlatBuffers frames,
//! request dispatch into the engine, connection handling with limits and
//! backpressure, TOML configuration and structured logging.
//!
//! It is generic over `jubilant_core::env::Env`, so the simulator runs this
//! very code over its simulated network; listening and accepting already go
//! through `jubilant_core::env::Net`.
//!
//! [`runtime::start`] opens the database and serves it; the binary
//! `jubilant-server` (feature `bin`) runs it on tokio with the TOML
//! configuration ([`config`]); the simulator runs [`runtime::serve_db`]
//! over its network (docs/design.md 4.9). [`info`] renders `INFO`,
//! [`wire`] decodes requests and encodes responses, [`frame`] splits the
//! byte stream.

jubilant_core::declare_build_checks!();

pub mod accounting;
pub mod acl;
mod admin;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod commands;
pub mod config;
pub mod info;
pub mod metrics;
pub mod resp;
pub mod runtime;
pub mod wire;

pub use jubilant_schemas::frame;
