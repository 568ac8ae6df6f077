//! One [`Engine`] implementation per store under test.

use std::path::Path;

pub mod etch;
pub mod fjall;
pub mod lmdb;
pub mod redb;
pub mod sqlite;

/// A key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Number of reader handles an engine must provide (one per reader thread).
pub const READERS: usize = 2;

/// Engine names in table order; etch first, as the reference of every ratio.
pub const NAMES: [&str; 5] = ["etch", "redb", "lmdb", "sqlite", "fjall"];

/// Opens engine `name` in the fresh directory `dir`; `max_ops` is the largest transaction the
/// workloads write.
pub fn open(name: &str, dir: &Path, max_ops: usize) -> Option<Box<dyn Engine>> {
    Some(match name {
        "etch" => Box::new(etch::Etch::open(dir, max_ops)),
        "redb" => Box::new(redb::Redb::open(dir)),
        "lmdb" => Box::new(lmdb::Lmdb::open(dir)),
        "sqlite" => Box::new(sqlite::Sqlite::open(dir)),
        "fjall" => Box::new(fjall::Fjall::open(dir)),
        _ => return None,
    })
}

/// The operations the workloads need. Every write call is one transaction that is durable
/// (synced to stable storage) when the call returns, and may be called from several threads
/// at once (engines with a single writer serialize such calls internally).
pub trait Engine: Sync {
    /// Short name used in the table and the JSON output.
    fn name(&self) -> &'static str;
    /// Writes all pairs in one durable transaction.
    fn write_txn(&self, pairs: &[Pair]);
    /// Removes all keys in one durable transaction.
    fn remove_txn(&self, keys: &[Vec<u8>]);
    /// Point-reads every key through reader handle `reader` (`< READERS`); returns the total
    /// number of value bytes seen, so that engines can be checked against each other.
    fn get_all(&self, reader: usize, keys: &[Vec<u8>]) -> u64;
    /// Reads up to `limit` entries of every `[start, end)` range through reader handle `reader`;
    /// returns the number of entries seen.
    fn range_all(&self, reader: usize, ranges: &[Pair], limit: usize) -> u64;
    /// Closes the engine cleanly (everything durable, files released); only
    /// [`Engine::open_again`] may follow.
    fn close(&mut self);
    /// Opens the files [`Engine::close`] closed.
    fn open_again(&mut self);
    /// Bytes the engine occupies on disk (see each implementation for what is counted).
    fn disk_size(&self) -> u64;
    /// Runs the engine's own space reclamation; returns a short description of what ran.
    fn compact(&mut self) -> &'static str;
}

/// Sum of the apparent sizes of all files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read bench directory") {
        let entry = entry.expect("read directory entry");
        let meta = entry.metadata().expect("stat bench file");
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}
