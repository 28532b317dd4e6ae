//! The simulated disk keeps its promises and breaks exactly the ones a real
//! disk may break.

use std::path::{Path, PathBuf};

use jubilant_core::env::{File, Fs, OpenMode, create_dir_durably};
use jubilant_io_sim::{Fault, FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

fn faults(pins: &[(Fault, f64)]) -> FaultConfig {
    let mut config = FaultConfig::none();
    for &(fault, value) in pins {
        config.set(fault, value);
    }
    config
}

/// Creates `/db/name` with `data` and returns the env; syncs as asked.
fn write_file(
    world: &World,
    name: &str,
    data: &'static [u8],
    sync_data: bool,
    sync_dir: bool,
) -> SimEnv {
    let env = world.env(N);
    let e = env.clone();
    let path = dir().join(name);
    world.block_on(N, async move {
        create_dir_durably(&e, &dir()).await.expect("mkdir");
        let file = e.open(&path, OpenMode::CreateNew).await.expect("create");
        file.write_at(0, data).await.expect("write");
        if sync_data {
            file.sync_data().await.expect("sync");
        }
        if sync_dir {
            e.sync_dir(&dir()).await.expect("sync dir");
        }
    });
    env
}

fn read_file(world: &World, path: &Path) -> Option<Vec<u8>> {
    let env = world.env(N);
    let path = path.to_path_buf();
    world.block_on(N, async move {
        let file = match env.open(&path, OpenMode::Existing).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => panic!("open: {err}"),
        };
        let len = file.len().await.expect("len");
        Some(file.read_at(0, len as usize).await.expect("read"))
    })
}

#[test]
fn synced_data_and_names_survive_a_crash() {
    let world = World::new(
        1,
        faults(&[(Fault::WriteLost, 1.0), (Fault::DirOpLost, 1.0)]),
    );
    write_file(&world, "a", b"durable", true, true);
    world.crash(N);
    assert_eq!(
        read_file(&world, &dir().join("a")).as_deref(),
        Some(&b"durable"[..])
    );
}

#[test]
fn unsynced_writes_are_lost_when_the_crash_says_so() {
    let world = World::new(1, faults(&[(Fault::WriteLost, 1.0)]));
    write_file(&world, "a", b"volatile", false, true);
    assert_eq!(
        read_file(&world, &dir().join("a")).as_deref(),
        Some(&b"volatile"[..]),
        "page cache serves reads"
    );
    world.crash(N);
    assert_eq!(
        read_file(&world, &dir().join("a")).as_deref(),
        Some(&b""[..])
    );
}

#[test]
fn an_unsynced_name_is_lost_even_if_its_data_was_synced() {
    let world = World::new(1, faults(&[(Fault::DirOpLost, 1.0)]));
    write_file(&world, "a", b"data", true, false);
    world.crash(N);
    assert_eq!(read_file(&world, &dir().join("a")), None);
}

#[test]
fn a_kill_keeps_the_page_cache() {
    let world = World::new(
        1,
        faults(&[(Fault::WriteLost, 1.0), (Fault::DirOpLost, 1.0)]),
    );
    write_file(&world, "a", b"cached", false, false);
    world.kill(N);
    assert_eq!(
        read_file(&world, &dir().join("a")).as_deref(),
        Some(&b"cached"[..])
    );
}

#[test]
fn torn_writes_tear_at_sector_boundaries() {
    static DATA: [u8; 4096] = [0xAB; 4096];
    let mut torn_seen = 0;
    for seed in 0..20 {
        let world = World::new(seed, faults(&[(Fault::WriteTorn, 1.0)]));
        write_file(&world, "a", &DATA, false, true);
        world.crash(N);
        let image = read_file(&world, &dir().join("a")).expect("name was synced");
        // Every sector is either wholly written or wholly absent (zeros).
        for sector in image.chunks(512) {
            assert!(
                sector.iter().all(|&b| b == 0xAB) || sector.iter().all(|&b| b == 0),
                "a sector was split"
            );
        }
        if image.len() < DATA.len() || image.contains(&0) {
            torn_seen += 1;
        }
    }
    assert!(torn_seen > 0, "no write was ever torn");
}

