//! Jubilant DB inside an async program (the README's example).
use jubilant::{Kv, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("jubilant-async-{}", std::process::id()));
    let db = jubilant::open(&dir).await?; // a cheap handle: clone it into tasks

    let writers: Vec<_> = (0..4)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.set(format!("user:{i}"), format!("name {i}")).await })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }

    // The same code runs on the embedded database and on a remote server.
    async fn count_visit(store: &impl Kv) -> Result<Option<Value>, jubilant::Error> {
        let bump =
            |old: Option<&Value>| Some(Value::from(old.and_then(Value::as_int).unwrap_or(0) + 1));
        Ok(store.update("visits", bump).await?.value)
    }
    println!("visits = {:?}", count_visit(&db).await?);

    // Ranges are lazy and double-ended; a snapshot holds one moment.
    let snapshot = db.snapshot().await?;
    db.del("user:0").await?;
    let mut users = snapshot.prefix("user:");
    while let Some(entry) = users.next().await {
        let (key, value) = entry?;
        println!("{} = {value:?}", String::from_utf8_lossy(&key));
    }
    drop(users);
    drop(snapshot);

    db.close().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
