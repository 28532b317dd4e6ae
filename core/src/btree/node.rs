//! B+Tree nodes in memory and their page encoding.
//!
//! A node is decoded once when its page is read and encoded once when a
//! checkpoint writes it; in between the tree works on the decoded form. The
//! byte layout is the one `disk.fbs` documents:
//! - leaf entry: `u16 key length, key, u8 kind, u8 type, u8 flags,
//!   u8 reserved, u64 expires_at, u64 revision`, then `u32 length + bytes`
//!   (inline) or a 24-byte value-log pointer;
//! - internal page: `u64 first child, u32 its CRC`, then per separator
//!   `u16 key length, key, u64 child, u32 child CRC`.
//!
//! Decoding checks every length against the page and the key order within
//! the page, so a page that passed its CRC but was written by a buggy
//! encoder still cannot make the tree misbehave.

use crate::page::header::{BodyReader, PageHeader, seal};
use crate::page::{PAGE_HEADER_BYTES, PageError, PageId, PageType};
use crate::record::{Record, StoredValue, ValueType, VlogPointer};

use super::search::SearchIndex;

/// Fixed bytes of a leaf entry besides its key and value.
pub(crate) const LEAF_ENTRY_OVERHEAD_BYTES: usize = 2 + 4 + 8 + 8;
/// The length prefix of an inline value.
pub(crate) const INLINE_LENGTH_BYTES: usize = 4;
/// Bytes of a value-log pointer in a leaf.
pub(crate) const VLOG_POINTER_BYTES: usize = 24;
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
        - LEAF_ENTRY_OVERHEAD_BYTES
        - INLINE_LENGTH_BYTES
        - key_bytes_max(page_bytes)
}

const KIND_INLINE: u8 = 1;
const KIND_VLOG: u8 = 2;
const FLAG_EXPIRES: u8 = 1;

/// Keys up to this length live inside the node's entry array, so a
/// binary search compares them without chasing a pointer per probe; longer
/// keys spill to the heap.
pub(crate) const KEY_INLINE_BYTES: usize = 24;

/// A key as a node holds it.
pub(crate) type Key = smallvec::SmallVec<[u8; KEY_INLINE_BYTES]>;

impl Record {
    /// Bytes this record takes in a leaf besides its key.
    pub(crate) fn encoded_bytes(&self) -> usize {
        LEAF_ENTRY_OVERHEAD_BYTES - 2
            + match &self.value {
                StoredValue::Inline(bytes) => INLINE_LENGTH_BYTES + bytes.len(),
                StoredValue::Vlog(_) => VLOG_POINTER_BYTES,
            }
    }
}

/// A child pointer of an internal node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Child {
    pub(crate) id: PageId,
    /// The child's page CRC as last written. Only meaningful while the child
    /// is clean; a checkpoint fills it in for the children it writes.
    pub(crate) crc: u32,
}

/// A leaf: keys in ascending order with their records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) entries: Vec<(Key, Record)>,
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

