//! A leaf held as its page image (format 2, design 5.1): one buffer, a
//! slot array growing up from the header and cells packed at the end.
//!
//! Layout of the image (little-endian), the same in memory and on disk:
//! - bytes `0..32`: the page header; in memory only `count` (bytes
//!   24..26, the number of slots `n`) and `used` (bytes 28..32, `4n` plus
//!   the cells' bytes) are kept, the rest is filled in when the page is
//!   written;
//! - bytes `32..32 + 4n`: slot `i` is the `u32` offset of entry `i`'s
//!   cell, slots in ascending key order;
//! - zeros up to `len - (used - 4n)`, where the cells start;
//! - the cells, tiling the rest of the image with no gap: `u16 key
//!   length, key, u8 kind, u8 type, u8 flags, u8 reserved, u64 expires_at,
//!   u64 revision`, then `u32 length, value` (inline) or a 24-byte
//!   pointer to the WAL record holding the value (format 3, design 11.2):
//!   `u32 segment, u32 offset, u64 lsn, u32 length, u32 crc`.
//!
//! Invariants (checked in full by [`Leaf::from_page`] when a page enters
//! the cache, kept by every change after that):
//! - keys strictly ascend by slot;
//! - every cell lies inside the cell area, cells do not overlap, and
//!   together they cover it exactly: a removal moves the cells below the
//!   removed one up and shifts their slots' offsets, so free space is
//!   always the one gap between the slots and the cells;
//! - the gap is zero, so an image is a function of its entries and the
//!   order they were changed in (determinism, and no removed value lingers
//!   on disk).
//!
//! A leaf grows its buffer (to the next power of two) only when an entry
//! does not fit: at page size that happens only when the leaf overflows
//! its page, and the mutator then splits it into two leaves of page size.
//! A search costs no allocation and a read copies a value once, into the
//! caller's record.

use std::cmp::Ordering;

use crate::page::header::{u16_at, u32_at, u64_at};
use crate::page::{PAGE_HEADER_BYTES, PageError, PageId};
use crate::record::{Record, StoredValue, ValueType, VlogPointer};

use super::search::SearchIndex;

/// Bytes of a slot.
pub(crate) const LEAF_SLOT_BYTES: usize = 4;
/// Bytes of a cell besides its key and value: key length, kind, type,
/// flags, reserved, expiry, revision.
pub(crate) const LEAF_CELL_OVERHEAD_BYTES: usize = 2 + 4 + 8 + 8;
/// The length prefix of an inline value.
pub(crate) const INLINE_LENGTH_BYTES: usize = 4;
/// Bytes of a WAL pointer in a cell.
pub(crate) const VLOG_POINTER_BYTES: usize = 24;

const COUNT_AT: usize = 24;
const USED_AT: usize = 28;
/// The smallest buffer a growing leaf takes.
const GROWN_BYTES_MIN: usize = 256;

const KIND_INLINE: u8 = 1;
const KIND_VLOG: u8 = 2;
const FLAG_EXPIRES: u8 = 1;

impl Record {
    /// Bytes this record takes in a cell besides its key and the key's
    /// length.
    pub(crate) fn encoded_bytes(&self) -> usize {
        LEAF_CELL_OVERHEAD_BYTES - 2
            + match &self.value {
                StoredValue::Inline(bytes) => INLINE_LENGTH_BYTES + bytes.len(),
                StoredValue::Vlog(_) => VLOG_POINTER_BYTES,
            }
    }
}

/// Bytes an entry of `key_len` key bytes holding `record` takes in a leaf:
/// its slot and its cell.
pub(crate) fn entry_bytes(key_len: usize, record: &Record) -> usize {
    LEAF_SLOT_BYTES + 2 + key_len + record.encoded_bytes()
}

/// A value as a leaf holds it, borrowed from the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueRef<'a> {
    /// The value's bytes, in the leaf.
    Inline(&'a [u8]),
    /// Where the value lives in the value log.
    Vlog(VlogPointer),
}

