//! [`LogGauge`]: a member's Raft log figures as atomics, for the write path to read without
//! the store's writer lock.
//!
//! The leader's admission (`node::log_space`) looks at how full the WAL ring is, and etcd's
//! second limit looks at how far the applied index lags the committed one, on every proposal.
//! Reading the ring from the engine (`Store::log_state`) takes the store's writer lock, which
//! the log's appends and the state machine's applies hold: one lock round per proposal, under
//! contention with the very paths that make progress. The gauge is refreshed instead where the
//! figures change: the ring after every append, truncation and purge of the log
//! ([`crate::EngineLog`], which already holds the engine's answer or asks once per batch, not
//! per proposal), the committed index when openraft saves it (`RaftLogStorage::save_committed`,
//! called by openraft 0.9 on every commit before it hands the entries to the state machine),
//! and the applied index after every apply and snapshot install
//! ([`crate::state_machine::Machine`]).
//!
//! Staleness: a reader may see figures from just before a concurrent change. For the ring
//! that is what reading the engine's state an instant earlier would give, which the admission
//! rules already allow for (they count what they admitted until it is applied). An installed
//! snapshot empties the ring without going through the log: the install refreshes the gauge
//! itself, and every lease tick's look at the ring (`node::log_space`) too. A rule that would
//! refuse on the gauge's figures reads the engine's before it does, so a figure left high
//! refuses nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use etch_engine as engine;

/// A member's log figures (see the module documentation). Indexes are stored plus one, so
/// that 0 means none.
#[derive(Debug, Default)]
pub struct LogGauge {
    used: AtomicU64,
    capacity: AtomicU64,
    /// Engine index of the last entry, plus one.
    last: AtomicU64,
    /// Raft index of the last committed entry, plus one.
    committed: AtomicU64,
    /// Raft index of the last applied entry, plus one.
    applied: AtomicU64,
}

/// The ring's figures as last observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFigures {
    /// Bytes the unpurged entries occupy.
    pub used_bytes: u64,
    /// The most the ring can hold.
    pub capacity_bytes: u64,
    /// Engine index of the last entry (`None`: the log never held one).
    pub last: Option<u64>,
}

fn plus_one(index: Option<u64>) -> u64 {
    index.map_or(0, |i| i.saturating_add(1))
}

fn minus_one(stored: u64) -> Option<u64> {
    stored.checked_sub(1)
}

impl LogGauge {
    /// A gauge showing `state` (the engine's log state) and nothing committed or applied.
    pub fn new(state: &engine::LogState) -> LogGauge {
        let gauge = LogGauge::default();
        gauge.observe(state);
        gauge
    }

    /// Records the engine's log state after a change of the log.
    pub fn observe(&self, state: &engine::LogState) {
        self.used.store(state.used_bytes, Ordering::Release);
        self.capacity.store(state.capacity_bytes, Ordering::Release);
        self.last
            .store(plus_one(state.last.map(|(i, _)| i)), Ordering::Release);
    }

    /// The ring as last observed.
    pub fn ring(&self) -> RingFigures {
        RingFigures {
            used_bytes: self.used.load(Ordering::Acquire),
            capacity_bytes: self.capacity.load(Ordering::Acquire),
            last: minus_one(self.last.load(Ordering::Acquire)),
        }
    }

    /// Records that the log is committed up to Raft index `index` (`None`: nothing). The
    /// committed index only grows on a member; an older value arriving late is ignored.
    pub fn committed(&self, index: Option<u64>) {
        self.committed.fetch_max(plus_one(index), Ordering::AcqRel);
    }

    /// Records that the state machine applied up to Raft index `index` (an apply, or an
    /// installed snapshot, which may move it past the committed index this member knew).
    pub fn applied(&self, index: Option<u64>) {
        self.applied.store(plus_one(index), Ordering::Release);
    }

    /// How many committed entries are not applied yet.
    pub fn apply_lag(&self) -> u64 {
        let committed = self.committed.load(Ordering::Acquire);
        let applied = self.applied.load(Ordering::Acquire);
        committed.saturating_sub(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_committed_minus_applied_and_never_negative() {
        let g = LogGauge::default();
        assert_eq!(g.apply_lag(), 0);
        g.committed(Some(9));
        assert_eq!(g.apply_lag(), 10);
        g.applied(Some(4));
        assert_eq!(g.apply_lag(), 5);
        // A snapshot installed past the commit index this member knew.
        g.applied(Some(20));
        assert_eq!(g.apply_lag(), 0);
        // A late, older commit index does not move it back.
        g.committed(Some(25));
        g.committed(Some(3));
        assert_eq!(g.apply_lag(), 5);
    }

    #[test]
    fn ring_figures_are_the_last_observed() {
        let g = LogGauge::new(&engine::LogState {
            last_purged: None,
            last: None,
            used_bytes: 0,
            capacity_bytes: 100,
        });
        assert_eq!(g.ring().last, None);
        g.observe(&engine::LogState {
            last_purged: Some((3, 1)),
            last: Some((7, 2)),
            used_bytes: 40,
            capacity_bytes: 100,
        });
        assert_eq!(
            g.ring(),
            RingFigures {
                used_bytes: 40,
                capacity_bytes: 100,
                last: Some(7)
            }
        );
    }
}
