//! The WAL's log-file layer, run over the simulated disk.

use std::path::{Path, PathBuf};

use jubilant_core::env::{File, Fs, OpenMode};
use jubilant_core::log::{
    BATCH_HEADER_BYTES, Log, LogConfig, LogError, RecordPos, RecoveryReport, scan, segment_name,
};
use jubilant_io_sim::{Fault, FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);

fn dir() -> PathBuf {
    PathBuf::from("/db/wal")
}

/// Small segments, so a few records roll over.
fn config() -> LogConfig {
    let mut config = LogConfig::new(dir());
    // The smallest block: each small segment (its header's block and one
    // block for batches) rolls over after every batch or so.
    config.block_bytes = 512;
    config.segment_bytes = 1024;
    config.record_bytes_max = 64;
    config.write_buffer_bytes = 100;
    config
}

fn quiet_world(seed: u64) -> World {
    World::new(seed, FaultConfig::none())
}

type Records = Vec<(RecordPos, Vec<u8>)>;

fn open(world: &World, config: LogConfig) -> Result<(Log<SimEnv>, Records), LogError> {
    open_reporting(world, config).map(|(log, records, _)| (log, records))
}

/// [`open`], with what recovery reports.
fn open_reporting(
    world: &World,
    config: LogConfig,
) -> Result<(Log<SimEnv>, Records, RecoveryReport), LogError> {
    let env = world.env(N);
    world.block_on(N, async move {
        let mut records = Vec::new();
        let (log, report) = Log::open(env, config, |pos, payload| {
            records.push((pos, payload.to_vec()))
        })
        .await?;
        Ok((log, records, report))
    })
}

fn payloads(records: &Records) -> Vec<Vec<u8>> {
    records.iter().map(|(_, p)| p.clone()).collect()
}

/// Appends `items` and syncs; returns the log.
fn append_all(world: &World, mut log: Log<SimEnv>, items: &[&[u8]]) -> Log<SimEnv> {
    let items: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
    world.block_on(N, async move {
        for item in &items {
            log.append(item).await.expect("append");
        }
        log.sync().await.expect("sync");
        log
    })
}

fn numbered(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("record-{i:03}").into_bytes())
        .collect()
}

#[test]
fn records_come_back_in_order_across_segments() {
    let world = quiet_world(1);
    let (log, recovered) = open(&world, config()).expect("open empty");
    assert!(recovered.is_empty());
    let items = numbered(100);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let log = append_all(&world, log, &refs);
    assert!(
        log.segment_ids().count() > 3,
        "small segments must roll over"
    );
    assert_eq!(log.durable_lsn(), 100);
    drop(log);
    world.kill(N);
    let (log, recovered) = open(&world, config()).expect("reopen");
    assert_eq!(payloads(&recovered), items);
    let lsns: Vec<u64> = recovered.iter().map(|(pos, _)| pos.lsn).collect();
    assert_eq!(lsns, (1..=100).collect::<Vec<_>>());
    assert_eq!(log.next_lsn(), 101);
}

#[test]
fn a_crash_keeps_synced_records_and_drops_only_a_suffix() {
    for seed in 0..30 {
        let mut faults = FaultConfig::none();
        faults.set(Fault::WriteLost, 0.5);
        faults.set(Fault::WriteTorn, 0.5);
        let world = World::new(seed, faults);
        let (log, _) = open(&world, config()).expect("open");
        let items = numbered(30);
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        let mut log = append_all(&world, log, &refs[..20]);
        // Ten more, written but not synced.
        log = world.block_on(N, {
            let rest: Vec<Vec<u8>> = items[20..].to_vec();
            async move {
                for item in &rest {
                    log.append(item).await.expect("append");
                }
                log
            }
        });
        world.block_on(N, async move {
            // Force the buffer out without a sync.
            let _ = log.append(&[1u8; 64]).await;
            drop(log);
        });
        world.crash(N);
        let (_, recovered) = open(&world, config()).expect("recover");
        let got = payloads(&recovered);
        assert!(
            got.len() >= 20,
            "seed {seed}: synced records lost ({} left)",
            got.len()
        );
        assert_eq!(got[..20], items[..20], "seed {seed}");
        for (i, p) in got.iter().enumerate().skip(20) {
            if i < 30 {
                assert_eq!(
                    p, &items[i],
                    "seed {seed}: record {i} is not what was written there"
                );
            } else {
                assert_eq!(p, &vec![1u8; 64], "seed {seed}");
            }
        }
    }
}

