//! Helpers shared by the integration tests that simulate power cuts.
// Each test binary compiles this module and uses only some of its helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use etch_engine::sim::{CrashPolicy, SimDisk};
use etch_engine::{LogEntry, Options, Range, Store};
use tempfile::TempDir;

/// A store at `path` on a fresh simulated disk whose files live in a new temporary directory.
pub fn sim_store(path: &str) -> (TempDir, SimDisk, Store) {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("before");
    std::fs::create_dir_all(&scratch).unwrap();
    let disk = SimDisk::new(&scratch);
    let db = Options::new()
        .storage(Arc::new(disk.clone()))
        .open(path)
        .unwrap();
    (dir, disk, db)
}

/// Opens what a power cut now would leave of `disk` (every unsynced write dropped), on a new
/// simulated disk in `dir`.
pub fn open_after_power_cut(dir: &TempDir, disk: &SimDisk, path: &str) -> Store {
    let image = disk.crash_image(CrashPolicy::DropUnsynced);
    let scratch = dir.path().join("after");
    std::fs::create_dir_all(&scratch).unwrap();
    Options::new()
        .storage(Arc::new(SimDisk::from_image(&scratch, &image).unwrap()))
        .open(path)
        .unwrap()
}

/// The name libtest knows the test `test` of module `module` by (`module` being the caller's
/// `module_path!()`, which starts with the binary's crate name), for a test that runs another
/// test of its own binary as a child process (`--exact`).
pub fn test_name(module: &str, test: &str) -> String {
    let within = module.split_once("::").map_or("", |(_, rest)| rest);
    if within.is_empty() {
        test.to_owned()
    } else {
        format!("{within}::{test}")
    }
}

/// Every key of `store` at its current revision, with its value.
pub fn keys(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .range(Range::all())
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

/// Every Raft log entry `store` holds (after its purged prefix).
pub fn log_entries(store: &Store) -> Vec<LogEntry> {
    let st = store.log_state().unwrap();
    let first = st.last_purged.map_or(1, |p| p.0 + 1);
    let last = st.last.map_or(0, |l| l.0);
    store.log_read(first, last + 1).unwrap()
}
