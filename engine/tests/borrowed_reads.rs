//! Borrowed reads (`ReadTxn::get_ref`, `ReadTxn::iter`) agree with the owned etcd reads, and a
//! batch of puts (applied to the trees in key order) behaves exactly as if applied in batch
//! order: sub-revisions, watch events, the change log after replay.

use std::time::Duration;

use etch_engine::{Range, RangeOptions, Store, WriteOp};
use proptest::prelude::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::options()
        .max_txn_ops(10_000)
        .open(dir.path().join("b.etch"))
        .unwrap();
    (dir, db)
}

/// Keys from a small alphabet, so ranges, prefixes and deletes hit existing keys often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), Just(0xff)],
        0..4,
    )
    .prop_map(|mut k| {
        k.insert(0, b'k');
        k
    })
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, usize)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Put(k, v)),
        key().prop_map(Op::Delete),
        proptest::collection::vec((key(), 0usize..3000), 1..20).prop_map(Op::Batch),
    ]
}

fn range() -> impl Strategy<Value = Range> {
    prop_oneof![
        key().prop_map(Range::key),
        key().prop_map(Range::prefix),
        (key(), key()).prop_map(|(a, b)| Range::between(a, b)),
        key().prop_map(Range::from_key),
        Just(Range::all()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn borrowed_reads_match_owned_reads(
        ops in proptest::collection::vec(op(), 1..40),
        ranges in proptest::collection::vec(range(), 1..12),
        probes in proptest::collection::vec(key(), 1..12),
    ) {
        let (_d, db) = store();
        for op in &ops {
            match op {
                Op::Put(k, v) => { db.put(k, v).unwrap(); }
                Op::Delete(k) => { db.delete(k).unwrap(); }
                Op::Batch(pairs) => {
                    let mut seen = std::collections::HashSet::new();
                    // Values up to 3000 bytes: some go to overflow pages.
                    let ops: Vec<WriteOp> = pairs
                        .iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .map(|(k, n)| WriteOp::put(k, vec![k.len() as u8; *n]))
                        .collect();
                    db.batch(ops).unwrap();
                }
            }
        }
        let txn = db.read().unwrap();
        for r in &ranges {
            let owned = txn.range_with(r, &RangeOptions::default()).unwrap().kvs;
            let borrowed: Vec<_> = txn
                .iter(r)
                .unwrap()
                .map(|kv| kv.unwrap().to_key_value())
                .collect();
            prop_assert_eq!(&borrowed, &owned, "range {:?}", r);
            // Stopping early yields a prefix.
            let two: Vec<_> = txn.iter(r).unwrap().take(2).map(|kv| kv.unwrap().key.to_vec()).collect();
            let want: Vec<_> = owned.iter().take(2).map(|kv| kv.key.clone()).collect();
            prop_assert_eq!(two, want);
        }
        for k in &probes {
            let owned = txn.get(k).unwrap();
            let borrowed = txn.get_ref(k).unwrap().map(|kv| kv.to_key_value());
            prop_assert_eq!(borrowed, owned);
        }
    }
}

#[test]
fn a_put_batch_keeps_batch_order_in_the_change_log_and_survives_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.etch");
    let keys = ["m", "c", "x", "a", "q", "b"];
    let rev = {
        let db = Store::open(&path).unwrap();
        db.put("before", "0").unwrap();
        let mut w = db.watch_with(Range::all(), Default::default()).unwrap();
        let resp = db
            .batch(keys.iter().map(|k| WriteOp::put(*k, *k)).collect())
            .unwrap();
        assert_eq!(resp.responses.len(), keys.len());
        let got = w.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        let order: Vec<&[u8]> = got.events.iter().map(|e| e.kv.key.as_slice()).collect();
        let want: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        assert_eq!(order, want, "events follow the batch's order");
        let hash = db.hash_kv(0).unwrap();
        // Leave the batch in the WAL: dropping without close still checkpoints, so copy the
        // files while the store is open and replay the copy.
        std::fs::copy(&path, dir.path().join("copy.etch")).unwrap();
        std::fs::copy(
            dir.path().join("order.etch-wal"),
            dir.path().join("copy.etch-wal"),
        )
        .unwrap();
        (resp.header_revision, hash)
    };
    let copy = Store::open(dir.path().join("copy.etch")).unwrap();
    assert_eq!(copy.revision(), rev.0);
    assert_eq!(copy.hash_kv(0).unwrap(), rev.1);
    let mut w = copy
        .watch_with(
            Range::all(),
            etch_engine::WatchOptions {
                start_revision: rev.0,
                ..Default::default()
            },
        )
        .unwrap();
    let got = w.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let order: Vec<&[u8]> = got.events.iter().map(|e| e.kv.key.as_slice()).collect();
    let want: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    assert_eq!(order, want, "replayed change log keeps the batch's order");
    copy.check().unwrap();
}
