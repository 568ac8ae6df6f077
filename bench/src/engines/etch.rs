//! etch, with immediate durability (each batch is fdatasync'ed in the WAL before it returns).

use std::path::{Path, PathBuf};

use etch_engine::{AutoCompaction, Range, Store, WriteOp};

use super::{Engine, Pair};

pub struct Etch {
    /// `None` only while [`Engine::reopen`] has closed it.
    store: Option<Store>,
    path: PathBuf,
    max_ops: usize,
}

impl Etch {
    pub fn open(dir: &Path, max_ops: usize) -> Etch {
        let path = dir.join("bench.etch");
        Etch {
            store: Some(Etch::open_store(&path, max_ops)),
            path,
            max_ops,
        }
    }

    fn open_store(path: &Path, max_ops: usize) -> Store {
        etch_engine::Options::new()
            .max_txn_ops(max_ops)
            .max_request_bytes(1 << 31)
            .auto_compaction(AutoCompaction::Off)
            .open(path)
            .expect("open etch store")
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("etch store is open")
    }
}

impl Engine for Etch {
    fn name(&self) -> &'static str {
        "etch"
    }

    fn write_txn(&self, pairs: &[Pair]) {
        let ops = pairs.iter().map(|(k, v)| WriteOp::put(k, v)).collect();
        self.store().batch(ops).expect("etch batch put");
    }

    fn remove_txn(&self, keys: &[Vec<u8>]) {
        let ops = keys
            .iter()
            .map(|k| WriteOp::delete(Range::key(k)))
            .collect();
        self.store().batch(ops).expect("etch batch delete");
    }

    fn get_all(&self, _reader: usize, keys: &[Vec<u8>]) -> u64 {
        // One read transaction per reader thread, as the redb and LMDB adapters do.
        let txn = self.store().read().expect("etch read txn");
        keys.iter()
            .map(|k| {
                txn.get_ref(k)
                    .expect("etch get")
                    .map_or(0, |kv| kv.value.len() as u64)
            })
            .sum()
    }

    fn range_all(&self, _reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        // A borrowed cursor, as the peers' range iterators (etcd's `range_with` would also
        // count every key of the range, which none of the peers does).
        let txn = self.store().read().expect("etch read txn");
        let mut seen = 0;
        for (a, b) in ranges {
            for kv in txn
                .iter(&Range::between(a, b))
                .expect("etch range")
                .take(limit)
            {
                std::hint::black_box(kv.expect("etch range entry").value);
                seen += 1;
            }
        }
        seen
    }

    fn close(&mut self) {
        let store = self.store.take().expect("etch store is open");
        store.close().expect("close etch store");
    }

    fn open_again(&mut self) {
        self.store = Some(Etch::open_store(&self.path, self.max_ops));
    }

    /// Main file plus the WAL records not yet checkpointed (not the WAL's preallocation).
    fn disk_size(&self) -> u64 {
        let status = self.store().status().expect("etch status");
        status.file_size + status.wal_size
    }

    fn compact(&mut self) -> &'static str {
        let store = self.store();
        store.compact(store.revision()).expect("etch compact");
        store.defrag().expect("etch defrag");
        "compact(revision) + defrag"
    }
}

impl Drop for Etch {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.close().expect("close etch store");
        }
    }
}
