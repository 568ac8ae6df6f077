//! The client requests one member passes to another (the leader): writes proposed on a
//! follower, ReadIndex for a follower's linearizable read, lease keep-alives and TTL queries
//! (only the leader counts leases down), and hash checks across members. They travel as
//! [`crate::network::RaftRequest::Client`] over the same [`crate::network::Transport`] as Raft's
//! own messages, so every transport carries them.

use serde::{Deserialize, Serialize};

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
}
