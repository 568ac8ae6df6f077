//! `ReplicatedStore::write`: optimistic read-write transactions through Raft, validated when
//! applied. Concurrent increments from every member lose nothing; a closure's error writes
//! nothing; a transaction over more keys than `max_txn_ops` still commits as one.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};

use etch_replication::sim::Faults;
use etch_replication::ReplicatedStore;
use support::{simulate, Cluster};

fn number(kv: Option<etch_engine::KeyValue>) -> u64 {
    kv.map_or(0, |kv| {
        String::from_utf8(kv.value).unwrap().parse().unwrap()
    })
}

/// Increments `n` `times` times through `m`; `calls` counts the closure's runs (retries
/// included).
async fn increment(m: &ReplicatedStore, times: usize, calls: &AtomicUsize) -> Vec<i64> {
    let mut revisions = Vec::new();
    for _ in 0..times {
        let ((), rev) = m
            .write(|tx| {
                calls.fetch_add(1, Ordering::Relaxed);
                let n = number(tx.get("n")?);
                tx.put("n", (n + 1).to_string());
                Ok(())
            })
            .await
            .unwrap();
        revisions.push(rev);
    }
    revisions
}

#[test]
fn concurrent_increments_from_every_member_lose_nothing() {
    simulate(7, || async {
        let mut c = Cluster::new(7, Faults::none());
        c.boot(&[1, 2, 3]).await;
        let (a, b, d) = (c.member(1), c.member(2), c.member(3));
        let calls = AtomicUsize::new(0);
        let (ra, rb, rd) = tokio::join!(
            increment(&a, 10, &calls),
            increment(&b, 10, &calls),
            increment(&d, 10, &calls)
        );
        // The members raced: some attempts lost to another member's write and ran again.
        assert!(
            calls.load(Ordering::Relaxed) > 30,
            "no conflict happened, so the retry path was not exercised"
        );
        let mut all: Vec<i64> = ra.into_iter().chain(rb).chain(rd).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 30, "every increment has its own revision");
        for m in [&a, &b, &d] {
            let kv = m.get("n").await.unwrap();
            assert_eq!(number(kv.clone()), 30);
            assert_eq!(kv.unwrap().version, 30);
        }
    });
}

#[test]
fn read_only_and_failing_closures_write_nothing() {
    simulate(8, || async {
        let mut c = Cluster::new(8, Faults::none());
        c.boot(&[1, 2, 3]).await;
        let leader = c.wait_leader().await;
        let follower = c.follower();
        let put = leader.put("k", "v").await.unwrap();

        // Read-only on a follower: sees the leader's acknowledged write, commits nothing.
        let (value, rev) = follower
            .write(|tx| Ok(tx.get("k")?.map(|kv| kv.value)))
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some(&b"v"[..]));
        assert_eq!(rev, put.header_revision);

        // An error from the closure aborts: nothing proposed, the revision stays.
        let err = follower
            .write(|tx| {
                tx.put("k", "w");
                Err::<(), _>(etch_engine::Error::KeyNotFound)
            })
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            etch_replication::Error::Store(etch_engine::Error::KeyNotFound)
        ));
        assert_eq!(leader.revision(), put.header_revision);
        assert_eq!(leader.get("k").await.unwrap().unwrap().value, b"v");
    });
}

#[test]
fn a_transaction_over_more_keys_than_max_txn_ops_commits_as_one() {
    simulate(9, || async {
        let mut c = Cluster::new(9, Faults::none());
        c.boot(&[1, 2, 3]).await;
        let follower = c.follower();
        let ((), rev) = follower
            .write(|tx| {
                for i in 0..300 {
                    let key = format!("k{i:03}");
                    let n = number(tx.get(&key)?);
                    tx.put(&key, (n + 1).to_string());
                }
                Ok(())
            })
            .await
            .unwrap();
        let all = follower
            .range(etch_engine::Range::prefix("k"))
            .await
            .unwrap();
        assert_eq!(all.kvs.len(), 300);
        assert!(all.kvs.iter().all(|kv| kv.mod_revision == rev));
    });
}
