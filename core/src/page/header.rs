//! The 32-byte page header and page verification.
//!
//! Layout (little-endian; `disk.fbs` and docs/design.md say the same):
//! `crc u32 | type u8 | version u8 | level u16 | id u64 | lsn u64 |
//! count u16 | reserved u16 | used u32`. The CRC covers the whole page
//! with its own four bytes zeroed.

use super::PageId;

/// Bytes of the header at the start of every page.
pub const PAGE_HEADER_BYTES: usize = 32;

const LAYOUT_VERSION: u8 = 2;

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    /// Keys and records.
    Leaf = 1,
    /// Separator keys and child pointers.
    Internal = 2,
    /// A link of the free-list chain.
    FreeList = 3,
}

impl PageType {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(PageType::Leaf),
            2 => Some(PageType::Internal),
            3 => Some(PageType::FreeList),
            _ => None,
        }
    }
}

/// Why a page read from disk was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The page's bytes do not match its own CRC (torn or corrupted).
    #[error("page {page}: CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc {
        /// The page read.
        page: PageId,
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The page is valid on its own but is not the one its parent (or the
    /// superblock) recorded: stale, lost or misdirected write.
    #[error(
        "page {page}: checksum {found:#010x} differs from {expected:#010x} recorded by its parent"
    )]
    ParentChecksum {
        /// The page read.
        page: PageId,
        /// Checksum the parent recorded.
        expected: u32,
        /// Checksum of the page found.
        found: u32,
    },
    /// The page names another page id: it was written to the wrong place.
    #[error("page {page}: header names page {found}")]
    WrongId {
        /// The page read.
        page: PageId,
        /// The id in its header.
        found: PageId,
    },
    /// The page is not of the type its position requires.
    #[error("page {page}: expected a {expected:?} page, found type byte {found}")]
    WrongType {
        /// The page read.
        page: PageId,
        /// The type required.
        expected: PageType,
        /// The type byte found.
        found: u8,
    },
    /// The page is not at the level its position requires: the tree's
    /// leaves are not all at one depth.
    #[error("page {page}: at level {found} where the tree needs level {expected}")]
    WrongLevel {
        /// The page read.
        page: PageId,
        /// The level its parent implies.
        expected: u16,
        /// The level in its header.
        found: u16,
    },
    /// The page's contents break the layout (lengths, order).
    #[error("page {page}: {detail}")]
    Layout {
        /// The page read.
        page: PageId,
        /// What is wrong.
        detail: String,
    },
}

/// The decoded fixed header of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// What the page holds.
    pub page_type: PageType,
    /// 0 for leaves, child level + 1 for internal pages.
    pub level: u16,
    /// The page's own id.
    pub id: PageId,
    /// Highest LSN whose change the page holds.
    pub lsn: u64,
    /// Number of entries.
    pub count: u16,
    /// Bytes used after the header.
    pub used: u32,
}

impl PageHeader {
    /// Writes the header into the first [`PAGE_HEADER_BYTES`] of `page`,
    /// leaving the CRC field zero (see [`seal`]).
    pub(crate) fn write(&self, page: &mut [u8]) {
        page[0..4].fill(0);
        page[4] = self.page_type as u8;
        page[5] = LAYOUT_VERSION;
        page[6..8].copy_from_slice(&self.level.to_le_bytes());
        page[8..16].copy_from_slice(&self.id.to_le_bytes());
        page[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        page[24..26].copy_from_slice(&self.count.to_le_bytes());
        page[26..28].fill(0);
        page[28..32].copy_from_slice(&self.used.to_le_bytes());
    }
}

/// CRC32 of a page with its CRC field taken as zero.
pub(crate) fn page_crc(page: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[0; 4]);
    hasher.update(&page[4..]);
    hasher.finalize()
}

