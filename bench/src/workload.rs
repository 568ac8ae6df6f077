//! Data generation and the sequence of measured workloads run against one engine.

use std::time::Instant;

use crate::engines::{Engine, Pair, READERS};

pub const KEY_LEN: usize = 24;
pub const VALUE_LEN: usize = 150;
/// Entries each range read returns (at most).
pub const RANGE_LEN: usize = 10;

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub name: &'static str,
    /// Keys bulk loaded (and point-read).
    pub keys: usize,
    /// Individual durable write transactions.
    pub individual_writes: usize,
    /// Batches, each of `batch_size` keys.
    pub batches: usize,
    pub batch_size: usize,
    /// Range reads of about `RANGE_LEN` entries.
    pub range_reads: usize,
    /// Single-key durable commits per concurrency row, split evenly over the row's threads.
    pub concurrent_commits: usize,
}

impl Scale {
    pub const SMALL: Scale = Scale {
        name: "small",
        keys: 50_000,
        individual_writes: 200,
        batches: 20,
        batch_size: 1_000,
        range_reads: 20_000,
        concurrent_commits: 480,
    };
    pub const FULL: Scale = Scale {
        name: "full",
        keys: 1_000_000,
        individual_writes: 1_000,
        batches: 100,
        batch_size: 1_000,
        range_reads: 500_000,
        concurrent_commits: 4_000,
    };
}

/// Deterministic xorshift64* generator: every engine sees exactly the same bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pairs(&mut self, n: usize) -> Vec<Pair> {
        (0..n)
            .map(|_| (self.bytes(KEY_LEN), self.bytes(VALUE_LEN)))
            .collect()
    }
}

/// All inputs of a run, generated once and shared by every engine.
pub struct Data {
    pub load: Vec<Pair>,
    pub individual: Vec<Pair>,
    pub batches: Vec<Vec<Pair>>,
    /// New pairs for each row of [`THREADS`], one commit each.
    pub concurrent: Vec<Vec<Pair>>,
    /// The loaded keys in another random order.
    pub reads: Vec<Vec<u8>>,
    /// `[start, end)` where `end` is the loaded key `RANGE_LEN` places after `start` in key
    /// order; keys written later may fall inside, so a range holds about `RANGE_LEN` keys and
    /// every engine returns at most `RANGE_LEN`.
    pub ranges: Vec<Pair>,
    /// Half of the loaded keys, removed in one transaction.
    pub removals: Vec<Vec<u8>>,
}

impl Data {
    pub fn generate(scale: &Scale) -> Data {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let load = rng.pairs(scale.keys);
        let individual = rng.pairs(scale.individual_writes);
        let batches = (0..scale.batches)
            .map(|_| rng.pairs(scale.batch_size))
            .collect();
        let concurrent = THREADS
            .iter()
            .map(|_| rng.pairs(scale.concurrent_commits))
            .collect();

        let mut reads: Vec<Vec<u8>> = load.iter().map(|(k, _)| k.clone()).collect();
        for i in (1..reads.len()).rev() {
            let j = rng.below(i + 1);
            reads.swap(i, j);
        }

        let mut sorted: Vec<&Vec<u8>> = load.iter().map(|(k, _)| k).collect();
        sorted.sort();
        let ranges = (0..scale.range_reads)
            .map(|_| {
                let i = rng.below(sorted.len() - RANGE_LEN);
                (sorted[i].clone(), sorted[i + RANGE_LEN].clone())
            })
            .collect();

        let removals = load[..scale.keys / 2]
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        Data {
            load,
            individual,
            batches,
            concurrent,
            reads,
            ranges,
            removals,
        }
    }
}

/// What a result row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Millis,
    /// Microseconds per commit (wall-clock time of the row divided by its commits).
    MicrosPerCommit,
    Bytes,
}

/// Writer threads of the concurrent-commit rows.
pub const THREADS: [usize; 3] = [1, 4, 16];

