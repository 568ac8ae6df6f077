//! Membership and member failures on a simulated cluster: a 1-member cluster grows to 3 and 5
//! and shrinks back, a removed member refuses writes, members crash and restart on their
//! surviving file (log and keys in one store), and a member that fell behind a purged log catches up from a
//! snapshot. After each phase every member converges to the same keyspace.

use crate::support;

use std::time::Duration;

use etch_replication::sim::Faults;
use etch_replication::Error;
use support::{seeds, simulate, with_repro, Cluster};

async fn write_some(c: &Cluster, prefix: &str, n: usize) {
    let members: Vec<_> = c.members.values().cloned().collect();
    for i in 0..n {
        let m = &members[i % members.len()];
        // These puts are idempotent (a retried one that was applied twice leaves the same keys),
        // so an unknown outcome is retried.
        let mut tries = 0;
        loop {
            match m.put(format!("{prefix}/{i}"), format!("v{i}")).await {
                Ok(_) => break,
                Err(Error::Timeout | Error::NoLeader) if tries < 5 => tries += 1,
                Err(e) => panic!("put {prefix}/{i} on {}: {e}", m.id()),
            }
        }
    }
}

async fn grow_and_shrink(seed: u64) {
    let mut c = Cluster::new(seed, Faults::lossy());
    c.boot(&[1]).await;
    write_some(&c, "one", 5).await;
    for (new, voters) in [(2, 2usize), (3, 3), (4, 4), (5, 5)] {
        c.start(new).await;
        let leader = c.wait_leader().await;
        leader.add_learner(new).await.unwrap();
        let (_, learners) = leader.members();
        assert!(learners.contains(&new));
        leader.promote(new).await.unwrap();
        assert_eq!(leader.members().0.len(), voters);
        write_some(&c, &format!("grow{new}"), 4).await;
    }
    c.converge().await;
    c.assert_same_keyspace().await;
    // Shrink back to one member, removing the leader too at some point.
    for _ in 0..4 {
        let leader = c.wait_leader().await;
        let (voters, _) = leader.members();
        // Remove the highest id (which is the leader when it is 5, 4, ...).
        let gone = *voters.iter().next_back().unwrap();
        let removed = c.member(gone);
        leader.remove(gone).await.unwrap();
        let survivor = c
            .members
            .values()
            .find(|m| m.id() != gone)
            .cloned()
            .unwrap();
        // The removed member knows it (it holds the membership without itself) or is cut off
        // from the cluster; it must not accept writes either way.
        c.members.remove(&gone);
        c.net.unregister(gone);
        let refused = removed.put("after/removal", "x").await;
        assert!(
            matches!(refused, Err(Error::NotMember { id }) if id == gone)
                || matches!(refused, Err(Error::NoLeader | Error::Timeout)),
            "removed member {gone} answered {refused:?}"
        );
        removed.shutdown().await.unwrap();
        c.wait_leader().await;
        survivor.put(format!("shrink/{gone}"), "v").await.unwrap();
    }
    assert_eq!(c.members.len(), 1);
    let last = c.wait_leader().await;
    assert_eq!(last.members().0.len(), 1);
    write_some(&c, "alone", 3).await;
    c.assert_same_keyspace().await;
    c.shutdown().await;
}

#[test]
fn one_member_grows_to_five_and_shrinks_back() {
    for seed in seeds(5) {
        with_repro(seed, "sim_membership", "one_member_grows", || {
            simulate(seed, || grow_and_shrink(seed))
        });
    }
}

#[test]
fn a_removed_member_says_it_is_not_a_member() {
    simulate(5, || async {
        let mut c = Cluster::new(5, Faults::none());
        c.boot(&[1, 2, 3]).await;
        let leader = c.wait_leader().await;
        let gone = c.follower();
        leader.remove(gone.id()).await.unwrap();
        // Give the removed member time to learn the new membership if it is sent to it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let refused = gone.put("k", "v").await;
        assert!(
            matches!(refused, Err(Error::NotMember { .. })),
            "removed member answered {refused:?}"
        );
        let read = gone.get("k").await;
        assert!(matches!(read, Err(Error::NotMember { .. })), "{read:?}");
        c.members.remove(&gone.id());
        gone.shutdown().await.unwrap();
        leader.put("k", "v").await.unwrap();
        c.shutdown().await;
    });
}

