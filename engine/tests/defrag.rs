//! Defrag: the file shrinks, nothing changes for readers or writers, and a power cut at any sync
//! during a defrag leaves either the old store or the new one, whole.

use std::sync::Arc;

use etch_engine::sim::{CrashPolicy, SimDisk};
use etch_engine::{KeyValue, Options, Range, RangeOptions, Store, WriteOp};

fn fill(db: &Store) {
    for chunk in 0..30 {
        let ops = (0..100)
            .map(|i| WriteOp::put(format!("k/{:05}", chunk * 100 + i), vec![b'v'; 300]))
            .collect();
        db.batch(ops).unwrap();
    }
    for chunk in 0..27 {
        db.delete_range(Range::prefix(format!("k/{chunk:03}")), false)
            .unwrap();
    }
    db.put("k/00000", "late").unwrap();
}

fn all(db: &Store, revision: i64) -> Vec<KeyValue> {
    db.range_with(
        &Range::all(),
        &RangeOptions {
            revision,
            ..Default::default()
        },
    )
    .unwrap()
    .kvs
}

#[test]
fn defrag_shrinks_the_file_and_changes_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.etch");
    let db = Store::open(&path).unwrap();
    fill(&db);
    let compact_at = db.revision() - 5;
    db.compact(compact_at).unwrap();
    let reader = db.read().unwrap();
    let (rev, before_kvs, old_kvs) = (db.revision(), all(&db, 0), all(&db, compact_at));
    let (before, after) = db.defrag().unwrap();
    assert!(
        after < before / 2,
        "file went from {before} to {after} bytes"
    );
    assert_eq!(db.status().unwrap().file_size, after);
    assert_eq!(db.revision(), rev);
    assert_eq!(all(&db, 0), before_kvs);
    assert_eq!(all(&db, compact_at), old_kvs);
    // A snapshot taken before the defrag still reads the old file.
    assert_eq!(reader.range(Range::all()).unwrap().kvs, before_kvs);
    drop(reader);
    db.check().unwrap();
    db.put("after", "defrag").unwrap();
    db.close().unwrap();
    assert!(!dir.path().join("d.etch.defrag").exists());
    let db = Store::open(&path).unwrap();
    assert_eq!(db.get("after").unwrap().unwrap().value, b"defrag");
    assert_eq!(all(&db, rev), before_kvs);
    db.check().unwrap();
}

#[test]
fn a_power_cut_at_any_sync_of_a_defrag_leaves_a_whole_store() {
    let root = tempfile::tempdir().unwrap();
    let scratch = |name: &str| {
        let p = root.path().join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let run = |crash_at: Option<u64>| {
        let disk = SimDisk::new(&scratch("run"));
        let db = Options::new()
            .storage(Arc::new(disk.clone()))
            .open("/d/db.etch")
            .unwrap();
        fill(&db);
        let expected = all(&db, 0);
        let syncs_before = disk.syncs();
        if let Some(k) = crash_at {
            disk.crash_at_sync(syncs_before + k);
        }
        let result = db.defrag();
        let syncs = disk.syncs() - syncs_before;
        (disk, db, expected, result.is_ok(), syncs)
    };
    let (_, _, _, ok, syncs) = run(None);
    assert!(ok && syncs > 3, "defrag syncs {syncs} times");
    for k in 1..=syncs + 1 {
        let (disk, db, expected, _, _) = run(Some(k));
        drop(db);
        for policy in [
            CrashPolicy::DropUnsynced,
            CrashPolicy::KeepUnsynced,
            CrashPolicy::Torn {
                seed: k,
                sector: 512,
            },
        ] {
            let image = disk.crash_image(policy);
            let reopened = Options::new()
                .storage(Arc::new(
                    SimDisk::from_image(&scratch("verify"), &image).unwrap(),
                ))
                .open("/d/db.etch")
                .unwrap_or_else(|e| panic!("crash at defrag sync {k}, {policy:?}: {e}"));
            assert_eq!(
                all(&reopened, 0),
                expected,
                "crash at defrag sync {k}, {policy:?}"
            );
            reopened.check().unwrap();
        }
    }
}