#[test]
fn a_failed_fsync_forgets_dirty_data_yet_reads_still_see_it() {
    // fsync fails; a retry succeeds, but the data never became durable.
    let world = World::new(3, faults(&[]));
    let env = write_file(&world, "a", b"", true, true);
    world.set_faults(faults(&[(Fault::FsyncError, 1.0), (Fault::WriteLost, 1.0)]));
    let file = world.block_on(N, {
        let env = env.clone();
        async move {
            let file = env
                .open(&dir().join("a"), OpenMode::Existing)
                .await
                .expect("open");
            file.write_at(0, b"lost").await.expect("write");
            assert!(
                file.sync_data().await.is_err(),
                "the fault must fail the sync"
            );
            file
        }
    });
    world.set_faults(faults(&[(Fault::WriteLost, 1.0)]));
    world.block_on(N, async move {
        file.sync_data().await.expect("the retry reports success");
        assert_eq!(
            file.read_at(0, 4).await.expect("read"),
            b"lost",
            "the page cache still has it"
        );
    });
    world.crash(N);
    assert_eq!(
        read_file(&world, &dir().join("a")).as_deref(),
        Some(&b""[..]),
        "yet it was never durable"
    );
}

#[test]
fn disk_full_fails_the_write_and_changes_nothing() {
    let world = World::new(4, faults(&[]));
    let env = write_file(&world, "a", b"before", true, true);
    world.set_faults(faults(&[(Fault::DiskFull, 1.0)]));
    world.block_on(N, async move {
        let file = env
            .open(&dir().join("a"), OpenMode::Existing)
            .await
            .expect("open");
        let err = file.write_at(0, b"after!").await.expect_err("disk is full");
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(file.read_at(0, 6).await.expect("read"), b"before");
    });
}

#[test]
fn misdirected_writes_land_elsewhere() {
    let world = World::new(5, faults(&[(Fault::WriteMisdirected, 1.0)]));
    let env = world.env(N);
    let image = world.block_on(N, async move {
        env.create_dir_all(&dir()).await.expect("mkdir");
        let file = env
            .open(&dir().join("a"), OpenMode::CreateNew)
            .await
            .expect("create");
        file.write_at(8192, b"here").await.expect("write");
        let len = file.len().await.expect("len");
        file.read_at(0, len as usize).await.expect("read")
    });
    assert_ne!(
        image.get(8192..8196),
        Some(&b"here"[..]),
        "the write landed where it was aimed"
    );
    assert_eq!(world.fault_counts().get(Fault::WriteMisdirected), 1);
}

#[test]
fn read_corruption_flips_a_bit_of_the_copy_not_the_file() {
    let world = World::new(6, faults(&[]));
    let env = write_file(&world, "a", b"clean bytes", true, true);
    world.set_faults(faults(&[(Fault::ReadCorrupt, 1.0)]));
    let file = world.block_on(N, {
        let env = env.clone();
        async move {
            let file = env
                .open(&dir().join("a"), OpenMode::Existing)
                .await
                .expect("open");
            let read = file.read_at(0, 11).await.expect("read");
            let flipped: u32 = read
                .iter()
                .zip(b"clean bytes")
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1, "exactly one bit flips per read");
            file
        }
    });
    world.set_faults(faults(&[]));
    world.block_on(N, async move {
        assert_eq!(
            file.read_at(0, 11).await.expect("read"),
            b"clean bytes",
            "the stored bytes are intact"
        );
    });
}

#[test]
fn a_directory_lock_excludes_a_second_holder_until_dropped() {
    let world = World::new(7, faults(&[]));
    let env = world.env(N);
    world.block_on(N, async move {
        env.create_dir_all(&dir()).await.expect("mkdir");
        let held = env.lock_dir(&dir()).await.expect("first lock");
        let err = env
            .lock_dir(&dir())
            .await
            .err()
            .expect("second lock must fail");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        drop(held);
        let held = env.lock_dir(&dir()).await.expect("lock after release");
        // The lock is a file, as in the real environment, and belongs to
        // the file: a LOCK removed and made again is another file.
        assert_eq!(env.list(&dir()).await.expect("list"), ["LOCK"]);
        env.remove(&dir().join("LOCK")).await.expect("remove");
        let other = env
            .lock_dir(&dir())
            .await
            .expect("a new LOCK file is not the held one");
        drop((held, other));
    });
}

