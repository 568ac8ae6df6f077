//! The write and read paths of a member: proposing (locally on the leader, forwarded from a
//! follower), waiting for this member's own apply, and the ReadIndex barrier.

use std::sync::atomic::Ordering;
use std::time::Duration;

use etch_engine as engine;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::time::Instant;

use super::{Inner, ReplicatedStore};
use crate::error::{Error, Result};
use crate::forward::{ClientReply, ClientRequest, ForwardError};
use crate::network::{RaftReply, RaftRequest, TransportError};
use crate::types::{NodeId, Proposal};

/// How long to wait before asking again when no leader is known.
const NO_LEADER_BACKOFF: Duration = Duration::from_millis(50);

/// How many times a forwarded proposal is sent when the message or its answer is lost.
const LOST_RETRIES: usize = 4;

/// What became of one attempt to get a proposal into the leader's log.
pub(super) enum Submitted {
    /// Committed and applied on the leader.
    Applied,
    /// Maybe in the log, maybe not: only this member's apply will tell.
    Unknown,
    /// Not acted on: this member (or the one asked) is not the leader; here is the one it
    /// knows of.
    NotLeader(Option<NodeId>),
    /// Refused for good.
    Failed(Error),
}

impl Inner {
    /// Proposes on this member's Raft (it must be the leader), if its log has room for the
    /// entry (`log_space`'s admission: else [`Error::TooManyRequests`], nothing proposed).
    pub(super) async fn propose_local(&self, proposal: Proposal) -> Submitted {
        // A member that does not lead leaves the answer to openraft (ForwardToLeader): its own
        // ring says nothing about the leader's.
        let _admitted = if self.raft.metrics().borrow().state == ServerState::Leader {
            match self.log_space.admit(self, &proposal) {
                Ok(share) => Some(share),
                Err(e) => return Submitted::Failed(e),
            }
        } else {
            None
        };
        match self.raft.client_write(proposal).await {
            Ok(_) => Submitted::Applied,
            // Refused before it was appended, or truncated from this log as a conflict: in
            // neither case can it be committed, so it may be proposed again.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Submitted::NotLeader(f.leader_id)
            }
            Err(RaftError::APIError(e)) => Submitted::Failed(Error::Raft(e.to_string())),
            // The responder was dropped: either Raft stopped, or the entry's fate is open (a
            // leadership change without truncation).
            Err(RaftError::Fatal(_)) => {
                if self.raft.metrics().borrow().running_state.is_err()
                    || self.closed.load(Ordering::Acquire)
                {
                    Submitted::Failed(Error::Shutdown)
                } else {
                    Submitted::Unknown
                }
            }
        }
    }

    /// Sends `request` to member `to` and maps transport failures: `Ok(None)` when it was not
    /// delivered (safe to retry), `Err(())` when it may have been delivered.
    pub(super) async fn ask(
        &self,
        to: NodeId,
        request: ClientRequest,
    ) -> std::result::Result<Option<std::result::Result<ClientReply, ForwardError>>, ()> {
        let sent = self
            .transport
            .send(
                self.id,
                to,
                RaftRequest::Client {
                    from: self.id,
                    request,
                },
            )
            .await;
        match sent {
            Ok(RaftReply::Client(reply)) => Ok(Some(reply)),
            Ok(_) => Err(()),
            Err(TransportError::Unreachable { .. }) => Ok(None),
            Err(TransportError::Lost { .. } | TransportError::MismatchedReply { .. }) => Err(()),
        }
    }

    pub(super) fn leader_hint(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }
}

impl ReplicatedStore {
    /// Admits, proposes and waits for `command` to be applied on this member; returns this
    /// member's response.
    pub(super) async fn propose(
        &self,
        command: engine::Command,
    ) -> Result<engine::CommandResponse> {
        self.propose_admitted(command, false).await
    }

    /// [`ReplicatedStore::propose`], admitted without the operation-count limit when
    /// `unbounded` (an optimistic write's guarded transaction).
    ///
    /// Admission is this member's store's (`Store::admit`): the static checks a single store
    /// makes before committing, with the same errors, so a command it would refuse never costs
    /// a log entry; and the space quota, which is the proposer's decision as in etcd: applying
    /// never checks it, because members' files differ in size and every member must apply
    /// every committed entry alike.
    pub(super) async fn propose_admitted(
        &self,
        command: engine::Command,
        unbounded: bool,
    ) -> Result<engine::CommandResponse> {
        self.check_open()?;
        self.check_member().await?;
        let store = self.inner.machine.store();
        if unbounded {
            store.admit_unbounded(&command)?;
        } else {
            store.admit(&command)?;
        }
        let inner = &self.inner;
        // etcd's bound on the applies this member owes (log_space, rule 4), before anything is
        // proposed; the leader checks its own when it admits the proposal.
        super::log_space::apply_lag_allows(inner)?;
        let id = inner.next_proposal.fetch_add(1, Ordering::Relaxed);
        let applied = inner.machine.wait_for(id);
        let proposal = Proposal {
            origin: inner.id,
            id,
            command: (&command).into(),
        };
        let deadline = Instant::now() + inner.config.request_timeout;
        let outcome = async {
            self.submit(proposal, deadline).await?;
            match tokio::time::timeout_at(deadline, applied).await {
                Ok(Ok(result)) => result.map_err(Error::Store),
                Ok(Err(_)) => Err(Error::Shutdown),
                Err(_) => Err(Error::Timeout),
            }
        }
        .await;
        if outcome.is_err() {
            inner.machine.forget(id);
        }
        outcome
    }

