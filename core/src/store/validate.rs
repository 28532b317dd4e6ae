//! `validate`: walks every page of the durable tree and free list and
//! reports each inconsistency it finds.
//!
//! Checks: every page verifies (CRC, id, the checksum its parent or the
//! superblock recorded, type, level); keys ascend within each leaf and stay
//! within the separator bounds their ancestors set (which together give
//! global order); every leaf is at the same depth; no page is reached
//! twice; the free list names only pages inside the file and outside the
//! tree, each once; and every page is accounted for: tree pages + free-list
//! pages + free pages = all pages but page 0. The key count must match the
//! superblock's. It reports, rather than stops, so one run shows all damage.
//!
//! Offline ([`validate_dir`]) it also follows every value pointer in the
//! leaves to its WAL record (segment file present, frame inside it, CRCs,
//! and the key and type the leaf holds), reading the segments without
//! opening the WAL, whose open repairs. Online, `Db::validate` follows them
//! itself, since GC may move values while it runs.
//!
//! Invariant kept here: validation writes no file of the database (offline
//! it only takes the directory's lock).

use std::collections::BTreeSet;
use std::path::Path;

use crate::btree::node::{Body, Key};
use crate::btree::{Need, key_bytes_max};
use crate::env::{Env, File, OpenMode};
use crate::page::{PAGE_NONE, PageError, PageId};
use crate::record::{Record, StoredValue, VlogPointer};
use crate::vlog::{PointerReader, VlogError};

use super::manifest::Manifest;
use super::superblock::Superblock;
use super::{PAGES_FILE, StoreError, open, page_read};

/// At most this many findings are kept; the count goes on.
pub const FINDINGS_MAX: usize = 1000;

/// What kind of inconsistency a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// The page failed verification or could not be read.
    PageUnreadable,
    /// Keys out of order within a page, or outside the bounds the parent set.
    KeyOrder,
    /// A leaf not at the depth of the others, or a child at the wrong level.
    Height,
    /// A page reached twice (from the tree or the free list).
    PageReachedTwice,
    /// A page id outside the file.
    PageOutOfRange,
    /// A page neither in the tree nor free.
    PageLost,
    /// The key count differs from the superblock's.
    KeysCount,
    /// The free list's size differs from the superblock's.
    FreeListCount,
    /// A key or inline value larger than the database allows.
    EntryTooLarge,
    /// `data.pages` is shorter than the superblock's page count.
    FileTooShort,
    /// A value-log pointer that does not lead to its record.
    VlogPointer,
}

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The page it is about, if one.
    pub page: Option<PageId>,
    /// Its kind.
    pub kind: FindingKind,
    /// What was expected and what was found.
    pub detail: String,
}

/// The result of a validation: the figures, and the findings (empty when
/// the database is consistent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidateReport {
    /// Superblock generation validated.
    pub generation: u64,
    /// Its checkpoint LSN.
    pub checkpoint_lsn: u64,
    /// Pages in the file, page 0 included.
    pub page_count: u64,
    /// Levels in the tree.
    pub tree_height: u16,
    /// Tree pages reached.
    pub tree_pages: u64,
    /// Leaves among them.
    pub leaf_pages: u64,
    /// Keys found.
    pub keys: u64,
    /// Pages of the free-list chain.
    pub free_list_pages: u64,
    /// Pages the free list names.
    pub free_pages: u64,
    /// The first [`FINDINGS_MAX`] findings.
    pub findings: Vec<Finding>,
    /// All findings, kept or not.
    pub findings_count: u64,
    /// Value-log pointers followed (by `Db::validate` and
    /// [`validate_dir`]; `Store::validate` follows none).
    pub vlog_pointers: u64,
    /// Cuts at WAL damage an operator accepted (`jubectl repair
    /// --accept-data-loss`) over the database's life: not an inconsistency
    /// of the files, but data that was acknowledged and is gone.
    pub data_loss: crate::log::loss_history::LossHistory,
}

impl ValidateReport {
    /// Whether nothing was found.
    pub fn is_ok(&self) -> bool {
        self.findings_count == 0
    }

    pub(crate) fn find(
        &mut self,
        page: Option<PageId>,
        kind: FindingKind,
        detail: impl Into<String>,
    ) {
        self.findings_count += 1;
        if self.findings.len() < FINDINGS_MAX {
            self.findings.push(Finding {
                page,
                kind,
                detail: detail.into(),
            });
        }
    }
}

struct Visit {
    id: PageId,
    crc: u32,
    level: u16,
    /// Keys here must be at or above this.
    low: Option<Key>,
    /// Keys here must be below this.
    high: Option<Key>,
}

