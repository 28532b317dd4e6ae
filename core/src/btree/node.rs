//! B+Tree nodes in memory and their page encoding.
//!
//! A leaf is its page image ([`Leaf`], `leaf.rs`): searched and read where
//! it lies, written by a copy. An internal node is decoded once when its
//! page is read and encoded once when a checkpoint writes it (internal
//! pages are under 1 % of a tree's): `u64 first child, u32 its CRC`, then
//! per separator `u16 key length, key, u64 child, u32 child CRC`
//! (design 5.1).
//!
//! Decoding checks every length against the page and the key order within
//! the page, so a page that passed its CRC but was written by a buggy
//! encoder still cannot make the tree misbehave.

pub(crate) use super::leaf::Leaf;
use super::leaf::{INLINE_LENGTH_BYTES, LEAF_CELL_OVERHEAD_BYTES, LEAF_SLOT_BYTES};
use super::search::SearchIndex;
use crate::page::header::{BodyReader, PageHeader, seal};
use crate::page::{PAGE_HEADER_BYTES, PageError, PageId, PageType};

/// Fixed bytes of an internal entry besides its separator key.
pub(crate) const INTERNAL_ENTRY_OVERHEAD_BYTES: usize = 2 + 8 + 4;
/// Bytes of the first child pointer of an internal page.
pub(crate) const INTERNAL_FIRST_CHILD_BYTES: usize = 8 + 4;

/// The longest key a tree with this page size accepts: an internal page
/// must hold at least four separators of this length (SPEC 1), after its
/// header and first child.
pub const fn key_bytes_max(page_bytes: u32) -> usize {
    (page_bytes as usize - PAGE_HEADER_BYTES - INTERNAL_FIRST_CHILD_BYTES) / 4
        - INTERNAL_ENTRY_OVERHEAD_BYTES
}

/// The largest inline value a tree with this page size can hold: a leaf
/// must fit two entries of the longest key and the largest inline value,
/// so a split always leaves both halves within a page.
pub const fn inline_value_bytes_limit(page_bytes: u32) -> usize {
    (page_bytes as usize - PAGE_HEADER_BYTES) / 2
        - LEAF_SLOT_BYTES
        - LEAF_CELL_OVERHEAD_BYTES
        - INLINE_LENGTH_BYTES
        - key_bytes_max(page_bytes)
}

/// Keys up to this length live inside the node's entry array, so a
/// binary search compares them without chasing a pointer per probe; longer
/// keys spill to the heap.
pub(crate) const KEY_INLINE_BYTES: usize = 24;

/// A key as a node holds it.
pub(crate) type Key = smallvec::SmallVec<[u8; KEY_INLINE_BYTES]>;

/// A child pointer of an internal node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Child {
    pub(crate) id: PageId,
    /// The child's page CRC as last written. Only meaningful while the child
    /// is clean; a checkpoint fills it in for the children it writes.
    pub(crate) crc: u32,
}

/// An internal node: `children.len() == keys.len() + 1`; child `i + 1`
/// holds keys at or above `keys[i]`, child 0 keys below `keys[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Internal {
    /// 1 for the parents of leaves.
    pub(crate) level: u16,
    pub(crate) keys: Vec<Key>,
    pub(crate) children: Vec<Child>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Leaf(Leaf),
    Internal(Internal),
}

/// A decoded tree page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Highest LSN of a change this node holds.
    pub(crate) lsn: u64,
    pub(crate) body: Body,
}

impl Internal {
    /// Index of the child whose range holds `key`.
    pub(crate) fn child_index(&self, key: &[u8]) -> usize {
        self.keys
            .partition_point(|separator| separator.as_slice() <= key)
    }
}

impl Node {
    /// The search index of this node.
    pub(crate) fn search_index(&self) -> SearchIndex {
        match &self.body {
            Body::Leaf(leaf) => SearchIndex::build(0, leaf.len(), |i| leaf.key(i), &[]),
            Body::Internal(internal) => SearchIndex::build(
                internal.level,
                internal.keys.len(),
                |i| internal.keys[i].as_slice(),
                &internal.children,
            ),
        }
    }

    /// The child of this internal node whose range holds `key`, found
    /// through `index` (built from this node): the node's own keys are
    /// read only where heads tie. Returns its position too.
    pub(crate) fn child_at_by(&self, index: &SearchIndex, key: &[u8]) -> (usize, Child) {
        let at = self.child_index_by(index, key);
        // Reading the node's own children would touch the node the index
        // exists to skip: a cross-check for the simulator, not production.
        crate::expensive_assert_eq!(
            Some(index.child(at)),
            match &self.body {
                Body::Internal(internal) => internal.children.get(at).copied(),
                Body::Leaf(_) => None,
            },
            "the search index's children disagree with the node's"
        );
        (at, index.child(at))
    }

