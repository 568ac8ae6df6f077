//! Transactions with compares: etcd's rules, edge case by edge case.

use crate::common;

use etch_engine::{
    Compare, CompareOp, Error, PutOp, Range, RangeOptions, Store, Txn, TxnOp, TxnOpResponse,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("t.etch")).unwrap();
    (dir, db)
}

fn range_kvs(r: &TxnOpResponse) -> Vec<(Vec<u8>, Vec<u8>)> {
    match r {
        TxnOpResponse::Range(rr) => rr
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        other => panic!("expected a range response, got {other:?}"),
    }
}

#[test]
fn create_if_absent_is_a_compare_and_swap() {
    let (_d, db) = store();
    let elect = |who: &str| {
        db.txn(
            Txn::new()
                .when([Compare::version("leader", CompareOp::Equal, 0)])
                .and_then([TxnOp::put("leader", who)])
                .or_else([TxnOp::get("leader")]),
        )
        .unwrap()
    };
    let first = elect("a");
    assert!(first.succeeded);
    assert_eq!(first.header_revision, 2);
    let second = elect("b");
    assert!(!second.succeeded);
    assert_eq!(
        second.header_revision, 2,
        "a failed read-only txn does not bump the revision"
    );
    assert_eq!(
        range_kvs(&second.responses[0]),
        vec![(b"leader".to_vec(), b"a".to_vec())]
    );
    assert_eq!(db.get("leader").unwrap().unwrap().value, b"a");
}

#[test]
fn compares_on_every_target_and_relation() {
    let (_d, db) = store();
    db.lease_grant(60, 7).unwrap();
    db.put_with(PutOp {
        key: b"k".to_vec(),
        value: b"m".to_vec(),
        lease: 7,
        ..Default::default()
    })
    .unwrap(); // rev 2
    db.put("k", "m").unwrap(); // rev 3, version 2, lease 0 now
    let holds = |c: Compare| db.txn(Txn::new().when([c])).unwrap().succeeded;
    use CompareOp::*;
    assert!(holds(Compare::value("k", Equal, "m")));
    assert!(holds(Compare::value("k", Less, "n")));
    assert!(holds(Compare::value("k", Greater, "l")));
    assert!(holds(Compare::value("k", NotEqual, "x")));
    assert!(!holds(Compare::value("k", Greater, "m")));
    assert!(holds(Compare::version("k", Equal, 2)));
    assert!(holds(Compare::version("k", Greater, 1)));
    assert!(holds(Compare::create_revision("k", Equal, 2)));
    assert!(holds(Compare::mod_revision("k", Equal, 3)));
    assert!(holds(Compare::mod_revision("k", Less, 4)));
    assert!(holds(Compare::lease("k", Equal, 0)));
    // A missing key: a value compare always fails, even "not equal"; the others compare with 0.
    assert!(!holds(Compare::value("nope", NotEqual, "x")));
    assert!(!holds(Compare::value("nope", Equal, "")));
    assert!(holds(Compare::version("nope", Equal, 0)));
    assert!(holds(Compare::create_revision("nope", Less, 1)));
    assert!(holds(Compare::mod_revision("nope", Equal, 0)));
    assert!(holds(Compare::lease("nope", Equal, 0)));
    // All compares must hold.
    let t = Txn::new().when([
        Compare::version("k", Equal, 2),
        Compare::version("k", Equal, 3),
    ]);
    assert!(!db.txn(t).unwrap().succeeded);
    assert_eq!(db.revision(), 3);
}

#[test]
fn range_compares_need_every_key() {
    let (_d, db) = store();
    db.put("p/a", "1").unwrap();
    db.put("p/b", "1").unwrap();
    let holds = |c: Compare| db.txn(Txn::new().when([c])).unwrap().succeeded;
    assert!(holds(
        Compare::value("", CompareOp::Equal, "1").over(Range::prefix("p/"))
    ));
    db.put("p/c", "2").unwrap();
    assert!(!holds(
        Compare::value("", CompareOp::Equal, "1").over(Range::prefix("p/"))
    ));
    assert!(holds(
        Compare::version("", CompareOp::Equal, 1).over(Range::prefix("p/"))
    ));
    // An empty range: a value compare fails, a version compare sees 0.
    assert!(!holds(
        Compare::value("", CompareOp::NotEqual, "z").over(Range::prefix("q/"))
    ));
    assert!(holds(
        Compare::version("", CompareOp::Equal, 0).over(Range::prefix("q/"))
    ));
}