#[test]
fn a_crash_releases_locks_and_kills_handles() {
    let world = World::new(8, faults(&[]));
    let env = world.env(N);
    let e = env.clone();
    let (lock, file) = world.block_on(N, async move {
        e.create_dir_all(&dir()).await.expect("mkdir");
        let lock = e.lock_dir(&dir()).await.expect("lock");
        let file = e
            .open(&dir().join("a"), OpenMode::CreateNew)
            .await
            .expect("create");
        (lock, file)
    });
    world.crash(N);
    world.block_on(N, async move {
        assert!(
            file.len().await.is_err(),
            "a handle from before the crash is dead"
        );
        env.lock_dir(&dir())
            .await
            .expect("the dead process's lock is gone");
        drop(lock);
    });
}

#[test]
fn list_renames_and_removes() {
    let world = World::new(9, faults(&[]));
    let env = world.env(N);
    let names = world.block_on(N, async move {
        env.create_dir_all(&dir()).await.expect("mkdir");
        for name in ["c", "a", "b"] {
            env.open(&dir().join(name), OpenMode::CreateNew)
                .await
                .expect("create");
        }
        env.rename(&dir().join("c"), &dir().join("d"))
            .await
            .expect("rename");
        env.remove(&dir().join("a")).await.expect("remove");
        env.list(&dir()).await.expect("list")
    });
    assert_eq!(names, ["b", "d"]);
}

#[test]
fn a_failing_write_may_land_in_part_at_sector_boundaries() {
    static DATA: [u8; 4096] = [0x5A; 4096];
    let mut partial = 0;
    for seed in 0..40 {
        let world = World::new(seed, faults(&[]));
        let env = write_file(&world, "a", b"", true, true);
        world.set_faults(faults(&[(Fault::DiskFull, 1.0)]));
        let image = world.block_on(N, async move {
            let file = env
                .open(&dir().join("a"), OpenMode::Existing)
                .await
                .expect("open");
            let err = file.write_at(100, &DATA).await.expect_err("disk is full");
            assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
            let len = file.len().await.expect("len");
            file.read_at(0, len as usize).await.expect("read")
        });
        if image.is_empty() {
            continue;
        }
        partial += 1;
        let landed_end = image.len() as u64;
        assert_eq!(
            landed_end % 512,
            0,
            "a partial write ends on a sector boundary"
        );
        assert!(
            landed_end < 100 + 4096,
            "the whole write never lands when it fails"
        );
        assert!(
            image[100..].iter().all(|&b| b == 0x5A),
            "what landed is a prefix of the data"
        );
    }
    assert!(partial > 0, "no failing write ever landed in part");
}

#[test]
fn io_errors_fail_operations_and_change_nothing() {
    let world = World::new(12, faults(&[]));
    let env = write_file(&world, "a", b"kept", true, true);
    world.set_faults(faults(&[(Fault::IoError, 1.0)]));
    let e = env.clone();
    let kinds = world.block_on(N, async move {
        let open = e
            .open(&dir().join("a"), OpenMode::Existing)
            .await
            .map(|_| ());
        let rename = e.rename(&dir().join("a"), &dir().join("b")).await;
        let remove = e.remove(&dir().join("a")).await;
        let list = e.list(&dir()).await.map(|_| ());
        [open, rename, remove, list].map(|r| r.is_err())
    });
    assert_eq!(kinds, [true; 4]);
    world.set_faults(faults(&[]));
    assert_eq!(
        read_file(&world, &dir().join("a")).as_deref(),
        Some(&b"kept"[..])
    );
}

#[test]
fn after_a_failed_fsync_the_cache_is_sometimes_evicted() {
    let (mut kept, mut evicted) = (0, 0);
    for seed in 0..30 {
        let world = World::new(seed, faults(&[]));
        let env = write_file(&world, "a", b"old!", true, true);
        world.set_faults(faults(&[(Fault::FsyncError, 1.0), (Fault::WriteLost, 1.0)]));
        let seen = world.block_on(N, async move {
            let file = env
                .open(&dir().join("a"), OpenMode::Existing)
                .await
                .expect("open");
            file.write_at(0, b"new!").await.expect("write");
            assert!(file.sync_data().await.is_err());
            file.read_at(0, 4).await.expect("read")
        });
        match seen.as_slice() {
            b"new!" => kept += 1,
            b"old!" => evicted += 1,
            other => panic!("read {other:?}"),
        }
    }
    assert!(kept > 0 && evicted > 0, "kept {kept}, evicted {evicted}");
}

