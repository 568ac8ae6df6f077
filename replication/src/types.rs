//! openraft's type configuration for etch.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::runtime::SeededTokio;
use crate::snapshot_file::SnapshotFile;

/// A member's id. 0 is never used (openraft and etcd both treat it as "none").
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The types openraft is instantiated with for etch.
    ///
    /// - An entry's application payload is a [`Command`]; in a WAL frame an entry is stored as
    ///   [`crate::codec::encode`]d bytes (version byte, postcard).
    /// - Snapshots are files on the member's own storage ([`SnapshotFile`]): a snapshot of a
    ///   large store must not have to fit in memory, and a member on a simulated disk keeps its
    ///   snapshots there too.
    /// - The runtime is tokio with seedable election timeouts ([`SeededTokio`]).
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFile,
        AsyncRuntime = SeededTokio,
);

/// What openraft hands back to the proposer once its entry is applied on the leader.
///
/// It is deliberately small: the typed engine response (a `PutResponse`, `TxnResponse`, ...) is
/// produced by the state machine of the member that took the request, which waits for the
/// entry's index to be applied locally (read-your-writes there). Only the position crosses the
/// network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The entry's log index.
    pub index: u64,
    /// The store's revision after applying it.
    pub revision: i64,
}

/// What a log entry carries: a [`Command`], and who proposed it, so that the member that took
/// the request can hand the command's typed response (produced when that member applies the
/// entry) to the caller waiting for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The member that took the client request.
    pub origin: NodeId,
    /// A number unique among that member's proposals, also across its restarts (a random
    /// high half per run over a counter; 0 for proposals nobody waits for, such as lease
    /// expiry).
    pub id: u64,
    /// The change.
    pub command: Command,
}

/// An entry of etch's Raft log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A running Raft member.
pub type Raft = openraft::Raft<TypeConfig>;
