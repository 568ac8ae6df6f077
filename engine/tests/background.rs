//! Background writes as decisions someone else can make: with `background_writes(false)` the
//! store's own thread neither revokes expired leases nor compacts; it reports what is due
//! (`expired_leases`, `auto_compaction_due`), and applying that through the normal API has the
//! effect the thread would have had.

use std::sync::Arc;
use std::time::Duration;

use etch_engine::{AutoCompaction, ManualClock, Options, Store};

fn open(dir: &tempfile::TempDir, clock: Arc<ManualClock>, background_writes: bool) -> Store {
    Options::new()
        .clock(clock)
        .auto_compaction(AutoCompaction::Revisions(10))
        .background_writes(background_writes)
        .open(dir.path().join("a.etch"))
        .unwrap()
}

/// Longer than a background tick (at most 500 ms), so the thread had its chance to act.
fn let_background_run() {
    std::thread::sleep(Duration::from_millis(1200));
}

#[test]
fn with_background_writes_off_leases_are_reported_not_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let db = open(&dir, clock.clone(), false);
    let short = db.lease_grant(5, 0).unwrap().id;
    let long = db.lease_grant(100, 0).unwrap().id;
    assert!(db.expired_leases().is_empty());
    clock.advance(Duration::from_secs(6));
    let_background_run();
    assert_eq!(db.expired_leases(), vec![short]);
    assert_eq!(
        db.lease_list().unwrap().len(),
        2,
        "the store revoked a lease itself"
    );
    // The replication layer would propose this revocation; applied, it has the usual effect.
    db.lease_revoke(short).unwrap();
    assert!(db.expired_leases().is_empty());
    assert_eq!(db.lease_list().unwrap().len(), 1);
    assert_eq!(db.lease_list().unwrap()[0].id, long);
}

#[test]
fn with_background_writes_off_compaction_is_reported_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, Arc::new(ManualClock::new()), false);
    for i in 0..30 {
        db.put("k", i.to_string()).unwrap();
    }
    let_background_run();
    assert_eq!(db.status().unwrap().compact_revision, 0);
    let due = db.auto_compaction_due().expect("compaction is due");
    assert_eq!(due, db.revision() - 10);
    db.compact(due).unwrap();
    assert_eq!(db.status().unwrap().compact_revision, due);
    assert_eq!(db.auto_compaction_due(), None);
}

#[test]
fn by_default_the_background_thread_still_acts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let db = open(&dir, clock.clone(), true);
    let id = db.lease_grant(5, 0).unwrap().id;
    for i in 0..30 {
        db.put("k", i.to_string()).unwrap();
    }
    clock.advance(Duration::from_secs(6));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (db.lease_list().unwrap().iter().any(|l| l.id == id)
        || db.status().unwrap().compact_revision == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(db.lease_list().unwrap().is_empty(), "lease not expired");
    assert!(db.status().unwrap().compact_revision > 0, "not compacted");
}
