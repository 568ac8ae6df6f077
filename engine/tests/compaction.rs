//! Compaction: what survives, what errors, that space is reused, and that it is crash-safe.

use crate::common;

use std::collections::BTreeMap;

use etch_engine::{Error, KeyValue, Options, Range, RangeOptions, Store, WriteOp};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("c.etch")).unwrap();
    (dir, db)
}

fn at(db: &Store, range: Range, revision: i64) -> Result<Vec<KeyValue>, Error> {
    db.range_with(
        &range,
        &RangeOptions {
            revision,
            ..Default::default()
        },
    )
    .map(|r| r.kvs)
}

#[test]
fn keeps_each_keys_value_as_of_the_compact_revision() {
    let (_d, db) = store();
    db.put("k", "v1").unwrap(); // 2
    db.put("k", "v2").unwrap(); // 3
    db.put("gone", "x").unwrap(); // 4
    db.put("k", "v3").unwrap(); // 5
    db.delete("gone").unwrap(); // 6
    db.put("still", "s").unwrap(); // 7
    assert_eq!(db.compact(4).unwrap(), 7);
    assert!(matches!(
        at(&db, Range::all(), 3),
        Err(Error::Compacted {
            requested: 3,
            compacted: 4
        })
    ));
    let at4 = at(&db, Range::all(), 4).unwrap();
    assert_eq!(
        at4.iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
            .collect::<Vec<_>>(),
        vec![(&b"gone"[..], &b"x"[..]), (&b"k"[..], &b"v2"[..])]
    );
    assert_eq!(at(&db, Range::key("k"), 5).unwrap()[0].value, b"v3");
    assert!(at(&db, Range::key("gone"), 6).unwrap().is_empty());
    assert_eq!(
        db.get("k").unwrap().unwrap().version,
        3,
        "versions are untouched"
    );
    assert_eq!(db.status().unwrap().compact_revision, 4);
    assert_eq!(
        db.check().unwrap().history_records,
        3,
        "k@3 (as of 4), gone@4 and its tombstone at 6"
    );
    // Compacting past the delete: k is live since 5 <= 6 and "gone" ends in a tombstone at 6,
    // so no history is needed at all.
    db.compact(6).unwrap();
    assert_eq!(db.check().unwrap().history_records, 0);
    assert_eq!(at(&db, Range::all(), 6).unwrap().len(), 1);
}

#[test]
fn compact_revision_errors() {
    let (_d, db) = store();
    db.put("a", "1").unwrap();
    db.put("a", "2").unwrap();
    assert!(matches!(
        db.compact(4),
        Err(Error::FutureRevision {
            requested: 4,
            current: 3
        })
    ));
    db.compact(3).unwrap();
    assert!(matches!(
        db.compact(3),
        Err(Error::Compacted {
            requested: 3,
            compacted: 3
        })
    ));
    assert!(matches!(db.compact(2), Err(Error::Compacted { .. })));
    assert_eq!(db.revision(), 3, "compaction does not create a revision");
}

#[test]
fn reads_at_and_after_the_compact_revision_are_unchanged() {
    // Random history over a few keys; record every revision's contents; compact at several
    // points and compare everything that must survive.
    for seed in [1u64, 7, 99] {
        let (_d, db) = store();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut seen: BTreeMap<i64, Vec<KeyValue>> = BTreeMap::new();
        for _ in 0..300 {
            let key = format!("k{}", next() % 12);
            if next() % 4 == 0 {
                db.delete_range(Range::prefix(&key), false).unwrap();
            } else {
                let len = if next() % 10 == 0 {
                    6000
                } else {
                    (next() % 50) as usize
                };
                db.batch(vec![WriteOp::put(
                    &key,
                    vec![b'a' + (next() % 26) as u8; len],
                )])
                .unwrap();
            }
            let rev = db.revision();
            seen.insert(rev, at(&db, Range::all(), rev).unwrap());
        }
        let current = db.revision();
        for c in [current / 4, current / 2, current - 3, current] {
            db.compact(c).unwrap();
            for (&r, expected) in &seen {
                match at(&db, Range::all(), r) {
                    Ok(kvs) => {
                        assert!(
                            r >= c,
                            "seed {seed}: revision {r} readable after compacting to {c}"
                        );
                        assert_eq!(
                            &kvs, expected,
                            "seed {seed}: revision {r} changed by compaction to {c}"
                        );
                    }
                    Err(Error::Compacted { .. }) => assert!(r < c),
                    Err(e) => panic!("seed {seed}: {e}"),
                }
            }
            db.check().unwrap();
        }
    }
}