    /// Gets `proposal` into the leader's log, retrying only where the previous try certainly
    /// was not acted on. `Ok` means it was applied on the leader or its fate is unknown; the
    /// caller then waits for this member's apply.
    async fn submit(&self, proposal: Proposal, deadline: Instant) -> Result<()> {
        let inner = &self.inner;
        let mut target = inner.leader_hint();
        let mut attempt = 0u32;
        loop {
            let outcome = match target {
                None => Submitted::NotLeader(None),
                Some(t) if t == inner.id => inner.propose_local(proposal.clone()).await,
                Some(t) => {
                    attempt += 1;
                    let request = ClientRequest::Propose {
                        proposal: proposal.clone(),
                        attempt,
                    };
                    // A lost message is sent again with the same attempt number: the receiver
                    // handles each attempt once and answers a repeat with the first answer.
                    let mut asked = Err(());
                    // Whether a try may have been delivered without its answer arriving.
                    let mut lost = false;
                    for _ in 0..LOST_RETRIES {
                        asked =
                            match tokio::time::timeout_at(deadline, inner.ask(t, request.clone()))
                                .await
                            {
                                Err(_) => return Err(Error::Timeout),
                                Ok(a) => a,
                            };
                        if asked.is_ok() {
                            break;
                        }
                        lost = true;
                    }
                    match asked {
                        // The receiver remembers the attempts it handled only while it runs:
                        // one that restarted (a crash, a power cut) after acting on a lost try
                        // answers the repeat afresh, so a refusal then proves nothing (a
                        // duplicate found by tests/sim_power.rs, seed 8).
                        Ok(Some(Err(
                            ForwardError::NotLeader { .. }
                            | ForwardError::Shutdown
                            | ForwardError::TooManyRequests,
                        ))) if lost => Submitted::Unknown,
                        Err(()) => Submitted::Unknown,
                        // Likewise an unreachable leader after a lost try: the lost try may
                        // have been proposed and then committed by the next leader, so
                        // proposing it anew could apply it twice. Seen in
                        // tests/cluster_faults.rs (5 members): the leader was removed from the
                        // membership under load, the transport closed its connection (the
                        // answer lost) and forgot its address (the resend unreachable), and
                        // one put was applied at two revisions. Also a leader killed after
                        // proposing and not up again for the resend.
                        Ok(None) if lost => Submitted::Unknown,
                        Ok(None) => Submitted::NotLeader(None),
                        Ok(Some(Ok(_))) => Submitted::Applied,
                        Ok(Some(Err(ForwardError::NotLeader { leader }))) => {
                            // A member pointing at itself is stale; ask again after a pause.
                            Submitted::NotLeader(leader.filter(|&l| l != t))
                        }
                        Ok(Some(Err(ForwardError::NotMember))) => {
                            Submitted::Failed(Error::NotMember { id: inner.id })
                        }
                        Ok(Some(Err(ForwardError::Shutdown))) => Submitted::NotLeader(None),
                        // Refused before it was proposed: safe to report, the client retries.
                        Ok(Some(Err(ForwardError::TooManyRequests))) => {
                            Submitted::Failed(Error::TooManyRequests)
                        }
                        Ok(Some(Err(_))) => Submitted::Unknown,
                    }
                }
            };
            match outcome {
                Submitted::Applied | Submitted::Unknown => return Ok(()),
                Submitted::Failed(e) => return Err(e),
                Submitted::NotLeader(Some(l)) => target = Some(l),
                Submitted::NotLeader(None) => {
                    if Instant::now() + NO_LEADER_BACKOFF >= deadline {
                        return Err(Error::NoLeader);
                    }
                    tokio::time::sleep(NO_LEADER_BACKOFF).await;
                    self.check_open()?;
                    target = inner.leader_hint();
                }
            }
        }
    }

