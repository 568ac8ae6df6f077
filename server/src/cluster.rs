//! The Cluster service.
//!
//! On a single node MemberList names this node and membership changes are answered as etcd
//! answers changes a cluster cannot take. On a cluster member the table comes from the
//! replicated membership (`crate::members`): MemberList shows every voter and learner with its
//! URLs; MemberAdd (also as a learner), MemberRemove, MemberUpdate and MemberPromote change the
//! Raft membership on the leader. A follower forwards them to the leader's advertised client
//! URL (plain `http://` only), as etcd forwards them through Raft. On the leader, changes are
//! queued (`members::ChangeTurn`): one waits for the one before it to commit instead of being
//! refused, and each is checked against the table in its turn.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etch_replication::types::NodeId;
use etch_replication::ReplicatedStore;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::errors;
use crate::members::{self, Change, ChangeError, ChangeTurn, MemberEntry, MemberRecord};
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::cluster_server::Cluster;

/// The peer URL etcd advertises by default; a single etch node has no peers but reports it
/// so that tools printing members have something to show.
const DEFAULT_PEER_URL: &str = "http://localhost:2380";

/// Marks a membership request a follower forwarded, so that it is never forwarded twice (a
/// leader that lost its leadership meanwhile answers "not leader" instead).
const FORWARDED: &str = "etch-forwarded";

/// How long a forwarded membership request may take: longer than the leader's own bound
/// (`members::CHANGE_TIMEOUT`), so that the leader's answer arrives.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause before a forwarded request is sent again to a newly learned leader.
const FORWARD_RETRY_PAUSE: Duration = Duration::from_millis(100);

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

    /// Where a membership change runs: `Ok(Some(m))` on the leader, `Ok(None)` when the
    /// request must go to the leader (`Err` when it cannot: no leader, or already forwarded).
    fn on_leader<'a, T>(
        &self,
        member: &'a ReplicatedStore,
        request: &Request<T>,
    ) -> Result<Option<&'a ReplicatedStore>, Status> {
        if member.is_leader() {
            return Ok(Some(member));
        }
        if request.metadata().get(FORWARDED).is_some() {
            return Err(errors::not_leader());
        }
        Ok(None)
    }

    fn members_pb(&self, member: &ReplicatedStore) -> Vec<pb::Member> {
        members::table(member).into_iter().map(member_pb).collect()
    }
}

/// A request to forward, marked as forwarded.
fn forwarded<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
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

/// Metadata of a MemberUpdate that publishes a started member's attributes: the JSON of its
/// [`MemberRecord`] (name and client URLs; the peer URLs are the request's). Sent by the
/// member itself (`crate::launch`), as etcd publishes them through Raft.
const PUBLISH: &str = "etch-publish";

/// Sends `record` (this member's attributes) to the leader's Cluster service.
pub(crate) async fn publish_to_leader(
    member: &ReplicatedStore,
    record: &MemberRecord,
) -> Result<(), String> {
    let mut client = leader_cluster_client(member)
        .await
        .map_err(|s| s.message().to_string())?;
    let mut request = forwarded(pb::MemberUpdateRequest {
        id: member.id(),
        peer_ur_ls: record.peer_urls.clone(),
    });
    let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
    let value = tonic::metadata::MetadataValue::try_from(json.as_str())
        .map_err(|e| format!("member record is not valid metadata: {e}"))?;
    request.metadata_mut().insert(PUBLISH, value);
    client
        .member_update(request)
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}

