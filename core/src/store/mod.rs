//! The tree store: the B+Tree in `data.pages`, its MANIFEST and its two
//! superblocks, with copy-on-write checkpoints.
//!
//! What survives a crash is exactly the tree as of the last durable
//! checkpoint (the WAL, built on top, replays what came after).
//!
//! Invariants kept here (docs/design.md walks through each step):
//! - **A checkpoint never overwrites a page the durable superblock reaches.**
//!   Changed pages get new ids; ids freed by a checkpoint become reusable
//!   only after the next superblock is durable. A torn page write can
//!   therefore only hit pages no valid superblock depends on.
//! - **A superblock is written only after every page it reaches is
//!   durable** (`data.pages` is fsynced first, growth included).
//! - **Nothing read is trusted unverified.** Pages are checked against their
//!   own CRC, id, and the checksum the parent or superblock recorded; the
//!   MANIFEST and superblocks against their frame CRC and the FlatBuffer
//!   verifier. Damage is a typed error, never data.
//! - **After a failed write or sync the store stops accepting changes**
//!   until reopened, since what is durable is then unknown.

mod checkpoint;
mod error;
pub mod manifest;
mod meta_dump;
mod meta_file;
mod open;
mod page_read;
mod pin;
mod relocate;
pub(crate) use relocate::RELOCATE_STEP_PAGES;
mod scan;
pub(crate) mod snapshots;
pub mod superblock;
mod validate;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::btree::Need;
use crate::btree::node::Node;
use crate::btree::tree::Tree;
use crate::env::Env;
use crate::page::PageId;
use crate::record::{Mutation, Record, StoredValue};
use crate::vlog::{SegmentUsage, VlogUsage};

pub use crate::btree::CacheStats;
pub use crate::btree::cursor::RangeQuery;
pub use checkpoint::CheckpointReport;
pub use error::StoreError;
pub use manifest::Manifest;
pub use meta_dump::{MetaDump, SuperblockDump, read_meta_dir};
pub use open::OpenReport;
pub use scan::TreeScan;
pub use snapshots::{SNAPSHOTS_LIVE_MAX, SnapshotStats};
pub use superblock::Superblock;
pub use validate::{FINDINGS_MAX, Finding, FindingKind, ValidateReport, validate_dir};

#[cfg(feature = "sabotage")]
use crate::sabotage::Sabotage;

/// A page that fails verification is read again this many times before the
/// error is returned: a bad read may be transient, a bad page is not.
pub const READ_RETRIES_MAX: u32 = 4;

/// An operation keeps at most this many of the pages it read pinned: two
/// root-to-leaf paths of the tallest tree.
const PINNED_READS_MAX: usize = 2 * crate::btree::mutator::TREE_HEIGHT_MAX as usize;

/// Keys read per step when the value-log usage counts are built.
const USAGE_SCAN_KEYS: usize = 1024;

/// The page file's name in the database directory.
pub const PAGES_FILE: &str = "data.pages";
/// The MANIFEST's file name.
pub const MANIFEST_FILE: &str = "MANIFEST";

/// How to open (or create) a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Create the database if the directory holds none.
    pub create_if_missing: bool,
    /// Page size for a new database (ignored when opening one).
    pub page_bytes: u32,
    /// Inline value limit for a new database (ignored when opening one).
    pub inline_value_bytes_max: u32,
    /// Memory budget for cached pages.
    pub cache_bytes: u64,
    /// A checkpoint cuts `data.pages` when at least this many bytes of
    /// free pages sit at its end (space given back; design.md 5.9).
    pub truncate_tail_bytes_min: u64,
    /// Bytes one snapshot's undo images may hold before it is ended
    /// (design 14.3; 0: a quarter of `cache_bytes`).
    pub snapshot_bytes_max: u64,
    /// Switches that break the store on purpose (tests only).
    #[cfg(feature = "sabotage")]
    pub sabotage: Sabotage,
}

impl StoreOptions {
    /// Default cache budget: 64 MiB.
    pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
    /// Default free tail worth cutting from `data.pages`: 1 MiB.
    pub const TRUNCATE_TAIL_BYTES_DEFAULT: u64 = 1024 * 1024;
    /// Default inline value limit: 512 bytes.
    pub const INLINE_VALUE_BYTES_DEFAULT: u32 = 512;
    /// The cache must hold at least this many pages, so one operation's
    /// root-to-leaf path and its siblings always fit.
    pub const CACHE_PAGES_MIN: u64 = 64;
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            create_if_missing: true,
            page_bytes: crate::page::PAGE_BYTES_DEFAULT,
            inline_value_bytes_max: Self::INLINE_VALUE_BYTES_DEFAULT,
            cache_bytes: Self::CACHE_BYTES_DEFAULT,
            truncate_tail_bytes_min: Self::TRUNCATE_TAIL_BYTES_DEFAULT,
            snapshot_bytes_max: 0,
            #[cfg(feature = "sabotage")]
            sabotage: Sabotage::None,
        }
    }
}

