//! The tree against `BTreeMap` as its model: long random sequences of
//! inserts, overwrites and deletes, with seals in between so copy-on-write
//! is exercised, and a full structural check after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::cache::PageCache;
use super::key_bytes_max;
use crate::page::PageId;
use crate::page::allocator::Allocator;

use super::cursor::RangeQuery;
use super::node::{Body, Key, Node};
use super::tree::Tree;
use crate::record::Mutation;
use crate::record::{Record, StoredValue, ValueType};

const PAGE_BYTES: u32 = 4096;

/// A small deterministic generator (the tests need no crate for this).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn new_tree() -> Tree {
    // As a new database: page 1 is the root leaf.
    let allocator = Allocator::new(2, BTreeSet::new());
    let root = 1;
    let mut cache = PageCache::new(PAGE_BYTES, 1 << 40);
    cache.put_dirty(root, Node::empty_leaf(), 1);
    Tree {
        cache,
        allocator,
        root,
        root_crc: 0,
        height: 1,
        keys_count: 0,
        open_generation: 1,
        page_bytes: PAGE_BYTES,
        #[cfg(feature = "sabotage")]
        sabotage: crate::sabotage::Sabotage::None,
    }
}

fn record(rng: &mut Rng, revision: u64, value_max: u64) -> Record {
    let len = rng.below(value_max + 1) as usize;
    Record {
        value_type: ValueType::Bytes,
        value: StoredValue::Inline(vec![(revision % 251) as u8; len]),
        expires_at_ms: None,
        revision,
    }
}

fn key(rng: &mut Rng, universe: u64, long: bool) -> Vec<u8> {
    let n = rng.below(universe);
    let mut key = format!("key-{n:08}").into_bytes();
    if long {
        // Long keys make tall trees out of few entries.
        let pad = (n * 37 % (key_bytes_max(PAGE_BYTES) as u64 - 12)) as usize;
        key.extend(std::iter::repeat_n(b'x', pad));
    }
    key
}

/// Seals the open generation as a checkpoint would and makes it durable,
/// so later changes must copy the pages it reached.
fn seal(tree: &mut Tree) {
    let generation = tree.open_generation;
    tree.open_generation += 1;
    tree.allocator.generation_durable(generation);
    // Nothing is encoded here, so parents record CRC 0 for every child (as
    // they do for dirty children) and the pages are clean under CRC 0.
    let crcs: BTreeMap<PageId, u32> = tree
        .cache
        .dirty_pages(generation)
        .into_iter()
        .map(|(id, _)| (id, 0))
        .collect();
    tree.root_crc = 0;
    tree.cache.mark_clean(generation, &crcs);
}

/// Walks the whole tree and checks every structural invariant.
fn check(tree: &Tree, model: &BTreeMap<Vec<u8>, Record>) {
    let mut reached: BTreeSet<PageId> = BTreeSet::new();
    let mut entries = Vec::new();
    type Bounds = (Option<Key>, Option<Key>);
    let mut stack: Vec<(PageId, u16, Bounds)> = vec![(tree.root, tree.height - 1, (None, None))];
    while let Some((id, level, (low, high))) = stack.pop() {
        assert!(reached.insert(id), "page {id} reached twice");
        let node = tree
            .cache
            .peek(id)
            .unwrap_or_else(|| panic!("page {id} missing"));
        assert_eq!(node.level(), level, "page {id} at the wrong level");
        assert!(
            node.encoded_bytes() <= PAGE_BYTES as usize,
            "page {id} overflows"
        );
        let in_bounds = |key: &[u8]| {
            low.as_deref().is_none_or(|l| key >= l) && high.as_deref().is_none_or(|h| key < h)
        };
        match &node.body {
            Body::Leaf(leaf) => {
                for (key, record) in leaf.iter() {
                    assert!(in_bounds(key), "key outside its separators in page {id}");
                    entries.push((key.to_vec(), record.to_record()));
                }
            }
            Body::Internal(internal) => {
                assert!(
                    !internal.keys.is_empty(),
                    "internal page {id} without separators"
                );
                assert!(internal.keys.windows(2).all(|w| w[0] < w[1]));
                for (index, child) in internal.children.iter().enumerate().rev() {
                    let low = if index == 0 {
                        low.clone()
                    } else {
                        Some(internal.keys[index - 1].clone())
                    };
                    let high = internal.keys.get(index).cloned().or_else(|| high.clone());
                    stack.push((child.id, level - 1, (low, high)));
                }
            }
        }
    }
    let expected: Vec<(Vec<u8>, Record)> =
        model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
    assert!(entries == expected, "tree content differs from the model");
    assert_eq!(tree.keys_count, model.len() as u64);
    let free = tree.allocator.all_free_and_pending();
    for id in &free {
        assert!(
            !reached.contains(id),
            "page {id} is both in the tree and free"
        );
    }
    let lost: Vec<PageId> = (1..tree.allocator.page_count())
        .filter(|id| !reached.contains(id) && !free.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "pages lost: {lost:?}, free {free:?}, reached {reached:?}"
    );
    assert_eq!(
        reached.len() + free.len(),
        tree.allocator.page_count() as usize - 1,
        "pages leaked: every page is in the tree or free"
    );
}

