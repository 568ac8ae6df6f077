//! Durable commit throughput against the physical floor, measured in one run.
//!
//! `cargo bench -p etch-engine --bench durable_commits [-- --commits N]`
//!
//! Prints: the cost of one fdatasync after a 4 KiB append (the floor), then etch's durable
//! single-key commits per second from 1, 4 and 16 threads (24-byte random keys, 150-byte values,
//! default `Durability::Immediate`), each with its ratio to the floor and to one thread. Runs in a
//! temporary directory under the current directory (so on the same disk as the project), or under
//! `ETCH_BENCH_DIR`.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("ETCH_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("ETCH_BENCH_DIR is not writable"),
        None => tempfile::tempdir_in(".").expect("current directory is not writable"),
    }
}

/// Mean time of `n` rounds of "append 4 KiB, fdatasync".
fn fdatasync_floor(n: usize) -> Duration {
    let dir = bench_dir();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("floor"))
        .unwrap();
    let block = vec![7u8; 4096];
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
    }
    start.elapsed() / n as u32
}

/// Size of the preallocated files of the overwrite floors.
const PREALLOCATED: usize = 64 << 20;

/// A zero-filled, synced file of `PREALLOCATED` bytes, as etch's WAL is.
fn preallocated(dir: &tempfile::TempDir, name: &str) -> std::fs::File {
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path().join(name))
        .unwrap();
    f.write_all_at_zero(PREALLOCATED);
    f.sync_all().unwrap();
    f
}

/// Mean time of `n` rounds of "write 200 bytes at the next offset with `write`, fdatasync".
fn overwrite_floor(f: &std::fs::File, n: usize, mut write: impl FnMut(usize, &[u8])) -> Duration {
    let record = [9u8; 200];
    let start = Instant::now();
    for i in 0..n {
        write(4096 + (i * 256) % (PREALLOCATED - 8192), &record);
        f.sync_data().unwrap();
    }
    start.elapsed() / n as u32
}

/// Overwrite through a shared writable map, then fdatasync.
fn mapped_overwrite_floor(n: usize) -> Duration {
    let dir = bench_dir();
    let f = preallocated(&dir, "mapped");
    // SAFETY: the file is private to this benchmark and not resized while mapped.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&f).unwrap() };
    overwrite_floor(&f, n, |at, record| {
        map[at..at + record.len()].copy_from_slice(record)
    })
}

/// Overwrite with pwrite, then fdatasync — what one etch WAL commit costs the disk.
fn pwrite_overwrite_floor(n: usize) -> Duration {
    use std::os::unix::fs::FileExt;
    let dir = bench_dir();
    let f = preallocated(&dir, "pw");
    overwrite_floor(&f, n, |at, record| {
        f.write_all_at(record, at as u64).unwrap()
    })
}

trait ZeroFill {
    fn write_all_at_zero(&self, len: usize);
}

impl ZeroFill for std::fs::File {
    fn write_all_at_zero(&self, len: usize) {
        use std::os::unix::fs::FileExt;
        let zeros = vec![0u8; 1 << 20];
        for off in (0..len).step_by(zeros.len()) {
            self.write_all_at(&zeros, off as u64).unwrap();
        }
    }
}

/// Commits per second with `threads` threads, each doing `per_thread` single-key puts.
fn etch_commits(threads: usize, per_thread: usize, durability: etch_engine::Durability) -> f64 {
    let dir = bench_dir();
    let db = etch_engine::Options::new()
        .durability(durability)
        .open(dir.path().join("bench.etch"))
        .unwrap();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678_9abc));
                for _ in 0..per_thread {
                    let key = rng.bytes(24);
                    let value = rng.bytes(150);
                    db.put(&key, &value).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    let total = threads * per_thread;
    assert_eq!(
        db.revision() as usize,
        total + 1,
        "every commit got its own revision"
    );
    if std::env::var_os("ETCH_BENCH_VERBOSE").is_some() {
        eprintln!("  {:?}", db.status().unwrap());
    }
    db.close().unwrap();
    total as f64 / elapsed.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let commits = args
        .iter()
        .position(|a| a == "--commits")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000usize);
    if let Some(t) = args
        .iter()
        .position(|a| a == "--only-threads")
        .and_then(|i| args.get(i + 1))
    {
        // Profiling aid: one configuration only.
        let threads: usize = t.parse().expect("--only-threads takes a number");
        let rate = etch_commits(
            threads,
            commits / threads,
            etch_engine::Durability::Immediate,
        );
        println!("{threads} thread(s): {rate:.0} durable commits/s");
        return;
    }
    let floor = fdatasync_floor(commits);
    let floor_rate = 1.0 / floor.as_secs_f64();
    println!(
        "fdatasync floor (4 KiB append + fdatasync): {:.3} ms = {:.0} syncs/s",
        floor.as_secs_f64() * 1e3,
        floor_rate
    );
    let mapped = mapped_overwrite_floor(commits);
    println!(
        "mapped overwrite + fdatasync (a WAL written through a map): {:.3} ms",
        mapped.as_secs_f64() * 1e3
    );
    let pw = pwrite_overwrite_floor(commits);
    println!(
        "pwrite overwrite + fdatasync (what an etch WAL commit costs the disk): {:.3} ms",
        pw.as_secs_f64() * 1e3
    );
    println!(
        "{:<28} {:>12} {:>14} {:>14}",
        "etch durable commits", "commits/s", "x floor rate", "x 1 thread"
    );
    let mut one = 0.0;
    for threads in [1usize, 4, 16] {
        let per_thread = (commits / threads).max(50) * if threads == 1 { 1 } else { 2 };
        let rate = etch_commits(threads, per_thread, etch_engine::Durability::Immediate);
        if threads == 1 {
            one = rate;
        }
        println!(
            "{:<28} {:>12.0} {:>14.2} {:>14.2}",
            format!("{threads} thread(s), {} commits", threads * per_thread),
            rate,
            rate / floor_rate,
            rate / one
        );
    }
    let relaxed = etch_commits(1, commits * 5, etch_engine::Durability::Relaxed);
    println!(
        "relaxed durability, 1 thread (CPU cost of a commit, no sync wait): {relaxed:.0} commits/s = {:.1} us/commit",
        1e6 / relaxed
    );
}