/// A record borrowed from a leaf's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    pub(crate) value_type: ValueType,
    pub(crate) value: ValueRef<'a>,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) revision: u64,
}

impl RecordRef<'_> {
    /// The record, its value copied out of the page.
    pub(crate) fn to_record(self) -> Record {
        Record {
            value_type: self.value_type,
            value: match self.value {
                ValueRef::Inline(bytes) => StoredValue::Inline(bytes.to_vec()),
                ValueRef::Vlog(pointer) => StoredValue::Vlog(pointer),
            },
            expires_at_ms: self.expires_at_ms,
            revision: self.revision,
        }
    }

    /// Whether it is `record`, compared without copying.
    pub(crate) fn matches(&self, record: &Record) -> bool {
        self.value_type == record.value_type
            && self.expires_at_ms == record.expires_at_ms
            && self.revision == record.revision
            && match (&self.value, &record.value) {
                (ValueRef::Inline(mine), StoredValue::Inline(theirs)) => *mine == theirs.as_slice(),
                (ValueRef::Vlog(mine), StoredValue::Vlog(theirs)) => mine == theirs,
                _ => false,
            }
    }

    /// The value-log pointer, if the value lives there.
    pub(crate) fn vlog(&self) -> Option<VlogPointer> {
        match self.value {
            ValueRef::Vlog(pointer) => Some(pointer),
            ValueRef::Inline(_) => None,
        }
    }
}

/// A cell parsed with every length checked against `image`: the key's
/// range, the record, and where the cell ends.
fn parse_cell(image: &[u8], at: usize) -> Result<(usize, usize, RecordRef<'_>, usize), String> {
    let past = |what: &str| format!("cell at {at}: {what} runs past the page");
    let take = |from: usize, len: usize| -> Option<usize> {
        from.checked_add(len).filter(|end| *end <= image.len())
    };
    let key_start = take(at, 2).ok_or_else(|| past("key length"))?;
    let key_len = usize::from(u16_at(image, at));
    let key_end = take(key_start, key_len).ok_or_else(|| past("key"))?;
    let fixed_end = take(key_end, LEAF_CELL_OVERHEAD_BYTES - 2).ok_or_else(|| past("record"))?;
    let (kind, type_byte, flags) = (image[key_end], image[key_end + 1], image[key_end + 2]);
    let value_type = ValueType::from_code(type_byte)
        .ok_or_else(|| format!("cell at {at}: unknown value type {type_byte}"))?;
    let expires_at = u64_at(image, key_end + 4);
    let revision = u64_at(image, key_end + 12);
    let (value, end) = match kind {
        KIND_INLINE => {
            let start = take(fixed_end, INLINE_LENGTH_BYTES).ok_or_else(|| past("value length"))?;
            let len = u32_at(image, fixed_end) as usize;
            let end = take(start, len).ok_or_else(|| past("value"))?;
            (ValueRef::Inline(&image[start..end]), end)
        }
        KIND_VLOG => {
            let end = take(fixed_end, VLOG_POINTER_BYTES).ok_or_else(|| past("pointer"))?;
            (
                ValueRef::Vlog(VlogPointer {
                    segment: u32_at(image, fixed_end),
                    offset: u64::from(u32_at(image, fixed_end + 4)),
                    lsn: u64_at(image, fixed_end + 8),
                    length: u32_at(image, fixed_end + 16),
                    crc: u32_at(image, fixed_end + 20),
                }),
                end,
            )
        }
        other => return Err(format!("cell at {at}: unknown value kind {other}")),
    };
    let record = RecordRef {
        value_type,
        value,
        expires_at_ms: (flags & FLAG_EXPIRES != 0).then_some(expires_at),
        revision,
    };
    Ok((key_start, key_end, record, end))
}

/// Writes the cell of `key` and `record` into `out`, which is exactly its
/// length.
fn write_cell(out: &mut [u8], key: &[u8], record: &Record) {
    let key_len = u16::try_from(key.len()).expect("keys are shorter than 64 KiB");
    out[0..2].copy_from_slice(&key_len.to_le_bytes());
    out[2..2 + key.len()].copy_from_slice(key);
    write_record(&mut out[2 + key.len()..], record);
}

