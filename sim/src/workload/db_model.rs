//! The model the db workload checks the embedded database against.
//!
//! Each committer owns its keys (no two committers write the same key) and
//! commits one transaction at a time, each also writing the committer's
//! marker key with the transaction's sequence number. So after a restart
//! the marker says which of the committer's transactions survived, and
//! survival must be a prefix of its commit order. Oracles:
//! - `durability`: every acknowledged `sync` commit survives every crash;
//!   every acknowledged commit (sync or async) survives exactly when its
//!   LSN is at or below the end of the recovered WAL, so what a crash
//!   loses is a suffix of the global commit order;
//! - `no_phantom`: a write refused with disk full never appears, and no
//!   value that was never written is ever read;
//! - `state_matches_model`: after a restart every key holds what the
//!   surviving transactions wrote, in order;
//! - `read_your_writes`: while running, a committer reads back exactly its
//!   own last writes;
//! - `ttl`: a key written with a TTL reads as missing once the TTL has
//!   surely passed (by the monotonic clock, within the life that wrote it,
//!   whatever the wall clock does) and as its value while it surely has not;
//!   around the deadline, and after a restart, either is accepted, except
//!   that a value a `sync` read saw expired must never be read again, even
//!   after a restart whose wall clock went back;
//! - `recovery`: the database opens after every crash and `validate`
//!   finds nothing;
//! - `liveness`: with faults off, a client finishes a bounded batch;
//! - `updates`: committers increment one shared counter with `Db::update`
//!   (read-modify-write, retried on conflict): no two acknowledged
//!   increments answer the same value (none was lost to a race), and after
//!   a crash the counter holds at least every acknowledged one and no
//!   more than were tried;
//! - `snapshot_reads`: a committer takes a snapshot between its commits
//!   (so its keys' state then is exactly what its acknowledged
//!   transactions made), commits on, and every get and scan in the
//!   snapshot, while others commit, checkpoint and move values, shows its
//!   keys as they were then (TTLs judged at the snapshot's clock), or
//!   fails `SnapshotEnded`.

use std::collections::BTreeMap;

use jubilant_core::db::{Durability, Value};

use super::verdict::Verdict;

/// One committer's keys and their values (`None`: deleted or never set).
pub(crate) type Keys = BTreeMap<String, Option<Value>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Submitted, no answer yet (at a crash: may or may not have happened).
    InFlight,
    /// Acknowledged with this commit LSN.
    Acked(u64),
    /// Refused with disk full: must never appear.
    Refused,
    /// The database failed while it was in flight: may or may not have
    /// happened.
    Unknown,
}

/// When a key written with a TTL expires, as the model can bound it: the
/// engine reads its clock between the commit's submission and its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expiry {
    /// The transaction that wrote it.
    pub seq: u64,
    /// The life (process run) that wrote it; the bounds hold only there.
    pub life: u64,
    /// Monotonic nanoseconds: not expired before this.
    pub after_ns: u64,
    /// Monotonic nanoseconds: expired from this on.
    pub before_ns: u64,
}

/// Slack for the engine's whole-millisecond clock.
const CLOCK_SLACK_NS: u64 = 2_000_000;

#[derive(Clone, Debug)]
pub(crate) struct Commit {
    pub seq: u64,
    pub writes: Vec<(String, Option<Value>)>,
    /// TTLs (ms) of the keys it sets with one.
    pub ttls: BTreeMap<String, u64>,
    pub durability: Durability,
    pub outcome: Outcome,
    pub life: u64,
    pub submitted_ns: u64,
    pub answered_ns: u64,
}

