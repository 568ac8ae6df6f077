//! Random point reads and short range reads on a store of N keys (default 200,000; 24-byte keys,
//! 150-byte values), best of ROUNDS rounds (default 3).
//!
//! `cargo bench -p etch-engine --bench reads` (env `N`, `ROUNDS`). Used to check that the
//! storage seam costs reads nothing measurable (docs/benchmarks.md).
use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir_in(".").unwrap();
    // 200k gets and 20k prefix ranges (limit 10, about 50 keys each) per round.
    let path = dir.path().join("reads.etch");
    let db = etch_engine::Options::new()
        .max_txn_ops(1 << 20)
        .max_request_bytes(1 << 30)
        .open(&path)
        .unwrap();
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let key = |i: u64| {
        let mut x = i.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        x ^= x >> 29;
        format!("{:024x}", x)
    };
    let t = Instant::now();
    db.batch(
        (0..n)
            .map(|i| etch_engine::WriteOp::put(key(i), [7u8; 150]))
            .collect(),
    )
    .unwrap();
    eprintln!("load {:?}", t.elapsed());
    let mut best = f64::MAX;
    let mut best_range = f64::MAX;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for _round in 0..rounds {
        let mut x: u64 = 12345;
        let t = Instant::now();
        let mut found = 0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if db.get(key(x % n)).unwrap().is_some() {
                found += 1;
            }
        }
        assert_eq!(found, 200_000);
        best = best.min(t.elapsed().as_nanos() as f64 / 200_000.0);

        let t = Instant::now();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x % n);
            let r = db
                .range_with(
                    &etch_engine::Range::prefix(&k[..11]),
                    &etch_engine::RangeOptions {
                        limit: 10,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert!(r.kvs.len() <= 10);
        }
        best_range = best_range.min(t.elapsed().as_nanos() as f64 / 20_000.0);
    }
    println!("get: {best:.0} ns; range of 10: {best_range:.0} ns");
}
