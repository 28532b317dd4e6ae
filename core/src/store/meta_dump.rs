//! [`read_meta_dir`]: a database directory's MANIFEST and both superblocks,
//! decoded for display (`jubectl dump-manifest`).
//!
//! Invariants kept here:
//! - **Read-only.** Nothing is written, created, renamed or locked, so a
//!   directory a server holds can be inspected too (a superblock being
//!   written at that moment may then show as invalid).
//! - **The superblock called active is the one open would start from:**
//!   the choice is [`open::newest_valid`](super::open), shared with open.
//! - **Damage is shown, not thrown.** A MANIFEST or superblock that does
//!   not verify is reported with the reason, like open's verifier gives
//!   it; only a missing directory or MANIFEST, or an I/O failure, is an
//!   error.

use std::io::ErrorKind;
use std::path::Path;

use crate::env::Env;

use super::manifest::Manifest;
use super::open::{check_manifest, newest_valid, read_meta_file};
use super::superblock::{SUPERBLOCK_FILES, Superblock};
use super::{MANIFEST_FILE, StoreError};

/// One superblock file, decoded or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperblockDump {
    /// The file: `SUPERBLOCK_A` or `SUPERBLOCK_B`.
    pub file: &'static str,
    /// Its contents, or why it holds no valid superblock.
    pub superblock: Result<Superblock, String>,
    /// Whether open would start from this one.
    pub active: bool,
}

/// What [`read_meta_dir`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaDump {
    /// The MANIFEST, or why it does not verify.
    pub manifest: Result<Manifest, String>,
    /// Why this build would refuse a MANIFEST that does verify (another
    /// format major, an unusable page size), if it would.
    pub manifest_refused: Option<String>,
    /// `SUPERBLOCK_A`, then `SUPERBLOCK_B`.
    pub superblocks: [SuperblockDump; 2],
}

impl MetaDump {
    /// The superblock open would start from, if either is valid.
    pub fn active(&self) -> Option<&SuperblockDump> {
        self.superblocks.iter().find(|dump| dump.active)
    }

    /// Whether open would refuse the directory for what these files hold:
    /// a MANIFEST that does not verify or that this build refuses, or no
    /// valid superblock.
    pub fn is_damaged(&self) -> bool {
        self.manifest.is_err() || self.manifest_refused.is_some() || self.active().is_none()
    }
}

/// Reads and decodes the MANIFEST and both superblocks of the database in
/// `dir`, changing nothing (each file that fails to verify is re-read, as
/// open does). A missing superblock file is reported as invalid; a missing
/// directory is an I/O error and a directory without a MANIFEST
/// [`StoreError::NotFound`].
pub async fn read_meta_dir<E: Env>(env: &E, dir: &Path) -> Result<MetaDump, StoreError> {
    let names = env
        .list(dir)
        .await
        .map_err(|e| StoreError::io("list directory", dir, e))?;
    if !names.iter().any(|name| name == MANIFEST_FILE) {
        return Err(StoreError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let (_, manifest) = read_meta_file(env, dir, MANIFEST_FILE, Manifest::decode).await?;
    let manifest_refused = manifest
        .as_ref()
        .ok()
        .and_then(|manifest| check_manifest(manifest).err())
        .map(|error| error.to_string());
    // Displayed A first; SUPERBLOCK_FILES is in generation-parity order.
    let files = [SUPERBLOCK_FILES[1], SUPERBLOCK_FILES[0]];
    let missing = || Err("the file is missing".to_owned());
    let mut outcomes: [Result<Superblock, String>; 2] = [missing(), missing()];
    for (outcome, file) in outcomes.iter_mut().zip(files) {
        if !names.iter().any(|name| name == file) {
            continue;
        }
        *outcome = match read_meta_file(env, dir, file, Superblock::decode).await {
            Ok((_, decoded)) => decoded,
            // Removed since the listing: as missing as before it.
            Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => missing(),
            Err(error) => return Err(error),
        };
    }
    let active = newest_valid(&[&outcomes[0], &outcomes[1]]);
    let [a, b] = outcomes;
    let superblocks = [
        SuperblockDump {
            file: files[0],
            superblock: a,
            active: active == Some(0),
        },
        SuperblockDump {
            file: files[1],
            superblock: b,
            active: active == Some(1),
        },
    ];
    Ok(MetaDump {
        manifest,
        manifest_refused,
        superblocks,
    })
}
