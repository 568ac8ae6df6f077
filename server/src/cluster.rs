//! The Cluster service.
//!
//! On a single node MemberList names this node and membership changes are answered as etcd
//! answers changes a cluster cannot take. On a cluster member the table comes from the
//! replicated membership (`crate::members`): MemberList shows every voter and learner with its
//! URLs; MemberAdd (also as a learner), MemberRemove, MemberUpdate and MemberPromote change the
//! Raft membership on the leader. Asked of a follower, they travel to the leader over the
//! members' own transport (`ReplicatedStore::change_members`, as forwarded writes do), whatever
//! the client URLs are (https only, behind client TLS): etcd forwards them through Raft too.
//! The leader makes them with [`LeaderMembership`] (installed on every member by
//! `crate::node::Node::new`), with the same checks and answers whoever was asked. On the
//! leader, changes are queued (`members::ChangeTurn`): one waits for the one before it to
//! commit instead of being refused, and each is checked against the table in its turn.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etch_replication::forward::{
    ForwardError, MemberAttributes, MemberChanged, MemberInfo, MemberRefusal, MemberRequest,
    MemberService,
};
use etch_replication::network::BoxFuture;
use etch_replication::node::MemberChangeError;
use etch_replication::types::NodeId;
use etch_replication::ReplicatedStore;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::errors;
use crate::members::{self, Change, ChangeError, ChangeTurn, MemberEntry, MemberRecord};
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::Cluster;

/// The peer URL etcd advertises by default; a single etch node has no peers but reports it
/// so that tools printing members have something to show.
const DEFAULT_PEER_URL: &str = "http://localhost:2380";

/// How long a membership change asked of this member may take, forwarded or not: longer than
/// the leader's own bound (`members::CHANGE_TIMEOUT`), so that the leader's answer arrives.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves etcd's Cluster service.
pub struct ClusterService {
    node: Node,
}

impl ClusterService {
    /// The service over `node`.
    pub fn new(node: Node) -> ClusterService {
        ClusterService { node }
    }

    fn this_member(&self) -> pb::Member {
        pb::Member {
            id: self.node.member_id(),
            name: self.node.config().name.clone(),
            peer_ur_ls: vec![DEFAULT_PEER_URL.to_string()],
            client_ur_ls: self.node.config().advertise_client_urls.clone(),
            is_learner: false,
        }
    }

    /// The error for a change to member `id` on a single node: unknown members are "not
    /// found"; this member cannot be removed or changed without leaving no started member.
    fn refuse(&self, id: u64) -> Status {
        if id == self.node.member_id() {
            errors::member_not_enough_started()
        } else {
            errors::member_not_found()
        }
    }
}

fn member_pb(entry: MemberEntry) -> pb::Member {
    pb::Member {
        id: entry.id,
        name: entry.record.name,
        peer_ur_ls: entry.record.peer_urls,
        client_ur_ls: entry.record.client_urls,
        is_learner: entry.is_learner,
    }
}

/// etcd's error for a queued membership change that was not made.
fn change_error(e: ChangeError) -> Status {
    match e {
        ChangeError::TimedOut => errors::timeout(),
        ChangeError::Refused(e) => refused(*e),
    }
}

/// etcd's error for a membership change openraft refused.
fn refused(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => errors::not_leader(),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::LearnerNotFound(_) => errors::member_not_found(),
            ChangeMembershipError::InProgress(_) => errors::unhealthy(),
            other => Status::failed_precondition(format!("etcdserver: {other}")),
        },
        RaftError::Fatal(_) => errors::stopped(),
    }
}

/// The id of a member added with peer URLs `peer_urls`: derived from them and the cluster
/// token, as the ids of `initial-cluster`'s members are, so that the new member's process
/// computes the same id from its own flags (`crate::launch`). Peer URLs are unique in the
/// table, so ids are too; a hash collision with a member in the table is refused.
fn new_member_id(
    peer_urls: &[String],
    token: &str,
    taken: &BTreeSet<NodeId>,
) -> Result<NodeId, Status> {
    let id = crate::etcd_config::initial_member_id(peer_urls, token);
    if taken.contains(&id) {
        return Err(errors::peer_url_exists());
    }
    Ok(id)
}

/// Makes membership changes on the leader, for requests made on it and forwarded to it from
/// followers ([`MemberService`]): the checks and answers of etcd's Cluster service.
pub(crate) struct LeaderMembership {
    /// The cluster token member ids are derived from (`--initial-cluster-token`).
    token: String,
}

impl LeaderMembership {
    /// The service for a cluster with `token`.
    pub(crate) fn new(token: String) -> LeaderMembership {
        LeaderMembership { token }
    }
}

