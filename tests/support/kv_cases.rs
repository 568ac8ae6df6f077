//! The core cases of the key-value API, written once against [`etch::kv::Kv`] and run on every
//! backend (tests/kv_backends.rs): a local store, `etch serve`, a real etcd. Each case works
//! under its own key prefix, so the cases can share one backend; compaction, which affects the
//! whole store, runs last.

use std::time::{Duration, Instant};

use etch::kv::{Backend, Kv, Watch};
use etch::{
    Compare, CompareOp, Error, EventKind, PutOp, Range, RangeOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchResponse, WriteOp,
};

/// Every case, in order.
pub fn all<K: Kv>(db: &K) {
    put_get_range(db);
    delete(db);
    txn_and_batch(db);
    watch(db);
    lease(db);
    errors(db);
    compaction(db);
}

/// The engine error inside a backend's error (a panic naming it if there is none).
fn engine<E: Backend>(err: &E) -> &Error {
    err.engine()
        .unwrap_or_else(|| panic!("expected an engine error, got the backend error {err}"))
}

/// Waits (bounded) for responses until `count` events have arrived.
fn events<W: Watch>(w: &mut W, count: usize) -> Vec<etch::Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {count} events came: {out:?}",
            out.len()
        );
        if let Some(resp) = w.recv_timeout(left).expect("watch delivers") {
            assert!(!resp.canceled, "the watch was cancelled: {resp:?}");
            out.extend(resp.events);
        }
    }
    assert_eq!(out.len(), count, "more events than expected: {out:?}");
    out
}

fn put_get_range<K: Kv>(db: &K) {
    let first = db.put("pgr/a", "1").unwrap().header_revision;
    let second = db.put("pgr/b", "2").unwrap().header_revision;
    assert_eq!(second, first + 1, "each put is one revision");
    let updated = db
        .put_with(PutOp {
            key: b"pgr/a".to_vec(),
            value: b"1b".to_vec(),
            prev_kv: true,
            ..PutOp::default()
        })
        .unwrap();
    assert_eq!(updated.prev_kv.unwrap().value, b"1");
    let a = db.get("pgr/a").unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.version,
            a.create_revision,
            a.mod_revision
        ),
        (&b"1b"[..], 2, first, updated.header_revision)
    );
    assert!(db.get("pgr/missing").unwrap().is_none());

    let all = db.range(Range::prefix("pgr/")).unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"pgr/a".to_vec(), b"pgr/b".to_vec()]);
    assert_eq!((all.count, all.more), (2, false));

    let limited = db
        .range_with(
            &Range::prefix("pgr/"),
            &RangeOptions {
                limit: 1,
                ..RangeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (1, true, 2)
    );

    let old = db
        .range_with(
            &Range::key("pgr/a"),
            &RangeOptions {
                revision: first,
                ..RangeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(
        old.kvs[0].value, b"1",
        "a read at an old revision sees the old value"
    );
}

fn delete<K: Kv>(db: &K) {
    for k in ["del/1", "del/2", "del/3"] {
        db.put(k, "x").unwrap();
    }
    let one = db.delete("del/1").unwrap();
    assert_eq!(one.deleted, 1);
    let rest = db.delete_range(Range::prefix("del/"), true).unwrap();
    assert_eq!(rest.deleted, 2);
    let keys: Vec<_> = rest.prev_kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"del/2".to_vec(), b"del/3".to_vec()]);
    assert_eq!(db.range(Range::prefix("del/")).unwrap().count, 0);
    assert_eq!(db.delete("del/none").unwrap().deleted, 0);
}

fn txn_and_batch<K: Kv>(db: &K) {
    let create_once = || {
        Txn::new()
            .when([Compare::version("txn/leader", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("txn/leader", "n1")])
            .or_else([TxnOp::get("txn/leader")])
    };
    let won = db.txn(create_once()).unwrap();
    assert!(won.succeeded);
    assert!(matches!(won.responses[0], TxnOpResponse::Put(_)));
    let lost = db.txn(create_once()).unwrap();
    assert!(!lost.succeeded);
    match &lost.responses[0] {
        TxnOpResponse::Range(r) => assert_eq!(r.kvs[0].value, b"n1"),
        other => panic!("expected the failure branch's get, got {other:?}"),
    }

    let batch = db
        .batch(vec![
            WriteOp::put("txn/b1", "1"),
            WriteOp::put("txn/b2", "2"),
            WriteOp::delete(Range::key("txn/leader")),
        ])
        .unwrap();
    assert_eq!(batch.responses.len(), 3);
    let b1 = db.get("txn/b1").unwrap().unwrap();
    let b2 = db.get("txn/b2").unwrap().unwrap();
    assert_eq!(
        b1.mod_revision, batch.header_revision,
        "one revision for the batch"
    );
    assert_eq!(b2.mod_revision, batch.header_revision);
    assert!(db.get("txn/leader").unwrap().is_none());
}

fn watch<K: Kv>(db: &K) {
    let mut w = db.watch(Range::prefix("w/")).unwrap();
    let put = db.put("w/a", "1").unwrap().header_revision;
    db.put("other/x", "ignored").unwrap();
    let del = db.delete("w/a").unwrap().header_revision;
    let got = events(&mut w, 2);
    assert_eq!((got[0].kind, got[0].kv.mod_revision), (EventKind::Put, put));
    assert_eq!(got[0].kv.value, b"1");
    assert_eq!(
        (got[1].kind, got[1].kv.mod_revision),
        (EventKind::Delete, del)
    );
    assert_eq!(got[1].kv.key, b"w/a");
    w.cancel();

    // From a past revision, history is replayed first, then live changes follow.
    let mut replay = db
        .watch_with(
            Range::prefix("w/"),
            WatchOptions {
                start_revision: put,
                prev_kv: true,
                ..WatchOptions::default()
            },
        )
        .unwrap();
    let live = db.put("w/b", "2").unwrap().header_revision;
    let got = events(&mut replay, 3);
    let revisions: Vec<_> = got.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, vec![put, del, live]);
    assert_eq!(
        got[1].prev_kv.as_ref().unwrap().value,
        b"1",
        "prev_kv of the delete"
    );
}

