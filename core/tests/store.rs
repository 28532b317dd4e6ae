//! The tree store over the simulated disk: what survives a close, a power
//! loss and a power loss mid-checkpoint; how damage and bad input are
//! refused; and that the cache and the page file stay bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jubilant_core::env::{File, Fs, OpenMode};
use jubilant_core::page::PageError;
use jubilant_core::record::{Mutation, Record, StoredValue, ValueType};
use jubilant_core::store::manifest::FORMAT_MAJOR;
use jubilant_core::store::{
    CheckpointReport, FindingKind, MANIFEST_FILE, MetaDump, OpenReport, PAGES_FILE,
    READ_RETRIES_MAX, RangeQuery, Store, StoreError, StoreOptions, ValidateReport, read_meta_dir,
    validate_dir,
};
use jubilant_io_sim::{Fault, FaultConfig, NodeId, SimEnv, TAIL_LINES, World};

const N: NodeId = NodeId(0);
/// The default page size, as a byte offset.
const PAGE_BYTES: u64 = 4096;
/// Long enough that a leaf holds a few dozen entries, so a few hundred keys
/// make a tree of several leaves under an internal root.
const VALUE_BYTES: usize = 64;

type Db = Arc<Store<SimEnv>>;
type Contents = BTreeMap<Vec<u8>, Record>;

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

fn quiet_world(seed: u64) -> World {
    World::new(seed, FaultConfig::none())
}

fn open_with(world: &World, options: StoreOptions) -> Result<(Db, OpenReport), StoreError> {
    let env = world.env(N);
    world.block_on(N, async move {
        let (store, report) = Store::open(env, &dir(), options).await?;
        Ok((Arc::new(store), report))
    })
}

/// Opens (creating if needed) with default options.
fn open(world: &World) -> (Db, OpenReport) {
    open_with(world, StoreOptions::default()).expect("open")
}

/// Runs `f` on the store as a task of the world, to completion.
fn on<T, Fut>(world: &World, db: &Db, f: impl FnOnce(Db) -> Fut) -> T
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    world.block_on(N, f(Arc::clone(db)))
}

fn checkpoint(world: &World, db: &Db) -> CheckpointReport {
    on(world, db, |db| async move { db.checkpoint().await }).expect("checkpoint")
}

fn get(world: &World, db: &Db, key: &[u8]) -> Result<Option<Record>, StoreError> {
    let key = key.to_vec();
    on(world, db, |db| async move { db.get(&key).await })
}

fn apply(world: &World, db: &Db, mutations: Vec<Mutation>, lsn: u64) -> Result<(), StoreError> {
    on(
        world,
        db,
        |db| async move { db.apply(&mutations, lsn).await },
    )
}

fn validate(world: &World, db: &Db) -> ValidateReport {
    on(world, db, |db| async move { db.validate(|_, _| {}).await }).expect("validate")
}

/// Everything in the store, read with one range scan.
fn contents(world: &World, db: &Db) -> Contents {
    let entries = on(world, db, |db| async move {
        db.range(&RangeQuery::all(usize::MAX)).await
    })
    .expect("range");
    assert!(
        entries.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "a range scan returns keys in ascending order"
    );
    entries.into_iter().collect()
}