/// Writes the part of a cell after its key into `out`, which is exactly
/// its length.
fn write_record(out: &mut [u8], record: &Record) {
    let mut at = 0;
    let kind = match record.value {
        StoredValue::Inline(_) => KIND_INLINE,
        StoredValue::Vlog(_) => KIND_VLOG,
    };
    let flags = if record.expires_at_ms.is_some() {
        FLAG_EXPIRES
    } else {
        0
    };
    out[at..at + 4].copy_from_slice(&[kind, record.value_type as u8, flags, 0]);
    out[at + 4..at + 12].copy_from_slice(&record.expires_at_ms.unwrap_or(0).to_le_bytes());
    out[at + 12..at + 20].copy_from_slice(&record.revision.to_le_bytes());
    at += 20;
    match &record.value {
        StoredValue::Inline(bytes) => {
            out[at..at + 4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            out[at + 4..at + 4 + bytes.len()].copy_from_slice(bytes);
            at += 4 + bytes.len();
        }
        StoredValue::Vlog(pointer) => {
            // Segments are at most 1 GiB (`SEGMENT_BYTES_MAX`).
            let offset = u32::try_from(pointer.offset).expect("a WAL offset fits 32 bits");
            out[at..at + 4].copy_from_slice(&pointer.segment.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&offset.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&pointer.lsn.to_le_bytes());
            out[at + 16..at + 20].copy_from_slice(&pointer.length.to_le_bytes());
            out[at + 20..at + 24].copy_from_slice(&pointer.crc.to_le_bytes());
            at += 24;
        }
    }
    debug_assert_eq!(at, out.len(), "a cell fills exactly its bytes");
}

/// A leaf: its page image.
#[derive(Clone)]
pub(crate) struct Leaf {
    image: Box<[u8]>,
}

impl Default for Leaf {
    fn default() -> Self {
        Leaf::with_capacity(PAGE_HEADER_BYTES)
    }
}

impl PartialEq for Leaf {
    /// Leaves are equal when they hold the same entries, whatever their
    /// buffers' sizes and header bytes.
    fn eq(&self, other: &Leaf) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.cell(i) == other.cell(i))
    }
}

impl Eq for Leaf {}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| (self.key(i), self.record(i))))
            .finish()
    }
}

impl Leaf {
    /// An empty leaf whose buffer is `bytes` long (a page, for a leaf that
    /// will be filled).
    pub(crate) fn with_capacity(bytes: usize) -> Leaf {
        assert!(bytes >= PAGE_HEADER_BYTES, "a leaf buffer holds its header");
        Leaf {
            image: vec![0; bytes].into_boxed_slice(),
        }
    }

