//! Copy-on-write checkpoints (SPEC 6.5).
//!
//! 1. **Seal** (under the state lock): the open generation `g` closes; its
//!    dirty pages are collected (shared, immutable `Arc`s), and changes made
//!    from now on belong to `g + 1` and copy any page `g` holds rather than
//!    change it. The free list of `g` is computed and its pages allocated.
//! 2. **Write** (no lock; writers keep running): pages are encoded leaves
//!    first, so each parent records its children's new CRCs, then written to
//!    their ids, which no durable superblock reaches. `data.pages` is
//!    extended to the page count if needed and fsynced.
//! 3. **Superblock**: generation `g` goes to the superblock file of `g`'s
//!    parity (the older of the two) and is fsynced. It is now durable.
//! 4. **Finish** (under the lock): pages freed in `g` become reusable, the
//!    written pages become clean (evictable), and parents still in memory
//!    learn their children's CRCs.
//!
//! A failed sync in 2 or 3, or any other error there, stops the store: the
//! pages or superblock may or may not be durable, and only reopening can
//! tell. The one exception is a write (or the file's extension) that found
//! the disk out of space (ENOSPC, EDQUOT) while no sync had failed: the
//! pages it wrote are ones no durable superblock reaches, and the
//! superblock slot it wrote is the older one, so nothing durable changed.
//! The sealed plan is kept as it is, and the next checkpoint writes it
//! again, whole, before it seals anything new (so generations still become
//! durable one after another). Meanwhile the WAL keeps every change.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::btree::node::{Body, Node};
use crate::env::pace::{self, Pacer};
use crate::env::{Env, File, is_out_of_space};
use crate::page::{PAGE_NONE, PageId, freelist};

use super::superblock::Superblock;
use super::{PAGES_FILE, State, Store, StoreError};

/// Writes are coalesced into runs of consecutive pages up to this size.
const WRITE_RUN_BYTES_MAX: usize = 1024 * 1024;
/// The operations whose failure is a failed sync, never retried.
const SYNC_PAGES: &str = "sync pages";
const SYNC_SUPERBLOCK: &str = "sync superblock";

/// Whether a checkpoint that failed with `error` may be written again: a
/// write that found no space, no failed sync (see the module comment).
fn out_of_space(error: &StoreError) -> bool {
    match error {
        StoreError::Io { op, source, .. } => {
            is_out_of_space(source) && *op != SYNC_PAGES && *op != SYNC_SUPERBLOCK
        }
        StoreError::DiskFull { .. } => true,
        _ => false,
    }
}

/// What a checkpoint did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The superblock generation now durable.
    pub generation: u64,
    /// The checkpoint LSN it records.
    pub checkpoint_lsn: u64,
    /// Tree pages written.
    pub tree_pages: u64,
    /// Free-list pages written.
    pub free_list_pages: u64,
    /// Free pages cut off the end of `data.pages`.
    pub pages_truncated: u64,
    /// Tree pages moved down from the end of `data.pages` before the seal
    /// (design 5.9); this checkpoint wrote them.
    pub pages_relocated: u64,
    /// False when nothing had changed and no superblock was written.
    pub wrote: bool,
}

/// A sealed checkpoint: what it writes and the superblock it makes.
pub(crate) struct Plan {
    generation: u64,
    pages: Vec<(PageId, Arc<Node>)>,
    free_list_chain: Vec<PageId>,
    free_ids: Vec<PageId>,
    root: PageId,
    /// The root's CRC if the root is not among `pages`.
    root_crc_clean: u32,
    height: u16,
    keys_count: u64,
    lsn: u64,
    page_count: u64,
    /// Free pages this checkpoint cuts off the end of `data.pages` (0:
    /// none), once its superblock is durable.
    pages_truncated: u64,
    /// The TTL clock's reading the superblock records: never below the
    /// durable superblock's, so it only moves forward.
    ttl_now_ms: u64,
}

