//! The receiving side of a member: Raft's messages go to openraft, client requests forwarded by
//! other members are served here (proposals, membership changes and ReadIndex on the leader,
//! lease keep-alive and TTL by the leader's clock, hashes on any member). Forwarded proposals
//! and membership changes are handled at most once per (sender, id, attempt).
//!
//! A keep-alive or TTL answer is the leader's, so it is given only after the member confirmed
//! it still leads (a ReadIndex round: a quorum acknowledged its term) and applied everything
//! committed before the request: a deposed leader that has not noticed yet (cut off from the
//! others, say) must not renew a lease the new leader may already have revoked, nor report
//! a TTL from a lease state that is no longer the cluster's.

use std::sync::{Arc, Weak};

use etch_engine as engine;
use openraft::error::{CheckIsLeaderError, RaftError};

use super::client::Submitted;
use super::{Inner, ReplicatedStore};
use crate::error::Error;
use crate::flush::LogFlusher;
use crate::forward::{ClientReply, ClientRequest, ForwardError};
use crate::network::{BoxFuture, RaftHandler, RaftReply, RaftRequest};
use crate::types::{NodeId, Raft};

/// Answers a member's peers (what [`ReplicatedStore::handler`] returns).
pub(super) struct Handler {
    raft: Raft,
    member: Weak<Inner>,
    /// The member's log flusher in background mode (see [`Handler::append_entries`]).
    flusher: Option<Arc<LogFlusher>>,
}

impl Handler {
    pub(super) fn new(member: &Arc<Inner>) -> Handler {
        Handler {
            raft: member.raft.clone(),
            member: Arc::downgrade(member),
            flusher: member.flusher.clone(),
        }
    }

    /// Appends a leader's entries. In background mode the log reports them flushed before they
    /// are durable, so the answer waits here: a success tells the leader that this member
    /// holds every entry up to the request's last one (or its `prev_log_id` for a heartbeat),
    /// and the leader counts that towards a commit, so it must be durable first (see
    /// [`crate::flush`]). A refusal (conflict, higher vote) claims nothing and goes at once.
    ///
    /// Only the entries that fit this member's ring are passed on (`log_space`, rule 3): the
    /// rest are dropped from the request, and a success is answered as a partial one, matched
    /// up to the last entry kept (or the request's `prev_log_id` when none is), so the leader
    /// sends the rest again later. openraft caps this member's commit index at what it
    /// accepted, so it learns no commit past what it holds.
    async fn append_entries(
        &self,
        mut rpc: openraft::raft::AppendEntriesRequest<crate::types::TypeConfig>,
    ) -> RaftReply {
        use openraft::raft::AppendEntriesResponse;
        let fitting = match self.member.upgrade() {
            Some(inner) => inner.log_space.fitting(&inner, &rpc.entries),
            None => rpc.entries.len(),
        };
        let cut = fitting < rpc.entries.len();
        if cut {
            rpc.entries.truncate(fitting);
            // The leader sends again at once: a short pause keeps the two from spinning while
            // this member makes room (well below openraft's per-message timeout, the
            // heartbeat interval).
            tokio::time::sleep(FULL_RING_PAUSE).await;
        }
        let kept = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let partial = |reply: RaftReply| match reply {
            RaftReply::AppendEntries(Ok(AppendEntriesResponse::Success)) if cut => {
                RaftReply::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(kept)))
            }
            other => other,
        };
        let Some(flusher) = &self.flusher else {
            return partial(RaftReply::AppendEntries(
                self.raft.append_entries(rpc).await,
            ));
        };
        let claimed = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|p| p.index));
        let reply = self.raft.append_entries(rpc).await;
        let matched = match &reply {
            Ok(AppendEntriesResponse::Success) => claimed,
            Ok(AppendEntriesResponse::PartialSuccess(m)) => m.map(|m| m.index),
            _ => None,
        };
        if let Some(index) = matched {
            if let Err(e) = flusher.durable(index).await {
                // Not durable (a failed sync, a shutdown): no acknowledgement at all; the
                // leader retries or gives up on this member.
                let io = std::io::Error::other(e.to_string());
                let err = openraft::StorageError::from_io_error(
                    openraft::ErrorSubject::Logs,
                    openraft::ErrorVerb::Write,
                    io,
                );
                return RaftReply::AppendEntries(Err(RaftError::Fatal(
                    openraft::error::Fatal::StorageError(err),
                )));
            }
        }
        partial(RaftReply::AppendEntries(reply))
    }
}

/// How long a member whose ring cannot take a leader's entries waits before it answers.
const FULL_RING_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

