//! A local store's open creates its WAL without syncing it; the first commit syncs the file and
//! its directory entry before its frame (docs/design.md, "Recovery and the crash-safety
//! argument"). These tests hold the open to that: it syncs nothing, and a power cut at any sync
//! or mutating operation from the open through the first commits — images with unsynced writes
//! dropped, kept, or torn — loses no acknowledged commit, and every image opens, checks and takes
//! a new write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::sim::{CrashPolicy, SimDisk, SimImage};
use etch_engine::{Options, Store};

const DB: &str = "/sim/open.etch";

fn options(disk: &SimDisk) -> Options {
    Options::new()
        .storage(Arc::new(disk.clone()))
        .checkpoint_interval(Duration::from_secs(3600))
}

fn scratch(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn value(store: &Store, key: &str) -> Option<Vec<u8>> {
    store.get(key).unwrap().map(|kv| kv.value)
}

/// A store with `base = 1` and `base2 = 2`, closed cleanly (its WAL removed).
fn closed_store(disk: &SimDisk) {
    let store = options(disk).open(DB).unwrap();
    store.put("base", "1").unwrap();
    store.put("base2", "2").unwrap();
    store.close().unwrap();
}

/// The commits after the reopen, in order.
const AFTER: [(&str, &str); 3] = [("first", "a"), ("second", "b"), ("first", "c")];

/// Reopens the closed store and commits [`AFTER`], stopping at the first error; returns how
/// many commits were acknowledged (`None` if the open itself failed).
fn reopen_and_commit(disk: &SimDisk) -> Option<usize> {
    let store = options(disk).open(DB).ok()?;
    let mut acked = 0;
    for (k, v) in AFTER {
        if store.put(k, v).is_err() {
            break;
        }
        acked += 1;
    }
    drop(store);
    Some(acked)
}

/// Opens `image` and checks it against `acked` acknowledged commits of [`AFTER`]: the base keys
/// and every acknowledged commit are there; an unacknowledged one is wholly there or absent.
fn verify(root: &Path, image: &SimImage, acked: usize, what: &str) {
    let disk = SimDisk::from_image(&scratch(root, "verify"), image).unwrap();
    let store = options(&disk)
        .open(DB)
        .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    assert_eq!(value(&store, "base").as_deref(), Some(&b"1"[..]), "{what}");
    assert_eq!(value(&store, "base2").as_deref(), Some(&b"2"[..]), "{what}");
    // Revisions: the base store ends at 3; commit i of AFTER creates revision 4 + i.
    let rev = store.revision();
    assert!(
        rev >= 3 + acked as i64 && rev <= 3 + AFTER.len() as i64,
        "{what}: revision {rev} with {acked} commits acknowledged"
    );
    let applied = (rev - 3) as usize;
    let want = |key: &str| {
        AFTER[..applied]
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_bytes().to_vec())
    };
    assert_eq!(value(&store, "first"), want("first"), "{what}");
    assert_eq!(value(&store, "second"), want("second"), "{what}");
    store
        .check()
        .unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
    store.put("later", "x").unwrap();
    store.close().unwrap();
}

#[test]
fn opening_a_closed_store_syncs_nothing_and_the_first_commit_syncs_the_wal() {
    let root = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(&scratch(root.path(), "disk"));
    closed_store(&disk);
    let syncs = disk.syncs();
    let store = options(&disk).open(DB).unwrap();
    assert_eq!(value(&store, "base").as_deref(), Some(&b"1"[..]));
    assert_eq!(disk.syncs(), syncs, "the open synced the disk");
    store.put("first", "a").unwrap();
    // The WAL file, its directory entry, then the commit's frame.
    assert!(
        disk.syncs() >= syncs + 3,
        "the first commit made {} syncs",
        disk.syncs() - syncs
    );
    let after_first = disk.syncs();
    store.put("second", "b").unwrap();
    assert_eq!(
        disk.syncs(),
        after_first + 1,
        "a later commit syncs only its frame"
    );
    store.close().unwrap();
}

#[test]
fn power_cut_from_the_open_through_the_first_commits() {
    let root = tempfile::tempdir().unwrap();
    // A full run, to count the syncs and operations after the reopen starts.
    let full = SimDisk::new(&scratch(root.path(), "full"));
    closed_store(&full);
    let (syncs0, ops0) = (full.syncs(), full.ops());
    assert_eq!(reopen_and_commit(&full), Some(AFTER.len()));
    let (syncs, ops) = (full.syncs() - syncs0, full.ops() - ops0);
    assert!(syncs >= 3 && ops > syncs, "{syncs} syncs, {ops} operations");

    let mut points: Vec<(bool, u64)> = (1..=syncs).map(|k| (true, k)).collect();
    points.extend((1..=ops).map(|n| (false, n)));
    let mut images = 0;
    for (at_sync, k) in points {
        let disk = SimDisk::new(&scratch(root.path(), "run"));
        closed_store(&disk);
        assert_eq!((disk.syncs(), disk.ops()), (syncs0, ops0), "deterministic");
        if at_sync {
            disk.crash_at_sync(syncs0 + k);
        } else {
            disk.crash_at_op(ops0 + k);
        }
        let acked = reopen_and_commit(&disk).unwrap_or(0);
        assert!(disk.is_dead(), "no crash at {k}");
        for policy in [
            CrashPolicy::DropUnsynced,
            CrashPolicy::KeepUnsynced,
            CrashPolicy::Torn {
                seed: 0xA5 ^ k,
                sector: 512,
            },
            CrashPolicy::Torn {
                seed: 0x5A ^ (k << 4),
                sector: 4096,
            },
        ] {
            let what = format!(
                "crash at {} {k} after the reopen, {acked} acknowledged, {policy:?}",
                if at_sync { "sync" } else { "operation" }
            );
            verify(root.path(), &disk.crash_image(policy), acked, &what);
            images += 1;
        }
    }
    println!(
        "{images} post-crash images verified ({syncs} syncs, {ops} operations after the reopen)"
    );
}
