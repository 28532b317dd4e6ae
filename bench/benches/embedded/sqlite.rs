//! SQLite through rusqlite (the bundled amalgamation): one `WITHOUT ROWID`
//! table keyed by the key, so the key's B-tree holds the values as the
//! other engines' trees do; `journal_mode=WAL` with `synchronous=FULL`, so
//! every commit syncs the WAL.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::engine::{Engine, Pair, Tally};

pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens `dir/sqlite.db` with a `cache_bytes` page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Self {
        let conn = Connection::open(dir.join("sqlite.db")).expect("open SQLite");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal", "SQLite refused WAL mode");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("synchronous");
        // A negative cache_size is a budget in KiB rather than pages.
        let cache_kib = i64::try_from(cache_bytes / 1024).expect("a sane cache");
        conn.pragma_update(None, "cache_size", -cache_kib)
            .expect("cache_size");
        conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
            [],
        )
        .expect("create table");
        Sqlite { conn }
    }

    /// Runs `change` in one transaction and commits it (synced, as
    /// `synchronous=FULL` makes every commit).
    fn write(&mut self, change: impl FnOnce(&rusqlite::Transaction<'_>)) {
        let txn = self.conn.transaction().expect("begin");
        change(&txn);
        txn.commit().expect("commit");
    }

    fn read(&mut self, read: impl FnOnce(&rusqlite::Transaction<'_>) -> Tally) -> Tally {
        // One read transaction for the whole call, as with the others.
        let txn = self.conn.transaction().expect("begin");
        let tally = read(&txn);
        txn.commit().expect("end the read transaction");
        tally
    }
}

fn add_blob(tally: &mut Tally, row: &rusqlite::Row<'_>, column: usize) {
    let value = row
        .get_ref(column)
        .expect("column")
        .as_blob()
        .expect("a blob");
    tally.add(value);
}

impl Engine for Sqlite {
    fn insert(&mut self, pairs: &[Pair]) {
        self.write(|txn| {
            let mut statement = txn
                .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                .expect("prepare");
            for (key, value) in pairs {
                statement.execute([key, value]).expect("insert");
            }
        });
    }

    fn remove(&mut self, keys: &[Vec<u8>]) {
        self.write(|txn| {
            let mut statement = txn
                .prepare_cached("DELETE FROM kv WHERE key = ?1")
                .expect("prepare");
            for key in keys {
                statement.execute([key]).expect("delete");
            }
        });
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Tally {
        self.read(|txn| {
            let mut statement = txn
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .expect("prepare");
            let mut tally = Tally::default();
            for key in keys {
                // A key that is absent leaves the tally as it is.
                statement
                    .query_row([key], |row| {
                        add_blob(&mut tally, row, 0);
                        Ok(())
                    })
                    .optional()
                    .expect("select");
            }
            tally
        })
    }

    fn ranges(&mut self, starts: &[Vec<u8>], len: usize) -> Tally {
        self.read(|txn| {
            let mut statement = txn
                .prepare_cached("SELECT value FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2")
                .expect("prepare");
            let mut tally = Tally::default();
            let len = i64::try_from(len).expect("a sane range");
            for start in starts {
                let mut rows = statement
                    .query(rusqlite::params![start, len])
                    .expect("select");
                while let Some(row) = rows.next().expect("row") {
                    add_blob(&mut tally, row, 0);
                }
            }
            tally
        })
    }

    fn scan_all(&mut self) -> Tally {
        self.read(|txn| {
            let mut statement = txn
                .prepare_cached("SELECT value FROM kv ORDER BY key")
                .expect("prepare");
            let mut tally = Tally::default();
            let mut rows = statement.query([]).expect("select");
            while let Some(row) = rows.next().expect("row") {
                add_blob(&mut tally, row, 0);
            }
            tally
        })
    }

    fn checkpoint(&mut self) -> bool {
        // Copies the WAL into the database file and empties it.
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .expect("wal_checkpoint");
        assert_eq!(busy, 0, "the checkpoint could not complete");
        true
    }

    fn close(self: Box<Self>) {
        self.conn
            .close()
            .map_err(|(_, error)| error)
            .expect("close");
    }
}
