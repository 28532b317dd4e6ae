//! The live snapshots and their undo images (design 14.3): what lets a
//! reader see the tree as of one read LSN while writers go on, without
//! pinning pages or a checkpoint per snapshot.
//!
//! Invariants kept here:
//! - **An image is the key's state as of the snapshot's read LSN.** The WAL
//!   writer saves it before it applies the first mutation of the key after
//!   that LSN ([`Snapshots::wanting`], then [`Snapshots::save`]), and a
//!   snapshot registers only under [`Snapshots::turn`], which the writer
//!   holds while it saves a batch's images and applies the batch, so no
//!   mutation slips between a snapshot's read LSN and its images.
//! - **An image holds its value's bytes**, never a value-log pointer: value
//!   GC and WAL retention need not know snapshots exist.
//! - **Bounded**: at most [`SNAPSHOTS_LIVE_MAX`] snapshots, and each
//!   snapshot's images at most `bytes_max`. A snapshot past its bound, or
//!   one whose key could not be read to save its image, is *ended*: its
//!   images go, and every later read in it fails. A snapshot never answers
//!   wrong; it may answer nothing.
//! - **While none is open, the writer pays one uncontended lock of
//!   [`Snapshots::turn`] per batch and one atomic load per commit.**

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::env::MonoTime;
use crate::mutex::lock;
use crate::record::{Record, StoredValue};

/// The most snapshots open at once in one database.
pub const SNAPSHOTS_LIVE_MAX: usize = 1024;

/// Bytes an image is charged besides its key and value (the map's node, the
/// record's fields).
const IMAGE_OVERHEAD_BYTES: u64 = 64;

/// A key's state as a snapshot reads it: its record with the value inline,
/// or `None` where the key was missing.
pub(crate) type Image = Option<Record>;

/// Why a snapshot's read was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) read_lsn: u64,
    pub(crate) reason: String,
}

/// Figures for INFO's `# Snapshots`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Snapshots open now.
    pub live: u64,
    /// Snapshots opened since the database was.
    pub opened: u64,
    /// The read LSN of the oldest open snapshot (0: none).
    pub oldest_read_lsn: u64,
    /// How long the oldest open snapshot has been open, in milliseconds.
    pub oldest_age_ms: u64,
    /// Bytes the open snapshots' undo images hold.
    pub image_bytes: u64,
    /// Undo images saved.
    pub images_saved: u64,
    /// Snapshots ended because their images passed `snapshot_bytes_max`.
    pub ended_too_old: u64,
    /// Snapshots ended because a key could not be read to save its image.
    pub ended_unreadable: u64,
}

struct Entry {
    read_lsn: u64,
    began: MonoTime,
    images: BTreeMap<Vec<u8>, Image>,
    bytes: u64,
    ended: Option<String>,
}

impl Entry {
    /// Whether a mutation at `lsn` of `key` must first be imaged for it.
    fn wants(&self, key: &[u8], lsn: u64) -> bool {
        self.ended.is_none() && self.read_lsn < lsn && !self.images.contains_key(key)
    }

    fn refusal(&self) -> Result<(), Ended> {
        match &self.ended {
            None => Ok(()),
            Some(reason) => Err(Ended {
                read_lsn: self.read_lsn,
                reason: reason.clone(),
            }),
        }
    }

    /// Ends the snapshot: its images go, its reads fail from now on.
    fn end(&mut self, reason: String, registry_bytes: &mut u64) {
        *registry_bytes -= self.bytes;
        self.bytes = 0;
        self.images.clear();
        self.ended = Some(reason);
    }
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, Entry>,
    image_bytes: u64,
    stats: SnapshotStats,
}

/// The registry of one database's open snapshots.
pub(crate) struct Snapshots {
    /// Open snapshots, read by the writer without the registry's lock.
    live: AtomicUsize,
    /// Held by the writer while it saves a batch's images and applies the
    /// batch, and by a snapshot while it takes its read LSN.
    pub(crate) turn: futures::lock::Mutex<()>,
    registry: Mutex<Registry>,
    bytes_max: u64,
    /// Broken on purpose: images are saved after the mutation is applied.
    pub(crate) image_after_apply: bool,
}

/// Bytes `image` of `key` is charged.
fn image_bytes(key: &[u8], image: &Image) -> u64 {
    let value = match image {
        Some(Record {
            value: StoredValue::Inline(bytes),
            ..
        }) => bytes.len() as u64,
        _ => 0,
    };
    key.len() as u64 + value + IMAGE_OVERHEAD_BYTES
}

impl Snapshots {
    pub(crate) fn new(bytes_max: u64, image_after_apply: bool) -> Self {
        Snapshots {
            live: AtomicUsize::new(0),
            turn: futures::lock::Mutex::new(()),
            registry: Mutex::new(Registry::default()),
            bytes_max,
            image_after_apply,
        }
    }