/// Sends a membership request to the leader with `call`, within [`FORWARD_TIMEOUT`].
///
/// Leadership moves during elections: the member this one believes leads may have stepped
/// down (it answers "not leader" and changed nothing), or no leader may be known yet. Those
/// answers say the change was not made, so the request is sent again to the leader learned
/// next, as etcd keeps a proposal waiting through an election. Any other answer, including a
/// lost connection (the change may have been made), is returned as it is.
async fn forward<R, F, Fut>(member: &ReplicatedStore, mut call: F) -> Result<Response<R>, Status>
where
    F: FnMut(ClusterClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<Response<R>, Status>>,
{
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    loop {
        let answer = match leader_cluster_client(member).await {
            Ok(client) => call(client).await,
            Err(e) => Err(e),
        };
        match answer {
            Err(s)
                if not_made_without_leader(&s)
                    && tokio::time::Instant::now() + FORWARD_RETRY_PAUSE < deadline =>
            {
                tokio::time::sleep(FORWARD_RETRY_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Whether `status` says a membership change was refused for want of a leader (and so was
/// not made): "not leader" from a member that stepped down, or "no leader" while none is known.
fn not_made_without_leader(status: &Status) -> bool {
    let leaderless = [errors::not_leader(), errors::no_leader()];
    leaderless
        .iter()
        .any(|l| l.code() == status.code() && l.message() == status.message())
}

/// A client of the leader's Cluster service (at its first advertised `http://` client URL).
async fn leader_cluster_client(member: &ReplicatedStore) -> Result<ClusterClient<Channel>, Status> {
    let leader = member.leader().ok_or_else(errors::no_leader)?;
    let table = members::table(member);
    let url = table
        .iter()
        .find(|e| e.id == leader)
        .and_then(|e| e.record.client_urls.iter().find(|u| u.starts_with("http://")))
        .cloned()
        .ok_or_else(|| {
            Status::failed_precondition(
                "etcdserver: not leader (the leader advertises no http:// client URL to forward to)",
            )
        })?;
    let channel = Endpoint::from_shared(url)
        .map_err(|e| Status::internal(format!("etch: bad leader URL: {e}")))?
        .connect_timeout(FORWARD_TIMEOUT)
        .timeout(FORWARD_TIMEOUT)
        .connect()
        .await
        .map_err(|_| errors::no_leader())?;
    Ok(ClusterClient::new(channel))
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
        let Some(leader) = self.on_leader(member, &request)? else {
            let message = request.into_inner();
            return forward(member, |mut client| {
                let request = forwarded(message.clone());
                async move { client.member_add(request).await }
            })
            .await;
        };
        let req = request.into_inner();
        if req.peer_ur_ls.is_empty() {
            return Err(Status::invalid_argument(
                "etcdserver: member add needs at least one peer URL",
            ));
        }
        let turn = ChangeTurn::wait(leader).await.map_err(change_error)?;
        let table = members::table(leader);
        let used: BTreeSet<&String> = table.iter().flat_map(|e| &e.record.peer_urls).collect();
        if req.peer_ur_ls.iter().any(|u| used.contains(u)) {
            return Err(errors::peer_url_exists());
        }
        let taken: BTreeSet<NodeId> = table.iter().map(|e| e.id).collect();
        let id = new_member_id(
            &req.peer_ur_ls,
            &self.node.config().initial_cluster_token,
            &taken,
        )?;
        let record = MemberRecord {
            name: String::new(),
            peer_urls: req.peer_ur_ls.clone(),
            client_urls: Vec::new(),
        };
        // etcd's MemberAdd returns at once: the new member is not running yet, so this does
        // not wait for it to catch up.
        let change = if req.is_learner {
            Change::AddLearner(id, record.to_node())
        } else {
            Change::Members(ChangeMembers::AddVoters(BTreeMap::from([(
                id,
                record.to_node(),
            )])))
        };
        turn.apply(leader, change).await.map_err(change_error)?;
        tracing::info!(
            id = format!("{id:x}"),
            learner = req.is_learner,
            "member added"
        );
        Ok(Response::new(pb::MemberAddResponse {
            header: self.node.current_header(),
            member: Some(pb::Member {
                id,
                name: String::new(),
                peer_ur_ls: req.peer_ur_ls,
                client_ur_ls: Vec::new(),
                is_learner: req.is_learner,
            }),
            members: self.members_pb(leader),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let Backend::Member(member) = self.node.backend() else {
            return Err(self.refuse(request.into_inner().id));
        };
        let Some(leader) = self.on_leader(member, &request)? else {
            let message = request.into_inner();
            return forward(member, |mut client| {
                let request = forwarded(message);
                async move { client.member_remove(request).await }
            })
            .await;
        };
        let id = request.into_inner().id;
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
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.node.current_header(),
            members: self.members_pb(leader),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let Backend::Member(member) = self.node.backend() else {
            return Err(self.refuse(request.into_inner().id));
        };
        let published = match request.metadata().get(PUBLISH) {
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| Status::invalid_argument("etch: bad member attributes"))?;
                let record: MemberRecord = serde_json::from_str(text)
                    .map_err(|_| Status::invalid_argument("etch: bad member attributes"))?;
                Some(record)
            }
            None => None,
        };
        let Some(leader) = self.on_leader(member, &request)? else {
            let message = request.into_inner();
            let publish = published.as_ref().and_then(|r| {
                serde_json::to_string(r)
                    .ok()
                    .and_then(|j| tonic::metadata::MetadataValue::try_from(j.as_str()).ok())
            });
            return forward(member, |mut client| {
                let mut request = forwarded(message.clone());
                if let Some(value) = publish.clone() {
                    request.metadata_mut().insert(PUBLISH, value);
                }
                async move { client.member_update(request).await }
            })
            .await;
        };
        let req = request.into_inner();
        let turn = ChangeTurn::wait(leader).await.map_err(change_error)?;
        let table = members::table(leader);
        let Some(entry) = table.iter().find(|e| e.id == req.id) else {
            return Err(errors::member_not_found());
        };
        if table
            .iter()
            .filter(|e| e.id != req.id)
            .flat_map(|e| &e.record.peer_urls)
            .any(|u| req.peer_ur_ls.contains(u))
        {
            return Err(errors::peer_url_exists());
        }
        let record = match published {
            // A member publishing its own attributes: name and client URLs from it.
            Some(p) => MemberRecord {
                name: p.name,
                peer_urls: req.peer_ur_ls,
                client_urls: p.client_urls,
            },
            None => MemberRecord {
                peer_urls: req.peer_ur_ls,
                ..entry.record.clone()
            },
        };
        let change = ChangeMembers::SetNodes(BTreeMap::from([(req.id, record.to_node())]));
        turn.apply(leader, Change::Members(change))
            .await
            .map_err(change_error)?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.node.current_header(),
            members: self.members_pb(leader),
        }))
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let members = match self.node.backend() {
            Backend::Local(_) => vec![self.this_member()],
            Backend::Member(m) => self.members_pb(m),
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
        let Backend::Member(member) = self.node.backend() else {
            if request.into_inner().id == self.node.member_id() {
                return Err(errors::member_not_learner());
            }
            return Err(errors::member_not_found());
        };
        let Some(leader) = self.on_leader(member, &request)? else {
            let message = request.into_inner();
            return forward(member, |mut client| {
                let request = forwarded(message);
                async move { client.member_promote(request).await }
            })
            .await;
        };
        let id = request.into_inner().id;
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
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.node.current_header(),
            members: self.members_pb(leader),
        }))
    }
}
