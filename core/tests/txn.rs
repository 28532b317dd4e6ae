//! Transactions over the simulated disk: validation before anything runs,
//! read-your-writes, ASSERTs that leave no trace, TTL, locks and
//! serializability under concurrency.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::join_all;
use jubilant_core::db::{Db, DbOptions, Value};
use jubilant_core::record::ValueType;
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnError, TxnOutcome};
use jubilant_io_sim::{FaultConfig, NodeId, SimEnv, World};

const N: NodeId = NodeId(0);

fn open(world: &World) -> Arc<Db<SimEnv>> {
    let env = world.env(N);
    world.block_on(N, async move {
        Db::open(env, PathBuf::from("/db"), DbOptions::default())
            .await
            .map(Arc::new)
            .expect("open")
    })
}

fn run(world: &World, db: &Arc<Db<SimEnv>>, txn: Txn) -> Result<TxnOutcome, TxnError> {
    let db = Arc::clone(db);
    world.block_on(N, async move { db.transaction(&txn).await })
}

fn get(world: &World, db: &Arc<Db<SimEnv>>, key: &str) -> Option<Value> {
    let (db, key) = (Arc::clone(db), key.to_owned());
    world.block_on(N, async move { db.get(&key).await.expect("get") })
}

#[test]
fn a_transfer_reads_its_own_writes_and_commits_at_one_lsn() {
    let world = World::new(1, FaultConfig::none());
    let db = open(&world);
    let mut txn = Txn::new();
    let (a, b) = (txn.key("a", Mode::RW), txn.key("b", Mode::RW));
    txn.set(a, 100i64).add(a, -30).add(b, 30).get(a).get(b);
    let outcome = run(&world, &db, txn).expect("commit");
    assert!(!outcome.read_only);
    assert_eq!(outcome.results[1], OpResult::Add(70));
    assert_eq!(outcome.results[2], OpResult::Add(30));
    assert_eq!(
        outcome.results[3],
        OpResult::Get(Some((Value::Int(70), outcome.lsn))),
        "a key written in the transaction reads back at the commit LSN"
    );
    assert_eq!(get(&world, &db, "a"), Some(Value::Int(70)));
    assert_eq!(get(&world, &db, "b"), Some(Value::Int(30)));
}

#[test]
fn a_failed_assert_leaves_no_trace_and_says_which_op_and_what_it_found() {
    let world = World::new(2, FaultConfig::none());
    let db = open(&world);
    let lsn = world.block_on(N, {
        let db = Arc::clone(&db);
        async move { db.set("a", 5i64).await.expect("set") }
    });
    let mut txn = Txn::new();
    let (a, b) = (txn.key("a", Mode::RW), txn.key("b", Mode::RW));
    txn.add(a, 1).set(b, "x").assert_int_eq(a, 100);
    let error = run(&world, &db, txn).expect_err("the assert fails");
    assert!(
        matches!(error, TxnError::AssertFailed { op: 2, found_type: Some(ValueType::Int64), revision } if revision == u64::MAX),
        "{error:?}"
    );
    assert_eq!(
        get(&world, &db, "a"),
        Some(Value::Int(5)),
        "no partial effects"
    );
    assert_eq!(get(&world, &db, "b"), None);
    // Compare-and-swap on the revision a GET returned.
    let mut cas = Txn::new();
    let a = cas.key("a", Mode::RW);
    cas.assert_revision_eq(a, lsn).set(a, 6i64);
    run(&world, &db, cas.clone()).expect("the revision matches");
    let stale = run(&world, &db, cas).expect_err("now it does not");
    assert!(matches!(stale, TxnError::AssertFailed { op: 0, .. }));
    let txns = db.stats().txns;
    // The plain SET is a one-op transaction too (one write path).
    assert_eq!((txns.commits, txns.assert_failures, txns.aborts), (2, 2, 2));
}

