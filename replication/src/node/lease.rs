//! Leases on a replicated store, and the leader's duties.
//!
//! Only the leader counts leases down (etcd's rule). Every member applies grants and
//! revocations, so every member's store keeps lease clocks, but with background writes off no
//! member's store revokes anything by itself. The leader, every [`super::NodeConfig::lease_tick`]:
//!
//! - on becoming leader, waits its lease grace ([`super::NodeConfig::lease_grace`]: etcd's
//!   election timeout), confirms its leadership and that
//!   it has applied everything earlier leaders committed (`ensure_linearizable`), then renews
//!   every lease (`Store::lease_keep_alive`). Each lease thus expires no earlier than its full
//!   TTL plus an election timeout after the leadership change: etcd's `Promote`, which grants
//!   every lease its TTL plus an election timeout, so a failover never expires a lease early;
//!   like etcd without lease checkpoints, a lease can outlive its last keep-alive by up to that
//!   much per leader change. Until the renewal is done it revokes nothing;
//! - proposes a revocation for every lease its store reports expired (`Store::expired_leases`);
//! - proposes the compaction its store says is due (`Store::auto_compaction_due`; from its
//!   first tick as leader, not gated by the lease renewal), so auto-compaction is a replicated
//!   decision taken at one revision on every member.
//!
//! Keep-alives and TTL queries go to the leader, whose clock is the one that counts.
//!
//! # Lease time, and clocks that jump
//! Lease time is the leader's own monotonic time: the store's `Options::clock`, which for a
//! member is [`TokioClock`] (tokio's, i.e. the OS monotonic clock; etcd too measures leases on
//! Go's monotonic clock). A wall-clock step (NTP, an operator's `date`) therefore never moves
//! it. What can still happen:
//!
//! - **Forward: a gap.** The clock advances more than a tick plus the lease grace
//!   beyond the leader's own time between two ticks, or during one: the process or its VM was
//!   paused, or a clock source jumped. Clients could not reach the leader meanwhile to keep
//!   their leases alive, so revoking what "expired" in the gap would punish them for the
//!   leader's stall. The leader treats a gap as a leadership change: it revokes nothing, waits
//!   an election timeout, confirms it still leads, and renews every lease (TTL counted from
//!   then), exactly as on becoming leader. A smaller advance is ordinary time: the leader has
//!   seen that much pass and counts it.
//! - **Backward.** A monotonic clock never goes back; the engine's `Clock` contract says so, and
//!   [`SteppedClock`] (the simulations' jumping clock) keeps it by standing still until time
//!   catches up. A lease then lives longer by at most the step, never shorter.
//!
//! So a lease is revoked only after the leader has seen its TTL pass, in its own time, since the
//! last keep-alive or renewal. Like any lease, this is not a fence against a client that is
//! itself paused (see docs/design.md).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;

use engine::{CommandResponse, LeaseGrant, LeaseInfo, Revision};
use etch_engine as engine;
use openraft::ServerState;
use rand::RngCore;
use tokio::time::Instant;

use super::{Inner, ReplicatedStore};
use crate::error::{Error, Result};
use crate::forward::{ClientReply, ClientRequest};
use crate::types::Proposal;

/// The engine clock of a replicated member: tokio's clock, so a simulation with paused time
/// moves lease deadlines with simulated time. Give it to the store with `Options::clock`.
#[derive(Debug)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    /// A clock starting now (call inside the runtime).
    pub fn new() -> TokioClock {
        TokioClock {
            origin: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock::new()
    }
}

impl engine::Clock for TokioClock {
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

/// A lease clock that can be stepped, for simulations of clocks that jump: tokio's time (as
/// [`TokioClock`]) plus an offset that [`SteppedClock::step`] moves forward or backward.
///
/// It keeps the engine's `Clock` contract, "never goes backwards", whatever the steps: a reading
/// is never below an earlier one, so after a backward step the clock stands still until the
/// underlying time has caught up. A forward step is time that passed at once, as a process or
/// a virtual machine that was paused sees it; see [`leader_duties`] for what the leader makes
/// of one.
#[derive(Debug)]
pub struct SteppedClock {
    origin: Instant,
    /// Signed offset added to tokio's elapsed time, in milliseconds.
    offset_ms: AtomicI64,
    /// The highest reading handed out, in milliseconds (readings never go below it).
    high_ms: AtomicU64,
}

impl SteppedClock {
    /// A clock starting now with no offset (call inside the runtime).
    pub fn new() -> SteppedClock {
        SteppedClock {
            origin: Instant::now(),
            offset_ms: AtomicI64::new(0),
            high_ms: AtomicU64::new(0),
        }
    }

