//! Fuzzing the open path: arbitrary bytes as a main file plus a WAL.
//!
//! Stable Rust has no libFuzzer (`cargo fuzz` needs nightly), so this is proptest-driven: inputs
//! are mutations (bit flips, overwritten ranges, truncation, appended garbage, pages copied over
//! other pages, zeroed pages) of seed images kept in `tests/fuzz_corpus/`, plus pure random
//! bytes. Each input is opened on the simulated disk; if it opens, every key is read, every
//! revision is ranged, and `check()` runs. Any outcome is fine except a panic, a hang, or an
//! out-of-bounds read (which would be a panic or a crash).
//!
//! `ETCH_FUZZ_CASES` sets the number of inputs (default 300); the figure is printed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etch_engine::sim::{CrashPolicy, SimDisk, SimImage};
use etch_engine::{Options, Range, RangeOptions, WriteOp};
use proptest::prelude::*;

const DB: &str = "/fuzz/app.etch";
const WAL: &str = "/fuzz/app.etch-wal";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus")
}

/// Builds the seed images: a store with history and overflow values whose WAL still holds
/// records (as after a crash), and the same store cleanly closed. Trimmed to what matters.
fn build_seeds(scratch: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let disk = SimDisk::new(scratch);
    let store = Options::new()
        .storage(Arc::new(disk.clone()))
        .wal_capacity(1 << 20)
        .open(DB)
        .unwrap();
    for i in 0..30u32 {
        store
            .put(
                format!("key/{:02}", i % 11),
                vec![b'v'; (i as usize * 37) % 300],
            )
            .unwrap();
        if i % 7 == 0 {
            store.put(format!("big/{i}"), vec![b'B'; 6000]).unwrap();
        }
        if i % 9 == 4 {
            store.delete_range(Range::prefix("key/0"), false).unwrap();
        }
        if i == 15 {
            store.checkpoint().unwrap();
        }
    }
    store
        .batch(vec![
            WriteOp::put("batch/a", "1"),
            WriteOp::put("batch/b", "2"),
            WriteOp::delete(Range::key("key/10")),
        ])
        .unwrap();
    let crashed = disk.crash_image(CrashPolicy::KeepUnsynced);
    drop(store);
    let closed = disk.crash_image(CrashPolicy::KeepUnsynced);
    let trim = |image: &SimImage| {
        let main = image.files.get(Path::new(DB)).cloned().unwrap_or_default();
        let mut wal = image.files.get(Path::new(WAL)).cloned().unwrap_or_default();
        // Keep the WAL up to its last non-zero byte (the rest is preallocated zeros).
        let used = wal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        wal.truncate(used.next_multiple_of(8).max(4096 + 64));
        let pages = u64::from_le_bytes(main[32..40].try_into().unwrap()) as usize;
        (main[..pages * 4096].to_vec(), wal)
    };
    vec![trim(&crashed), trim(&closed)]
}