/// Validates the durable tree of an open store's page file, and follows
/// each value-log pointer with `vlog` when given.
pub(crate) async fn walk<E: Env>(
    pages: &E::File,
    dir: &Path,
    manifest: &Manifest,
    superblock: &Superblock,
    mut vlog: Option<&mut PointerReader<E>>,
    mut progress: impl FnMut(u64, u64),
) -> Result<ValidateReport, StoreError> {
    let page_bytes = manifest.page_bytes;
    let pages_path = dir.join(PAGES_FILE);
    let mut report = ValidateReport {
        generation: superblock.generation,
        checkpoint_lsn: superblock.checkpoint_lsn,
        page_count: superblock.page_count,
        tree_height: superblock.tree_height,
        ..ValidateReport::default()
    };
    let length = pages
        .len()
        .await
        .map_err(|e| StoreError::io("length", &pages_path, e))?;
    if length < superblock.page_count * u64::from(page_bytes) {
        report.find(
            None,
            FindingKind::FileTooShort,
            format!("{length} bytes for {} pages", superblock.page_count),
        );
    }
    let key_max = key_bytes_max(manifest.page_bytes);
    let inline_max = manifest.inline_value_bytes_max as usize;
    let mut reached: BTreeSet<PageId> = BTreeSet::new();
    let mut stack = vec![Visit {
        id: superblock.root_page,
        crc: superblock.root_crc,
        level: superblock.tree_height - 1,
        low: None,
        high: None,
    }];
    while let Some(visit) = stack.pop() {
        let id = visit.id;
        if id == PAGE_NONE || id >= superblock.page_count {
            report.find(
                Some(id),
                FindingKind::PageOutOfRange,
                format!("tree reaches page {id}"),
            );
            continue;
        }
        if !reached.insert(id) {
            report.find(
                Some(id),
                FindingKind::PageReachedTwice,
                "tree reaches the page twice",
            );
            continue;
        }
        progress(reached.len() as u64, superblock.page_count);
        let need = Need {
            id,
            crc: visit.crc,
            level: visit.level,
        };
        let read =
            page_read::retrying(|| page_read::read_tree_page(pages, &pages_path, page_bytes, need));
        let node = match read.await {
            Ok(node) => node,
            Err(error) if error.is_corruption() => {
                let kind = match error {
                    StoreError::Page(PageError::WrongLevel { .. }) => FindingKind::Height,
                    _ => FindingKind::PageUnreadable,
                };
                report.find(Some(id), kind, error.to_string());
                continue;
            }
            Err(error) => return Err(error),
        };
        report.tree_pages += 1;
        let in_bounds = |key: &[u8]| {
            visit.low.as_deref().is_none_or(|low| key >= low)
                && visit.high.as_deref().is_none_or(|high| key < high)
        };
        match node.body {
            Body::Leaf(leaf) => {
                report.leaf_pages += 1;
                report.keys += leaf.len() as u64;
                let entries: Vec<(Vec<u8>, crate::record::Record)> = leaf
                    .iter()
                    .map(|(key, record)| (key.to_vec(), record.to_record()))
                    .collect();
                for (key, record) in &entries {
                    if !in_bounds(key) {
                        report.find(
                            Some(id),
                            FindingKind::KeyOrder,
                            "a key lies outside its parent's separators",
                        );
                    }
                    let inline_len = match &record.value {
                        StoredValue::Inline(bytes) => bytes.len(),
                        StoredValue::Vlog(_) => 0,
                    };
                    if key.is_empty() || key.len() > key_max || inline_len > inline_max {
                        report.find(
                            Some(id),
                            FindingKind::EntryTooLarge,
                            format!("key of {} bytes, inline value of {inline_len}", key.len()),
                        );
                    }
                    if let (StoredValue::Vlog(pointer), Some(reader)) =
                        (&record.value, vlog.as_deref_mut())
                    {
                        report.vlog_pointers += 1;
                        if let Some(problem) = check_pointer(reader, key, record, pointer).await? {
                            report.find(
                                Some(id),
                                FindingKind::VlogPointer,
                                format!(
                                    "key {} -> {} offset {} ({} bytes): {problem}",
                                    crate::record::Escaped(key),
                                    crate::log::segment_name(u64::from(pointer.segment)),
                                    pointer.offset,
                                    pointer.length
                                ),
                            );
                        }
                    }
                }
            }
            Body::Internal(internal) => {
                for key in &internal.keys {
                    if !in_bounds(key) {
                        report.find(
                            Some(id),
                            FindingKind::KeyOrder,
                            "a separator lies outside its parent's separators",
                        );
                    }
                }
                // Pushed in reverse so pages are visited in key order.
                for (index, child) in internal.children.iter().enumerate().rev() {
                    let low = if index == 0 {
                        visit.low.clone()
                    } else {
                        Some(internal.keys[index - 1].clone())
                    };
                    let high = internal
                        .keys
                        .get(index)
                        .cloned()
                        .or_else(|| visit.high.clone());
                    stack.push(Visit {
                        id: child.id,
                        crc: child.crc,
                        level: visit.level - 1,
                        low,
                        high,
                    });
                }
            }
        }
    }
    if report.keys != superblock.keys_count {
        report.find(
            None,
            FindingKind::KeysCount,
            format!(
                "{} keys found, the superblock says {}",
                report.keys, superblock.keys_count
            ),
        );
    }

    // The free list.
    let (mut next, mut crc) = (superblock.free_list_page, superblock.free_list_crc);
    let mut free: BTreeSet<PageId> = BTreeSet::new();
    while next != PAGE_NONE {
        if next >= superblock.page_count {
            report.find(
                Some(next),
                FindingKind::PageOutOfRange,
                "free-list chain leaves the file",
            );
            break;
        }
        if !reached.insert(next) {
            report.find(
                Some(next),
                FindingKind::PageReachedTwice,
                "free-list page also reached elsewhere",
            );
            break;
        }
        let read = page_read::retrying(|| {
            page_read::read_free_list_page(pages, &pages_path, page_bytes, next, crc)
        });
        let page = match read.await {
            Ok(page) => page,
            Err(error) if error.is_corruption() => {
                report.find(Some(next), FindingKind::PageUnreadable, error.to_string());
                break;
            }
            Err(error) => return Err(error),
        };
        report.free_list_pages += 1;
        for id in page.ids {
            if id == PAGE_NONE || id >= superblock.page_count {
                report.find(
                    Some(id),
                    FindingKind::PageOutOfRange,
                    "the free list names a page outside the file",
                );
            } else if !free.insert(id) {
                report.find(
                    Some(id),
                    FindingKind::PageReachedTwice,
                    "the free list names the page twice",
                );
            }
        }
        (next, crc) = (page.next, page.next_crc);
    }
    for id in free.intersection(&reached) {
        report.find(
            Some(*id),
            FindingKind::PageReachedTwice,
            "a free page is also in use",
        );
    }
    report.free_pages = free.len() as u64;
    if report.free_pages != superblock.free_pages_count {
        report.find(
            None,
            FindingKind::FreeListCount,
            format!(
                "{} free pages listed, the superblock says {}",
                report.free_pages, superblock.free_pages_count
            ),
        );
    }
    let lost: Vec<PageId> = (1..superblock.page_count)
        .filter(|id| !reached.contains(id) && !free.contains(id))
        .take(16)
        .collect();
    if let Some(first) = lost.first() {
        let accounted = reached.len() as u64 + free.len() as u64;
        report.find(
            Some(*first),
            FindingKind::PageLost,
            format!(
                "{} of {} pages are neither in use nor free (first: {lost:?})",
                superblock.page_count - 1 - accounted.min(superblock.page_count - 1),
                superblock.page_count - 1
            ),
        );
    }
    progress(superblock.page_count, superblock.page_count);
    Ok(report)
}