impl State {
    fn seal(&mut self, page_bytes: u32, ttl_now_ms: u64) -> Option<Plan> {
        let tree = &mut self.tree;
        let generation = tree.open_generation;
        let pages = tree.cache.dirty_pages(generation);
        if pages.is_empty()
            && !tree.allocator.pending_releasable_by(generation)
            && tree.allocator.free_tail_pages() < self.truncate_tail_pages_min.max(1)
            && self.lsn_applied == self.durable.checkpoint_lsn
        {
            return None;
        }
        tree.open_generation += 1;
        // The durable free list's own pages are free once `generation` is.
        for id in std::mem::take(&mut self.free_list_pages) {
            tree.allocator.release_after(generation, id);
        }
        // Free pages at the end of the file (reachable from no superblock)
        // leave the free set and the page count; the file is cut once this
        // generation's superblock, which no longer counts them, is durable.
        let count_before = tree.allocator.page_count();
        let pages_truncated = tree
            .allocator
            .truncate_free_tail(self.truncate_tail_pages_min)
            .map_or(0, |count| count_before - count);
        let mut free_ids = tree.allocator.free_as_of(generation);
        let per_page = freelist::ids_per_page(page_bytes);
        let mut chain = Vec::new();
        while chain.len() * per_page < free_ids.len() {
            match tree.allocator.take_free() {
                Some(id) => {
                    let at = free_ids
                        .binary_search(&id)
                        .expect("a free page is in the free list");
                    free_ids.remove(at);
                    chain.push(id);
                }
                None => chain.push(tree.allocator.allocate()),
            }
        }
        let root_dirty = pages.iter().any(|(id, _)| *id == tree.root);
        Some(Plan {
            generation,
            pages,
            free_list_chain: chain,
            free_ids,
            root: tree.root,
            root_crc_clean: if root_dirty { 0 } else { tree.root_crc },
            height: tree.height,
            keys_count: tree.keys_count,
            lsn: self.lsn_applied,
            ttl_now_ms: ttl_now_ms.max(self.durable.calibration_wall_unix_ms),
            page_count: tree.allocator.page_count(),
            pages_truncated,
        })
    }

    fn finish(&mut self, plan: Plan, superblock: Superblock, crcs: &BTreeMap<PageId, u32>) {
        let tree = &mut self.tree;
        let generation = plan.generation;
        drop(plan.pages);
        tree.allocator.generation_durable(generation);
        tree.cache.mark_clean(generation, crcs);
        if tree.root == plan.root {
            tree.root_crc = superblock.root_crc;
        }
        // Parents in memory learn the CRCs of the children just written.
        let stale = |node: &Node| match &node.body {
            Body::Internal(internal) => internal
                .children
                .iter()
                .any(|child| crcs.contains_key(&child.id)),
            Body::Leaf(_) => false,
        };
        let mut candidates: Vec<PageId> = crcs.keys().copied().collect();
        candidates.extend(tree.cache.dirty_ids_after(generation));
        for id in candidates {
            if tree.cache.peek(id).is_some_and(stale) {
                tree.cache.patch(id, |node| {
                    if let Body::Internal(internal) = &mut node.body {
                        for child in &mut internal.children {
                            if let Some(crc) = crcs.get(&child.id) {
                                child.crc = *crc;
                            }
                        }
                    }
                });
            }
        }
        self.free_list_pages = plan.free_list_chain;
        self.durable = superblock;
        self.stats.checkpoints += 1;
        if plan.pages_truncated > 0 {
            self.stats.truncations += 1;
            self.stats.pages_truncated += plan.pages_truncated;
        }
    }
}

/// Stops the store if a sealed checkpoint is abandoned before it finishes.
struct Unfinished<'a, E: Env> {
    store: &'a Store<E>,
}

impl<E: Env> Drop for Unfinished<'_, E> {
    fn drop(&mut self) {
        self.store
            .fail("a checkpoint was abandoned after it was sealed".to_owned());
    }
}

impl<E: Env> Store<E> {
    /// Writes every change made so far to pages no durable superblock
    /// reaches and makes a new superblock durable. Writers keep running
    /// while it does; their later changes go to the next checkpoint.
    ///
    /// This is for a store without a WAL (or whose changes are all durable
    /// in it already); a database keeps the write-ahead rule through its
    /// checkpointer.
    pub async fn checkpoint(&self) -> Result<CheckpointReport, StoreError> {
        self.checkpoint_after_wal(|| self.env.now_wall_ms(), |lsn| std::future::ready(Ok(lsn)))
            .await
    }

    /// A checkpoint that keeps the write-ahead rule (SPEC 7.2): once the
    /// changes are sealed, `wal_durable(lsn)` must return only when the WAL
    /// is durable up to `lsn`, the highest LSN of any sealed page, with the
    /// durable LSN; no page is written before it has, and the store checks
    /// the LSN it is given. `ttl_now` reads the TTL clock, which the
    /// superblock records (SPEC 3: TTL time restarts no earlier); it is
    /// read as the changes are sealed, after every commit the checkpoint
    /// covers was applied, so it is at least every such commit's reading.
    pub(crate) async fn checkpoint_after_wal<G, F>(
        &self,
        ttl_now: impl FnOnce() -> u64,
        wal_durable: G,
    ) -> Result<CheckpointReport, StoreError>
    where
        G: Fn(u64) -> F,
        F: Future<Output = Result<u64, StoreError>>,
    {
        let _turn = self.checkpointer.lock().await;
        self.checkpoint_locked(ttl_now, wal_durable).await
    }