fn range_of(tree: &mut Tree, query: &RangeQuery) -> Vec<(Vec<u8>, Record)> {
    let mut out = Vec::new();
    tree.range(query, &mut out)
        .expect("every page is in memory");
    out
}

fn model_range(model: &BTreeMap<Vec<u8>, Record>, query: &RangeQuery) -> Vec<(Vec<u8>, Record)> {
    let range = model.range::<Vec<u8>, _>((query.start.clone(), query.end.clone()));
    let items = range.map(|(k, r)| (k.clone(), r.clone()));
    if query.reverse {
        items.rev().take(query.limit).collect()
    } else {
        items.take(query.limit).collect()
    }
}

fn run(seed: u64, steps: u64, universe: u64, long_keys: bool, value_max: u64, height_min: u16) {
    let mut rng = Rng(seed);
    let mut tree = new_tree();
    let mut model: BTreeMap<Vec<u8>, Record> = BTreeMap::new();
    let mut height_max = 1;
    for step in 1..=steps {
        let delete_bias = if (step / 500) % 2 == 1 { 3 } else { 1 };
        let key = key(&mut rng, universe, long_keys);
        let mutation = if rng.below(4) < delete_bias {
            Mutation::Delete { key }
        } else {
            Mutation::Put {
                key,
                record: record(&mut rng, step, value_max),
            }
        };
        let changed = tree
            .apply(&mutation, step)
            .expect("every page is in memory");
        let model_changed = match &mutation {
            Mutation::Put { key, record } => {
                model.insert(key.clone(), record.clone()).as_ref() != Some(record)
            }
            Mutation::Delete { key } => model.remove(key).is_some(),
        };
        assert_eq!(
            changed, model_changed,
            "step {step}: change reported wrongly"
        );
        height_max = height_max.max(tree.height);
        if rng.below(50) == 0 {
            seal(&mut tree);
        }
        if step % 97 == 0 || step == steps {
            check(&tree, &model);
            let bound = |rng: &mut Rng| match rng.below(3) {
                0 => Bound::Unbounded,
                1 => Bound::Included(key_of(rng, universe, long_keys)),
                _ => Bound::Excluded(key_of(rng, universe, long_keys)),
            };
            let query = RangeQuery {
                start: bound(&mut rng),
                end: bound(&mut rng),
                reverse: rng.below(2) == 0,
                limit: rng.below(300) as usize + 1,
            };
            let valid = match (&query.start, &query.end) {
                (
                    Bound::Included(s) | Bound::Excluded(s),
                    Bound::Included(e) | Bound::Excluded(e),
                ) => s < e,
                _ => true,
            };
            if valid {
                assert_eq!(
                    range_of(&mut tree, &query),
                    model_range(&model, &query),
                    "step {step}: {query:?}"
                );
            }
        }
    }
    // Delete everything: the tree shrinks back to one empty leaf.
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for (index, key) in keys.into_iter().enumerate() {
        tree.apply(
            &Mutation::Delete { key: key.clone() },
            steps + 1 + index as u64,
        )
        .expect("in memory");
        model.remove(&key);
        if index % 61 == 0 {
            seal(&mut tree);
            check(&tree, &model);
        }
    }
    check(&tree, &model);
    assert_eq!(tree.height, 1, "an empty tree is one leaf");
    assert!(
        height_max >= height_min,
        "seed {seed} never grew the tree past height {height_max}"
    );
}

fn key_of(rng: &mut Rng, universe: u64, long: bool) -> Vec<u8> {
    key(rng, universe, long)
}

#[test]
fn random_small_entries_match_the_model() {
    for seed in 1..=6 {
        run(seed, 4000, 3000, false, 40, 2);
    }
}