    /// [`Internal::child_index`] of this internal node, through `index`.
    pub(crate) fn child_index_by(&self, index: &SearchIndex, key: &[u8]) -> usize {
        let Body::Internal(internal) = &self.body else {
            unreachable!("a child of a leaf")
        };
        let at = index.upper_bound(key, |i| internal.keys[i].as_slice());
        crate::expensive_assert_eq!(
            at,
            internal.child_index(key),
            "the search index disagrees with the node"
        );
        at
    }

    pub(crate) fn empty_leaf() -> Node {
        Node {
            lsn: 0,
            body: Body::Leaf(Leaf::default()),
        }
    }

    pub(crate) fn level(&self) -> u16 {
        match &self.body {
            Body::Leaf(_) => 0,
            Body::Internal(internal) => internal.level,
        }
    }

    /// Bytes the node takes in memory, by estimate: a leaf's image, an
    /// internal node's arrays at their capacity and keys too long to live
    /// inline (the allocator's own overhead aside). What the page cache
    /// charges.
    pub(crate) fn memory_bytes(&self) -> usize {
        let spilled = |key: &Key| if key.spilled() { key.capacity() } else { 0 };
        std::mem::size_of::<Node>()
            + match &self.body {
                Body::Leaf(leaf) => leaf.memory_bytes(),
                Body::Internal(internal) => {
                    internal.keys.capacity() * std::mem::size_of::<Key>()
                        + internal.keys.iter().map(spilled).sum::<usize>()
                        + internal.children.capacity() * std::mem::size_of::<Child>()
                }
            }
    }

    /// Bytes the node's page encoding takes, header included.
    pub(crate) fn encoded_bytes(&self) -> usize {
        match &self.body {
            Body::Leaf(leaf) => leaf.encoded_bytes(),
            Body::Internal(internal) => {
                PAGE_HEADER_BYTES
                    + INTERNAL_FIRST_CHILD_BYTES
                    + internal
                        .keys
                        .iter()
                        .map(|key| INTERNAL_ENTRY_OVERHEAD_BYTES + key.len())
                        .sum::<usize>()
            }
        }
    }

    /// Encodes the node as page `id` into `page` (one page long, which the
    /// node must fit) and returns the page's CRC.
    pub(crate) fn encode(&self, id: PageId, page: &mut [u8]) -> u32 {
        let (page_type, count, used) = match &self.body {
            Body::Leaf(leaf) => {
                let (count, used) = leaf.write_image(page);
                (PageType::Leaf, count, used)
            }
            Body::Internal(internal) => {
                let used = self.encoded_bytes() - PAGE_HEADER_BYTES;
                assert!(
                    used + PAGE_HEADER_BYTES <= page.len(),
                    "node of {used} bytes overflows its page"
                );
                debug_assert_eq!(internal.children.len(), internal.keys.len() + 1);
                page[PAGE_HEADER_BYTES..].fill(0);
                let mut at = PAGE_HEADER_BYTES;
                let mut put = |bytes: &[u8]| {
                    page[at..at + bytes.len()].copy_from_slice(bytes);
                    at += bytes.len();
                };
                put(&internal.children[0].id.to_le_bytes());
                put(&internal.children[0].crc.to_le_bytes());
                for (key, child) in internal.keys.iter().zip(&internal.children[1..]) {
                    put(&(key.len() as u16).to_le_bytes());
                    put(key);
                    put(&child.id.to_le_bytes());
                    put(&child.crc.to_le_bytes());
                }
                debug_assert_eq!(at, PAGE_HEADER_BYTES + used);
                let count = u16::try_from(internal.keys.len())
                    .expect("a page holds fewer than 65536 entries");
                (PageType::Internal, count, used as u32)
            }
        };
        let header = PageHeader {
            page_type,
            level: self.level(),
            id,
            lsn: self.lsn,
            count,
            used,
        };
        header.write(page);
        seal(page)
    }