    /// Moves the clock by `by_ms` milliseconds (negative: backward).
    pub fn step(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Default for SteppedClock {
    fn default() -> SteppedClock {
        SteppedClock::new()
    }
}

impl engine::Clock for SteppedClock {
    fn now(&self) -> Duration {
        let elapsed = Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis();
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX);
        let raw = elapsed.saturating_add(self.offset_ms.load(Ordering::SeqCst));
        let raw = u64::try_from(raw).unwrap_or(0);
        let reading = self.high_ms.fetch_max(raw, Ordering::SeqCst).max(raw);
        Duration::from_millis(reading)
    }
}

impl ReplicatedStore {
    /// Grants a lease of `ttl` seconds; `id` 0 picks a fresh one (on this member, before the
    /// grant enters the log, so every member grants the same id).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant> {
        if id < 0 {
            return Err(Error::Store(engine::Error::InvalidOption(format!(
                "lease id {id} is negative"
            ))));
        }
        let id = if id != 0 {
            id
        } else {
            let store = self.inner.machine.store();
            let mut rng = crate::runtime::ThreadRng;
            loop {
                let candidate = (rng.next_u64() >> 1) as i64;
                if candidate == 0 {
                    continue;
                }
                match store.lease_time_to_live(candidate, false) {
                    Err(engine::Error::LeaseNotFound { .. }) => break candidate,
                    Ok(_) => continue,
                    Err(e) => return Err(Error::Store(e)),
                }
            }
        };
        match self
            .propose(engine::Command::LeaseGrant { id, ttl })
            .await?
        {
            CommandResponse::LeaseGrant(g) => Ok(g),
            other => Err(Error::Store(engine::Error::Corrupt(format!(
                "internal: lease grant produced {other:?}"
            )))),
        }
    }

    /// Revokes a lease: its keys are deleted at one revision (returned).
    pub async fn lease_revoke(&self, id: i64) -> Result<Revision> {
        match self.propose(engine::Command::LeaseRevoke { id }).await? {
            CommandResponse::LeaseRevoke(r) => Ok(r),
            other => Err(Error::Store(engine::Error::Corrupt(format!(
                "internal: lease revoke produced {other:?}"
            )))),
        }
    }

