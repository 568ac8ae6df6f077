//! Leases: grant, attach, keep-alive, time-to-live, list, revoke, expiry deleting keys at one
//! revision (seen by watchers), persistence across reopen and recovery.

use crate::common;

use std::time::Duration;

use etch_engine::{Error, EventKind, PutOp, Range, Store, Txn, TxnOp, WatchOptions};

fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("l.etch")).unwrap()
}

fn put_leased(db: &Store, key: &str, lease: i64) -> i64 {
    db.put_with(PutOp {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    })
    .unwrap()
    .header_revision
}

#[test]
fn grant_attach_inspect_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let l = db.lease_grant(60, 0).unwrap();
    assert!(l.id > 0 && l.ttl == 60);
    assert_eq!(db.revision(), 1, "granting changes no key");
    assert!(matches!(
        db.lease_grant(60, l.id),
        Err(Error::LeaseExists { .. })
    ));
    let mine = db.lease_grant(30, 42).unwrap();
    assert_eq!(mine.id, 42);
    put_leased(&db, "svc/a", l.id);
    put_leased(&db, "svc/b", l.id);
    put_leased(&db, "svc/c", 42);
    db.put("plain", "x").unwrap();
    assert_eq!(db.get("svc/a").unwrap().unwrap().lease, l.id);
    let info = db.lease_time_to_live(l.id, true).unwrap();
    assert_eq!(
        (info.granted_ttl, info.keys.clone()),
        (60, vec![b"svc/a".to_vec(), b"svc/b".to_vec()])
    );
    assert!((59..=60).contains(&info.ttl));
    let mut ids: Vec<i64> = db.lease_list().unwrap().into_iter().map(|g| g.id).collect();
    ids.sort();
    let mut want = vec![l.id, 42];
    want.sort();
    assert_eq!(ids, want);
    // Moving a key to another lease, and clearing it, keep the index right.
    put_leased(&db, "svc/b", 42);
    assert_eq!(
        db.lease_time_to_live(42, true).unwrap().keys,
        vec![b"svc/b".to_vec(), b"svc/c".to_vec()]
    );
    db.put("svc/c", "no lease now").unwrap();
    assert_eq!(
        db.lease_time_to_live(42, true).unwrap().keys,
        vec![b"svc/b".to_vec()]
    );
    db.check().unwrap();
    // Revoke: the keys go at one revision.
    let before = db.revision();
    let rev = db.lease_revoke(l.id).unwrap();
    assert_eq!(rev, before + 1);
    assert!(db.get("svc/a").unwrap().is_none());
    assert!(
        db.get("svc/b").unwrap().is_some(),
        "svc/b moved to lease 42"
    );
    assert!(matches!(
        db.lease_revoke(l.id),
        Err(Error::LeaseNotFound { .. })
    ));
    assert!(matches!(
        db.lease_keep_alive(l.id),
        Err(Error::LeaseNotFound { .. })
    ));
    assert!(matches!(
        db.lease_time_to_live(l.id, false),
        Err(Error::LeaseNotFound { .. })
    ));
    db.check().unwrap();
}

#[test]
fn puts_need_an_existing_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let r = db.put_with(PutOp {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 777,
        ..Default::default()
    });
    assert!(matches!(r, Err(Error::LeaseNotFound { id: 777 })));
    let txn = Txn::new().and_then([TxnOp::Put(PutOp {
        key: b"k".to_vec(),
        lease: 777,
        ..Default::default()
    })]);
    assert!(matches!(db.txn(txn), Err(Error::LeaseNotFound { id: 777 })));
    assert_eq!(db.revision(), 1);
}

#[test]
fn expiry_deletes_the_keys_at_one_revision_and_watchers_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let short = db.lease_grant(1, 0).unwrap();
    let kept = db.lease_grant(1, 0).unwrap();
    for k in ["e/1", "e/2", "e/3"] {
        put_leased(&db, k, short.id);
    }
    put_leased(&db, "e/kept", kept.id);
    let mut w = db
        .watch_with(
            Range::prefix("e/"),
            WatchOptions {
                start_revision: db.revision() + 1,
                ..Default::default()
            },
        )
        .unwrap();
    // Keep one lease alive past its TTL; let the other expire.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        db.lease_keep_alive(kept.id).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        db.get("e/1").unwrap().is_none(),
        "expired lease's keys are gone"
    );
    assert!(
        db.get("e/kept").unwrap().is_some(),
        "kept-alive lease's key stays"
    );
    let r = w.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(r.events.len(), 3);
    assert!(r.events.iter().all(|e| e.kind == EventKind::Delete));
    let revs: Vec<i64> = r.events.iter().map(|e| e.kv.mod_revision).collect();
    assert!(
        revs.windows(2).all(|p| p[0] == p[1]),
        "one revision for all: {revs:?}"
    );
    assert!(matches!(
        db.lease_time_to_live(short.id, false),
        Err(Error::LeaseNotFound { .. })
    ));
    db.check().unwrap();
}

#[test]
fn leases_survive_reopen_with_a_fresh_ttl_and_recovery() {
    let (dir, disk, db) = common::sim_store("/l/db.etch");
    let l = db.lease_grant(120, 0).unwrap();
    put_leased(&db, "a", l.id);
    let gone = db.lease_grant(120, 0).unwrap();
    put_leased(&db, "b", gone.id);
    db.lease_revoke(gone.id).unwrap();
    let recovered = common::open_after_power_cut(&dir, &disk, "/l/db.etch");
    drop(db);
    let db = recovered;
    let info = db.lease_time_to_live(l.id, true).unwrap();
    assert_eq!((info.granted_ttl, info.keys), (120, vec![b"a".to_vec()]));
    assert!(
        info.ttl >= 119,
        "a reopened store restarts each lease's TTL, as etcd"
    );
    assert!(db.get("b").unwrap().is_none());
    assert_eq!(db.lease_list().unwrap().len(), 1);
    db.check().unwrap();
    db.close().unwrap();
}
