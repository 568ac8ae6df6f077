//! Leases on a replicated store, and the leader's duties.
//!
//! Only the leader counts leases down (etcd's rule). Every member applies grants and
//! revocations, so every member's store keeps lease clocks, but with background writes off no
//! member's store revokes anything by itself. The leader, every [`super::NodeConfig::lease_tick`]:
//!
//! - on becoming leader, waits one maximum election timeout, confirms its leadership and that
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

use std::sync::atomic::Ordering;
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
    // (term, since, renewed) of the current leadership.
    let mut leading: Option<(u64, Instant, bool)> = None;
    // Since when this member has been a candidate without a leader.
    let mut leaderless: Option<Instant> = None;
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
        let m = inner.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            leading = None;
            leaderless = break_split_votes(&inner, &m, leaderless).await;
            continue;
        }
        leaderless = None;
        let now = Instant::now();
        let (term, since, renewed) = match leading {
            Some(l) if l.0 == m.current_term => l,
            _ => (m.current_term, now, false),
        };
        leading = Some((term, since, renewed));
        let store = inner.machine.store();
        // Compaction does not depend on lease clocks: decided at once.
        if let Some(revision) = store.auto_compaction_due() {
            propose_duty(&inner, &engine::Command::Compact(revision)).await;
        }
        if !renewed {
            let extend = Duration::from_millis(inner.config.raft.election_timeout_max);
            if now < since + extend {
                continue;
            }
            let confirmed = tokio::time::timeout(
                inner.config.request_timeout,
                inner.raft.ensure_linearizable(),
            )
            .await;
            if !matches!(confirmed, Ok(Ok(_))) {
                continue;
            }
            if let Ok(leases) = store.lease_list() {
                for l in leases {
                    let _ = store.lease_keep_alive(l.id);
                }
                leading = Some((term, since, true));
            }
            continue;
        }
        for id in store.expired_leases() {
            propose_duty(&inner, &engine::Command::LeaseRevoke { id }).await;
        }
    }
}
