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

#[test]
fn restore_copies_verifies_and_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("src.etch")).unwrap();
    for i in 0..100 {
        db.put(format!("k{i}"), format!("v{i}")).unwrap();
    }
    let (rev, _) = db.snapshot(dir.path().join("snap.etch")).unwrap();
    let restored = Store::restore(
        dir.path().join("snap.etch"),
        dir.path().join("restored.etch"),
        etch_engine::Options::new(),
    )
    .unwrap();
    assert_eq!(restored.revision(), rev);
    assert_eq!(restored.hash_kv(0).unwrap(), db.hash_kv(rev).unwrap());
    drop(restored);
    // A damaged snapshot is refused and leaves no output behind.
    let mut bytes = std::fs::read(dir.path().join("snap.etch")).unwrap();
    // Damage the root page of the live-key tree (meta field at offset 56), which check() reads.
    let root = u64::from_le_bytes(bytes[56..64].try_into().unwrap()) as usize;
    bytes[root * 4096 + 100] ^= 0xff;
    std::fs::write(dir.path().join("bad.etch"), &bytes).unwrap();
    let r = Store::restore(
        dir.path().join("bad.etch"),
        dir.path().join("out.etch"),
        etch_engine::Options::new(),
    );
    assert!(
        matches!(r, Err(etch_engine::Error::Corrupt(_))),
        "{:?}",
        r.err()
    );
    assert!(!dir.path().join("out.etch").exists());
    // Not an etch file, or an existing target: refused.
    std::fs::write(dir.path().join("text.txt"), b"hello world, not a database at all.............................................................................................................................................................................................................................................").unwrap();
    assert!(matches!(
        Store::restore(
            dir.path().join("text.txt"),
            dir.path().join("o2.etch"),
            etch_engine::Options::new()
        ),
        Err(etch_engine::Error::NotEtchFile { .. })
    ));
    assert!(Store::restore(
        dir.path().join("snap.etch"),
        dir.path().join("src.etch"),
        etch_engine::Options::new()
    )
    .is_err());
}