/// Compares without printing thousands of records when they differ.
fn assert_contents(world: &World, db: &Db, expected: &Contents) {
    let found = contents(world, db);
    if found != *expected {
        let first = found
            .iter()
            .zip(expected)
            .find(|(found, expected)| found != expected)
            .map(|((key, _), _)| String::from_utf8_lossy(key).into_owned());
        panic!(
            "the store holds {} keys, the model {}; first difference at {first:?}",
            found.len(),
            expected.len()
        );
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Key `i`'s record as of `version`; types and expiries vary with `i` so
/// every field of a record is exercised.
fn record(i: u64, version: u64) -> Record {
    let mut value = format!("{i}@{version}:").into_bytes();
    value.resize(VALUE_BYTES, b'.');
    Record {
        value_type: if i.is_multiple_of(3) {
            ValueType::String
        } else {
            ValueType::Bytes
        },
        value: StoredValue::Inline(value),
        expires_at_ms: i.is_multiple_of(4).then_some(1_000 + i),
        revision: version,
    }
}

fn put(i: u64, version: u64) -> Mutation {
    Mutation::Put {
        key: key(i),
        record: record(i, version),
    }
}

fn delete(i: u64) -> Mutation {
    Mutation::Delete { key: key(i) }
}

/// What the store must hold, and the last LSN applied.
#[derive(Clone, Default)]
struct Model {
    contents: Contents,
    lsn: u64,
}

impl Model {
    /// Applies `mutations` at the next LSN, to the store and to the model.
    fn apply(&mut self, world: &World, db: &Db, mutations: Vec<Mutation>) {
        self.lsn += 1;
        for mutation in &mutations {
            match mutation {
                Mutation::Put { key, record } => {
                    self.contents.insert(key.clone(), record.clone());
                }
                Mutation::Delete { key } => {
                    self.contents.remove(key);
                }
            }
        }
        apply(world, db, mutations, self.lsn).expect("apply");
    }
}

/// A whole file of the database directory, read past the store.
fn read_file(world: &World, name: &str) -> Vec<u8> {
    let (env, path) = (world.env(N), dir().join(name));
    world.block_on(N, async move {
        let file = env.open(&path, OpenMode::Existing).await.expect("open");
        let len = file.len().await.expect("len");
        file.read_at(0, len as usize).await.expect("read")
    })
}

/// Overwrites bytes of a file at `offset` and makes them durable, past the
/// store (as a failing disk or a stray program would).
fn write_file(world: &World, name: &str, offset: u64, bytes: Vec<u8>) {
    let (env, path) = (world.env(N), dir().join(name));
    world.block_on(N, async move {
        let file = env.open(&path, OpenMode::Existing).await.expect("open");
        file.write_at(offset, &bytes).await.expect("write");
        file.sync_data().await.expect("sync");
    });
}

fn list_dir(world: &World) -> Vec<String> {
    let env = world.env(N);
    world.block_on(N, async move { env.list(&dir()).await.expect("list") })
}

#[test]
fn a_checkpointed_store_reopens_with_the_same_contents() {
    let world = quiet_world(1);
    let (db, report) = open(&world);
    assert!(report.created);
    assert_eq!(report.superblock.generation, 1);
    let mut model = Model::default();
    model.apply(&world, &db, (0..300).map(|i| put(i, 1)).collect());
    // Deletes and overwrites in one batch, in order: a key deleted and then
    // put again ends up present.
    let changes = (0..300)
        .step_by(3)
        .map(delete)
        .chain((0..300).step_by(5).map(|i| put(i, 2)))
        .collect();
    model.apply(&world, &db, changes);
    let written = checkpoint(&world, &db);
    assert!(written.wrote);
    assert_eq!(written.checkpoint_lsn, model.lsn);
    assert!(written.tree_pages > 1, "300 keys fill more than one leaf");
    let idle = checkpoint(&world, &db);
    assert!(!idle.wrote, "nothing changed, so no superblock is written");
    assert_eq!(idle.generation, written.generation);
    drop(db);

    let (db, report) = open(&world);
    assert!(!report.created);
    assert!(report.superblocks_invalid.is_empty());
    assert_eq!(report.superblock.generation, written.generation);
    assert_eq!(report.superblock.checkpoint_lsn, written.checkpoint_lsn);
    assert_eq!(report.superblock.keys_count, model.contents.len() as u64);
    assert_contents(&world, &db, &model.contents);
    for i in 0..300 {
        let found = get(&world, &db, &key(i)).expect("get");
        assert_eq!(found.as_ref(), model.contents.get(&key(i)), "key {i}");
    }
    let stats = db.stats();
    assert_eq!(stats.applied_lsn, written.checkpoint_lsn);
    assert_eq!(stats.keys, model.contents.len() as u64);
}

/// Space is given back (design.md 5.9): once most keys are deleted and the
/// pages they used are free at the end of the file, a checkpoint after
/// the one that freed them cuts `data.pages`, and the store reopens with
/// the same contents and validates.
#[test]
fn a_free_tail_of_data_pages_is_cut_once_no_superblock_counts_it() {
    let world = quiet_world(5);
    let options = StoreOptions {
        truncate_tail_bytes_min: 4 * PAGE_BYTES,
        ..StoreOptions::default()
    };
    let (db, _) = open_with(&world, options.clone()).expect("open");
    let mut model = Model::default();
    model.apply(&world, &db, (0..2000).map(|i| put(i, 1)).collect());
    checkpoint(&world, &db);
    let full = read_file(&world, PAGES_FILE).len() as u64;
    model.apply(&world, &db, (50..2000).map(delete).collect());
    // The delete's copies of the surviving pages went to the end of the
    // file (nothing was free then); each rewrite of the survivors moves
    // them to the lowest free ids (copy-on-write, first fit), and once no
    // superblock counts the tail any more a checkpoint cuts it.
    let mut truncated = checkpoint(&world, &db).pages_truncated;
    for version in 2..6 {
        model.apply(&world, &db, (0..50).map(|i| put(i, version)).collect());
        truncated += checkpoint(&world, &db).pages_truncated;
    }
    assert_eq!(truncated, db.stats().pages_truncated);
    let now = read_file(&world, PAGES_FILE).len() as u64;
    assert!(
        now * 4 < full,
        "data.pages went from {full} to only {now} bytes after 97% of its keys were deleted"
    );
    assert_eq!(now, db.stats().page_count * PAGE_BYTES);
    assert!(validate(&world, &db).findings.is_empty());
    drop(db);
    let (db, _) = open_with(&world, options).expect("reopen");
    assert_contents(&world, &db, &model.contents);
    assert!(validate(&world, &db).findings.is_empty());
    // The file grows again from the cut.
    model.apply(&world, &db, (5000..5500).map(|i| put(i, 1)).collect());
    checkpoint(&world, &db);
    assert_contents(&world, &db, &model.contents);
}

/// Relocation (design 5.9): a commit that rewrites every leaf puts the
/// copies at the end of the file, above the pages it frees; with no
/// further change, checkpoints alone move the tail down and cut it, and
/// the store reopens with the same contents and validates.
#[test]
fn checkpoints_move_the_live_tail_down_and_cut_it() {
    let world = quiet_world(6);
    let options = StoreOptions {
        truncate_tail_bytes_min: 4 * PAGE_BYTES,
        ..StoreOptions::default()
    };
    let (db, _) = open_with(&world, options.clone()).expect("open");
    let mut model = Model::default();
    model.apply(&world, &db, (0..3000).map(|i| put(i, 1)).collect());
    checkpoint(&world, &db);
    let loaded = db.stats().page_count;
    // Every other key goes: every leaf is copied to the end of the file.
    model.apply(&world, &db, (0..3000).step_by(2).map(delete).collect());
    checkpoint(&world, &db);
    let grown = db.stats().page_count;
    assert!(
        grown > loaded * 3 / 2,
        "{loaded} pages grew only to {grown}"
    );
    let mut relocated = 0;
    for _ in 0..6 {
        relocated += checkpoint(&world, &db).pages_relocated;
    }
    let stats = db.stats();
    assert_eq!(relocated, stats.pages_relocated);
    assert!(relocated > 0);
    assert!(
        stats.page_count <= loaded,
        "{grown} pages came down only to {} (loaded: {loaded})",
        stats.page_count
    );
    assert_eq!(
        read_file(&world, PAGES_FILE).len() as u64,
        stats.page_count * PAGE_BYTES
    );
    assert_contents(&world, &db, &model.contents);
    assert!(validate(&world, &db).findings.is_empty());
    drop(db);
    let (db, _) = open_with(&world, options).expect("reopen");
    assert_contents(&world, &db, &model.contents);
    assert!(validate(&world, &db).findings.is_empty());
}

#[test]
fn changes_after_the_last_checkpoint_are_gone_after_a_power_loss() {
    let world = quiet_world(2);
    let (db, _) = open(&world);
    let mut model = Model::default();
    model.apply(&world, &db, (0..200).map(|i| put(i, 1)).collect());
    let durable = checkpoint(&world, &db);
    let checkpointed = model.contents.clone();
    let later = (100..300).map(|i| put(i, 2)).chain((0..50).map(delete));
    model.apply(&world, &db, later.collect());
    assert_contents(&world, &db, &model.contents);
    world.crash(N);
    drop(db);

    let (db, report) = open(&world);
    assert_eq!(report.superblock.generation, durable.generation);
    assert_eq!(report.superblock.checkpoint_lsn, durable.checkpoint_lsn);
    assert_eq!(db.stats().applied_lsn, durable.checkpoint_lsn);
    assert_contents(&world, &db, &checkpointed);
}

/// How far a running checkpoint got, read from the world's trace.
#[derive(Clone, Copy, Debug, Default)]
struct CheckpointProgress {
    pages_written: bool,
    pages_synced: bool,
    superblock_written: bool,
}

impl CheckpointProgress {
    /// Takes in the trace lines recorded since `seen` lines.
    fn observe(&mut self, world: &World, seen: &mut u64) {
        let new = (world.trace_lines() - *seen) as usize;
        assert!(new <= TAIL_LINES, "one step traces a line or two");
        *seen = world.trace_lines();
        let tail = world.trace_tail();
        for line in &tail[tail.len() - new..] {
            let pages = line.contains(&format!("/db/{PAGES_FILE}"));
            let superblock = line.contains("/db/SUPERBLOCK_");
            let write = line.contains("disk write ");
            let sync = line.contains("disk sync_data ");
            self.pages_written |= pages && write;
            self.pages_synced |= pages && sync;
            self.superblock_written |= superblock && write;
        }
    }
}

/// The outcome of a checkpoint cut short by power loss after `steps`.
enum Cut {
    /// The checkpoint finished within `steps`: nothing left to cut.
    Finished,
    /// Reopened at generation `generation` after a crash at `progress`.
    Reopened {
        progress: CheckpointProgress,
        generation: u64,
    },
}

/// Builds a store with two checkpoints (so the third reuses freed pages),
/// changes it, starts a checkpoint, crashes after `steps` world steps with
/// `at_crash` faults, reopens, and checks the store is exactly at the old or
/// the new checkpoint and validates clean.
fn cut_checkpoint(steps: u64, at_crash: &FaultConfig) -> Cut {
    let world = quiet_world(3);
    let (db, _) = open(&world);
    let mut model = Model::default();
    model.apply(&world, &db, (0..100).map(|i| put(i, 1)).collect());
    checkpoint(&world, &db);
    model.apply(
        &world,
        &db,
        (0..100).step_by(2).map(|i| put(i, 2)).collect(),
    );
    let old = checkpoint(&world, &db);
    let old_contents = model.contents.clone();
    let changes = (0..100)
        .step_by(3)
        .map(|i| put(i, 3))
        .chain((0..100).step_by(7).map(delete))
        .chain((100..130).map(|i| put(i, 3)));
    model.apply(&world, &db, changes.collect());

    let finished = Arc::new(Mutex::new(None));
    world.spawn(N, "checkpoint", {
        let (db, finished) = (Arc::clone(&db), Arc::clone(&finished));
        async move {
            let report = db.checkpoint().await.expect("checkpoint");
            *finished.lock().expect("not poisoned") = Some(report);
        }
    });
    let mut progress = CheckpointProgress::default();
    let mut seen = world.trace_lines();
    for _ in 0..steps {
        world.step();
        progress.observe(&world, &mut seen);
    }
    if let Some(new) = *finished.lock().expect("not poisoned") {
        assert_eq!(new.generation, old.generation + 1);
        return Cut::Finished;
    }
    world.set_faults(at_crash.clone());
    world.crash(N);
    world.set_faults(FaultConfig::none());
    drop(db);

    let (db, report) = open(&world);
    let generation = report.superblock.generation;
    let expected = if generation == old.generation {
        &old_contents
    } else {
        assert_eq!(generation, old.generation + 1, "after {steps} steps");
        &model.contents
    };
    assert_contents(&world, &db, expected);
    let validated = validate(&world, &db);
    assert!(
        validated.is_ok(),
        "after {steps} steps ({progress:?}): {:?}",
        validated.findings
    );
    Cut::Reopened {
        progress,
        generation: generation - old.generation,
    }
}

/// The generation (0 old, 1 new) a crash at `progress` must leave, if only
/// one is possible.
type Expect = fn(CheckpointProgress) -> Option<u64>;

#[test]
fn a_power_loss_mid_checkpoint_reopens_at_the_old_or_the_new_checkpoint() {
    let kept = FaultConfig::none();
    let mut lost = FaultConfig::none();
    lost.set(Fault::WriteLost, 1.0);
    let mut torn = FaultConfig::none();
    torn.set(Fault::WriteTorn, 1.0);
    let modes: [(&str, FaultConfig, Expect); 3] = [
        // Every unsynced write lands: the new superblock counts as soon as
        // it is written, not before.
        ("kept", kept, |p| Some(u64::from(p.superblock_written))),
        // No unsynced write lands: the superblock is durable only after
        // its fsync, and that is the checkpoint's last step.
        ("lost", lost, |_| Some(0)),
        // Unsynced writes land in part: the old one until the new
        // superblock is written, either after.
        ("torn", torn, |p| (!p.superblock_written).then_some(0)),
    ];
    let mut new_required = 0;
    for (mode, at_crash, expect) in modes {
        let (mut mid_pages, mut after_pages_before_superblock) = (0, 0);
        let mut steps = 0;
        while let Cut::Reopened {
            progress,
            generation,
        } = cut_checkpoint(steps, &at_crash)
        {
            if let Some(expected) = expect(progress) {
                assert_eq!(generation, expected, "{mode}, {steps} steps: {progress:?}");
                new_required += expected;
            }
            mid_pages += u32::from(progress.pages_written && !progress.pages_synced);
            after_pages_before_superblock +=
                u32::from(progress.pages_synced && !progress.superblock_written);
            steps += 1;
            assert!(steps < 10_000, "the checkpoint never finished");
        }
        assert!(
            mid_pages > 0 && after_pages_before_superblock > 0,
            "{mode}: crashes must hit while pages are written and after they are synced"
        );
    }
    assert!(
        new_required > 0,
        "some crash must have to keep the new checkpoint"
    );
}

#[test]
fn a_corrupted_tree_page_is_a_corruption_error_never_data() {
    let world = quiet_world(4);
    let (db, _) = open(&world);
    let mut model = Model::default();
    model.apply(&world, &db, (0..400).map(|i| put(i, 1)).collect());
    checkpoint(&world, &db);
    drop(db);

    // A leaf with entries (docs/design.md 5.1: type at byte 4, slot count
    // at 24, slot 0 after the 32-byte header: the u32 offset of a cell
    // that starts with a u16 key length and the key). After one checkpoint every such leaf is in the tree.
    let pages = read_file(&world, PAGES_FILE);
    let (page, first_key) = pages
        .chunks(PAGE_BYTES as usize)
        .enumerate()
        .skip(1)
        .find_map(|(id, bytes)| {
            let leaf = bytes[4] == 1 && u16::from_le_bytes([bytes[24], bytes[25]]) > 0;
            let cell = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
            let len = usize::from(u16::from_le_bytes([bytes[cell], bytes[cell + 1]]));
            leaf.then(|| (id as u64, cell, bytes[cell + 2..cell + 2 + len].to_vec()))
        })
        .map(|(id, cell, key)| ((id, cell), key))
        .expect("a leaf with keys");
    let (page, cell) = page;
    // Flip a bit of that key: read unverified, the key would vanish.
    let at = page * PAGE_BYTES + cell as u64 + 2;
    write_file(&world, PAGES_FILE, at, vec![pages[at as usize] ^ 1]);

    let env = world.env(N);
    let offline = world
        .block_on(
            N,
            async move { validate_dir(&env, &dir(), |_, _| {}).await },
        )
        .expect("validate_dir");
    assert!(!offline.is_ok());
    assert!(
        offline
            .findings
            .iter()
            .any(|f| f.page == Some(page) && f.kind == FindingKind::PageUnreadable),
        "page {page}: {:?}",
        offline.findings
    );

    let (db, _) = open(&world);
    let err = get(&world, &db, &first_key).expect_err("a damaged page is never data");
    assert!(err.is_corruption(), "{err}");
    assert!(
        matches!(err, StoreError::Page(PageError::Crc { page: p, .. }) if p == page),
        "{err}"
    );
    assert_eq!(db.stats().read_retries, u64::from(READ_RETRIES_MAX));
    let mut unreadable = 0;
    for (key, record) in &model.contents {
        match get(&world, &db, key) {
            Ok(found) => assert_eq!(found.as_ref(), Some(record)),
            Err(err) => {
                assert!(err.is_corruption(), "{err}");
                unreadable += 1;
            }
        }
    }
    assert!(
        unreadable > 0 && unreadable < model.contents.len(),
        "only the damaged leaf's keys fail ({unreadable} did)"
    );
    assert_eq!(validate(&world, &db), offline);
}

/// Rewrites the MANIFEST's `format_major` and its frame CRC. The file is
/// `magic (8) | u32 length | u32 CRC32 | FlatBuffer` (docs/design.md 5.2),
/// and `format_major` is the first field of the FlatBuffer's root table.
fn set_format_major(manifest: &mut [u8], major: u16) {
    let u16_at = |b: &[u8], at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let len = u32_at(manifest, 8) as usize;
    assert_eq!(
        crc32fast::hash(&manifest[16..16 + len]),
        u32_at(manifest, 12)
    );
    let body = &mut manifest[16..16 + len];
    let table = u32_at(body, 0) as usize;
    let vtable = (table as i64 - i64::from(u32_at(body, table) as i32)) as usize;
    let field = table + u16_at(body, vtable + 4);
    assert_eq!(u16_at(body, field), usize::from(FORMAT_MAJOR));
    body[field..field + 2].copy_from_slice(&major.to_le_bytes());
    let crc = crc32fast::hash(body);
    manifest[12..16].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_manifest_of_another_format_major_version_is_refused() {
    let world = quiet_world(5);
    let (db, _) = open(&world);
    assert_eq!(db.manifest().format_major, FORMAT_MAJOR);
    drop(db);
    let original = read_file(&world, MANIFEST_FILE);

    // Format 1 (decoded leaves, design 5.1 before issue 20): refused, not
    // read as slotted pages.
    let mut older = original.clone();
    set_format_major(&mut older, 1);
    write_file(&world, MANIFEST_FILE, 0, older);
    let err = open_with(&world, StoreOptions::default())
        .err()
        .expect("format 1 must be refused");
    assert!(
        matches!(err, StoreError::VersionMismatch { found: 1, supported } if supported == FORMAT_MAJOR),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("format major version 1 is not supported (this build reads major 3)"),
        "{err}"
    );
    // Format 2 (leaves pointing into a separate value log, design 8 before
    // issue 21): refused too.
    let mut format_2 = original.clone();
    set_format_major(&mut format_2, 2);
    write_file(&world, MANIFEST_FILE, 0, format_2);
    let err = open_with(&world, StoreOptions::default())
        .err()
        .expect("format 2 must be refused");
    assert!(
        matches!(err, StoreError::VersionMismatch { found: 2, .. }),
        "{err}"
    );

    let mut manifest = original;
    set_format_major(&mut manifest, FORMAT_MAJOR + 1);
    write_file(&world, MANIFEST_FILE, 0, manifest);

    let err = open_with(&world, StoreOptions::default())
        .err()
        .expect("another major version must be refused");
    assert!(
        matches!(err, StoreError::VersionMismatch { found, supported }
            if found == FORMAT_MAJOR + 1 && supported == FORMAT_MAJOR),
        "{err}"
    );
    assert!(!err.is_corruption(), "the MANIFEST is intact, just newer");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "format major version {} is not supported",
            FORMAT_MAJOR + 1
        )),
        "{message}"
    );
}

