//! The replicated store's API on a simulated 3-node cluster (perfect network): every
//! `etch_engine::Store` method, on the leader and on followers, with the store's own errors and
//! the cluster's.

use crate::support;

use std::time::Duration;

use etch_engine::{
    Compare, CompareOp, CompareTarget, PutOp, Range, RangeOptions, Txn, TxnOp, WriteOp,
};
use etch_replication::sim::Faults;
use etch_replication::{Error, ReadConsistency};
use support::{simulate, Cluster};

#[test]
fn writes_and_reads_on_every_member() {
    simulate(1, || async {
        let mut c = Cluster::new(1, Faults::none());
        c.boot(&[1, 2, 3]).await;
        let leader = c.wait_leader().await;
        let follower = c.follower();

        // A follower's write is forwarded, and applied on the follower before it returns.
        let put = follower.put("a", "1").await.unwrap();
        let local = follower
            .get_consistent("a", ReadConsistency::Serializable)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(local.value, b"1");
        assert_eq!(local.mod_revision, put.header_revision);
        // Linearizable reads everywhere see it.
        for m in c.members.values() {
            assert_eq!(m.get("a").await.unwrap().unwrap().value, b"1");
        }
        // The leader's own write.
        let second = leader.put("a", "2").await.unwrap();
        assert_eq!(second.header_revision, put.header_revision + 1);
        assert_eq!(follower.get("a").await.unwrap().unwrap().version, 2);

        // put_with prev_kv, batch, range, delete_range.
        let p = follower
            .put_with(PutOp {
                key: b"a".to_vec(),
                value: b"3".to_vec(),
                prev_kv: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(p.prev_kv.unwrap().value, b"2");
        follower
            .batch(vec![WriteOp::put("p/1", "x"), WriteOp::put("p/2", "y")])
            .await
            .unwrap();
        let r = leader.range(Range::prefix("p/")).await.unwrap();
        assert_eq!(r.kvs.len(), 2);
        let d = follower
            .delete_range(Range::prefix("p/"), true)
            .await
            .unwrap();
        assert_eq!((d.deleted, d.prev_kvs.len()), (2, 2));
        assert_eq!(follower.delete("missing").await.unwrap().deleted, 0);

        // A transaction: compares evaluated at apply time, the same on every member.
        let txn = Txn::new()
            .when([Compare {
                range: Range::key("a"),
                op: CompareOp::Equal,
                target: CompareTarget::Value(b"3".to_vec()),
            }])
            .and_then([TxnOp::put("a", "4")])
            .or_else([TxnOp::put("b", "no")]);
        let t = follower.txn(txn).await.unwrap();
        assert!(t.succeeded);
        assert_eq!(leader.get("a").await.unwrap().unwrap().value, b"4");

        // Compaction through the log; reads below it fail with the store's error everywhere.
        let rev = leader.revision();
        follower.compact(rev - 1).await.unwrap();
        for m in c.members.values() {
            let old = m
                .range_with(
                    &Range::key("a"),
                    &RangeOptions {
                        revision: rev - 2,
                        ..Default::default()
                    },
                )
                .await;
            assert!(
                matches!(old, Err(Error::Store(etch_engine::Error::Compacted { .. }))),
                "{old:?}"
            );
        }

        // Admission refuses on the proposer with the store's errors; apply-time refusals come
        // back typed too.
        assert!(matches!(
            follower.put("", "v").await,
            Err(Error::Store(etch_engine::Error::EmptyKey))
        ));
        assert!(matches!(
            follower.put(vec![b'k'; 2000], "v").await,
            Err(Error::Store(etch_engine::Error::KeyTooLarge { .. }))
        ));
        assert!(matches!(
            follower.lease_revoke(42).await,
            Err(Error::Store(etch_engine::Error::LeaseNotFound { id: 42 }))
        ));
        assert!(matches!(
            follower.compact(1).await,
            Err(Error::Store(etch_engine::Error::Compacted { .. }))
        ));

        // Status, hashes, integrity.
        c.converge().await;
        assert_eq!(follower.status().unwrap().revision, leader.revision());
        c.assert_same_keyspace().await;
        c.shutdown().await;
        assert!(matches!(follower.put("x", "y").await, Err(Error::Shutdown)));
    });
}

#[test]
fn leases_are_granted_kept_alive_and_revoked_through_the_leader() {
    simulate(2, || async {
        let mut c = Cluster::new(2, Faults::none());
        c.boot(&[1, 2, 3]).await;
        let follower = c.follower();
        let lease = follower.lease_grant(10, 0).await.unwrap();
        assert!(lease.id > 0);
        follower
            .put_with(PutOp {
                key: b"svc/me".to_vec(),
                value: b"up".to_vec(),
                lease: lease.id,
                ..Default::default()
            })
            .await
            .unwrap();
        let info = follower.lease_time_to_live(lease.id, true).await.unwrap();
        assert_eq!(info.granted_ttl, 10);
        assert_eq!(info.keys, vec![b"svc/me".to_vec()]);
        // Kept alive for 30 s of simulated time: the key stays.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(follower.lease_keep_alive(lease.id).await.unwrap(), 10);
        }
        assert!(follower.get("svc/me").await.unwrap().is_some());
        let listed = follower.lease_list().await.unwrap();
        assert_eq!(listed.len(), 1);
        // Not kept alive: the leader expires it, every member deletes the key.
        tokio::time::sleep(Duration::from_secs(12)).await;
        for m in c.members.values() {
            assert!(
                m.get("svc/me").await.unwrap().is_none(),
                "member {}",
                m.id()
            );
        }
        assert!(matches!(
            follower.lease_keep_alive(lease.id).await,
            Err(Error::Store(etch_engine::Error::LeaseNotFound { .. }))
        ));
        // Explicit revoke.
        let l2 = follower.lease_grant(100, 7).await.unwrap();
        assert_eq!(l2.id, 7);
        assert!(matches!(
            follower.lease_grant(100, 7).await,
            Err(Error::Store(etch_engine::Error::LeaseExists { id: 7 }))
        ));
        follower.lease_revoke(7).await.unwrap();
        c.converge().await;
        c.assert_same_keyspace().await;
        c.shutdown().await;
    });
}

#[test]
fn auto_compaction_is_one_replicated_decision() {
    simulate(3, || async {
        let mut c = Cluster::new(3, Faults::none());
        c.auto_compaction = Some(etch_engine::AutoCompaction::Revisions(20));
        c.boot(&[1, 2, 3]).await;
        let follower = c.follower();
        for i in 0..60 {
            follower
                .put(format!("k{}", i % 5), format!("v{i}"))
                .await
                .unwrap();
        }
        // The leader's next ticks propose the compaction its store reports due.
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.converge().await;
        let compacted: Vec<i64> = c
            .members
            .values()
            .map(|m| m.status().unwrap().compact_revision)
            .collect();
        assert!(compacted[0] >= 30, "no auto-compaction: {compacted:?}");
        assert!(
            compacted.iter().all(|&r| r == compacted[0]),
            "members compacted differently: {compacted:?}"
        );
        c.assert_same_keyspace().await;
        c.shutdown().await;
    });
}
