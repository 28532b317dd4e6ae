//! Jubilant DB inside a program without async (the README's example).
use jubilant::{Mode, Txn, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("jubilant-blocking-{}", std::process::id()));
    let db = jubilant::blocking::open(&dir)?;

    let revision = db.set("greeting", "hello")?; // durable when it returns
    assert_eq!(db.get("greeting")?, Some((Value::from("hello"), revision)));

    db.set("alice", 100)?;
    let mut transfer = Txn::new(); // all or nothing, under strict 2PL
    let (alice, bob) = (
        transfer.key("alice", Mode::RW),
        transfer.key("bob", Mode::RW),
    );
    transfer
        .assert_int_eq(alice, 100)
        .add(alice, -30)
        .add(bob, 30);
    db.transaction(&transfer)?;

    // Read-modify-write, retried (with backoff) while the key changes.
    let bump =
        |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
    let visits = db.update("visits", bump)?;
    println!(
        "visits = {:?} after {} attempt(s)",
        visits.value, visits.attempts
    );

    // A snapshot reads one moment while writers go on.
    let snapshot = db.snapshot()?;
    db.set("greeting", "bye")?;
    assert_eq!(
        snapshot.get("greeting")?.map(|(value, _)| value),
        Some(Value::from("hello"))
    );
    drop(snapshot);

    // Ranges are lazy and double-ended.
    for entry in db.range("a".."c").rev() {
        let (key, value) = entry?;
        println!("{} = {value:?}", String::from_utf8_lossy(&key));
    }

    db.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
