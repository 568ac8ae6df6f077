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

use std::collections::BTreeMap;

use etch_replication::types::NodeId;
use etch_replication::ReplicatedStore;
use openraft::BasicNode;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_node_values() {
        let record = MemberRecord {
            name: "infra1".into(),
            peer_urls: vec!["http://10.0.0.1:2380".into()],
            client_urls: vec!["http://10.0.0.1:2379".into(), "http://a:1".into()],
        };
        assert_eq!(MemberRecord::from_node(&record.to_node()), record);
    }

    #[test]
    fn empty_and_foreign_node_values_read_as_unnamed_members() {
        assert_eq!(
            MemberRecord::from_node(&BasicNode::default()),
            MemberRecord::default()
        );
        let foreign = MemberRecord::from_node(&BasicNode::new("10.0.0.9:2380"));
        assert_eq!(foreign.name, "");
        assert_eq!(foreign.peer_urls, vec!["10.0.0.9:2380".to_string()]);
    }
}
