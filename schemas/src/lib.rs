//! The FlatBuffers schemas of Jubilant DB and the Rust code generated from
//! them: `wire.fbs` (the TCP protocol), `wal.fbs` (WAL records) and
//! `disk.fbs` (MANIFEST, superblocks, value-log record headers, and the
//! B+Tree page layout in comments), plus a content hash of each schema that
//! the MANIFEST and `INFO` record.
//!
//! Status: the schemas arrive with the storage engine (B+Tree, MANIFEST,
//! superblocks) and the WAL records built on the log-file layer in
//! `jubilant_core::log`. Until then this crate only fixes the name and
//! place where they will live, so the workspace layout matches
//! ARCHITECTURE.md.
