//! The model the log workload checks the WAL's log-file layer against, and
//! its oracles.
//!
//! The model knows, for every LSN the log accepted in the current history,
//! the payload written there; the highest LSN a sync acknowledged; and the
//! lowest LSN the workload still needs (it may ask the log to remove older
//! segments). After every recovery it checks:
//! - `prefix`: the recovered LSNs are one gap-free run;
//! - `no_phantom`: every recovered record is exactly what was written at
//!   its LSN in this history (so nothing never written, and nothing
//!   discarded by an earlier recovery, ever comes back);
//! - `durability`: every acknowledged LSN the workload still needs is
//!   there; what is missing is therefore a suffix of unacknowledged records.
//!
//! While clients run it checks `lsn_order`: the log hands out LSNs in
//! sequence and its durable LSN never moves back or past what was appended.
//!
//! A loss is excused only when the world damaged stored data (a misdirected
//! write), which no single-copy log can fully survive; even then a wrong
//! record is never excused. A flipped read damages only a copy, so it
//! excuses nothing: the log must re-read rather than believe it.

use std::collections::BTreeMap;

use jubilant_core::log::{LogError, RecoveryReport};

use super::verdict::Verdict;

/// What the log workload knows about the log.
pub(crate) struct LogModel {
    records: BTreeMap<u64, Vec<u8>>,
    next_lsn: u64,
    acked: u64,
    front: u64,
    pub verdict: Verdict,
}

impl LogModel {
    pub(crate) fn new() -> Self {
        LogModel {
            records: BTreeMap::new(),
            next_lsn: 1,
            acked: 0,
            front: 1,
            verdict: Verdict::default(),
        }
    }

    /// A new life begins: forget the previous life's transient state.
    pub(crate) fn begin_life(&mut self) {
        self.verdict.begin_life();
    }

    /// `(front, acked)`: the range of LSNs the workload may ask the log to
    /// drop segments below.
    pub(crate) fn removable(&self) -> (u64, u64) {
        (self.front, self.acked)
    }

    pub(crate) fn appended(&mut self, lsn: u64, payload: Vec<u8>) {
        self.verdict.check("lsn_order", 1);
        if lsn != self.next_lsn {
            self.verdict.fail(
                "lsn_order",
                format!("append got LSN {lsn}, expected {}", self.next_lsn),
            );
        }
        self.records.insert(lsn, payload);
        self.next_lsn = lsn + 1;
        self.verdict.stat("appended", 1);
    }

    pub(crate) fn synced(&mut self, durable: u64) {
        self.verdict.check("lsn_order", 1);
        if durable < self.acked || durable >= self.next_lsn {
            self.verdict.fail(
                "lsn_order",
                format!(
                    "sync reported LSN {durable} durable; acknowledged so far {}, appended up to {}",
                    self.acked,
                    self.next_lsn - 1
                ),
            );
        }
        self.verdict
            .stat("acked", durable.saturating_sub(self.acked));
        self.acked = self.acked.max(durable);
        self.verdict.stat("syncs", 1);
    }

    /// The workload no longer needs LSNs below `lsn` (declared before the
    /// removal starts, since a crash may interrupt it half-way).
    pub(crate) fn removing_before(&mut self, lsn: u64) {
        self.front = self.front.max(lsn);
        self.verdict.stat("segment_removals", 1);
    }

    /// A log call failed. Returns whether the client must stop (the log
    /// failed and only a restart helps).
    pub(crate) fn log_error(&mut self, err: &LogError) -> bool {
        if err.is_disk_full() {
            self.verdict.stat("disk_full_errors", 1);
            false
        } else {
            self.verdict.stat("log_failures", 1);
            self.verdict.poisoned = true;
            true
        }
    }

    pub(crate) fn open_error(&mut self) {
        self.verdict.stat("open_failures", 1);
        self.verdict.open_failed = true;
    }

