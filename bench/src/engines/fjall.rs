//! fjall 2.x (LSM tree); every write batch commits with `PersistMode::SyncAll`.

use std::path::{Path, PathBuf};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use super::{Engine, Pair};

pub struct Fjall {
    /// `None` only while [`Engine::reopen`] has closed it.
    open: Option<(Keyspace, PartitionHandle)>,
    dir: PathBuf,
}

impl Fjall {
    pub fn open(dir: &Path) -> Fjall {
        Fjall::open_dir(dir.join("fjall"))
    }

    fn open_dir(dir: PathBuf) -> Fjall {
        let keyspace = Config::new(&dir).open().expect("open fjall keyspace");
        let partition = keyspace
            .open_partition("kv", PartitionCreateOptions::default())
            .expect("open fjall partition");
        Fjall {
            open: Some((keyspace, partition)),
            dir,
        }
    }

    fn keyspace(&self) -> &Keyspace {
        &self.open.as_ref().expect("fjall is open").0
    }

    fn partition(&self) -> &PartitionHandle {
        &self.open.as_ref().expect("fjall is open").1
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn write_txn(&self, pairs: &[Pair]) {
        let mut batch = self
            .keyspace()
            .batch()
            .durability(Some(PersistMode::SyncAll));
        for (k, v) in pairs {
            batch.insert(self.partition(), k.as_slice(), v.as_slice());
        }
        batch.commit().expect("fjall batch commit");
    }

    fn remove_txn(&self, keys: &[Vec<u8>]) {
        let mut batch = self
            .keyspace()
            .batch()
            .durability(Some(PersistMode::SyncAll));
        for k in keys {
            batch.remove(self.partition(), k.as_slice());
        }
        batch.commit().expect("fjall batch commit");
    }

    fn get_all(&self, _reader: usize, keys: &[Vec<u8>]) -> u64 {
        keys.iter()
            .map(|k| {
                let v = self.partition().get(k).expect("fjall get");
                v.map_or(0, |v| v.len() as u64)
            })
            .sum()
    }

    fn range_all(&self, _reader: usize, ranges: &[Pair], limit: usize) -> u64 {
        let mut seen = 0;
        for (a, b) in ranges {
            for entry in self
                .partition()
                .range(a.as_slice()..b.as_slice())
                .take(limit)
            {
                let (_k, v) = entry.expect("fjall range entry");
                std::hint::black_box(v);
                seen += 1;
            }
        }
        seen
    }

    fn close(&mut self) {
        self.keyspace()
            .persist(PersistMode::SyncAll)
            .expect("fjall persist");
        // Dropping the last handles stops fjall's background threads and releases the folder.
        drop(self.open.take());
    }

    fn open_again(&mut self) {
        *self = Fjall::open_dir(std::mem::take(&mut self.dir));
    }

    /// Everything in the keyspace directory (journals and segments).
    fn disk_size(&self) -> u64 {
        super::dir_size(&self.dir)
    }

    fn compact(&mut self) -> &'static str {
        self.partition()
            .major_compact()
            .expect("fjall major compaction");
        self.keyspace()
            .persist(PersistMode::SyncAll)
            .expect("fjall persist");
        "PartitionHandle::major_compact (doc-hidden API)"
    }
}