/// Counters describing what the store has done since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Checkpoints that made a new superblock durable.
    pub checkpoints: u64,
    /// Checkpoints started because dirty pages pressed on the cache budget.
    pub checkpoints_for_memory: u64,
    /// Checkpoint attempts that found the disk out of space (ENOSPC,
    /// EDQUOT) for a write; each is tried again by the next checkpoint.
    pub checkpoints_out_of_space: u64,
    /// Times a checkpoint cut free pages off the end of `data.pages`.
    pub truncations: u64,
    /// Pages those cuts gave back.
    pub pages_truncated: u64,
    /// Tree pages moved down from the end of `data.pages` so a later cut
    /// can give their space back.
    pub pages_relocated: u64,
    /// Tree and free-list pages written by checkpoints.
    pub pages_written: u64,
    /// Pages read from disk.
    pub pages_read: u64,
    /// Page reads that failed verification and were retried.
    pub read_retries: u64,
    /// Mutations that changed the tree.
    pub mutations: u64,
    /// Batches that built an empty tree bottom-up (the bulk path).
    pub bulk_builds: u64,
    /// Keys in the tree.
    pub keys: u64,
    /// Levels in the tree.
    pub tree_height: u16,
    /// Pages in `data.pages`, page 0 included.
    pub page_count: u64,
    /// Pages free for reuse now.
    pub free_pages: u64,
    /// Pages freed but waiting for the next durable superblock.
    pub pending_free_pages: u64,
    /// Of those, pages a backup's pin keeps (its superblock reaches them).
    pub pinned_pages: u64,
    /// The superblock generation a backup pins (0: none).
    pub pinned_generation: u64,
    /// Generation of the durable superblock.
    pub durable_generation: u64,
    /// Checkpoint LSN of the durable superblock.
    pub durable_checkpoint_lsn: u64,
    /// Highest LSN applied to the tree.
    pub applied_lsn: u64,
    /// The page cache.
    pub cache: CacheStats,
}

pub(crate) struct State {
    pub(crate) tree: Tree,
    pub(crate) failed: Option<String>,
    /// A sealed checkpoint whose writes found the disk out of space: the
    /// next checkpoint writes it again before sealing anything new.
    pub(crate) unwritten: Option<checkpoint::Plan>,
    pub(crate) lsn_applied: u64,
    pub(crate) durable: Superblock,
    /// Pages of the durable superblock's free-list chain.
    pub(crate) free_list_pages: Vec<PageId>,
    pub(crate) stats: StoreStats,
    /// The free pages at the end of `data.pages` a checkpoint cuts, at
    /// least.
    pub(crate) truncate_tail_pages_min: u64,
    /// Set by a close: relocation runs while any tail worth a cut is free
    /// or pending, not only a quarter of the file (design 5.9).
    pub(crate) compacting: bool,
    /// Live bytes per value-log segment, changed with the tree; `None`
    /// until [`Store::count_vlog_usage`] built it (recovery's replay
    /// runs before).
    pub(crate) vlog_usage: Option<VlogUsage>,
    /// A backup pins the durable superblock (`pin.rs`).
    pub(crate) pinned: bool,
}

/// The B+Tree store of one database directory. Open it with
/// [`Store::open`]; every method takes `&self` and may run concurrently.
pub struct Store<E: Env> {
    pub(crate) dir: PathBuf,
    pub(crate) env: E,
    pub(crate) manifest: Manifest,
    pub(crate) pages: E::File,
    /// Superblock files indexed by generation parity (B even, A odd).
    pub(crate) superblock_files: [E::File; 2],
    pub(crate) state: Mutex<State>,
    /// One checkpoint at a time; writers waiting on memory queue here.
    pub(crate) checkpointer: futures::lock::Mutex<()>,
    /// Held by a batch of several mutations while it is applied (it may
    /// read pages in between) and by a checkpoint while it seals, so no
    /// checkpoint holds part of a batch.
    pub(crate) batch_turn: futures::lock::Mutex<()>,
    /// Set once `State::failed` is: every request of a server asks whether
    /// the store failed, and this answers without the state's lock.
    pub(crate) has_failed: std::sync::atomic::AtomicBool,
    /// The open snapshots and their undo images.
    pub(crate) snapshots: snapshots::Snapshots,
    pub(crate) _lock: E::DirLock,
}

