//! Creating and opening a store.
//!
//! Creation writes `data.pages` (page 1: an empty root leaf), both
//! superblocks and finally the MANIFEST, each through a temporary file that
//! is synced and renamed, then syncs the directory. The MANIFEST existing is
//! what says creation finished: a directory without one holding only files
//! of an unfinished creation is created again from scratch.
//!
//! Opening validates the MANIFEST (a major version mismatch refuses),
//! picks the valid superblock with the highest generation, checks that
//! `data.pages` is as long as it says, and reads the free list.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use crate::btree::cache::PageCache;
use crate::btree::inline_value_bytes_limit;
use crate::btree::node::Node;
use crate::btree::tree::Tree;
use crate::env::{Env, File, OpenMode};
use crate::mutex::lock;
use crate::page::allocator::Allocator;
use crate::page::{PAGE_NONE, PageId, page_bytes_valid};

use super::manifest::{ASSERT_HASH_ALGORITHM, FORMAT_MAJOR, FORMAT_MINOR, Manifest};
use super::superblock::{SUPERBLOCK_FILES, Superblock};
use super::{
    MANIFEST_FILE, PAGES_FILE, READ_RETRIES_MAX, State, Store, StoreError, StoreOptions,
    StoreStats, meta_file, page_read,
};

/// What opening found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// A new database was created.
    pub created: bool,
    /// The superblock opened from, as found (the open made it durable again
    /// as the next generation: see docs/design.md 5.4).
    pub superblock: Superblock,
    /// Superblock files that were invalid (torn by a crash mid-checkpoint,
    /// or damaged), by name.
    pub superblocks_invalid: Vec<&'static str>,
    /// Files of an unfinished creation that were removed.
    pub leftovers_removed: Vec<String>,
}

