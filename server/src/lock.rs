//! The Lock service (v3lock): Lock waits in the line under `name/` and returns the lock key;
//! Unlock deletes it.

use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::proto::v3lockpb as pb;
use crate::proto::v3lockpb::lock_server::Lock;
use crate::queue;

/// Serves etcd's Lock service.
pub struct LockService {
    node: Node,
}

impl LockService {
    /// The service over `node`.
    pub fn new(node: Node) -> LockService {
        LockService { node }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        let req = request.into_inner();
        self.node.check_space()?;
        let place = queue::join_and_wait(
            &self.node,
            queue::queue_prefix(&req.name),
            req.lease,
            Vec::new(),
        )
        .await?;
        let (key, _) = place.keep();
        Ok(Response::new(pb::LockResponse {
            header: self.node.current_header(),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let key = request.into_inner().key;
        if key.is_empty() {
            return Err(crate::errors::empty_key());
        }
        let resp = self
            .node
            .backend()
            .delete_range(etch_engine::Range::key(key), false)
            .await
            .map_err(|e| self.node.fail(e))?;
        Ok(Response::new(pb::UnlockResponse {
            header: self.node.header(resp.header_revision),
        }))
    }
}