#[test]
fn writes_share_one_revision_and_reads_see_earlier_writes() {
    let (_d, db) = store();
    db.put("x", "old").unwrap();
    let r = db
        .txn(Txn::new().and_then([
            TxnOp::put("a", "1"),
            TxnOp::get("a"),
            TxnOp::delete(Range::key("x")),
            TxnOp::Range {
                range: Range::all(),
                options: RangeOptions::default(),
            },
            TxnOp::put("b", "2"),
        ]))
        .unwrap();
    assert!(r.succeeded);
    assert_eq!(r.header_revision, 3);
    assert_eq!(
        range_kvs(&r.responses[1]),
        vec![(b"a".to_vec(), b"1".to_vec())]
    );
    assert_eq!(
        range_kvs(&r.responses[3]),
        vec![(b"a".to_vec(), b"1".to_vec())]
    );
    match &r.responses[2] {
        TxnOpResponse::Delete(d) => assert_eq!((d.deleted, d.header_revision), (1, 3)),
        other => panic!("{other:?}"),
    }
    for k in ["a", "b"] {
        assert_eq!(db.get(k).unwrap().unwrap().mod_revision, 3);
    }
    assert!(db.get("x").unwrap().is_none());
    // At revision 2 the old state is intact.
    let old = db
        .range_with(
            &Range::all(),
            &RangeOptions {
                revision: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(old.kvs.len(), 1);
    assert_eq!(old.kvs[0].key, b"x");
    db.check().unwrap();
}

#[test]
fn nested_compares_see_the_state_before_the_transaction() {
    let (_d, db) = store();
    let r = db
        .txn(
            Txn::new().and_then([
                TxnOp::put("k", "1"),
                TxnOp::Txn(
                    Txn::new()
                        .when([Compare::value("k", CompareOp::Equal, "1")])
                        .and_then([TxnOp::put("seen", "yes")])
                        .or_else([TxnOp::put("seen", "no")]),
                ),
            ]),
        )
        .unwrap();
    match &r.responses[1] {
        TxnOpResponse::Txn(inner) => assert!(!inner.succeeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(db.get("seen").unwrap().unwrap().value, b"no");
    assert_eq!(db.revision(), 2);
}

#[test]
fn a_branch_may_not_write_a_key_twice() {
    let (_d, db) = store();
    let dup = |t: Txn| matches!(db.txn(t), Err(Error::DuplicateKey { .. }));
    assert!(dup(
        Txn::new().and_then([TxnOp::put("a", "1"), TxnOp::put("a", "2")])
    ));
    assert!(dup(Txn::new().and_then([
        TxnOp::delete(Range::prefix("a")),
        TxnOp::put("ab", "2")
    ])));
    assert!(dup(Txn::new().and_then([
        TxnOp::put("a", "1"),
        TxnOp::Txn(Txn::new().or_else([TxnOp::put("a", "2")])),
    ])));
    assert!(dup(Txn::new().and_then([
        TxnOp::put("a", "1"),
        TxnOp::Txn(Txn::new().and_then([TxnOp::delete(Range::all())])),
    ])));
    // Different branches may: only one runs.
    assert!(db
        .txn(
            Txn::new()
                .and_then([TxnOp::put("a", "1")])
                .or_else([TxnOp::put("a", "2")])
        )
        .is_ok());
    assert!(db
        .txn(
            Txn::new().and_then([TxnOp::Txn(
                Txn::new()
                    .and_then([TxnOp::put("b", "1")])
                    .or_else([TxnOp::put("b", "2")])
            )])
        )
        .is_ok());
    // Two deletes may overlap.
    assert!(db
        .txn(Txn::new().and_then([TxnOp::delete(Range::all()), TxnOp::delete(Range::key("a"))]))
        .is_ok());
    assert_eq!(db.revision(), 4);
}

#[test]
fn errors_before_writing_change_nothing() {
    let (_d, db) = store();
    db.put("a", "1").unwrap();
    let ignore_missing = Txn::new().and_then([
        TxnOp::put("b", "2"),
        TxnOp::Put(PutOp {
            key: b"missing".to_vec(),
            ignore_value: true,
            ..Default::default()
        }),
    ]);
    assert!(matches!(db.txn(ignore_missing), Err(Error::KeyNotFound)));
    let future = Txn::new().and_then([
        TxnOp::put("b", "2"),
        TxnOp::Range {
            range: Range::key("a"),
            options: RangeOptions {
                revision: 99,
                ..Default::default()
            },
        },
    ]);
    assert!(matches!(db.txn(future), Err(Error::FutureRevision { .. })));
    let too_many =
        Txn::new().when((0..129).map(|i| Compare::version(format!("k{i}"), CompareOp::Equal, 0)));
    assert!(matches!(
        db.txn(too_many),
        Err(Error::TooManyOps {
            count: 129,
            max: 128
        })
    ));
    assert!(matches!(
        db.txn(Txn::new().and_then([TxnOp::put("", "x")])),
        Err(Error::EmptyKey)
    ));
    assert_eq!(db.revision(), 2);
    assert!(db.get("b").unwrap().is_none());
}

#[test]
fn a_committed_transaction_survives_a_power_cut() {
    let (dir, disk, db) = common::sim_store("/t/db.etch");
    db.put("x", "1").unwrap();
    let r = db
        .txn(
            Txn::new()
                .when([Compare::value("x", CompareOp::Equal, "1")])
                .and_then([TxnOp::put("y", "2"), TxnOp::delete(Range::key("x"))]),
        )
        .unwrap();
    assert!(r.succeeded);
    let recovered = common::open_after_power_cut(&dir, &disk, "/t/db.etch");
    drop(db);
    let db = recovered;
    assert_eq!(db.revision(), 3);
    assert_eq!(db.get("y").unwrap().unwrap().mod_revision, 3);
    assert!(db.get("x").unwrap().is_none());
    db.check().unwrap();
}
