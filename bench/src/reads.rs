//! `etch-bench reads`: etch's point reads against LMDB's, measured so that a 10% difference
//! shows.
//!
//! ```text
//! cargo run --release -p etch-bench -- reads [--sizes 1000000,2000000,4000000] [--rounds N]
//!                                            [--reads N] [--quick]
//! ```
//!
//! `etch-bench scale` reads once per size, in a separate process per engine, minutes apart; on
//! this machine the same figure moves by up to 1.8x between two such runs, for both engines.
//! Here both engines hold the same data set (the scale benchmark's keys and values, loaded in
//! batches of 10,000 up to each size, without syncs: the files' layout is the same as a durable
//! load's) in one process, in a fresh directory under the current one that is removed at the
//! end. At each size they read the same random loaded keys in alternating passes, `--rounds`
//! rounds of `--reads` keys each, a fresh sample per round and the first engine of a round
//! alternating, so drift of the machine during a size falls on both. Each pass is one read
//! transaction with a borrowed point read per key (etch's `get_ref`, heed's `get`), as the scale
//! benchmark's.
//!
//! Each size is measured twice: reads that take only the value's length (as the scale benchmark;
//! the value's bytes are never loaded) and reads that sum the value's bytes (as an application
//! that uses what it fetched). Printed per size and use: each engine's median and fastest pass
//! (ns per read), the ratio of the medians, and the median and range of the per-round ratios
//! (etch / LMDB; below 1 is etch faster). Every pass checks that both engines found every key
//! and the same bytes. `--quick` (200,000 keys, 5 rounds) is the CI smoke run.

use std::path::Path;
use std::time::Instant;

use etch_engine::{AutoCompaction, Durability, Options, Store, WriteOp};
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};

use crate::scale::{key, mix, quantile, value, BATCH};

struct Plan {
    sizes: Vec<u64>,
    rounds: u64,
    reads: u64,
}

fn usage() -> ! {
    eprintln!("usage: etch-bench reads [--sizes N,N,...] [--rounds N] [--reads N] [--quick]");
    std::process::exit(2)
}

fn parse(mut args: impl Iterator<Item = String>) -> Plan {
    let mut plan = Plan {
        sizes: vec![1_000_000, 2_000_000, 4_000_000],
        rounds: 21,
        reads: 200_000,
    };
    let number = |s: Option<String>| -> u64 {
        s.and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| usage())
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = args.next().unwrap_or_else(|| usage());
                plan.sizes = list.split(',').map(|s| number(Some(s.into()))).collect();
            }
            "--rounds" => plan.rounds = number(args.next()),
            "--reads" => plan.reads = number(args.next()),
            "--quick" => {
                plan.sizes = vec![100_000, 200_000];
                plan.rounds = 5;
                plan.reads = 20_000;
            }
            _ => usage(),
        }
    }
    if plan.sizes.windows(2).any(|w| w[0] >= w[1]) {
        eprintln!("--sizes must increase");
        usage()
    }
    plan
}

/// The LMDB side: an environment without syncs (the benchmark measures reads).
struct Lmdb {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl Lmdb {
    /// `max_keys`: the largest size of the plan, to size the map (a 64 GiB map, as the scale
    /// benchmark's, does not fit under valgrind).
    fn open(dir: &Path, max_keys: u64) -> Lmdb {
        std::fs::create_dir_all(dir).expect("create lmdb directory");
        // SAFETY: the environment lives in a directory of this run that no other process or
        // environment of this process opens, which is what heed's `open` requires; NO_SYNC only
        // weakens durability after a power cut, which this benchmark does not rely on.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(((max_keys * 1024) as usize).max(1 << 30))
                .max_dbs(1)
                .flags(EnvFlags::NO_SYNC)
                .open(dir)
                .expect("open lmdb env")
        };
        let db = crate::engines::lmdb::kv_database(&env);
        Lmdb { env, db }
    }

    fn write(&self, from: u64, to: u64) {
        let mut txn = self.env.write_txn().expect("lmdb write_txn");
        for i in from..to {
            self.db
                .put(&mut txn, &key(i), &value(i, 0))
                .expect("lmdb put");
        }
        txn.commit().expect("lmdb commit");
    }

    /// One pass: ns per read. Never inlined, so that a profiler can count it alone
    /// (`valgrind --tool=callgrind --toggle-collect=...`).
    #[inline(never)]
    fn pass(&self, keys: &[Vec<u8>], using: Use) -> (f64, u64) {
        let start = Instant::now();
        let txn = self.env.read_txn().expect("lmdb read_txn");
        let used: u64 = keys
            .iter()
            .map(|k| {
                let v = self.db.get(&txn, k).expect("lmdb get");
                using.of(v.expect("lmdb lost a key"))
            })
            .sum();
        let ns = start.elapsed().as_nanos() as f64 / keys.len() as f64;
        (ns, used)
    }
}