    /// Renews a lease for its full TTL, on the leader; returns the TTL.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        match self
            .ask_leader(ClientRequest::LeaseKeepAlive { id })
            .await?
        {
            ClientReply::KeptAlive { ttl } => Ok(ttl),
            other => Err(Error::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    /// A lease's remaining TTL (by the leader's clock), granted TTL and optionally its keys.
    pub async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        let request = ClientRequest::LeaseTimeToLive {
            id,
            keys: with_keys,
        };
        match self.ask_leader(request).await? {
            ClientReply::LeaseInfo {
                ttl,
                granted_ttl,
                keys,
            } => Ok(LeaseInfo {
                id,
                ttl,
                granted_ttl,
                keys,
            }),
            other => Err(Error::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    /// Every lease: (id, granted TTL) (linearizable).
    pub async fn lease_list(&self) -> Result<Vec<LeaseGrant>> {
        self.read_barrier().await?;
        Ok(self.inner.machine.store().lease_list()?)
    }
}

/// Proposes `command` as the leader, for nobody in particular (expiry, compaction); a refusal
/// when it is applied (the lease is gone already) is expected and ignored.
async fn propose_duty(inner: &Inner, command: &engine::Command) {
    let proposal = Proposal {
        origin: inner.id,
        id: 0,
        command: command.into(),
    };
    let _ = tokio::time::timeout(inner.config.request_timeout, inner.propose_local(proposal)).await;
}

/// openraft 0.9 draws a member's election timeout once, when the member starts, not per
/// election. Two members whose timeouts lie within a message delay of each other then start
/// every election at the same moment, each votes for itself, and no one wins, forever (found by
/// `sim_membership` seed 61). A member that has been a candidate for two maximum election
/// timeouts therefore waits a random fraction of an election timeout (from the runtime's
/// seedable generator) and starts an election itself, which moves its timer off the other's.
/// Returns the updated "candidate since".
async fn break_split_votes(
    inner: &Inner,
    m: &openraft::RaftMetrics<crate::types::NodeId, openraft::BasicNode>,
    since: Option<Instant>,
) -> Option<Instant> {
    if m.state != ServerState::Candidate {
        return None;
    }
    let now = Instant::now();
    let since = since.unwrap_or(now);
    let patience = Duration::from_millis(2 * inner.config.raft.election_timeout_max);
    if now < since + patience {
        return Some(since);
    }
    let jitter =
        crate::runtime::ThreadRng.next_u64() % inner.config.raft.election_timeout_min.max(1);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    if inner.raft.metrics().borrow().state == ServerState::Candidate {
        let _ = inner.raft.trigger().elect().await;
    }
    Some(Instant::now())
}

/// The leader's periodic work (see the module documentation). Runs for the member's life.
pub(super) async fn leader_duties(member: Weak<Inner>) {
    let mut state = DutyState::default();
    loop {
        let Some(tick) = member.upgrade().map(|i| i.config.lease_tick) else {
            return;
        };
        tokio::time::sleep(tick).await;
        let Some(inner) = member.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let clock = inner.machine.store().lease_clock();
        let started = Instant::now();
        let reading = clock.now();
        let jumped_between = state
            .last_reading
            .is_some_and(|last| time_gap(&inner, reading.saturating_sub(last), Duration::ZERO));
        let gap = std::mem::take(&mut state.gap_in_last_tick) || jumped_between;
        // Every member's own duty, leader or not.
        inner.log_space.tick(&inner).await;
        duty_tick(&inner, &mut state, gap).await;
        // A jump while the tick waited (on a proposal, on leadership confirmation) moved the
        // clock further than the tick's own time: handled at the next tick.
        let end = clock.now();
        state.gap_in_last_tick = time_gap(&inner, end.saturating_sub(reading), started.elapsed());
        state.last_reading = Some(end);
    }
}

/// What the leader's duties remember between ticks.
#[derive(Default)]
struct DutyState {
    /// (term, since, renewed) of the current leadership, or of the renewal a gap started.
    leading: Option<(u64, Instant, bool)>,
    /// Since when this member has been a candidate without a leader.
    leaderless: Option<Instant>,
    /// The lease clock's reading at the end of the previous tick (see [`time_gap`]).
    last_reading: Option<Duration>,
    /// Whether the lease clock jumped during the previous tick's own work.
    gap_in_last_tick: bool,
}

/// One tick of [`leader_duties`]; `gap` says whether the lease clock jumped since the last.
async fn duty_tick(inner: &Inner, state: &mut DutyState, gap: bool) {
    let m = inner.raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        state.leading = None;
        state.leaderless = break_split_votes(inner, &m, state.leaderless).await;
        return;
    }
    state.leaderless = None;
    let now = Instant::now();
    let (term, since, renewed) = match state.leading {
        // A gap is handled as a new leadership: every lease is renewed before any is revoked.
        Some(l) if l.0 == m.current_term && !gap => l,
        _ => (m.current_term, now, false),
    };
    state.leading = Some((term, since, renewed));
    let store = inner.machine.store();
    // Compaction does not depend on lease clocks: decided at once.
    if let Some(revision) = store.auto_compaction_due() {
        propose_duty(inner, &engine::Command::Compact(revision)).await;
    }
    if !renewed {
        let extend = inner.config.lease_grace();
        if now < since + extend {
            return;
        }
        let confirmed = tokio::time::timeout(
            inner.config.request_timeout,
            inner.raft.ensure_linearizable(),
        )
        .await;
        if !matches!(confirmed, Ok(Ok(_))) {
            return;
        }
        if let Ok(leases) = store.lease_list() {
            for l in leases {
                let _ = store.lease_keep_alive(l.id);
            }
            state.leading = Some((term, since, true));
        }
        return;
    }
    for id in store.expired_leases() {
        propose_duty(inner, &engine::Command::LeaseRevoke { id }).await;
    }
}

/// Whether the lease clock advanced by `advance` while the leader's own time moved by
/// `elapsed` is a gap: more than `elapsed` plus one lease tick plus the lease grace.
/// That is a forward jump of the clock or a pause of the process (the leader could not tick,
/// and clients could not reach it to keep their leases alive). etcd measures lease time on the
/// monotonic clock, so a wall-clock step never moves it; a gap is what remains, and the leader
/// treats it as a leadership change (see the module documentation).
fn time_gap(inner: &Inner, advance: Duration, elapsed: Duration) -> bool {
    let allowed = elapsed + inner.config.lease_tick + inner.config.lease_grace();
    advance > allowed
}