#[test]
fn random_long_keys_and_values_match_the_model() {
    for seed in 10..=14 {
        run(seed, 3000, 800, true, 512, 3);
    }
}

#[test]
fn an_overwrite_with_the_same_record_changes_nothing() {
    let mut tree = new_tree();
    let record = Record {
        value_type: ValueType::Int64,
        value: StoredValue::Inline(7i64.to_le_bytes().to_vec()),
        expires_at_ms: Some(5),
        revision: 1,
    };
    let put = Mutation::Put {
        key: b"k".to_vec(),
        record: record.clone(),
    };
    assert!(tree.apply(&put, 1).expect("in memory"));
    seal(&mut tree);
    let pages_before = tree.allocator.page_count();
    assert!(!tree.apply(&put, 2).expect("in memory"));
    assert_eq!(
        tree.allocator.page_count(),
        pages_before,
        "a no-op must not copy pages"
    );
    assert_eq!(tree.get(b"k").expect("in memory"), Some(record));
}

#[test]
fn a_sealed_page_is_copied_not_changed() {
    let mut tree = new_tree();
    let put = |n: u64| Mutation::Put {
        key: format!("k{n}").into_bytes(),
        record: Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(vec![1; 8]),
            expires_at_ms: None,
            revision: n,
        },
    };
    tree.apply(&put(1), 1).expect("in memory");
    let root_before = tree.root;
    tree.apply(&put(2), 2).expect("in memory");
    assert_eq!(tree.root, root_before, "an unsealed page changes in place");
    seal(&mut tree);
    tree.apply(&put(3), 3).expect("in memory");
    assert_ne!(tree.root, root_before, "a sealed page must be copied");
    assert_eq!(
        tree.allocator.pending_count(),
        1,
        "the old root waits for the next durable superblock"
    );
}

/// Builds `count` sorted puts (keys `key-NNNNNNNN`, some long) into the
/// empty `tree` by the bulk path; returns the model.
fn bulk_load(tree: &mut Tree, rng: &mut Rng, count: u64, long: bool) -> BTreeMap<Vec<u8>, Record> {
    let mut model = BTreeMap::new();
    for n in 0..count {
        let mut key = format!("key-{:08}", n * 3).into_bytes();
        if long && rng.below(4) == 0 {
            let pad = rng.below(key_bytes_max(PAGE_BYTES) as u64 - 12) as usize;
            key.extend(std::iter::repeat_n(b'x', pad));
        }
        model.insert(key, record(rng, 1, 300));
    }
    let mutations: Vec<Mutation> = model
        .iter()
        .map(|(key, record)| Mutation::Put {
            key: key.clone(),
            record: record.clone(),
        })
        .collect();
    assert!(tree.bulk_applies(&mutations));
    tree.bulk_build(&mutations, 1);
    model
}

/// Every node but the root holds a quarter of a page or more, and, with
/// entries small against a page (`dense`), leaves hold 80 % of a page or
/// more on average.
fn check_fill(tree: &Tree, dense: bool) {
    let (mut leaves, mut leaf_bytes) = (0usize, 0usize);
    let mut stack = vec![tree.root];
    while let Some(id) = stack.pop() {
        let node = tree.cache.peek(id).expect("in memory");
        if id != tree.root {
            assert!(
                node.encoded_bytes() >= PAGE_BYTES as usize / 4,
                "page {id} under a quarter"
            );
        }
        match &node.body {
            Body::Leaf(_) => {
                leaves += 1;
                leaf_bytes += node.encoded_bytes();
            }
            Body::Internal(internal) => stack.extend(internal.children.iter().map(|c| c.id)),
        }
    }
    if dense && leaves > 8 {
        let mean = leaf_bytes / leaves;
        assert!(
            mean * 100 >= PAGE_BYTES as usize * 80,
            "leaves only {mean} bytes on average"
        );
    }
}