    async fn checkpoint_locked<G, F>(
        &self,
        ttl_now: impl FnOnce() -> u64,
        wal_durable: G,
    ) -> Result<CheckpointReport, StoreError>
    where
        G: Fn(u64) -> F,
        F: Future<Output = Result<u64, StoreError>>,
    {
        // A checkpoint the disk had no room for goes first, as sealed.
        let unwritten = {
            let mut state = self.state();
            if let Some(reason) = &state.failed {
                return Err(StoreError::Failed {
                    reason: reason.clone(),
                });
            }
            state.unwritten.take()
        };
        let retried = match unwritten {
            Some(plan) => Some(self.write_sealed(plan, &wal_durable).await?),
            None => None,
        };
        // The tail of the file moves down first (when enough of it is
        // free), so this checkpoint writes the moved pages and the next
        // can cut what they leave (design 5.9).
        let relocated = self
            .relocate_tail(super::relocate::RELOCATE_STEP_PAGES)
            .await?;
        let page_bytes = self.manifest.page_bytes;
        let plan = {
            let _batches = self.batch_turn.lock().await;
            let mut state = self.state();
            if let Some(reason) = &state.failed {
                return Err(StoreError::Failed {
                    reason: reason.clone(),
                });
            }
            match state.seal(page_bytes, ttl_now()) {
                Some(plan) => plan,
                None => {
                    if let Some(report) = retried {
                        return Ok(report);
                    }
                    let durable = state.durable;
                    return Ok(CheckpointReport {
                        generation: durable.generation,
                        checkpoint_lsn: durable.checkpoint_lsn,
                        tree_pages: 0,
                        free_list_pages: 0,
                        pages_truncated: 0,
                        pages_relocated: relocated,
                        wrote: false,
                    });
                }
            }
        };
        let mut report = self.write_sealed(plan, &wal_durable).await?;
        report.pages_relocated = relocated;
        Ok(report)
    }

    /// Writes sealed `plan` once the WAL is durable through its LSN, and
    /// concludes it.
    async fn write_sealed<G, F>(
        &self,
        plan: Plan,
        wal_durable: &G,
    ) -> Result<CheckpointReport, StoreError>
    where
        G: Fn(u64) -> F,
        F: Future<Output = Result<u64, StoreError>>,
    {
        // From seal to finish the store is mid-checkpoint: if this future is
        // dropped (a caller's timeout) or panics in between, the sealed
        // generation is never finished and no later checkpoint may run on
        // top of it, so the guard stops the store.
        let unfinished = Unfinished { store: self };
        let written = match wal_durable(plan.lsn).await {
            Ok(lsn_durable) => {
                // The write-ahead rule, checked where it must hold: before
                // the first page of the checkpoint is written.
                assert!(
                    lsn_durable >= plan.lsn,
                    "a checkpoint at LSN {} would write pages the WAL holds durably only through {lsn_durable}",
                    plan.lsn
                );
                self.write_checkpoint(&plan).await
            }
            Err(error) => Err(error),
        };
        std::mem::forget(unfinished);
        self.conclude(plan, written)
    }

    /// Finishes `plan` if it was written; keeps it for the next checkpoint
    /// if the disk had no room; stops the store otherwise.
    fn conclude(
        &self,
        plan: Plan,
        written: Result<(Superblock, BTreeMap<PageId, u32>), StoreError>,
    ) -> Result<CheckpointReport, StoreError> {
        let mut state = self.state();
        match written {
            Ok((superblock, crcs)) => {
                let report = CheckpointReport {
                    generation: plan.generation,
                    checkpoint_lsn: plan.lsn,
                    tree_pages: plan.pages.len() as u64,
                    free_list_pages: plan.free_list_chain.len() as u64,
                    pages_truncated: plan.pages_truncated,
                    pages_relocated: 0,
                    wrote: true,
                };
                state.stats.pages_written += report.tree_pages + report.free_list_pages;
                state.finish(plan, superblock, &crcs);
                Ok(report)
            }
            Err(error)
                if out_of_space(&error)
                    && !crate::sabotage::sabotaged!(state.tree, FullDiskFailsCheckpoint) =>
            {
                assert!(
                    state.unwritten.is_none(),
                    "one sealed checkpoint waits for space at a time"
                );
                state.stats.checkpoints_out_of_space += 1;
                state.unwritten = Some(plan);
                Err(error)
            }
            Err(error) => {
                Self::fail_locked(&mut state, &self.has_failed, error.to_string());
                Err(error)
            }
        }
    }

