//! The cluster's member table: which member id has which name, peer URLs and client URLs.
//!
//! The table lives in the replicated Raft membership itself: every member of an openraft
//! membership carries a node record (`BasicNode`, one string), and etch stores a
//! [`MemberRecord`] there as JSON. So the table changes exactly when the membership does, in
//! the same log entry, and every member (also one restored from a snapshot, which carries its
//! membership) reads the same table without a key space of its own; user keys and revisions
//! are untouched, as in etcd, whose member changes do not move the revision either.
//!
//! A record that is empty (a member added through `ReplicatedStore::add_learner`, which knows
//! no URLs) or not JSON reads as a member with no name and, for non-JSON text, that text as its
//! only peer URL.
//!
//! Changes to the table are queued ([`ChangeTurn`]): Raft takes one membership change at a
//! time (openraft refuses a change while the previous one is uncommitted), so on the leader
//! every change (MemberAdd, MemberRemove, MemberUpdate, MemberPromote, and a started member
//! publishing its attributes) waits for its turn and for the previous change to commit, within
//! [`CHANGE_TIMEOUT`], as etcd queues concurrent proposals instead of failing them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use etch_replication::types::NodeId;
use etch_replication::ReplicatedStore;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

/// What MemberList shows for one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member's name (`--name`); empty until the member has started, as in etcd.
    #[serde(default)]
    pub name: String,
    /// The URLs its peers reach it on (`--initial-advertise-peer-urls`).
    #[serde(default)]
    pub peer_urls: Vec<String>,
    /// The URLs clients reach it on (`--advertise-client-urls`).
    #[serde(default)]
    pub client_urls: Vec<String>,
}

impl MemberRecord {
    /// The record as openraft's node value.
    pub fn to_node(&self) -> BasicNode {
        // Serializing plain strings cannot fail.
        BasicNode::new(serde_json::to_string(self).unwrap_or_default())
    }

    /// The record kept in `node`.
    pub fn from_node(node: &BasicNode) -> MemberRecord {
        if node.addr.is_empty() {
            return MemberRecord::default();
        }
        serde_json::from_str(&node.addr).unwrap_or_else(|_| MemberRecord {
            peer_urls: vec![node.addr.clone()],
            ..MemberRecord::default()
        })
    }
}

/// One row of the member table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberEntry {
    /// The member id (the Raft node id).
    pub id: NodeId,
    /// Its record.
    pub record: MemberRecord,
    /// True for a learner (receives the log, does not vote).
    pub is_learner: bool,
}

/// The member table of the newest membership `member` knows, voters and learners, by id.
pub fn table(member: &ReplicatedStore) -> Vec<MemberEntry> {
    let metrics = member.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    let mut rows: Vec<MemberEntry> = membership
        .nodes()
        .map(|(id, node)| MemberEntry {
            id: *id,
            record: MemberRecord::from_node(node),
            is_learner: !voters.contains(id),
        })
        .collect();
    rows.sort_by_key(|r| r.id);
    rows
}

/// Starts a new cluster on `member` whose voters are `members`, each with its record (this
/// member must be one of them). Call once, on one member; the others join by receiving the
/// leader's log.
pub async fn bootstrap(
    member: &ReplicatedStore,
    members: &[(NodeId, MemberRecord)],
) -> Result<(), etch_replication::Error> {
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, record)| (*id, record.to_node()))
        .collect();
    member
        .raft()
        .initialize(nodes)
        .await
        .map_err(|e| etch_replication::Error::Raft(e.to_string()))
}

/// How long a membership change may wait for the changes queued before it and for the
/// commit of the previous one (the member's default request timeout; a follower forwarding
/// the change waits longer, so it hears the answer).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between attempts while openraft still reports the previous change in progress.
const IN_PROGRESS_PAUSE: Duration = Duration::from_millis(20);

