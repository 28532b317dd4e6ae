//! Scans of the accounts (the engine's paged scan, embedded or through the
//! server's `Scan`), checked as a client sees them.
//!
//! Oracle `scan`: a scan's keys are distinct, in its order, all within the
//! account prefix, with integer values unless keys only; and since accounts
//! are never deleted, a later scan by the same client in the same life
//! returns every account an earlier one did (a page boundary that skipped
//! or repeated a key would show here). Pages are small and of random size,
//! forward or reverse, so scans cross many page boundaries while
//! transfers create accounts between pages.

use std::collections::BTreeSet;
use std::ops::Bound;

use jubilant_core::db::{ScanRequest, Value};
use jubilant_core::mutex::lock;
use jubilant_io_sim::SimRng;

use super::client::BankClient;
use super::shape::ACCOUNT_PREFIX;

/// Scans every account, a random page size at a time; returns whether
/// the client may go on.
pub(super) async fn scan_accounts(bank: &mut BankClient, rng: &mut SimRng) -> bool {
    let mut request = ScanRequest::new(Bound::Unbounded, Bound::Unbounded);
    request.within_prefix(ACCOUNT_PREFIX);
    request.reverse = rng.chance(0.5);
    request.keys_only = rng.chance(0.3);
    request.limit = rng.between(1, 40) as usize;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut bad_value = None;
    loop {
        let page = match bank.conn.scan_page(&request).await {
            Ok(page) => page,
            Err(failure) => return bank.failed("scan", failure).await,
        };
        for (key, value) in page.entries {
            match (&value, request.keys_only) {
                (None, true) | (Some(Value::Int(_)), false) => {}
                _ => bad_value = Some((key.clone(), value)),
            }
            keys.push(key);
        }
        match page.resume_after {
            Some(last) => request.resume_after(last),
            None => break,
        }
    }
    if bank.life.over() {
        // The server restarted meanwhile: pages of two lives.
        return false;
    }
    let mut m = lock(&bank.model);
    m.verdict.check("scan", 1);
    let ordered = keys.windows(2).all(|pair| {
        if request.reverse {
            pair[0] > pair[1]
        } else {
            pair[0] < pair[1]
        }
    });
    if !ordered {
        m.verdict.fail(
            "scan",
            format!(
                "a scan (reverse {}) returned keys out of order or twice",
                request.reverse
            ),
        );
        return false;
    }
    if let Some(key) = keys.iter().find(|key| !key.starts_with(ACCOUNT_PREFIX)) {
        m.verdict
            .fail("scan", format!("a scan of the accounts returned {key:?}"));
        return false;
    }
    if let Some((key, value)) = bad_value {
        m.verdict.fail(
            "scan",
            format!(
                "account {key:?} scanned with value {value:?} (keys only {})",
                request.keys_only
            ),
        );
        return false;
    }
    let found: BTreeSet<Vec<u8>> = keys.into_iter().collect();
    if let Some(lost) = bank.scanned.difference(&found).next() {
        m.verdict.fail(
            "scan",
            format!(
                "account {lost:?} was in an earlier scan of this life and not in this one ({} keys, page {}, reverse {})",
                found.len(),
                request.limit,
                request.reverse
            ),
        );
        return false;
    }
    m.verdict.stat("scans", 1);
    drop(m);
    bank.scanned = found;
    true
}