#[test]
fn a_crash_may_lose_any_subset_of_unsynced_name_changes() {
    // Three creates, no directory sync: a journal would lose a suffix, but
    // the contract allows any subset, and the simulator produces both.
    let mut shapes = std::collections::BTreeSet::new();
    for seed in 0..60 {
        let world = World::new(seed, faults(&[(Fault::DirOpLost, 0.5)]));
        let env = world.env(N);
        world.block_on(N, async move {
            create_dir_durably(&env, &dir()).await.expect("mkdir");
            for name in ["1", "2", "3"] {
                env.open(&dir().join(name), OpenMode::CreateNew)
                    .await
                    .expect("create");
            }
        });
        world.crash(N);
        let env = world.env(N);
        let names = world.block_on(N, async move { env.list(&dir()).await.expect("list") });
        shapes.insert(names.join(""));
    }
    assert!(
        shapes.contains("13") || shapes.contains("2") || shapes.contains("23"),
        "no non-suffix loss in {shapes:?}"
    );
    assert!(shapes.contains("12"), "no suffix loss in {shapes:?}");
}

#[test]
fn a_new_directory_is_durable_only_once_its_parent_is_synced() {
    for durably in [false, true] {
        let world = World::new(3, faults(&[(Fault::DirOpLost, 1.0)]));
        let env = world.env(N);
        world.block_on(N, async move {
            let nested = dir().join("data");
            if durably {
                create_dir_durably(&env, &nested).await.expect("mkdir");
            } else {
                env.create_dir_all(&nested).await.expect("mkdir");
            }
            // Everything inside is synced; only the directories' own names
            // depend on their parents.
            let file = env
                .open(&nested.join("f"), OpenMode::CreateNew)
                .await
                .expect("create");
            file.write_at(0, b"x").await.expect("write");
            file.sync_data().await.expect("sync");
            env.sync_dir(&nested).await.expect("sync dir");
        });
        world.crash(N);
        let found = read_file(&world, &dir().join("data").join("f"));
        if durably {
            assert_eq!(found.as_deref(), Some(&b"x"[..]), "synced all the way up");
        } else {
            assert_eq!(found, None, "a lost directory takes its files along");
        }
    }
}

#[test]
fn bit_rot_flips_one_durable_bit_that_stays_flipped() {
    let world = World::new(21, faults(&[(Fault::BitRot, 1.0)]));
    let original = b"sixteen bytes!!!";
    write_file(&world, "rotting", original, true, true);
    world.crash(N);
    let rotten = read_file(&world, &dir().join("rotting")).expect("the file survives");
    let flipped: u32 = rotten
        .iter()
        .zip(original)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(flipped, 1, "exactly one bit of the file flips");
    assert_eq!(world.fault_counts().get(Fault::BitRot), 1);
    // On the medium, not in a copy: a second read sees the same.
    assert_eq!(read_file(&world, &dir().join("rotting")), Some(rotten));
}

#[test]
fn a_filled_disk_stays_full_until_space_is_freed_or_given_back() {
    use jubilant_io_sim::SPACE_BLOCK_BYTES;
    let world = World::new(22, FaultConfig::none());
    let env = write_file(&world, "big", &[7u8; 8192], true, true);
    world.fill_disk(N, 0, false);
    assert!(world.disk_filled(N));
    assert_eq!(world.fault_counts().get(Fault::DiskFilled), 1);
    let e = env.clone();
    world.block_on(N, async move {
        let big = e
            .open(&dir().join("big"), OpenMode::Existing)
            .await
            .expect("open");
        // Growing needs a block: refused, and again, for as long as the
        // disk stays full.
        for _ in 0..3 {
            let err = big
                .write_at(8192, b"more")
                .await
                .expect_err("no room to grow");
            assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        }
        let err = big
            .set_len(3 * SPACE_BLOCK_BYTES)
            .await
            .expect_err("no room to extend");
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        let Err(err) = e.open(&dir().join("new"), OpenMode::CreateNew).await else {
            panic!("no room for a new file");
        };
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        // Overwriting allocated blocks needs no room on an ordinary disk.
        big.write_at(0, b"rewrite")
            .await
            .expect("overwrite in place");
        // Removing a file frees its blocks, and growing works again.
        e.remove(&dir().join("big")).await.expect("remove");
        let small = e
            .open(&dir().join("small"), OpenMode::CreateNew)
            .await
            .expect("create");
        small
            .write_at(0, &[1u8; 4096])
            .await
            .expect("one block fits");
    });
    assert!(world.give_back_space(N));
    assert!(!world.disk_filled(N));
}