    async fn write_checkpoint(
        &self,
        plan: &Plan,
    ) -> Result<(Superblock, BTreeMap<PageId, u32>), StoreError> {
        let page_bytes = self.manifest.page_bytes as usize;
        let pages_path = self.dir.join(PAGES_FILE);
        let length_needed = plan.page_count * page_bytes as u64;
        if plan.pages_truncated > 0
            && crate::sabotage::sabotaged!(self.state().tree, TruncateBeforeSuperblock)
        {
            // Broken on purpose: cut the file while the durable superblock
            // still counts the pages cut.
            self.pages
                .set_len(length_needed)
                .await
                .map_err(|e| StoreError::io("truncate", &pages_path, e))?;
        }
        // Leaves first, so each parent can record its children's CRCs.
        let mut order: Vec<&(PageId, Arc<Node>)> = plan.pages.iter().collect();
        order.sort_by_key(|(id, node)| (node.level(), *id));
        let mut crcs: BTreeMap<PageId, u32> = BTreeMap::new();
        // Leaves, nearly all of a checkpoint's pages, are encoded straight
        // into the write runs (in page order, as they are sorted): at most
        // one run of their images is held at a time, not the whole dirty
        // set's. The few internal and free-list pages follow, in page order.
        let mut runs = RunWriter::new(page_bytes, Pacer::new(&self.env));
        let mut upper: BTreeMap<PageId, Vec<u8>> = BTreeMap::new();
        for (id, node) in order {
            let crc = match &node.body {
                Body::Leaf(_) => node.encode(*id, runs.page(self, *id).await?),
                Body::Internal(internal) => {
                    let mut image = vec![0; page_bytes];
                    let crc = if internal
                        .children
                        .iter()
                        .any(|child| crcs.contains_key(&child.id))
                    {
                        let mut patched = (**node).clone();
                        if let Body::Internal(internal) = &mut patched.body {
                            for child in &mut internal.children {
                                if let Some(crc) = crcs.get(&child.id) {
                                    child.crc = *crc;
                                }
                            }
                        }
                        patched.encode(*id, &mut image)
                    } else {
                        node.encode(*id, &mut image)
                    };
                    upper.insert(*id, image);
                    crc
                }
            };
            crcs.insert(*id, crc);
        }
        // The free list, last link first, so each page records the next's CRC.
        let per_page = freelist::ids_per_page(self.manifest.page_bytes);
        let (mut next, mut next_crc) = (PAGE_NONE, 0);
        for (index, id) in plan.free_list_chain.iter().enumerate().rev() {
            let chunk_end = ((index + 1) * per_page).min(plan.free_ids.len());
            let chunk = &plan.free_ids[(index * per_page).min(chunk_end)..chunk_end];
            let mut image = vec![0; page_bytes];
            next_crc = freelist::encode(*id, next, next_crc, chunk, &mut image);
            next = *id;
            upper.insert(*id, image);
        }
        for (id, image) in &upper {
            runs.page(self, *id).await?.copy_from_slice(image);
        }
        runs.flush(self).await?;
        // Pages allocated and freed again before ever being written leave
        // a hole at the end; the superblock's page count must be readable.
        let length = self
            .pages
            .len()
            .await
            .map_err(|e| StoreError::io("length", &pages_path, e))?;
        if length < length_needed {
            self.pages
                .set_len(length_needed)
                .await
                .map_err(|e| StoreError::io("extend", &pages_path, e))?;
        }
        self.pages
            .sync_data()
            .await
            .map_err(|e| StoreError::io(SYNC_PAGES, &pages_path, e))?;

        let root_crc = crcs.get(&plan.root).copied().unwrap_or(plan.root_crc_clean);
        let superblock = Superblock {
            generation: plan.generation,
            root_page: plan.root,
            root_crc,
            tree_height: plan.height,
            free_list_page: next,
            free_list_crc: next_crc,
            free_pages_count: plan.free_ids.len() as u64,
            checkpoint_lsn: plan.lsn,
            calibration_mono_nanos: self.env.now_mono().as_nanos(),
            calibration_wall_unix_ms: plan.ttl_now_ms,
            page_count: plan.page_count,
            keys_count: plan.keys_count,
        };
        let name = Superblock::file_name(plan.generation);
        let path = self.dir.join(name);
        let file = &self.superblock_files[(plan.generation % 2) as usize];
        file.write_at(0, &superblock.encode())
            .await
            .map_err(|e| StoreError::io("write superblock", &path, e))?;
        file.sync_data()
            .await
            .map_err(|e| StoreError::io(SYNC_SUPERBLOCK, &path, e))?;
        // No durable superblock counts the pages past `page_count` now
        // (this one is durable; the one before it is the older slot, which
        // an open never prefers while this one verifies): give them back.
        // The cut need not be durable: a crash that undoes it leaves the
        // file longer than counted, which is harmless, and the next
        // checkpoint cuts again. Nor need it succeed: a failure leaves the
        // same.
        if length > length_needed
            && let Err(error) = self.pages.set_len(length_needed).await
        {
            tracing::warn!(%error, "cutting the free tail of data.pages failed; the file stays longer");
        }
        Ok((superblock, crcs))
    }

