//! A member's Raft log lives in its WAL ring, and openraft purges only behind snapshots, whose
//! policy counts entries, not bytes. Three members with a 1 MiB ring and no snapshot policy at
//! all take about five rings' worth of puts: every member must make room by itself (a snapshot
//! and a purge once half its ring is used, `node/log_space.rs`) instead of failing an append
//! with `LogFull`, which openraft treats as fatal (before that module, this test's puts timed out
//! after a few hundred, once both followers had stopped).

use crate::blocking_members;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etch_engine::{Range, RangeOptions};
use etch_replication::local::LocalNetwork;
use etch_replication::types::NodeId;
use etch_replication::{Member, ReadConsistency};

const RING: u64 = 1 << 20;
const VALUE: usize = 4 << 10;
const PUTS: usize = 1_200;

fn start(dir: &Path, id: NodeId, net: &Arc<LocalNetwork>) -> Member {
    let mut config = blocking_members::config(id);
    // Nothing but the ring's fill triggers a snapshot.
    config.raft.snapshot_policy = openraft::SnapshotPolicy::Never;
    // Looked at often enough that a ring half of which holds 128 puts cannot fill between two
    // looks even with fast syncs (each put waits for at least one fdatasync).
    config.lease_tick = Duration::from_millis(20);
    let options = etch_engine::Options::new().wal_capacity(RING);
    blocking_members::start_with(dir, net, config, options)
}

#[test]
fn members_purge_their_logs_before_the_ring_fills() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(LocalNetwork::new());
    let members: Vec<Member> = (1..=3).map(|id| start(dir.path(), id, &net)).collect();
    members[0]
        .initialize([1, 2, 3].into_iter().collect())
        .unwrap();
    let leader = blocking_members::wait_leader(&members);
    let leader = members.iter().find(|m| m.id() == leader).unwrap();

    let value = vec![b'v'; VALUE];
    let mut last = 0;
    for i in 0..PUTS {
        let put = leader
            .put(format!("k/{i:05}"), &value)
            .unwrap_or_else(|e| panic!("put {i} of {PUTS} failed: {e}"));
        last = put.header_revision;
    }
    assert!(
        (PUTS * VALUE) as u64 > 4 * RING,
        "the puts must not fit the ring"
    );

    // Every member holds every key (a linearizable read on each), and they agree.
    for m in &members {
        let count = m
            .range_consistent(
                &Range::prefix("k/"),
                &RangeOptions {
                    count_only: true,
                    ..RangeOptions::default()
                },
                ReadConsistency::Linearizable,
            )
            .unwrap()
            .count;
        assert_eq!(count, PUTS as i64, "member {}", m.id());
    }
    let report = leader.check_hashes(last).unwrap();
    assert!(!report.mismatch(), "{report:?}");
    assert_eq!(
        report.hashes.values().filter(|h| h.is_ok()).count(),
        3,
        "{report:?}"
    );
    for m in &members {
        m.shutdown().unwrap();
    }
}