    /// A leaf of page size holding `entries`, which ascend and fit.
    pub(crate) fn from_entries<'k>(
        page_bytes: usize,
        entries: impl IntoIterator<Item = (&'k [u8], &'k Record)>,
    ) -> Leaf {
        let mut leaf = Leaf::with_capacity(page_bytes);
        for (key, record) in entries {
            let at = leaf.len();
            leaf.insert(at, key, record);
        }
        leaf
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        usize::from(u16_at(&self.image, COUNT_AT))
    }

    fn used(&self) -> usize {
        u32_at(&self.image, USED_AT) as usize
    }

    fn set_counts(&mut self, len: usize, used: usize) {
        let len = u16::try_from(len).expect("a leaf holds fewer than 65536 entries");
        self.image[COUNT_AT..COUNT_AT + 2].copy_from_slice(&len.to_le_bytes());
        self.image[USED_AT..USED_AT + 4].copy_from_slice(&(used as u32).to_le_bytes());
    }

    /// Bytes the leaf's page takes, header included.
    pub(crate) fn encoded_bytes(&self) -> usize {
        PAGE_HEADER_BYTES + self.used()
    }

    /// Bytes the leaf takes in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.image.len()
    }

    /// Where the cells start.
    fn cells_start(&self) -> usize {
        self.image.len() - (self.used() - LEAF_SLOT_BYTES * self.len())
    }

    fn slot(&self, i: usize) -> usize {
        u32_at(&self.image, PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * i) as usize
    }

    fn set_slot(&mut self, i: usize, offset: usize) {
        let at = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * i;
        self.image[at..at + LEAF_SLOT_BYTES].copy_from_slice(&(offset as u32).to_le_bytes());
    }

    /// Key `i`.
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let at = self.slot(i);
        let len = usize::from(u16_at(&self.image, at));
        &self.image[at + 2..at + 2 + len]
    }

    /// Record `i`, borrowed.
    pub(crate) fn record(&self, i: usize) -> RecordRef<'_> {
        // The image was checked when it entered the cache and every change
        // keeps it well formed: a failure here is a bug, not bad data.
        match parse_cell(&self.image, self.slot(i)) {
            Ok((_, _, record, _)) => record,
            Err(detail) => panic!("a cached leaf broke its layout: {detail}"),
        }
    }

    /// Bytes entry `i` takes: its slot and its cell.
    pub(crate) fn entry_bytes(&self, i: usize) -> usize {
        LEAF_SLOT_BYTES + self.cell(i).len()
    }

    /// Entry `i`'s cell bytes.
    fn cell(&self, i: usize) -> &[u8] {
        let at = self.slot(i);
        match parse_cell(&self.image, at) {
            Ok((_, _, _, end)) => &self.image[at..end],
            Err(detail) => panic!("a cached leaf broke its layout: {detail}"),
        }
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], RecordRef<'_>)> + '_ {
        (0..self.len()).map(|i| (self.key(i), self.record(i)))
    }

    /// Where `key` is (`Ok`) or would go (`Err`), by a plain binary search.
    pub(crate) fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.key(mid).cmp(key) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// Where `key` is (`Ok`) or would go (`Err`), found through `index`,
    /// which must have been built from this leaf.
    pub(crate) fn find(&self, index: &SearchIndex, key: &[u8]) -> Result<usize, usize> {
        let found = index.find(key, |i| self.key(i));
        crate::expensive_assert_eq!(
            found,
            self.search(key),
            "the search index disagrees with the leaf"
        );
        found
    }

    /// Makes room for `bytes` more of slots and cells, growing the buffer
    /// (to the next power of two) if the gap is too small.
    fn reserve(&mut self, bytes: usize) {
        let gap = self.cells_start() - (PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * self.len());
        if gap >= bytes {
            return;
        }
        let needed = PAGE_HEADER_BYTES + self.used() + bytes;
        let grown = needed.next_power_of_two().max(GROWN_BYTES_MIN);
        let mut image = vec![0; grown].into_boxed_slice();
        let slots_end = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * self.len();
        image[..slots_end].copy_from_slice(&self.image[..slots_end]);
        let start = self.cells_start();
        let shift = grown - self.image.len();
        image[start + shift..].copy_from_slice(&self.image[start..]);
        self.image = image;
        for i in 0..self.len() {
            let offset = self.slot(i);
            self.set_slot(i, offset + shift);
        }
    }

    /// Inserts `key` with `record` as entry `at` (keys must stay ascending).
    pub(crate) fn insert(&mut self, at: usize, key: &[u8], record: &Record) {
        let len = self.len();
        debug_assert!(at <= len);
        debug_assert!(at == 0 || self.key(at - 1) < key, "keys ascend");
        debug_assert!(at == len || key < self.key(at), "keys ascend");
        let cell_bytes = 2 + key.len() + record.encoded_bytes();
        self.reserve(LEAF_SLOT_BYTES + cell_bytes);
        let cell_at = self.cells_start() - cell_bytes;
        write_cell(&mut self.image[cell_at..cell_at + cell_bytes], key, record);
        let slot_at = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * at;
        let slots_end = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * len;
        self.image
            .copy_within(slot_at..slots_end, slot_at + LEAF_SLOT_BYTES);
        self.set_slot(at, cell_at);
        let used = self.used() + LEAF_SLOT_BYTES + cell_bytes;
        self.set_counts(len + 1, used);
    }

    /// Removes entry `at`: the cells below its cell move up over it, so the
    /// cells stay packed and the gap zero.
    pub(crate) fn remove(&mut self, at: usize) {
        self.remove_with(at, false);
    }

    /// [`Leaf::remove`]; with `unshifted` (sabotage
    /// `slot-offsets-unshifted`, tests only) the moved cells' slots keep
    /// their old offsets.
    pub(crate) fn remove_with(&mut self, at: usize, unshifted: bool) {
        let len = self.len();
        let start = self.cells_start();
        let cell_at = self.slot(at);
        let cell_bytes = self.cell(at).len();
        self.image.copy_within(start..cell_at, start + cell_bytes);
        self.image[start..start + cell_bytes].fill(0);
        for i in 0..len {
            let offset = self.slot(i);
            if offset < cell_at && !unshifted {
                self.set_slot(i, offset + cell_bytes);
            }
        }
        let slot_at = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * at;
        let slots_end = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * len;
        self.image
            .copy_within(slot_at + LEAF_SLOT_BYTES..slots_end, slot_at);
        self.image[slots_end - LEAF_SLOT_BYTES..slots_end].fill(0);
        let used = self.used() - LEAF_SLOT_BYTES - cell_bytes;
        self.set_counts(len - 1, used);
    }

    /// Replaces entry `at`'s record; a cell of the same length is
    /// overwritten where it is.
    pub(crate) fn replace(&mut self, at: usize, record: &Record) {
        let cell_at = self.slot(at);
        let old_bytes = self.cell(at).len();
        let key_len = self.key(at).len();
        if 2 + key_len + record.encoded_bytes() == old_bytes {
            write_record(
                &mut self.image[cell_at + 2 + key_len..cell_at + old_bytes],
                record,
            );
            return;
        }
        let key = self.key(at).to_vec();
        self.remove(at);
        self.insert(at, &key, record);
    }

    /// Moves entries `at..` into a new leaf of `page_bytes`; this leaf is
    /// rebuilt at `page_bytes` with the rest.
    pub(crate) fn split_off(&mut self, at: usize, page_bytes: usize) -> Leaf {
        let right = self.copy_range(at..self.len(), page_bytes);
        *self = self.copy_range(0..at, page_bytes);
        right
    }

    /// A leaf of `bytes` holding entries `range` of this one.
    fn copy_range(&self, range: std::ops::Range<usize>, bytes: usize) -> Leaf {
        let mut leaf = Leaf::with_capacity(bytes);
        let cells: usize = range.clone().map(|i| self.cell(i).len()).sum();
        let needed = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * range.len() + cells;
        if needed > bytes {
            leaf = Leaf::with_capacity(needed.next_power_of_two());
        }
        for i in range {
            leaf.push_cell(self.cell(i));
        }
        leaf
    }

    /// Appends a cell (its key above every key here).
    fn push_cell(&mut self, cell: &[u8]) {
        let len = self.len();
        self.reserve(LEAF_SLOT_BYTES + cell.len());
        let cell_at = self.cells_start() - cell.len();
        self.image[cell_at..cell_at + cell.len()].copy_from_slice(cell);
        self.set_slot(len, cell_at);
        let used = self.used() + LEAF_SLOT_BYTES + cell.len();
        self.set_counts(len + 1, used);
        debug_assert!(len == 0 || self.key(len - 1) < self.key(len), "keys ascend");
    }

    /// Appends every entry of `right`, whose keys are all above this
    /// leaf's.
    pub(crate) fn append(&mut self, right: &Leaf) {
        for i in 0..right.len() {
            self.push_cell(right.cell(i));
        }
    }

    /// Writes the leaf's image into `page` (one page, which the leaf must
    /// fit), the cells at the page's end; the caller writes the rest of the
    /// header. Returns the slot count and the bytes used after the header.
    pub(crate) fn write_image(&self, page: &mut [u8]) -> (u16, u32) {
        let len = self.len();
        let slots_end = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * len;
        let start = self.cells_start();
        let cells = self.image.len() - start;
        assert!(
            slots_end + cells <= page.len(),
            "leaf of {} bytes overflows its page",
            slots_end + cells
        );
        let page_start = page.len() - cells;
        page[COUNT_AT..PAGE_HEADER_BYTES].copy_from_slice(&self.image[COUNT_AT..PAGE_HEADER_BYTES]);
        page[PAGE_HEADER_BYTES..slots_end]
            .copy_from_slice(&self.image[PAGE_HEADER_BYTES..slots_end]);
        page[slots_end..page_start].fill(0);
        page[page_start..].copy_from_slice(&self.image[start..]);
        if page_start != start {
            for i in 0..len {
                let at = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * i;
                let offset = u32_at(page, at) as usize - start + page_start;
                page[at..at + LEAF_SLOT_BYTES].copy_from_slice(&(offset as u32).to_le_bytes());
            }
        }
        (
            u16::try_from(len).expect("a leaf holds fewer than 65536 entries"),
            self.used() as u32,
        )
    }

    /// Takes a verified leaf page (CRC, id and the parent's checksum
    /// already checked) as a leaf, after checking its structure: slots
    /// inside the page, cells inside the cell area tiling it without
    /// overlap, every length within its cell, known kinds and types, keys
    /// strictly ascending and the gap zero. Nothing is copied.
    pub(crate) fn from_page(
        id: PageId,
        count: u16,
        used: u32,
        page: Vec<u8>,
    ) -> Result<Leaf, PageError> {
        let layout = |detail: String| PageError::Layout { page: id, detail };
        let len = usize::from(count);
        let used = used as usize;
        let slots_end = PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * len;
        if used < LEAF_SLOT_BYTES * len || PAGE_HEADER_BYTES + used > page.len() {
            return Err(layout(format!(
                "{len} slots and {used} bytes used do not fit in the page"
            )));
        }
        let start = page.len() - (used - LEAF_SLOT_BYTES * len);
        if page[slots_end..start].iter().any(|byte| *byte != 0) {
            return Err(layout("bytes between the slots and the cells".to_owned()));
        }
        // The cells tile the area: walking it cell by cell from its start
        // must meet exactly the slots' offsets, each once, and end at the
        // page's end. Bit `o - start` marks a slot's offset `o`.
        let mut starts = vec![0u64; (page.len() - start).div_ceil(64)];
        let mut previous: Option<&[u8]> = None;
        for i in 0..len {
            let at = u32_at(&page, PAGE_HEADER_BYTES + LEAF_SLOT_BYTES * i) as usize;
            if at < start || at >= page.len() {
                return Err(layout(format!(
                    "slot {i} points at {at}, outside the cells"
                )));
            }
            let (word, bit) = ((at - start) / 64, (at - start) % 64);
            if starts[word] & (1 << bit) != 0 {
                return Err(layout(format!("two slots point at {at}")));
            }
            starts[word] |= 1 << bit;
            let (key_start, key_end, _, _) = parse_cell(&page, at).map_err(layout)?;
            let key = &page[key_start..key_end];
            if previous.is_some_and(|previous| previous >= key) {
                return Err(layout("leaf keys out of order".to_owned()));
            }
            previous = Some(key);
        }
        let mut covered = start;
        let mut cells = 0;
        while covered < page.len() {
            let (word, bit) = ((covered - start) / 64, (covered - start) % 64);
            if starts[word] & (1 << bit) == 0 {
                return Err(layout(format!(
                    "cells overlap or leave a hole at {covered}"
                )));
            }
            covered = parse_cell(&page, covered).map_err(layout)?.3;
            cells += 1;
        }
        if covered != page.len() || cells != len {
            return Err(layout(format!(
                "{cells} cells end at {covered}, not {len} at the page's end"
            )));
        }
        Ok(Leaf {
            image: page.into_boxed_slice(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8], revision: u64) -> Record {
        Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(value.to_vec()),
            expires_at_ms: Some(7).filter(|_| revision.is_multiple_of(3)),
            revision,
        }
    }

    /// Checks a leaf against a model after every change, and its image
    /// against the structural check.
    fn agree(leaf: &Leaf, model: &std::collections::BTreeMap<Vec<u8>, Record>) {
        assert_eq!(leaf.len(), model.len());
        for (i, (key, record)) in model.iter().enumerate() {
            assert_eq!(leaf.key(i), key.as_slice());
            assert!(leaf.record(i).matches(record));
            assert_eq!(leaf.record(i).to_record(), *record);
        }
        let mut page = vec![0; 8192];
        let (count, used) = leaf.write_image(&mut page);
        let copy = Leaf::from_page(1, count, used, page).expect("a written leaf verifies");
        assert_eq!(&copy, leaf);
        assert_eq!(copy.encoded_bytes(), leaf.encoded_bytes());
    }

    #[test]
    fn inserts_replacements_and_removals_keep_the_image_well_formed() {
        let mut leaf = Leaf::default();
        let mut model = std::collections::BTreeMap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for step in 0..3000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("k{:03}", state % 97).into_bytes();
            let value = vec![b'v'; (state >> 20) as usize % 40];
            match (leaf.search(&key), (state >> 40) % 3) {
                (Ok(at), 0) => {
                    leaf.remove(at);
                    model.remove(&key);
                }
                (Ok(at), _) => {
                    leaf.replace(at, &record(&value, step));
                    model.insert(key, record(&value, step));
                }
                (Err(at), _) => {
                    leaf.insert(at, &key, &record(&value, step));
                    model.insert(key, record(&value, step));
                }
            }
            if step % 50 == 0 {
                agree(&leaf, &model);
            }
        }
        agree(&leaf, &model);
        let total = leaf.len();
        let right = leaf.split_off(total / 2, 8192);
        assert_eq!(leaf.len() + right.len(), total);
        leaf.append(&right);
        agree(&leaf, &model);
    }

    #[test]
    fn a_damaged_image_is_a_layout_error() {
        let mut leaf = Leaf::default();
        leaf.insert(0, b"a", &record(b"one", 1));
        leaf.insert(1, b"b", &record(b"two", 2));
        let written = |leaf: &Leaf| {
            let mut page = vec![0; 4096];
            let (count, used) = leaf.write_image(&mut page);
            (page, count, used)
        };
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Damage)> = vec![
            (
                "slot outside",
                Box::new(|page: &mut Vec<u8>| page[32..36].copy_from_slice(&5000u32.to_le_bytes())),
            ),
            (
                "slots swapped",
                Box::new(|page: &mut Vec<u8>| {
                    let first: Vec<u8> = page[32..36].to_vec();
                    page.copy_within(36..40, 32);
                    page[36..40].copy_from_slice(&first);
                }),
            ),
            ("gap not zero", Box::new(|page: &mut Vec<u8>| page[100] = 1)),
            (
                "key length past the cell",
                Box::new(|page: &mut Vec<u8>| {
                    let at = u32_at(page, 32) as usize;
                    page[at..at + 2].copy_from_slice(&4000u16.to_le_bytes());
                }),
            ),
            (
                "both slots at one cell",
                Box::new(|page: &mut Vec<u8>| page.copy_within(32..36, 36)),
            ),
        ];
        for (name, damage) in cases {
            let (mut page, count, used) = written(&leaf);
            damage(&mut page);
            assert!(
                matches!(
                    Leaf::from_page(3, count, used, page),
                    Err(PageError::Layout { .. })
                ),
                "{name} was accepted"
            );
        }
        let (page, count, used) = written(&leaf);
        assert!(Leaf::from_page(3, count, used + 4, page.clone()).is_err());
        assert!(Leaf::from_page(3, count + 1, used, page).is_err());
    }
}
