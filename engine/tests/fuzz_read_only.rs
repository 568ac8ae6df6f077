//! Damaged files opened read-only: bit flips, overwrites and truncations of a main file and a
//! WAL still holding records (a killed writer's), opened with `Options::read_only` on the
//! simulated disk. Whatever the damage, a read-only open must not panic, fault or hang, must not
//! mutate the disk, and when it opens it must see exactly what a writable open (recovery) of the
//! same bytes sees.
//!
//! `ETCH_FUZZ_CASES` sets the number of inputs (default 300).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use etch_engine::sim::{CrashPolicy, SimDisk, SimImage};
use etch_engine::{Options, Range, RangeOptions, Store};

const DB: &str = "/fuzz/ro.etch";
const WAL: &str = "/fuzz/ro.etch-wal";

/// A store with overflow values, deletes and a checkpoint in the middle, whose WAL still holds
/// the commits after it; as a power cut leaves it (unsynced main-file pages dropped).
fn seed(scratch: &Path) -> (Vec<u8>, Vec<u8>) {
    let disk = SimDisk::new(scratch);
    let store = Options::new()
        .storage(Arc::new(disk.clone()))
        .wal_capacity(1 << 20)
        .open(DB)
        .unwrap();
    for i in 0..60u32 {
        store
            .put(
                format!("key/{:02}", i % 13),
                vec![b'a' + (i % 26) as u8; (i as usize * 53) % 400],
            )
            .unwrap();
        if i % 11 == 3 {
            store.put(format!("big/{i}"), vec![b'B'; 9000]).unwrap();
        }
        if i % 17 == 5 {
            store.delete_range(Range::prefix("key/1"), false).unwrap();
        }
        if i == 20 {
            store.checkpoint().unwrap();
        }
    }
    let image = disk.crash_image(CrashPolicy::DropUnsynced);
    drop(store);
    let main = image.files[Path::new(DB)].clone();
    let mut wal = image.files[Path::new(WAL)].clone();
    let used = wal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    wal.truncate(used.next_multiple_of(8).max(4096 + 64));
    (main, wal)
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One to three random damages to `main` or `wal`.
fn damage(rng: &mut u64, main: &mut Vec<u8>, wal: &mut Vec<u8>) {
    for _ in 0..1 + xorshift(rng) % 3 {
        let target = if xorshift(rng).is_multiple_of(2) {
            &mut *main
        } else {
            &mut *wal
        };
        if target.is_empty() {
            continue;
        }
        let at = (xorshift(rng) % target.len() as u64) as usize;
        match xorshift(rng) % 6 {
            0..=2 => target[at] ^= 1 << (xorshift(rng) % 8),
            3 => {
                let end = (at + 1 + (xorshift(rng) % 64) as usize).min(target.len());
                for b in &mut target[at..end] {
                    *b = xorshift(rng) as u8;
                }
            }
            4 => target.truncate(at),
            _ => {
                // A whole page zeroed.
                let page = at / 4096 * 4096;
                let end = (page + 4096).min(target.len());
                target[page..end].fill(0);
            }
        }
    }
}

fn disk_with(scratch: &Path, main: &[u8], wal: &[u8]) -> SimDisk {
    std::fs::create_dir_all(scratch).unwrap();
    let mut image = SimImage::default();
    image.files.insert(PathBuf::from(DB), main.to_vec());
    image.files.insert(PathBuf::from(WAL), wal.to_vec());
    SimDisk::from_image(scratch, &image).unwrap()
}

/// Every key and value of one revision, or the read's error as text.
type Read = Result<Vec<(Vec<u8>, Vec<u8>)>, String>;

/// Everything a store shows: every key and value at each of its last revisions.
fn observe(store: &Store) -> BTreeMap<i64, Read> {
    let rev = store.revision();
    (1..=rev)
        .rev()
        .take(40)
        .map(|r| {
            let read = store
                .range_with(
                    &Range::all(),
                    &RangeOptions {
                        revision: r,
                        ..Default::default()
                    },
                )
                .map(|resp| resp.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect())
                .map_err(|e| e.to_string());
            (r, read)
        })
        .collect()
}

#[test]
fn damaged_files_opened_read_only() {
    let cases: u64 = std::env::var("ETCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let (main0, wal0) = seed(&seed_dir);
    let (mut opened, mut agreed) = (0, 0);
    for case in 0..cases {
        let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (case + 1).wrapping_mul(0xA076_1D64_78BD_642F);
        let (mut main, mut wal) = (main0.clone(), wal0.clone());
        if case > 0 {
            damage(&mut rng, &mut main, &mut wal);
        }
        let scratch = root.path().join(format!("case-{case}"));
        let disk = disk_with(&scratch.join("ro"), &main, &wal);
        let ro = Options::new()
            .read_only(true)
            .storage(Arc::new(disk.clone()))
            .open(DB);
        let seen = ro.map(|store| {
            let seen = (store.revision(), observe(&store));
            let _ = store.check();
            store.close().unwrap();
            seen
        });
        assert_eq!(
            disk.ops(),
            0,
            "case {case}: a read-only open mutated the disk"
        );
        if let Ok((rev, reads)) = seen {
            opened += 1;
            // Recovery from the same bytes sees the same store.
            if let Ok(store) = Options::new()
                .storage(Arc::new(disk_with(&scratch.join("rw"), &main, &wal)))
                .open(DB)
            {
                assert_eq!(store.revision(), rev, "case {case}: revisions differ");
                assert_eq!(observe(&store), reads, "case {case}: contents differ");
                agreed += 1;
            }
        }
        std::fs::remove_dir_all(&scratch).unwrap();
    }
    assert!(opened > 0, "no damaged input opened at all");
    println!("read-only fuzz: {cases} inputs, {opened} opened read-only, {agreed} compared with recovery");
}
