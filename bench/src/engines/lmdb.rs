//! LMDB through heed, with default flags (each commit is synced: no `NO_SYNC`/`NO_META_SYNC`).

use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CompactionOption, Database, Env, EnvOpenOptions};

use super::{Engine, Pair};

/// Opens (creating it if needed) the one named database the benchmarks use in `env`.
pub fn kv_database(env: &Env) -> Database<Bytes, Bytes> {
    let mut txn = env.write_txn().expect("lmdb write_txn");
    let db = env
        .create_database(&mut txn, Some("kv"))
        .expect("lmdb create_database");
    txn.commit().expect("lmdb commit");
    db
}

pub struct Lmdb {
    /// `None` only while [`Engine::reopen`] has closed it.
    env: Option<Env>,
    db: Database<Bytes, Bytes>,
    dir: PathBuf,
}

impl Lmdb {
    pub fn open(dir: &Path) -> Lmdb {
        let env_dir = dir.join("lmdb");
        std::fs::create_dir(&env_dir).expect("create lmdb directory");
        Lmdb::open_env(env_dir)
    }

    fn open_env(env_dir: PathBuf) -> Lmdb {
        // SAFETY: the environment lives in a directory of this run that no other process opens,
        // and an earlier `Env` of this process on it was fully closed first (see `reopen`),
        // which is what heed's `open` requires.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(16 << 30)
                .max_dbs(1)
                .open(&env_dir)
                .expect("open lmdb env")
        };
        let db = kv_database(&env);
        Lmdb {
            env: Some(env),
            db,
            dir: env_dir,
        }
    }

    fn env(&self) -> &Env {
        self.env.as_ref().expect("lmdb env is open")
    }
}

impl Engine for Lmdb {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn write_txn(&self, pairs: &[Pair]) {
        let mut txn = self.env().write_txn().expect("lmdb write_txn");
        for (k, v) in pairs {
            self.db.put(&mut txn, k, v).expect("lmdb put");
        }
        txn.commit().expect("lmdb commit");
    }

    fn remove_txn(&self, keys: &[Vec<u8>]) {
        let mut txn = self.env().write_txn().expect("lmdb write_txn");
        for k in keys {
            self.db.delete(&mut txn, k).expect("lmdb delete");
        }
        txn.commit().expect("lmdb commit");
    }

    fn get_all(&self, _reader: usize, keys: &[Vec<u8>]) -> u64 {
        let txn = self.env().read_txn().expect("lmdb read_txn");
        keys.iter()
            .map(|k| {
                let v = self.db.get(&txn, k).expect("lmdb get");
                v.map_or(0, |v| v.len() as u64)
            })
            .sum()
    }

    fn range_all(&self, _reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        let txn = self.env().read_txn().expect("lmdb read_txn");
        let mut seen = 0;
        for (a, b) in ranges {
            let bounds = (
                std::ops::Bound::Included(a.as_slice()),
                std::ops::Bound::Excluded(b.as_slice()),
            );
            let iter = self.db.range(&txn, &bounds).expect("lmdb range");
            for entry in iter.take(limit) {
                let (_k, v) = entry.expect("lmdb range entry");
                std::hint::black_box(v);
                seen += 1;
            }
        }
        seen
    }

    /// `data.mdb` and `lock.mdb` (or the compacted copy once `compact` ran).
    fn close(&mut self) {
        let env = self.env.take().expect("lmdb env is open");
        env.prepare_for_closing().wait();
    }

    fn open_again(&mut self) {
        *self = Lmdb::open_env(self.dir.clone());
    }

    fn disk_size(&self) -> u64 {
        let copy = self.dir.join("compact.mdb");
        if copy.exists() {
            return std::fs::metadata(copy).expect("stat lmdb copy").len();
        }
        super::dir_size(&self.dir)
    }

    fn compact(&mut self) -> &'static str {
        self.env()
            .copy_to_path(self.dir.join("compact.mdb"), CompactionOption::Enabled)
            .expect("lmdb compacting copy");
        "copy_to_path(CompactionOption::Enabled), size of the copy"
    }
}
