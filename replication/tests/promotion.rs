//! A standalone file keeps its history when it becomes a cluster: an `app.etch` used as a
//! plain local `Store` (puts, deletes, a lease, a compaction) starts a cluster with
//! `ReplicatedStore::bootstrap`, two new members join (as learners, from a snapshot, then
//! promoted), and every member holds the same keys with their revisions and versions, the
//! revision, the compact revision and the lease; new writes continue from the old revision.
//! Files that cannot start a cluster are refused with typed errors.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;

use etch_engine as engine;
use etch_engine::{KeyValue, LeaseGrant, PutOp, Range, RangeOptions};
use etch_replication::sim::Faults;
use etch_replication::types::NodeId;
use etch_replication::{Error, ReplicatedStore};
use support::{node_config, sim_store_options, simulate, Cluster};

/// What a store holds, as the test compares it.
#[derive(Debug, PartialEq)]
struct History {
    kvs: Vec<KeyValue>,
    revision: i64,
    compact_revision: i64,
    hash: u32,
    leases: Vec<LeaseGrant>,
}

const LEASE: i64 = 7;

/// Writes a history into a standalone store at `path` and returns it.
fn standalone_history(path: &std::path::Path) -> History {
    let db = sim_store_options().open(path).unwrap();
    for i in 0..5 {
        db.put("a", format!("a{i}")).unwrap();
    }
    db.put("b", "b").unwrap();
    db.put("c", "c").unwrap();
    db.delete("c").unwrap();
    db.lease_grant(3600, LEASE).unwrap();
    db.put_with(PutOp {
        key: b"leased".to_vec(),
        value: b"l".to_vec(),
        lease: LEASE,
        ..PutOp::default()
    })
    .unwrap();
    let compact_to = db.revision() - 2;
    db.compact(compact_to).unwrap();
    db.put("d", "after the compaction").unwrap();
    let history = History {
        kvs: db.range(Range::all()).unwrap().kvs,
        revision: db.revision(),
        compact_revision: db.status().unwrap().compact_revision,
        hash: db.hash_kv(0).unwrap(),
        leases: db.lease_list().unwrap(),
    };
    assert_eq!(history.compact_revision, compact_to);
    assert_eq!(history.kvs.len(), 4);
    db.close().unwrap();
    history
}

async fn history_of(m: &ReplicatedStore) -> History {
    History {
        kvs: m.range(Range::all()).await.unwrap().kvs,
        revision: m.revision(),
        compact_revision: m.status().unwrap().compact_revision,
        hash: m.hash_kv(0).unwrap(),
        leases: m.lease_list().await.unwrap(),
    }
}

fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

async fn bootstrap(
    c: &mut Cluster,
    id: NodeId,
    members: &[NodeId],
) -> Result<ReplicatedStore, Error> {
    let m = ReplicatedStore::bootstrap(
        node_config(id, c.snapshot_every),
        c.path(id),
        c.store_options(),
        Arc::clone(&c.net),
        set(members),
    )
    .await?;
    c.net.register(id, m.handler());
    c.members.insert(id, m.clone());
    Ok(m)
}

#[test]
fn a_standalone_file_becomes_a_three_member_cluster_with_its_history() {
    simulate(3, || async {
        let mut c = Cluster::new(3, Faults::none());
        let before = standalone_history(&c.path(1));

        let first = bootstrap(&mut c, 1, &[1]).await.unwrap();
        let leader = c.wait_leader().await;
        assert_eq!(leader.id(), 1);
        assert_eq!(
            history_of(&first).await,
            before,
            "the first member keeps its history"
        );

        for id in [2, 3] {
            c.start(id).await;
            leader.add_learner(id).await.unwrap();
            leader.promote(id).await.unwrap();
        }
        assert_eq!(leader.members().0, set(&[1, 2, 3]));
        c.converge().await;
        c.assert_same_keyspace().await;
        for id in [1, 2, 3] {
            let m = c.member(id);
            assert_eq!(history_of(&m).await, before, "member {id}");
            let ttl = m.lease_time_to_live(LEASE, true).await.unwrap();
            assert_eq!(ttl.keys, vec![b"leased".to_vec()], "member {id}");
            let below = m
                .range_with(
                    &Range::all(),
                    &RangeOptions {
                        revision: before.compact_revision - 1,
                        ..RangeOptions::default()
                    },
                )
                .await;
            assert!(
                matches!(below, Err(Error::Store(engine::Error::Compacted { .. }))),
                "member {id} keeps the compaction: {below:?}"
            );
        }
        let joined = c.member(3);
        assert!(
            joined.raft().metrics().borrow().snapshot.is_some(),
            "a new member received the history as a snapshot"
        );

        // New writes continue from the old revision, through any member.
        let put = joined.put("e", "new").await.unwrap();
        assert_eq!(put.header_revision, before.revision + 1);
        let put = c.member(2).put("a", "a5").await.unwrap();
        assert_eq!(put.header_revision, before.revision + 2);
        c.converge().await;
        c.assert_same_keyspace().await;
        for id in [1, 2, 3] {
            let a = c.member(id).get("a").await.unwrap().unwrap();
            let old = before.kvs.iter().find(|kv| kv.key == b"a").unwrap();
            assert_eq!(
                (a.create_revision, a.version),
                (old.create_revision, old.version + 1),
                "member {id}"
            );
        }

        // The members' files restart into the same cluster with their history (the handles
        // this test holds go first: a crashed member's store closes with its last handle).
        drop((first, leader, joined));
        for id in [1, 2, 3] {
            c.crash(id).await;
        }
        for id in [1, 2, 3] {
            c.start(id).await;
        }
        c.wait_leader().await;
        c.converge().await;
        c.assert_same_keyspace().await;
        assert_eq!(c.member(1).revision(), before.revision + 2);
        c.shutdown().await;
    });
}

#[test]
fn files_that_cannot_start_a_cluster_are_refused() {
    simulate(4, || async {
        let mut c = Cluster::new(4, Faults::none());
        c.boot(&[1, 2]).await;
        c.leader().unwrap().put("k", "v").await.unwrap();
        c.converge().await;
        c.shutdown().await;
        // A member of a cluster cannot start another one, with either call.
        let refused = bootstrap(&mut c, 2, &[2]).await;
        assert!(
            matches!(refused, Err(Error::AlreadyMember { id: 2 })),
            "{:?}",
            refused.err()
        );
        let m = c.start(1).await;
        let refused = m.initialize(set(&[1])).await;
        assert!(
            matches!(refused, Err(Error::AlreadyMember { id: 1 })),
            "{refused:?}"
        );
        c.shutdown().await;

        // A standalone file's history cannot be dropped by openraft's initialize.
        standalone_history(&c.path(5));
        let m = c.start(5).await;
        assert!(matches!(
            m.initialize(set(&[5])).await,
            Err(Error::HasHistory)
        ));
        c.shutdown().await;
        // The first member must be a voter of the cluster it starts.
        let refused = bootstrap(&mut c, 5, &[6]).await;
        assert!(
            matches!(refused, Err(Error::Store(engine::Error::InvalidOption(_)))),
            "{:?}",
            refused.err()
        );
        // Refusals left the file as it was: it still starts a cluster.
        let m = bootstrap(&mut c, 5, &[5]).await.unwrap();
        c.wait_leader().await;
        assert_eq!(m.get("a").await.unwrap().unwrap().value, b"a4");
        c.shutdown().await;
    });
}
