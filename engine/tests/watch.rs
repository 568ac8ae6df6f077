//! Watch: live events, history replay with no gap or duplicate at the seam, prev_kv, filters,
//! progress notifications, cancellation by compaction, many watchers, slow consumers.

use std::time::Duration;

use etch_engine::{
    EventKind, Range, Store, Txn, TxnOp, WatchOptions, WatchResponse, Watcher, WriteOp,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("w.etch")).unwrap();
    (dir, db)
}

fn next(w: &mut Watcher) -> WatchResponse {
    w.recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("a watch response within 10 s")
}

/// Collects (kind, key, mod_revision) until `until` revision has been covered.
fn collect_until(w: &mut Watcher, until: i64) -> Vec<(EventKind, Vec<u8>, i64)> {
    let mut out = Vec::new();
    while w.next_revision() <= until {
        let r = next(w);
        assert!(!r.canceled);
        out.extend(
            r.events
                .into_iter()
                .map(|e| (e.kind, e.kv.key, e.kv.mod_revision)),
        );
    }
    out
}

#[test]
fn live_events_arrive_in_order_and_a_transaction_arrives_together() {
    let (_d, db) = store();
    db.put("other", "x").unwrap();
    let mut w = db.watch(Range::prefix("cfg/")).unwrap();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            db.put("cfg/a", "1").unwrap(); // 3
            db.put("ignored", "1").unwrap(); // 4
            db.txn(Txn::new().and_then([TxnOp::put("cfg/b", "2"), TxnOp::put("cfg/c", "3")]))
                .unwrap(); // 5
            db.delete("cfg/a").unwrap(); // 6
        })
    };
    // A response carries every revision committed since the watcher's last one (it keeps no
    // queue), so how the events are grouped depends on timing; their order and the grouping
    // of one transaction's events do not.
    let mut responses = Vec::new();
    while w.next_revision() <= 6 {
        let r = next(&mut w);
        assert!(!r.canceled);
        responses.push(
            r.events
                .into_iter()
                .map(|e| (e.kind, e.kv.key, e.kv.mod_revision))
                .collect::<Vec<_>>(),
        );
    }
    writer.join().unwrap();
    let all: Vec<_> = responses.iter().flatten().cloned().collect();
    assert_eq!(
        all,
        vec![
            (EventKind::Put, b"cfg/a".to_vec(), 3),
            (EventKind::Put, b"cfg/b".to_vec(), 5),
            (EventKind::Put, b"cfg/c".to_vec(), 5),
            (EventKind::Delete, b"cfg/a".to_vec(), 6)
        ]
    );
    let with_txn = responses
        .iter()
        .find(|r| r.iter().any(|e| e.2 == 5))
        .unwrap();
    assert_eq!(
        with_txn.iter().filter(|e| e.2 == 5).count(),
        2,
        "one transaction's events arrive in one response"
    );
}

#[test]
fn replay_from_a_past_revision_joins_live_events_without_gap_or_duplicate() {
    let (_d, db) = store();
    for i in 0..60 {
        db.put(format!("k/{}", i % 7), format!("{i}")).unwrap();
    }
    let mut w = db
        .watch_with(
            Range::prefix("k/"),
            WatchOptions {
                start_revision: 10,
                ..Default::default()
            },
        )
        .unwrap();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 60..160 {
                if i % 9 == 0 {
                    db.delete(format!("k/{}", i % 7)).unwrap();
                } else {
                    db.put(format!("k/{}", i % 7), format!("{i}")).unwrap();
                }
            }
        })
    };
    writer.join().unwrap();
    let final_rev = db.revision();
    let got = collect_until(&mut w, final_rev);
    let revs: Vec<i64> = got.iter().map(|e| e.2).collect();
    // Every revision from 10 on changed exactly one k/ key (deletes of absent keys are no-ops
    // and make no revision), so the events are exactly the revisions 10..=final.
    assert_eq!(revs, (10..=final_rev).collect::<Vec<_>>());
}