#[test]
fn bad_key_tables_and_ops_are_refused_before_anything_runs() {
    let world = World::new(3, FaultConfig::none());
    let db = open(&world);
    type Expect = fn(&TxnError) -> bool;
    let cases: Vec<(Txn, Expect)> = vec![
        (
            Txn::from_parts(vec![(0, Mode::RW, "k".into())], vec![]),
            |e| matches!(e, TxnError::Empty),
        ),
        (
            Txn::from_parts(vec![(0, Mode::RW, Vec::new())], vec![Op::Get(0)]),
            |e| matches!(e, TxnError::KeyEmpty { id: 0 }),
        ),
        (
            Txn::from_parts(vec![(0, Mode::RW, b"k".repeat(5000))], vec![Op::Get(0)]),
            |e| {
                matches!(
                    e,
                    TxnError::KeyTooLarge {
                        id: 0,
                        len: 5000,
                        ..
                    }
                )
            },
        ),
        (
            Txn::from_parts(
                vec![(0, Mode::RW, "a".into()), (0, Mode::RW, "b".into())],
                vec![Op::Get(0)],
            ),
            |e| matches!(e, TxnError::DuplicateKeyId(0)),
        ),
        (
            Txn::from_parts(
                vec![(0, Mode::RW, "a".into()), (1, Mode::R, "a".into())],
                vec![Op::Get(0)],
            ),
            |e| matches!(e, TxnError::DuplicateKey(_)),
        ),
        (
            Txn::from_parts(
                vec![(0, Mode::RW, "a".into())],
                vec![Op::Get(0), Op::Get(7)],
            ),
            |e| matches!(e, TxnError::UnknownKeyId { op: 1, id: 7 }),
        ),
        (
            Txn::from_parts(vec![(0, Mode::R, "a".into())], vec![Op::Del(0)]),
            |e| matches!(e, TxnError::WriteToReadKey { op: 0, id: 0 }),
        ),
    ];
    for (txn, expected) in cases {
        let error = run(&world, &db, txn.clone()).expect_err("refused");
        assert!(expected(&error), "{txn:?} gave {error:?}");
    }
    assert_eq!(db.stats().wal.batches, 0, "nothing reached the WAL");
    assert_eq!(db.stats().locks.keys_locked, 0);
    let txns = db.stats().txns;
    assert_eq!((txns.aborts, txns.commits, txns.active), (7, 0, 0));
}

#[test]
fn add_checks_types_and_overflow_and_a_read_only_transaction_writes_nothing() {
    let world = World::new(4, FaultConfig::none());
    let db = open(&world);
    world.block_on(N, {
        let db = Arc::clone(&db);
        async move {
            db.set("s", "text").await.expect("set");
            db.set("max", i64::MAX).await.expect("set");
        }
    });
    let mut txn = Txn::new();
    let s = txn.key("s", Mode::RW);
    txn.add(s, 1);
    assert!(matches!(
        run(&world, &db, txn),
        Err(TxnError::NotAnInt {
            op: 0,
            found: ValueType::String
        })
    ));
    let mut txn = Txn::new();
    let max = txn.key("max", Mode::RW);
    txn.add(max, 1);
    assert!(matches!(
        run(&world, &db, txn),
        Err(TxnError::Overflow { op: 0 })
    ));
    let batches = db.stats().wal.batches;
    let mut read = Txn::new();
    let (s, missing) = (read.key("s", Mode::R), read.key("nope", Mode::R));
    read.get(s).get(missing).op(Op::AssertType(missing, None));
    let outcome = run(&world, &db, read).expect("read");
    assert!(outcome.read_only);
    assert_eq!(outcome.results[1], OpResult::Get(None));
    assert_eq!(
        db.stats().wal.batches,
        batches,
        "a read-only transaction logs nothing"
    );
}