    /// Whether any snapshot is open (the writer's one load per batch).
    pub(crate) fn any_open(&self) -> bool {
        self.live.load(Ordering::Acquire) > 0
    }

    /// Registers a snapshot reading as of `read_lsn`; call it holding
    /// [`Snapshots::turn`], with `read_lsn` the applied LSN. `None` when
    /// [`SNAPSHOTS_LIVE_MAX`] are open.
    pub(crate) fn open(&self, read_lsn: u64, now: MonoTime) -> Option<u64> {
        let mut registry = lock(&self.registry);
        if registry.open.len() >= SNAPSHOTS_LIVE_MAX {
            return None;
        }
        registry.next_id += 1;
        let id = registry.next_id;
        registry.open.insert(
            id,
            Entry {
                read_lsn,
                began: now,
                images: BTreeMap::new(),
                bytes: 0,
                ended: None,
            },
        );
        registry.stats.opened += 1;
        self.live.store(registry.open.len(), Ordering::Release);
        Some(id)
    }

    /// Releases snapshot `id` and its images.
    pub(crate) fn close(&self, id: u64) {
        let mut registry = lock(&self.registry);
        if let Some(entry) = registry.open.remove(&id) {
            registry.image_bytes -= entry.bytes;
        }
        self.live.store(registry.open.len(), Ordering::Release);
    }

    /// Of `keys` (a batch's, about to be applied at `lsn`), the ones some
    /// open snapshot needs an image of first, each once.
    pub(crate) fn wanting<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        lsn: u64,
    ) -> Vec<Vec<u8>> {
        let registry = lock(&self.registry);
        let mut wanted: Vec<Vec<u8>> = keys
            .filter(|key| registry.open.values().any(|entry| entry.wants(key, lsn)))
            .map(<[u8]>::to_vec)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }

    /// Saves `image`, `key`'s state before the mutation at `lsn`, into every
    /// open snapshot that wants it; or, when the key could not be read,
    /// ends those snapshots with the reason.
    pub(crate) fn save(&self, key: &[u8], image: Result<Image, String>, lsn: u64) {
        debug_assert!(
            !matches!(&image, Ok(Some(record)) if matches!(record.value, StoredValue::Vlog(_))),
            "an image holds its value's bytes"
        );
        let mut guard = lock(&self.registry);
        let Registry {
            open,
            image_bytes: total,
            stats,
            ..
        } = &mut *guard;
        let charge = image.as_ref().map_or(0, |image| image_bytes(key, image));
        for entry in open.values_mut().filter(|entry| entry.wants(key, lsn)) {
            match &image {
                Err(reason) => {
                    stats.ended_unreadable += 1;
                    entry.end(format!("a key it reads could not be kept: {reason}"), total);
                }
                Ok(_) if entry.bytes + charge > self.bytes_max => {
                    stats.ended_too_old += 1;
                    entry.end(
                        format!(
                            "its undo images passed snapshot_bytes_max ({} bytes): writers \
                             changed too much since it began; read sooner, or raise the bound",
                            self.bytes_max
                        ),
                        total,
                    );
                }
                Ok(image) => {
                    entry.images.insert(key.to_vec(), image.clone());
                    entry.bytes += charge;
                    *total += charge;
                    stats.images_saved += 1;
                }
            }
        }
    }

    /// Snapshot `id`'s image of `key`, if it has one (`Some(None)`: the key
    /// was missing at its read LSN).
    pub(crate) fn image(&self, id: u64, key: &[u8]) -> Result<Option<Image>, Ended> {
        let registry = lock(&self.registry);
        let entry = registry.open.get(&id).ok_or_else(released)?;
        entry.refusal()?;
        Ok(entry.images.get(key).cloned())
    }

    /// Snapshot `id`'s images of keys within `start..end`.
    pub(crate) fn images_in(
        &self,
        id: u64,
        start: &Bound<Vec<u8>>,
        end: &Bound<Vec<u8>>,
    ) -> Result<Vec<(Vec<u8>, Image)>, Ended> {
        let registry = lock(&self.registry);
        let entry = registry.open.get(&id).ok_or_else(released)?;
        entry.refusal()?;
        if let (
            Bound::Included(low) | Bound::Excluded(low),
            Bound::Included(high) | Bound::Excluded(high),
        ) = (start, end)
            && low > high
        {
            return Ok(Vec::new());
        }
        let range = (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        );
        Ok(entry
            .images
            .range::<[u8], _>(range)
            .map(|(key, image)| (key.clone(), image.clone()))
            .collect())
    }

    /// Figures for INFO, with ages measured at `now`.
    pub(crate) fn stats(&self, now: MonoTime) -> SnapshotStats {
        let registry = lock(&self.registry);
        let oldest = registry.open.values().min_by_key(|entry| entry.read_lsn);
        SnapshotStats {
            live: registry.open.len() as u64,
            oldest_read_lsn: oldest.map_or(0, |entry| entry.read_lsn),
            oldest_age_ms: registry
                .open
                .values()
                .map(|entry| now.saturating_since(entry.began).as_millis() as u64)
                .max()
                .unwrap_or(0),
            image_bytes: registry.image_bytes,
            ..registry.stats
        }
    }

    /// Recounts the images' bytes and panics on a mismatch (an expensive
    /// cross-check).
    pub(crate) fn check_invariants(&self) {
        let registry = lock(&self.registry);
        let mut total = 0;
        for entry in registry.open.values() {
            let bytes: u64 = entry
                .images
                .iter()
                .map(|(key, image)| image_bytes(key, image))
                .sum();
            assert_eq!(bytes, entry.bytes, "a snapshot's image bytes drifted");
            assert!(entry.bytes <= self.bytes_max);
            total += bytes;
        }
        assert_eq!(total, registry.image_bytes, "image bytes drifted");
        assert_eq!(registry.open.len(), self.live.load(Ordering::Acquire));
    }
}

