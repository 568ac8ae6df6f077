//! Snapshot files and hash_kv: a consistent copy taken while writers go on, compact, restorable
//! by opening, with the same history and the same hash.

use etch_engine::{Range, RangeOptions, Store, WriteOp};

#[test]
fn a_snapshot_taken_during_writes_is_a_consistent_restorable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("live.etch")).unwrap();
    for i in 0..400 {
        let value = if i % 50 == 0 {
            vec![b'B'; 9000]
        } else {
            format!("v{i}").into_bytes()
        };
        db.put(format!("k/{:03}", i % 97), value).unwrap();
    }
    db.delete_range(Range::prefix("k/01"), false).unwrap();
    db.compact(100).unwrap();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                db.batch(vec![
                    WriteOp::put(format!("during/{i}"), "x"),
                    WriteOp::put("k/000", format!("{i}")),
                ])
                .unwrap();
            }
        })
    };
    let copy = dir.path().join("copy.etch");
    let (rev, size) = db.snapshot(&copy).unwrap();
    writer.join().unwrap();
    assert!(size > 0);
    let restored = Store::open(&copy).unwrap();
    assert_eq!(restored.revision(), rev);
    assert_eq!(restored.status().unwrap().compact_revision, 100);
    for r in [100, 250, rev] {
        let opts = RangeOptions {
            revision: r,
            ..Default::default()
        };
        assert_eq!(
            restored.range_with(&Range::all(), &opts).unwrap().kvs,
            db.range_with(&Range::all(), &opts).unwrap().kvs,
            "revision {r} differs in the copy"
        );
        assert_eq!(restored.hash_kv(r).unwrap(), db.hash_kv(r).unwrap());
    }
    assert_ne!(
        db.hash_kv(0).unwrap(),
        restored.hash_kv(0).unwrap(),
        "the live store moved on"
    );
    restored.check().unwrap();
    // The copy is an ordinary store: it takes writes.
    restored.put("after", "restore").unwrap();
    restored.close().unwrap();
    assert!(!dir.path().join("copy.etch-wal").exists());
    // A target that exists is refused and left alone.
    std::fs::write(dir.path().join("taken.etch"), b"precious").unwrap();
    assert!(db.snapshot(dir.path().join("taken.etch")).is_err());
    assert_eq!(
        std::fs::read(dir.path().join("taken.etch")).unwrap(),
        b"precious"
    );
}

#[test]
fn a_snapshot_of_a_churned_store_is_smaller() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("churn.etch")).unwrap();
    for round in 0..20 {
        let ops = (0..100)
            .map(|i| WriteOp::put(format!("key/{i:03}"), vec![b'a' + round as u8; 300]))
            .collect();
        db.batch(ops).unwrap();
    }
    db.compact(db.revision()).unwrap();
    db.checkpoint().unwrap();
    let live = db.status().unwrap().file_size;
    let (_, copied) = db.snapshot(dir.path().join("small.etch")).unwrap();
    assert!(copied < live, "copy {copied} bytes, live file {live} bytes");
    let small = Store::open(dir.path().join("small.etch")).unwrap();
    assert_eq!(small.hash_kv(0).unwrap(), db.hash_kv(0).unwrap());
    small.check().unwrap();
}