    /// Decodes a verified tree page (see [`crate::page::header::verify`]);
    /// a leaf keeps `page` as its image.
    pub(crate) fn decode(header: &PageHeader, page: Vec<u8>) -> Result<Node, PageError> {
        let node_body = match header.page_type {
            PageType::Leaf => {
                if header.level != 0 {
                    return Err(PageError::Layout {
                        page: header.id,
                        detail: format!("leaf page has level {}", header.level),
                    });
                }
                Body::Leaf(Leaf::from_page(header.id, header.count, header.used, page)?)
            }
            PageType::Internal => {
                let body = &page[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + header.used as usize];
                let mut reader = BodyReader::new(body, header.id);
                let count = usize::from(header.count);
                if header.level == 0 {
                    return Err(reader.error("internal page has level 0"));
                }
                let mut keys: Vec<Key> = Vec::with_capacity(count);
                let mut children = Vec::with_capacity(count + 1);
                children.push(Child {
                    id: reader.u64()?,
                    crc: reader.u32()?,
                });
                for _ in 0..count {
                    let key_len = usize::from(reader.u16()?);
                    let key = Key::from_slice(reader.take(key_len)?);
                    if keys.last().is_some_and(|previous| *previous >= key) {
                        return Err(reader.error("separator keys out of order"));
                    }
                    keys.push(key);
                    children.push(Child {
                        id: reader.u64()?,
                        crc: reader.u32()?,
                    });
                }
                if count == 0 {
                    return Err(reader.error("internal page without separators"));
                }
                if !reader.finished() {
                    return Err(reader.error("bytes left after the last entry"));
                }
                Body::Internal(Internal {
                    level: header.level,
                    keys,
                    children,
                })
            }
            PageType::FreeList => {
                return Err(PageError::Layout {
                    page: header.id,
                    detail: "free-list page where a tree page belongs".to_owned(),
                });
            }
        };
        Ok(Node {
            lsn: header.lsn,
            body: node_body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::header::verify;
    use crate::record::{Record, StoredValue, ValueType, VlogPointer};

    fn record(value: &[u8], revision: u64) -> Record {
        Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(value.to_vec()),
            expires_at_ms: Some(99).filter(|_| revision.is_multiple_of(2)),
            revision,
        }
    }

    #[test]
    fn a_leaf_round_trips_through_its_page() {
        let mut entries = vec![
            (b"a".as_slice(), record(b"one", 1)),
            (b"b".as_slice(), record(b"", 2)),
        ];
        entries.push((
            b"c".as_slice(),
            Record {
                value_type: ValueType::String,
                value: StoredValue::Vlog(VlogPointer {
                    segment: 3,
                    length: 9,
                    offset: 77,
                    lsn: 12,
                    crc: 5,
                }),
                expires_at_ms: None,
                revision: 3,
            },
        ));
        let node = Node {
            lsn: 12,
            body: Body::Leaf(Leaf::from_entries(
                4096,
                entries.iter().map(|(key, record)| (*key, record)),
            )),
        };
        let mut page = vec![0; 4096];
        let crc = node.encode(4, &mut page);
        let header = verify(&page, 4, crc).expect("verifies");
        assert_eq!(
            header.used as usize + PAGE_HEADER_BYTES,
            node.encoded_bytes()
        );
        assert_eq!(Node::decode(&header, page).expect("decodes"), node);
    }

    #[test]
    fn an_internal_node_round_trips_through_its_page() {
        let node = Node {
            lsn: 3,
            body: Body::Internal(Internal {
                level: 2,
                keys: vec![Key::from_slice(b"k"), Key::from_slice(b"q")],
                children: vec![
                    Child { id: 5, crc: 1 },
                    Child { id: 6, crc: 2 },
                    Child { id: 7, crc: 3 },
                ],
            }),
        };
        let mut page = vec![0; 4096];
        let crc = node.encode(9, &mut page);
        let header = verify(&page, 9, crc).expect("verifies");
        assert_eq!(Node::decode(&header, page).expect("decodes"), node);
    }

    #[test]
    fn a_length_running_past_the_page_is_a_layout_error() {
        let node = Node {
            lsn: 1,
            body: Body::Leaf(Leaf::from_entries(
                4096,
                [(b"a".as_slice(), &record(b"x", 1))],
            )),
        };
        let mut page = vec![0; 4096];
        node.encode(2, &mut page);
        let cell = 4096 - (2 + 1 + 20 + 4 + 1);
        page[cell..cell + 2].copy_from_slice(&4000u16.to_le_bytes());
        let crc = seal(&mut page);
        let header = verify(&page, 2, crc).expect("CRC is fine");
        assert!(matches!(
            Node::decode(&header, page),
            Err(PageError::Layout { .. })
        ));
    }
}