#[test]
fn compaction_frees_space_for_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("s.etch")).unwrap();
    let round = |db: &Store| {
        for i in 0..300 {
            db.put(format!("k{}", i % 5), vec![b'x'; 9000]).unwrap();
        }
    };
    round(&db);
    db.compact(db.revision()).unwrap();
    db.checkpoint().unwrap();
    let after_first = db.status().unwrap();
    for _ in 0..3 {
        round(&db);
        db.compact(db.revision()).unwrap();
        db.checkpoint().unwrap();
    }
    let after_more = db.status().unwrap();
    assert!(
        after_more.file_size <= after_first.file_size + after_first.file_size / 4,
        "file grew from {} to {} although every round was compacted",
        after_first.file_size,
        after_more.file_size
    );
    assert!(
        after_more.size_in_use < 200_000,
        "in use: {}",
        after_more.size_in_use
    );
    db.check().unwrap();
}

#[test]
fn compaction_survives_a_power_cut_and_replay() {
    let (dir, disk, db) = common::sim_store("/c/db.etch");
    for i in 0..20 {
        db.put(format!("k{}", i % 3), format!("v{i}")).unwrap();
    }
    let before = at(&db, Range::all(), 15).unwrap();
    db.compact(15).unwrap();
    let recovered = common::open_after_power_cut(&dir, &disk, "/c/db.etch");
    drop(db);
    let db = recovered;
    assert_eq!(db.status().unwrap().compact_revision, 15);
    assert!(matches!(
        at(&db, Range::all(), 14),
        Err(Error::Compacted { .. })
    ));
    assert_eq!(at(&db, Range::all(), 15).unwrap(), before);
    db.check().unwrap();
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn auto_compaction_by_revision_count_keeps_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::new()
        .auto_compaction(etch_engine::AutoCompaction::Revisions(50))
        .open(dir.path().join("auto.etch"))
        .unwrap();
    for i in 0..300 {
        db.put("k", format!("{i}")).unwrap();
    }
    let rev = db.revision();
    wait_until("auto-compaction", || {
        db.status().unwrap().compact_revision >= rev - 55
    });
    let compacted = db.status().unwrap().compact_revision;
    assert!(
        compacted <= rev - 50,
        "compacted to {compacted}, inside the kept window of 50 below {rev}"
    );
    assert_eq!(
        at(&db, Range::key("k"), rev - 50).unwrap()[0].value,
        format!("{}", 300 - 51).into_bytes()
    );
    db.check().unwrap();
}

#[test]
fn periodic_auto_compaction_keeps_the_last_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::new()
        .auto_compaction(etch_engine::AutoCompaction::Periodic(
            std::time::Duration::from_millis(300),
        ))
        .open(dir.path().join("periodic.etch"))
        .unwrap();
    for i in 0..50 {
        db.put("k", format!("{i}")).unwrap();
    }
    let old = db.revision();
    std::thread::sleep(std::time::Duration::from_millis(900));
    db.put("k", "late").unwrap();
    wait_until("periodic compaction", || {
        db.status().unwrap().compact_revision >= old
    });
    assert!(
        db.status().unwrap().compact_revision < db.revision(),
        "the last interval is kept"
    );
    db.check().unwrap();
}

#[test]
fn past_the_quota_only_reads_deletes_and_compaction_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::new()
        .quota_bytes(Some(400 << 10))
        .auto_compaction(etch_engine::AutoCompaction::Off)
        .open(dir.path().join("quota.etch"))
        .unwrap();
    let mut refused = None;
    for i in 0..200 {
        match db.put(format!("k{}", i % 10), vec![b'x'; 10_000]) {
            Ok(_) => {}
            Err(Error::QuotaExceeded { used, quota }) => {
                assert!(used > quota);
                refused = Some(i);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused.is_some(), "the quota never tripped");
    assert!(db.get("k1").unwrap().is_some(), "reads work past the quota");
    let txn = etch_engine::Txn::new().and_then([etch_engine::TxnOp::put("t", "x")]);
    assert!(matches!(db.txn(txn), Err(Error::QuotaExceeded { .. })));
    // Deleting and compacting reclaim the space; then writes work again.
    db.delete_range(Range::prefix("k"), false).unwrap();
    db.compact(db.revision()).unwrap();
    let (before, after) = db.defrag().unwrap();
    assert!(
        after < before,
        "defrag works past the quota and shrinks the file"
    );
    db.put("again", "ok").unwrap();
    db.check().unwrap();
}