fn read_meta(world: &World) -> Result<MetaDump, StoreError> {
    let env = world.env(N);
    world.block_on(N, async move { read_meta_dir(&env, &dir()).await })
}

#[test]
fn the_manifest_and_both_superblocks_are_dumped_read_only_with_damage_shown() {
    let world = quiet_world(17);
    let (db, _) = open(&world);
    let manifest = db.manifest().clone();
    apply(&world, &db, (0..50).map(|i| put(i, 1)).collect(), 1).expect("apply");
    assert_eq!(checkpoint(&world, &db).generation, 2);
    drop(db);
    let files = list_dir(&world);
    let bytes: Vec<Vec<u8>> = files.iter().map(|name| read_file(&world, name)).collect();

    let dump = read_meta(&world).expect("dump");
    assert_eq!(dump.manifest, Ok(manifest));
    assert_eq!(dump.manifest_refused, None);
    let [a, b] = &dump.superblocks;
    assert_eq!((a.file, b.file), ("SUPERBLOCK_A", "SUPERBLOCK_B"));
    let a_fields = a.superblock.clone().expect("A");
    let b_fields = b.superblock.clone().expect("B");
    assert_eq!((a_fields.generation, b_fields.generation), (1, 2));
    assert_eq!((b_fields.checkpoint_lsn, b_fields.keys_count), (1, 50));
    assert!(!a.active && b.active, "the newest valid one is active");
    assert!(!dump.is_damaged());
    assert_eq!(list_dir(&world), files, "nothing created, not even a lock");
    let after: Vec<Vec<u8>> = files.iter().map(|name| read_file(&world, name)).collect();
    assert!(after == bytes, "nothing written");

    // A torn newest superblock: shown invalid, the other one is active.
    write_file(&world, "SUPERBLOCK_B", 20, vec![0xee; 4]);
    let dump = read_meta(&world).expect("dump");
    let [a, b] = &dump.superblocks;
    assert!(a.active && !b.active);
    assert!(
        b.superblock.as_ref().is_err_and(|why| why.contains("CRC")),
        "{b:?}"
    );
    assert!(!dump.is_damaged(), "open would start from A");
    assert_eq!(dump.active().map(|s| s.file), Some("SUPERBLOCK_A"));

    // Neither valid: damaged, no active superblock.
    write_file(&world, "SUPERBLOCK_A", 20, vec![0xee; 4]);
    let dump = read_meta(&world).expect("dump");
    assert!(dump.active().is_none() && dump.is_damaged());

    // A MANIFEST of another major decodes, and is marked refused.
    let original = read_file(&world, MANIFEST_FILE);
    let mut newer = original.clone();
    set_format_major(&mut newer, FORMAT_MAJOR + 1);
    write_file(&world, MANIFEST_FILE, 0, newer);
    let dump = read_meta(&world).expect("dump");
    assert_eq!(
        dump.manifest.as_ref().map(|m| m.format_major),
        Ok(FORMAT_MAJOR + 1)
    );
    assert!(
        dump.manifest_refused
            .as_ref()
            .is_some_and(|why| why.contains("not supported")),
        "{dump:?}"
    );

    // A MANIFEST that does not verify is shown with why.
    let mut flipped = original;
    flipped[40] ^= 1;
    write_file(&world, MANIFEST_FILE, 0, flipped);
    let dump = read_meta(&world).expect("dump");
    assert_eq!(dump.manifest, Err("CRC mismatch".to_owned()));

    // No MANIFEST: no database; no directory: an I/O error.
    let env = world.env(N);
    world.block_on(N, async move {
        env.remove(&dir().join(MANIFEST_FILE))
            .await
            .expect("remove")
    });
    assert!(matches!(
        read_meta(&world),
        Err(StoreError::NotFound { .. })
    ));
    let env = world.env(N);
    let missing = world.block_on(N, async move {
        read_meta_dir(&env, &PathBuf::from("/nowhere")).await
    });
    assert!(
        matches!(&missing, Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound),
        "{missing:?}"
    );
}