fn open_etch(path: &Path) -> Store {
    // As the scale benchmark opens it, with relaxed durability for the load.
    Options::new()
        .auto_compaction(AutoCompaction::Off)
        .durability(Durability::Relaxed)
        .max_txn_ops(BATCH as usize)
        .max_request_bytes(64 << 20)
        .quota_bytes(None)
        .open(path)
        .expect("open etch store")
}

fn etch_write(store: &Store, from: u64, to: u64) {
    let ops = (from..to)
        .map(|i| WriteOp::put(key(i), value(i, 0)))
        .collect();
    store.batch(ops).expect("etch batch");
}

/// One pass: ns per read. Never inlined, as [`Lmdb::pass`].
#[inline(never)]
fn etch_pass(store: &Store, keys: &[Vec<u8>], using: Use) -> (f64, u64) {
    let start = Instant::now();
    let txn = store.read().expect("etch read");
    let used: u64 = keys
        .iter()
        .map(|k| {
            let kv = txn.get_ref(k).expect("etch get");
            using.of(kv.expect("etch lost a key").value)
        })
        .sum();
    let ns = start.elapsed().as_nanos() as f64 / keys.len() as f64;
    (ns, used)
}

/// What each read does with the value it finds.
#[derive(Clone, Copy)]
enum Use {
    /// Takes its length only, as the scale benchmark: the value's bytes are not touched.
    Length,
    /// Sums its bytes, as an application that reads what it fetched: the value's cache lines
    /// are loaded too.
    Bytes,
}

impl Use {
    fn of(self, value: &[u8]) -> u64 {
        match self {
            Use::Length => value.len() as u64,
            Use::Bytes => value.iter().map(|&b| u64::from(b)).sum(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Use::Length => "length",
            Use::Bytes => "bytes",
        }
    }
}

/// Runs `etch-bench reads`.
pub fn main(args: impl Iterator<Item = String>) {
    let plan = parse(args);
    let dir = tempfile::tempdir_in(".").expect("create temporary directory");
    let store = open_etch(&dir.path().join("reads.etch"));
    let max_keys = plan.sizes.last().copied().unwrap_or(0);
    let lmdb = Lmdb::open(&dir.path().join("lmdb"), max_keys);
    println!(
        "point reads, etch against LMDB in one process: {} rounds of {} random loaded keys per size, engines alternating",
        plan.rounds, plan.reads
    );
    println!(
        "| keys | value used | etch median / fastest ns | LMDB median / fastest ns | ratio of medians | per-round ratio: median (min-max) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut loaded = 0;
    for &size in &plan.sizes {
        while loaded < size {
            let to = (loaded + BATCH).min(size);
            etch_write(&store, loaded, to);
            lmdb.write(loaded, to);
            loaded = to;
        }
        // One pass over a sample to map (and, for etch, verify) the upper levels before timing.
        let warm: Vec<Vec<u8>> = (0..plan.reads).map(|j| key(mix(j) % loaded)).collect();
        etch_pass(&store, &warm, Use::Length);
        lmdb.pass(&warm, Use::Length);
        for using in [Use::Length, Use::Bytes] {
            let (mut etch, mut lm, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..plan.rounds {
                let keys: Vec<Vec<u8>> = crate::scale::sample(plan.reads, loaded, round + 1)
                    .into_iter()
                    .map(key)
                    .collect();
                let ((e, etch_used), (l, lmdb_used)) = if round % 2 == 0 {
                    let e = etch_pass(&store, &keys, using);
                    (e, lmdb.pass(&keys, using))
                } else {
                    let l = lmdb.pass(&keys, using);
                    (etch_pass(&store, &keys, using), l)
                };
                assert_eq!(etch_used, lmdb_used, "etch and LMDB read different values");
                etch.push(e);
                lm.push(l);
                ratios.push(e / l);
            }
            for v in [&mut etch, &mut lm, &mut ratios] {
                v.sort_by(f64::total_cmp);
            }
            let (em, lmm) = (quantile(&etch, 0.5), quantile(&lm, 0.5));
            println!(
                "| {} | {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2}x | {:.2}x ({:.2}-{:.2}) |",
                loaded,
                using.name(),
                em,
                etch[0],
                lmm,
                lm[0],
                em / lmm,
                quantile(&ratios, 0.5),
                ratios[0],
                ratios[ratios.len() - 1],
            );
        }
    }
    store.close().expect("close etch store");
}
