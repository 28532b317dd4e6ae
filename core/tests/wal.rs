//! Group commit over the simulated disk: batching, durability classes,
//! failure, and what a power loss keeps.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use jubilant_core::log::{Log, LogConfig};
use jubilant_core::wal::{CommitError, Durability, GroupCommit, WalRecord};
use jubilant_io_sim::{Fault, FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);

/// Small segments keep the simulated disk small; several batches still
/// fit in one.
fn config() -> LogConfig {
    let mut config = LogConfig::new(PathBuf::from("/db/wal"));
    config.segment_bytes = 64 * 1024;
    config.record_bytes_max = 4096;
    config
}

/// Opens the log (recovering it) and returns it with every record in it.
fn open(world: &World) -> (Log<SimEnv>, Vec<WalRecord>) {
    let env = world.env(N);
    world.block_on(N, async move {
        let mut records = Vec::new();
        let (log, _) = Log::open(env, config(), |_, payload| {
            records.push(WalRecord::decode(payload).expect("a WAL record"));
        })
        .await
        .expect("open the log");
        (log, records)
    })
}

fn transaction(txn: u64) -> Vec<WalRecord> {
    vec![
        WalRecord::Begin { txn },
        WalRecord::Tombstone {
            txn,
            key: format!("key-{txn}"),
        },
        WalRecord::Commit { txn },
    ]
}

fn committed(records: &[WalRecord]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|record| match record {
            WalRecord::Commit { txn } => Some(*txn),
            _ => None,
        })
        .collect()
}

/// Runs `committers` concurrent commits of one transaction each; returns
/// each committer's outcome, in committer order.
fn commit_concurrently(
    world: &World,
    wal: &GroupCommit,
    txns: std::ops::Range<u64>,
    durability: Durability,
) -> Vec<Result<u64, CommitError>> {
    let wal = wal.clone();
    world.block_on(N, async move {
        join_all(txns.map(|txn| {
            let wal = wal.clone();
            async move { wal.commit(&transaction(txn), durability).await }
        }))
        .await
    })
}

#[test]
fn a_lone_committer_pays_one_fsync_per_commit() {
    let world = World::new(1, FaultConfig::none());
    let (log, _) = open(&world);
    let (wal, _writer) = GroupCommit::start(&world.env(N), log);
    let mut lsns = Vec::new();
    for txn in 1..=5 {
        let outcome = commit_concurrently(&world, &wal, txn..txn + 1, Durability::Sync);
        lsns.push(outcome[0].clone().expect("commit"));
    }
    assert_eq!(
        lsns,
        vec![3, 6, 9, 12, 15],
        "the commit LSN is the Commit record's"
    );
    let stats = wal.stats();
    assert_eq!((stats.commits, stats.batches, stats.fsyncs), (5, 5, 5));
}

#[test]
fn concurrent_committers_share_fsyncs_and_every_acknowledged_commit_survives_a_power_loss() {
    let world = World::new(2, FaultConfig::none());
    let (log, _) = open(&world);
    let (wal, _writer) = GroupCommit::start(&world.env(N), log);
    let outcomes = commit_concurrently(&world, &wal, 1..65, Durability::Sync);
    let mut lsns: Vec<u64> = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("commit"))
        .collect();
    lsns.sort_unstable();
    lsns.dedup();
    assert_eq!(lsns.len(), 64, "every commit has its own LSN");
    let stats = wal.stats();
    assert_eq!(stats.commits, 64);
    assert!(
        stats.fsyncs < 64 / 4,
        "64 committers took {} fsyncs",
        stats.fsyncs
    );
    assert!(stats.batch_commits_max > 4, "{stats:?}");

    world.crash(N);
    let (_, records) = open(&world);
    let mut found = committed(&records);
    found.sort_unstable();
    assert_eq!(found, (1..65).collect::<Vec<u64>>());
}

#[test]
fn async_commits_are_answered_before_the_sync_and_lost_only_as_a_suffix() {
    let world = World::new(3, FaultConfig::none());
    let (log, _) = open(&world);
    let (wal, _writer) = GroupCommit::start(&world.env(N), log);
    let answered: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    for txn in 1..=40 {
        let wal = wal.clone();
        let answered = Arc::clone(&answered);
        world.spawn(N, "committer", async move {
            if let Ok(lsn) = wal.commit(&transaction(txn), Durability::Async).await {
                answered.lock().expect("lock").push((lsn, txn));
            }
        });
    }
    // Lose power, with every unsynced write lost, while batches are still
    // being written.
    for _ in 0..60 {
        world.step();
    }
    let mut acknowledged = answered.lock().expect("lock").clone();
    acknowledged.sort_unstable();
    let mut faults = FaultConfig::none();
    faults.set(Fault::WriteLost, 1.0);
    world.set_faults(faults);
    world.crash(N);
    world.set_faults(FaultConfig::none());
    let (_, records) = open(&world);
    let found = committed(&records);
    assert!(
        !acknowledged.is_empty(),
        "nothing was answered before the crash"
    );
    assert!(
        found.len() < acknowledged.len(),
        "the power loss lost no acknowledged async commit: the test did not test"
    );
    // The acknowledged commits that survived are the first ones in commit
    // (LSN) order: a suffix was lost, never one in the middle.
    let kept: Vec<u64> = acknowledged
        .iter()
        .map(|(_, txn)| *txn)
        .take_while(|txn| found.contains(txn))
        .collect();
    assert!(
        acknowledged
            .iter()
            .skip(kept.len())
            .all(|(_, txn)| !found.contains(txn)),
        "a commit was lost before one that survived: acknowledged {acknowledged:?}, found {found:?}"
    );
}

#[test]
fn a_failed_fsync_fails_every_waiting_commit_and_every_later_one() {
    let mut faults = FaultConfig::none();
    faults.set(Fault::FsyncError, 1.0);
    let world = World::new(4, FaultConfig::none());
    let (log, _) = open(&world);
    let (wal, _writer) = GroupCommit::start(&world.env(N), log);
    world.set_faults(faults);
    let outcomes = commit_concurrently(&world, &wal, 1..9, Durability::Sync);
    assert!(
        outcomes.iter().all(Result::is_err),
        "a commit was acknowledged without a durable sync: {outcomes:?}"
    );
    world.set_faults(FaultConfig::none());
    let later = commit_concurrently(&world, &wal, 9..10, Durability::Sync);
    assert!(
        matches!(&later[0], Err(CommitError::Log(message)) if message.contains("failed")),
        "{later:?}"
    );
    assert_eq!(wal.stats().commits, 0);
}

#[test]
fn an_empty_commit_is_refused() {
    let world = World::new(5, FaultConfig::none());
    let (log, _) = open(&world);
    let (wal, _writer) = GroupCommit::start(&world.env(N), log);
    let outcome = world.block_on(N, async move { wal.commit(&[], Durability::Sync).await });
    assert_eq!(outcome, Err(CommitError::Empty));
}
