//! The Cluster service on a single node: MemberList names this node; membership changes are
//! answered as etcd answers changes a cluster cannot take (replication comes later).

use tonic::{Request, Response, Status};

use crate::errors;
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::Cluster;

/// The peer URL etcd advertises by default; a single etch node has no peers but reports it
/// so that tools printing members have something to show.
const DEFAULT_PEER_URL: &str = "http://localhost:2380";

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

    /// The error for a change to member `id`: unknown members are "not found"; this member
    /// cannot be removed or changed without leaving no started member.
    fn refuse(&self, id: u64) -> Status {
        if id == self.node.member_id() {
            errors::member_not_enough_started()
        } else {
            errors::member_not_found()
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(errors::member_not_enough_started())
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(self.refuse(request.into_inner().id))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(self.refuse(request.into_inner().id))
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(pb::MemberListResponse {
            header: self.node.current_header(),
            members: vec![self.this_member()],
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        if request.into_inner().id == self.node.member_id() {
            return Err(errors::member_not_learner());
        }
        Err(errors::member_not_found())
    }
}
