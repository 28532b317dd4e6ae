//! `jubectl init DIR`: a new, empty database in DIR (created if missing),
//! made by the engine's own open on the real environment, exactly as a
//! server would make it, then closed cleanly. Prints what it created.
//!
//! Invariant kept here: **an existing database is never touched.** A
//! directory holding a MANIFEST is refused before anything is opened, and
//! a directory holding other files is refused by the engine
//! (`NotADatabase`); both exit 3.

use std::io::ErrorKind;
use std::path::Path;

use jubilant_core::db::{Db, DbError, DbOptions};
use jubilant_core::env::Fs;
use jubilant_core::store::{MANIFEST_FILE, StoreError, read_meta_dir};
use jubilant_io_real::RealEnv;
use serde_json::json;

use crate::{exit, text};

/// What a new database is created with; `None` takes the engine's default.
#[derive(Debug)]
pub(crate) struct InitOptions {
    pub(crate) page_bytes: Option<u32>,
    pub(crate) inline_value_bytes_max: Option<u32>,
}

pub(crate) async fn run(dir: &Path, options: InitOptions, as_json: bool) -> u8 {
    let env = RealEnv::current();
    match env.list(dir).await {
        Ok(names) if names.iter().any(|name| name == MANIFEST_FILE) => {
            eprintln!(
                "jubectl init: {} already holds a database (it has a MANIFEST); refusing to touch it",
                dir.display()
            );
            return exit::OPERATING_ERROR;
        }
        Ok(_) => {}
        // Open creates it.
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => {
            eprintln!("jubectl init: cannot list {}: {error}", dir.display());
            return exit::OPERATING_ERROR;
        }
    }
    let defaults = DbOptions::default();
    let db_options = DbOptions {
        create_if_missing: true,
        page_bytes: options.page_bytes.unwrap_or(defaults.page_bytes),
        inline_value_bytes_max: options
            .inline_value_bytes_max
            .unwrap_or(defaults.inline_value_bytes_max),
        // Nothing to sweep or collect in a new database.
        sweep_interval_ms: 0,
        vlog_gc_interval_ms: 0,
        ..defaults
    };
    let db = match Db::open(env.clone(), dir, db_options).await {
        Ok(db) => db,
        Err(error @ (DbError::Options(_) | DbError::Store(StoreError::Options(_)))) => {
            eprintln!("jubectl init: {error}");
            return exit::USAGE;
        }
        Err(error) => {
            eprintln!("jubectl init: {error}");
            return exit::OPERATING_ERROR;
        }
    };
    let created = db.stats().recovery.created;
    if let Err(error) = db.close().await {
        eprintln!("jubectl init: closing the new database failed: {error}");
        return exit::OPERATING_ERROR;
    }
    if !created {
        // Another process made one between the check and the open; open
        // and close changed nothing in it.
        eprintln!(
            "jubectl init: {} already holds a database (created meanwhile); left as it was",
            dir.display()
        );
        return exit::OPERATING_ERROR;
    }
    let manifest = match read_meta_dir(&env, dir).await.map(|meta| meta.manifest) {
        Ok(Ok(manifest)) => manifest,
        Ok(Err(detail)) => {
            eprintln!("jubectl init: the new MANIFEST does not verify: {detail}");
            return exit::OPERATING_ERROR;
        }
        Err(error) => {
            eprintln!("jubectl init: {error}");
            return exit::OPERATING_ERROR;
        }
    };
    let files: Vec<String> = match env.list(dir).await {
        // The lock file is not part of the database.
        Ok(names) => names.into_iter().filter(|name| name != "LOCK").collect(),
        Err(error) => {
            eprintln!("jubectl init: cannot list {}: {error}", dir.display());
            return exit::OPERATING_ERROR;
        }
    };
    let uuid = text::uuid(&manifest.database_uuid);
    if as_json {
        println!(
            "{}",
            json!({
                "dir": dir.display().to_string(),
                "created": true,
                "database_uuid": uuid,
                "format_major": manifest.format_major,
                "format_minor": manifest.format_minor,
                "page_bytes": manifest.page_bytes,
                "inline_value_bytes_max": manifest.inline_value_bytes_max,
                "created_at_unix_ms": manifest.created_at_unix_ms,
                "files": files,
            })
        );
    } else {
        println!("created a database in {}", dir.display());
        println!("  database uuid: {uuid}");
        println!(
            "  format: {}.{}",
            manifest.format_major, manifest.format_minor
        );
        println!("  page size: {} bytes", manifest.page_bytes);
        println!(
            "  inline value max: {} bytes",
            manifest.inline_value_bytes_max
        );
        println!(
            "  created: {} ({})",
            manifest.created_at_unix_ms,
            text::utc(manifest.created_at_unix_ms)
        );
        println!("  files: {}", files.join(", "));
    }
    exit::OK
}
