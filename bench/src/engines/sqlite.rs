//! SQLite (bundled) in WAL mode with `synchronous=FULL`, one `WITHOUT ROWID` table.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection};

use super::{Engine, Pair, READERS};

pub struct Sqlite {
    /// SQLite admits one writer at a time; concurrent committers queue on this mutex rather
    /// than on SQLite's busy handler (which would sleep and retry).
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    dir: PathBuf,
}

fn connect(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open sqlite database");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("sqlite journal_mode=WAL");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sqlite synchronous=FULL");
    conn
}

impl Sqlite {
    pub fn open(dir: &Path) -> Sqlite {
        let path = dir.join("bench.sqlite");
        let writer = connect(&path);
        writer
            .execute_batch("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;")
            .expect("sqlite create table");
        Sqlite::with_writer(writer, dir)
    }

    fn with_writer(writer: Connection, dir: &Path) -> Sqlite {
        let path = dir.join("bench.sqlite");
        let readers = (0..READERS).map(|_| Mutex::new(connect(&path))).collect();
        Sqlite {
            writer: Mutex::new(writer),
            readers,
            dir: dir.to_path_buf(),
        }
    }
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn write_txn(&self, pairs: &[Pair]) {
        let mut conn = self.writer.lock().expect("sqlite writer lock");
        let txn = conn.transaction().expect("sqlite begin");
        {
            let mut stmt = txn
                .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
                .expect("sqlite prepare insert");
            for (k, v) in pairs {
                stmt.execute(params![k, v]).expect("sqlite insert");
            }
        }
        txn.commit().expect("sqlite commit");
    }

    fn remove_txn(&self, keys: &[Vec<u8>]) {
        let mut conn = self.writer.lock().expect("sqlite writer lock");
        let txn = conn.transaction().expect("sqlite begin");
        {
            let mut stmt = txn
                .prepare_cached("DELETE FROM kv WHERE k = ?1")
                .expect("sqlite prepare delete");
            for k in keys {
                stmt.execute(params![k]).expect("sqlite delete");
            }
        }
        txn.commit().expect("sqlite commit");
    }

    fn get_all(&self, reader: usize, keys: &[Vec<u8>]) -> u64 {
        let conn = self.readers[reader].lock().expect("sqlite reader lock");
        let mut stmt = conn
            .prepare_cached("SELECT length(v) FROM kv WHERE k = ?1")
            .expect("sqlite prepare get");
        let mut total = 0;
        for k in keys {
            let mut rows = stmt.query(params![k]).expect("sqlite get");
            if let Some(row) = rows.next().expect("sqlite get row") {
                let len: i64 = row.get(0).expect("sqlite get column");
                total += len as u64;
            }
        }
        total
    }

    fn range_all(&self, reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        let conn = self.readers[reader].lock().expect("sqlite reader lock");
        let mut stmt = conn
            .prepare_cached("SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3")
            .expect("sqlite prepare range");
        let mut seen = 0;
        for (a, b) in ranges {
            let mut rows = stmt
                .query(params![a, b, limit as i64])
                .expect("sqlite range");
            while let Some(row) = rows.next().expect("sqlite range row") {
                let v = row.get_ref(1).expect("sqlite range column");
                std::hint::black_box(v);
                seen += 1;
            }
        }
        seen
    }

    fn close(&mut self) {
        // The last connection to close checkpoints and removes the WAL; an in-memory
        // connection stands in for the writer until `open_again`.
        self.readers.clear();
        let placeholder = Connection::open_in_memory().expect("sqlite in-memory connection");
        drop(std::mem::replace(
            self.writer.get_mut().expect("sqlite writer lock"),
            placeholder,
        ));
    }

    fn open_again(&mut self) {
        let dir = self.dir.clone();
        *self = Sqlite::with_writer(connect(&dir.join("bench.sqlite")), &dir);
    }

    /// Database file, WAL and shared-memory index.
    fn disk_size(&self) -> u64 {
        super::dir_size(&self.dir)
    }

    fn compact(&mut self) -> &'static str {
        let conn = self.writer.get_mut().expect("sqlite writer lock");
        conn.execute_batch("VACUUM;").expect("sqlite VACUUM");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("sqlite wal_checkpoint");
        "VACUUM + wal_checkpoint(TRUNCATE)"
    }
}