    /// The log refused to open because of corruption.
    pub(crate) fn corrupt(&mut self, detail: String, excused: bool) {
        if excused {
            self.verdict.check("corruption_detected", 1);
            self.verdict.corruption_detected = true;
        } else {
            self.verdict.fail(
                "recovery",
                format!("the log was refused as corrupt, yet no corruption was injected: {detail}"),
            );
        }
    }

    /// The log was refused as corrupt where damage was injected, and the
    /// run goes on: the next open cuts at the damage (an operator accepting
    /// the loss), and the oracles judge what it keeps.
    pub(crate) fn refused_then_cut(&mut self) {
        self.verdict.check("corruption_detected", 1);
        self.verdict.stat("cuts_at_damage", 1);
    }

    /// The log opened and returned `records` (LSN, payload), and will give
    /// the next record `next_lsn`. Checks the oracles, then makes the
    /// recovered state the model's history.
    pub(crate) fn recovered(
        &mut self,
        records: Vec<(u64, Vec<u8>)>,
        next_lsn: u64,
        report: &RecoveryReport,
        excused: bool,
    ) {
        self.verdict.recoveries += 1;
        self.verdict.stat("recovered_records", records.len() as u64);
        self.verdict
            .stat("torn_tails", u64::from(report.torn_tail.is_some()));
        self.verdict
            .stat("tail_bytes_zeroed", report.tail_bytes_zeroed);
        self.verdict.stat("read_retries", report.read_retries);

        self.verdict.check("prefix", 1);
        for pair in records.windows(2) {
            if pair[1].0 != pair[0].0 + 1 {
                self.verdict.fail(
                    "prefix",
                    format!("recovered LSN {} right after {}", pair[1].0, pair[0].0),
                );
            }
        }
        if let Some((last, _)) = records.last()
            && last + 1 != next_lsn
        {
            self.verdict.fail(
                "prefix",
                format!("last recovered LSN {last}, but the log continues at {next_lsn}"),
            );
        }

        self.verdict.check("no_phantom", records.len() as u64);
        for (lsn, payload) in &records {
            match self.records.get(lsn) {
                Some(written) if written == payload => {}
                Some(written) => {
                    let message = format!(
                        "LSN {lsn} came back as {:?}, but {:?} was written there",
                        String::from_utf8_lossy(payload),
                        String::from_utf8_lossy(written)
                    );
                    self.verdict.fail("no_phantom", message);
                }
                None => self.verdict.fail(
                    "no_phantom",
                    format!(
                        "LSN {lsn} came back as {:?}, but nothing was written there",
                        String::from_utf8_lossy(payload)
                    ),
                ),
            }
        }

        if next_lsn > self.next_lsn {
            self.verdict.fail(
                "prefix",
                format!("the log continues at LSN {next_lsn}, but LSNs only up to {} were ever handed out", self.next_lsn - 1),
            );
        }

        let need_from = self.front.max(1);
        if self.acked >= need_from {
            self.verdict.check("durability", 1);
            let first = records.first().map(|(lsn, _)| *lsn);
            let last = records.last().map(|(lsn, _)| *lsn);
            let covered =
                first.is_some_and(|f| f <= need_from) && last.is_some_and(|l| l >= self.acked);
            if !covered {
                if excused {
                    self.verdict.stat("losses_excused_by_corruption", 1);
                } else {
                    let message = format!(
                        "acknowledged LSNs {need_from}..={} must survive, but recovery returned {}",
                        self.acked,
                        match (first, last) {
                            (Some(f), Some(l)) => format!("{f}..={l}"),
                            _ => "no records".to_owned(),
                        }
                    );
                    self.verdict.fail("durability", message);
                }
            }
        }

        // What recovery returned is the history now, and it is durable.
        // split_off, not retain: a recovery costs what it discards, not the
        // whole history.
        drop(self.records.split_off(&next_lsn));
        self.next_lsn = next_lsn;
        self.acked = next_lsn - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lsn: u64, s: &str) -> (u64, Vec<u8>) {
        (lsn, s.as_bytes().to_vec())
    }

