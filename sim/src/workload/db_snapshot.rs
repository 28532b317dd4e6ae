//! The db workload's snapshot reads (oracle `snapshot_reads`, design
//! 14.3): between its commits a committer now and then takes a snapshot,
//! holds it across its own later commits (which overwrite, delete and
//! expire its keys), other committers' commits, checkpoints, value GC and
//! sweeps, and reads its keys in it, one get or one bounded scan per
//! commit, until it lets it go.

use std::collections::BTreeSet;
use std::ops::Bound;

use jubilant_core::db::{Db, DbError, ScanRequest, Snapshot};
use jubilant_core::env::Clock;
use jubilant_core::mutex::lock;
use jubilant_io_sim::{SimEnv, SimRng};

use super::db::{Model, db_error};
use super::db_model::Frozen;

/// Percent of commits after which a committer holding no snapshot takes
/// one.
const SNAPSHOT_PCT: u64 = 8;
/// Reads a snapshot serves at most before it is let go.
const READS_MAX: u64 = 24;
/// Entries a snapshot scan's page holds at most.
const PAGE_LIMIT_MAX: u64 = 40;

/// A snapshot a committer holds, and its keys' state when it was taken.
pub(super) struct Held<'db> {
    snapshot: Snapshot<'db, SimEnv>,
    frozen: Frozen,
    reads_left: u64,
}

/// One snapshot step of committer `index`, between two of its commits
/// (none of its own in flight): take a snapshot, or read in the one it
/// holds. Returns `false` when the database failed the step.
pub(super) async fn step<'db>(
    env: &SimEnv,
    db: &'db Db<SimEnv>,
    model: &Model,
    index: usize,
    rng: &mut SimRng,
    held: &mut Option<Held<'db>>,
) -> bool {
    let Some(mut current) = held.take() else {
        if rng.below(100) >= SNAPSHOT_PCT {
            return true;
        }
        let began_ns = env.now_mono().as_nanos();
        return match db.snapshot().await {
            Ok(snapshot) => {
                let ended_ns = env.now_mono().as_nanos();
                env.trace(format_args!(
                    "committer {index} took a snapshot at LSN {}",
                    snapshot.read_lsn()
                ));
                let mut m = lock(model);
                let frozen = m.freeze(index, began_ns, ended_ns);
                m.verdict.stat("snapshots", 1);
                *held = Some(Held {
                    snapshot,
                    frozen,
                    reads_left: rng.between(1, READS_MAX),
                });
                true
            }
            Err(DbError::DiskFull(reason)) => {
                // It waits for the log to be durable through its LSN.
                env.trace(format_args!("committer {index} snapshot refused: {reason}"));
                true
            }
            Err(error) => {
                db_error(env, model, "snapshot", &error);
                false
            }
        };
    };
    let read = read(env, model, index, rng, &current).await;
    current.reads_left -= 1;
    match read {
        Ok(()) if current.reads_left > 0 => {
            *held = Some(current);
            true
        }
        Ok(()) => true,
        Err(DbError::SnapshotEnded { reason, .. }) => {
            env.trace(format_args!("committer {index} snapshot ended: {reason}"));
            lock(model).verdict.stat("snapshots_ended", 1);
            true
        }
        Err(error) => {
            db_error(env, model, "snapshot read", &error);
            false
        }
    }
}

/// One get, or one scan between two of the committer's keys, in `held`'s
/// snapshot, each key judged against the state it froze.
async fn read(
    env: &SimEnv,
    model: &Model,
    index: usize,
    rng: &mut SimRng,
    held: &Held<'_>,
) -> Result<(), DbError> {
    // Its keys then and since: a key first written after the snapshot
    // must read as missing in it.
    let keys: Vec<String> = held.frozen.keys(&lock(model).committers[index]);
    if keys.is_empty() {
        return Ok(());
    }
    let pick = |rng: &mut SimRng| keys[rng.below(keys.len() as u64) as usize].clone();
    if rng.chance(0.5) {
        let key = pick(rng);
        let found = held.snapshot.get(&key).await?;
        lock(model).snapshot_read(index, &held.frozen, &key, found.as_ref());
        return Ok(());
    }
    let (a, b) = (pick(rng), pick(rng));
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut request = ScanRequest::new(
        Bound::Included(low.clone().into_bytes()),
        Bound::Included(high.clone().into_bytes()),
    );
    request.reverse = rng.chance(0.5);
    request.limit = rng.between(1, PAGE_LIMIT_MAX) as usize;
    let suffix = format!("-c{index}");
    let mut found = std::collections::BTreeMap::new();
    let mut pages = 0u64;
    loop {
        let page = held.snapshot.scan(&request).await?;
        pages += 1;
        for (key, value) in page.entries {
            let Ok(key) = String::from_utf8(key) else {
                continue;
            };
            // Its keys, its marker among them.
            if key.ends_with(&suffix) {
                found.insert(key, value);
            }
        }
        match page.resume_after {
            Some(last) => request.resume_after(last),
            None => break,
        }
    }
    env.trace(format_args!(
        "committer {index} scanned {low}..={high} in its snapshot: {} keys in {pages} pages",
        found.len()
    ));
    let mut m = lock(model);
    let mut judged: BTreeSet<String> = keys
        .into_iter()
        .filter(|key| *key >= low && *key <= high)
        .collect();
    judged.extend(found.keys().cloned());
    for key in judged {
        let value = found.get(&key).cloned().flatten();
        m.snapshot_read(index, &held.frozen, &key, value.as_ref());
    }
    Ok(())
}
