//! The client requests one member passes to another (the leader): writes proposed on a
//! follower, ReadIndex for a follower's linearizable read, lease keep-alives and TTL queries
//! (only the leader counts leases down), hash checks across members, and cluster membership
//! changes (etcd's MemberAdd, MemberPromote, MemberRemove, MemberUpdate, served on the leader
//! by the embedding server's [`MemberService`]). They travel as
//! [`crate::network::RaftRequest::Client`] over the same [`crate::network::Transport`] as Raft's
//! own messages, so every transport carries them.

use serde::{Deserialize, Serialize};

use crate::network::BoxFuture;
use crate::node::ReplicatedStore;
use crate::types::{NodeId, Proposal};

/// A request from one member to another.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Propose this entry (the receiver must be the leader). `attempt` numbers the sender's
    /// tries of one proposal: a receiver handles each (origin, id, attempt) at most once, so a
    /// copy the network duplicated is never proposed twice.
    Propose {
        /// The entry.
        proposal: Proposal,
        /// Which try this is.
        attempt: u32,
    },
    /// Confirm leadership with a quorum and return the index a linearizable read must wait for.
    ReadIndex,
    /// Renew a lease for its full TTL on the leader.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
    },
    /// A lease's remaining TTL by the leader's clock, and its keys.
    LeaseTimeToLive {
        /// The lease.
        id: i64,
        /// Whether to list its keys.
        keys: bool,
    },
    /// The receiver's `hash_kv` at a revision (0: its current one), for comparing members.
    HashKv {
        /// The revision.
        revision: i64,
    },
    /// Change the cluster's membership (the receiver must be the leader). As for `Propose`,
    /// `id` (unique among the sender's requests) and `attempt` (the sender's try of it) name
    /// the request: a receiver handles each (sender, id, attempt) at most once and answers a
    /// repeat with the first answer, so a copy the network duplicated, or a resend after a
    /// lost answer, never changes the membership twice. (Last, so that the variants before it
    /// keep their encoding.)
    Member {
        /// The change.
        request: MemberRequest,
        /// The sender's id for this request.
        id: u64,
        /// Which try this is.
        attempt: u32,
    },
}

/// A cluster membership change in etcd's terms, made on the leader by its [`MemberService`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRequest {
    /// etcd's MemberAdd: a member (a learner when `learner`) that peers reach at `peer_urls`.
    Add {
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// Whether it joins as a learner.
        learner: bool,
    },
    /// etcd's MemberPromote: a learner becomes a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// etcd's MemberRemove.
    Remove {
        /// The member.
        id: NodeId,
    },
    /// etcd's MemberUpdate: a member's peer URLs; with `attributes`, a started member
    /// publishing its name and client URLs (as etcd publishes them through Raft).
    Update {
        /// The member.
        id: NodeId,
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// Its name and client URLs, when it publishes them.
        attributes: Option<MemberAttributes>,
    },
}

/// What a started member publishes about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttributes {
    /// Its name (etcd's `--name`).
    pub name: String,
    /// The URLs clients reach it on.
    pub client_urls: Vec<String>,
}

/// One member as a membership change's answer lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member id.
    pub id: NodeId,
    /// Its name (empty until it has started).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs.
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// The answer to a membership change that was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChanged {
    /// The member added (MemberAdd only).
    pub member: Option<MemberInfo>,
    /// Every member after the change.
    pub members: Vec<MemberInfo>,
}

/// Why the leader's [`MemberService`] did not make a change, as the embedding server answers
/// it to its own clients (etch's server: a gRPC status code and etcd's message, such as
/// `etcdserver: member not found`), so a follower answers exactly what the leader would.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRefusal {
    /// The server's error code (etch's server: the gRPC status code).
    pub code: i32,
    /// The message.
    pub message: String,
}

/// Makes membership changes on the leader, for requests made on it and forwarded to it
/// ([`ReplicatedStore::change_members`]). Installed by the embedding server with
/// [`ReplicatedStore::set_member_service`]; the rules (which URLs clash, how member ids are
/// made, how a removed voter goes) are the server's.
pub trait MemberService: Send + Sync + 'static {
    /// Makes `request` on `leader` (this member, believed to lead). Answers
    /// [`ForwardError::NotLeader`] when the change was not made because `leader` does not
    /// lead (the sender then asks the new leader), [`ForwardError::MemberRefused`] for the
    /// server's own refusals.
    fn change<'a>(
        &'a self,
        leader: &'a ReplicatedStore,
        request: MemberRequest,
    ) -> BoxFuture<'a, Result<MemberChanged, ForwardError>>;
}

/// A successful answer to a [`ClientRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// The entry was committed and applied on the leader.
    Proposed,
    /// The read index (`None` when the log is empty).
    ReadIndex(Option<u64>),
    /// The lease's TTL after renewal.
    KeptAlive {
        /// Seconds.
        ttl: i64,
    },
    /// A lease's state on the leader.
    LeaseInfo {
        /// Seconds left by the leader's clock (rounded up).
        ttl: i64,
        /// The TTL it was granted with.
        granted_ttl: i64,
        /// Its keys, when asked for.
        keys: Vec<Vec<u8>>,
    },
    /// A member's hash.
    Hash {
        /// The revision hashed.
        revision: i64,
        /// The hash.
        hash: u32,
    },
    /// A membership change was made. (Last, so that the variants before it keep their
    /// encoding.)
    MemberChanged(MemberChanged),
}

/// Why a forwarded request was not served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardError {
    /// The receiver is not the leader; `leader` is the one it knows of. The request was not
    /// acted on, so retrying it there is safe.
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The sender is not a member of the receiver's cluster.
    NotMember,
    /// The request may or may not take effect (the leader lost leadership after appending it,
    /// or this copy is a duplicate of one being handled). The sender waits for the outcome in
    /// its own log.
    Unknown,
    /// No such lease.
    LeaseNotFound {
        /// The lease.
        id: i64,
    },
    /// The receiver's store refused (a compacted or future revision for a hash, ...).
    Store(String),
    /// The receiver is shutting down.
    Shutdown,
    /// The receiver cannot serve client requests (a bare Raft without a store).
    Unsupported,
    /// The leader refused to propose the entry: its Raft log has no safe room for it now
    /// ([`crate::Error::TooManyRequests`]). Nothing was proposed. (Last, so that the variants
    /// before it keep their encoding.)
    TooManyRequests,
    /// The leader's [`MemberService`] refused a membership change; nothing was changed.
    MemberRefused(MemberRefusal),
}
