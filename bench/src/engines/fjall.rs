//! fjall 2.x (LSM tree); every write batch commits with `PersistMode::SyncAll`.

use std::path::{Path, PathBuf};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use super::{Engine, Pair};

pub struct Fjall {
    keyspace: Keyspace,
    partition: PartitionHandle,
    dir: PathBuf,
}

impl Fjall {
    pub fn open(dir: &Path) -> Fjall {
        let dir = dir.join("fjall");
        let keyspace = Config::new(&dir).open().expect("open fjall keyspace");
        let partition = keyspace
            .open_partition("kv", PartitionCreateOptions::default())
            .expect("open fjall partition");
        Fjall {
            keyspace,
            partition,
            dir,
        }
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn write_txn(&mut self, pairs: &[Pair]) {
        let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
        for (k, v) in pairs {
            batch.insert(&self.partition, k.as_slice(), v.as_slice());
        }
        batch.commit().expect("fjall batch commit");
    }

    fn remove_txn(&mut self, keys: &[Vec<u8>]) {
        let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
        for k in keys {
            batch.remove(&self.partition, k.as_slice());
        }
        batch.commit().expect("fjall batch commit");
    }

    fn get_all(&self, _reader: usize, keys: &[Vec<u8>]) -> u64 {
        keys.iter()
            .map(|k| {
                let v = self.partition.get(k).expect("fjall get");
                v.map_or(0, |v| v.len() as u64)
            })
            .sum()
    }

    fn range_all(&self, _reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        let mut seen = 0;
        for (a, b) in ranges {
            for entry in self.partition.range(a.as_slice()..b.as_slice()).take(limit) {
                let (_k, v) = entry.expect("fjall range entry");
                std::hint::black_box(v);
                seen += 1;
            }
        }
        seen
    }

    /// Everything in the keyspace directory (journals and segments).
    fn disk_size(&self) -> u64 {
        super::dir_size(&self.dir)
    }

    fn compact(&mut self) -> &'static str {
        self.partition
            .major_compact()
            .expect("fjall major compaction");
        self.keyspace
            .persist(PersistMode::SyncAll)
            .expect("fjall persist");
        "PartitionHandle::major_compact (doc-hidden API)"
    }
}
