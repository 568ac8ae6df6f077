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
//! Three rules keep every member's appends inside its ring:
//!
//! 1. **Make room** ([`make_room`]). Once the unpurged entries use half of the ring, the member
//!    builds a snapshot at its applied index (unless its last snapshot is already there) and
//!    purges up to its last snapshot, the kept entries included. Every member looks on each
//!    lease tick, and also at once when an admission or an append finds the ring past half
//!    (one look at a time per member). Half leaves the other half for what arrives while the
//!    snapshot builds (a 1M-key store's takes about 4 s, docs/benchmarks.md). Purging past
//!    openraft's kept entries only means that a follower that far behind gets a snapshot
//!    instead of entries, as in etcd once its log is compacted; openraft does not purge
//!    entries still being sent to a follower.
//! 2. **Admission on the leader** ([`LogSpace::admit`]). A burst can fill the free half long
//!    before a snapshot is built (a tick is 500 ms, a snapshot of a large store seconds). So
//!    the leader proposes an entry only if its unpurged entries, plus every entry it admitted
//!    that is not yet committed and applied, plus this one, stay within three quarters of its
//!    ring; otherwise the write fails at once with [`Error::TooManyRequests`] (etcd's
//!    `etcdserver: too many requests`, which etcd answers when its applied index lags its
//!    committed index by more than 5,000), before anything is proposed, so the client may
//!    retry after a back-off. Admitted entries are counted from admission until they are
//!    applied on the leader, when they are in the unpurged bytes (counted twice meanwhile,
//!    which only errs on the safe side). The leader's own ring therefore never holds more than
//!    three quarters of client entries, the last quarter being for entries nobody admits
//!    (leader duties, membership, the blank entry of a new term) and for the ring's wrap-around
//!    waste.
//! 3. **A follower takes only what fits** ([`LogSpace::fitting`]). The leader's bound does not
//!    bound a follower: a follower purges only behind its own snapshot, which it may build
//!    later than the leader, or may have stopped applying for a while. So a follower appends a
//!    leader's entries only while its unpurged entries stay within seven eighths of its ring;
//!    it appends the prefix that fits and answers that it matched only up to there (openraft's
//!    `PartialSuccess`), which the leader takes as progress and sends the rest again later.
//!    Nothing fatal happens on either side: the follower commits and applies what it holds
//!    (a follower's commit index is the leader's, capped at what it accepted), snapshots,
//!    purges, and takes more. Entries it already holds cost nothing (only entries past its
//!    last index are counted), so a follower full of its old leader's entries can still
//!    confirm them to a new one. In a 3-member cluster every entry a follower holds is on a
//!    majority (the leader and that follower), so it is committed and that follower can always
//!    apply it and make room.
//! 4. **Applies must keep up** ([`apply_lag_allows`]): etcd's second limit. A member refuses a
//!    proposal with [`Error::TooManyRequests`] while its committed index is more than
//!    [`crate::NodeConfig::max_apply_lag`] (5,000) entries ahead of its applied index: the
//!    leader for every proposal it admits, the member a client asked for its own. The
//!    committed index is the one openraft saves (`save_committed`, on every commit, before
//!    the entries go to the state machine); the applied one the state machine's.
//!
//! The figures these rules read on the write path (the ring's used bytes and last index, the
//! committed and applied indexes) come from the member's [`crate::log_gauge::LogGauge`],
//! refreshed where they change, not from the store (whose `log_state` takes its writer lock,
//! once per proposal before).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::Inner;
use crate::error::Error;
use crate::log_gauge::RingFigures;
use crate::state_machine::Machine;
use crate::types::{Entry, Proposal, Raft};

/// What share of the ring the unpurged entries may use before a snapshot and purge are forced:
/// `used * DENOMINATOR >= capacity * NUMERATOR`.
const NUMERATOR: u64 = 1;
const DENOMINATOR: u64 = 2;

/// What share of the ring the leader's unpurged and admitted entries may use (rule 2).
const ADMIT_NUMERATOR: u64 = 3;
const ADMIT_DENOMINATOR: u64 = 4;

/// What share of the ring a follower's unpurged entries may use after an append (rule 3).
const ACCEPT_NUMERATOR: u64 = 7;
const ACCEPT_DENOMINATOR: u64 = 8;

