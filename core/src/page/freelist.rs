//! Free-list pages: the persistent record of which pages are free as of a
//! superblock.
//!
//! Layout after the page header: `u64 next page id (0 ends the chain),
//! u32 next page's CRC`, then `count` page ids (`u64` each). The superblock
//! records the first page's id and CRC, and each page the next one's, so the
//! chain is checked end to end like the tree.

use super::header::{BodyReader, PageHeader, seal, verify};
use super::{PAGE_HEADER_BYTES, PageError, PageId, PageType};

const LINK_BYTES: usize = 8 + 4;

/// How many page ids one free-list page holds.
pub(crate) fn ids_per_page(page_bytes: u32) -> usize {
    (page_bytes as usize - PAGE_HEADER_BYTES - LINK_BYTES) / 8
}

/// One decoded free-list page.
pub(crate) struct FreeListPage {
    pub(crate) next: PageId,
    pub(crate) next_crc: u32,
    pub(crate) ids: Vec<PageId>,
}

/// Encodes one free-list page into `page` and returns its CRC.
pub(crate) fn encode(
    id: PageId,
    next: PageId,
    next_crc: u32,
    ids: &[PageId],
    page: &mut [u8],
) -> u32 {
    assert!(ids.len() <= ids_per_page(page.len() as u32));
    page.fill(0);
    let mut at = PAGE_HEADER_BYTES;
    page[at..at + 8].copy_from_slice(&next.to_le_bytes());
    page[at + 8..at + 12].copy_from_slice(&next_crc.to_le_bytes());
    at += LINK_BYTES;
    for free in ids {
        page[at..at + 8].copy_from_slice(&free.to_le_bytes());
        at += 8;
    }
    let header = PageHeader {
        page_type: PageType::FreeList,
        level: 0,
        id,
        lsn: 0,
        count: u16::try_from(ids.len()).expect("fewer than 65536 ids per page"),
        used: (at - PAGE_HEADER_BYTES) as u32,
    };
    header.write(page);
    seal(page)
}

/// Verifies and decodes a free-list page read from `id`.
pub(crate) fn decode(
    page: &[u8],
    id: PageId,
    expected_crc: u32,
) -> Result<FreeListPage, PageError> {
    let header = verify(page, id, expected_crc)?;
    if header.page_type != PageType::FreeList {
        return Err(PageError::WrongType {
            page: id,
            expected: PageType::FreeList,
            found: header.page_type as u8,
        });
    }
    let body = &page[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + header.used as usize];
    let mut reader = BodyReader::new(body, id);
    let next = reader.u64()?;
    let next_crc = reader.u32()?;
    let mut ids = Vec::with_capacity(usize::from(header.count));
    for _ in 0..header.count {
        ids.push(reader.u64()?);
    }
    if !reader.finished() {
        return Err(reader.error("bytes left after the last free page id"));
    }
    Ok(FreeListPage {
        next,
        next_crc,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_list_page_round_trips() {
        let mut page = vec![0; 4096];
        let crc = encode(3, 9, 77, &[4, 5, 8], &mut page);
        let decoded = decode(&page, 3, crc).expect("valid");
        assert_eq!(
            (decoded.next, decoded.next_crc, decoded.ids),
            (9, 77, vec![4, 5, 8])
        );
        assert!(decode(&page, 4, crc).is_err(), "read from the wrong place");
    }
}
