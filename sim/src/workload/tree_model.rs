//! The model the tree workload checks the store against, and its oracles.
//!
//! Each mutation gets the next LSN and is applied alone, so every LSN names
//! one state of the tree. The model keeps the state as of the last
//! acknowledged checkpoint (`base`, at `base_lsn`) and every mutation since,
//! so it can rebuild the state at any later LSN. Oracles:
//! - `read_matches_model`: a read returns exactly the live model's record
//!   (a damaged page must surface as an error, never as data);
//! - `recovery`: after every restart the store opens and `validate` finds
//!   nothing;
//! - `durable_state`: the reopened tree equals the model at the reopened
//!   checkpoint LSN, and that LSN is at least the last acknowledged one;
//! - `liveness`: with faults off, a client finishes a bounded batch.
//!
//! Only damage to stored data (a misdirected or dropped write) excuses a
//! refused open, a validate finding or a lost checkpoint; nothing excuses a
//! wrong record.

use std::collections::BTreeMap;

use std::ops::Bound;

use jubilant_core::record::{Mutation, Record};
use jubilant_core::store::RangeQuery;

use super::verdict::Verdict;

pub(crate) type Contents = BTreeMap<Vec<u8>, Record>;

pub(crate) struct TreeModel {
    base: Contents,
    base_lsn: u64,
    history: Vec<(u64, Mutation)>,
    /// The tree as the running store holds it.
    pub live: Contents,
    /// The mutation a writer handed to the store and has not seen return:
    /// the store may hold the tree with or without it.
    in_flight: Vec<Mutation>,
    pub next_lsn: u64,
    /// Bumped when a mutation starts and when it returns, so a multi-step
    /// read can tell whether the tree moved under it.
    pub version: u64,
    pub checkpoint_running: bool,
    pub verdict: Verdict,
}

fn apply(contents: &mut Contents, mutation: &Mutation) {
    match mutation {
        Mutation::Put { key, record } => {
            contents.insert(key.clone(), record.clone());
        }
        Mutation::Delete { key } => {
            contents.remove(key);
        }
    }
}

/// What `query` returns over `contents`.
fn answer(contents: &Contents, query: &RangeQuery) -> Vec<(Vec<u8>, Record)> {
    let all = contents
        .range::<Vec<u8>, _>((query.start.clone(), query.end.clone()))
        .map(|(key, record)| (key.clone(), record.clone()));
    if query.reverse {
        all.rev().take(query.limit).collect()
    } else {
        all.take(query.limit).collect()
    }
}

fn describe(record: Option<&Record>) -> String {
    match record {
        None => "missing".to_owned(),
        Some(record) => format!("revision {} {:?}", record.revision, record.value_type),
    }
}

impl TreeModel {
    pub(crate) fn new() -> Self {
        TreeModel {
            base: Contents::new(),
            base_lsn: 0,
            history: Vec::new(),
            live: Contents::new(),
            in_flight: Vec::new(),
            next_lsn: 1,
            version: 0,
            checkpoint_running: false,
            verdict: Verdict::default(),
        }
    }

    pub(crate) fn begin_life(&mut self) {
        self.verdict.begin_life();
        self.checkpoint_running = false;
        self.in_flight.clear();
    }

    /// A writer hands `batch` to the store at `lsn`. From now on the store
    /// may hold it, and any checkpoint at or above `lsn` includes all of it
    /// (the store applies before it returns, and may checkpoint before it
    /// returns), so it joins the history at once.
    pub(crate) fn applying(&mut self, lsn: u64, batch: Vec<Mutation>) {
        assert!(self.in_flight.is_empty(), "one batch in flight at a time");
        self.history
            .extend(batch.iter().map(|mutation| (lsn, mutation.clone())));
        self.in_flight = batch;
        self.version += 1;
    }

    /// The store returned from applying the batch in flight.
    pub(crate) fn applied(&mut self) {
        let batch = std::mem::take(&mut self.in_flight);
        assert!(!batch.is_empty(), "a batch in flight");
        for mutation in &batch {
            apply(&mut self.live, mutation);
        }
        self.version += 1;
        self.verdict.stat("mutations", batch.len() as u64);
        self.verdict.stat("batches", 1);
    }

    /// The states a reader may see besides the live tree: the live tree with
    /// each non-empty prefix of the batch in flight (a batch that reads
    /// pages lets readers in between its mutations).
    fn in_flight_states(&self) -> Vec<Contents> {
        let mut state = self.live.clone();
        self.in_flight
            .iter()
            .map(|mutation| {
                apply(&mut state, mutation);
                state.clone()
            })
            .collect()
    }

    fn state_at(&self, lsn: u64) -> Contents {
        let mut contents = self.base.clone();
        for (_, mutation) in self.history.iter().take_while(|(at, _)| *at <= lsn) {
            apply(&mut contents, mutation);
        }
        contents
    }

    /// A checkpoint of everything up to `lsn` is durable.
    pub(crate) fn checkpointed(&mut self, lsn: u64) {
        if lsn < self.base_lsn {
            self.verdict.fail(
                "durable_state",
                format!("checkpoint LSN went back from {} to {lsn}", self.base_lsn),
            );
            return;
        }
        self.base = self.state_at(lsn);
        self.base_lsn = lsn;
        let keep = self.history.partition_point(|(at, _)| *at <= lsn);
        self.history.drain(..keep);
        self.verdict.stat("checkpoints", 1);
    }