impl MemberService for LeaderMembership {
    fn change<'a>(
        &'a self,
        leader: &'a ReplicatedStore,
        request: MemberRequest,
    ) -> BoxFuture<'a, Result<MemberChanged, ForwardError>> {
        Box::pin(async move {
            let made = match request {
                MemberRequest::Add { peer_urls, learner } => {
                    add(leader, &self.token, peer_urls, learner).await
                }
                MemberRequest::Promote { id } => promote(leader, id).await,
                MemberRequest::Remove { id } => remove(leader, id).await,
                MemberRequest::Update {
                    id,
                    peer_urls,
                    attributes,
                } => update(leader, id, peer_urls, attributes).await,
            };
            made.map_err(|status| refusal(leader, &status))
        })
    }
}

/// The answer to a change the leader did not make: "not leader" (it stepped down, nothing
/// changed: the asking member retries with the new leader) or etcd's error as it is.
fn refusal(leader: &ReplicatedStore, status: &Status) -> ForwardError {
    let not_leader = errors::not_leader();
    if status.code() == not_leader.code() && status.message() == not_leader.message() {
        return ForwardError::NotLeader {
            leader: leader.leader().filter(|&l| l != leader.id()),
        };
    }
    ForwardError::MemberRefused(MemberRefusal {
        code: status.code() as i32,
        message: status.message().to_string(),
    })
}

/// etcd's error for a membership change this member asked for and that was not made.
fn change_status(e: MemberChangeError) -> Status {
    match e {
        MemberChangeError::Refused(r) => Status::new(tonic::Code::from(r.code), r.message),
        MemberChangeError::Cluster(e) => errors::cluster_to_status(&e),
    }
}

fn member_info(entry: MemberEntry) -> MemberInfo {
    MemberInfo {
        id: entry.id,
        name: entry.record.name,
        peer_urls: entry.record.peer_urls,
        client_urls: entry.record.client_urls,
        is_learner: entry.is_learner,
    }
}

fn info_pb(info: MemberInfo) -> pb::Member {
    pb::Member {
        id: info.id,
        name: info.name,
        peer_ur_ls: info.peer_urls,
        client_ur_ls: info.client_urls,
        is_learner: info.is_learner,
    }
}

/// Every member after a change, as its answer lists them.
fn members_after(leader: &ReplicatedStore, member: Option<MemberInfo>) -> MemberChanged {
    MemberChanged {
        member,
        members: members::table(leader)
            .into_iter()
            .map(member_info)
            .collect(),
    }
}

/// MemberAdd on the leader.
async fn add(
    leader: &ReplicatedStore,
    token: &str,
    peer_urls: Vec<String>,
    learner: bool,
) -> Result<MemberChanged, Status> {
    if peer_urls.is_empty() {
        return Err(Status::invalid_argument(
            "etcdserver: member add needs at least one peer URL",
        ));
    }
    let turn = ChangeTurn::wait(leader).await.map_err(change_error)?;
    let table = members::table(leader);
    let used: BTreeSet<&String> = table.iter().flat_map(|e| &e.record.peer_urls).collect();
    if peer_urls.iter().any(|u| used.contains(u)) {
        return Err(errors::peer_url_exists());
    }
    let taken: BTreeSet<NodeId> = table.iter().map(|e| e.id).collect();
    let id = new_member_id(&peer_urls, token, &taken)?;
    let record = MemberRecord {
        name: String::new(),
        peer_urls: peer_urls.clone(),
        client_urls: Vec::new(),
    };
    // etcd's MemberAdd returns at once: the new member is not running yet, so this does not
    // wait for it to catch up.
    let change = if learner {
        Change::AddLearner(id, record.to_node())
    } else {
        Change::Members(ChangeMembers::AddVoters(BTreeMap::from([(
            id,
            record.to_node(),
        )])))
    };
    turn.apply(leader, change).await.map_err(change_error)?;
    tracing::info!(id = format!("{id:x}"), learner, "member added");
    let added = MemberInfo {
        id,
        name: String::new(),
        peer_urls,
        client_urls: Vec::new(),
        is_learner: learner,
    };
    Ok(members_after(leader, Some(added)))
}

/// MemberRemove on the leader.
async fn remove(leader: &ReplicatedStore, id: NodeId) -> Result<MemberChanged, Status> {
    let turn = ChangeTurn::wait(leader).await.map_err(change_error)?;
    let Some(entry) = members::table(leader).into_iter().find(|e| e.id == id) else {
        return Err(errors::member_not_found());
    };
    // Removed voters are not kept as learners: one change removes a voter or a learner.
    let ids = BTreeSet::from([id]);
    let change = if entry.is_learner {
        ChangeMembers::RemoveNodes(ids)
    } else {
        ChangeMembers::RemoveVoters(ids)
    };
    turn.apply(leader, Change::Members(change))
        .await
        .map_err(change_error)?;
    tracing::info!(id = format!("{id:x}"), "member removed");
    Ok(members_after(leader, None))
}