    /// The linearizable read barrier: returns once this member has applied everything
    /// committed before the call (ReadIndex through the leader).
    pub(super) async fn read_barrier(&self) -> Result<()> {
        self.check_open()?;
        self.check_member().await?;
        let inner = &self.inner;
        let deadline = Instant::now() + inner.config.request_timeout;
        let index = tokio::time::timeout_at(deadline, self.read_index(deadline))
            .await
            .map_err(|_| Error::Timeout)??;
        let Some(index) = index else {
            return Ok(());
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        inner
            .raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => Error::Timeout,
                openraft::metrics::WaitError::ShuttingDown => Error::Shutdown,
            })
    }

    /// The leader's read index, asked of the leader (this member or another).
    async fn read_index(&self, deadline: Instant) -> Result<Option<u64>> {
        let inner = &self.inner;
        let mut target = inner.leader_hint();
        loop {
            let next = match target {
                Some(t) if t == inner.id => match inner.raft.ensure_linearizable().await {
                    Ok(log_id) => return Ok(log_id.map(|l| l.index)),
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                        f.leader_id.filter(|&l| l != inner.id)
                    }
                    Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => None,
                    Err(RaftError::Fatal(_)) => return Err(Error::Shutdown),
                },
                Some(t) => match inner.ask(t, ClientRequest::ReadIndex).await {
                    Ok(Some(Ok(ClientReply::ReadIndex(index)))) => return Ok(index),
                    Ok(Some(Err(ForwardError::NotLeader { leader }))) => leader.filter(|&l| l != t),
                    Ok(Some(Err(ForwardError::NotMember))) => {
                        return Err(Error::NotMember { id: inner.id })
                    }
                    // A read can always be asked again.
                    _ => None,
                },
                None => None,
            };
            if next.is_none() {
                if Instant::now() + NO_LEADER_BACKOFF >= deadline {
                    return Err(if inner.leader_hint().is_none() {
                        Error::NoLeader
                    } else {
                        Error::Timeout
                    });
                }
                tokio::time::sleep(NO_LEADER_BACKOFF).await;
                self.check_open()?;
                target = inner.leader_hint();
            } else {
                target = next;
            }
        }
    }

    /// Asks the leader to serve `request`, retrying while it is not found, moves, or cannot
    /// confirm that it leads. Only for requests that may be served twice (keep-alive,
    /// time-to-live).
    pub(super) async fn ask_leader(&self, request: ClientRequest) -> Result<ClientReply> {
        self.check_open()?;
        self.check_member().await?;
        let inner = &self.inner;
        let deadline = Instant::now() + inner.config.request_timeout;
        let mut target = inner.leader_hint();
        // Whether a leader could not confirm its leadership (`ForwardError::Unknown`: a quorum's
        // heartbeat answers were lost). The requests asked here (keep-alive, time-to-live) may
        // be asked again, so that is retried until the deadline, then reported as a timeout.
        // Answering it at once turned one lost heartbeat into a failed keep-alive
        // (`sim_history` lease seed 14).
        let mut unconfirmed = false;
        loop {
            let next = match target {
                Some(t) if t == inner.id => match self.serve_locally(&request).await {
                    Err(ForwardError::NotLeader { leader }) => leader.filter(|&l| l != t),
                    Err(ForwardError::Unknown) => {
                        unconfirmed = true;
                        None
                    }
                    other => return other.map_err(|e| self.forward_error(e)),
                },
                Some(t) => {
                    match tokio::time::timeout_at(deadline, inner.ask(t, request.clone())).await {
                        Err(_) => return Err(Error::Timeout),
                        Ok(Ok(Some(Err(ForwardError::NotLeader { leader })))) => {
                            leader.filter(|&l| l != t)
                        }
                        Ok(Ok(Some(Err(ForwardError::Unknown)))) => {
                            unconfirmed = true;
                            None
                        }
                        Ok(Ok(Some(reply))) => return reply.map_err(|e| self.forward_error(e)),
                        Ok(_) => None,
                    }
                }
                None => None,
            };
            if next.is_none() {
                if Instant::now() + NO_LEADER_BACKOFF >= deadline {
                    return Err(if unconfirmed {
                        Error::Timeout
                    } else {
                        Error::NoLeader
                    });
                }
                tokio::time::sleep(NO_LEADER_BACKOFF).await;
                self.check_open()?;
                target = inner.leader_hint();
            } else {
                target = next;
            }
        }
    }

    pub(super) fn forward_error(&self, e: ForwardError) -> Error {
        match e {
            ForwardError::NotLeader { leader } => Error::NotLeader { leader },
            ForwardError::NotMember => Error::NotMember { id: self.inner.id },
            ForwardError::Unknown => Error::Timeout,
            ForwardError::LeaseNotFound { id } => Error::Store(engine::Error::LeaseNotFound { id }),
            ForwardError::Store(msg) => Error::Raft(msg),
            ForwardError::Shutdown => Error::Shutdown,
            ForwardError::Unsupported => Error::Raft("the peer serves no client requests".into()),
            ForwardError::TooManyRequests => Error::TooManyRequests,
            ForwardError::MemberRefused(r) => Error::Raft(r.message),
        }
    }
}