/// Stores the page's CRC in its header and returns it: the checksum its
/// parent (or the superblock) records.
pub(crate) fn seal(page: &mut [u8]) -> u32 {
    let crc = page_crc(page);
    page[0..4].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// The little-endian `u16` at `at` (which the caller has bounds-checked).
pub(crate) fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// The little-endian `u32` at `at`.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The little-endian `u64` at `at`.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Checks a page read from `id`'s location against its own CRC, its id, and
/// the checksum `expected_crc` its parent recorded, then decodes its header.
/// The caller has ensured `page` is exactly one page long.
pub(crate) fn verify(page: &[u8], id: PageId, expected_crc: u32) -> Result<PageHeader, PageError> {
    debug_assert!(page.len() >= PAGE_HEADER_BYTES);
    let stored = u32_at(page, 0);
    let computed = page_crc(page);
    if stored != computed {
        return Err(PageError::Crc {
            page: id,
            stored,
            computed,
        });
    }
    let found = u64_at(page, 8);
    if found != id {
        return Err(PageError::WrongId { page: id, found });
    }
    if stored != expected_crc {
        return Err(PageError::ParentChecksum {
            page: id,
            expected: expected_crc,
            found: stored,
        });
    }
    let layout = |detail: String| PageError::Layout { page: id, detail };
    let page_type = PageType::from_byte(page[4])
        .ok_or_else(|| layout(format!("unknown page type byte {}", page[4])))?;
    if page[5] != LAYOUT_VERSION {
        return Err(layout(format!("unknown layout version {}", page[5])));
    }
    let used = u32_at(page, 28);
    if used as usize > page.len() - PAGE_HEADER_BYTES {
        return Err(layout(format!("{used} bytes used do not fit in the page")));
    }
    Ok(PageHeader {
        page_type,
        level: u16_at(page, 6),
        id,
        lsn: u64_at(page, 16),
        count: u16_at(page, 24),
        used,
    })
}

/// A bounds-checked little-endian reader over a page body: every read past
/// the end is a layout error, never a panic.
pub(crate) struct BodyReader<'a> {
    bytes: &'a [u8],
    at: usize,
    page: PageId,
}

impl<'a> BodyReader<'a> {
    pub(crate) fn new(bytes: &'a [u8], page: PageId) -> Self {
        BodyReader { bytes, at: 0, page }
    }

    pub(crate) fn error(&self, detail: impl Into<String>) -> PageError {
        PageError::Layout {
            page: self.page,
            detail: detail.into(),
        }
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], PageError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(format!(
                "entry at body offset {} runs past the page",
                self.at
            )));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, PageError> {
        Ok(u16_at(self.take(2)?, 0))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, PageError> {
        Ok(u32_at(self.take(4)?, 0))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, PageError> {
        Ok(u64_at(self.take(8)?, 0))
    }

    pub(crate) fn finished(&self) -> bool {
        self.at == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_page(id: PageId) -> (Vec<u8>, u32) {
        let mut page = vec![0; 4096];
        let header = PageHeader {
            page_type: PageType::Leaf,
            level: 0,
            id,
            lsn: 5,
            count: 0,
            used: 0,
        };
        header.write(&mut page);
        let crc = seal(&mut page);
        (page, crc)
    }

    #[test]
    fn a_sealed_page_verifies_and_round_trips_its_header() {
        let (page, crc) = sealed_page(7);
        let header = verify(&page, 7, crc).expect("valid page");
        assert_eq!(
            (header.id, header.lsn, header.page_type),
            (7, 5, PageType::Leaf)
        );
    }

    #[test]
    fn a_flipped_bit_is_a_crc_error() {
        let (mut page, crc) = sealed_page(7);
        page[100] ^= 1;
        assert!(matches!(verify(&page, 7, crc), Err(PageError::Crc { .. })));
    }

    #[test]
    fn a_page_at_the_wrong_place_is_refused_by_id() {
        let (page, crc) = sealed_page(7);
        assert!(matches!(
            verify(&page, 8, crc),
            Err(PageError::WrongId { found: 7, .. })
        ));
    }

    #[test]
    fn a_stale_but_valid_page_is_refused_by_the_parent_checksum() {
        let (page, crc) = sealed_page(7);
        assert!(matches!(
            verify(&page, 7, crc ^ 1),
            Err(PageError::ParentChecksum { .. })
        ));
    }
}