impl<E: Env> Store<E> {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        crate::mutex::lock(&self.state)
    }

    /// The database's MANIFEST.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The longest key this database accepts.
    pub fn key_bytes_max(&self) -> usize {
        crate::btree::key_bytes_max(self.manifest.page_bytes)
    }

    /// Counters and sizes, for INFO.
    pub fn stats(&self) -> StoreStats {
        let state = self.state();
        let tree = &state.tree;
        StoreStats {
            keys: tree.keys_count,
            tree_height: tree.height,
            page_count: tree.allocator.page_count(),
            free_pages: tree.allocator.free_count(),
            pending_free_pages: tree.allocator.pending_count(),
            pinned_pages: tree.allocator.pinned_pages(),
            pinned_generation: tree.allocator.pinned().unwrap_or(0),
            durable_generation: state.durable.generation,
            durable_checkpoint_lsn: state.durable.checkpoint_lsn,
            applied_lsn: state.lsn_applied,
            cache: tree.cache.stats(),
            ..state.stats
        }
    }

    /// The checkpoint LSN of the durable superblock: WAL records at or
    /// below it are no longer needed.
    pub(crate) fn durable_checkpoint_lsn(&self) -> u64 {
        self.state().durable.checkpoint_lsn
    }

    /// The highest LSN applied to the tree.
    pub(crate) fn applied_lsn(&self) -> u64 {
        self.state().lsn_applied
    }

    /// Records that the tree is the state as of `lsn` although no change
    /// was applied at it: recovery replayed the WAL through `lsn`, and the
    /// records after the last commit belong to transactions that can never
    /// commit now. The next checkpoint then covers them.
    pub(crate) fn recovered_through(&self, lsn: u64) {
        let mut state = self.state();
        state.lsn_applied = state.lsn_applied.max(lsn);
    }

    /// Why the store stopped accepting changes, if it did.
    pub fn failure(&self) -> Option<String> {
        if !self.has_failed.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.state().failed.clone()
    }

    fn check_key(&self, key: &[u8]) -> Result<(), StoreError> {
        let max = self.key_bytes_max();
        if key.is_empty() {
            return Err(StoreError::KeyEmpty);
        }
        if key.len() > max {
            return Err(StoreError::KeyTooLarge {
                len: key.len(),
                max,
            });
        }
        Ok(())
    }

    /// Runs `operation` on the in-memory state, reading the pages it needs
    /// until it completes. A page that fails verification is retried (from
    /// the root, in case the tree moved on) up to [`READ_RETRIES_MAX`] times
    /// in a row.
    ///
    /// The pages read for the operation stay pinned (the last
    /// [`PINNED_READS_MAX`] of them) until it completes, so one that needs
    /// several uncached pages cannot evict the first to read the second
    /// when dirty pages fill the cache.
    async fn with_pages<T>(
        &self,
        mut operation: impl FnMut(&mut State) -> Result<T, Need>,
    ) -> Result<T, StoreError> {
        let mut failures = 0;
        let mut pinned: std::collections::VecDeque<Arc<Node>> = std::collections::VecDeque::new();
        loop {
            let need = match operation(&mut self.state()) {
                Ok(done) => return Ok(done),
                Err(need) => need,
            };
            // Only a miss needs the path (for its error messages): a hit
            // allocates nothing here.
            let pages_path = self.dir.join(PAGES_FILE);
            let read =
                page_read::read_tree_page(&self.pages, &pages_path, self.manifest.page_bytes, need);
            match read.await {
                Ok(node) => {
                    failures = 0;
                    let node = Arc::new(node);
                    if pinned.len() == PINNED_READS_MAX {
                        pinned.pop_front();
                    }
                    pinned.push_back(Arc::clone(&node));
                    let mut state = self.state();
                    state.stats.pages_read += 1;
                    state.tree.cache.insert_clean(need.id, node, need.crc);
                }
                Err(error) if error.is_corruption() && failures < READ_RETRIES_MAX => {
                    failures += 1;
                    self.state().stats.read_retries += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The record stored under `key`, if any.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        self.check_key(key)?;
        self.with_pages(|state| state.tree.get(key)).await
    }

    /// Entries of a range, in the query's order.
    pub async fn range(&self, query: &RangeQuery) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
        let mut out: Vec<(Vec<u8>, Record)> = Vec::new();
        self.with_pages(|state| {
            // Resume after the last key returned before a page had to be read.
            let mut resumed = query.clone();
            if let Some((last, _)) = out.last() {
                if query.reverse {
                    resumed.end = Bound::Excluded(last.clone());
                } else {
                    resumed.start = Bound::Excluded(last.clone());
                }
            }
            state.tree.range(&resumed, &mut out)
        })
        .await?;
        Ok(out)
    }

    /// Applies `mutations` at `lsn`, in order. LSNs must not decrease from
    /// one call to the next (`LsnOutOfOrder`); the next checkpoint records
    /// the highest one.
    ///
    /// A checkpoint holds all of a batch or none of it. Readers are not
    /// held off: a batch that has to read pages releases the store between
    /// them, so a reader may see a prefix of it (isolation from readers is
    /// the transaction layer's locks' job). If the batch fails after part
    /// of it was applied, the store stops accepting writes until reopened.
    pub async fn apply(&self, mutations: &[Mutation], lsn: u64) -> Result<(), StoreError> {
        self.apply_unrelieved(mutations, lsn).await?;
        self.relieve_memory_pressure().await;
        Ok(())
    }

    /// Checks the keys of `mutations` (a commit's, whose values go to the
    /// WAL whatever their length; the writer turns the long ones into
    /// pointers before [`Store::apply`]).
    pub(crate) fn check_keys(&self, mutations: &[Mutation]) -> Result<(), StoreError> {
        mutations
            .iter()
            .try_for_each(|mutation| self.check_key(mutation.key()))
    }

    /// Checks that `mutations` are acceptable to [`Store::apply`] (key and
    /// inline value lengths) without applying them.
    pub(crate) fn check_mutations(&self, mutations: &[Mutation]) -> Result<(), StoreError> {
        let inline_max = self.manifest.inline_value_bytes_max as usize;
        for mutation in mutations {
            self.check_key(mutation.key())?;
            if let Mutation::Put { record, .. } = mutation
                && let StoredValue::Inline(bytes) = &record.value
                && bytes.len() > inline_max
            {
                return Err(StoreError::ValueTooLarge {
                    len: bytes.len(),
                    max: inline_max,
                });
            }
        }
        Ok(())
    }

    /// [`Store::apply`] without the memory-pressure checkpoint, for the WAL
    /// writer: a checkpoint there must wait for the WAL (the write-ahead
    /// rule), which the writer itself makes durable. Returns, per mutation,
    /// whether it changed the tree (a delete of an absent key does not).
    pub(crate) async fn apply_unrelieved(
        &self,
        mutations: &[Mutation],
        lsn: u64,
    ) -> Result<Vec<bool>, StoreError> {
        self.check_mutations(mutations)?;
        let batch_turn = if mutations.len() > 1 {
            Some(self.batch_turn.lock().await)
        } else {
            None
        };
        let mut changed = Vec::with_capacity(mutations.len());
        let outcome = self
            .with_pages(|state| {
                if changed.is_empty() {
                    if let Some(reason) = &state.failed {
                        return Ok(Err(StoreError::Failed {
                            reason: reason.clone(),
                        }));
                    }
                    if lsn < state.lsn_applied {
                        return Ok(Err(StoreError::LsnOutOfOrder {
                            lsn,
                            applied: state.lsn_applied,
                        }));
                    }
                }
                if changed.is_empty() && state.tree.bulk_applies(mutations) {
                    // An empty tree is built bottom-up (design 10.5).
                    state.tree.bulk_build(mutations, lsn);
                    state.stats.mutations += mutations.len() as u64;
                    state.stats.bulk_builds += 1;
                    if let Some(usage) = &mut state.vlog_usage {
                        for mutation in mutations {
                            if let Mutation::Put { record, .. } = mutation
                                && let StoredValue::Vlog(new) = &record.value
                            {
                                usage.add(new);
                            }
                        }
                    }
                    changed.resize(mutations.len(), true);
                }
                while changed.len() < mutations.len() {
                    // In runs that share a leaf (sorted batches), one
                    // descent per leaf.
                    let rest = &mutations[changed.len()..];
                    for (change, replaced) in state.tree.apply_run(rest, lsn)? {
                        let mutation = &mutations[changed.len()];
                        if change {
                            state.stats.mutations += 1;
                            if let Some(usage) = &mut state.vlog_usage {
                                if let Some(old) = replaced {
                                    usage.release(&old, lsn);
                                }
                                if let Mutation::Put { record, .. } = mutation
                                    && let StoredValue::Vlog(new) = &record.value
                                {
                                    usage.add(new);
                                }
                            }
                        }
                        changed.push(change);
                    }
                }
                state.lsn_applied = state.lsn_applied.max(lsn);
                Ok(Ok(()))
            })
            .await;
        match outcome {
            Ok(result) => result?,
            Err(error) => {
                if !changed.is_empty() {
                    // Part of the batch is in the tree and the rest cannot be
                    // read: the tree matches no LSN until reopened.
                    self.fail(format!(
                        "mutations of LSN {lsn} applied in part before: {error}"
                    ));
                }
                return Err(error);
            }
        }
        drop(batch_turn);
        Ok(changed)
    }

    /// Builds the value-log usage counts from one scan of the tree, which
    /// must not change meanwhile (call it before any writer starts); from
    /// then on every change keeps them exact.
    pub(crate) async fn count_vlog_usage(&self) -> Result<(), StoreError> {
        let mut usage = VlogUsage::new(self.applied_lsn());
        let mut scan = TreeScan::all(USAGE_SCAN_KEYS);
        while let Some(entries) = scan.next(self).await? {
            for (_, record) in &entries {
                if let StoredValue::Vlog(pointer) = &record.value {
                    usage.add(pointer);
                }
            }
        }
        self.state().vlog_usage = Some(usage);
        Ok(())
    }

    /// What the tree holds in value-log `segment` (`None` before the counts
    /// were built).
    pub(crate) fn vlog_segment_usage(&self, segment: u32) -> Option<SegmentUsage> {
        self.state()
            .vlog_usage
            .as_ref()
            .map(|usage| usage.segment(segment))
    }

    /// Bytes of the records the tree points to in `segments`.
    pub(crate) fn vlog_live_bytes_in(&self, segments: &[u32]) -> u64 {
        self.state()
            .vlog_usage
            .as_ref()
            .map_or(0, |usage| usage.live_bytes_in(segments))
    }

    /// Stops the store: it accepts no changes until reopened.
    pub(crate) fn fail(&self, reason: String) {
        Self::fail_locked(&mut self.state(), &self.has_failed, reason);
    }

    /// [`Store::fail`] with the state's lock held: the first reason stays.
    pub(crate) fn fail_locked(
        state: &mut State,
        has_failed: &std::sync::atomic::AtomicBool,
        reason: String,
    ) {
        state.failed.get_or_insert(reason);
        has_failed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Makes the page cache count the bytes in `outside` (the value
    /// cache's) against its budget: it evicts clean pages while pages and
    /// those bytes together exceed `cache_bytes` (design 11.3).
    pub(crate) fn share_cache_budget(&self, outside: Arc<AtomicU64>) {
        self.state().tree.cache.share_budget(outside);
    }

    /// Whether dirty pages fill the whole cache budget, so writers must
    /// wait for a checkpoint.
    pub(crate) fn memory_full(&self) -> bool {
        let state = self.state();
        state.tree.cache.dirty_bytes() >= state.tree.cache.budget_bytes()
    }

    /// How hard dirty pages press on the cache budget, in thousandths: 0
    /// below half of it, 1000 at all of it and above, in proportion in
    /// between (design 10.6).
    pub(crate) fn memory_pressure_permille(&self) -> u64 {
        let state = self.state();
        let (dirty, budget) = (
            state.tree.cache.dirty_bytes(),
            state.tree.cache.budget_bytes(),
        );
        let soft = budget / 2;
        if dirty < soft {
            0
        } else if dirty >= budget {
            1000
        } else {
            (dirty - soft) * 1000 / (budget - soft).max(1)
        }
    }

    /// Whether dirty pages press on the cache budget (half of it or more),
    /// so a checkpoint should run to make them evictable.
    pub(crate) fn memory_pressed(&self) -> bool {
        let state = self.state();
        state.tree.cache.dirty_bytes() >= state.tree.cache.budget_bytes() / 2
    }

    /// Recomputes what the page cache keeps incrementally and panics on a
    /// mismatch (an expensive cross-check, for the simulator and tests).
    pub fn check_invariants(&self) {
        self.state().tree.cache.check();
    }

    /// Checks the durable tree on disk page by page (see [`ValidateReport`]).
    /// Holds off checkpoints while it runs, so the pages it walks stay put.
    pub async fn validate(
        &self,
        progress: impl FnMut(u64, u64),
    ) -> Result<ValidateReport, StoreError> {
        let _turn = self.checkpointer.lock().await;
        let durable = self.state().durable;
        validate::walk::<E>(
            &self.pages,
            &self.dir,
            &self.manifest,
            &durable,
            None,
            progress,
        )
        .await
    }
}
