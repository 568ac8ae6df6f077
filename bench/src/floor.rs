//! The physical floor of a durable commit on this disk, and etch's WAL replay rate.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use etch_engine::{Durability, Options, WriteOp};

/// Milliseconds per `append 4 KiB + fdatasync`, over `n` iterations: the cost of the cheapest
/// durable append, which every engine's individual durable write must pay at least once.
pub fn append_fdatasync_ms(dir: &Path, n: usize) -> f64 {
    let path = dir.join("floor-append");
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .expect("create floor file");
    let block = [0x5au8; 4096];
    let start = Instant::now();
    for _ in 0..n {
        file.write_all(&block).expect("append to floor file");
        file.sync_data().expect("fdatasync floor file");
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
    std::fs::remove_file(path).expect("remove floor file");
    ms
}

/// Milliseconds per `pwrite 200 bytes into a preallocated, synced file + fdatasync`: the floor
/// of an append to a preallocated log, which is what etch's WAL does.
pub fn overwrite_fdatasync_ms(dir: &Path, n: usize) -> f64 {
    let path = dir.join("floor-overwrite");
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("create floor file");
    let len = (n as u64 + 1) * 256;
    file.write_all_at(&vec![0u8; len as usize], 0)
        .expect("preallocate floor file");
    file.sync_all().expect("fsync floor file");
    let record = [0xa5u8; 200];
    let start = Instant::now();
    for i in 0..n as u64 {
        file.write_all_at(&record, i * 256)
            .expect("overwrite floor file");
        file.sync_data().expect("fdatasync floor file");
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
    std::fs::remove_file(path).expect("remove floor file");
    ms
}

/// Options of the store whose WAL is replayed: a WAL large enough for the whole workload and
/// no checkpoint before the crash, so every record is still in the WAL when the writer dies.
fn replay_options() -> Options {
    Options::new()
        .durability(Durability::Immediate)
        .wal_capacity(1 << 30)
        .checkpoint_wal_fraction(0.95)
        .checkpoint_interval(Duration::from_secs(3600))
}

/// Keys per commit in the replay workload.
pub const REPLAY_BATCH: usize = 100;

/// Runs in a child process: commits `batches` batches of [`REPLAY_BATCH`] new 24-byte keys
/// with 150-byte values to `path`, then exits without closing the store, as a crash would
/// leave it (every record acknowledged and in the WAL, nothing checkpointed).
pub fn wal_writer(path: &Path, batches: usize) -> ! {
    let store = replay_options().open(path).expect("open replay store");
    for b in 0..batches {
        let ops = (0..REPLAY_BATCH)
            .map(|i| WriteOp::put(format!("replay/{b:08}/{i:08}/xxxx"), [b as u8; 150]))
            .collect();
        store.batch(ops).expect("replay batch");
    }
    let wal_bytes = store.status().expect("replay store status").wal_size;
    println!("{wal_bytes}");
    std::process::exit(0)
}

/// What replaying the WAL of a killed writer measured.
pub struct Replay {
    pub records: usize,
    pub wal_bytes: u64,
    pub open_ms: f64,
}

/// Spawns a writer that dies with `batches` commits in its WAL, then times `Store::open`,
/// which replays them.
pub fn wal_replay(dir: &Path, batches: usize) -> Replay {
    let path = dir.join("replay.etch");
    let exe = std::env::current_exe().expect("locate etch-bench executable");
    let out = Command::new(exe)
        .arg("wal-writer")
        .arg(&path)
        .arg(batches.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run WAL writer");
    assert!(out.status.success(), "WAL writer failed: {}", out.status);
    let wal_bytes: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("WAL writer prints the WAL bytes it left");
    let start = Instant::now();
    let store = replay_options().open(&path).expect("reopen replay store");
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(
        store.revision(),
        batches as i64 + 1,
        "replay restored a different revision"
    );
    store.close().expect("close replay store");
    Replay {
        records: batches,
        wal_bytes,
        open_ms,
    }
}
