//! The KV service: Range, Put, DeleteRange, Txn and Compact on the backend. A Range honours
//! `serializable` (on a cluster member: this member's state at once, maybe stale); otherwise it
//! is linearizable.

use tonic::{Request, Response, Status};

use crate::convert;
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::kv_server::Kv;

/// Serves etcd's KV service.
pub struct KvService {
    node: Node,
}

impl KvService {
    /// The service over `node`.
    pub fn new(node: Node) -> KvService {
        KvService { node }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let req = self.node.received(request);
        self.node.metrics().range();
        let range = convert::range_of(&req.key, &req.range_end)?;
        let options = convert::range_options(&req)?;
        let resp = self
            .node
            .backend()
            .range(range, options, req.serializable)
            .await
            .map_err(|e| self.node.fail(e))?;
        let header = self.node.header(resp.header_revision);
        Ok(self.node.respond(pb::RangeResponse {
            header,
            ..convert::range_response_to_pb(resp)
        }))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.node.check_space()?;
        self.node.metrics().put();
        let op = convert::put_op(self.node.received(request))?;
        let resp = self
            .node
            .backend()
            .put(op)
            .await
            .map_err(|e| self.node.fail(e))?;
        Ok(self.node.respond(pb::PutResponse {
            header: self.node.header(resp.header_revision),
            prev_kv: resp.prev_kv.map(convert::kv_to_pb),
        }))
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let req = self.node.received(request);
        self.node.metrics().delete();
        let range = convert::range_of(&req.key, &req.range_end)?;
        let prev_kv = req.prev_kv;
        let resp = self
            .node
            .backend()
            .delete_range(range, prev_kv)
            .await
            .map_err(|e| self.node.fail(e))?;
        let header = self.node.header(resp.header_revision);
        Ok(self.node.respond(pb::DeleteRangeResponse {
            header,
            ..convert::delete_response_to_pb(resp)
        }))
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let req = self.node.received(request);
        if convert::txn_puts(&req) {
            self.node.check_space()?;
        }
        self.node.metrics().txn();
        let txn = convert::txn_of(req, self.node.config().max_txn_ops)?;
        let resp = self
            .node
            .backend()
            .txn(txn)
            .await
            .map_err(|e| self.node.fail(e))?;
        let header = self.node.header(resp.header_revision);
        Ok(self.node.respond(convert::txn_response_to_pb(resp, header)))
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let revision = self.node.received(request).revision;
        // The engine's compaction is complete when it returns, so `physical` (wait until the
        // space is reclaimed) always holds.
        let current = self
            .node
            .backend()
            .compact(revision)
            .await
            .map_err(|e| self.node.fail(e))?;
        Ok(self.node.respond(pb::CompactionResponse {
            header: self.node.header(current),
        }))
    }
}
