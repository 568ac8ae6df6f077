//! The errors of a replicated store: the engine's own errors, unchanged, plus what only a
//! cluster can say.

use etch_engine as engine;

use crate::types::NodeId;

/// What a [`crate::node::ReplicatedStore`] call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store's own error, exactly as `etch_engine::Store` reports it (a compacted
    /// revision, a missing lease, a key too large, ...). Refusals decided when the entry is
    /// applied are the same on every member.
    Store(engine::Error),
    /// No leader could be found within the request timeout (an election is running, or this
    /// member cannot reach a majority). A write was not proposed; retrying is safe.
    NoLeader,
    /// No answer within the request timeout. The outcome is **unknown**: a write may still be
    /// applied later (as after a lost reply from etcd); make writes idempotent or check with a
    /// read before retrying.
    Timeout,
    /// This member is not, or no longer, in the cluster's membership (not yet added, or
    /// removed): it serves no writes and no linearizable reads.
    NotMember {
        /// This member's id.
        id: NodeId,
    },
    /// A membership change must be made on the leader; this member is not it.
    NotLeader {
        /// The leader this member knows of.
        leader: Option<NodeId>,
    },
    /// The member is shut down (or shutting down).
    Shutdown,
    /// A blocking method of [`crate::blocking::Member`] was called from a thread running async
    /// code (inside a tokio runtime), where blocking would stall or deadlock the runtime. Use
    /// the async [`crate::node::ReplicatedStore`] there.
    BlockingInAsync,
    /// The file cannot start a new cluster: it already belongs to one (it holds a vote, an
    /// applied membership or Raft log entries). Reopen it with `ReplicatedStore::open` to
    /// rejoin its cluster.
    AlreadyMember {
        /// This member's id.
        id: NodeId,
    },
    /// `ReplicatedStore::initialize` on a store with a history of its own (a standalone file
    /// opened as a member): openraft's initialize would start the log at index 0 and lose it.
    /// Start the cluster with `ReplicatedStore::bootstrap`, which keeps the history.
    HasHistory,
    /// The write was refused before it was proposed because the leader's Raft log has no safe
    /// room for it now (etcd's `etcdserver: too many requests`): the log's WAL ring is filling
    /// faster than the members snapshot and purge it (see `node/log_space.rs`). Nothing was
    /// proposed, so retrying after a short back-off is safe.
    TooManyRequests,
    /// A Raft failure not covered above: a refused membership change, a storage error that
    /// stopped Raft on this member. The text is openraft's.
    Raft(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => e.fmt(f),
            Error::NoLeader => write!(
                f,
                "no leader: the cluster has no leader this member can reach"
            ),
            Error::Timeout => write!(f, "request timed out; its outcome is unknown"),
            Error::NotMember { id } => write!(f, "member {id} is not a member of the cluster"),
            Error::NotLeader { leader: Some(l) } => {
                write!(f, "not the leader; the leader is member {l}")
            }
            Error::NotLeader { leader: None } => write!(f, "not the leader; no leader is known"),
            Error::Shutdown => write!(f, "the member is shut down"),
            Error::BlockingInAsync => write!(
                f,
                "a blocking member method was called inside an async runtime; use the async \
                 ReplicatedStore there"
            ),
            Error::AlreadyMember { id } => write!(
                f,
                "member {id}'s file already belongs to a cluster; reopen it instead of starting \
                 a new cluster"
            ),
            Error::HasHistory => write!(
                f,
                "the store has a history of its own; start the cluster with \
                 ReplicatedStore::bootstrap to keep it"
            ),
            Error::TooManyRequests => write!(
                f,
                "too many requests: the leader's Raft log has no room for the write now; \
                 retry after a back-off"
            ),
            Error::Raft(msg) => write!(f, "raft: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<engine::Error> for Error {
    fn from(e: engine::Error) -> Error {
        Error::Store(e)
    }
}

/// A replicated store's result.
pub type Result<T> = std::result::Result<T, Error>;