#[test]
fn prev_kv_and_filters() {
    let (_d, db) = store();
    db.put("a", "1").unwrap(); // 2
    db.put("a", "2").unwrap(); // 3
    db.delete("a").unwrap(); // 4
    let opts = WatchOptions {
        start_revision: 2,
        prev_kv: true,
        ..Default::default()
    };
    let mut w = db.watch_with(Range::key("a"), opts.clone()).unwrap();
    let r = next(&mut w);
    assert_eq!(r.events.len(), 3);
    assert!(r.events[0].prev_kv.is_none());
    assert_eq!(r.events[1].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(r.events[2].kind, EventKind::Delete);
    assert_eq!(r.events[2].prev_kv.as_ref().unwrap().value, b"2");
    let mut puts = db
        .watch_with(
            Range::key("a"),
            WatchOptions {
                no_delete: true,
                ..opts.clone()
            },
        )
        .unwrap();
    assert!(next(&mut puts)
        .events
        .iter()
        .all(|e| e.kind == EventKind::Put));
    let mut dels = db
        .watch_with(
            Range::key("a"),
            WatchOptions {
                no_put: true,
                ..opts
            },
        )
        .unwrap();
    let d = next(&mut dels);
    assert_eq!(d.events.len(), 1);
    assert_eq!(
        (d.events[0].kind, d.events[0].kv.mod_revision),
        (EventKind::Delete, 4)
    );
}

#[test]
fn progress_notifications_report_the_revision_when_idle() {
    let (_d, db) = store();
    db.put("x", "1").unwrap();
    let opts = WatchOptions {
        progress_notify: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let mut w = db.watch_with(Range::prefix("quiet/"), opts).unwrap();
    let r = next(&mut w);
    assert!(r.events.is_empty() && !r.canceled);
    assert_eq!(r.header_revision, 2);
}

#[test]
fn compaction_cancels_watchers_that_need_removed_history() {
    let (_d, db) = store();
    for i in 0..10 {
        db.put("k", format!("{i}")).unwrap();
    }
    let mut behind = db
        .watch_with(
            Range::key("k"),
            WatchOptions {
                start_revision: 3,
                ..Default::default()
            },
        )
        .unwrap();
    db.compact(6).unwrap();
    let r = next(&mut behind);
    assert!(r.canceled);
    assert_eq!(r.compact_revision, 6);
    assert!(behind.next().is_none(), "a cancelled watch ends");
    let mut too_old = db
        .watch_with(
            Range::key("k"),
            WatchOptions {
                start_revision: 6,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(next(&mut too_old).canceled);
    let mut fine = db
        .watch_with(
            Range::key("k"),
            WatchOptions {
                start_revision: 7,
                ..Default::default()
            },
        )
        .unwrap();
    let r = next(&mut fine);
    assert_eq!(r.events.first().map(|e| e.kv.mod_revision), Some(7));
}

#[test]
fn many_watchers_each_see_their_own_range() {
    let (_d, db) = store();
    let mut watchers: Vec<Watcher> = (0..20)
        .map(|i| db.watch(Range::prefix(format!("p{i:02}/"))).unwrap())
        .collect();
    let mut ops = Vec::new();
    for i in 0..20 {
        for j in 0..=i % 3 {
            ops.push(WriteOp::put(format!("p{i:02}/{j}"), "v"));
        }
    }
    db.batch(ops).unwrap();
    let rev = db.revision();
    for (i, w) in watchers.iter_mut().enumerate() {
        let got = collect_until(w, rev);
        assert_eq!(got.len(), i % 3 + 1, "watcher {i}");
        assert!(got
            .iter()
            .all(|(_, k, r)| k.starts_with(format!("p{i:02}/").as_bytes()) && *r == rev));
    }
}

#[test]
fn a_slow_consumer_blocks_nobody_and_loses_nothing() {
    let (_d, db) = store();
    let mut w = db.watch(Range::prefix("s/")).unwrap();
    let mut ops = Vec::new();
    for i in 0..5000 {
        ops.push(WriteOp::put(format!("s/{i:05}"), "v"));
        if ops.len() == 100 {
            db.batch(std::mem::take(&mut ops)).unwrap();
        }
    }
    let rev = db.revision();
    let got = collect_until(&mut w, rev);
    assert_eq!(got.len(), 5000);
    let keys: Vec<Vec<u8>> = got.into_iter().map(|e| e.1).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5000, "no event twice");
}

#[test]
fn huge_timeouts_mean_no_timeout_rather_than_a_panic() {
    let (_d, db) = store();
    let mut w = db.watch(Range::prefix("t/")).unwrap();
    db.put("t/1", "x").unwrap();
    let r = w
        .recv_timeout(Duration::MAX)
        .unwrap()
        .expect("the pending event");
    assert_eq!(r.events.len(), 1);
    let mut p = db
        .watch_with(
            Range::prefix("t/"),
            WatchOptions {
                progress_notify: Some(Duration::MAX),
                ..Default::default()
            },
        )
        .unwrap();
    db.put("t/2", "y").unwrap();
    let r = p.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kv.key, b"t/2");
}

#[test]
fn a_canceller_ends_a_watch_waiting_on_another_thread() {
    let (_d, db) = store();
    let mut w = db.watch(Range::prefix("quiet/")).unwrap();
    let canceller = w.canceller();
    let waiter = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let r = w.recv().unwrap();
        (
            r,
            started.elapsed(),
            w.recv_timeout(Duration::ZERO).unwrap(),
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    canceller.cancel();
    let (r, waited, after) = waiter.join().unwrap();
    assert!(r.is_none(), "a cancelled watch ends without a response");
    assert!(after.is_none(), "and stays ended");
    assert!(
        waited < Duration::from_secs(30),
        "woken by the cancel, not a timeout"
    );
}

#[test]
fn a_leadership_names_its_key() {
    let (_d, db) = store();
    let lease = db.lease_grant(60, 0).unwrap().id;
    let e = etch_engine::Election::new(&db, "elect/x");
    let l = e.campaign(lease, "me").unwrap();
    let leader = e.leader().unwrap().unwrap();
    assert_eq!(l.key(), leader.key.as_slice());
    assert_eq!(leader.value, b"me");
}