#[test]
fn a_directory_holding_other_files_is_not_taken_for_a_database() {
    let world = quiet_world(6);
    let env = world.env(N);
    world.block_on(N, async move {
        env.create_dir_all(&dir()).await.expect("mkdir");
        let file = env
            .open(&dir().join("notes.txt"), OpenMode::CreateNew)
            .await
            .expect("create");
        file.write_at(0, b"not a database").await.expect("write");
    });
    let err = open_with(&world, StoreOptions::default())
        .err()
        .expect("a foreign directory must be refused");
    assert!(
        matches!(&err, StoreError::NotADatabase { file, .. } if file == "notes.txt"),
        "{err}"
    );
    assert!(err.to_string().contains("holds no MANIFEST"), "{err}");
    assert_eq!(list_dir(&world), ["notes.txt"], "nothing removed or added");
}

fn open_without_create(world: &World) -> StoreError {
    let options = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    open_with(world, options)
        .err()
        .expect("there is nothing to open")
}

#[test]
fn opening_an_empty_directory_without_create_is_not_found() {
    let world = quiet_world(7);
    let env = world.env(N);
    world.block_on(N, async move {
        env.create_dir_all(&dir()).await.expect("mkdir")
    });
    let err = open_without_create(&world);
    assert!(
        matches!(&err, StoreError::NotFound { path } if *path == dir()),
        "{err}"
    );
    assert!(err.to_string().contains("no database in /db"), "{err}");
    assert!(list_dir(&world).is_empty(), "nothing was created");
}