/// Bytes a log entry takes in the ring beyond its proposal's encoding: the WAL frame's header
/// (32 bytes) and padding (up to 7), and the entry's log id and variant tags around the
/// proposal (under 25 bytes). An upper bound, so that the checks err on the safe side.
const ENTRY_OVERHEAD: u64 = 64;

/// A member's ring bookkeeping between its write path and its append path.
#[derive(Default)]
pub(super) struct LogSpace {
    /// Bytes of the entries admitted on this member (as the leader) and not yet applied here.
    admitted: Arc<AtomicU64>,
    /// Whether a [`make_room`] runs now (started from the write or append path).
    making_room: Arc<AtomicBool>,
}

/// An admitted entry's share of [`LogSpace`]'s count; given back when dropped (the proposal
/// was applied, refused, or its fate left to the log).
pub(super) struct Admitted {
    admitted: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admitted.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The bytes `proposal` takes in the ring (an upper bound).
fn proposal_bytes(proposal: &Proposal) -> u64 {
    crate::codec::encoded_len(proposal) as u64 + ENTRY_OVERHEAD
}

/// The bytes `entry` takes in the ring (an upper bound).
fn entry_bytes(entry: &Entry) -> u64 {
    crate::codec::encoded_len(entry) as u64 + ENTRY_OVERHEAD
}

/// Whether `used` bytes of a `capacity`-byte ring are past `numerator / denominator` of it.
fn past(used: u64, capacity: u64, numerator: u64, denominator: u64) -> bool {
    used.saturating_mul(denominator) > capacity.saturating_mul(numerator)
}

impl LogSpace {
    /// Rule 2 of the module documentation: counts `proposal` as admitted if the leader's ring
    /// can take it, else [`Error::TooManyRequests`]. Starts a [`make_room`] when the ring is
    /// past half. Keep the returned share until the proposal is applied on this member (or
    /// has failed). Also refuses while this member's applies lag its commits by more than
    /// [`crate::NodeConfig::max_apply_lag`] entries (rule 4). The figures are the log's gauge
    /// (`crate::log_gauge`), read without the store's writer lock.
    pub(super) fn admit(&self, inner: &Inner, proposal: &Proposal) -> Result<Admitted, Error> {
        apply_lag_allows(inner)?;
        let bytes = proposal_bytes(proposal);
        // The ring as last changed, without the store's writer lock (crate::log_gauge).
        let mut ring = inner.gauge.ring();
        self.room_if_needed(inner, &ring);
        // Counted first, checked after: concurrent admissions each see the others' bytes, so
        // together they never pass the bound (one may be refused that alone would fit).
        let share = self.count(bytes);
        let pending = self.admitted.load(Ordering::Acquire);
        let over = |ring: &RingFigures| {
            past(
                ring.used_bytes.saturating_add(pending),
                ring.capacity_bytes,
                ADMIT_NUMERATOR,
                ADMIT_DENOMINATOR,
            )
        };
        // Before refusing, the engine's own figures (the slow path only): the gauge may
        // still show entries a purge or a snapshot install removed.
        if over(&ring) {
            ring = fresh_ring(inner).unwrap_or(ring);
        }
        if over(&ring) {
            tracing::debug!(
                used = ring.used_bytes,
                admitted = pending,
                capacity = ring.capacity_bytes,
                "write refused: the Raft log's ring has no safe room for it (too many requests)"
            );
            return Err(Error::TooManyRequests);
        }
        Ok(share)
    }

    fn count(&self, bytes: u64) -> Admitted {
        self.admitted.fetch_add(bytes, Ordering::AcqRel);
        Admitted {
            admitted: Arc::clone(&self.admitted),
            bytes,
        }
    }

    /// Rule 3 of the module documentation: how many of a leader's `entries` (the first of
    /// which follows, or overlaps, this member's log) this member appends now. Entries at or
    /// below this member's last index cost nothing (kept as they are or replacing a conflicting
    /// tail). Starts a [`make_room`] when the ring is past half. The figures are the log's
    /// gauge, as the last change of the log left them.
    pub(super) fn fitting(&self, inner: &Inner, entries: &[Entry]) -> usize {
        let state = inner.gauge.ring();
        self.room_if_needed(inner, &state);
        let fit = fitting_in(&state, entries);
        if fit == entries.len() {
            return fit;
        }
        // Before cutting, the engine's own figures (the slow path only): the gauge may still
        // show entries a purge or a snapshot install removed, and a follower that never
        // appends would never refresh it.
        match fresh_ring(inner) {
            Some(fresh) => fitting_in(&fresh, entries),
            None => fit,
        }
    }

