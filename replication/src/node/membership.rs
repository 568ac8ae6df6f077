//! Membership changes asked of any member (etcd's MemberAdd, MemberPromote, MemberRemove,
//! MemberUpdate): made on the leader by the embedding server's [`MemberService`], forwarded to
//! it over the members' own transport when asked of a follower, as writes are.
//!
//! The transport is the one Raft's messages use (QUIC between processes, direct calls in
//! one), so a follower reaches its leader whatever the members' client URLs are (https only,
//! behind a client TLS configuration, or none at all).
//!
//! **At most once per try.** A forwarded change is named (sender, id, attempt), like a
//! forwarded proposal: the leader handles each name once and answers a repeat with the first
//! answer (or [`ForwardError::Unknown`] while the first still runs), so a copy the network
//! duplicated, or a resend after a lost answer (sent with the same attempt number), never
//! changes the membership twice. A new attempt number is used only after an answer that says
//! the change was not made (the receiver does not lead, or no leader is known), and then goes
//! to the leader learned next, as etcd keeps a proposal waiting through an election.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::ReplicatedStore;
use crate::error::Error;
use crate::forward::{
    ClientReply, ClientRequest, ForwardError, MemberChanged, MemberRefusal, MemberRequest,
    MemberService,
};
use crate::types::NodeId;

/// The pause before a membership change is asked again (of a new leader, or of the same one
/// for the answer to a try whose answer was lost).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Why a membership change asked with [`ReplicatedStore::change_members`] was not made (or
/// its outcome is not known).
#[derive(Debug)]
pub enum MemberChangeError {
    /// The leader's [`MemberService`] refused it; nothing changed.
    Refused(MemberRefusal),
    /// The cluster did not serve it: [`Error::NoLeader`] (no leader found before the
    /// deadline; nothing changed), [`Error::Timeout`] (the outcome is unknown),
    /// [`Error::NotMember`], [`Error::Shutdown`], or [`Error::Raft`] (no service installed on
    /// the leader, an unexpected answer).
    Cluster(Error),
}

impl std::fmt::Display for MemberChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberChangeError::Refused(r) => write!(f, "{}", r.message),
            MemberChangeError::Cluster(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MemberChangeError {}

/// Where the next try of a membership change goes.
#[derive(Clone, Copy)]
enum Next {
    /// To this member at once (a leader named in an answer).
    Ask(NodeId),
    /// To this member after a pause, with the same attempt number: the last try may have been
    /// acted on, and only its receiver knows its answer.
    Again(NodeId),
    /// To the leader known after a pause.
    Rehint,
}

impl ReplicatedStore {
    /// Installs what makes membership changes on this member when it leads, for changes asked
    /// of it and forwarded to it ([`ReplicatedStore::change_members`]). Replaces an earlier
    /// one. Without one, the changes a leader is asked for fail ([`ForwardError::Unsupported`]).
    pub fn set_member_service(&self, service: Arc<dyn MemberService>) {
        *self
            .inner
            .member_service
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(service);
    }

    /// Makes `request` on the leader: here when this member leads, else forwarded to the
    /// leader (see the module documentation), within `timeout`. Not-leader answers and
    /// elections are waited through until the deadline.
    pub async fn change_members(
        &self,
        request: MemberRequest,
        timeout: Duration,
    ) -> Result<MemberChanged, MemberChangeError> {
        self.check_open().map_err(MemberChangeError::Cluster)?;
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        let id = inner.next_proposal.fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0u32;
        // Whether some try may have been acted on without its answer reaching this member: the
        // outcome is then unknown at the deadline, rather than "no leader".
        let mut open = false;
        let mut next = match inner.leader_hint() {
            Some(t) => Next::Ask(t),
            None => Next::Rehint,
        };
        loop {
            let target = match next {
                Next::Ask(t) => t,
                Next::Again(_) | Next::Rehint => {
                    if Instant::now() + RETRY_PAUSE >= deadline {
                        return Err(MemberChangeError::Cluster(if open {
                            Error::Timeout
                        } else {
                            Error::NoLeader
                        }));
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                    self.check_open().map_err(MemberChangeError::Cluster)?;
                    match next {
                        Next::Again(t) => t,
                        _ => match inner.leader_hint() {
                            Some(t) => {
                                attempt += 1;
                                t
                            }
                            None => continue,
                        },
                    }
                }
            };
            if matches!(next, Next::Ask(_)) {
                attempt += 1;
            }
            if target == inner.id {
                match self.serve_member(request.clone()).await {
                    Ok(changed) => return Ok(changed),
                    Err(ForwardError::NotLeader { leader }) => {
                        next = leader
                            .filter(|&l| l != target)
                            .map_or(Next::Rehint, Next::Ask);
                        continue;
                    }
                    Err(e) => return Err(self.member_error(e)),
                }
            }
            let ask = ClientRequest::Member {
                request: request.clone(),
                id,
                attempt,
            };
            let answer = match tokio::time::timeout_at(deadline, inner.ask(target, ask)).await {
                Err(_) => return Err(MemberChangeError::Cluster(Error::Timeout)),
                Ok(a) => a,
            };
            next = match answer {
                Ok(Some(Ok(ClientReply::MemberChanged(changed)))) => return Ok(changed),
                Ok(Some(Ok(other))) => {
                    return Err(MemberChangeError::Cluster(Error::Raft(format!(
                        "unexpected answer to a membership change: {other:?}"
                    ))))
                }
                // Delivered maybe, answer lost; or the receiver still runs the first copy.
                Err(()) | Ok(Some(Err(ForwardError::Unknown))) => {
                    open = true;
                    Next::Again(target)
                }
                // Not delivered: while an earlier copy may have been acted on there, that
                // member alone can tell; otherwise any leader will do.
                Ok(None) if matches!(next, Next::Again(_)) => Next::Again(target),
                Ok(None) | Ok(Some(Err(ForwardError::Shutdown))) => Next::Rehint,
                Ok(Some(Err(ForwardError::NotLeader { leader }))) => leader
                    .filter(|&l| l != target)
                    .map_or(Next::Rehint, Next::Ask),
                Ok(Some(Err(e))) => return Err(self.member_error(e)),
            };
        }
    }

    /// Serves a membership change on this member, which must lead.
    pub(super) async fn serve_member(
        &self,
        request: MemberRequest,
    ) -> Result<MemberChanged, ForwardError> {
        if !self.is_leader() {
            return Err(ForwardError::NotLeader {
                leader: self.inner.leader_hint().filter(|&l| l != self.inner.id),
            });
        }
        let service = self
            .inner
            .member_service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(service) = service else {
            return Err(ForwardError::Unsupported);
        };
        service.change(self, request).await
    }

    fn member_error(&self, e: ForwardError) -> MemberChangeError {
        match e {
            ForwardError::MemberRefused(r) => MemberChangeError::Refused(r),
            other => MemberChangeError::Cluster(self.forward_error(other)),
        }
    }
}