#[test]
fn opening_a_missing_directory_without_create_is_not_found() {
    let world = quiet_world(13);
    let err = open_without_create(&world);
    assert!(
        matches!(&err, StoreError::NotFound { path } if *path == dir()),
        "{err}"
    );
}

#[test]
fn a_second_open_of_an_open_directory_is_refused() {
    let world = quiet_world(8);
    let (first, _) = open(&world);
    let err = open_with(&world, StoreOptions::default())
        .err()
        .expect("the directory is locked");
    assert!(
        matches!(&err, StoreError::Io { op: "lock directory", source, .. }
            if source.kind() == ErrorKind::WouldBlock),
        "{err}"
    );
    drop(first);
    let (_, report) = open(&world);
    assert!(!report.created, "the lock is released with the store");
}

#[test]
fn oversized_keys_and_inline_values_are_refused_before_anything_changes() {
    let world = quiet_world(9);
    let inline_max = 100;
    let options = StoreOptions {
        inline_value_bytes_max: inline_max,
        ..StoreOptions::default()
    };
    let (db, _) = open_with(&world, options).expect("create");
    drop(db);
    // The limit is the database's, from its MANIFEST, not the options'.
    let (db, _) = open(&world);
    let key_max = db.key_bytes_max();
    let inline = |len: usize| Record {
        value: StoredValue::Inline(vec![7; len]),
        ..record(0, 1)
    };
    let (longest_key, largest) = (vec![b'k'; key_max], inline(inline_max as usize));
    let at_limits = Mutation::Put {
        key: longest_key.clone(),
        record: largest.clone(),
    };
    apply(&world, &db, vec![at_limits], 1).expect("the limits themselves are allowed");

    let too_long_key = Mutation::Put {
        key: vec![b'k'; key_max + 1],
        record: inline(1),
    };
    let err = apply(&world, &db, vec![put(1, 2), too_long_key], 2).expect_err("key too long");
    assert!(
        matches!(err, StoreError::KeyTooLarge { len, max } if len == key_max + 1 && max == key_max),
        "{err}"
    );
    let err = get(&world, &db, &vec![b'k'; key_max + 1]).expect_err("key too long");
    assert!(matches!(err, StoreError::KeyTooLarge { .. }), "{err}");

    let too_large_value = Mutation::Put {
        key: key(2),
        record: inline(inline_max as usize + 1),
    };
    let err = apply(&world, &db, vec![put(1, 2), too_large_value], 2).expect_err("value");
    assert!(
        matches!(err, StoreError::ValueTooLarge { len, max }
            if len == inline_max as usize + 1 && max == inline_max as usize),
        "{err}"
    );
    assert_eq!(
        get(&world, &db, &key(1)).expect("get"),
        None,
        "a refused batch applies none of its mutations"
    );
    assert_eq!(db.stats().mutations, 1);

    checkpoint(&world, &db);
    drop(db);
    let (db, _) = open(&world);
    assert_eq!(get(&world, &db, &longest_key).expect("get"), Some(largest));
}