#[test]
fn ttls_expire_by_the_monotonic_clock_and_persist_clears_them() {
    let world = World::new(5, FaultConfig::none());
    let db = open(&world);
    let mut txn = Txn::new();
    let (a, b) = (txn.key("a", Mode::RW), txn.key("b", Mode::RW));
    txn.set_ttl(a, "short", 50)
        .set_ttl(b, "long", 60_000)
        .op(Op::Ttl(a));
    let outcome = run(&world, &db, txn).expect("commit");
    assert_eq!(outcome.results[2], OpResult::Ttl(Ttl::Ms(50)));
    // A wall clock jumping back an hour changes nothing; time passing does.
    world.jump_wall_clock(-3_600_000);
    world.block_on(N, {
        let env = world.env(N);
        async move {
            use jubilant_core::env::Clock;
            env.sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    assert_eq!(get(&world, &db, "a"), None, "expired keys read as missing");
    let mut txn = Txn::new();
    let (a, b) = (txn.key("a", Mode::RW), txn.key("b", Mode::RW));
    txn.op(Op::Ttl(a)).op(Op::Persist(b)).op(Op::Ttl(b)).del(a);
    let outcome = run(&world, &db, txn).expect("commit");
    assert_eq!(outcome.results[0], OpResult::Ttl(Ttl::Missing));
    assert_eq!(outcome.results[1], OpResult::Persist(true));
    assert_eq!(outcome.results[2], OpResult::Ttl(Ttl::NoExpiry));
    assert_eq!(
        outcome.results[3],
        OpResult::Del(false),
        "an expired key counts as absent"
    );
}

#[test]
fn concurrent_transfers_keep_the_total_and_leave_the_lock_table_empty() {
    let world = World::new(6, FaultConfig::none());
    let db = open(&world);
    let accounts = 5;
    world.block_on(N, {
        let db = Arc::clone(&db);
        async move {
            for i in 0..accounts {
                db.set(&format!("acct-{i}"), 100i64).await.expect("seed");
            }
        }
    });
    let outcomes = world.block_on(N, {
        let db = Arc::clone(&db);
        async move {
            join_all((0..64u64).map(|n| {
                let db = Arc::clone(&db);
                async move {
                    let (from, to) = (n % accounts, (n * 3 + 1) % accounts);
                    if from == to {
                        return Ok(None);
                    }
                    let mut txn = Txn::new();
                    // Declared in arbitrary order: the engine sorts.
                    let to = txn.key(format!("acct-{to}"), Mode::RW);
                    let from = txn.key(format!("acct-{from}"), Mode::RW);
                    txn.get(from).add(from, -7).add(to, 7);
                    db.transaction(&txn).await.map(Some)
                }
            }))
            .await
        }
    });
    let mut lsns: Vec<u64> = outcomes
        .into_iter()
        .filter_map(|o| o.expect("commit").map(|o| o.lsn))
        .collect();
    let count = lsns.len();
    lsns.sort_unstable();
    lsns.dedup();
    assert_eq!(lsns.len(), count, "every commit has its own LSN");
    let total: i64 = (0..accounts)
        .map(|i| match get(&world, &db, &format!("acct-{i}")) {
            Some(Value::Int(n)) => n,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(total, 100 * accounts as i64);
    let locks = db.stats().locks;
    assert_eq!((locks.keys_locked, locks.holders), (0, 0));
    assert!(locks.waits > 0, "the transfers contended: {locks:?}");
}

#[test]
fn the_sweeper_tombstones_expired_keys_and_leaves_live_ones() {
    let world = World::new(7, FaultConfig::none());
    let env = world.env(N);
    let db = world.block_on(N, async move {
        let options = DbOptions {
            sweep_interval_ms: 10,
            sweep_keys_max: 4,
            ..DbOptions::default()
        };
        Db::open(env, PathBuf::from("/db"), options)
            .await
            .map(Arc::new)
            .expect("open")
    });
    let mut txn = Txn::new();
    for i in 0..10 {
        let id = txn.key(format!("k{i}"), Mode::RW);
        if i % 2 == 0 {
            txn.set_ttl(id, "soon", 5);
        } else {
            txn.set(id, "kept");
        }
    }
    run(&world, &db, txn).expect("commit");
    assert_eq!(db.stats().store.keys, 10);
    world.block_on(N, {
        let env = world.env(N);
        async move {
            use jubilant_core::env::Clock;
            env.sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let stats = db.stats();
    assert_eq!(stats.ttl.tombstones, 5, "{:?}", stats.ttl);
    assert!(stats.ttl.sweeps >= 3, "slices of 4 keys: {:?}", stats.ttl);
    assert_eq!(
        stats.store.keys, 5,
        "the expired keys are gone from the tree"
    );
    for i in (1..10).step_by(2) {
        assert_eq!(
            get(&world, &db, &format!("k{i}")),
            Some(Value::from("kept"))
        );
    }
}

#[test]
fn hash_and_type_asserts_compare_blake3_of_the_value() {
    let world = World::new(8, FaultConfig::none());
    let db = open(&world);
    let mut txn = Txn::new();
    let (s, b) = (txn.key("s", Mode::RW), txn.key("b", Mode::RW));
    txn.set(s, "hello").set(b, vec![1u8, 2, 3]);
    run(&world, &db, txn).expect("commit");
    let hash = |bytes: &[u8]| *blake3::hash(bytes).as_bytes();
    let mut ok = Txn::new();
    let (s, b) = (ok.key("s", Mode::R), ok.key("b", Mode::R));
    ok.op(Op::AssertStringHashEq(s, hash(b"hello")))
        .op(Op::AssertBytesHashEq(b, hash(&[1, 2, 3])))
        .op(Op::AssertType(s, Some(ValueType::String)))
        .op(Op::AssertExists(b));
    assert!(run(&world, &db, ok).expect("all hold").read_only);
    for (op, index) in [
        (Op::AssertStringHashEq(0, hash(b"hellO")), 0),
        (Op::AssertBytesHashEq(0, hash(b"hello")), 0),
        (Op::AssertNotExists(0), 0),
    ] {
        let txn = Txn::from_parts(vec![(0, Mode::R, "s".into())], vec![op]);
        let error = run(&world, &db, txn).expect_err("fails");
        assert!(
            matches!(error, TxnError::AssertFailed { op, found_type: Some(ValueType::String), .. } if op == index),
            "{error:?}"
        );
    }
}

#[test]
fn transactions_write_large_values_the_leaf_points_to() {
    let world = World::new(9, FaultConfig::none());
    let db = open(&world);
    let big = "b".repeat(10_000);
    let mut txn = Txn::new();
    let k = txn.key("k", Mode::RW);
    txn.set(k, big.as_str()).op(Op::Expire(k, 3_600_000)).get(k);
    let outcome = run(&world, &db, txn).expect("commit");
    assert_eq!(outcome.results[1], OpResult::Expire(true));
    assert!(matches!(&outcome.results[2], OpResult::Get(Some((Value::String(s), _))) if *s == big));
    let validated = world.block_on(N, {
        let db = Arc::clone(&db);
        async move { db.validate().await.expect("validate") }
    });
    assert_eq!(validated.vlog_pointers, 1, "the leaf points to the record");
    // A later transaction changes only the TTL of the spilled value.
    let mut txn = Txn::new();
    let k = txn.key("k", Mode::RW);
    txn.op(Op::Persist(k)).op(Op::Ttl(k));
    let outcome = run(&world, &db, txn).expect("commit");
    assert_eq!(outcome.results[1], OpResult::Ttl(Ttl::NoExpiry));
    drop(db);
    world.crash(N);
    let db = open(&world);
    assert_eq!(get(&world, &db, "k"), Some(Value::from(big.as_str())));
}

#[test]
fn a_key_a_sync_read_saw_expired_stays_gone_when_the_wall_clock_goes_back() {
    let world = World::new(10, FaultConfig::none());
    let db = open(&world);
    let mut txn = Txn::new();
    let (a, b) = (txn.key("a", Mode::RW), txn.key("b", Mode::RW));
    txn.set_ttl(a, "x", 5).set_ttl(b, "y", 5);
    run(&world, &db, txn).expect("commit");
    world.block_on(N, {
        let env = world.env(N);
        async move {
            use jubilant_core::env::Clock;
            env.sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    // A sync GET and a sync transaction each see one of them expired.
    assert_eq!(get(&world, &db, "a"), None);
    let mut read = Txn::new();
    let b = read.key("b", Mode::R);
    read.get(b);
    assert_eq!(
        run(&world, &db, read).expect("read").results[0],
        OpResult::Get(None)
    );
    assert_eq!(
        db.stats().ttl.reaped,
        2,
        "both were deleted before the reads answered"
    );
    drop(db);
    world.crash(N);
    world.jump_wall_clock(-3_600_000);
    let db = open(&world);
    assert_eq!(get(&world, &db, "a"), None, "no expired key reappears");
    assert_eq!(get(&world, &db, "b"), None);
    assert_eq!(db.stats().store.keys, 0);
}

#[test]
fn ttl_time_restarts_no_earlier_than_a_durable_commit_recorded() {
    let world = World::new(12, FaultConfig::none());
    let db = open(&world);
    let mut txn = Txn::new();
    let a = txn.key("a", Mode::RW);
    txn.set_ttl(a, "x", 5);
    run(&world, &db, txn).expect("commit");
    world.block_on(N, {
        let env = world.env(N);
        async move {
            use jubilant_core::env::Clock;
            env.sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    // Nobody reads `a`; a later durable commit records the clock past its
    // expiry.
    let mut tick = Txn::new();
    let t = tick.key("tick", Mode::RW);
    tick.set(t, 1i64);
    run(&world, &db, tick).expect("commit");
    drop(db);
    world.crash(N);
    world.jump_wall_clock(-3_600_000);
    let db = open(&world);
    assert!(
        db.stats().recovery.ttl_floor_ms > 0,
        "the floor came from the commit"
    );
    assert_eq!(
        get(&world, &db, "a"),
        None,
        "the clock set back an hour does not revive it"
    );
    assert_eq!(get(&world, &db, "tick"), Some(Value::Int(1)));
}

#[test]
fn a_value_written_with_a_spent_ttl_reads_as_missing_in_its_own_transaction() {
    let world = World::new(11, FaultConfig::none());
    let db = open(&world);
    let mut txn = Txn::new();
    let (a, b) = (txn.key("a", Mode::RW), txn.key("b", Mode::RW));
    txn.set_ttl(a, "gone", 0)
        .get(a)
        .set(b, "kept")
        .op(Op::Expire(b, 0))
        .get(b);
    let outcome = run(&world, &db, txn).expect("commit");
    assert_eq!(outcome.results[1], OpResult::Get(None));
    assert_eq!(outcome.results[4], OpResult::Get(None));
    assert_eq!(get(&world, &db, "a"), None);
}

#[test]
fn a_transaction_that_waits_too_long_for_locks_is_busy_and_writes_nothing() {
    let world = World::new(7, FaultConfig::none());
    let env = world.env(N);
    let db = world.block_on(N, async move {
        let options = DbOptions {
            lock_wait_ms_max: 2,
            ..DbOptions::default()
        };
        Db::open(env, PathBuf::from("/db"), options)
            .await
            .map(Arc::new)
            .expect("open")
    });
    // Every transaction wants the one hot key and holds it through an
    // fsync, so the queue behind it grows longer than the limit.
    let outcomes = world.block_on(N, {
        let db = Arc::clone(&db);
        async move {
            join_all((0..64).map(|_| {
                let db = Arc::clone(&db);
                async move {
                    let mut txn = Txn::new();
                    let hot = txn.key("hot", Mode::RW);
                    txn.add(hot, 1);
                    db.transaction(&txn).await
                }
            }))
            .await
        }
    });
    let (mut committed, mut busy) = (0i64, 0);
    for outcome in outcomes {
        match outcome {
            Ok(_) => committed += 1,
            Err(TxnError::Busy { waited_ms }) => {
                assert_eq!(waited_ms, 2);
                busy += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        committed > 0 && busy > 0,
        "{committed} committed, {busy} busy"
    );
    assert_eq!(
        get(&world, &db, "hot"),
        Some(Value::Int(committed)),
        "a busy transaction wrote nothing"
    );
    let locks = db.stats().locks;
    assert_eq!(
        (locks.keys_locked, locks.holders),
        (0, 0),
        "a busy transaction withdrew its place in the queue"
    );
    let stats = db.stats().txns;
    assert_eq!((stats.aborts, stats.busy), (busy, busy));
}

#[test]
fn concurrent_updates_lose_no_increment_and_compare_and_swap_takes_one_winner() {
    use jubilant_core::db::UpdateError;
    use jubilant_core::env::Spawn;
    let world = World::new(31, FaultConfig::none());
    let db = open(&world);
    let env = world.env(N);
    let outcomes = world.block_on(N, {
        let db = Arc::clone(&db);
        async move {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let db = Arc::clone(&db);
                    env.spawn("updater", async move {
                        let mut attempts = 0;
                        for _ in 0..5 {
                            let updated = db
                                .update("counter", |old| {
                                    Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1))
                                })
                                .await
                                .expect("an update within its attempts");
                            attempts += updated.attempts;
                        }
                        attempts
                    })
                })
                .collect();
            let mut attempts = Vec::new();
            for task in tasks {
                attempts.push(task.await);
            }
            attempts
        }
    });
    let value = world.block_on(N, {
        let db = Arc::clone(&db);
        async move { db.get("counter").await.expect("get") }
    });
    assert_eq!(value, Some(Value::Int(80)), "no increment lost");
    let stats = db.stats().txns;
    assert_eq!(stats.updates, 80);
    let retried: u32 = outcomes.iter().sum::<u32>() - 80;
    assert_eq!(stats.update_retries, u64::from(retried));
    assert!(
        retried > 0,
        "16 concurrent updaters never collided: the test did not test"
    );
    // compare_and_swap: of two swaps from one revision, one wins.
    let (first, second) = world.block_on(N, {
        let db = Arc::clone(&db);
        async move {
            let current = db
                .update("cas", |_| Some(Value::from("a")))
                .await
                .expect("update");
            let first = db
                .compare_and_swap("cas", current.revision, Some(Value::from("b")))
                .await;
            let second = db
                .compare_and_swap("cas", current.revision, Some(Value::from("c")))
                .await;
            (first, second)
        }
    });
    let first = first.expect("the first swap wins");
    assert!(
        matches!(second, Err(UpdateError::Conflict { attempts: 1, found }) if found == first.revision),
        "{second:?}"
    );
    assert_eq!(db.stats().txns.update_conflicts, 1);
}