async fn crash_restart(seed: u64) {
    let mut c = Cluster::new(seed, Faults::lossy());
    c.boot(&[1, 2, 3]).await;
    write_some(&c, "before", 6).await;
    // A follower crashes; the others go on; it restarts on its log and file and catches up.
    let f = c.follower().id();
    c.crash(f).await;
    write_some(&c, "while-follower-down", 6).await;
    c.start(f).await;
    c.converge().await;
    c.assert_same_keyspace().await;
    // The leader crashes; a new one is elected; the old one rejoins as a follower.
    let l = c.wait_leader().await.id();
    c.crash(l).await;
    let new = c.wait_leader().await.id();
    assert_ne!(new, l);
    write_some(&c, "while-leader-down", 6).await;
    c.start(l).await;
    write_some(&c, "after", 6).await;
    c.converge().await;
    c.assert_same_keyspace().await;
    // Every acknowledged write is on every member.
    for m in c.members.values() {
        for prefix in [
            "before",
            "while-follower-down",
            "while-leader-down",
            "after",
        ] {
            let r = m
                .range(etch_engine::Range::prefix(format!("{prefix}/")))
                .await
                .unwrap();
            assert_eq!(r.kvs.len(), 6, "member {} prefix {prefix}", m.id());
        }
    }
    // A crash of every member at once, then all restart.
    for id in [1, 2, 3] {
        c.crash(id).await;
    }
    for id in [1, 2, 3] {
        c.start(id).await;
    }
    c.wait_leader().await;
    write_some(&c, "reborn", 3).await;
    c.converge().await;
    c.assert_same_keyspace().await;
    assert_eq!(
        c.member(1)
            .range(etch_engine::Range::all())
            .await
            .unwrap()
            .kvs
            .len(),
        27
    );
    c.shutdown().await;
}

#[test]
fn members_crash_and_restart_on_their_log_and_file() {
    for seed in seeds(5) {
        with_repro(seed, "sim_membership", "members_crash_and_restart", || {
            simulate(seed, || crash_restart(seed))
        });
    }
}

#[test]
fn a_member_behind_a_purged_log_catches_up_from_a_snapshot() {
    simulate(9, || async {
        let mut c = Cluster::new(9, Faults::none());
        c.snapshot_every = Some(10);
        c.boot(&[1, 2, 3]).await;
        write_some(&c, "early", 30).await;
        let leader = c.wait_leader().await;
        // Wait for a snapshot and a purge on the leader.
        for _ in 0..100 {
            if leader.raft().metrics().borrow().purged.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            leader.raft().metrics().borrow().purged.is_some(),
            "the leader never purged its log"
        );
        // A new member needs entries the leader no longer has: it gets a snapshot.
        c.start(4).await;
        leader.add_learner(4).await.unwrap();
        leader.promote(4).await.unwrap();
        // The newcomer serves once it has installed the snapshot and learned the membership.
        let newcomer = c.member(4);
        let started = tokio::time::Instant::now();
        while !newcomer.members().0.contains(&4) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "member 4 never caught up: {:?}",
                newcomer.raft().metrics().borrow()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(newcomer.raft().metrics().borrow().snapshot.is_some());
        write_some(&c, "late", 8).await;
        c.converge().await;
        c.assert_same_keyspace().await;
        assert_eq!(
            newcomer
                .range(etch_engine::Range::prefix("early/"))
                .await
                .unwrap()
                .kvs
                .len(),
            30
        );
        // The installed member restarts on its file (the snapshot was installed in place).
        drop(newcomer);
        c.crash(4).await;
        c.start(4).await;
        write_some(&c, "restarted", 4).await;
        c.converge().await;
        c.assert_same_keyspace().await;
        c.shutdown().await;
    });
}

/// Seeds the simulation found bugs with, kept as regression tests: 11 and 32 (a member that
/// knew no membership yet answered `NotMember` instead of waiting), 38 (three lost hash requests
/// in a row), 61 (two members with election timeouts within a message delay split every vote
/// forever after the leader crashed).
#[test]
fn regression_seeds() {
    simulate(11, || grow_and_shrink(11));
    for seed in [32, 38, 61] {
        simulate(seed, || crash_restart(seed));
    }
}