/// Writes raw bytes into a segment file, bypassing the log.
fn scribble(world: &World, segment: u64, offset: u64, bytes: &'static [u8]) {
    let env = world.env(N);
    world.block_on(N, async move {
        let file = env
            .open(&dir().join(segment_name(segment)), OpenMode::Existing)
            .await
            .expect("open");
        file.write_at(offset, bytes).await.expect("write");
        file.sync_data().await.expect("sync");
    });
}

#[test]
fn a_torn_tail_is_cut_and_zeroed_so_it_never_comes_back() {
    let world = quiet_world(2);
    let (log, _) = open(&world, config()).expect("open");
    let log = append_all(&world, log, &[b"one", b"two", b"three"]);
    drop(log);
    // Damage "three" (its payload starts after the header's block, the
    // batch header, two frames and its own frame header). No later batch
    // says it was durable, so the scan takes it for a torn tail.
    let three_payload = config().first_batch_offset() + BATCH_HEADER_BYTES + (8 + 3) + (8 + 3) + 8;
    scribble(&world, 1, three_payload, b"X");
    world.kill(N);
    let (log, recovered, report) = open_reporting(&world, config()).expect("recover");
    assert_eq!(payloads(&recovered), [b"one".to_vec(), b"two".to_vec()]);
    assert!(report.torn_tail.is_some());
    assert!(
        report.tail_bytes_zeroed > 0,
        "the tail after the last record was zeroed"
    );
    // A new record of the same length lands where "three" was; the scan
    // must see it, not the old bytes.
    let log = append_all(&world, log, &[b"THREE", b"four"]);
    drop(log);
    world.kill(N);
    let (_, recovered) = open(&world, config()).expect("reopen");
    assert_eq!(
        payloads(&recovered),
        [
            b"one".to_vec(),
            b"two".to_vec(),
            b"THREE".to_vec(),
            b"four".to_vec()
        ]
    );
}

