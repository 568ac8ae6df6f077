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

/// A member whose Raft log lives in a `ring`-byte WAL with no snapshot policy, so that only the
/// ring's fill makes room in it (`node/log_space.rs`), looking at its ring every `tick` (also
/// used by `log_admission`).
pub(crate) fn start_small_ring(
    dir: &Path,
    id: NodeId,
    net: &Arc<LocalNetwork>,
    ring: u64,
    tick: Duration,
) -> Member {
    let mut config = blocking_members::config(id);
    config.raft.snapshot_policy = openraft::SnapshotPolicy::Never;
    config.lease_tick = tick;
    let options = etch_engine::Options::new().wal_capacity(ring);
    blocking_members::start_with(dir, net, config, options)
}

fn start(dir: &Path, id: NodeId, net: &Arc<LocalNetwork>) -> Member {
    // Looked at often enough that a ring half of which holds 128 puts cannot fill between two
    // looks even with fast syncs (each put waits for at least one fdatasync).
    start_small_ring(dir, id, net, RING, Duration::from_millis(20))
}

#[test]
fn members_purge_their_logs_before_the_ring_fills() {
    let dir = tempfile::tempdir().unwrap();
    let (members, leader) = blocking_members::three(dir.path(), start);
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