/// Refuses a directory without a MANIFEST unless the database may be
/// created there: asked to, and holding nothing but what an unfinished
/// creation leaves.
fn refuse_unless_database(
    names: &[String],
    options: &StoreOptions,
    dir: &Path,
) -> Result<(), StoreError> {
    if names.iter().any(|name| name == MANIFEST_FILE) {
        return Ok(());
    }
    if !options.create_if_missing {
        return Err(StoreError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    match names.iter().find(|name| !is_creation_file(name)) {
        Some(other) => Err(StoreError::NotADatabase {
            path: dir.to_path_buf(),
            file: other.clone(),
        }),
        None => Ok(()),
    }
}

/// Files creation writes; only these may be present without a MANIFEST.
fn is_creation_file(name: &str) -> bool {
    name == PAGES_FILE
        || SUPERBLOCK_FILES.contains(&name)
        || name.ends_with(".tmp")
        || name == "LOCK"
}

/// A database id from the clocks and the path: unique enough to tell
/// databases apart, and deterministic in the simulator (the core has no
/// ambient randomness).
fn database_uuid<E: Env>(env: &E, dir: &Path) -> [u8; 16] {
    let mut state = env.now_wall_ms() ^ env.now_mono().as_nanos().rotate_left(32);
    for byte in dir.to_string_lossy().bytes() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    let mut mix = || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut uuid = [0; 16];
    uuid[..8].copy_from_slice(&mix().to_le_bytes());
    uuid[8..].copy_from_slice(&mix().to_le_bytes());
    uuid
}

async fn write_new_file<E: Env>(
    env: &E,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let file = env
        .open(&tmp, OpenMode::CreateNew)
        .await
        .map_err(|e| StoreError::io("create", &tmp, e))?;
    file.write_at(0, bytes)
        .await
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    file.sync_data()
        .await
        .map_err(|e| StoreError::io("sync", &tmp, e))?;
    drop(file);
    env.rename(&tmp, &path)
        .await
        .map_err(|e| StoreError::io("rename", &tmp, e))
}

async fn create<E: Env>(env: &E, dir: &Path, options: &StoreOptions) -> Result<(), StoreError> {
    let page_bytes = options.page_bytes;
    let mut pages = vec![0; 2 * page_bytes as usize];
    let root_crc = Node::empty_leaf().encode(1, &mut pages[page_bytes as usize..]);
    write_new_file(env, dir, PAGES_FILE, &pages).await?;
    let first = Superblock {
        generation: 1,
        root_page: 1,
        root_crc,
        tree_height: 1,
        free_list_page: PAGE_NONE,
        free_list_crc: 0,
        free_pages_count: 0,
        checkpoint_lsn: 0,
        calibration_mono_nanos: env.now_mono().as_nanos(),
        calibration_wall_unix_ms: env.now_wall_ms(),
        page_count: 2,
        keys_count: 0,
    };
    // Generation 0 describes the same empty tree, so both files are valid
    // from the start and the first checkpoint (generation 2) replaces it.
    let zeroth = Superblock {
        generation: 0,
        ..first
    };
    for superblock in [zeroth, first] {
        write_new_file(
            env,
            dir,
            Superblock::file_name(superblock.generation),
            &superblock.encode(),
        )
        .await?;
    }
    // The MANIFEST's name must not become durable before the others'.
    env.sync_dir(dir)
        .await
        .map_err(|e| StoreError::io("sync directory", dir, e))?;
    let manifest = Manifest {
        format_major: FORMAT_MAJOR,
        format_minor: FORMAT_MINOR,
        wire_schema_hash: jubilant_schemas::WIRE_SCHEMA_HASH,
        wal_schema_hash: jubilant_schemas::WAL_SCHEMA_HASH,
        disk_schema_hash: jubilant_schemas::DISK_SCHEMA_HASH,
        database_uuid: database_uuid(env, dir),
        created_at_unix_ms: env.now_wall_ms(),
        page_bytes,
        inline_value_bytes_max: options.inline_value_bytes_max,
        assert_hash_algorithm: ASSERT_HASH_ALGORITHM.into(),
        generation: 1,
    };
    write_new_file(env, dir, MANIFEST_FILE, &manifest.encode()).await?;
    env.sync_dir(dir)
        .await
        .map_err(|e| StoreError::io("sync directory", dir, e))
}

fn check_options(options: &StoreOptions) -> Result<(), StoreError> {
    if !page_bytes_valid(options.page_bytes) {
        return Err(StoreError::Options(format!(
            "page size {} is not a power of two between {} and {}",
            options.page_bytes,
            crate::page::PAGE_BYTES_MIN,
            crate::page::PAGE_BYTES_MAX
        )));
    }
    let limit = inline_value_bytes_limit(options.page_bytes);
    if options.inline_value_bytes_max as usize > limit {
        return Err(StoreError::Options(format!(
            "inline value maximum {} exceeds {limit}, the most a {}-byte page can hold",
            options.inline_value_bytes_max, options.page_bytes
        )));
    }
    Ok(())
}

/// Reads and verifies the MANIFEST (re-reading a copy that fails to
/// verify, since a bad read may be transient) and refuses a format this
/// build cannot read.
pub(crate) async fn read_manifest<E: Env>(env: &E, dir: &Path) -> Result<Manifest, StoreError> {
    let (_, manifest) = read_meta_file(env, dir, MANIFEST_FILE, Manifest::decode).await?;
    let manifest = manifest.map_err(|detail| StoreError::corrupt("MANIFEST", detail))?;
    check_manifest(&manifest)?;
    Ok(manifest)
}

/// Refuses a decoded MANIFEST this build cannot open: another format
/// major, or a page size or inline limit no page of this build can hold.
pub(super) fn check_manifest(manifest: &Manifest) -> Result<(), StoreError> {
    if manifest.format_major != FORMAT_MAJOR {
        return Err(StoreError::VersionMismatch {
            found: manifest.format_major,
            supported: FORMAT_MAJOR,
        });
    }
    if !page_bytes_valid(manifest.page_bytes)
        || manifest.inline_value_bytes_max as usize > inline_value_bytes_limit(manifest.page_bytes)
    {
        return Err(StoreError::corrupt(
            "MANIFEST",
            format!("page size {} is not usable", manifest.page_bytes),
        ));
    }
    Ok(())
}

/// Of the decoded superblocks, the index of the valid one with the highest
/// generation (the first on a tie): the one open starts from. `None` when
/// none is valid.
pub(super) fn newest_valid(outcomes: &[&Result<Superblock, String>]) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (index, outcome) in outcomes.iter().enumerate() {
        if let Ok(superblock) = outcome
            && best.is_none_or(|(generation, _)| superblock.generation > generation)
        {
            best = Some((superblock.generation, index));
        }
    }
    best.map(|(_, index)| index)
}

/// Reads both superblocks and picks the valid one with the highest
/// generation. Returns the files (in [`SUPERBLOCK_FILES`] order), the
/// choice, and the names of the files that held no valid superblock.
pub(crate) async fn choose_superblock<E: Env>(
    env: &E,
    dir: &Path,
) -> Result<([E::File; 2], Superblock, Vec<&'static str>), StoreError> {
    let (file_b, b) = read_meta_file(env, dir, SUPERBLOCK_FILES[0], Superblock::decode).await?;
    let (file_a, a) = read_meta_file(env, dir, SUPERBLOCK_FILES[1], Superblock::decode).await?;
    let superblocks_invalid = [(SUPERBLOCK_FILES[0], &b), (SUPERBLOCK_FILES[1], &a)]
        .into_iter()
        .filter(|(_, outcome)| outcome.is_err())
        .map(|(name, _)| name)
        .collect();
    let superblock = match newest_valid(&[&b, &a]) {
        Some(0) => b.ok(),
        Some(_) => a.ok(),
        None => None,
    };
    let Some(superblock) = superblock else {
        return Err(StoreError::corrupt(
            "superblocks",
            "neither SUPERBLOCK_A nor SUPERBLOCK_B is valid",
        ));
    };
    Ok(([file_b, file_a], superblock, superblocks_invalid))
}

/// Opens a MANIFEST or superblock file and decodes it, re-reading a copy
/// that fails to verify (a bad read may be transient). Returns the file and
/// the decoded contents, or why the file holds none.
pub(super) async fn read_meta_file<E: Env, T>(
    env: &E,
    dir: &Path,
    name: &str,
    decode: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<(E::File, Result<T, String>), StoreError> {
    let path = dir.join(name);
    let file = env
        .open(&path, OpenMode::Existing)
        .await
        .map_err(|e| StoreError::io("open", &path, e))?;
    let mut outcome = Err(String::new());
    for _ in 0..=READ_RETRIES_MAX {
        outcome = meta_file::read_all(&file)
            .await
            .map_err(|e| StoreError::io("read", &path, e))?
            .and_then(|bytes| decode(&bytes));
        if outcome.is_ok() {
            break;
        }
    }
    Ok((file, outcome))
}

/// Follows the free-list chain of `superblock`, verifying every link.
pub(crate) async fn read_free_list<F: File>(
    pages: &F,
    path: &Path,
    page_bytes: u32,
    superblock: &Superblock,
) -> Result<(Vec<PageId>, BTreeSet<PageId>), StoreError> {
    let mut chain = Vec::new();
    let mut free = BTreeSet::new();
    let (mut next, mut crc) = (superblock.free_list_page, superblock.free_list_crc);
    while next != PAGE_NONE {
        if chain.len() as u64 >= superblock.page_count || next >= superblock.page_count {
            return Err(StoreError::corrupt(
                PAGES_FILE,
                format!("free-list chain reaches page {next}"),
            ));
        }
        let page = page_read::retrying(|| {
            page_read::read_free_list_page(pages, path, page_bytes, next, crc)
        })
        .await?;
        chain.push(next);
        for id in page.ids {
            if id == PAGE_NONE || id >= superblock.page_count || !free.insert(id) {
                return Err(StoreError::corrupt(
                    PAGES_FILE,
                    format!("free list names page {id} twice or outside the file"),
                ));
            }
        }
        (next, crc) = (page.next, page.next_crc);
    }
    if free.len() as u64 != superblock.free_pages_count {
        return Err(StoreError::corrupt(
            PAGES_FILE,
            format!(
                "free list holds {} pages, the superblock says {}",
                free.len(),
                superblock.free_pages_count
            ),
        ));
    }
    Ok((chain, free))
}

impl<E: Env> Store<E> {
    /// Opens the database in `dir`, creating it first if it is missing and
    /// `options.create_if_missing` is set, and makes the superblock it
    /// opened from durable ([`Store::secure_superblock`]). Takes the
    /// directory's lock: a second open of the same directory fails.
    pub async fn open(
        env: E,
        dir: &Path,
        options: StoreOptions,
    ) -> Result<(Store<E>, OpenReport), StoreError> {
        let (mut store, report) = Self::open_deferred(env, dir, options).await?;
        store.secure_superblock().await?;
        Ok((store, report))
    }

    /// What the open a database runs must do first, before anything is
    /// built on it: make the superblock it opened from durable. What was
    /// read may sit only in the page cache (a killed process leaves its
    /// unsynced superblock write there, and a failed fsync may leave data
    /// cached that the kernel will never write). It is written as
    /// generation g + 1 (the same tree) into a new file, synced, renamed
    /// over the other slot, and the directory synced. Not in place: a torn
    /// write may garble the whole block it touches, and the superblock
    /// opened from must stay whole until its copy is durable. (Its pages
    /// were synced before it was first written.) May run after changes
    /// were applied in memory: it writes the durable state, not the tree's.
    pub async fn secure_superblock(&mut self) -> Result<(), StoreError> {
        let superblock = {
            let state = lock(&self.state);
            debug_assert_eq!(
                state.tree.open_generation,
                state.durable.generation + 1,
                "secured before any checkpoint"
            );
            Superblock {
                generation: state.durable.generation + 1,
                ..state.durable
            }
        };
        let name = Superblock::file_name(superblock.generation);
        write_new_file(&self.env, &self.dir, name, &superblock.encode()).await?;
        self.env
            .sync_dir(&self.dir)
            .await
            .map_err(|e| StoreError::io("sync directory", &self.dir, e))?;
        let path = self.dir.join(name);
        self.superblock_files[(superblock.generation % 2) as usize] = self
            .env
            .open(&path, OpenMode::Existing)
            .await
            .map_err(|e| StoreError::io("open", &path, e))?;
        // The store's own view does not move: the copy holds the same tree
        // as the superblock it copies, and the next checkpoint, also
        // generation g + 1, overwrites the copy in place (if that tears,
        // generation g in the other slot is the same state). So pages the
        // tree dirtied since the open keep their generation.
        Ok(())
    }

    /// [`Store::open`] without [`Store::secure_superblock`]: writes nothing
    /// to an existing database (beyond removing the `.tmp` files of an
    /// interrupted rename), so a caller with checks of its own can refuse
    /// with every file as it found it, then secure the superblock.
    pub async fn open_deferred(
        env: E,
        dir: &Path,
        options: StoreOptions,
    ) -> Result<(Store<E>, OpenReport), StoreError> {
        check_options(&options)?;
        if options.create_if_missing {
            let created = if crate::sabotage::sabotaged!(options, SkipParentDirSync) {
                env.create_dir_all(dir).await
            } else {
                crate::env::create_dir_durably(&env, dir).await
            };
            created.map_err(|e| StoreError::io("create directory", dir, e))?;
        }
        // The refusals that need no lock come first, so refusing a
        // directory that is not a database leaves no LOCK file in it. They
        // are made again under the lock.
        match env.list(dir).await {
            Ok(names) => refuse_unless_database(&names, &options, dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("list directory", dir, e)),
        }
        let lock = env.lock_dir(dir).await.map_err(|e| {
            if !options.create_if_missing && e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound {
                    path: dir.to_path_buf(),
                }
            } else {
                StoreError::io("lock directory", dir, e)
            }
        })?;
        let names = env
            .list(dir)
            .await
            .map_err(|e| StoreError::io("list directory", dir, e))?;
        let mut created = false;
        let mut leftovers_removed = Vec::new();
        refuse_unless_database(&names, &options, dir)?;
        if !names.iter().any(|name| name == MANIFEST_FILE) {
            for name in names.iter().filter(|name| *name != "LOCK") {
                env.remove(&dir.join(name))
                    .await
                    .map_err(|e| StoreError::io("remove", &dir.join(name), e))?;
                leftovers_removed.push(name.clone());
            }
            create(&env, dir, &options).await?;
            created = true;
        } else {
            // A crash during a rename may leave temporary files behind.
            for name in names
                .iter()
                .filter(|name| name.ends_with(".tmp") && is_creation_file(name))
            {
                env.remove(&dir.join(name))
                    .await
                    .map_err(|e| StoreError::io("remove", &dir.join(name), e))?;
                leftovers_removed.push(name.clone());
            }
            // The names may be in the page cache only: a creation whose last
            // directory sync failed, then a restart that kept the cache.
            // Make them durable before anything is built on them.
            env.sync_dir(dir)
                .await
                .map_err(|e| StoreError::io("sync directory", dir, e))?;
        }

        let manifest = read_manifest(&env, dir).await?;
        let page_bytes = manifest.page_bytes;
        let cache_pages_min = StoreOptions::CACHE_PAGES_MIN * u64::from(page_bytes);
        if options.cache_bytes < cache_pages_min {
            return Err(StoreError::Options(format!(
                "cache_bytes {} is below {cache_pages_min} ({} pages)",
                options.cache_bytes,
                StoreOptions::CACHE_PAGES_MIN
            )));
        }

        let ([file_b, file_a], superblock, superblocks_invalid) =
            choose_superblock(&env, dir).await?;

        let pages_path = dir.join(PAGES_FILE);
        let pages = env
            .open(&pages_path, OpenMode::Existing)
            .await
            .map_err(|e| StoreError::io("open", &pages_path, e))?;
        let pages_len = pages
            .len()
            .await
            .map_err(|e| StoreError::io("length", &pages_path, e))?;
        let needed = superblock.page_count * u64::from(page_bytes);
        if pages_len < needed {
            return Err(StoreError::corrupt(
                PAGES_FILE,
                format!(
                    "{pages_len} bytes, but superblock {} needs {needed}",
                    superblock.generation
                ),
            ));
        }
        let (free_list_pages, free) =
            read_free_list(&pages, &pages_path, page_bytes, &superblock).await?;

        let tree = Tree {
            cache: PageCache::new(page_bytes, options.cache_bytes),
            allocator: {
                let mut allocator = Allocator::new(superblock.page_count, free);
                allocator.generation_durable(superblock.generation);
                allocator
            },
            root: superblock.root_page,
            root_crc: superblock.root_crc,
            height: superblock.tree_height,
            keys_count: superblock.keys_count,
            open_generation: superblock.generation + 1,
            page_bytes,
            #[cfg(feature = "sabotage")]
            sabotage: options.sabotage,
        };
        let state = State {
            tree,
            failed: None,
            unwritten: None,
            lsn_applied: superblock.checkpoint_lsn,
            durable: superblock,
            free_list_pages,
            stats: StoreStats::default(),
            truncate_tail_pages_min: (options.truncate_tail_bytes_min
                / u64::from(manifest.page_bytes))
            .max(1),
            compacting: false,
            vlog_usage: None,
            pinned: false,
        };
        let store = Store {
            dir: dir.to_path_buf(),
            env,
            manifest,
            pages,
            superblock_files: [file_b, file_a],
            state: Mutex::new(state),
            checkpointer: futures::lock::Mutex::new(()),
            batch_turn: futures::lock::Mutex::new(()),
            has_failed: std::sync::atomic::AtomicBool::new(false),
            snapshots: super::snapshots::Snapshots::new(
                match options.snapshot_bytes_max {
                    0 => options.cache_bytes / 4,
                    bytes => bytes,
                },
                crate::sabotage::sabotaged!(options, SnapshotImageAfterApply),
            ),
            _lock: lock,
        };
        Ok((
            store,
            OpenReport {
                created,
                superblock,
                superblocks_invalid,
                leftovers_removed,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(generation: u64) -> Result<Superblock, String> {
        Ok(Superblock {
            generation,
            root_page: 1,
            root_crc: 0,
            tree_height: 1,
            free_list_page: PAGE_NONE,
            free_list_crc: 0,
            free_pages_count: 0,
            checkpoint_lsn: 0,
            calibration_mono_nanos: 0,
            calibration_wall_unix_ms: 0,
            page_count: 2,
            keys_count: 0,
        })
    }

    #[test]
    fn the_newest_valid_superblock_is_chosen_and_an_invalid_one_never() {
        let torn = Err("CRC mismatch".to_owned());
        assert_eq!(newest_valid(&[&superblock(4), &superblock(5)]), Some(1));
        assert_eq!(newest_valid(&[&superblock(6), &superblock(5)]), Some(0));
        assert_eq!(newest_valid(&[&superblock(6), &torn]), Some(0));
        assert_eq!(newest_valid(&[&torn, &superblock(1)]), Some(1));
        assert_eq!(newest_valid(&[&torn, &torn]), None);
        // Two of one generation cannot happen (parity picks the file); the
        // first wins, as it always did.
        assert_eq!(newest_valid(&[&superblock(3), &superblock(3)]), Some(0));
    }
}