/// What a read in a released snapshot gets (a `Snapshot` borrows its
/// registration, so only a bug reaches it).
fn released() -> Ended {
    Ended {
        read_lsn: 0,
        reason: "the snapshot was released".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ValueType;

    fn record(bytes: &[u8], revision: u64) -> Record {
        Record {
            value_type: ValueType::Bytes,
            value: StoredValue::Inline(bytes.to_vec()),
            expires_at_ms: None,
            revision,
        }
    }

    #[test]
    fn an_image_is_saved_once_per_snapshot_and_only_for_later_lsns() {
        let snapshots = Snapshots::new(1 << 20, false);
        assert!(!snapshots.any_open());
        let early = snapshots.open(5, MonoTime::ZERO).expect("room");
        let late = snapshots.open(9, MonoTime::ZERO).expect("room");
        // A mutation at 8 is after the first snapshot's LSN only.
        let keys = [b"a".as_slice(), b"a".as_slice(), b"b".as_slice()];
        assert_eq!(
            snapshots.wanting(keys.into_iter(), 8),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        snapshots.save(b"a", Ok(Some(record(b"old", 3))), 8);
        assert_eq!(
            snapshots.image(early, b"a"),
            Ok(Some(Some(record(b"old", 3))))
        );
        assert_eq!(snapshots.image(late, b"a"), Ok(None));
        // The first image stays: a later change does not replace it.
        snapshots.save(b"a", Ok(Some(record(b"newer", 8))), 10);
        assert_eq!(
            snapshots.image(early, b"a"),
            Ok(Some(Some(record(b"old", 3))))
        );
        assert_eq!(
            snapshots.image(late, b"a"),
            Ok(Some(Some(record(b"newer", 8))))
        );
        snapshots.check_invariants();
        snapshots.close(early);
        snapshots.close(late);
        assert!(!snapshots.any_open());
        assert_eq!(snapshots.stats(MonoTime::ZERO).image_bytes, 0);
        snapshots.check_invariants();
    }

    #[test]
    fn a_snapshot_past_its_bound_or_unreadable_ends_and_refuses_reads() {
        let snapshots = Snapshots::new(IMAGE_OVERHEAD_BYTES + 10, false);
        let id = snapshots.open(1, MonoTime::ZERO).expect("room");
        snapshots.save(b"k1", Ok(Some(record(b"12345", 1))), 2);
        assert!(snapshots.image(id, b"k1").is_ok());
        snapshots.save(b"k2", Ok(None), 3);
        let ended = snapshots.image(id, b"k1").expect_err("ended");
        assert!(ended.reason.contains("snapshot_bytes_max"), "{ended:?}");
        assert_eq!(snapshots.stats(MonoTime::ZERO).ended_too_old, 1);
        assert_eq!(snapshots.stats(MonoTime::ZERO).image_bytes, 0);
        let other = snapshots.open(3, MonoTime::ZERO).expect("room");
        snapshots.save(b"k3", Err("disk gone".to_owned()), 4);
        assert!(
            snapshots
                .images_in(other, &Bound::Unbounded, &Bound::Unbounded)
                .is_err()
        );
        assert_eq!(snapshots.stats(MonoTime::ZERO).ended_unreadable, 1);
        snapshots.check_invariants();
    }

    #[test]
    fn the_open_count_is_bounded() {
        let snapshots = Snapshots::new(1 << 20, false);
        for _ in 0..SNAPSHOTS_LIVE_MAX {
            assert!(snapshots.open(1, MonoTime::ZERO).is_some());
        }
        assert_eq!(snapshots.open(1, MonoTime::ZERO), None);
    }
}