/// Follows one leaf entry's value-log pointer: `None` when it leads to the
/// entry's record, else what is wrong. Only an I/O failure (other than a
/// missing segment file) is an error.
async fn check_pointer<E: Env>(
    reader: &mut PointerReader<E>,
    key: &[u8],
    record: &Record,
    pointer: &VlogPointer,
) -> Result<Option<String>, StoreError> {
    match reader.read(pointer).await {
        Ok(value) if value.key != key => Ok(Some(format!(
            "the record holds key {}",
            crate::record::Escaped(&value.key)
        ))),
        Ok(value) if value.value_type != record.value_type => Ok(Some(format!(
            "the record holds a {:?} value, the leaf says {:?}",
            value.value_type, record.value_type
        ))),
        Ok(_) => Ok(None),
        Err(error) if error.is_missing_segment() => Ok(Some("the segment file is missing".into())),
        Err(VlogError::Corrupt { detail, .. }) => Ok(Some(detail)),
        Err(VlogError::Io { op, path, source }) => Err(StoreError::Io { op, path, source }),
    }
}

/// Validates the database in `dir` offline: takes its lock, reads the
/// MANIFEST and the newest valid superblock, walks the tree and follows
/// every value-log pointer in it, changing nothing.
pub async fn validate_dir<E: Env>(
    env: &E,
    dir: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<ValidateReport, StoreError> {
    let _lock = env
        .lock_dir(dir)
        .await
        .map_err(|e| StoreError::io("lock directory", dir, e))?;
    let manifest = open::read_manifest(env, dir).await?;
    let (_, superblock, _) = open::choose_superblock(env, dir).await?;
    let pages_path = dir.join(PAGES_FILE);
    let pages = env
        .open(&pages_path, OpenMode::Existing)
        .await
        .map_err(|e| StoreError::io("open", &pages_path, e))?;
    let data_loss = crate::log::loss_history::read(env, dir)
        .await
        .map_err(|error| StoreError::corrupt("DATA_LOSS", error.to_string()))?;
    let mut vlog = PointerReader::new(env.clone(), dir);
    let mut report = walk(
        &pages,
        dir,
        &manifest,
        &superblock,
        Some(&mut vlog),
        progress,
    )
    .await?;
    report.data_loss = data_loss;
    Ok(report)
}
