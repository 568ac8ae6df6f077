//! Edges of the public API that the bindings (C, Python) inherit: keys no put could write are
//! refused by every read, a checkpoint shows in `status()` at once, an optimistic write reports
//! the revision it committed at, and a watch replaying history says when it has caught up.

use std::time::Duration;

use etch_engine::{
    Error, EventKind, Options, PutOp, Range, Store, Txn, TxnOp, WatchOptions, WatchResponse,
    Watcher,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::new()
        .max_key_size(16)
        // No background checkpoint may empty the WAL behind the test's back.
        .checkpoint_interval(Duration::from_secs(3600))
        .open(dir.path().join("edges.etch"))
        .unwrap();
    (dir, db)
}

fn next(w: &mut Watcher) -> WatchResponse {
    w.recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("a watch response within 10 s")
}

#[test]
fn an_empty_key_is_refused_by_every_single_key_read_and_by_watch() {
    let (_d, db) = store();
    db.put("k", "v").unwrap();
    assert!(matches!(db.get(""), Err(Error::EmptyKey)));
    let snap = db.read().unwrap();
    assert!(matches!(snap.get(""), Err(Error::EmptyKey)));
    assert!(matches!(snap.get_ref(""), Err(Error::EmptyKey)));
    let mut tx = db.begin_write().unwrap();
    assert!(matches!(tx.get(""), Err(Error::EmptyKey)));
    assert!(matches!(db.watch(Range::key("")), Err(Error::EmptyKey)));
    assert!(matches!(
        db.watch(Range::between("", "z")),
        Err(Error::EmptyKey)
    ));
    // Every key is still watchable the etcd way.
    db.watch(Range::all()).unwrap();
    db.watch(Range::prefix("")).unwrap();
}

#[test]
fn a_key_over_max_key_size_is_too_large_for_get_as_for_put() {
    let (_d, db) = store();
    let long = vec![b'k'; 17];
    assert!(matches!(
        db.put(&long, "v"),
        Err(Error::KeyTooLarge { len: 17, max: 16 })
    ));
    assert!(matches!(
        db.get(&long),
        Err(Error::KeyTooLarge { len: 17, max: 16 })
    ));
    let mut tx = db.begin_write().unwrap();
    assert!(matches!(tx.get(&long), Err(Error::KeyTooLarge { .. })));
    // At the limit both work.
    let max = vec![b'k'; 16];
    db.put(&max, "v").unwrap();
    assert_eq!(db.get(&max).unwrap().unwrap().value, b"v");
}

#[test]
fn status_shows_the_emptied_wal_right_after_checkpoint() {
    let (_d, db) = store();
    for i in 0..20 {
        db.put(format!("k{i}"), "value").unwrap();
    }
    let before = db.status().unwrap();
    assert!(before.wal_size > 0, "commits are in the WAL: {before:?}");
    db.checkpoint().unwrap();
    let after = db.status().unwrap();
    assert_eq!(after.wal_size, 0, "{after:?}");
    assert_eq!(after.revision, before.revision);
    // The next commit is counted again.
    db.put("k", "v").unwrap();
    assert!(db.status().unwrap().wal_size > 0);
}

#[test]
fn write_and_commit_return_the_revision_they_committed_at() {
    let (_d, db) = store();
    db.put("a", "1").unwrap();
    let (n, revision) = db
        .write(|tx| {
            let n = tx.get("a")?.map_or(0, |kv| kv.value.len());
            tx.put("b", "2");
            tx.put("c", "3");
            Ok(n)
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(revision, db.revision());
    for key in ["b", "c"] {
        assert_eq!(db.get(key).unwrap().unwrap().mod_revision, revision);
    }
    let mut tx = db.begin_write().unwrap();
    tx.delete("a");
    let deleted_at = tx.commit().unwrap().expect("no conflict");
    assert_eq!(deleted_at, revision + 1);
    assert!(db.get("a").unwrap().is_none());
}

/// Keys and kinds of a response's events.
fn keys(r: &WatchResponse) -> Vec<(EventKind, Vec<u8>)> {
    r.events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone()))
        .collect()
}

#[test]
fn a_replaying_watch_flags_the_response_that_completes_the_history() {
    let (_d, db) = store();
    for i in 0..5 {
        db.put(format!("w/{i}"), "x").unwrap();
    }
    let opts = WatchOptions {
        start_revision: 1,
        ..Default::default()
    };
    let mut w = db.watch_with(Range::prefix("w/"), opts.clone()).unwrap();
    assert!(!w.caught_up());
    let r = next(&mut w);
    assert_eq!(r.events.len(), 5);
    assert!(r.caught_up, "the last replayed batch completes the replay");
    assert!(w.caught_up());
    // Live changes afterwards are not flagged.
    db.put("w/live", "y").unwrap();
    let r = next(&mut w);
    assert_eq!(keys(&r), [(EventKind::Put, b"w/live".to_vec())]);
    assert!(!r.caught_up);
    assert!(w.caught_up());
}

#[test]
fn a_replay_with_no_matching_history_still_reports_catching_up() {
    let (_d, db) = store();
    for i in 0..3 {
        db.put(format!("other/{i}"), "x").unwrap();
    }
    let current = db.revision();
    let mut w = db
        .watch_with(
            Range::prefix("w/"),
            WatchOptions {
                start_revision: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let r = next(&mut w);
    assert!(r.events.is_empty());
    assert!(r.caught_up);
    assert_eq!(r.header_revision, current);
    assert!(w.caught_up());
    // And nothing else is pending.
    assert_eq!(w.try_recv().unwrap(), None);
}

#[test]
fn a_long_replay_flags_only_its_last_batch() {
    let (_d, db) = store();
    // More events than one response holds (1000), in one transaction per 100 keys.
    for batch in 0..15 {
        let ops: Vec<TxnOp> = (0..100)
            .map(|i| {
                TxnOp::Put(PutOp {
                    key: format!("w/{batch:02}/{i:03}").into_bytes(),
                    value: b"x".to_vec(),
                    ..Default::default()
                })
            })
            .collect();
        db.txn(Txn::new().and_then(ops)).unwrap();
    }
    let mut w = db
        .watch_with(
            Range::prefix("w/"),
            WatchOptions {
                start_revision: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let mut seen = 0;
    let mut flags = Vec::new();
    while seen < 1500 {
        let r = next(&mut w);
        seen += r.events.len();
        flags.push(r.caught_up);
    }
    assert_eq!(seen, 1500);
    assert!(flags.len() > 1, "the replay took several responses");
    assert_eq!(flags.last(), Some(&true));
    assert!(flags[..flags.len() - 1].iter().all(|f| !f), "{flags:?}");
}

#[test]
fn a_watch_from_now_is_caught_up_at_once_and_never_flags() {
    let (_d, db) = store();
    db.put("w/old", "x").unwrap();
    let mut w = db.watch(Range::prefix("w/")).unwrap();
    assert!(w.caught_up());
    assert_eq!(w.try_recv().unwrap(), None);
    db.put("w/new", "y").unwrap();
    let r = next(&mut w);
    assert!(!r.caught_up);
    assert_eq!(keys(&r), [(EventKind::Put, b"w/new".to_vec())]);
    // Starting exactly after the current revision is "from now" as well.
    let w = db
        .watch_with(
            Range::prefix("w/"),
            WatchOptions {
                start_revision: db.revision() + 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(w.caught_up());
}