    /// Starts a [`make_room`] on its own task when the ring is past half and none runs.
    fn room_if_needed(&self, inner: &Inner, state: &RingFigures) {
        if !past(
            state.used_bytes,
            state.capacity_bytes,
            NUMERATOR,
            DENOMINATOR,
        ) {
            return;
        }
        if self.making_room.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(Arc::clone(&self.making_room));
        let machine = Arc::clone(&inner.machine);
        let raft = inner.raft.clone();
        tokio::spawn(async move {
            make_room(&machine, &raft).await;
            drop(running);
        });
    }

    /// The lease tick's look ([`make_room`]), unless one runs already.
    pub(super) async fn tick(&self, inner: &Inner) {
        if self.making_room.swap(true, Ordering::AcqRel) {
            return;
        }
        let _running = Running(Arc::clone(&self.making_room));
        make_room(&inner.machine, &inner.raft).await;
    }
}

/// How many of `entries` fit a ring in `state` (rule 3; entries at or below its last index
/// cost nothing).
fn fitting_in(state: &RingFigures, entries: &[Entry]) -> usize {
    // Engine index = Raft index + 1 (crate::engine_log).
    let last = state.last.map(|index| index.saturating_sub(1));
    let mut used = state.used_bytes;
    for (n, entry) in entries.iter().enumerate() {
        if last.is_some_and(|l| entry.log_id.index <= l) {
            continue;
        }
        used = used.saturating_add(entry_bytes(entry));
        if past(
            used,
            state.capacity_bytes,
            ACCEPT_NUMERATOR,
            ACCEPT_DENOMINATOR,
        ) {
            return n;
        }
    }
    entries.len()
}

/// The ring as the engine reports it now (its writer lock), shown on the gauge too; `None`
/// for a store that cannot report it (closed).
fn fresh_ring(inner: &Inner) -> Option<RingFigures> {
    let state = inner.machine.store().log_state().ok()?;
    inner.gauge.observe(&state);
    Some(inner.gauge.ring())
}

/// Rule 4 of the module documentation: [`Error::TooManyRequests`] while more than
/// [`crate::NodeConfig::max_apply_lag`] committed entries wait to be applied on this member.
pub(super) fn apply_lag_allows(inner: &Inner) -> Result<(), Error> {
    let lag = inner.gauge.apply_lag();
    if lag > inner.config.max_apply_lag {
        tracing::debug!(
            lag,
            bound = inner.config.max_apply_lag,
            "proposal refused: applies lag commits (too many requests)"
        );
        return Err(Error::TooManyRequests);
    }
    Ok(())
}

/// Clears [`LogSpace::making_room`] when a look ends, also when its task is aborted.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One look at the ring (rule 1 of the module documentation). Errors are left to the next
/// look: a closed member's log cannot be read, and openraft reports a stopped member
/// elsewhere.
async fn make_room(machine: &Machine, raft: &Raft) {
    let Ok(state) = machine.store().log_state() else {
        return;
    };
    // Each look also corrects the write path's figures (crate::log_gauge).
    machine.gauge().observe(&state);
    if state.used_bytes.saturating_mul(DENOMINATOR) < state.capacity_bytes.saturating_mul(NUMERATOR)
    {
        return;
    }
    let m = raft.metrics().borrow().clone();
    let applied = m.last_applied.map(|l| l.index);
    let snapshot = m.snapshot.map(|l| l.index);
    if applied > snapshot {
        // Ignored by openraft while a snapshot is being built already.
        let _ = raft.trigger().snapshot().await;
    }
    if let Some(upto) = snapshot {
        if m.purged.map(|l| l.index) < Some(upto) {
            tracing::debug!(
                used = state.used_bytes,
                capacity = state.capacity_bytes,
                upto,
                "the Raft log uses half its ring: purging up to the last snapshot"
            );
            let _ = raft.trigger().purge_log(upto).await;
        }
    }
}
