//! `Store::admit` refuses what the store's own write methods refuse up front, with the same
//! error, admits what they accept, and refuses writes that add data past the quota while
//! deletes, compaction and leases pass.

use etch_engine::{
    Command, Compare, CompareOp, CompareTarget, PutOp, Range, Store, Txn, TxnOp, WriteOp,
};

fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put(PutOp {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    })
}

#[test]
fn admit_gives_the_stores_own_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a.etch")).unwrap();
    let big = vec![b'v'; 1536 * 1024 + 1];
    let batches: Vec<Vec<WriteOp>> = vec![
        vec![put(b"", b"v")],
        vec![put(&[b'k'; 961], b"v")],
        (0..129)
            .map(|i| put(format!("k{i}").as_bytes(), b"v"))
            .collect(),
        vec![WriteOp::Put(PutOp {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        })],
        vec![WriteOp::Put(PutOp {
            key: b"k".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        })],
        vec![put(b"k", b"1"), put(b"k", b"2")],
        vec![
            put(b"p/1", b"1"),
            WriteOp::DeleteRange {
                range: Range::prefix("p/"),
                prev_kv: false,
            },
        ],
        vec![put(b"k", &big)],
        vec![WriteOp::DeleteRange {
            range: Range::key(""),
            prev_kv: false,
        }],
    ];
    for ops in batches {
        let local = store.batch(ops.clone()).unwrap_err();
        let admitted = store.admit(&Command::Batch(ops)).unwrap_err();
        assert_eq!(format!("{admitted:?}"), format!("{local:?}"));
    }
    let txns = vec![
        Txn::new().and_then((0..129).map(|i| TxnOp::put(format!("k{i}"), "v"))),
        Txn::new().when([Compare {
            range: Range::key(""),
            op: CompareOp::Equal,
            target: CompareTarget::Version(0),
        }]),
        Txn::new().and_then([TxnOp::put("", "v")]),
    ];
    for txn in txns {
        let local = store.txn(txn.clone()).unwrap_err();
        let admitted = store.admit(&Command::Txn(txn)).unwrap_err();
        assert_eq!(format!("{admitted:?}"), format!("{local:?}"));
    }
    for ttl in [0, -1, 9_000_000_001] {
        let local = store.lease_grant(ttl, 1).unwrap_err();
        let admitted = store
            .admit(&Command::LeaseGrant { id: 1, ttl })
            .unwrap_err();
        assert_eq!(format!("{admitted:?}"), format!("{local:?}"));
    }
    // What the store accepts is admitted.
    let ok = vec![put(b"a", b"1"), put(b"b", b"2")];
    store.batch(ok.clone()).unwrap();
    store.admit(&Command::Batch(ok)).unwrap();
    store
        .admit(&Command::LeaseGrant { id: 3, ttl: 10 })
        .unwrap();
}

#[test]
fn admit_refuses_writes_that_add_data_past_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.etch");
    let store = Store::open(&path).unwrap();
    store.put("k", vec![b'v'; 64 << 10]).unwrap();
    let used = store.status().unwrap().size_in_use;
    store.close().unwrap();
    let store = Store::options()
        .quota_bytes(Some(used / 2))
        .open(&path)
        .unwrap();
    let local = store.put("x", "1").unwrap_err();
    let admitted = store
        .admit(&Command::Batch(vec![put(b"x", b"1")]))
        .unwrap_err();
    assert_eq!(format!("{admitted:?}"), format!("{local:?}"));
    assert!(matches!(admitted, etch_engine::Error::QuotaExceeded { .. }));
    let in_failure = Txn::new().or_else([TxnOp::put("x", "1")]);
    assert!(matches!(
        store.admit(&Command::Txn(in_failure)),
        Err(etch_engine::Error::QuotaExceeded { .. })
    ));
    store
        .admit(&Command::Batch(vec![WriteOp::DeleteRange {
            range: Range::key("k"),
            prev_kv: false,
        }]))
        .unwrap();
    store.admit(&Command::Compact(1)).unwrap();
    store
        .admit(&Command::LeaseGrant { id: 7, ttl: 10 })
        .unwrap();
    store.admit(&Command::LeaseRevoke { id: 7 }).unwrap();
}
