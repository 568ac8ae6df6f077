//! Damage to a WAL full of acknowledged records, on the simulated disk: records committed by
//! several threads at once (group commit), then one byte flipped at many offsets of the WAL
//! that a process crash leaves. Every case either recovers every acknowledged record or refuses
//! with `Error::WalDamaged` and changes nothing; never a silent drop. The one record allowed to
//! vanish is the very last, which no later frame can witness as durable (docs/design.md,
//! "Damage or torn tail").

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use etch_engine::sim::{CrashPolicy, SimDisk, SimImage};
use etch_engine::{Error, Options, Store};

const THREADS: usize = 4;
const PER_THREAD: usize = 40;

fn wal_of(path: &str) -> PathBuf {
    PathBuf::from(format!("{path}-wal"))
}

/// Writes THREADS x PER_THREAD acknowledged puts concurrently, then one final put, and returns
/// the image a process crash leaves (every write survives; nothing was checkpointed since the
/// WAL is large). Keys are `t{thread}-{i}` with value `v{i}`, and `final`.
fn crashed_image(path: &str) -> SimImage {
    let (_dir, disk, db) = common::sim_store(path);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    db.put(format!("t{t}-{i}"), format!("v{i}")).unwrap();
                }
            });
        }
    });
    db.put("final", "last").unwrap();
    let image = disk.crash_image(CrashPolicy::KeepUnsynced);
    std::mem::forget(db); // the "process" died: no close, no checkpoint
    image
}

fn open_image(image: &SimImage, scratch: &Path, path: &str) -> etch_engine::Result<Store> {
    std::fs::create_dir_all(scratch).unwrap();
    Options::new()
        .storage(Arc::new(SimDisk::from_image(scratch, image).unwrap()))
        .open(path)
}

fn present(db: &Store) -> (usize, bool) {
    let mut n = 0;
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            if let Some(kv) = db.get(format!("t{t}-{i}")).unwrap() {
                assert_eq!(kv.value, format!("v{i}").into_bytes());
                n += 1;
            }
        }
    }
    (n, db.get("final").unwrap().is_some())
}

#[test]
fn flipped_wal_bytes_recover_everything_or_refuse() {
    let path = "/sim/app.etch";
    let image = crashed_image(path);
    let wal = image.files[&wal_of(path)].clone();
    let end = wal.iter().rposition(|&b| b != 0).unwrap() + 1;
    let scratch = tempfile::tempdir().unwrap();

    // Unchanged, everything comes back.
    let db = open_image(&image, &scratch.path().join("clean"), path).unwrap();
    assert_eq!(present(&db), (THREADS * PER_THREAD, true));
    drop(db);

    let (mut all, mut refused, mut last_dropped) = (0, 0, 0);
    let mut at = 4096;
    let mut case = 0;
    while at < end {
        let mut damaged = image.clone();
        damaged.files.get_mut(&wal_of(path)).unwrap()[at] ^= 0x10;
        let before = damaged.files[&wal_of(path)].clone();
        let dir = scratch.path().join(format!("case{case}"));
        match open_image(&damaged, &dir, path) {
            Ok(db) => match present(&db) {
                (n, true) if n == THREADS * PER_THREAD => all += 1,
                (n, false) if n == THREADS * PER_THREAD => last_dropped += 1,
                (n, f) => panic!("byte {at}: silent drop: {n} records, final {f}"),
            },
            Err(Error::WalDamaged { records_after, .. }) => {
                assert!(records_after > 0, "byte {at}");
                // Nothing was changed: the WAL on the (simulated) disk is the damaged one.
                std::fs::create_dir_all(dir.join("again")).unwrap();
                let disk = SimDisk::from_image(&dir.join("again"), &damaged).unwrap();
                assert!(matches!(
                    Options::new().storage(Arc::new(disk.clone())).open(path),
                    Err(Error::WalDamaged { .. })
                ));
                let after = disk.crash_image(CrashPolicy::KeepUnsynced);
                assert_eq!(after.files[&wal_of(path)], before, "byte {at}");
                refused += 1;
            }
            Err(e) => panic!("byte {at}: {e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
        at += 37;
        case += 1;
    }
    println!(
        "{case} flips: {all} recovered all, {refused} refused, {last_dropped} dropped the last"
    );
    assert!(refused > case / 2, "{refused} of {case}");
}

#[test]
fn repair_recovers_the_prefix_and_keeps_the_damaged_wal() {
    let path = "/sim/app.etch";
    let image = crashed_image(path);
    let wal = image.files[&wal_of(path)].clone();
    let end = wal.iter().rposition(|&b| b != 0).unwrap() + 1;
    let scratch = tempfile::tempdir().unwrap();
    // A flip in the middle of the log that the plain open refuses (the first offset from the
    // middle that is not frame padding).
    let damaged = (4096 + (end - 4096) / 2..end)
        .map(|at| {
            let mut d = image.clone();
            d.files.get_mut(&wal_of(path)).unwrap()[at] ^= 0x80;
            d
        })
        .find(|d| {
            let dir = scratch.path().join("probe");
            let refused = matches!(open_image(d, &dir, path), Err(Error::WalDamaged { .. }));
            let _ = std::fs::remove_dir_all(&dir);
            refused
        })
        .unwrap();
    std::fs::create_dir_all(scratch.path().join("r")).unwrap();
    let disk = SimDisk::from_image(&scratch.path().join("r"), &damaged).unwrap();
    let db = Options::new()
        .storage(Arc::new(disk.clone()))
        .repair_wal(true)
        .open(path)
        .unwrap();
    let repair = db.wal_repair().unwrap().clone();
    let (n, _) = present(&db);
    assert_eq!(
        n as u64 + 1 + repair.damage.records_after,
        (THREADS * PER_THREAD) as u64 + 1,
        "every record is either recovered or counted as dropped"
    );
    assert_eq!(db.revision() as u64, repair.damage.last_good_seq + 1);
    let copy = disk.crash_image(CrashPolicy::DropUnsynced);
    assert_eq!(
        copy.files[&repair.copy],
        damaged.files[&wal_of(path)],
        "the durable copy is the damaged WAL"
    );
    db.check().unwrap();
    db.put("after", "x").unwrap();
    db.close().unwrap();
}
