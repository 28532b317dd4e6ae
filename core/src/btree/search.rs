//! A node's search index: for each key, the 8 bytes that follow the prefix
//! every key of the node shares, as one big-endian `u64` (its "head").
//!
//! A binary search over a node's keys costs a cache miss per probe: each
//! probe reads a key somewhere in an array several kilobytes long. The heads
//! of a node sit in one dense array (eight to a cache line), so the search
//! runs on integers in a few lines and compares whole keys only where heads
//! tie, which distinct keys rarely do once their common prefix is cut off.
//!
//! Invariants:
//! - every key of the node starts with `prefix`, and heads are in key order
//!   (keys ascend and share the prefix, so the next 8 bytes, zero-padded,
//!   never descend);
//! - a head strictly below (above) the searched key's head means a key
//!   strictly below (above) it; only equal heads need a full comparison.
//!
//! An internal node's index also holds the node's level and a copy of its
//! child pointers, so a descent through it reads nothing of the node
//! itself unless heads tie.
//!
//! The index describes one version of a node: the page cache builds it on
//! the first search and drops it whenever the node changes.

use std::cmp::Ordering;

use super::node::Child;

/// Where a cached page sits: its place in the cache's slab of frames,
/// stable for as long as the page stays cached. A parent's search index
/// remembers the frame of each child it led to (a *hint*), so a descent
/// reaches a cached child without hashing its id (design 10.1); the cache
/// checks every hint against the page id the frame holds.
pub(crate) type Frame = u32;
/// A hint that names no frame.
pub(crate) const NO_FRAME: Frame = Frame::MAX;

/// Bytes of a key a head holds.
const HEAD_BYTES: usize = 8;

/// The heads of one node's keys.
#[derive(Debug)]
pub(crate) struct SearchIndex {
    /// The shared prefix, then the heads: one allocation, so a search
    /// starts on one cache line.
    words: Box<[u64]>,
    /// Length of the shared prefix in bytes; its bytes fill `words`
    /// from the start, big-endian, the last word zero-padded.
    prefix_len: usize,
    /// The node's level: 0 for a leaf.
    level: u16,
    /// An internal node's children (one more than its keys); empty for a
    /// leaf.
    children: Box<[Child]>,
    /// For each child, the cache frame a descent last found it in (a hint
    /// the cache checks: design 10.1), or `NO_FRAME`.
    frames: Box<[Frame]>,
}

/// The head of `suffix`: its first 8 bytes, zero-padded, big-endian.
#[allow(
    clippy::big_endian_bytes,
    reason = "big-endian makes integer order byte order; never stored"
)]
fn head(suffix: &[u8]) -> u64 {
    let mut bytes = [0u8; HEAD_BYTES];
    let len = suffix.len().min(HEAD_BYTES);
    bytes[..len].copy_from_slice(&suffix[..len]);
    u64::from_be_bytes(bytes)
}