#[test]
fn damage_before_a_later_segment_is_corruption_not_a_torn_tail() {
    let world = quiet_world(3);
    let (log, _) = open(&world, config()).expect("open");
    let items = numbered(80);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let log = append_all(&world, log, &refs);
    assert!(log.segment_ids().count() >= 3);
    drop(log);
    scribble(
        &world,
        1,
        config().first_batch_offset() + BATCH_HEADER_BYTES + 9,
        b"!",
    );
    world.kill(N);
    match open(&world, config()) {
        Err(LogError::Corrupt(c)) => {
            assert!(c.path.ends_with(segment_name(1)), "{c}");
            assert!(c.detail.contains("not a torn tail"), "{c}");
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged middle segment was accepted"),
    }
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let world = quiet_world(4);
    let (log, _) = open(&world, config()).expect("open");
    let items = numbered(80);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let log = append_all(&world, log, &refs);
    drop(log);
    let env = world.env(N);
    world.block_on(N, async move {
        env.remove(&dir().join(segment_name(2)))
            .await
            .expect("remove");
    });
    let err = open(&world, config()).err().expect("a gap must be refused");
    assert!(err.to_string().contains("segment 2 is missing"), "{err}");
}

#[test]
fn unfinished_segment_files_are_removed() {
    let world = quiet_world(5);
    let env = world.env(N);
    world.block_on(N, async move {
        env.create_dir_all(&dir()).await.expect("mkdir");
        env.open(&dir().join("wal-000001.log.tmp"), OpenMode::CreateNew)
            .await
            .expect("tmp");
    });
    let env = world.env(N);
    let (report, names) = world.block_on(N, async move {
        let (_log, report) = Log::open(env.clone(), config(), |_, _| {})
            .await
            .expect("open");
        (report, env.list(&dir()).await.expect("list"))
    });
    assert_eq!(report.temp_files_removed, 1);
    assert!(report.created);
    assert_eq!(names, [segment_name(1)]);
}

#[test]
fn bad_records_and_configs_are_refused_with_clear_errors() {
    let world = quiet_world(6);
    let (log, _) = open(&world, config()).expect("open");
    world.block_on(N, async move {
        let mut log = log;
        assert!(matches!(log.append(b"").await, Err(LogError::RecordEmpty)));
        let err = log.append(&[0u8; 65]).await.expect_err("too large");
        assert_eq!(
            err.to_string(),
            "record of 65 bytes exceeds record_bytes_max 64"
        );
    });
    let mut tiny = config();
    tiny.segment_bytes = 64;
    let err = open(&world, tiny).err().expect("config must be refused");
    assert!(
        err.to_string()
            .contains("cannot hold a header block and one batch of one record"),
        "{err}"
    );
}

#[test]
fn a_failed_sync_stops_the_log_until_reopened() {
    let world = quiet_world(7);
    let (log, _) = open(&world, config()).expect("open");
    let mut faults = FaultConfig::none();
    faults.set(Fault::FsyncError, 1.0);
    world.set_faults(faults);
    let log = world.block_on(N, async move {
        let mut log = log;
        log.append(b"doomed").await.expect("append is buffered");
        assert!(log.sync().await.is_err());
        let again = log.sync().await.expect_err("no retry may succeed");
        assert!(matches!(again, LogError::Failed { .. }), "{again}");
        assert!(log.failure().is_some());
        log
    });
    drop(log);
    world.set_faults(FaultConfig::none());
    world.kill(N);
    open(&world, config()).expect("reopening recovers");
}

#[test]
fn disk_full_is_an_error_for_the_writer_not_a_failure() {
    let world = quiet_world(8);
    let (log, _) = open(&world, config()).expect("open");
    let mut faults = FaultConfig::none();
    faults.set(Fault::DiskFull, 1.0);
    world.set_faults(faults);
    let log = world.block_on(N, async move {
        let mut log = log;
        log.append(b"waiting").await.expect("append is buffered");
        let err = log.sync().await.expect_err("disk is full");
        assert!(err.is_disk_full(), "{err}");
        assert!(log.failure().is_none());
        log
    });
    world.set_faults(FaultConfig::none());
    let log = world.block_on(N, async move {
        let mut log = log;
        assert_eq!(log.sync().await.expect("space is back"), 1);
        log
    });
    drop(log);
    world.kill(N);
    let (_, recovered) = open(&world, config()).expect("reopen");
    assert_eq!(payloads(&recovered), [b"waiting".to_vec()]);
}

/// Keeps the segments in its set, and records what the log says.
struct KeepSome {
    keep: std::sync::Mutex<Vec<u64>>,
    retained: std::sync::Mutex<Vec<u64>>,
    removing: std::sync::Mutex<Vec<u64>>,
}

impl jubilant_core::log::Retention for KeepSome {
    fn keeps(&self, id: u64) -> bool {
        self.keep.lock().expect("lock").contains(&id)
    }
    fn retained(&self, ids: &[u64]) {
        *self.retained.lock().expect("lock") = ids.to_vec();
    }
    fn removing(&self, id: u64) {
        self.removing.lock().expect("lock").push(id);
    }
}

#[test]
fn covered_segments_an_owner_keeps_stay_with_gaps_and_a_replay_scan_skips_them() {
    let world = quiet_world(29);
    let (mut log, _) = open(&world, config()).expect("open");
    // One synced batch each: a segment holds one batch block.
    for item in numbered(12) {
        log = append_all(&world, log, &[item.as_slice()]);
    }
    let ids: Vec<u64> = log.segment_ids().collect();
    assert!(ids.len() >= 6, "{ids:?}");
    let owner = std::sync::Arc::new(KeepSome {
        keep: std::sync::Mutex::new(vec![ids[1], ids[3]]),
        retained: std::sync::Mutex::default(),
        removing: std::sync::Mutex::default(),
    });
    log.set_retention(owner.clone());
    // Everything before the last segment is covered: the kept ones stay,
    // with gaps between them, and the owner hears of both.
    let replay_from = 12;
    let log = world.block_on(N, async move {
        let mut log = log;
        log.remove_segments_before(replay_from)
            .await
            .expect("remove");
        log
    });
    assert_eq!(log.retained(), [ids[1], ids[3]]);
    assert_eq!(*owner.retained.lock().expect("lock"), [ids[1], ids[3]]);
    let removing = owner.removing.lock().expect("lock").clone();
    assert!(
        removing.contains(&ids[0]) && removing.contains(&ids[2]),
        "{removing:?}"
    );
    let replayed: Vec<u64> = log.segment_ids().collect();
    drop(log);
    world.kill(N);
    // A scan from the replay's first LSN reads the replay run only, and
    // lists the kept segments as retained.
    let env = world.env(N);
    let outcome = world.block_on(N, async move {
        jubilant_core::log::scan_from(&env, &dir(), replay_from, |_, _| {})
            .await
            .expect("scan")
    });
    assert!(outcome.corruption.is_none(), "{:?}", outcome.corruption);
    assert_eq!(outcome.retained, [ids[1], ids[3]]);
    assert_eq!(
        outcome.segments.iter().map(|s| s.id).collect::<Vec<_>>(),
        replayed
    );
    // A scan of every segment meets the gaps: segments are missing.
    let env = world.env(N);
    let whole = world.block_on(N, async move {
        scan(&env, &dir(), |_, _| {}).await.expect("scan")
    });
    assert!(whole.corruption.is_some(), "gaps before the replay run");
    // Reopened for a replay from there, the log keeps them retained, and
    // lets them go once its owner does.
    let mut config = config();
    config.replay_from_lsn = replay_from;
    let (log, recovered) = open(&world, config).expect("reopen past the gaps");
    assert!(
        recovered
            .iter()
            .all(|(pos, _)| replayed.contains(&pos.segment))
    );
    assert_eq!(log.retained(), [ids[1], ids[3]]);
    owner.keep.lock().expect("lock").clear();
    let log = world.block_on(N, async move {
        let mut log = log;
        log.set_retention(owner);
        log.remove_segments_before(replay_from)
            .await
            .expect("remove");
        log
    });
    assert!(log.retained().is_empty());
}

#[test]
fn old_segments_are_removed_only_when_wholly_below_the_lsn() {
    let world = quiet_world(9);
    let (log, _) = open(&world, config()).expect("open");
    let items = numbered(30);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let log = append_all(&world, log, &refs);
    let before: Vec<u64> = log.segment_ids().collect();
    let (log, removed) = world.block_on(N, async move {
        let mut log = log;
        let removed = log.remove_segments_before(12).await.expect("remove");
        (log, removed)
    });
    let after: Vec<u64> = log.segment_ids().collect();
    assert_eq!(after.len() as u64, before.len() as u64 - removed);
    drop(log);
    world.kill(N);
    let (_, recovered) = open(&world, config()).expect("reopen");
    let first = recovered.first().expect("records remain").0.lsn;
    assert!(
        first <= 12,
        "record 12 must still be there, log starts at {first}"
    );
    assert_eq!(recovered.last().expect("records").0.lsn, 30);
}

#[test]
fn a_smaller_record_limit_does_not_cut_off_records_written_under_a_larger_one() {
    let world = quiet_world(11);
    let (log, _) = open(&world, config()).expect("open");
    let log = append_all(&world, log, &[&[7u8; 60], &[8u8; 60]]);
    drop(log);
    world.kill(N);
    let mut smaller = config();
    smaller.record_bytes_max = 16;
    let (_, recovered) = open(&world, smaller).expect("reopen with a smaller limit");
    assert_eq!(payloads(&recovered), [vec![7u8; 60], vec![8u8; 60]]);
}

#[test]
fn scan_reads_without_changing_anything() {
    let world = quiet_world(10);
    let (log, _) = open(&world, config()).expect("open");
    let log = append_all(&world, log, &[b"a", b"b"]);
    drop(log);
    let env = world.env(N);
    let outcome = world.block_on(N, async move {
        let mut seen = Vec::new();
        let outcome = scan(&env, Path::new("/db/wal"), |pos, p| {
            seen.push((pos.lsn, p.to_vec()))
        })
        .await
        .expect("scan");
        assert_eq!(seen, [(1, b"a".to_vec()), (2, b"b".to_vec())]);
        outcome
    });
    assert_eq!(outcome.records(), 2);
    assert_eq!(outcome.next_lsn(), 3);
    assert!(outcome.corruption.is_none());
}

#[test]
fn an_lsn_skip_survives_reopens_and_segments_and_no_record_takes_a_skipped_lsn() {
    let world = quiet_world(41);
    let (log, _) = open(&world, config()).expect("open");
    let log = append_all(&world, log, &[b"one", b"two"]);
    let log = world.block_on(N, async move {
        let mut log = log;
        log.skip_to(1_000).await.expect("skip");
        log.sync().await.expect("sync");
        assert_eq!(log.next_lsn(), 1_000);
        assert_eq!(log.durable_lsn(), 999, "skipped LSNs count as covered");
        log
    });
    // Enough records to roll into later segments (256-byte segments).
    let items = numbered(12);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    drop(append_all(&world, log, &refs));
    world.crash(N);
    let (log, records) = open(&world, config()).expect("reopen");
    let lsns: Vec<u64> = records.iter().map(|(pos, _)| pos.lsn).collect();
    let mut expected = vec![1, 2];
    expected.extend(1_000..1_012);
    assert_eq!(lsns, expected);
    assert_eq!(log.next_lsn(), 1_012);
    drop(log);
    // A skip as the last thing in the log still holds after a reopen.
    let (log, _) = open(&world, config()).expect("reopen");
    let log = world.block_on(N, async move {
        let mut log = log;
        log.skip_to(5_000).await.expect("skip");
        log.sync().await.expect("sync");
        log
    });
    drop(log);
    world.crash(N);
    let (log, records) = open(&world, config()).expect("reopen");
    assert_eq!(records.len(), 14);
    assert_eq!(log.next_lsn(), 5_000);
}

/// Segments of several blocks, so a few batches share one.
fn roomy() -> LogConfig {
    let mut config = config();
    config.segment_bytes = 4096;
    config
}

/// Every byte of segment `id`.
fn segment_bytes(world: &World, id: u64) -> Vec<u8> {
    let env = world.env(N);
    world.block_on(N, async move {
        let file = env
            .open(&dir().join(segment_name(id)), OpenMode::Existing)
            .await
            .expect("open");
        let len = file.len().await.expect("len");
        file.read_at(0, len as usize).await.expect("read")
    })
}

#[test]
fn damage_to_a_durable_batch_in_the_last_segment_is_refused_and_changes_nothing() {
    let world = quiet_world(12);
    let (log, _) = open(&world, roomy()).expect("open");
    // Two synced batches in segment 1: the second one's header says the
    // log was durable through LSN 2 when it began.
    let log = append_all(&world, log, &[b"one", b"two"]);
    let log = append_all(&world, log, &[b"three"]);
    assert_eq!(log.segment_ids().collect::<Vec<_>>(), [1]);
    drop(log);
    // One flipped byte in "two": the records stop there, exactly as if
    // "two" had been torn, but it was acknowledged durable.
    let two_payload = roomy().first_batch_offset() + BATCH_HEADER_BYTES + (8 + 3) + 8;
    scribble(&world, 1, two_payload, b"X");
    world.kill(N);
    let before = segment_bytes(&world, 1);
    match open(&world, roomy()) {
        Err(LogError::Corrupt(c)) => {
            assert!(c.path.ends_with(segment_name(1)), "{c}");
            assert!(
                c.detail.contains("durable through LSN 2")
                    && c.detail.contains("damage, not a torn tail"),
                "{c}"
            );
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok((_, records)) => panic!(
            "acknowledged records were cut as a torn tail: {:?}",
            payloads(&records)
        ),
    }
    // Refusing wrote nothing: the damaged bytes are there for an operator
    // (or a repair tool) to see, and a second open refuses the same way.
    assert_eq!(segment_bytes(&world, 1), before);
    assert!(matches!(open(&world, roomy()), Err(LogError::Corrupt(_))));
}

#[test]
fn a_torn_write_of_the_batch_after_the_last_durable_one_is_a_torn_tail() {
    let world = quiet_world(13);
    let (log, _) = open(&world, roomy()).expect("open");
    let log = append_all(&world, log, &[b"one"]);
    // The next batch starts at the next block boundary; damage its first
    // record as a torn write would. Nothing later claims it was durable.
    let log = append_all(&world, log, &[b"two", b"three"]);
    drop(log);
    let second_batch = roomy().first_batch_offset() + u64::from(roomy().block_bytes);
    scribble(&world, 1, second_batch + BATCH_HEADER_BYTES + 8, b"X");
    world.kill(N);
    let (_, recovered) = open(&world, roomy()).expect("a torn tail is cut");
    assert_eq!(payloads(&recovered), [b"one".to_vec()]);
}

#[test]
fn an_accepted_cut_at_damage_keeps_the_records_before_it_and_removes_later_segments() {
    use jubilant_core::log::{LogScan, OnDamage};
    let world = quiet_world(14);
    let (log, _) = open(&world, config()).expect("open");
    let items = numbered(80);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let log = append_all(&world, log, &refs);
    let segments: Vec<u64> = log.segment_ids().collect();
    assert!(segments.len() >= 3);
    drop(log);
    // Damage the second record of segment 2: later segments exist.
    let (_, before) = open(&world, config()).expect("intact");
    let in_two: Vec<_> = before.iter().filter(|(pos, _)| pos.segment == 2).collect();
    let second = in_two[1].0;
    let env = world.env(N);
    world.block_on(N, async move {
        let file = env
            .open(&dir().join(segment_name(2)), OpenMode::Existing)
            .await
            .expect("open");
        file.write_at(second.offset + 8, b"?").await.expect("write");
        file.sync_data().await.expect("sync");
    });
    assert!(matches!(open(&world, config()), Err(LogError::Corrupt(_))));
    let env = world.env(N);
    let (log, kept, report) = world.block_on(N, async move {
        let mut kept = Vec::new();
        let scan = LogScan::read_with(
            env,
            config(),
            |pos, payload| kept.push((pos, payload.to_vec())),
            OnDamage::Cut,
        )
        .await
        .expect("the cut is accepted");
        let (log, report) = scan.repair().await.expect("repair");
        (log, kept, report)
    });
    let loss = report.data_loss.expect("the cut is reported");
    assert_eq!(loss.segment, 2);
    assert_eq!(loss.lsn_first, second.lsn);
    assert_eq!(
        loss.segments_removed,
        segments[2..].to_vec(),
        "every segment after the damaged one"
    );
    let last_first = before
        .iter()
        .find(|(pos, _)| pos.segment == *segments.last().expect("segments"))
        .map(|(pos, _)| pos.lsn)
        .expect("records in the last segment");
    assert!(
        loss.lsn_durable_through >= last_first - 1,
        "the last segment's existence proves everything before it durable"
    );
    assert!(
        loss.records_max > 80 - second.lsn,
        "at least the records after the damage"
    );
    assert_eq!(kept.len() as u64, second.lsn - 1);
    assert_eq!(log.next_lsn(), second.lsn);
    assert_eq!(log.segment_ids().collect::<Vec<_>>(), [1, 2]);
    drop(log);
    // A plain open now finds a clean log ending at the cut.
    let (log, recovered) = open(&world, config()).expect("reopen");
    assert_eq!(payloads(&recovered), payloads(&kept));
    assert_eq!(log.next_lsn(), second.lsn);
}

/// Lets the simulated clock run, so background tasks (a segment prepared
/// ahead) finish.
fn idle(world: &World) {
    let env = world.env(N);
    world.block_on(N, async move {
        use jubilant_core::env::Clock;
        env.sleep(std::time::Duration::from_secs(1)).await;
    });
}

/// Appends and syncs each item on its own, letting time pass after each.
fn sync_each_with_time_between(
    world: &World,
    mut log: Log<SimEnv>,
    items: &[Vec<u8>],
) -> Log<SimEnv> {
    for item in items {
        log = append_all(world, log, &[item]);
        idle(world);
    }
    log
}

fn names(world: &World) -> Vec<String> {
    let env = world.env(N);
    world.block_on(N, async move { env.list(&dir()).await.expect("list") })
}

#[test]
fn rollovers_take_segments_prepared_ahead_and_a_spare_left_by_a_crash_is_removed() {
    let world = quiet_world(21);
    let (log, _) = open(&world, config()).expect("open");
    let items = numbered(40);
    let log = sync_each_with_time_between(&world, log, &items);
    let stats = log.stats();
    assert!(stats.rollovers >= 10, "{stats:?}");
    assert_eq!(
        stats.rollovers_prepared_ahead, stats.rollovers,
        "with time to prepare, every rollover finds its segment ready"
    );
    // The active segment is at least half full, so its successor is
    // installed, with an open header and nothing in it.
    let last = log.segment_ids().last().expect("a segment");
    let spare = segment_name(last + 1);
    assert!(names(&world).contains(&spare), "{:?}", names(&world));
    drop(log);
    world.crash(N);
    let (log, recovered, report) = open_reporting(&world, config()).expect("recover");
    assert_eq!(payloads(&recovered), items);
    assert_eq!(report.spare_removed, Some(last + 1));
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert!(!names(&world).contains(&spare));
    // Every segment but the first carries an open header: the LSNs come
    // from the segment before it.
    let lsns: Vec<u64> = recovered.iter().map(|(pos, _)| pos.lsn).collect();
    assert_eq!(lsns, (1..=40).collect::<Vec<_>>());
    assert_eq!(log.next_lsn(), 41);
}

#[test]
fn the_oldest_segment_with_an_open_header_takes_its_first_lsn_from_its_first_batch() {
    let world = quiet_world(22);
    let (log, _) = open(&world, config()).expect("open");
    let items = numbered(30);
    let mut log = sync_each_with_time_between(&world, log, &items);
    let removed = world.block_on(N, async move {
        let removed = log.remove_segments_before(25).await.expect("remove");
        (removed, log)
    });
    let (removed, log) = removed;
    assert!(removed > 5);
    let first = log.first_lsn();
    assert!(first > 1 && first <= 25);
    drop(log);
    world.kill(N);
    let (log, recovered) = open(&world, config()).expect("reopen");
    let lsns: Vec<u64> = recovered.iter().map(|(pos, _)| pos.lsn).collect();
    assert_eq!(lsns, (first..=30).collect::<Vec<_>>());
    assert_eq!(payloads(&recovered), items[first as usize - 1..]);
    assert_eq!(log.first_lsn(), first);
}

#[test]
fn a_torn_tail_before_a_spare_is_a_torn_tail_and_a_record_in_the_next_segment_makes_it_damage() {
    for spare_used in [false, true] {
        let world = quiet_world(23);
        let (mut log, _) = open(&world, roomy()).expect("open");
        // Fill the first segment past half, so its successor is prepared.
        for item in numbered(5).iter() {
            log = append_all(&world, log, &[item]);
        }
        idle(&world);
        assert_eq!(log.segment_ids().count(), 1);
        assert!(names(&world).contains(&segment_name(2)));
        drop(log);
        // Damage the last record of segment 1 with no later batch in it.
        let bytes = segment_bytes(&world, 1);
        let end = bytes.iter().rposition(|&b| b != 0).expect("records") as u64;
        scribble(&world, 1, end, b"\xFF");
        if spare_used {
            // A batch in segment 2 proves segment 1 was synced whole.
            scribble(&world, 2, roomy().first_batch_offset(), b"not zeros");
        }
        world.kill(N);
        match (spare_used, open(&world, roomy())) {
            (false, Ok((_, recovered))) => assert_eq!(recovered.len(), 4),
            (false, Err(err)) => panic!("a torn tail before a spare was refused: {err}"),
            (true, Err(LogError::Corrupt(c))) => {
                assert!(c.detail.contains("not a torn tail"), "{c}")
            }
            (true, other) => panic!(
                "damage before a used segment was accepted: {:?}",
                other.err()
            ),
        }
    }
}

#[test]
fn a_segment_before_an_open_header_with_no_synced_batch_is_never_removed() {
    let world = quiet_world(24);
    let (log, _) = open(&world, config()).expect("open");
    let mut log = sync_each_with_time_between(&world, log, &numbered(3));
    let before = log.segment_ids().count();
    let log = world.block_on(N, async move {
        // A record that rolls over into the segment prepared ahead, then
        // discarded before any sync: the new segment holds no batch.
        let mark = log.mark();
        let start = log.segment_ids().last().expect("a segment");
        let mut payload = vec![b'x'; 64];
        loop {
            let pos = log.append(&payload).await.expect("append");
            if pos.segment != start {
                break;
            }
            payload[0] += 1;
        }
        log.discard_since(mark).await.expect("discard");
        log
    });
    let segments: Vec<u64> = log.segment_ids().collect();
    assert_eq!(segments.len(), before + 1, "{segments:?}");
    let next = log.next_lsn();
    let (removed, log) = world.block_on(N, async move {
        let mut log = log;
        let removed = log.remove_segments_before(next).await.expect("remove");
        (removed, log)
    });
    assert_eq!(
        removed as usize,
        before - 1,
        "all but the segment the open one follows"
    );
    drop(log);
    world.crash(N);
    let (log, recovered) = open(&world, config()).expect("reopen");
    assert_eq!(log.next_lsn(), next);
    assert_eq!(recovered.last().map(|(pos, _)| pos.lsn), Some(next - 1));
}