/// Seeds from the corpus directory (regenerated if missing, with `ETCH_FUZZ_WRITE_CORPUS`).
fn seeds(scratch: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = corpus_dir();
    let mut out = Vec::new();
    for name in ["crashed", "closed"] {
        let main = std::fs::read(dir.join(format!("{name}.etch")));
        let wal = std::fs::read(dir.join(format!("{name}.etch-wal"))).unwrap_or_default();
        if let Ok(main) = main {
            out.push((main, wal));
        }
    }
    if out.len() < 2 || std::env::var_os("ETCH_FUZZ_WRITE_CORPUS").is_some() {
        out = build_seeds(scratch);
        if std::env::var_os("ETCH_FUZZ_WRITE_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            for ((main, wal), name) in out.iter().zip(["crashed", "closed"]) {
                std::fs::write(dir.join(format!("{name}.etch")), main).unwrap();
                if !wal.is_empty() {
                    std::fs::write(dir.join(format!("{name}.etch-wal")), wal).unwrap();
                }
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit {
        file: bool,
        at: usize,
        bit: u8,
    },
    Overwrite {
        file: bool,
        at: usize,
        bytes: Vec<u8>,
    },
    Truncate {
        file: bool,
        at: usize,
    },
    Append {
        file: bool,
        bytes: Vec<u8>,
    },
    CopyPage {
        from: usize,
        to: usize,
    },
    ZeroPage {
        page: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<bool>(), any::<usize>(), 0u8..8).prop_map(|(file, at, bit)| Mutation::FlipBit { file, at, bit }),
        2 => (any::<bool>(), any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(file, at, bytes)| Mutation::Overwrite { file, at, bytes }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(file, at)| Mutation::Truncate { file, at }),
        1 => (any::<bool>(), prop::collection::vec(any::<u8>(), 1..200)).prop_map(|(file, bytes)| Mutation::Append { file, bytes }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Mutation::CopyPage { from, to }),
        1 => any::<usize>().prop_map(|page| Mutation::ZeroPage { page }),
    ]
}

fn mutate(main: &mut Vec<u8>, wal: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit { file, at, bit } => {
            let v = if *file { main } else { wal };
            if !v.is_empty() {
                // Half the time aim at the first two pages (meta slots, WAL header).
                let len = if at % 2 == 0 {
                    v.len().min(8192)
                } else {
                    v.len()
                };
                v[at % len] ^= 1 << bit;
            }
        }
        Mutation::Overwrite { file, at, bytes } => {
            let v = if *file { main } else { wal };
            if !v.is_empty() {
                let i = at % v.len();
                let end = (i + bytes.len()).min(v.len());
                v[i..end].copy_from_slice(&bytes[..end - i]);
            }
        }
        Mutation::Truncate { file, at } => {
            let v = if *file { main } else { wal };
            let keep = if v.is_empty() { 0 } else { at % v.len() };
            v.truncate(keep);
        }
        Mutation::Append { file, bytes } => {
            let v = if *file { main } else { wal };
            v.extend_from_slice(bytes);
        }
        Mutation::CopyPage { from, to } => {
            let pages = main.len() / 4096;
            if pages > 1 {
                let (f, t) = (from % pages, to % pages);
                let page = main[f * 4096..(f + 1) * 4096].to_vec();
                main[t * 4096..(t + 1) * 4096].copy_from_slice(&page);
            }
        }
        Mutation::ZeroPage { page } => {
            let pages = main.len() / 4096;
            if pages > 0 {
                let p = page % pages;
                main[p * 4096..(p + 1) * 4096].fill(0);
            }
        }
    }
}

/// Opens an image and exercises every read; returns whether it opened.
fn exercise(scratch: &Path, main: &[u8], wal: &[u8]) -> bool {
    let mut image = SimImage::default();
    image.files.insert(PathBuf::from(DB), main.to_vec());
    if !wal.is_empty() {
        image.files.insert(PathBuf::from(WAL), wal.to_vec());
    }
    let disk = SimDisk::from_image(scratch, &image).unwrap();
    let Ok(store) = Options::new().storage(Arc::new(disk)).open(DB) else {
        return false;
    };
    let rev = store.revision();
    if let Ok(all) = store.range(Range::all()) {
        for kv in all.kvs.iter().take(200) {
            let _ = store.get(&kv.key);
        }
    }
    for r in (1..=rev).rev().take(64) {
        let _ = store.range_with(
            &Range::all(),
            &RangeOptions {
                revision: r,
                ..Default::default()
            },
        );
        let _ = store.range_with(
            &Range::prefix("key/"),
            &RangeOptions {
                revision: r,
                limit: 3,
                ..Default::default()
            },
        );
    }
    let _ = store.check();
    let _ = store.put("fuzz/after", "x");
    let _ = store.check();
    true
}

static EXECUTIONS: AtomicU64 = AtomicU64::new(0);
static OPENED: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("ETCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn seeds_open_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for (main, wal) in seeds(dir.path()) {
        assert!(
            exercise(dir.path(), &main, &wal),
            "an unmodified seed must open"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_images_never_panic(seed in 0usize..2, muts in prop::collection::vec(mutation(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let mut all = seeds(dir.path());
        let (mut main, mut wal) = all.swap_remove(seed % all.len());
        for m in &muts {
            mutate(&mut main, &mut wal, m);
        }
        if exercise(dir.path(), &main, &wal) {
            OPENED.fetch_add(1, Ordering::Relaxed);
        }
        let n = EXECUTIONS.fetch_add(1, Ordering::Relaxed) + 1;
        if n == u64::from(cases()) {
            println!("fuzz: {n} mutated images executed, {} opened", OPENED.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn random_bytes_never_panic(main in prop::collection::vec(any::<u8>(), 0..20_000), wal in prop::collection::vec(any::<u8>(), 0..9000)) {
        let dir = tempfile::tempdir().unwrap();
        exercise(dir.path(), &main, &wal);
    }
}
