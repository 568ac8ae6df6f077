//! Lease clocks that jump, on a simulated 3-member cluster (`SteppedClock` under every member's
//! store). The rule (`replication/src/node/lease.rs`): lease time is the leader's own monotonic
//! time; a jump of it larger than a tick plus an election timeout is a gap, handled as a
//! leadership change (renew every lease, then count again); a backward step holds the clock
//! still. So a jump never revokes a live lease, and a lease left alone still expires.

use crate::support;

use std::time::Duration;

use etch_engine::PutOp;
use etch_replication::sim::Faults;
use etch_replication::types::NodeId;
use etch_replication::{ReadConsistency, ReplicatedStore};
use support::{seeds, simulate, with_repro, Cluster};
use tokio::time::Instant;

const MEMBERS: [NodeId; 3] = [1, 2, 3];
const TTL: u64 = 5;

/// Grants a lease of [`TTL`] seconds through `m` and puts `lock` on it.
async fn locked(m: &ReplicatedStore) -> i64 {
    let lease = m.lease_grant(TTL as i64, 0).await.unwrap();
    m.put_with(PutOp {
        key: b"lock".to_vec(),
        value: b"held".to_vec(),
        lease: lease.id,
        ..Default::default()
    })
    .await
    .unwrap();
    lease.id
}

async fn present(m: &ReplicatedStore) -> bool {
    m.get_consistent("lock", ReadConsistency::Serializable)
        .await
        .unwrap()
        .is_some()
}

/// Waits (bounded) until `lock` is gone on `m`; returns when, or `None`.
async fn gone_within(m: &ReplicatedStore, limit: Duration) -> Option<Instant> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if !present(m).await {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[test]
fn a_forward_jump_on_the_leader_does_not_revoke_a_live_lease() {
    for seed in seeds(10) {
        with_repro(seed, "sim_clocks", "a_forward_jump", || {
            simulate(seed, || async move {
                let mut c = Cluster::new(seed, Faults::lossy());
                let clocks = c.boot_with_clocks(&MEMBERS).await;
                let leader = c.wait_leader().await;
                let lease = locked(&leader).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                leader.lease_keep_alive(lease).await.unwrap();
                let kept = Instant::now();
                // The leader's clock leaps a minute (a pause, a VM migration): far past the
                // TTL, yet the lease was kept alive a moment ago in true time.
                clocks[&leader.id()].step(60_000 + (seed % 7) as i64 * 1_000);
                tokio::time::sleep(Duration::from_secs(2)).await;
                assert!(leader.is_leader(), "seed {seed}: leadership moved");
                assert!(
                    present(&leader).await,
                    "seed {seed}: the jump revoked a live lease"
                );
                // Still alive: a keep-alive renews it.
                leader.lease_keep_alive(lease).await.unwrap();
                let renewed = Instant::now();
                assert!(renewed >= kept);
                // Left alone it still expires: not before its TTL in true time, and within
                // TTL + the renewal's election timeout + a few ticks.
                tokio::time::sleep(Duration::from_secs(TTL) - Duration::from_millis(300)).await;
                assert!(present(&leader).await, "seed {seed}: expired early");
                let gone = gone_within(&leader, Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|| panic!("seed {seed}: the lease never expired"));
                assert!(gone >= renewed + Duration::from_secs(TTL));
                c.converge().await;
                for m in c.members.values() {
                    assert!(!present(m).await, "seed {seed}: member {} kept it", m.id());
                }
                c.assert_same_keyspace().await;
                c.shutdown().await;
            })
        });
    }
}

#[test]
fn a_backward_step_never_revokes_and_the_lease_still_expires() {
    for seed in seeds(10) {
        with_repro(seed, "sim_clocks", "a_backward_step", || {
            simulate(seed, || async move {
                let mut c = Cluster::new(seed, Faults::lossy());
                let clocks = c.boot_with_clocks(&MEMBERS).await;
                let leader = c.wait_leader().await;
                let lease = locked(&leader).await;
                leader.lease_keep_alive(lease).await.unwrap();
                let kept = Instant::now();
                // Every member's clock steps back by up to 3 s; the clock then stands still
                // until time catches up, so the lease lives at most that much longer.
                let back = 1_000 + (seed % 3) as i64 * 1_000;
                for clock in clocks.values() {
                    clock.step(-back);
                }
                tokio::time::sleep(Duration::from_secs(TTL) - Duration::from_millis(300)).await;
                assert!(present(&leader).await, "seed {seed}: expired early");
                let limit = Duration::from_millis(back as u64) + Duration::from_secs(5);
                let gone = gone_within(&leader, limit)
                    .await
                    .unwrap_or_else(|| panic!("seed {seed}: the lease never expired"));
                assert!(gone >= kept + Duration::from_secs(TTL));
                c.converge().await;
                c.assert_same_keyspace().await;
                c.shutdown().await;
            })
        });
    }
}

#[test]
fn a_stepped_clock_never_goes_backwards() {
    simulate(1, || async {
        use etch_engine::Clock;
        let clock = etch_replication::node::SteppedClock::new();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = clock.now();
        clock.step(-4_000);
        assert_eq!(clock.now(), before, "held still after a backward step");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(clock.now(), before, "still held: time has not caught up");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(clock.now(), before + Duration::from_secs(1));
        clock.step(30_000);
        assert_eq!(clock.now(), before + Duration::from_secs(31));
    });
}