fn lease<K: Kv>(db: &K) {
    let lease = db.lease_grant(60, 0).unwrap();
    assert!(lease.id > 0);
    assert_eq!(lease.ttl, 60);
    db.put_with(PutOp {
        key: b"lease/k".to_vec(),
        value: b"v".to_vec(),
        lease: lease.id,
        ..PutOp::default()
    })
    .unwrap();
    assert_eq!(db.get("lease/k").unwrap().unwrap().lease, lease.id);
    let info = db.lease_time_to_live(lease.id, true).unwrap();
    assert_eq!(info.granted_ttl, 60);
    assert!((1..=60).contains(&info.ttl), "remaining TTL {}", info.ttl);
    assert_eq!(info.keys, vec![b"lease/k".to_vec()]);
    assert!(db
        .lease_list()
        .unwrap()
        .iter()
        .any(|l| l.id == lease.id && l.ttl == 60));
    assert_eq!(db.lease_keep_alive(lease.id).unwrap(), 60);

    let mut w = db.watch(Range::prefix("lease/")).unwrap();
    db.lease_revoke(lease.id).unwrap();
    assert!(
        db.get("lease/k").unwrap().is_none(),
        "revoking deletes the lease's keys"
    );
    assert_eq!(events(&mut w, 1)[0].kind, EventKind::Delete);
    let gone = db.lease_time_to_live(lease.id, false).unwrap_err();
    assert!(matches!(engine(&gone), Error::LeaseNotFound { .. }));
    let gone = db.lease_keep_alive(lease.id).unwrap_err();
    assert!(matches!(engine(&gone), Error::LeaseNotFound { .. }));
}

fn errors<K: Kv>(db: &K) {
    let empty = db.put("", "v").unwrap_err();
    assert!(matches!(engine(&empty), Error::EmptyKey));

    let missing = db
        .put_with(PutOp {
            key: b"err/missing".to_vec(),
            ignore_value: true,
            ..PutOp::default()
        })
        .unwrap_err();
    assert!(matches!(engine(&missing), Error::KeyNotFound));

    let twice = Txn::new().and_then([TxnOp::put("err/d", "1"), TxnOp::put("err/d", "2")]);
    let dup = db.txn(twice).unwrap_err();
    assert!(matches!(engine(&dup), Error::DuplicateKey { .. }));

    // etcd's default --max-txn-ops is 128; etch serve and the store use the same.
    let many = Txn::new().and_then((0..129).map(|i| TxnOp::put(format!("err/m{i}"), "v")));
    let too_many = db.txn(many).unwrap_err();
    assert!(matches!(engine(&too_many), Error::TooManyOps { .. }));
    assert_eq!(
        db.range(Range::prefix("err/")).unwrap().count,
        0,
        "nothing was written"
    );

    let unknown = db.lease_revoke(0x7eed_beef).unwrap_err();
    assert!(matches!(engine(&unknown), Error::LeaseNotFound { .. }));
}

fn compaction<K: Kv>(db: &K) {
    let old = db.put("cmp/k", "v1").unwrap().header_revision;
    let new = db.put("cmp/k", "v2").unwrap().header_revision;
    db.compact(new).unwrap();
    let at = |revision| {
        db.range_with(
            &Range::key("cmp/k"),
            &RangeOptions {
                revision,
                ..RangeOptions::default()
            },
        )
    };
    assert_eq!(
        at(new).unwrap().kvs[0].value,
        b"v2",
        "the compaction revision stays"
    );
    let compacted = at(old).unwrap_err();
    assert!(matches!(
        engine(&compacted),
        Error::Compacted { requested, .. } if *requested == old
    ));
    let future = at(new + 1000).unwrap_err();
    assert!(matches!(engine(&future), Error::FutureRevision { .. }));

    // A watch that needs compacted history is cancelled with the compact revision.
    let mut w = db
        .watch_with(
            Range::prefix("cmp/"),
            WatchOptions {
                start_revision: old,
                ..WatchOptions::default()
            },
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let cancelled: WatchResponse = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no cancellation came");
        if let Some(resp) = w.recv_timeout(left).unwrap() {
            break resp;
        }
    };
    assert!(
        cancelled.canceled,
        "expected a cancellation, got {cancelled:?}"
    );
    assert_eq!(cancelled.compact_revision, new);
}
