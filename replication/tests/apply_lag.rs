//! etcd's second bound on proposals (`NodeConfig::max_apply_lag`): while a member's committed
//! index is more than that many entries ahead of its applied index, proposals are refused at
//! once with `Error::TooManyRequests` (etcd's `etcdserver: too many requests`), on the leader
//! and through a follower; once applies catch up, writes go through again.
//!
//! The leader's applies are held (`ReplicatedStore::hold_applies`) while writes it already
//! admitted are committed by the followers, so its lag grows past a small bound (20 here,
//! etcd's 5,000 by default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_replication::local::LocalNetwork;
use etch_replication::Error;

use crate::support::async_members::{self, wait_leader};

const BOUND: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_are_refused_while_applies_lag_and_accepted_after() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(LocalNetwork::new());
    let mut members = Vec::new();
    for id in 1..=3 {
        let mut config = crate::blocking_members::config(id);
        config.request_timeout = Duration::from_secs(20);
        config.max_apply_lag = BOUND;
        let member = async_members::open(dir.path(), config, &net).await;
        net.register(id, member.handler());
        members.push(member);
    }
    members[0]
        .initialize([1, 2, 3].into_iter().collect())
        .await
        .unwrap();
    let leader = wait_leader(&members).await;
    let l = members.iter().position(|m| m.id() == leader).unwrap();
    let leader = members[l].clone();
    let follower = members[(l + 1) % 3].clone();
    leader.put("warm", "up").await.unwrap();
    assert_eq!(leader.apply_lag(), 0);

    // Hold the leader's applies; writes admitted before the lag passes the bound are
    // committed by the followers and wait for the leader's apply.
    let hold = leader.hold_applies().await;
    let mut waiting = tokio::task::JoinSet::new();
    for n in 0..(2 * BOUND) {
        let leader = leader.clone();
        waiting.spawn(async move { leader.put(format!("k{n}"), "v").await });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader.apply_lag() <= BOUND {
        assert!(
            Instant::now() < deadline,
            "the leader's apply lag stayed at {} (bound {BOUND})",
            leader.apply_lag()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Refused at once, on the leader and through a follower (whose own applies keep up).
    let started = Instant::now();
    let refused = leader.put("late", "v").await;
    assert!(
        matches!(refused, Err(Error::TooManyRequests)),
        "{refused:?}"
    );
    assert!(follower.apply_lag() <= BOUND);
    let refused = follower.put("late", "v").await;
    assert!(
        matches!(refused, Err(Error::TooManyRequests)),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the refusals waited instead of answering at once"
    );

    // Applies resume: every admitted write completes, the lag drains, writes go through.
    drop(hold);
    // Those admitted before the lag passed the bound complete; later ones were refused. The
    // lag passed the bound, so more than BOUND were admitted.
    let mut done = 0;
    while let Some(put) = waiting.join_next().await {
        match put.unwrap() {
            Ok(_) => done += 1,
            Err(Error::TooManyRequests) => {}
            Err(e) => panic!("an admitted write failed: {e}"),
        }
    }
    assert!(done > BOUND, "only {done} writes admitted");
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader.apply_lag() > 0 {
        assert!(
            Instant::now() < deadline,
            "the leader's applies did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    leader
        .put("late", "1")
        .await
        .expect("a write after catching up");
    follower
        .put("late", "2")
        .await
        .expect("a write through a follower after catching up");
    let kv = follower
        .get("late")
        .await
        .unwrap()
        .expect("late was written");
    assert_eq!(kv.value, b"2");
    // Neither refused write took effect.
    assert_eq!(kv.version, 2);
    for m in &members {
        m.shutdown().await.unwrap();
    }
}
