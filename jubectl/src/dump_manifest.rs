//! `jubectl dump-manifest DIR`: every field of the MANIFEST and of both
//! superblocks, each marked valid or invalid (with why), and which
//! superblock open would start from. Read-only: it takes no lock, so it
//! also works on a directory a server holds.
//!
//! Exit 1 when open would refuse what these files hold (a MANIFEST that
//! does not verify or that this build refuses, or no valid superblock);
//! exit 3 when there is no directory or no MANIFEST in it.

use std::fmt::Write as _;
use std::path::Path;

use jubilant_core::store::{Manifest, MetaDump, Superblock, read_meta_dir};
use jubilant_io_real::RealEnv;
use serde_json::{Value, json};

use crate::{exit, text};

pub(crate) async fn run(dir: &Path, as_json: bool) -> u8 {
    let env = RealEnv::current();
    let dump = match read_meta_dir(&env, dir).await {
        Ok(dump) => dump,
        Err(error) => {
            // Damage is reported in the dump; an error is a missing
            // directory or MANIFEST, or an I/O failure.
            eprintln!("jubectl dump-manifest: {error}");
            return exit::OPERATING_ERROR;
        }
    };
    if as_json {
        println!("{}", to_json(dir, &dump));
    } else {
        print!("{}", to_text(dir, &dump));
    }
    if dump.is_damaged() {
        exit::FINDING
    } else {
        exit::OK
    }
}

fn manifest_fields(manifest: &Manifest) -> Vec<(&'static str, String)> {
    vec![
        (
            "format",
            format!("{}.{}", manifest.format_major, manifest.format_minor),
        ),
        ("wire schema hash", text::hex(&manifest.wire_schema_hash)),
        ("wal schema hash", text::hex(&manifest.wal_schema_hash)),
        ("disk schema hash", text::hex(&manifest.disk_schema_hash)),
        ("database uuid", text::uuid(&manifest.database_uuid)),
        (
            "created",
            format!(
                "{} ({})",
                manifest.created_at_unix_ms,
                text::utc(manifest.created_at_unix_ms)
            ),
        ),
        ("page size", format!("{} bytes", manifest.page_bytes)),
        (
            "inline value max",
            format!("{} bytes", manifest.inline_value_bytes_max),
        ),
        (
            "assert hash algorithm",
            manifest.assert_hash_algorithm.clone(),
        ),
        ("generation", manifest.generation.to_string()),
    ]
}

fn superblock_fields(superblock: &Superblock) -> Vec<(&'static str, String)> {
    vec![
        ("generation", superblock.generation.to_string()),
        (
            "root page",
            format!(
                "{} (CRC {:#010x})",
                superblock.root_page, superblock.root_crc
            ),
        ),
        ("tree height", superblock.tree_height.to_string()),
        (
            "free-list root",
            format!(
                "{} (CRC {:#010x})",
                superblock.free_list_page, superblock.free_list_crc
            ),
        ),
        ("free pages", superblock.free_pages_count.to_string()),
        ("checkpoint LSN", superblock.checkpoint_lsn.to_string()),
        (
            "TTL calibration",
            format!(
                "monotonic {} ns = wall {} ({})",
                superblock.calibration_mono_nanos,
                superblock.calibration_wall_unix_ms,
                text::utc(superblock.calibration_wall_unix_ms)
            ),
        ),
        ("page count", superblock.page_count.to_string()),
        ("keys", superblock.keys_count.to_string()),
    ]
}

fn to_text(dir: &Path, dump: &MetaDump) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "database {}", dir.display());
    match &dump.manifest {
        Ok(manifest) => {
            let _ = writeln!(out, "MANIFEST: valid");
            for (name, value) in manifest_fields(manifest) {
                let _ = writeln!(out, "  {name}: {value}");
            }
        }
        Err(detail) => {
            let _ = writeln!(out, "MANIFEST: INVALID: {detail}");
        }
    }
    if let Some(refused) = &dump.manifest_refused {
        let _ = writeln!(out, "  REFUSED by this build: {refused}");
    }
    for superblock in &dump.superblocks {
        match &superblock.superblock {
            Ok(fields) => {
                let active = if superblock.active { ", active" } else { "" };
                let _ = writeln!(out, "{}: valid{active}", superblock.file);
                for (name, value) in superblock_fields(fields) {
                    let _ = writeln!(out, "  {name}: {value}");
                }
            }
            Err(detail) => {
                let _ = writeln!(out, "{}: INVALID: {detail}", superblock.file);
            }
        }
    }
    match dump.active() {
        Some(active) => {
            let generation = active.superblock.as_ref().map_or(0, |s| s.generation);
            let _ = writeln!(
                out,
                "active superblock: {} (generation {generation})",
                active.file
            );
        }
        None => {
            let _ = writeln!(out, "active superblock: NONE (neither is valid)");
        }
    }
    out
}

fn superblock_json(superblock: &Superblock) -> Value {
    json!({
        "generation": superblock.generation,
        "root_page": superblock.root_page,
        "root_crc": superblock.root_crc,
        "tree_height": superblock.tree_height,
        "free_list_page": superblock.free_list_page,
        "free_list_crc": superblock.free_list_crc,
        "free_pages": superblock.free_pages_count,
        "checkpoint_lsn": superblock.checkpoint_lsn,
        "calibration_mono_nanos": superblock.calibration_mono_nanos,
        "calibration_wall_unix_ms": superblock.calibration_wall_unix_ms,
        "page_count": superblock.page_count,
        "keys": superblock.keys_count,
    })
}

fn to_json(dir: &Path, dump: &MetaDump) -> Value {
    let manifest = match &dump.manifest {
        Ok(manifest) => json!({
            "valid": true,
            "format_major": manifest.format_major,
            "format_minor": manifest.format_minor,
            "wire_schema_hash": text::hex(&manifest.wire_schema_hash),
            "wal_schema_hash": text::hex(&manifest.wal_schema_hash),
            "disk_schema_hash": text::hex(&manifest.disk_schema_hash),
            "database_uuid": text::uuid(&manifest.database_uuid),
            "created_at_unix_ms": manifest.created_at_unix_ms,
            "page_bytes": manifest.page_bytes,
            "inline_value_bytes_max": manifest.inline_value_bytes_max,
            "assert_hash_algorithm": manifest.assert_hash_algorithm,
            "generation": manifest.generation,
            "refused": dump.manifest_refused,
        }),
        Err(detail) => json!({"valid": false, "error": detail}),
    };
    let superblocks: Vec<Value> = dump
        .superblocks
        .iter()
        .map(|superblock| {
            let mut value = match &superblock.superblock {
                Ok(fields) => superblock_json(fields),
                Err(detail) => json!({"error": detail}),
            };
            value["file"] = json!(superblock.file);
            value["valid"] = json!(superblock.superblock.is_ok());
            value["active"] = json!(superblock.active);
            value
        })
        .collect();
    json!({
        "dir": dir.display().to_string(),
        "ok": !dump.is_damaged(),
        "manifest": manifest,
        "superblocks": superblocks,
        "active": dump.active().map(|active| active.file),
    })
}
