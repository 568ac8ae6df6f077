//! A lease keep-alive or TTL answer is the leader's, so a leader confirms that it still leads
//! (a quorum acknowledges its term) before giving one. A leader cut off from the others keeps
//! believing it leads until it hears of a newer term; it must not renew a lease meanwhile (the
//! new leader may have revoked it, and its keys with it) nor report a TTL.

use crate::support;

use std::time::Duration;

use etch_replication::sim::Faults;
use etch_replication::types::NodeId;
use etch_replication::Error;
use support::{seeds, simulate, with_repro, Cluster};

const MEMBERS: [NodeId; 3] = [1, 2, 3];

async fn isolated_leader_does_not_answer(seed: u64) {
    let mut c = Cluster::new(seed, Faults::none());
    c.boot(&MEMBERS).await;
    let old = c.wait_leader().await;
    let lease = old.lease_grant(60, 0).await.unwrap();
    // Served by the leader while it leads.
    assert_eq!(old.lease_keep_alive(lease.id).await.unwrap(), 60);
    assert!(old.lease_time_to_live(lease.id, false).await.unwrap().ttl > 0);

    // Cut the leader off. It still believes it leads (no newer term reached it)...
    c.net.isolate(old.id(), &MEMBERS);
    assert!(
        old.is_leader(),
        "seed {seed}: the leader stepped down at once"
    );
    // ...but may not answer as the leader.
    let kept = old.lease_keep_alive(lease.id).await;
    assert!(
        kept.is_err(),
        "seed {seed}: an isolated leader renewed a lease: {kept:?}"
    );
    let ttl = old.lease_time_to_live(lease.id, false).await;
    assert!(
        ttl.is_err(),
        "seed {seed}: an isolated leader reported a lease's TTL: {ttl:?}"
    );

    // The others elect a leader, which revokes the lease.
    let mut new = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        new = c
            .members
            .values()
            .find(|m| m.id() != old.id() && m.is_leader())
            .cloned();
        if new.is_some() {
            break;
        }
    }
    let new = new.expect("the majority elects a leader");
    new.lease_revoke(lease.id).await.unwrap();
    // The old leader, still cut off, must not renew the revoked lease either.
    let kept = old.lease_keep_alive(lease.id).await;
    assert!(
        kept.is_err(),
        "seed {seed}: a deposed leader renewed a revoked lease: {kept:?}"
    );

    // Healed, the old member forwards to the new leader, which knows the lease is gone.
    c.net.heal();
    let mut answer = None;
    for _ in 0..50 {
        match old.lease_keep_alive(lease.id).await {
            Err(Error::Store(etch_engine::Error::LeaseNotFound { id })) => {
                answer = Some(id);
                break;
            }
            Ok(ttl) => panic!("seed {seed}: a revoked lease was renewed (ttl {ttl})"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(
        answer,
        Some(lease.id),
        "seed {seed}: no answer after healing"
    );
    c.converge().await;
    c.assert_same_keyspace().await;
    c.shutdown().await;
}

#[test]
fn an_isolated_leader_neither_renews_a_lease_nor_reports_its_ttl() {
    for seed in seeds(10) {
        with_repro(seed, "lease_barrier", "an_isolated_leader_neither", || {
            simulate(seed, || isolated_leader_does_not_answer(seed))
        });
    }
}