impl RaftHandler for Handler {
    fn handle(&self, request: RaftRequest) -> BoxFuture<'_, RaftReply> {
        Box::pin(async move {
            match request {
                RaftRequest::Client { from, request } => {
                    let Some(inner) = self.member.upgrade() else {
                        return RaftReply::Client(Err(ForwardError::Shutdown));
                    };
                    let member = ReplicatedStore { inner };
                    if member.check_open().is_err() {
                        return RaftReply::Client(Err(ForwardError::Shutdown));
                    }
                    RaftReply::Client(member.serve(from, request).await)
                }
                RaftRequest::AppendEntries(rpc) => self.append_entries(rpc).await,
                raft_message => self.raft.handle(raft_message).await,
            }
        })
    }
}

impl ReplicatedStore {
    /// Whether `id` is a voter or learner in this member's newest known membership.
    fn knows_member(&self, id: NodeId) -> bool {
        let known = self
            .inner
            .membership()
            .membership()
            .nodes()
            .any(|(n, _)| *n == id);
        known
    }

    /// Confirms that this member leads (a quorum acknowledged its term after the request
    /// arrived) and waits until it applied every entry committed before; the answer to a
    /// request that only the leader may serve. Returns the read index (`None` for an empty
    /// log).
    async fn confirm_leader(&self) -> Result<Option<u64>, ForwardError> {
        // A member that does not lead answers at once with the leader it knows.
        match self.inner.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader {
                    leader: f.leader_id,
                })
            }
            // No quorum acknowledged the term: whether this member still leads is unknown.
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(ForwardError::Unknown)
            }
            Err(RaftError::Fatal(_)) => Err(ForwardError::Shutdown),
        }
    }

    /// Serves a client request from member `from`.
    async fn serve(
        &self,
        from: NodeId,
        request: ClientRequest,
    ) -> Result<ClientReply, ForwardError> {
        if !self.knows_member(from) {
            return Err(ForwardError::NotMember);
        }
        let key = match &request {
            ClientRequest::Propose { proposal, attempt } => {
                (proposal.origin, proposal.id, *attempt)
            }
            ClientRequest::Member { id, attempt, .. } => (from, *id, *attempt),
            _ => return self.serve_locally(&request).await,
        };
        let seen = || self.inner.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(earlier) = seen().begin(key) {
            return earlier;
        }
        let answer = self.serve_locally(&request).await;
        seen().finish(key, &answer);
        answer
    }

    /// Serves a request on this member, as the leader would (used for forwarded requests and
    /// for this member's own requests when it leads).
    pub(super) async fn serve_locally(
        &self,
        request: &ClientRequest,
    ) -> Result<ClientReply, ForwardError> {
        let inner = &self.inner;
        match request {
            ClientRequest::Propose { proposal, .. } => {
                match inner.propose_local(proposal.clone()).await {
                    Submitted::Applied => Ok(ClientReply::Proposed),
                    Submitted::NotLeader(leader) => Err(ForwardError::NotLeader { leader }),
                    Submitted::Unknown => Err(ForwardError::Unknown),
                    // Raft stopped under the proposal (this member was shut down or lost
                    // power): the entry may be in its log and on others, and a new leader may
                    // commit it. Its fate is open: the proposer must not propose it again.
                    Submitted::Failed(Error::Shutdown) => Err(ForwardError::Unknown),
                    Submitted::Failed(Error::TooManyRequests) => Err(ForwardError::TooManyRequests),
                    Submitted::Failed(e) => Err(ForwardError::Store(e.to_string())),
                }
            }
            ClientRequest::ReadIndex => self.confirm_leader().await.map(ClientReply::ReadIndex),
            ClientRequest::LeaseKeepAlive { id } => {
                self.confirm_leader().await?;
                match inner.machine.store().lease_keep_alive(*id) {
                    Ok(ttl) => Ok(ClientReply::KeptAlive { ttl }),
                    Err(e) => Err(store_error(e)),
                }
            }
            ClientRequest::LeaseTimeToLive { id, keys } => {
                self.confirm_leader().await?;
                match inner.machine.store().lease_time_to_live(*id, *keys) {
                    Ok(info) => Ok(ClientReply::LeaseInfo {
                        ttl: info.ttl,
                        granted_ttl: info.granted_ttl,
                        keys: info.keys,
                    }),
                    Err(e) => Err(store_error(e)),
                }
            }
            ClientRequest::HashKv { revision } => {
                let store = inner.machine.store();
                let revision = if *revision == 0 {
                    store.revision()
                } else {
                    *revision
                };
                match store.hash_kv(revision) {
                    Ok(hash) => Ok(ClientReply::Hash { revision, hash }),
                    Err(e) => Err(store_error(e)),
                }
            }
            ClientRequest::Member { request, .. } => self
                .serve_member(request.clone())
                .await
                .map(ClientReply::MemberChanged),
        }
    }
}

fn store_error(e: engine::Error) -> ForwardError {
    match e {
        engine::Error::LeaseNotFound { id } => ForwardError::LeaseNotFound { id },
        engine::Error::Closed => ForwardError::Shutdown,
        other => ForwardError::Store(other.to_string()),
    }
}
