//! Lock and election recipes: mutual exclusion under contention, hand-over when a holder's lease
//! is revoked, fencing tokens, leader succession.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::{Election, Mutex, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("r.etch")).unwrap();
    (dir, db)
}

#[test]
fn the_mutex_excludes_and_fencing_tokens_grow() {
    let (_d, db) = store();
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (db, inside, overlaps, tokens) =
                (db.clone(), inside.clone(), overlaps.clone(), tokens.clone());
            std::thread::spawn(move || {
                let lease = db.lease_grant(30, 0).unwrap().id;
                let m = Mutex::new(&db, "locks/counter");
                for _ in 0..8 {
                    let g = m.lock(lease).unwrap();
                    if inside.swap(true, Ordering::SeqCst) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    // A read-modify-write that would lose updates without the lock.
                    let n: u64 = db.get("counter").unwrap().map_or(0, |kv| {
                        String::from_utf8(kv.value).unwrap().parse().unwrap()
                    });
                    std::thread::sleep(Duration::from_millis(1));
                    db.put("counter", (n + 1).to_string()).unwrap();
                    tokens.lock().unwrap().push(g.revision());
                    inside.store(false, Ordering::SeqCst);
                    g.unlock().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    assert_eq!(db.get("counter").unwrap().unwrap().value, b"48");
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens must grow: {tokens:?}"
    );
    db.check().unwrap();
}

#[test]
fn a_revoked_holder_hands_the_lock_over() {
    let (_d, db) = store();
    let a = db.lease_grant(60, 0).unwrap().id;
    let b = db.lease_grant(60, 0).unwrap().id;
    let m = Mutex::new(&db, "locks/x");
    let held = m.lock(a).unwrap();
    assert!(
        m.try_lock_for(b, Duration::from_millis(200))
            .unwrap()
            .is_none(),
        "b must wait"
    );
    let waiter = {
        let db = db.clone();
        std::thread::spawn(move || {
            Mutex::new(&db, "locks/x")
                .try_lock_for(b, Duration::from_secs(10))
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    db.lease_revoke(a).unwrap();
    let got = waiter
        .join()
        .unwrap()
        .expect("b gets the lock once a's lease is revoked");
    assert!(!held.is_held().unwrap(), "a's guard no longer holds");
    assert!(got.revision() > held.revision());
    got.unlock().unwrap();
}

#[test]
fn election_succession_proclaim_and_observe() {
    let (_d, db) = store();
    let (l1, l2) = (
        db.lease_grant(60, 0).unwrap().id,
        db.lease_grant(60, 0).unwrap().id,
    );
    let e = Election::new(&db, "elect/service");
    let first = e.campaign(l1, "node-1").unwrap();
    assert_eq!(e.leader().unwrap().unwrap().value, b"node-1");
    assert!(first.proclaim("node-1 v2").unwrap());
    let current = e.leader().unwrap();
    assert_eq!(current.as_ref().unwrap().value, b"node-1 v2");
    let second = {
        let db = db.clone();
        std::thread::spawn(move || {
            Election::new(&db, "elect/service")
                .campaign(l2, "node-2")
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        e.leader().unwrap().unwrap().value,
        b"node-1 v2",
        "the second candidate waits"
    );
    let observer = {
        let db = db.clone();
        let current = current.clone();
        std::thread::spawn(move || {
            Election::new(&db, "elect/service")
                .observe(current.as_ref(), Duration::from_secs(10))
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    first.resign().unwrap();
    let leader2 = second.join().unwrap();
    assert_eq!(e.leader().unwrap().unwrap().value, b"node-2");
    let seen = observer.join().unwrap().expect("a change within 10 s");
    assert!(seen.is_none_or(|kv| kv.value == b"node-2"));
    // A lost leadership cannot proclaim.
    db.lease_revoke(l2).unwrap();
    assert!(!leader2.proclaim("stale").unwrap());
    assert!(e.leader().unwrap().is_none());
}

#[test]
fn a_free_lock_is_taken_at_once_even_with_an_unbounded_timeout() {
    let (_d, db) = store();
    let a = db.lease_grant(60, 0).unwrap().id;
    let m = Mutex::new(&db, "locks/huge");
    let guard = m
        .try_lock_for(a, Duration::MAX)
        .unwrap()
        .expect("a free lock is acquired");
    assert!(guard.is_held().unwrap());
}