#[test]
fn a_full_copy_on_write_disk_refuses_overwrites_and_a_quota_says_edquot() {
    let world = World::new(23, faults(&[(Fault::DiskCow, 1.0)]));
    let env = write_file(&world, "cow", &[7u8; 4096], true, true);
    world.fill_disk(N, 100, true);
    let e = env.clone();
    world.block_on(N, async move {
        let cow = e
            .open(&dir().join("cow"), OpenMode::Existing)
            .await
            .expect("open");
        let err = cow
            .write_at(0, b"rewrite")
            .await
            .expect_err("an overwrite allocates");
        assert_eq!(err.kind(), std::io::ErrorKind::QuotaExceeded, "{err}");
        assert!(err.to_string().contains("EDQUOT"), "{err}");
    });
    assert_eq!(read_file(&world, &dir().join("cow")), Some(vec![7u8; 4096]));
    world.give_back_space(N);
    let e = env.clone();
    world.block_on(N, async move {
        let cow = e
            .open(&dir().join("cow"), OpenMode::Existing)
            .await
            .expect("open");
        cow.write_at(0, b"rewrite").await.expect("room again");
    });
}

#[test]
fn a_write_that_does_not_fit_lands_only_the_sectors_that_do() {
    let world = World::new(24, FaultConfig::none());
    let env = write_file(&world, "part", b"", true, true);
    world.fill_disk(N, 4096, false);
    let e = env.clone();
    world.block_on(N, async move {
        let part = e
            .open(&dir().join("part"), OpenMode::Existing)
            .await
            .expect("open");
        let err = part
            .write_at(0, &[9u8; 6000])
            .await
            .expect_err("needs two blocks");
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        let landed = part.len().await.expect("len");
        assert!(landed <= 4096 && landed % 512 == 0, "landed {landed} bytes");
    });
}

#[test]
fn an_unreadable_sector_fails_every_read_until_rewritten_and_salvaging_reads_around_it() {
    use jubilant_core::env::{UNREADABLE_FILL, read_salvaging};
    let world = World::new(25, faults(&[(Fault::SectorUnreadable, 1.0)]));
    let data: &'static [u8] = &[5u8; 2048];
    write_file(&world, "sectors", data, true, true);
    world.crash(N);
    assert_eq!(world.fault_counts().get(Fault::SectorUnreadable), 1);
    let env = world.env(N);
    world.block_on(N, async move {
        let file = env
            .open(&dir().join("sectors"), OpenMode::Existing)
            .await
            .expect("open");
        let mut bad = Vec::new();
        for sector in 0..4u64 {
            // Persistent: a retry does not help.
            let first = file.read_at(sector * 512, 512).await;
            let second = file.read_at(sector * 512, 512).await;
            assert_eq!(first.is_err(), second.is_err());
            if first.is_err() {
                bad.push(sector);
            }
        }
        assert_eq!(bad.len(), 1, "exactly one sector is lost");
        assert!(
            file.read_at(0, 2048).await.is_err(),
            "a read across it fails"
        );
        let salvaged = read_salvaging(&file, 0, 2048).await.expect("salvage");
        assert_eq!(salvaged.unreadable_sectors, 1);
        let at = (bad[0] * 512) as usize;
        assert!(
            salvaged.bytes[at..at + 512]
                .iter()
                .all(|&b| b == UNREADABLE_FILL)
        );
        assert!(salvaged.bytes[..at].iter().all(|&b| b == 5));
        assert!(salvaged.bytes[at + 512..].iter().all(|&b| b == 5));
        // Part of the sector written: still unreadable; all of it: remapped.
        file.write_at(bad[0] * 512, &[6u8; 100])
            .await
            .expect("write");
        assert!(file.read_at(bad[0] * 512, 512).await.is_err());
        file.write_at(bad[0] * 512, &[7u8; 512])
            .await
            .expect("write");
        assert_eq!(
            file.read_at(bad[0] * 512, 512)
                .await
                .expect("readable again"),
            vec![7u8; 512]
        );
    });
}