/// Length of the longest common prefix of two byte strings.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl SearchIndex {
    /// Indexes a node at `level` of `len` ascending keys, the `i`-th given
    /// by `key_at(i)`, and (internal nodes) its `children`.
    pub(crate) fn build<'k>(
        level: u16,
        len: usize,
        key_at: impl Fn(usize) -> &'k [u8],
        children: &[Child],
    ) -> SearchIndex {
        assert!(
            if level == 0 {
                children.is_empty()
            } else {
                children.len() == len + 1
            },
            "{} children for {len} keys at level {level}",
            children.len()
        );
        // Keys ascend, so what the first and last share, all share.
        let prefix_len = match len {
            0 => 0,
            _ => common_prefix_len(key_at(0), key_at(len - 1)),
        };
        let prefix_words = prefix_len.div_ceil(HEAD_BYTES);
        let mut words = Vec::with_capacity(prefix_words + len);
        if len > 0 {
            let prefix = &key_at(0)[..prefix_len];
            words.extend(prefix.chunks(HEAD_BYTES).map(head));
        }
        words.extend((0..len).map(|i| head(&key_at(i)[prefix_len..])));
        SearchIndex {
            words: words.into_boxed_slice(),
            prefix_len,
            level,
            children: children.into(),
            frames: vec![NO_FRAME; children.len()].into_boxed_slice(),
        }
    }

    /// Bytes the index takes in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<SearchIndex>()
            + std::mem::size_of_val(&*self.words)
            + std::mem::size_of_val(&*self.children)
            + std::mem::size_of_val(&*self.frames)
    }

    /// The level of the node it indexes.
    pub(crate) fn level(&self) -> u16 {
        self.level
    }

    /// Child `at` of the internal node it indexes.
    pub(crate) fn child(&self, at: usize) -> Child {
        self.children[at]
    }

    /// The frame child `at` was last found in (a hint), or `NO_FRAME`
    /// (also for a position past the children).
    pub(crate) fn frame_hint(&self, at: usize) -> Frame {
        self.frames.get(at).copied().unwrap_or(NO_FRAME)
    }

    /// Remembers `frame` for child `at`; a position past the children (a
    /// link that outlived its parent's version) is ignored: a hint is only
    /// ever a guess.
    pub(crate) fn set_frame_hint(&mut self, at: usize, frame: Frame) {
        if let Some(hint) = self.frames.get_mut(at) {
            *hint = frame;
        }
    }

    fn prefix_words(&self) -> usize {
        self.prefix_len.div_ceil(HEAD_BYTES)
    }

    fn heads(&self) -> &[u64] {
        &self.words[self.prefix_words()..]
    }

    /// How `key` compares with the shared prefix, over the prefix's length
    /// (a key that is a proper prefix of it is below it).
    #[allow(
        clippy::big_endian_bytes,
        reason = "the prefix was packed big-endian by `head`"
    )]
    fn cmp_prefix(&self, key: &[u8]) -> Ordering {
        for (chunk, word) in self.words[..self.prefix_words()].iter().enumerate() {
            let start = chunk * HEAD_BYTES;
            let want_len = (self.prefix_len - start).min(HEAD_BYTES);
            let bytes = word.to_be_bytes();
            let want = &bytes[..want_len];
            let have = key.get(start..).unwrap_or_default();
            let have = &have[..have.len().min(want_len)];
            match have.cmp(want) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }

    /// The range of key indices whose heads equal `key`'s, or the place
    /// `key` would go (an empty range) when no head does. Keys before the
    /// range are below `key`, keys after it above.
    fn candidates(&self, key: &[u8]) -> (usize, usize) {
        let heads = self.heads();
        match self.cmp_prefix(key) {
            Ordering::Less => (0, 0),
            Ordering::Greater => (heads.len(), heads.len()),
            Ordering::Equal => {
                let wanted = head(&key[self.prefix_len..]);
                let low = heads.partition_point(|&h| h < wanted);
                let high = low + heads[low..].partition_point(|&h| h == wanted);
                (low, high)
            }
        }
    }

    /// The number of keys at or below `key` (`partition_point(k <= key)`).
    pub(crate) fn upper_bound<'k>(&self, key: &[u8], key_at: impl Fn(usize) -> &'k [u8]) -> usize {
        // Keys before the candidates are below `key`; among them (heads
        // tie) compare whole keys, by binary search: many keys may share
        // more than the prefix and a head.
        let (mut lo, mut hi) = self.candidates(key);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key_at(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The number of keys below `key` (`partition_point(k < key)`).
    pub(crate) fn lower_bound<'k>(&self, key: &[u8], key_at: impl Fn(usize) -> &'k [u8]) -> usize {
        match self.find(key, key_at) {
            Ok(at) | Err(at) => at,
        }
    }

    /// `Ok(index)` of `key`, or `Err(index)` where it would be inserted,
    /// as `binary_search` over the keys answers.
    pub(crate) fn find<'k>(
        &self,
        key: &[u8],
        key_at: impl Fn(usize) -> &'k [u8],
    ) -> Result<usize, usize> {
        let at = self.upper_bound(key, &key_at);
        match at.checked_sub(1) {
            Some(last) if key_at(last) == key => Ok(last),
            _ => Err(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SearchIndex;

    fn keys(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|key| key.as_bytes().to_vec()).collect()
    }

    /// Checks every probe against a plain binary search of the keys.
    fn check(keys: &[Vec<u8>], probes: &[&[u8]]) {
        let index = SearchIndex::build(0, keys.len(), |i| &keys[i], &[]);
        for probe in probes {
            let upper = keys.partition_point(|key| key.as_slice() <= *probe);
            assert_eq!(
                index.upper_bound(probe, |i| &keys[i]),
                upper,
                "upper bound of {probe:?} in {keys:?}"
            );
            assert_eq!(
                index.lower_bound(probe, |i| &keys[i]),
                keys.partition_point(|key| key.as_slice() < *probe),
                "lower bound of {probe:?} in {keys:?}"
            );
            assert_eq!(
                index.find(probe, |i| &keys[i]),
                keys.binary_search_by(|key| key.as_slice().cmp(probe)),
                "find {probe:?} in {keys:?}"
            );
        }
    }

    #[test]
    fn a_search_agrees_with_a_binary_search_of_the_keys() {
        let probes: &[&[u8]] = &[
            b"",
            b"a",
            b"user:",
            b"user:0",
            b"user:00",
            b"user:0001",
            b"user:0001\0",
            b"user:00010000000",
            b"user:000100000001",
            b"user:0002",
            b"user:9",
            b"v",
            b"\xff",
        ];
        // Shared prefixes longer than a head, keys that are prefixes of
        // others, trailing zero bytes (which pad like an absent byte).
        check(&keys(&[]), probes);
        check(&keys(&["user:0001"]), probes);
        check(
            &keys(&[
                "user:0001",
                "user:0001\0",
                "user:00010000000",
                "user:000100000001",
                "user:0001000000010",
                "user:0002",
            ]),
            probes,
        );
        check(&keys(&["a", "user:00", "user:0001", "v"]), probes);
        check(
            &keys(&["tenant-a/user/0001/x", "tenant-a/user/0001/y"]),
            probes,
        );
    }

    #[test]
    fn random_keys_search_as_a_binary_search() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            // Small alphabets and lengths make prefixes and ties common.
            let mut list: Vec<Vec<u8>> = (0..next() % 40)
                .map(|_| {
                    (0..next() % 20)
                        .map(|_| b"ab\0"[(next() % 3) as usize])
                        .collect()
                })
                .collect();
            list.sort();
            list.dedup();
            let probes: Vec<Vec<u8>> = (0..50)
                .map(|_| {
                    (0..next() % 20)
                        .map(|_| b"ab\0"[(next() % 3) as usize])
                        .collect()
                })
                .chain(list.iter().cloned())
                .collect();
            let probes: Vec<&[u8]> = probes.iter().map(Vec::as_slice).collect();
            check(&list, &probes);
        }
    }
}
