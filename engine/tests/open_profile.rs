//! A fixed reopen workload for profilers and timers, not a measurement of record: `etch-bench
//! scale` and `etch-bench compare` time "reopen + first read" beside their peers. It loads the
//! scale benchmark's data set once (random 24-byte keys, 150-byte values, durable batches of
//! 10,000; the same file `read_profile` makes, so the two can share it), then closes and reopens
//! the store `ETCH_PROFILE_OPENS` times, reading one key after each open, and prints the
//! median, fastest and slowest open + first read (the close is not timed):
//!
//! ```sh
//! ETCH_PROFILE_DB=/tmp/reads.etch ETCH_PROFILE_KEYS=1000000 ETCH_PROFILE_OPENS=50 \
//!   cargo test --release --workspace --test engine open_profile:: -- --ignored --nocapture
//! perf record -g target/release/deps/open_profile-<hash> --ignored
//! ```
//!
//! Ignored by default: the load takes a while, and the figures it prints vary with the machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use etch_engine::{AutoCompaction, Options, WriteOp};

const KEY_LEN: usize = 24;
const VALUE_LEN: usize = 150;
const BATCH: u64 = 10_000;

/// splitmix64, as the scale benchmark's key generator.
fn mix(mut x: u64) -> u64 {
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

fn key(i: u64) -> Vec<u8> {
    let mut k = mix(i).to_be_bytes().to_vec();
    k.extend_from_slice(&fill(i ^ 0x5EED, KEY_LEN - 8));
    k
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options() -> Options {
    Options::new()
        .auto_compaction(AutoCompaction::Off)
        .max_txn_ops(BATCH as usize)
        .max_request_bytes(64 << 20)
        .quota_bytes(None)
}

#[test]
#[ignore]
fn reopen_for_a_profiler() {
    let path = PathBuf::from(
        std::env::var("ETCH_PROFILE_DB").unwrap_or_else(|_| "/tmp/etch-read-profile.etch".into()),
    );
    let keys = env_u64("ETCH_PROFILE_KEYS", 1_000_000);
    let opens = env_u64("ETCH_PROFILE_OPENS", 50).max(1);
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
    let mut times: Vec<Duration> = Vec::new();
    for n in 0..opens {
        let k = key(mix(n ^ 0x0FE7) % keys);
        let t = Instant::now();
        let store = options().open(&path).unwrap();
        let got = store
            .read()
            .unwrap()
            .get_ref(&k)
            .unwrap()
            .map(|kv| kv.value.len());
        times.push(t.elapsed());
        assert_eq!(got, Some(VALUE_LEN), "a loaded key after reopen {n}");
        store.close().unwrap();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "{opens} reopens + first read of {}: median {:.2} ms, fastest {:.2} ms, slowest {:.2} ms",
        path.display(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
    );
}