/// One queue per member: keyed by the address of the member's Raft handle (which lives as
/// long as the member's shared state, so it is stable and unique among live members), holding
/// the queue weakly: an entry lives while a change holds or waits for its turn.
fn queue_of(member: &ReplicatedStore) -> Arc<tokio::sync::Mutex<()>> {
    static QUEUES: Mutex<Option<HashMap<usize, Weak<tokio::sync::Mutex<()>>>>> = Mutex::new(None);
    let key = std::ptr::from_ref(member.raft()) as usize;
    let mut queues = QUEUES.lock().unwrap_or_else(|p| p.into_inner());
    let queues = queues.get_or_insert_with(HashMap::new);
    queues.retain(|_, q| q.strong_count() > 0);
    if let Some(queue) = queues.get(&key).and_then(Weak::upgrade) {
        return queue;
    }
    let queue = Arc::new(tokio::sync::Mutex::new(()));
    queues.insert(key, Arc::downgrade(&queue));
    queue
}

/// A membership change to make ([`ChangeTurn::apply`]).
#[derive(Clone, Debug)]
pub enum Change {
    /// Adds a learner with its record (openraft's `add_learner`, not waiting for it to catch
    /// up: etcd's MemberAdd returns at once).
    AddLearner(NodeId, BasicNode),
    /// Any other change (openraft's `change_membership`, removed voters not kept as learners).
    Members(ChangeMembers<NodeId, BasicNode>),
}

/// Why a queued membership change was not made.
#[derive(Debug)]
pub enum ChangeError {
    /// Its turn, or the commit of the change before it, did not come within
    /// [`CHANGE_TIMEOUT`].
    TimedOut,
    /// openraft refused it (not the leader, an unknown learner, stopped, ...); boxed, as
    /// openraft's error is large.
    Refused(Box<RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::TimedOut => write!(
                f,
                "the membership change did not get its turn within {CHANGE_TIMEOUT:?}"
            ),
            ChangeError::Refused(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ChangeError {}

/// This member's turn to change the membership: while it is held, no other change through
/// [`ChangeTurn`] starts on this member. Take it before validating a change against the
/// [`table`], so the validation and the change see the same table.
pub struct ChangeTurn {
    _turn: tokio::sync::OwnedMutexGuard<()>,
    deadline: tokio::time::Instant,
}

impl ChangeTurn {
    /// Waits (at most [`CHANGE_TIMEOUT`]) for the changes queued before this one on `member`.
    pub async fn wait(member: &ReplicatedStore) -> Result<ChangeTurn, ChangeError> {
        let deadline = tokio::time::Instant::now() + CHANGE_TIMEOUT;
        let queue = queue_of(member);
        match tokio::time::timeout_at(deadline, queue.lock_owned()).await {
            Ok(turn) => Ok(ChangeTurn {
                _turn: turn,
                deadline,
            }),
            Err(_) => Err(ChangeError::TimedOut),
        }
    }

    /// Makes `change` on `member` (the leader) and returns once it is committed. While
    /// openraft reports the previous change still in progress (it commits a joint
    /// configuration in two steps, and a new leader's membership is uncommitted until its
    /// first entry commits), the change is tried again until the deadline of this turn.
    pub async fn apply(&self, member: &ReplicatedStore, change: Change) -> Result<(), ChangeError> {
        loop {
            let raft = member.raft();
            let result = match change.clone() {
                Change::AddLearner(id, node) => raft.add_learner(id, node, false).await.map(|_| ()),
                Change::Members(members) => {
                    raft.change_membership(members, false).await.map(|_| ())
                }
            };
            match result {
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) => {
                    if tokio::time::Instant::now() + IN_PROGRESS_PAUSE >= self.deadline {
                        return Err(ChangeError::TimedOut);
                    }
                    tokio::time::sleep(IN_PROGRESS_PAUSE).await;
                }
                Err(e) => return Err(ChangeError::Refused(Box::new(e))),
                Ok(()) => return Ok(()),
            }
        }
    }
}