#[test]
fn a_small_cache_stays_bounded_and_still_returns_everything() {
    let world = quiet_world(10);
    let budget_pages = StoreOptions::CACHE_PAGES_MIN + 8;
    let options = StoreOptions {
        cache_bytes: budget_pages * PAGE_BYTES,
        ..StoreOptions::default()
    };
    let (db, _) = open_with(&world, options).expect("open");
    let budget_bytes = budget_pages * PAGE_BYTES;
    let mut model = Model::default();
    for batch in 0..160 {
        model.apply(
            &world,
            &db,
            (batch * 25..(batch + 1) * 25).map(|i| put(i, 1)).collect(),
        );
        let cache = db.stats().cache;
        // Writers checkpoint when dirty pages reach half the budget; clean
        // pages are evicted down to the budget as pages are read or dirtied.
        assert!(
            cache.dirty_pages * PAGE_BYTES < budget_bytes / 2,
            "batch {batch}: {cache:?}"
        );
        assert!(cache.bytes <= budget_bytes, "batch {batch}: {cache:?}");
    }
    let stats = db.stats();
    assert!(stats.checkpoints_for_memory > 0, "{stats:?}");
    assert_eq!(stats.checkpoints, stats.checkpoints_for_memory);
    assert!(stats.durable_generation > 1, "{stats:?}");
    checkpoint(&world, &db);
    let tree_pages = validate(&world, &db).tree_pages;
    assert!(tree_pages > budget_pages, "the tree must not fit the cache");

    let before = db.stats();
    for (key, record) in &model.contents {
        assert_eq!(get(&world, &db, key).expect("get").as_ref(), Some(record));
    }
    let after = db.stats();
    assert!(
        after.cache.misses - before.cache.misses >= tree_pages - budget_pages,
        "{before:?} -> {after:?}"
    );
    assert!(after.cache.evictions > before.cache.evictions);
    assert!(after.pages_read > before.pages_read);
    assert!(after.cache.bytes <= budget_bytes, "{:?}", after.cache);
    assert_contents(&world, &db, &model.contents);
}

