//! A fixed point-read workload for profilers, not a measurement: `etch-bench scale` and
//! `etch-bench compare` measure speed. It loads the scale benchmark's data set once (random
//! 24-byte keys, 150-byte values, durable batches of 10,000) into a file that later runs reuse,
//! then reads random loaded keys with `ReadTxn::get_ref` and checks that each is found, so a
//! profiler sees the read path alone:
//!
//! ```sh
//! ETCH_PROFILE_DB=/tmp/reads.etch ETCH_PROFILE_KEYS=1000000 \
//!   cargo test --release --workspace --test engine read_profile:: -- --ignored  # loads, reads
//! valgrind --tool=cachegrind --cache-sim=yes target/release/deps/engine-<hash> read_profile:: --ignored
//! ```
//!
//! Counts per warm read: run it with `ETCH_PROFILE_PASSES=2` and `=3` and divide the
//! difference by `ETCH_PROFILE_READS`.
//!
//! Ignored by default: the load takes a while, and the figures it prints vary with the machine.

use std::path::PathBuf;
use std::time::Instant;

use etch_engine::{AutoCompaction, Options, WriteOp};

const KEY_LEN: usize = 24;
/// The data set's value length.
pub(crate) const VALUE_LEN: usize = 150;
const BATCH: u64 = 10_000;

/// splitmix64, as the scale benchmark's key generator.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(&mix(seed ^ (i << 56)).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// The data set's `i`-th key.
pub(crate) fn key(i: u64) -> Vec<u8> {
    let mut k = mix(i).to_be_bytes().to_vec();
    k.extend_from_slice(&fill(i ^ 0x5EED, KEY_LEN - 8));
    k
}

/// `name`'s value from the environment, else `default`.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the profiles open the data set's file.
pub(crate) fn options() -> Options {
    Options::new()
        .auto_compaction(AutoCompaction::Off)
        .max_txn_ops(BATCH as usize)
        .max_request_bytes(64 << 20)
        .quota_bytes(None)
}

/// The data set's file (`$ETCH_PROFILE_DB`), loaded with `$ETCH_PROFILE_KEYS` keys if it does
/// not exist yet, and the number of keys asked for.
pub(crate) fn data_set() -> (PathBuf, u64) {
    let path = PathBuf::from(
        std::env::var("ETCH_PROFILE_DB").unwrap_or_else(|_| "/tmp/etch-read-profile.etch".into()),
    );
    let keys = env_u64("ETCH_PROFILE_KEYS", 1_000_000);
    if !path.exists() {
        let store = options().open(&path).unwrap();
        let mut i = 0;
        while i < keys {
            let ops = (i..(i + BATCH).min(keys))
                .map(|j| WriteOp::put(key(j), fill(j ^ 0xA11CE, VALUE_LEN)))
                .collect();
            store.batch(ops).unwrap();
            i += BATCH;
        }
        store.close().unwrap();
    }
    (path, keys)
}

#[test]
#[ignore]
fn point_reads_for_a_profiler() {
    let (path, _) = data_set();
    let reads = env_u64("ETCH_PROFILE_READS", 100_000);
    // Passes over the same sample: the first maps and verifies the pages, later ones are warm,
    // so the difference of two runs that differ by one pass is the cost of one warm pass.
    let passes = env_u64("ETCH_PROFILE_PASSES", 2).max(1);
    let store = options().open(&path).unwrap();
    let loaded = store.status().unwrap().key_count;
    assert!(loaded > 0, "{}: no keys", path.display());
    let sample: Vec<Vec<u8>> = (0..reads).map(|n| key(mix(n ^ 0xBEEF) % loaded)).collect();
    let txn = store.read().unwrap();
    for pass in 0..passes {
        let t = Instant::now();
        let mut bytes = 0u64;
        for k in &sample {
            bytes += txn.get_ref(k).unwrap().expect("a loaded key").value.len() as u64;
        }
        assert_eq!(bytes, reads * VALUE_LEN as u64);
        eprintln!(
            "pass {pass}: {reads} point reads of {loaded} keys, {:.0} ns each",
            t.elapsed().as_nanos() as f64 / reads as f64
        );
    }
}