/// MemberUpdate on the leader; with `attributes`, a started member publishing its name and
/// client URLs.
async fn update(
    leader: &ReplicatedStore,
    id: NodeId,
    peer_urls: Vec<String>,
    attributes: Option<MemberAttributes>,
) -> Result<MemberChanged, Status> {
    let turn = ChangeTurn::wait(leader).await.map_err(change_error)?;
    let table = members::table(leader);
    let Some(entry) = table.iter().find(|e| e.id == id) else {
        return Err(errors::member_not_found());
    };
    if table
        .iter()
        .filter(|e| e.id != id)
        .flat_map(|e| &e.record.peer_urls)
        .any(|u| peer_urls.contains(u))
    {
        return Err(errors::peer_url_exists());
    }
    let record = match attributes {
        Some(a) => MemberRecord {
            name: a.name,
            peer_urls,
            client_urls: a.client_urls,
        },
        None => MemberRecord {
            peer_urls,
            ..entry.record.clone()
        },
    };
    let change = ChangeMembers::SetNodes(BTreeMap::from([(id, record.to_node())]));
    turn.apply(leader, Change::Members(change))
        .await
        .map_err(change_error)?;
    Ok(members_after(leader, None))
}

/// MemberPromote on the leader.
async fn promote(leader: &ReplicatedStore, id: NodeId) -> Result<MemberChanged, Status> {
    let turn = ChangeTurn::wait(leader).await.map_err(change_error)?;
    match members::table(leader).iter().find(|e| e.id == id) {
        None => return Err(errors::member_not_found()),
        Some(e) if !e.is_learner => return Err(errors::member_not_learner()),
        Some(_) => {}
    }
    let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
    turn.apply(leader, Change::Members(change))
        .await
        .map_err(change_error)?;
    tracing::info!(id = format!("{id:x}"), "learner promoted");
    Ok(members_after(leader, None))
}

/// Publishes `record` (this member's name and client URLs) through the leader, as etcd
/// publishes a started member's attributes through Raft.
pub(crate) async fn publish_to_leader(
    member: &ReplicatedStore,
    record: &MemberRecord,
) -> Result<(), String> {
    let request = MemberRequest::Update {
        id: member.id(),
        peer_urls: record.peer_urls.clone(),
        attributes: Some(MemberAttributes {
            name: record.name.clone(),
            client_urls: record.client_urls.clone(),
        }),
    };
    member
        .change_members(request, CHANGE_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl ClusterService {
    /// Asks `member` to make `request` (on the leader: here, or forwarded).
    async fn change(
        &self,
        member: &ReplicatedStore,
        request: MemberRequest,
    ) -> Result<MemberChanged, Status> {
        member
            .change_members(request, CHANGE_TIMEOUT)
            .await
            .map_err(change_status)
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let Backend::Member(member) = self.node.backend() else {
            return Err(errors::member_not_enough_started());
        };
        let req = request.into_inner();
        let request = MemberRequest::Add {
            peer_urls: req.peer_ur_ls,
            learner: req.is_learner,
        };
        let changed = self.change(member, request).await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: self.node.current_header(),
            member: changed.member.map(info_pb),
            members: changed.members.into_iter().map(info_pb).collect(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        let Backend::Member(member) = self.node.backend() else {
            return Err(self.refuse(id));
        };
        let changed = self.change(member, MemberRequest::Remove { id }).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.node.current_header(),
            members: changed.members.into_iter().map(info_pb).collect(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let req = request.into_inner();
        let Backend::Member(member) = self.node.backend() else {
            return Err(self.refuse(req.id));
        };
        let request = MemberRequest::Update {
            id: req.id,
            peer_urls: req.peer_ur_ls,
            attributes: None,
        };
        let changed = self.change(member, request).await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.node.current_header(),
            members: changed.members.into_iter().map(info_pb).collect(),
        }))
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let members = match self.node.backend() {
            Backend::Local(_) => vec![self.this_member()],
            Backend::Member(m) => members::table(m).into_iter().map(member_pb).collect(),
        };
        Ok(Response::new(pb::MemberListResponse {
            header: self.node.current_header(),
            members,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        let Backend::Member(member) = self.node.backend() else {
            if id == self.node.member_id() {
                return Err(errors::member_not_learner());
            }
            return Err(errors::member_not_found());
        };
        let changed = self.change(member, MemberRequest::Promote { id }).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.node.current_header(),
            members: changed.members.into_iter().map(info_pb).collect(),
        }))
    }
}