impl Commit {
    fn expiries(&self, expiry: &mut BTreeMap<String, Expiry>) {
        for (key, _) in &self.writes {
            match self.ttls.get(key) {
                Some(ttl_ms) => {
                    let ttl_ns = ttl_ms.saturating_mul(1_000_000);
                    expiry.insert(
                        key.clone(),
                        Expiry {
                            seq: self.seq,
                            life: self.life,
                            after_ns: self.submitted_ns.saturating_add(ttl_ns),
                            before_ns: self.answered_ns.saturating_add(ttl_ns),
                        },
                    );
                }
                None => {
                    expiry.remove(key);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Committer {
    /// The committer's keys as of the last recovery check.
    base: Keys,
    /// Of those, the ones with a TTL.
    base_expiry: BTreeMap<String, Expiry>,
    /// Transactions submitted since then, in order.
    since: Vec<Commit>,
    pub next_seq: u64,
    /// Keys a `sync` read saw expired, with the transaction that wrote the
    /// value that expired: that value must never be read again.
    expired_seen: BTreeMap<String, u64>,
}

impl Committer {
    /// Every key the committer may have written: what a check must read.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.base.keys().cloned().collect();
        for commit in &self.since {
            keys.extend(commit.writes.iter().map(|(key, _)| key.clone()));
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Keys written by its transactions from the `mark`th since the last
    /// check on (all of them if a check came between).
    pub(crate) fn keys_written_since(&self, mark: usize) -> impl Iterator<Item = &String> {
        let from = if mark <= self.since.len() { mark } else { 0 };
        self.since[from..]
            .iter()
            .flat_map(|commit| commit.writes.iter().map(|(key, _)| key))
    }

    /// The keys as the running database holds them: the base plus every
    /// transaction since that was not refused (those still unanswered are
    /// left out; a committer only reads after its answer).
    pub(crate) fn live(&self) -> (Keys, BTreeMap<String, Expiry>) {
        let mut keys = self.base.clone();
        let mut expiry = self.base_expiry.clone();
        for commit in &self.since {
            if matches!(commit.outcome, Outcome::Acked(_)) {
                apply(&mut keys, &commit.writes);
                commit.expiries(&mut expiry);
            }
        }
        (keys, expiry)
    }

    /// What a database holding `found` (and `survived` in the marker, its
    /// WAL recovered through `lsn_end`) says of this committer's
    /// transactions since the last check, judged without changing the
    /// model: the first broken oracle, the checks made, and the state the
    /// surviving transactions make. With `acked_by` (a backup that began
    /// then), a transaction acknowledged by then must have survived.
    fn judge(
        &self,
        index: usize,
        survived: Option<u64>,
        found: &Keys,
        lsn_end: u64,
        acked_by: Option<u64>,
    ) -> Judgement {
        let base_seq = self.since.first().map(|commit| commit.seq);
        // A marker older than everything since the last check is the base's.
        let survives = |seq: u64| survived.is_some_and(|last| seq <= last);
        let mut failure: Option<(&'static str, String)> = None;
        let mut checks = 0;
        if let (Some(last), Some(first)) = (survived, base_seq)
            && last >= first
            && !self.since.iter().any(|commit| commit.seq == last)
        {
            failure = Some((
                "no_phantom",
                format!("committer {index}'s marker names transaction {last}, never submitted"),
            ));
        }
        for commit in &self.since {
            checks += 1;
            let kept = survives(commit.seq);
            match (&commit.outcome, kept) {
                (Outcome::Refused, true) if survived == Some(commit.seq) => {
                    failure.get_or_insert((
                        "no_phantom",
                        format!(
                            "committer {index}'s transaction {} was refused (disk full) but survived",
                            commit.seq
                        ),
                    ));
                }
                (Outcome::Acked(lsn), false)
                    if acked_by.is_some_and(|began| commit.answered_ns <= began) =>
                {
                    failure.get_or_insert((
                        "backup_complete",
                        format!(
                            "committer {index}'s transaction {} (LSN {lsn}) was acknowledged \
                             before the backup began and is missing from it (its WAL ends at \
                             {lsn_end})",
                            commit.seq
                        ),
                    ));
                }
                (Outcome::Acked(lsn), false)
                    if acked_by.is_none() && commit.durability == Durability::Sync =>
                {
                    failure.get_or_insert((
                        "durability",
                        format!(
                            "committer {index}'s sync transaction {} (LSN {lsn}) was acknowledged \
                             and lost (recovered WAL ends at {lsn_end})",
                            commit.seq
                        ),
                    ));
                }
                (Outcome::Acked(lsn), kept) if kept != (*lsn <= lsn_end) => {
                    failure.get_or_insert((
                        "durability",
                        format!(
                            "committer {index}'s transaction {} at LSN {lsn} {} though the \
                             recovered WAL ends at {lsn_end}: the loss is not a suffix",
                            commit.seq,
                            if kept { "survived" } else { "was lost" }
                        ),
                    ));
                }
                _ => {}
            }
        }
        // The surviving state: the base plus every surviving transaction
        // that was not refused, in order.
        let mut expected = self.base.clone();
        let mut expiry = self.base_expiry.clone();
        for commit in &self.since {
            if survives(commit.seq) && commit.outcome != Outcome::Refused {
                apply(&mut expected, &commit.writes);
                commit.expiries(&mut expiry);
            }
        }
        for (key, value) in &expected {
            checks += 1;
            let got = found.get(key).cloned().flatten();
            // A key with a TTL may have expired (and been swept) by now.
            let expired_ok = got.is_none() && expiry.contains_key(key);
            if got != *value && !expired_ok {
                failure.get_or_insert((
                    "state_matches_model",
                    format!("committer {index}'s {key} = {got:?}, expected {value:?}"),
                ));
            }
        }
        for (key, value) in found {
            if value.is_some() && !expected.contains_key(key) {
                failure.get_or_insert((
                    "no_phantom",
                    format!("committer {index}'s {key} = {value:?}, never written"),
                ));
            }
        }
        Judgement {
            failure,
            checks,
            expected,
            expiry,
        }
    }
}

/// What [`Committer::judge`] found.
struct Judgement {
    failure: Option<(&'static str, String)>,
    checks: u64,
    expected: Keys,
    expiry: BTreeMap<String, Expiry>,
}

fn apply(keys: &mut Keys, writes: &[(String, Option<Value>)]) {
    for (key, value) in writes {
        keys.insert(key.clone(), value.clone());
    }
}

pub(crate) struct DbModel {
    pub committers: Vec<Committer>,
    /// The current life; TTL bounds hold only within the life that wrote.
    pub life: u64,
    pub checkpoint_running: bool,
    /// A clean close was asked for in this life: committers stop.
    pub closing: bool,
    /// A close (`Db::close`) is running: its checkpoints, compaction and
    /// the WAL's restart.
    pub close_running: bool,
    pub recovering: bool,
    /// The lowest recovered WAL end of the opens since the last completed
    /// check: a commit above it was lost there, even if background work
    /// (GC, the sweeper) reused its LSN before the check could run.
    lsn_end_min: Option<u64>,
    /// Every commit LSN ever acknowledged, and to which transaction: a
    /// revision a client was told is never given to another write, in this
    /// life or any later one (SPEC 1).
    revisions: BTreeMap<u64, (usize, u64)>,
    /// The shared counter committers `update`.
    counter: Counter,
    pub verdict: Verdict,
}

/// The shared counter's history since the last recovery check.
#[derive(Debug, Default)]
struct Counter {
    /// Its value at the last check.
    base: i64,
    /// Increments acknowledged since: the value each wrote, at which LSN.
    acked: Vec<(i64, u64)>,
    /// Increments submitted since with no definite answer.
    pending: u64,
    /// Every value an increment was ever acknowledged with.
    values: std::collections::BTreeSet<i64>,
}

/// The value a committer's marker key holds after transaction `seq`.
pub(crate) fn marker_value(committer: usize, seq: u64) -> Value {
    Value::String(format!("c{committer}-s{seq}"))
}

fn parse_marker(committer: usize, value: &Value) -> Option<u64> {
    let Value::String(text) = value else {
        return None;
    };
    let rest = text.strip_prefix(&format!("c{committer}-s"))?;
    rest.parse().ok()
}

/// Whether a read made between `began_ns` and `ended_ns` (monotonic) in
/// life `life` may have found `found` where the model holds `written`
/// with `expiry`: exactly it, or missing once the TTL surely ran out;
/// either around the deadline, or for a TTL set in an earlier life (the
/// bounds hold only in the life that wrote). Also says whether the TTL's
/// bounds were judged.
fn read_agrees(
    written: Option<&Value>,
    expiry: Option<&Expiry>,
    life: u64,
    (began_ns, ended_ns): (u64, u64),
    found: Option<&Value>,
) -> (bool, bool) {
    // What the read must show, or `None` if the value and missing are
    // both right.
    let (strict, judged): (Option<Option<&Value>>, bool) = match expiry {
        None => (Some(written), false),
        Some(expiry) if written.is_some() && expiry.life == life => {
            let strict = if began_ns >= expiry.before_ns.saturating_add(CLOCK_SLACK_NS) {
                Some(None)
            } else if ended_ns.saturating_add(CLOCK_SLACK_NS) < expiry.after_ns {
                Some(written)
            } else {
                None
            };
            (strict, true)
        }
        Some(_) => (None, false),
    };
    let ok = match strict {
        Some(expected) => found == expected,
        None => found.is_none() || found == written,
    };
    (ok, judged)
}

/// A committer's keys as they were when it took a snapshot.
pub(crate) struct Frozen {
    keys: Keys,
    expiry: BTreeMap<String, Expiry>,
    life: u64,
    /// How many of the committer's transactions the model held then.
    since_mark: usize,
    /// The snapshot call ran between these (monotonic nanoseconds): its
    /// clock was read in between.
    began_ns: u64,
    ended_ns: u64,
}

impl Frozen {
    /// The keys a snapshot read must judge: those the committer had
    /// written when it was taken, and those it wrote since (missing in
    /// it).
    pub(crate) fn keys(&self, committer: &Committer) -> Vec<String> {
        let mut keys: Vec<String> = self
            .keys
            .keys()
            .chain(committer.keys_written_since(self.since_mark))
            .cloned()
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

impl DbModel {
    /// Committer `committer`'s keys now, for a snapshot it took between
    /// `began_ns` and `ended_ns` with none of its commits in flight.
    pub(crate) fn freeze(&self, committer: usize, began_ns: u64, ended_ns: u64) -> Frozen {
        let (keys, expiry) = self.committers[committer].live();
        Frozen {
            keys,
            expiry,
            life: self.life,
            since_mark: self.committers[committer].since.len(),
            began_ns,
            ended_ns,
        }
    }

    /// A read in a snapshot found `found` under `key`, one of committer
    /// `committer`'s keys.
    pub(crate) fn snapshot_read(
        &mut self,
        committer: usize,
        frozen: &Frozen,
        key: &str,
        found: Option<&Value>,
    ) {
        self.verdict.check("snapshot_reads", 1);
        let written = frozen.keys.get(key).and_then(Option::as_ref);
        let (ok, _) = read_agrees(
            written,
            frozen.expiry.get(key),
            frozen.life,
            (frozen.began_ns, frozen.ended_ns),
            found,
        );
        if !ok {
            self.verdict.fail(
                "snapshot_reads",
                format!(
                    "committer {committer}'s snapshot read {key} = {found:?}, but it held \
                     {written:?} when the snapshot was taken (expiry {:?})",
                    frozen.expiry.get(key)
                ),
            );
        }
    }

    /// A committer asks to increment the shared counter.
    pub(crate) fn update_submitted(&mut self) {
        self.counter.pending += 1;
    }

    /// The increment asked for answered: `Some((value, lsn))` when it
    /// wrote, `None` when it surely did not (a conflict, a refusal).
    pub(crate) fn update_answered(&mut self, wrote: Option<(i64, u64)>) {
        self.counter.pending -= 1;
        let Some((value, lsn)) = wrote else {
            return;
        };
        self.verdict.check("updates", 1);
        if !self.counter.values.insert(value) {
            self.verdict.fail(
                "updates",
                format!(
                    "two increments of the counter were both acknowledged with {value}: one \
                     overwrote the other"
                ),
            );
        }
        self.counter.acked.push((value, lsn));
    }

    /// The reopened database holds `found` in the counter, its WAL
    /// recovered through `lsn_end`.
    pub(crate) fn counter_recovered(&mut self, found: i64, lsn_end: u64, excused: bool) {
        let lsn_end = self.lsn_end_min.unwrap_or(lsn_end).min(lsn_end);
        let counter = std::mem::take(&mut self.counter.acked);
        let durable_min = counter
            .iter()
            .filter(|(_, lsn)| *lsn <= lsn_end)
            .map(|(value, _)| *value)
            .max()
            .unwrap_or(self.counter.base);
        let tried_max = self.counter.base + counter.len() as i64 + self.counter.pending as i64;
        self.verdict.check("updates", 1);
        if !excused && (found < durable_min || found > tried_max) {
            self.verdict.fail(
                "updates",
                format!(
                    "the counter recovered as {found}, but acknowledged increments reached \
                     {durable_min} and at most {tried_max} were tried"
                ),
            );
        }
        self.counter.base = found;
        self.counter.pending = 0;
        if excused {
            // Damage may have taken increments back: their values may be
            // written again.
            self.counter.values.retain(|value| *value <= found);
        }
    }

    pub(crate) fn new(committers: usize) -> Self {
        DbModel {
            committers: (0..committers).map(|_| Committer::default()).collect(),
            life: 0,
            checkpoint_running: false,
            closing: false,
            close_running: false,
            recovering: false,
            lsn_end_min: None,
            revisions: BTreeMap::new(),
            counter: Counter::default(),
            verdict: Verdict::default(),
        }
    }

    pub(crate) fn begin_life(&mut self) {
        self.life += 1;
        self.verdict.begin_life();
        self.checkpoint_running = false;
        self.closing = false;
        self.close_running = false;
    }

    /// The database opened, its recovered WAL ending at `lsn_end`.
    pub(crate) fn opened(&mut self, lsn_end: u64, excused: bool) {
        self.lsn_end_min = Some(self.lsn_end_min.map_or(lsn_end, |min| min.min(lsn_end)));
        if excused {
            // Damage may have cut records, and with them the LSN skip that
            // kept the lost LSNs from being handed out again.
            self.revisions.retain(|lsn, _| *lsn <= lsn_end);
        }
    }

    /// Records a transaction about to be submitted at `now_ns`; returns
    /// its sequence.
    pub(crate) fn submit(
        &mut self,
        committer: usize,
        mut writes: Vec<(String, Option<Value>)>,
        ttls: BTreeMap<String, u64>,
        marker: String,
        durability: Durability,
        now_ns: u64,
    ) -> (u64, Vec<(String, Option<Value>)>) {
        let life = self.life;
        let c = &mut self.committers[committer];
        let seq = c.next_seq;
        c.next_seq += 1;
        writes.push((marker, Some(marker_value(committer, seq))));
        c.since.push(Commit {
            seq,
            writes: writes.clone(),
            ttls,
            durability,
            outcome: Outcome::InFlight,
            life,
            submitted_ns: now_ns,
            // Unknown until answered: no upper bound on its clock reading.
            answered_ns: u64::MAX,
        });
        (seq, writes)
    }

    pub(crate) fn answered(&mut self, committer: usize, seq: u64, outcome: Outcome, now_ns: u64) {
        let c = &mut self.committers[committer];
        let commit = c
            .since
            .iter_mut()
            .rev()
            .find(|commit| commit.seq == seq)
            .expect("an answered transaction was submitted");
        let acked = match outcome {
            Outcome::Acked(lsn) => Some(lsn),
            _ => None,
        };
        commit.outcome = outcome;
        commit.answered_ns = now_ns;
        if let Some(lsn) = acked {
            self.verdict.check("revisions", 1);
            if let Some((other, other_seq)) = self.revisions.insert(lsn, (committer, seq)) {
                self.verdict.fail(
                    "revisions",
                    format!(
                        "LSN {lsn} was acknowledged to committer {committer}'s transaction \
                         {seq}, and before to committer {other}'s transaction {other_seq}: a \
                         revision was handed out twice"
                    ),
                );
            }
        }
    }

    /// A committer read `key` between `began_ns` and `ended_ns` and found
    /// `found`.
    pub(crate) fn read(
        &mut self,
        committer: usize,
        key: &str,
        found: Option<&Value>,
        sync: bool,
        began_ns: u64,
        ended_ns: u64,
    ) {
        self.verdict.check("read_your_writes", 1);
        let (live, expiry) = self.committers[committer].live();
        let written = live.get(key).cloned().flatten();
        if sync
            && found.is_none()
            && written.is_some()
            && let Some(expiry) = expiry.get(key)
        {
            self.committers[committer]
                .expired_seen
                .insert(key.to_owned(), expiry.seq);
        }
        let (ok, ttl_judged) = read_agrees(
            written.as_ref(),
            expiry.get(key),
            self.life,
            (began_ns, ended_ns),
            found,
        );
        if ttl_judged {
            self.verdict.check("ttl", 1);
        }
        if !ok {
            let oracle = if expiry.contains_key(key) {
                "ttl"
            } else {
                "read_your_writes"
            };
            self.verdict.fail(
                oracle,
                format!(
                    "committer {committer} read {key} = {found:?}, but wrote {written:?} \
                     (expiry {:?}, read between {began_ns} and {ended_ns} ns)",
                    expiry.get(key)
                ),
            );
        }
    }

    /// Checks the reopened database: `markers[c]` is committer `c`'s marker
    /// value, `contents[c]` its keys as read, `lsn_end` the end of the
    /// recovered WAL. Then makes the surviving state the new base.
    ///
    /// With `excused` (the world damaged stored data: a misdirected or
    /// dropped write can erase an acknowledged record), a mismatch is
    /// counted as an excused loss and what was read becomes the base.
    pub(crate) fn recovered(
        &mut self,
        markers: &[Option<Value>],
        contents: &[Keys],
        lsn_end: u64,
        excused: bool,
    ) {
        let lsn_end = self.lsn_end_min.take().unwrap_or(lsn_end).min(lsn_end);
        for (index, marker) in markers.iter().enumerate() {
            if self.verdict.failure.is_some() {
                return;
            }
            let Some(survived) = self.survived(index, marker.as_ref(), "") else {
                return;
            };
            self.check_committer(index, survived, &contents[index], lsn_end, excused);
        }
    }

    fn check_committer(
        &mut self,
        index: usize,
        survived: Option<u64>,
        found: &Keys,
        lsn_end: u64,
        excused: bool,
    ) {
        let Judgement {
            mut failure,
            checks,
            expected,
            expiry,
        } = self.committers[index].judge(index, survived, found, lsn_end, None);
        let seen = std::mem::take(&mut self.committers[index].expired_seen);
        let mut still_seen = BTreeMap::new();
        for (key, seq) in seen {
            if expiry.get(&key).map(|e| e.seq) != Some(seq) {
                continue; // written again since
            }
            self.verdict.check("ttl", 1);
            if let Some(value) = found.get(&key).cloned().flatten() {
                failure.get_or_insert((
                    "ttl",
                    format!(
                        "committer {index}'s {key} = {value:?} after recovery, though a sync \
                         read saw it expired"
                    ),
                ));
            }
            still_seen.insert(key, seq);
        }
        self.committers[index].expired_seen = still_seen;
        let survives = |seq: u64| survived.is_some_and(|last| seq <= last);
        self.verdict.check("durability", checks);
        self.verdict
            .check("state_matches_model", expected.len() as u64);
        if let Some((oracle, message)) = failure {
            if !excused {
                self.verdict.fail(oracle, message);
                return;
            }
            // Nothing to compare against but what was read, which the
            // oracles no longer vouch for.
            self.verdict.stat("excused_losses", 1);
            let c = &mut self.committers[index];
            c.base = found.clone();
            // Which of the commits survived is what the damage made
            // unknown, and with it the TTL of each value read: any of them
            // may expire from now on (life 0: bounds from no life).
            let mut unknown = expiry;
            for (key, value) in found {
                if value.is_some() {
                    unknown.entry(key.clone()).or_insert(Expiry {
                        seq: 0,
                        life: 0,
                        after_ns: 0,
                        before_ns: u64::MAX,
                    });
                }
            }
            c.base_expiry = unknown;
            c.since.clear();
            return;
        }
        // Keys with a TTL keep their value and TTL whether or not they read
        // as expired now: an unswept key that only an async read (or none)
        // saw expired may read as live after a restart whose wall clock
        // went back.
        let c = &mut self.committers[index];
        c.base = expected;
        c.base_expiry = expiry;
        let lost = c
            .since
            .iter()
            .filter(|commit| matches!(commit.outcome, Outcome::Acked(_)) && !survives(commit.seq))
            .count();
        self.verdict.stat("acked_async_lost", lost as u64);
        c.since.clear();
    }

    /// The last transaction of committer `index` that `marker` says
    /// survived (`Some(None)`: none), or `None` after failing `no_phantom`
    /// for a marker never written (`context` begins the message).
    fn survived(
        &mut self,
        index: usize,
        marker: Option<&Value>,
        context: &str,
    ) -> Option<Option<u64>> {
        let Some(value) = marker else {
            return Some(None);
        };
        let seq = parse_marker(index, value);
        if seq.is_none() {
            self.verdict.fail(
                "no_phantom",
                format!("{context}committer {index}'s marker holds {value:?}, never written"),
            );
        }
        seq.map(Some)
    }

    /// Checks a backup that began at monotonic `began_ns`, opened from its
    /// copy: `markers`, `contents` and `lsn_end` as for
    /// [`DbModel::recovered`], but the model is left as it is (the source
    /// runs on). Every transaction acknowledged before the backup began
    /// must be in it, and what it holds must be what a prefix of each
    /// committer's transactions wrote (oracles `backup_complete`,
    /// `no_phantom`, `state_matches_model`).
    pub(crate) fn check_backup(
        &mut self,
        markers: &[Option<Value>],
        contents: &[Keys],
        lsn_end: u64,
        began_ns: u64,
        excused: bool,
    ) {
        for (index, marker) in markers.iter().enumerate() {
            let Some(survived) = self.survived(index, marker.as_ref(), "in a backup: ") else {
                return;
            };
            let judgement = self.committers[index].judge(
                index,
                survived,
                &contents[index],
                lsn_end,
                Some(began_ns),
            );
            self.verdict.check("backup_complete", judgement.checks);
            if let Some((oracle, message)) = judgement.failure {
                if excused {
                    self.verdict.stat("backup_excused_losses", 1);
                    return;
                }
                self.verdict.fail(oracle, format!("in a backup: {message}"));
                return;
            }
        }
    }

    /// Whether committers stop: the life is over, or a clean close was
    /// asked for.
    pub(crate) fn stops_committers(&self) -> bool {
        self.verdict.poisoned || self.closing
    }

    pub(crate) fn corrupt(&mut self, detail: String, excused: bool) {
        self.corrupt_as("recovery", detail, excused);
    }

    /// As [`DbModel::corrupt`], failing `oracle` (the one that guards what
    /// was found damaged).
    pub(crate) fn corrupt_as(&mut self, oracle: &'static str, detail: String, excused: bool) {
        self.verdict.check(oracle, 1);
        if excused {
            self.verdict.corruption_detected = true;
        } else {
            self.verdict.fail(
                oracle,
                format!("corruption without any damaging fault: {detail}"),
            );
        }
    }
}
