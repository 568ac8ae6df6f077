//! Admission on the proposer refuses what a single-node `Store` refuses up front, with the same
//! error, and admits what it accepts.

use etch_engine::{
    Command, Compare, CompareOp, CompareTarget, PutOp, Range, Store, Txn, TxnOp, WriteOp,
};
use etch_replication::admission::{admit, Limits};

fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put(PutOp {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    })
}

#[test]
fn admission_gives_the_stores_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a.etch")).unwrap();
    let limits = Limits::default();
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
        let admitted = admit(&Command::Batch(ops), &limits).unwrap_err();
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
        let admitted = admit(&Command::Txn(txn), &limits).unwrap_err();
        assert_eq!(format!("{admitted:?}"), format!("{local:?}"));
    }
    for ttl in [0, -1, 9_000_000_001] {
        let local = store.lease_grant(ttl, 1).unwrap_err();
        let admitted = admit(&Command::LeaseGrant { id: 1, ttl }, &limits).unwrap_err();
        assert_eq!(format!("{admitted:?}"), format!("{local:?}"));
    }
    // What the store accepts is admitted.
    let ok = vec![put(b"a", b"1"), put(b"b", b"2")];
    store.batch(ok.clone()).unwrap();
    admit(&Command::Batch(ok), &limits).unwrap();
    admit(&Command::LeaseGrant { id: 3, ttl: 10 }, &limits).unwrap();
}
