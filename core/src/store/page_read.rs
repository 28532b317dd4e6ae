//! Reading pages from `data.pages`: the one place bytes from the page file
//! become a page, and only after they verify.
//!
//! A page is returned only when its length, CRC, id, the checksum its parent
//! (or the superblock) recorded, its type and its level all check out;
//! anything else is a typed corruption error. A bad read may be transient
//! (the disk returned damaged bytes once), a bad page is not, so callers
//! that cannot restart from the root retry with [`retrying`].

use std::future::Future;
use std::path::Path;

use crate::btree::Need;
use crate::btree::node::Node;
use crate::env::File;
use crate::page::freelist::{self, FreeListPage};
use crate::page::header::verify;
use crate::page::{PageError, PageId, PageType};

use super::{PAGES_FILE, READ_RETRIES_MAX, StoreError};

async fn read_page_bytes<F: File>(
    pages: &F,
    path: &Path,
    page_bytes: u32,
    id: PageId,
) -> Result<Vec<u8>, StoreError> {
    // An unreadable sector reads as bytes that fail verification: a page
    // the medium lost is a corrupt page, not an outage.
    let bytes = crate::env::read_salvaging(pages, id * u64::from(page_bytes), page_bytes as usize)
        .await
        .map_err(|error| StoreError::io("read page", path, error))?
        .bytes;
    if bytes.len() != page_bytes as usize {
        return Err(StoreError::corrupt(
            PAGES_FILE,
            format!("page {id} lies past the end of the file"),
        ));
    }
    Ok(bytes)
}

/// Reads and verifies the tree page `need` names.
pub(crate) async fn read_tree_page<F: File>(
    pages: &F,
    path: &Path,
    page_bytes: u32,
    need: Need,
) -> Result<Node, StoreError> {
    let bytes = read_page_bytes(pages, path, page_bytes, need.id).await?;
    let header = verify(&bytes, need.id, need.crc)?;
    let expected = if need.level == 0 {
        PageType::Leaf
    } else {
        PageType::Internal
    };
    if header.page_type != expected {
        return Err(PageError::WrongType {
            page: need.id,
            expected,
            found: header.page_type as u8,
        }
        .into());
    }
    if header.level != need.level {
        return Err(PageError::WrongLevel {
            page: need.id,
            expected: need.level,
            found: header.level,
        }
        .into());
    }
    Ok(Node::decode(&header, bytes)?)
}

/// Reads and verifies the free-list page `id`, whose CRC the previous link
/// (or the superblock) recorded as `crc`.
pub(crate) async fn read_free_list_page<F: File>(
    pages: &F,
    path: &Path,
    page_bytes: u32,
    id: PageId,
    crc: u32,
) -> Result<FreeListPage, StoreError> {
    let bytes = read_page_bytes(pages, path, page_bytes, id).await?;
    Ok(freelist::decode(&bytes, id, crc)?)
}

/// Runs `read` until it returns something other than a corruption error,
/// at most `1 + READ_RETRIES_MAX` times.
pub(crate) async fn retrying<T, R: Future<Output = Result<T, StoreError>>>(
    mut read: impl FnMut() -> R,
) -> Result<T, StoreError> {
    let mut failures = 0;
    loop {
        match read().await {
            Err(error) if error.is_corruption() && failures < READ_RETRIES_MAX => failures += 1,
            outcome => return outcome,
        }
    }
}