#[test]
fn the_bulk_path_builds_a_dense_tree_that_later_changes_keep_valid() {
    for (seed, count, long) in [
        (1, 64, false),
        (2, 65, true),
        (3, 700, false),
        (4, 5_000, true),
        (5, 30_000, false),
    ] {
        let mut rng = Rng(seed);
        let mut tree = new_tree();
        if seed % 2 == 0 {
            // The empty root is durable: the build frees it after the
            // next superblock, not at once.
            seal(&mut tree);
        }
        let mut model = bulk_load(&mut tree, &mut rng, count, long);
        check(&tree, &model);
        check_fill(&tree, !long);
        assert!(
            count < 1000 || tree.height >= 2,
            "{count} keys in one leaf?"
        );
        // Later changes split, merge and copy the bulk-built pages.
        for step in 2..2_000 {
            let key = format!("key-{:08}", rng.below(count * 3)).into_bytes();
            let mutation = if rng.below(3) == 0 {
                Mutation::Delete { key }
            } else {
                Mutation::Put {
                    key,
                    record: record(&mut rng, step, 300),
                }
            };
            tree.apply(&mutation, step).expect("in memory");
            match mutation {
                Mutation::Put { key, record } => {
                    model.insert(key, record);
                }
                Mutation::Delete { key } => {
                    model.remove(&key);
                }
            }
            if rng.below(100) == 0 {
                seal(&mut tree);
            }
        }
        check(&tree, &model);
    }
}

#[test]
fn the_bulk_path_is_taken_only_by_sorted_puts_into_an_empty_tree() {
    let mut rng = Rng(9);
    let mut tree = new_tree();
    let put = |n: u64, rng: &mut Rng| Mutation::Put {
        key: format!("key-{n:08}").into_bytes(),
        record: record(rng, 1, 10),
    };
    let sorted: Vec<Mutation> = (0..100).map(|n| put(n, &mut rng)).collect();
    assert!(tree.bulk_applies(&sorted));
    assert!(!tree.bulk_applies(&sorted[..63]), "too few");
    let mut unsorted = sorted.clone();
    unsorted.swap(3, 4);
    assert!(!tree.bulk_applies(&unsorted));
    let mut repeated = sorted.clone();
    repeated[4] = put(3, &mut rng);
    assert!(!tree.bulk_applies(&repeated), "a key named twice");
    let mut with_delete = sorted.clone();
    with_delete[7] = Mutation::Delete {
        key: b"key-00000007".to_vec(),
    };
    assert!(!tree.bulk_applies(&with_delete));
    tree.apply(&put(1_000, &mut rng), 2).expect("in memory");
    assert!(!tree.bulk_applies(&sorted), "the tree is not empty");
}

/// Applies `batch` as the store does: in runs, each from one descent.
fn apply_in_runs(tree: &mut Tree, batch: &[Mutation], lsn: u64) -> Vec<bool> {
    let mut changed = Vec::new();
    while changed.len() < batch.len() {
        let outcomes = tree
            .apply_run(&batch[changed.len()..], lsn)
            .expect("every page is in memory");
        assert!(!outcomes.is_empty(), "a run applies one mutation at least");
        changed.extend(outcomes.into_iter().map(|(change, _)| change));
    }
    changed
}

#[test]
fn runs_of_a_batch_match_the_model_sorted_or_not() {
    for seed in 1..=6u64 {
        let mut rng = Rng(seed);
        let mut tree = new_tree();
        let mut model: BTreeMap<Vec<u8>, Record> = BTreeMap::new();
        let long = seed % 3 == 0;
        for step in 1..=300u64 {
            let size = rng.below(200) + 1;
            let delete_pct = if (step / 50) % 2 == 1 { 70 } else { 25 };
            let mut batch: Vec<Mutation> = (0..size)
                .map(|_| {
                    let key = key(&mut rng, 5_000, long);
                    if rng.below(100) < delete_pct {
                        Mutation::Delete { key }
                    } else {
                        Mutation::Put {
                            key,
                            record: record(&mut rng, step, 300),
                        }
                    }
                })
                .collect();
            if rng.below(4) != 0 {
                // Sorted as the transaction layer hands them over (stable:
                // a key's mutations keep their order).
                batch.sort_by(|a, b| a.key().cmp(b.key()));
            }
            let changed = apply_in_runs(&mut tree, &batch, step);
            for (mutation, change) in batch.iter().zip(changed) {
                let model_changed = match mutation {
                    Mutation::Put { key, record } => {
                        model.insert(key.clone(), record.clone()).as_ref() != Some(record)
                    }
                    Mutation::Delete { key } => model.remove(key).is_some(),
                };
                assert_eq!(
                    change, model_changed,
                    "seed {seed} step {step}: {mutation:?}"
                );
            }
            if rng.below(5) == 0 {
                seal(&mut tree);
            }
            if step % 25 == 0 {
                check(&tree, &model);
            }
        }
        check(&tree, &model);
    }
}