impl Leaf {
    /// Where `key` is (`Ok`) or would go (`Err`), found through `index`,
    /// which must have been built from this leaf.
    pub(crate) fn find(&self, index: &SearchIndex, key: &[u8]) -> Result<usize, usize> {
        let found = index.find(key, |i| self.entries[i].0.as_slice());
        crate::expensive_assert_eq!(
            found,
            self.entries
                .binary_search_by(|(probe, _)| probe.as_slice().cmp(key)),
            "the search index disagrees with the leaf"
        );
        found
    }
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
            Body::Leaf(leaf) => {
                SearchIndex::build(0, leaf.entries.len(), |i| leaf.entries[i].0.as_slice(), &[])
            }
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
    /// read only where heads tie.
    pub(crate) fn child_by(&self, index: &SearchIndex, key: &[u8]) -> Child {
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
        index.child(at)
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

    /// Bytes the decoded node takes in memory, by estimate: its arrays at
    /// their capacity, keys too long to live inline, and inline values
    /// (the allocator's own overhead aside). What the page cache charges.
    pub(crate) fn memory_bytes(&self) -> usize {
        let spilled = |key: &Key| if key.spilled() { key.capacity() } else { 0 };
        std::mem::size_of::<Node>()
            + match &self.body {
                Body::Leaf(leaf) => {
                    leaf.entries.capacity() * std::mem::size_of::<(Key, Record)>()
                        + leaf
                            .entries
                            .iter()
                            .map(|(key, record)| {
                                spilled(key)
                                    + match &record.value {
                                        StoredValue::Inline(bytes) => bytes.capacity(),
                                        StoredValue::Vlog(_) => 0,
                                    }
                            })
                            .sum::<usize>()
                }
                Body::Internal(internal) => {
                    internal.keys.capacity() * std::mem::size_of::<Key>()
                        + internal.keys.iter().map(spilled).sum::<usize>()
                        + internal.children.capacity() * std::mem::size_of::<Child>()
                }
            }
    }

    /// Bytes the node's page encoding takes, header included.
    pub(crate) fn encoded_bytes(&self) -> usize {
        PAGE_HEADER_BYTES
            + match &self.body {
                Body::Leaf(leaf) => leaf
                    .entries
                    .iter()
                    .map(|(key, record)| 2 + key.len() + record.encoded_bytes())
                    .sum(),
                Body::Internal(internal) => {
                    INTERNAL_FIRST_CHILD_BYTES
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
        let used = self.encoded_bytes() - PAGE_HEADER_BYTES;
        assert!(
            used + PAGE_HEADER_BYTES <= page.len(),
            "node of {used} bytes overflows its page"
        );
        page.fill(0);
        let mut at = PAGE_HEADER_BYTES;
        let mut put = |bytes: &[u8]| {
            page[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        let (page_type, count) = match &self.body {
            Body::Leaf(leaf) => {
                for (key, record) in &leaf.entries {
                    put(&(key.len() as u16).to_le_bytes());
                    put(key);
                    let kind = match record.value {
                        StoredValue::Inline(_) => KIND_INLINE,
                        StoredValue::Vlog(_) => KIND_VLOG,
                    };
                    let flags = if record.expires_at_ms.is_some() {
                        FLAG_EXPIRES
                    } else {
                        0
                    };
                    put(&[kind, record.value_type as u8, flags, 0]);
                    put(&record.expires_at_ms.unwrap_or(0).to_le_bytes());
                    put(&record.revision.to_le_bytes());
                    match &record.value {
                        StoredValue::Inline(bytes) => {
                            put(&(bytes.len() as u32).to_le_bytes());
                            put(bytes);
                        }
                        StoredValue::Vlog(pointer) => {
                            put(&pointer.segment.to_le_bytes());
                            put(&pointer.length.to_le_bytes());
                            put(&pointer.offset.to_le_bytes());
                            put(&pointer.crc.to_le_bytes());
                            put(&[0; 4]);
                        }
                    }
                }
                (PageType::Leaf, leaf.entries.len())
            }
            Body::Internal(internal) => {
                debug_assert_eq!(internal.children.len(), internal.keys.len() + 1);
                put(&internal.children[0].id.to_le_bytes());
                put(&internal.children[0].crc.to_le_bytes());
                for (key, child) in internal.keys.iter().zip(&internal.children[1..]) {
                    put(&(key.len() as u16).to_le_bytes());
                    put(key);
                    put(&child.id.to_le_bytes());
                    put(&child.crc.to_le_bytes());
                }
                (PageType::Internal, internal.keys.len())
            }
        };
        debug_assert_eq!(at, PAGE_HEADER_BYTES + used);
        let header = PageHeader {
            page_type,
            level: self.level(),
            id,
            lsn: self.lsn,
            count: u16::try_from(count).expect("a page holds fewer than 65536 entries"),
            used: used as u32,
        };
        header.write(page);
        seal(page)
    }

    /// Decodes a verified tree page (see [`crate::page::header::verify`]).
    pub(crate) fn decode(header: &PageHeader, page: &[u8]) -> Result<Node, PageError> {
        let body = &page[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + header.used as usize];
        let mut reader = BodyReader::new(body, header.id);
        let count = usize::from(header.count);
        let node_body = match header.page_type {
            PageType::Leaf => {
                if header.level != 0 {
                    return Err(reader.error(format!("leaf page has level {}", header.level)));
                }
                let mut entries: Vec<(Key, Record)> = Vec::with_capacity(count);
                for _ in 0..count {
                    let key_len = usize::from(reader.u16()?);
                    let key = Key::from_slice(reader.take(key_len)?);
                    let kind = reader.u8()?;
                    let type_byte = reader.u8()?;
                    let value_type = ValueType::from_code(type_byte)
                        .ok_or_else(|| reader.error(format!("unknown value type {type_byte}")))?;
                    let flags = reader.u8()?;
                    reader.u8()?;
                    let expires_at = reader.u64()?;
                    let revision = reader.u64()?;
                    let value = match kind {
                        KIND_INLINE => {
                            let len = reader.u32()? as usize;
                            StoredValue::Inline(reader.take(len)?.to_vec())
                        }
                        KIND_VLOG => {
                            let segment = reader.u32()?;
                            let length = reader.u32()?;
                            let offset = reader.u64()?;
                            let crc = reader.u32()?;
                            reader.u32()?;
                            StoredValue::Vlog(VlogPointer {
                                segment,
                                length,
                                offset,
                                crc,
                            })
                        }
                        other => return Err(reader.error(format!("unknown value kind {other}"))),
                    };
                    if let Some((previous, _)) = entries.last()
                        && *previous >= key
                    {
                        return Err(reader.error("leaf keys out of order"));
                    }
                    let expires_at_ms = (flags & FLAG_EXPIRES != 0).then_some(expires_at);
                    entries.push((
                        key,
                        Record {
                            value_type,
                            value,
                            expires_at_ms,
                            revision,
                        },
                    ));
                }
                Body::Leaf(Leaf { entries })
            }
            PageType::Internal => {
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
                Body::Internal(Internal {
                    level: header.level,
                    keys,
                    children,
                })
            }
            PageType::FreeList => {
                return Err(reader.error("free-list page where a tree page belongs"));
            }
        };
        if !reader.finished() {
            return Err(reader.error("bytes left after the last entry"));
        }
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
            (Key::from_slice(b"a"), record(b"one", 1)),
            (Key::from_slice(b"b"), record(b"", 2)),
        ];
        entries.push((
            Key::from_slice(b"c"),
            Record {
                value_type: ValueType::String,
                value: StoredValue::Vlog(VlogPointer {
                    segment: 3,
                    length: 9,
                    offset: 77,
                    crc: 5,
                }),
                expires_at_ms: None,
                revision: 3,
            },
        ));
        let node = Node {
            lsn: 12,
            body: Body::Leaf(Leaf { entries }),
        };
        let mut page = vec![0; 4096];
        let crc = node.encode(4, &mut page);
        let header = verify(&page, 4, crc).expect("verifies");
        assert_eq!(
            header.used as usize + PAGE_HEADER_BYTES,
            node.encoded_bytes()
        );
        assert_eq!(Node::decode(&header, &page).expect("decodes"), node);
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
        assert_eq!(Node::decode(&header, &page).expect("decodes"), node);
    }

    #[test]
    fn a_length_running_past_the_page_is_a_layout_error() {
        let node = Node {
            lsn: 1,
            body: Body::Leaf(Leaf {
                entries: vec![(Key::from_slice(b"a"), record(b"x", 1))],
            }),
        };
        let mut page = vec![0; 4096];
        node.encode(2, &mut page);
        page[PAGE_HEADER_BYTES..PAGE_HEADER_BYTES + 2].copy_from_slice(&4000u16.to_le_bytes());
        let crc = seal(&mut page);
        let header = verify(&page, 2, crc).expect("CRC is fine");
        assert!(matches!(
            Node::decode(&header, &page),
            Err(PageError::Layout { .. })
        ));
    }
}
