//! Paged scans for clients (the server's `Scan`, RESP `SCAN` and `KEYS`,
//! `jubectl scan`): one page of a range, forward or reverse, bounded in
//! entries and in bytes, and where the next page resumes.
//!
//! Invariant kept here: **a key present for the whole scan is returned
//! exactly once**. A page ends at the last key it returns and the next one
//! resumes strictly after it (before it, in reverse), so pages neither
//! overlap nor leave a gap; keys written or deleted while the scan runs
//! may or may not show. A page is never empty while keys remain, and
//! holds at least one entry whatever its byte bound.

use std::ops::Bound;

use crate::env::Env;
use crate::error::DbError;
use crate::record::Value;
use crate::sabotage::sabotaged;
use crate::store::RangeQuery;
use crate::wal::Durability;

use super::Db;
use super::read::{Found, RANGE_STEP_KEYS};

/// Entries a page holds by default.
pub const SCAN_LIMIT_DEFAULT: usize = 1000;
/// Key and value bytes a page holds by default (past them the page ends
/// after the entry that crossed them).
pub const SCAN_BYTES_DEFAULT: usize = 1024 * 1024;

/// One page of a scan: where it runs, and how much a page holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRequest {
    /// The lowest key.
    pub start: Bound<Vec<u8>>,
    /// The highest key.
    pub end: Bound<Vec<u8>>,
    /// Descending key order.
    pub reverse: bool,
    /// Entries per page, at least 1.
    pub limit: usize,
    /// Key and value bytes per page: the page ends once they are reached.
    pub bytes_max: usize,
    /// Keys without their values (no value read from the WAL).
    pub keys_only: bool,
}

impl ScanRequest {
    /// Every key from `start` to `end`, ascending, with values, in pages of
    /// the default bounds.
    pub fn new(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Self {
        ScanRequest {
            start,
            end,
            reverse: false,
            limit: SCAN_LIMIT_DEFAULT,
            bytes_max: SCAN_BYTES_DEFAULT,
            keys_only: false,
        }
    }

    /// Narrows the range to keys that begin with `prefix`.
    pub fn within_prefix(&mut self, prefix: &[u8]) {
        if prefix.is_empty() {
            return;
        }
        let start = Bound::Included(prefix.to_vec());
        if lower_is_above(&start, &self.start) {
            self.start = start;
        }
        let end = match prefix_successor(prefix) {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        if upper_is_below(&end, &self.end) {
            self.end = end;
        }
    }

    /// The request for the page after one that ended at `last`.
    pub fn resume_after(&mut self, last: Vec<u8>) {
        step_past(&mut self.start, &mut self.end, self.reverse, last);
    }
}

/// One page of entries, in the scan's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys and, unless keys only, their values.
    pub entries: Vec<(Vec<u8>, Option<Value>)>,
    /// The last key of this page when more may follow
    /// ([`ScanRequest::resume_after`] it); `None` once the range is done.
    pub resume_after: Option<Vec<u8>>,
}

/// Narrows `start..end` to what lies past `last` in the scan's direction.
pub(super) fn step_past(
    start: &mut Bound<Vec<u8>>,
    end: &mut Bound<Vec<u8>>,
    reverse: bool,
    last: Vec<u8>,
) {
    if reverse {
        *end = Bound::Excluded(last);
    } else {
        *start = Bound::Excluded(last);
    }
}

/// The smallest key above every key that begins with `prefix`, if any (a
/// prefix of `0xff` bytes has none).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut after = prefix.to_vec();
    while let Some(last) = after.pop() {
        if last < u8::MAX {
            after.push(last + 1);
            return Some(after);
        }
    }
    None
}

/// Whether lower bound `a` admits fewer keys than `b`.
fn lower_is_above(a: &Bound<Vec<u8>>, b: &Bound<Vec<u8>>) -> bool {
    match (a, b) {
        (Bound::Unbounded, _) => false,
        (_, Bound::Unbounded) => true,
        (Bound::Included(a), Bound::Included(b)) | (Bound::Excluded(a), Bound::Excluded(b)) => {
            a > b
        }
        (Bound::Included(a), Bound::Excluded(b)) => a > b,
        (Bound::Excluded(a), Bound::Included(b)) => a >= b,
    }
}

/// Whether upper bound `a` admits fewer keys than `b`.
fn upper_is_below(a: &Bound<Vec<u8>>, b: &Bound<Vec<u8>>) -> bool {
    match (a, b) {
        (Bound::Unbounded, _) => false,
        (_, Bound::Unbounded) => true,
        (Bound::Included(a), Bound::Included(b)) | (Bound::Excluded(a), Bound::Excluded(b)) => {
            a < b
        }
        (Bound::Included(a), Bound::Excluded(b)) => a < b,
        (Bound::Excluded(a), Bound::Included(b)) => a <= b,
    }
}

