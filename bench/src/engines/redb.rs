//! redb 2.x with its default `Durability::Immediate` (each commit is fsync'ed).

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};

use super::{Engine, Pair};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

pub struct Redb {
    db: Database,
    path: PathBuf,
}

impl Redb {
    pub fn open(dir: &Path) -> Redb {
        let path = dir.join("bench.redb");
        let db = Database::create(&path).expect("create redb database");
        Redb { db, path }
    }
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn write_txn(&self, pairs: &[Pair]) {
        let txn = self.db.begin_write().expect("redb begin_write");
        {
            let mut table = txn.open_table(TABLE).expect("redb open_table");
            for (k, v) in pairs {
                table
                    .insert(k.as_slice(), v.as_slice())
                    .expect("redb insert");
            }
        }
        txn.commit().expect("redb commit");
    }

    fn remove_txn(&self, keys: &[Vec<u8>]) {
        let txn = self.db.begin_write().expect("redb begin_write");
        {
            let mut table = txn.open_table(TABLE).expect("redb open_table");
            for k in keys {
                table.remove(k.as_slice()).expect("redb remove");
            }
        }
        txn.commit().expect("redb commit");
    }

    fn get_all(&self, _reader: usize, keys: &[Vec<u8>]) -> u64 {
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(TABLE).expect("redb open_table");
        keys.iter()
            .map(|k| {
                let v = table.get(k.as_slice()).expect("redb get");
                v.map_or(0, |v| v.value().len() as u64)
            })
            .sum()
    }

    fn range_all(&self, _reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(TABLE).expect("redb open_table");
        let mut seen = 0;
        for (a, b) in ranges {
            let iter = table
                .range::<&[u8]>(a.as_slice()..b.as_slice())
                .expect("redb range");
            for entry in iter.take(limit) {
                let (_k, v) = entry.expect("redb range entry");
                std::hint::black_box(v.value());
                seen += 1;
            }
        }
        seen
    }

    fn close(&mut self) {
        // redb holds a file lock until the handle is dropped; an in-memory database stands in.
        let placeholder = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("redb in-memory database");
        drop(std::mem::replace(&mut self.db, placeholder));
    }

    fn open_again(&mut self) {
        self.db = Database::open(&self.path).expect("reopen redb database");
    }

    /// The database file.
    fn disk_size(&self) -> u64 {
        std::fs::metadata(&self.path).expect("stat redb file").len()
    }

    fn compact(&mut self) -> &'static str {
        while self.db.compact().expect("redb compact") {}
        "Database::compact until done"
    }
}
