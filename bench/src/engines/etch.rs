//! etch, with immediate durability (each batch is fdatasync'ed in the WAL before it returns).

use std::path::Path;

use etch_engine::{AutoCompaction, Range, RangeOptions, Store, WriteOp};

use super::{Engine, Pair};

pub struct Etch {
    store: Option<Store>,
}

impl Etch {
    pub fn open(dir: &Path, max_ops: usize) -> Etch {
        let store = etch_engine::Options::new()
            .max_txn_ops(max_ops)
            .max_request_bytes(1 << 31)
            .auto_compaction(AutoCompaction::Off)
            .open(dir.join("bench.etch"))
            .expect("open etch store");
        Etch { store: Some(store) }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("etch store is open")
    }
}

impl Engine for Etch {
    fn name(&self) -> &'static str {
        "etch"
    }

    fn write_txn(&mut self, pairs: &[Pair]) {
        let ops = pairs.iter().map(|(k, v)| WriteOp::put(k, v)).collect();
        self.store().batch(ops).expect("etch batch put");
    }

    fn remove_txn(&mut self, keys: &[Vec<u8>]) {
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
                txn.get(k)
                    .expect("etch get")
                    .map_or(0, |kv| kv.value.len() as u64)
            })
            .sum()
    }

    fn range_all(&self, _reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        let txn = self.store().read().expect("etch read txn");
        let opts = RangeOptions {
            limit: limit as i64,
            ..Default::default()
        };
        ranges
            .iter()
            .map(|(a, b)| {
                let resp = txn
                    .range_with(&Range::between(a, b), &opts)
                    .expect("etch range");
                resp.kvs.len() as u64
            })
            .sum()
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