impl<E: Env> Db<E> {
    /// One page of `request`, read with the default durability (as
    /// [`Db::range`]: under `sync` it answers once what it read is durable,
    /// and expired keys it saw are deleted durably first). Not a snapshot:
    /// each key is read as of some moment during the call.
    pub async fn scan(&self, request: &ScanRequest) -> Result<ScanPage, DbError> {
        let limit = request.limit.max(1);
        let mut query = RangeQuery {
            start: request.start.clone(),
            end: request.end.clone(),
            reverse: request.reverse,
            limit: limit.min(RANGE_STEP_KEYS),
        };
        let now_ms = self.now_ms();
        let mut entries: Vec<(Vec<u8>, Option<Value>)> = Vec::new();
        let mut bytes = 0usize;
        let mut exhausted = false;
        while !exhausted && entries.len() < limit && bytes < request.bytes_max {
            query.limit = (limit - entries.len()).min(RANGE_STEP_KEYS);
            let step = self.store.range(&query).await?;
            let step_len = step.len();
            exhausted = step_len < query.limit;
            let mut expired_keys = Vec::new();
            let mut taken = 0;
            // The next step starts after the last key this one looked at,
            // live, expired or gone.
            let mut last_read: Option<Vec<u8>> = None;
            for (key, record) in step {
                taken += 1;
                last_read = Some(key.clone());
                if record.expired_at(now_ms) {
                    self.ttl.expired_read();
                    expired_keys.push(key);
                } else if request.keys_only {
                    bytes += key.len();
                    entries.push((key, None));
                } else {
                    match self.live(&key, Some(record), now_ms).await? {
                        Found::Live(record) => {
                            let value = Value::from_record(record)
                                .map_err(|reason| DbError::malformed(&key, reason))?;
                            bytes += key.len() + value.len_bytes();
                            entries.push((key, Some(value)));
                        }
                        Found::Expired => expired_keys.push(key),
                        Found::Missing => {}
                    }
                }
                if bytes >= request.bytes_max {
                    break;
                }
            }
            if bytes >= request.bytes_max && taken < step_len {
                // Stopped inside the step: what follows is not done.
                exhausted = false;
            }
            if let Some(last) = last_read {
                step_past(&mut query.start, &mut query.end, request.reverse, last);
            }
            if self.durability == Durability::Sync && !expired_keys.is_empty() {
                self.reap(expired_keys).await?;
            }
        }
        debug_assert!(entries.len() <= limit);
        debug_assert!(entries.windows(2).all(|pair| if request.reverse {
            pair[0].0 > pair[1].0
        } else {
            pair[0].0 < pair[1].0
        }));
        if self.durability == Durability::Sync {
            // Every record read carries a revision at or below this.
            self.watch.wait(self.store.applied_lsn()).await?;
        }
        let resume_after = if exhausted {
            None
        } else {
            entries.last().map(|(key, _)| key.clone())
        };
        if resume_after.is_some() && entries.len() > 1 && sabotaged!(self, ScanResumeSkips) {
            // Broken on purpose: the last entry is dropped, yet the next
            // page resumes after it.
            entries.pop();
        }
        Ok(ScanPage {
            entries,
            resume_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_narrows_both_bounds_and_its_successor_skips_trailing_ff() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        let mut request = ScanRequest::new(Bound::Unbounded, Bound::Unbounded);
        request.within_prefix(b"user:");
        assert_eq!(request.start, Bound::Included(b"user:".to_vec()));
        assert_eq!(request.end, Bound::Excluded(b"user;".to_vec()));
        // A bound already inside the prefix stays.
        let mut request = ScanRequest::new(
            Bound::Excluded(b"user:5".to_vec()),
            Bound::Included(b"user:9".to_vec()),
        );
        request.within_prefix(b"user:");
        assert_eq!(request.start, Bound::Excluded(b"user:5".to_vec()));
        assert_eq!(request.end, Bound::Included(b"user:9".to_vec()));
        // One outside it is narrowed.
        let mut request = ScanRequest::new(
            Bound::Included(b"a".to_vec()),
            Bound::Included(b"z".to_vec()),
        );
        request.within_prefix(b"m");
        assert_eq!(request.start, Bound::Included(b"m".to_vec()));
        assert_eq!(request.end, Bound::Excluded(b"n".to_vec()));
    }
}