#[test]
fn validate_finds_nothing_wrong_with_a_healthy_store_and_accounts_for_every_page() {
    let world = quiet_world(11);
    let (db, _) = open(&world);
    let mut model = Model::default();
    model.apply(&world, &db, (0..3000).map(|i| put(i, 1)).collect());
    checkpoint(&world, &db);
    model.apply(&world, &db, (0..3000).step_by(2).map(delete).collect());
    checkpoint(&world, &db);
    model.apply(
        &world,
        &db,
        (0..3000).step_by(3).map(|i| put(i, 2)).collect(),
    );
    let last = checkpoint(&world, &db);

    let (report, progress_last) = on(&world, &db, |db| async move {
        let mut last = (0, 0);
        let report = db.validate(|done, total| last = (done, total)).await;
        (report, last)
    });
    let report = report.expect("validate");
    assert_eq!(progress_last, (report.page_count, report.page_count));
    assert!(report.is_ok(), "{:?}", report.findings);
    assert!(report.findings.is_empty());
    assert_eq!(report.generation, last.generation);
    assert_eq!(report.checkpoint_lsn, last.checkpoint_lsn);
    assert_eq!(report.keys, model.contents.len() as u64);
    assert!(report.tree_height >= 2);
    assert!(report.leaf_pages > 1 && report.leaf_pages < report.tree_pages);
    assert!(
        report.free_pages > 0 && report.free_list_pages > 0,
        "deletes and rewrites free pages: {report:?}"
    );
    assert_eq!(
        report.tree_pages + report.free_list_pages + report.free_pages + 1,
        report.page_count,
        "{report:?}"
    );
    assert_eq!(report.page_count, db.stats().page_count);
    drop(db);
    let env = world.env(N);
    let offline = world
        .block_on(
            N,
            async move { validate_dir(&env, &dir(), |_, _| {}).await },
        )
        .expect("validate_dir");
    assert_eq!(offline, report);
}