    fn model_with(n: u64, acked: u64) -> LogModel {
        let mut m = LogModel::new();
        for lsn in 1..=n {
            m.appended(lsn, format!("r{lsn}").into_bytes());
        }
        if acked > 0 {
            m.synced(acked);
        }
        m
    }

    #[test]
    fn losing_an_unacknowledged_suffix_is_fine() {
        let mut m = model_with(5, 3);
        m.recovered(
            vec![rec(1, "r1"), rec(2, "r2"), rec(3, "r3"), rec(4, "r4")],
            5,
            &RecoveryReport::default(),
            false,
        );
        assert_eq!(m.verdict.failure, None);
    }

    #[test]
    fn losing_an_acknowledged_record_fails_durability() {
        let mut m = model_with(5, 3);
        m.recovered(
            vec![rec(1, "r1"), rec(2, "r2")],
            3,
            &RecoveryReport::default(),
            false,
        );
        assert_eq!(m.verdict.failure.map(|f| f.0), Some("durability"));
    }

    #[test]
    fn a_loss_under_injected_corruption_is_excused_but_counted() {
        let mut m = model_with(5, 3);
        m.recovered(vec![rec(1, "r1")], 2, &RecoveryReport::default(), true);
        assert_eq!(m.verdict.failure, None);
        assert_eq!(
            m.verdict.stats.get("losses_excused_by_corruption"),
            Some(&1)
        );
    }

    #[test]
    fn a_record_never_written_fails_no_phantom_even_under_corruption() {
        let mut m = model_with(3, 3);
        m.recovered(
            vec![rec(1, "r1"), rec(2, "XX"), rec(3, "r3")],
            4,
            &RecoveryReport::default(),
            true,
        );
        assert_eq!(m.verdict.failure.map(|f| f.0), Some("no_phantom"));
    }

    #[test]
    fn a_discarded_record_must_not_come_back() {
        let mut m = model_with(4, 2);
        // Recovery keeps 1..=2; LSN 3 is reused by a new record.
        m.recovered(
            vec![rec(1, "r1"), rec(2, "r2")],
            3,
            &RecoveryReport::default(),
            false,
        );
        m.appended(3, b"new3".to_vec());
        m.synced(3);
        m.recovered(
            vec![rec(1, "r1"), rec(2, "r2"), rec(3, "new3"), rec(4, "r4")],
            5,
            &RecoveryReport::default(),
            false,
        );
        assert_eq!(m.verdict.failure.map(|f| f.0), Some("no_phantom"));
    }

    #[test]
    fn a_log_continuing_past_any_lsn_handed_out_fails_prefix() {
        let mut m = model_with(3, 3);
        m.recovered(vec![], 9, &RecoveryReport::default(), false);
        assert_eq!(m.verdict.failure.map(|f| f.0), Some("prefix"));
    }

    #[test]
    fn a_gap_fails_prefix() {
        let mut m = model_with(3, 0);
        m.recovered(
            vec![rec(1, "r1"), rec(3, "r3")],
            4,
            &RecoveryReport::default(),
            false,
        );
        assert_eq!(m.verdict.failure.map(|f| f.0), Some("prefix"));
    }

    #[test]
    fn removed_segments_may_take_old_records_along() {
        let mut m = model_with(6, 6);
        m.removing_before(4);
        m.recovered(
            vec![rec(3, "r3"), rec(4, "r4"), rec(5, "r5"), rec(6, "r6")],
            7,
            &RecoveryReport::default(),
            false,
        );
        assert_eq!(m.verdict.failure, None);
        let mut m = model_with(6, 6);
        m.removing_before(4);
        m.recovered(
            vec![rec(5, "r5"), rec(6, "r6")],
            7,
            &RecoveryReport::default(),
            false,
        );
        assert_eq!(
            m.verdict.failure.map(|f| f.0),
            Some("durability"),
            "LSN 4 was still needed"
        );
    }

    #[test]
    fn a_durable_lsn_moving_back_fails_lsn_order() {
        let mut m = model_with(3, 3);
        m.synced(2);
        assert_eq!(m.verdict.failure.map(|f| f.0), Some("lsn_order"));
    }
}
