//! A fixed reopen workload for profilers and timers, not a measurement of record: `etch-bench
//! scale` and `etch-bench compare` time "reopen + first read" beside their peers. It loads the
//! scale benchmark's data set once (random 24-byte keys, 150-byte values, durable batches of
//! 10,000; `read_profile`'s file and loader, so the two can share it), then closes and reopens
//! the store `ETCH_PROFILE_OPENS` times, reading one key after each open, and prints the
//! median, fastest and slowest open + first read (the close is not timed):
//!
//! ```sh
//! ETCH_PROFILE_DB=/tmp/reads.etch ETCH_PROFILE_KEYS=1000000 ETCH_PROFILE_OPENS=50 \
//!   cargo test --release --workspace --test engine open_profile:: -- --ignored --nocapture
//! perf record -g target/release/deps/engine-<hash> open_profile:: --ignored
//! ```
//!
//! Ignored by default: the load takes a while, and the figures it prints vary with the machine.

use std::time::{Duration, Instant};

use crate::read_profile::{data_set, env_u64, key, mix, options, VALUE_LEN};

#[test]
#[ignore]
fn reopen_for_a_profiler() {
    let (path, keys) = data_set();
    let opens = env_u64("ETCH_PROFILE_OPENS", 50).max(1);
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