    /// A read of `key` that began at model `version` returned `found`; it
    /// must be the live record, or one a prefix of the batch in flight
    /// leaves. A read that a batch's start or return overlapped is not
    /// judged.
    pub(crate) fn read(&mut self, version: u64, key: &[u8], found: Option<&Record>) {
        if self.version != version {
            return;
        }
        self.verdict.check("read_matches_model", 1);
        let expected = self.live.get(key);
        let written = self
            .in_flight
            .iter()
            .filter(|mutation| mutation.key() == key)
            .map(|mutation| match mutation {
                Mutation::Put { record, .. } => Some(record),
                Mutation::Delete { .. } => None,
            });
        if expected != found && !written.into_iter().any(|written| written == found) {
            self.verdict.fail(
                "read_matches_model",
                format!(
                    "key {:?}: read {} but the model has {}",
                    String::from_utf8_lossy(key),
                    describe(found),
                    describe(expected)
                ),
            );
        }
    }

    /// A range read that began at model `version` returned `found`; it must
    /// equal the query over one of the visible states.
    pub(crate) fn range(&mut self, version: u64, query: &RangeQuery, found: &[(Vec<u8>, Record)]) {
        if self.version != version {
            return;
        }
        self.verdict.check("range_matches_model", 1);
        let expected = answer(&self.live, query);
        if expected == found
            || self
                .in_flight_states()
                .iter()
                .any(|state| answer(state, query) == found)
            || self.range_mixes_prefixes(query, found)
        {
            return;
        }
        let expected = &expected;
        let short = |key: &[u8]| String::from_utf8_lossy(&key[..key.len().min(12)]).into_owned();
        let first = expected
            .iter()
            .zip(found)
            .position(|(a, b)| a != b)
            .map(|at| {
                format!(
                    "entry {at}: expected {} rev {}, found {} rev {}",
                    short(&expected[at].0),
                    expected[at].1.revision,
                    short(&found[at].0),
                    found[at].1.revision
                )
            });
        let start = match &query.start {
            Bound::Included(key) | Bound::Excluded(key) => short(key),
            Bound::Unbounded => "the start".to_owned(),
        };
        let message = format!(
            "range from {start} (reverse {}, limit {}) returned {} entries, expected {}; {first:?}",
            query.reverse,
            query.limit,
            found.len(),
            expected.len()
        );
        self.verdict.fail("range_matches_model", message);
    }

    /// Whether `found` could come from a range that read different pages
    /// at different prefixes of the batch in flight (a range that has to
    /// read pages releases the store between them, so it sees no single
    /// state): every entry must be a record its key has in some visible
    /// state, in order, and every key present in all visible states
    /// between the start and the last entry returned must be there.
    fn range_mixes_prefixes(&self, query: &RangeQuery, found: &[(Vec<u8>, Record)]) -> bool {
        if self.in_flight.is_empty() {
            return false;
        }
        let mut states = self.in_flight_states();
        states.push(self.live.clone());
        let ordered = found.windows(2).all(|pair| {
            if query.reverse {
                pair[0].0 > pair[1].0
            } else {
                pair[0].0 < pair[1].0
            }
        });
        let possible = found
            .iter()
            .all(|(key, record)| states.iter().any(|state| state.get(key) == Some(record)));
        if !ordered || !possible || found.len() > query.limit {
            return false;
        }
        // Keys every visible state holds, in the window the range covered.
        let window = RangeQuery {
            limit: usize::MAX,
            ..query.clone()
        };
        let covered: Vec<Vec<u8>> = answer(&self.live, &window)
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| states.iter().all(|state| state.contains_key(key)))
            .collect();
        let reached = |key: &Vec<u8>| match found.last() {
            _ if found.len() < query.limit => true,
            Some((last, _)) => {
                if query.reverse {
                    key >= last
                } else {
                    key <= last
                }
            }
            None => true,
        };
        covered
            .iter()
            .filter(|key| reached(key))
            .all(|key| found.iter().any(|(k, _)| k == key))
    }

    /// A full scan after a restart at checkpoint `lsn` returned `found`.
    /// Returns whether it matched; the model then continues from it.
    pub(crate) fn reopened(&mut self, lsn: u64, found: &Contents, excused: bool) {
        self.verdict.recoveries += 1;
        self.verdict.check("durable_state", 1);
        if lsn < self.base_lsn && !excused {
            self.verdict.fail(
                "durable_state",
                format!(
                    "reopened at checkpoint LSN {lsn}, below the acknowledged {}",
                    self.base_lsn
                ),
            );
            return;
        }
        let highest = self.next_lsn.saturating_sub(1);
        if lsn > highest {
            self.verdict.fail(
                "durable_state",
                format!("reopened at checkpoint LSN {lsn}, above any LSN applied ({highest})"),
            );
            return;
        }
        let expected = if lsn >= self.base_lsn {
            self.state_at(lsn)
        } else {
            found.clone()
        };
        if lsn < self.base_lsn {
            // Excused loss: nothing to compare against but what was read,
            // which `read_matches_model` no longer vouches for.
            self.verdict.stat("excused_losses", 1);
        }
        if *found != expected {
            let first = expected
                .iter()
                .zip(found.iter())
                .find(|(a, b)| a != b)
                .map(|((k, _), _)| String::from_utf8_lossy(k).into_owned());
            self.verdict.fail(
                "durable_state",
                format!(
                    "reopened at LSN {lsn}: {} keys, the model has {} (first difference at {first:?})",
                    found.len(),
                    expected.len()
                ),
            );
            return;
        }
        self.base = expected.clone();
        self.base_lsn = lsn;
        self.history.clear();
        self.in_flight.clear();
        self.live = expected;
        self.version += 1;
    }

    /// The store refused to open or validate because of damage.
    pub(crate) fn corrupt(&mut self, detail: String, excused: bool) {
        self.verdict.check("recovery", 1);
        if excused {
            self.verdict.corruption_detected = true;
        } else {
            self.verdict.fail(
                "recovery",
                format!("corruption without any damaging fault: {detail}"),
            );
        }
    }
}