    /// When dirty pages fill half the cache budget, checkpoint so they
    /// become evictable; when they fill all of it, wait for a checkpoint
    /// rather than let the cache grow past the budget.
    pub(crate) async fn relieve_memory_pressure(&self) {
        let (dirty, budget) = {
            let state = self.state();
            (
                state.tree.cache.dirty_bytes(),
                state.tree.cache.budget_bytes(),
            )
        };
        if dirty < budget / 2 {
            return;
        }
        let _turn = if dirty < budget {
            match self.checkpointer.try_lock() {
                Some(turn) => turn,
                None => return,
            }
        } else {
            self.checkpointer.lock().await
        };
        {
            let mut state = self.state();
            if state.failed.is_some() || state.tree.cache.dirty_bytes() < budget / 2 {
                return;
            }
            state.stats.checkpoints_for_memory += 1;
        }
        // A failure is recorded in the state: the next write reports it.
        let _ = self
            .checkpoint_locked(|| self.env.now_wall_ms(), |lsn| std::future::ready(Ok(lsn)))
            .await;
    }
}

/// Consecutive page images collected into one write of at most
/// `WRITE_RUN_BYTES_MAX` bytes; a page that does not extend the run sends
/// it first. Holds one run's images, whatever the checkpoint's size.
struct RunWriter {
    page_bytes: usize,
    run: Vec<u8>,
    start: PageId,
    /// Bytes written since the last step's sync.
    unsynced: usize,
    /// Pages are synced and paused after in steps (`env::pace`), so a
    /// checkpoint's flush never holds the disk long while commits wait
    /// for their WAL syncs (design 10.6).
    pacer: Pacer,
}

impl RunWriter {
    fn new(page_bytes: usize, pacer: Pacer) -> Self {
        RunWriter {
            page_bytes,
            run: Vec::new(),
            start: 0,
            unsynced: 0,
            pacer,
        }
    }

    /// A zeroed page image for `id` at the end of the current run.
    async fn page<E: Env>(
        &mut self,
        store: &Store<E>,
        id: PageId,
    ) -> Result<&mut [u8], StoreError> {
        let pages_in_run = (self.run.len() / self.page_bytes) as u64;
        let extends = self.start + pages_in_run == id;
        if !self.run.is_empty()
            && (!extends || self.run.len() + self.page_bytes > WRITE_RUN_BYTES_MAX)
        {
            self.flush(store).await?;
        }
        if self.run.is_empty() {
            self.start = id;
        }
        let at = self.run.len();
        self.run.resize(at + self.page_bytes, 0);
        Ok(&mut self.run[at..])
    }

    async fn flush<E: Env>(&mut self, store: &Store<E>) -> Result<(), StoreError> {
        if self.run.is_empty() {
            return Ok(());
        }
        store
            .pages
            .write_at(self.start * self.page_bytes as u64, &self.run)
            .await
            .map_err(|e| StoreError::io("write pages", &store.dir.join(PAGES_FILE), e))?;
        self.unsynced += self.run.len();
        self.run.clear();
        // Unless dirty pages press on the cache: then finishing soon matters
        // more, and the pages go at full speed with one sync at the end.
        if self.unsynced as u64 >= pace::STEP_BYTES && !store.memory_pressed() {
            self.unsynced = 0;
            store
                .pages
                .sync_data()
                .await
                .map_err(|e| StoreError::io(SYNC_PAGES, &store.dir.join(PAGES_FILE), e))?;
            self.pacer.pause(&store.env).await;
        }
        Ok(())
    }
}
