//! Optimistic read-write transactions (`Store::write`): validation, retry, give-up, isolation.

use std::sync::atomic::{AtomicU32, Ordering};

use etch_engine::{Error, Options, Range, Store};

fn store(attempts: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::new()
        .write_attempts(attempts)
        .open(dir.path().join("s.etch"))
        .unwrap();
    (dir, db)
}

fn num(kv: Option<etch_engine::KeyValue>) -> i64 {
    kv.map_or(0, |kv| {
        String::from_utf8(kv.value).unwrap().parse().unwrap()
    })
}

#[test]
fn concurrent_transfers_conserve_the_total_and_lose_no_update() {
    let (_d, db) = store(1000);
    for a in 0..5 {
        db.put(format!("acct/{a}"), "100").unwrap();
    }
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..40u32 {
                    let (from, to) = (
                        format!("acct/{}", (t + i) % 5),
                        format!("acct/{}", (t + 2 * i + 1) % 5),
                    );
                    db.write(|tx| {
                        let f = num(tx.get(&from)?);
                        let g = num(tx.get(&to)?);
                        if from != to {
                            tx.put(&from, (f - 3).to_string());
                            tx.put(&to, (g + 3).to_string());
                        }
                        let done = num(tx.get(format!("done/{t}"))?);
                        tx.put(format!("done/{t}"), (done + 1).to_string());
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in threads {
        h.join().unwrap();
    }
    let total: i64 = db
        .range(Range::prefix("acct/"))
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| num(Some(kv)))
        .sum();
    assert_eq!(total, 500);
    for t in 0..8 {
        assert_eq!(
            num(db.get(format!("done/{t}")).unwrap()),
            40,
            "an increment of thread {t} was lost"
        );
    }
    db.check().unwrap();
}

#[test]
fn a_conflicting_write_makes_the_closure_run_again() {
    let (_d, db) = store(16);
    db.put("x", "1").unwrap();
    let runs = AtomicU32::new(0);
    let (out, revision) = db
        .write(|tx| {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            let x = num(tx.get("x")?);
            if n == 0 {
                db.put("x", "10").unwrap(); // a concurrent writer gets in first
            }
            tx.put("y", (x * 2).to_string());
            Ok(x)
        })
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(out, 10);
    assert_eq!(num(db.get("y").unwrap()), 20);
    assert_eq!(db.get("y").unwrap().unwrap().mod_revision, revision);
}

#[test]
fn gives_up_with_conflict_after_the_configured_attempts() {
    let (_d, db) = store(3);
    let runs = AtomicU32::new(0);
    let r = db.write(|tx| {
        runs.fetch_add(1, Ordering::SeqCst);
        tx.get("hot")?;
        db.put("hot", "changed").unwrap();
        tx.put("out", "x");
        Ok(())
    });
    assert!(matches!(r, Err(Error::Conflict { attempts: 3 })));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert!(db.get("out").unwrap().is_none());
}

#[test]
fn scanned_ranges_detect_inserts_changes_and_deletes() {
    let (_d, db) = store(2);
    db.put("r/a", "1").unwrap();
    db.put("r/b", "1").unwrap();
    for disturb in [0, 1, 2] {
        let runs = AtomicU32::new(0);
        db.write(|tx| {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            let count = tx.range(Range::prefix("r/"))?.count;
            if n == 0 {
                match disturb {
                    0 => db.put(format!("r/new{count}"), "1").map(|_| ()).unwrap(),
                    1 => db.put("r/a", "2").map(|_| ()).unwrap(),
                    _ => db.delete("r/b").map(|_| ()).unwrap(),
                }
            }
            tx.put("summary", count.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "disturbance {disturb} went unnoticed"
        );
    }
}

#[test]
fn reads_see_own_writes_and_errors_abort() {
    let (_d, db) = store(4);
    db.write(|tx| {
        tx.put("k", "v");
        assert_eq!(tx.get("k")?.unwrap().value, b"v");
        tx.delete("k");
        assert!(tx.get("k")?.is_none());
        tx.put("k", "w");
        Ok(())
    })
    .unwrap();
    assert_eq!(db.get("k").unwrap().unwrap().value, b"w");
    let rev = db.revision();
    let r: Result<((), i64), Error> = db.write(|tx| {
        tx.put("k", "never");
        Err(Error::KeyNotFound)
    });
    assert!(matches!(r, Err(Error::KeyNotFound)));
    assert_eq!(db.revision(), rev);
    // Read-only: no commit at all.
    let (v, at) = db.write(|tx| Ok(tx.get("k")?.unwrap().value)).unwrap();
    assert_eq!(v, b"w");
    assert_eq!(db.revision(), rev);
    assert_eq!(at, rev, "a read-only write reports the revision it read at");
}

#[test]
fn one_attempt_at_a_time_reports_a_conflict_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("a.etch")).unwrap();
    db.put("n", "1").unwrap();

    let mut tx = db.begin_write().unwrap();
    assert_eq!(tx.get("n").unwrap().unwrap().value, b"1");
    tx.put("n", "2");
    db.put("n", "other").unwrap(); // a concurrent writer changes what tx read
    let before = db.revision();
    assert_eq!(tx.commit().unwrap(), None, "the guard fails");
    assert_eq!(db.revision(), before, "nothing written");
    assert_eq!(db.get("n").unwrap().unwrap().value, b"other");

    let mut tx = db.begin_write().unwrap();
    tx.get("n").unwrap();
    tx.put("n", "3");
    let committed = tx.commit().unwrap().expect("no conflict");
    assert_eq!(
        committed,
        db.revision(),
        "commit reports the revision it wrote at"
    );
    let n = db.get("n").unwrap().unwrap();
    assert_eq!((n.value.as_slice(), n.mod_revision), (&b"3"[..], committed));
    // Read-only attempts commit trivially and write nothing.
    let mut ro = db.begin_write().unwrap();
    ro.get("n").unwrap();
    let before = db.revision();
    assert_eq!(ro.commit().unwrap(), Some(before));
    assert_eq!(db.revision(), before);
}