/// The rows of the table, in order: (key in the JSON output, label, unit).
pub const ROWS: &[(&str, &str, Unit)] = &[
    ("bulk_load", "bulk load (1 txn)", Unit::Millis),
    ("individual_writes", "individual writes", Unit::Millis),
    ("batch_writes", "batch writes", Unit::Millis),
    (
        "commit_1t",
        "durable commit, 1 thread",
        Unit::MicrosPerCommit,
    ),
    (
        "commit_4t",
        "durable commit, 4 threads",
        Unit::MicrosPerCommit,
    ),
    (
        "commit_16t",
        "durable commit, 16 threads",
        Unit::MicrosPerCommit,
    ),
    ("open", "open + first read", Unit::Millis),
    ("random_reads_1t", "random reads, 1 thread", Unit::Millis),
    ("random_reads_2t", "random reads, 2 threads", Unit::Millis),
    ("range_reads", "range reads (~10)", Unit::Millis),
    ("remove_half", "remove half (1 txn)", Unit::Millis),
    ("size_after_load", "size after load", Unit::Bytes),
    (
        "size_before_compaction",
        "size before compaction",
        Unit::Bytes,
    ),
    (
        "size_after_compaction",
        "size after compaction",
        Unit::Bytes,
    ),
    ("peak_rss", "peak RSS", Unit::Bytes),
];

/// Index of the peak-RSS row, filled in by the process that ran the engine.
pub const PEAK_RSS_ROW: usize = ROWS.len() - 1;

/// Figures of one engine, indexed like [`ROWS`].
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub values: Vec<f64>,
    pub compaction: String,
    /// Checksums (value bytes read, range entries seen) to compare engines with each other.
    pub read_bytes: u64,
    pub range_entries: u64,
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1e3
}

/// Point reads split evenly across `threads` threads (each with its own reader handle).
fn parallel_gets(engine: &dyn Engine, keys: &[Vec<u8>], threads: usize) -> u64 {
    let chunk = keys.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .enumerate()
            .map(|(reader, part)| s.spawn(move || engine.get_all(reader, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reader thread panicked"))
            .sum()
    })
}

/// `pairs` committed one pair per transaction from `threads` threads; returns microseconds
/// per commit.
fn concurrent_commits(engine: &dyn Engine, pairs: &[Pair], threads: usize) -> f64 {
    let chunk = pairs.len().div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for part in pairs.chunks(chunk) {
            s.spawn(move || {
                for pair in part {
                    engine.write_txn(std::slice::from_ref(pair));
                }
            });
        }
    });
    start.elapsed().as_secs_f64() * 1e6 / pairs.len() as f64
}

/// Runs every workload against a freshly opened `engine`, in [`ROWS`] order. The reads run
/// right after the writes, so the OS page cache is warm (the data was just written) for every
/// engine alike; no engine gets a cold-cache advantage or penalty.
pub fn run(engine: &mut dyn Engine, data: &Data, log: impl Fn(&str)) -> Outcome {
    let mut values = Vec::with_capacity(ROWS.len());

    values.push(timed(|| engine.write_txn(&data.load)));
    let size_after_load = engine.disk_size() as f64;
    log("bulk load");

    values.push(timed(|| {
        for pair in &data.individual {
            engine.write_txn(std::slice::from_ref(pair));
        }
    }));
    log("individual writes");

    values.push(timed(|| {
        for batch in &data.batches {
            engine.write_txn(batch);
        }
    }));
    log("batch writes");

    for (threads, pairs) in THREADS.iter().zip(&data.concurrent) {
        values.push(concurrent_commits(&*engine, pairs, *threads));
    }
    log("concurrent commits");

    let first_key = std::slice::from_ref(&data.load[0].0);
    // Closing is not timed: it is where engines that defer work (etch's and SQLite's
    // checkpoints, fjall's flush) pay for it, and that work was done for the writes above.
    engine.close();
    values.push(timed(|| {
        engine.open_again();
        assert!(engine.get_all(0, first_key) > 0, "key lost by reopen");
    }));
    log("reopen");

    let mut read_bytes = 0;
    values.push(timed(|| read_bytes = engine.get_all(0, &data.reads)));
    let mut read_bytes_2t = 0;
    values.push(timed(|| {
        read_bytes_2t = parallel_gets(engine, &data.reads, READERS);
    }));
    assert_eq!(read_bytes, read_bytes_2t, "1- and 2-thread reads disagree");
    log("random reads");

    let mut range_entries = 0;
    values.push(timed(|| {
        range_entries = engine.range_all(0, &data.ranges, RANGE_LEN);
    }));
    log("range reads");

    values.push(timed(|| engine.remove_txn(&data.removals)));
    log("remove half");

    values.push(size_after_load);
    values.push(engine.disk_size() as f64);
    let compaction = engine.compact().to_string();
    values.push(engine.disk_size() as f64);
    log("compaction");
    values.push(0.0); // peak RSS, measured by the caller once the engine is closed

    Outcome {
        values,
        compaction,
        read_bytes,
        range_entries,
    }
}