#[test]
fn freed_pages_are_reused_so_the_page_file_stops_growing() {
    let world = quiet_world(12);
    let (db, _) = open(&world);
    let mut model = Model::default();
    let mut page_counts = Vec::new();
    for cycle in 1..=40 {
        model.apply(&world, &db, (0..300).map(|i| put(i, cycle)).collect());
        checkpoint(&world, &db);
        page_counts.push(db.stats().page_count);
    }
    let stats = db.stats();
    let report = validate(&world, &db);
    assert!(report.is_ok(), "{:?}", report.findings);
    // Every cycle rewrites every tree page; without reuse the file would
    // grow by the tree's size each time.
    assert!(
        stats.pages_written > 10 * stats.page_count,
        "{stats:?}, page counts {page_counts:?}"
    );
    assert!(
        page_counts[20..]
            .iter()
            .all(|&count| count <= page_counts[9]),
        "page counts {page_counts:?}"
    );
    assert!(
        stats.page_count <= 3 * (report.tree_pages + report.free_list_pages) + 1,
        "{report:?}"
    );
    assert_contents(&world, &db, &model.contents);
}

#[test]
fn a_checkpoint_abandoned_after_its_seal_stops_the_store() {
    let world = quiet_world(11);
    let (db, _) = open(&world);
    let mut model = Model::default();
    model.apply(&world, &db, (0..50).map(|i| put(i, 1)).collect());
    let polled = on(&world, &db, |db| async move {
        let mut checkpoint = std::pin::pin!(db.checkpoint());
        // The first poll seals and starts writing; the write waits on the
        // disk, and the caller gives up (a timeout would do the same).
        futures::poll!(checkpoint.as_mut()).is_pending()
    });
    assert!(polled, "the checkpoint finished in one poll");
    let error = apply(&world, &db, vec![put(100, 1)], 1_000).expect_err("accepted a write");
    assert!(matches!(error, StoreError::Failed { .. }), "{error}");
    // Reopening recovers what is durable: the creation state.
    drop(db);
    let (db, report) = open(&world);
    assert_eq!(report.superblock.checkpoint_lsn, 0);
    assert!(validate(&world, &db).findings.is_empty());
}

#[test]
fn an_lsn_below_one_applied_is_refused() {
    let world = quiet_world(12);
    let (db, _) = open(&world);
    apply(&world, &db, vec![put(1, 1)], 10).expect("apply");
    let error = apply(&world, &db, vec![put(2, 1)], 9).expect_err("went back");
    assert!(
        matches!(
            error,
            StoreError::LsnOutOfOrder {
                lsn: 9,
                applied: 10
            }
        ),
        "{error}"
    );
    apply(&world, &db, vec![put(2, 1)], 10).expect("the same LSN again is fine");
}
