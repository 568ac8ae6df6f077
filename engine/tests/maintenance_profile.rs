//! Fixed `check()` and compaction workloads for profilers, not measurements (`etch-bench
//! scale` measures them): on a copy of the point-read profile's data set (`read_profile.rs`:
//! random 24-byte keys, 150-byte values, durable batches of 10,000), it times `check()`, then
//! overwrites `$ETCH_PROFILE_OVERWRITE` keys (default: a quarter of them) in the same batches and
//! times one `compact(revision)` of all the history, as the scale benchmark does after its load:
//!
//! ```sh
//! ETCH_PROFILE_DB=/tmp/scale.etch ETCH_PROFILE_KEYS=4000000 \
//!   cargo test --release --workspace --test engine maintenance_profile:: -- --ignored --nocapture
//! perf record -g target/release/deps/engine-<hash> maintenance_profile::check --ignored
//! ```
//!
//! The data set's file itself is never changed (the compaction runs on a copy), so runs can be
//! repeated. Ignored by default: the load takes a while, and the figures vary with the machine.

use std::time::Instant;

use etch_engine::WriteOp;

use crate::read_profile::{data_set, env_u64, key, options, VALUE_LEN};

#[test]
#[ignore]
fn check_for_a_profiler() {
    let (path, _) = data_set();
    let store = options().open(&path).unwrap();
    let passes = env_u64("ETCH_PROFILE_PASSES", 1).max(1);
    for pass in 0..passes {
        let t = Instant::now();
        let mut calls = 0u64;
        let mut last = 0u64;
        let report = store
            .check_with_progress(|done, total| {
                assert!(done >= last && done <= total);
                last = done;
                calls += 1;
            })
            .unwrap();
        eprintln!(
            "check pass {pass}: {:.2} s, {} keys, {} tree pages, {calls} progress calls",
            t.elapsed().as_secs_f64(),
            report.keys,
            report.tree_pages
        );
    }
}

#[test]
#[ignore]
fn compaction_for_a_profiler() {
    let (path, keys) = data_set();
    let copy = path.with_extension("compact-copy");
    let copy_wal = path.with_extension("compact-copy-wal");
    // A WAL left by an interrupted earlier run belongs to the same database: not this copy's.
    let _ = std::fs::remove_file(&copy_wal);
    std::fs::copy(&path, &copy).unwrap();
    let store = options().open(&copy).unwrap();
    let loaded = store.status().unwrap().key_count;
    let overwrite = env_u64("ETCH_PROFILE_OVERWRITE", keys / 4).min(loaded);
    let t = Instant::now();
    let mut i = 0;
    while i < overwrite {
        let ops = (i..(i + 10_000).min(overwrite))
            .map(|j| WriteOp::put(key(j), vec![b'o'; VALUE_LEN]))
            .collect();
        store.batch(ops).unwrap();
        i += 10_000;
    }
    eprintln!(
        "overwrite {overwrite} of {loaded} keys: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    store.compact(store.revision()).unwrap();
    eprintln!("compact(revision): {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let report = store.check().unwrap();
    eprintln!(
        "check after it: {:.2} s, {} history records, {} log records",
        t.elapsed().as_secs_f64(),
        report.history_records,
        report.log_records
    );
    store.close().unwrap();
    std::fs::remove_file(&copy).unwrap();
    let _ = std::fs::remove_file(&copy_wal);
}
