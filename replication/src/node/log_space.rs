//! Keeps a member's Raft log from filling its WAL ring.
//!
//! A member's log is its store's WAL, a preallocated ring (`Options::wal_capacity`, 64 MiB by
//! default). Entries leave it only when they are purged, and openraft purges only after a
//! snapshot, and then keeps `max_in_snapshot_log_to_keep` entries (1,000 by default) behind it.
//! A snapshot policy counts entries, not bytes: with etcd's `snapshot-count` and large entries
//! (transactions of a hundred 256-byte puts are about 28 KB each) the ring fills long before a
//! snapshot is due, the next append fails with `LogFull`, and openraft stops the member for a
//! storage error. That stopped two followers of a loaded 3-member cluster at about index 9,400
//! (`etch-bench cluster --only catch-up --catch-up-keys 1000000`), after which every write
//! timed out.
//!
//! So every member, on each lease tick, looks at how much of its ring the unpurged entries
//! use. Past half of it, it builds a snapshot at its applied index (unless its last snapshot is
//! already there) and purges up to its last snapshot, the kept entries included. Half leaves the
//! other half for what arrives while the snapshot builds (a 1M-key store's takes about 4 s,
//! docs/benchmarks.md). Purging past openraft's kept entries only means that a follower that
//! far behind gets a snapshot instead of entries, as in etcd once its log is compacted; openraft
//! does not purge entries still being sent to a follower.

use super::Inner;

/// What share of the ring the unpurged entries may use before a snapshot and purge are forced:
/// `used * DENOMINATOR >= capacity * NUMERATOR`.
const NUMERATOR: u64 = 1;
const DENOMINATOR: u64 = 2;

/// One look at the ring (see the module documentation). Errors are left to the next tick: a
/// closed member's log cannot be read, and openraft reports a stopped member elsewhere.
pub(super) async fn make_room(inner: &Inner) {
    let Ok(state) = inner.machine.store().log_state() else {
        return;
    };
    if state.used_bytes.saturating_mul(DENOMINATOR) < state.capacity_bytes.saturating_mul(NUMERATOR)
    {
        return;
    }
    let m = inner.raft.metrics().borrow().clone();
    let applied = m.last_applied.map(|l| l.index);
    let snapshot = m.snapshot.map(|l| l.index);
    if applied > snapshot {
        // Ignored by openraft while a snapshot is being built already.
        let _ = inner.raft.trigger().snapshot().await;
    }
    if let Some(upto) = snapshot {
        if m.purged.map(|l| l.index) < Some(upto) {
            tracing::debug!(
                used = state.used_bytes,
                capacity = state.capacity_bytes,
                upto,
                "the Raft log uses half its ring: purging up to the last snapshot"
            );
            let _ = inner.raft.trigger().purge_log(upto).await;
        }
    }
}
