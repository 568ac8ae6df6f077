//! The Election service (v3election): Campaign waits in the line under `name/` with the
//! candidate's value; the oldest key is the leader; Proclaim and Resign act only on the
//! incarnation of the key named by the `LeaderKey`; Observe streams each new leader.

use std::pin::Pin;

use etch_engine::{Compare, CompareOp, PutOp, Txn, TxnOp};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::kv_to_pb;
use crate::node::Node;
use crate::proto::v3electionpb as pb;
use crate::proto::v3electionpb::election_server::Election;
use crate::queue;

/// Serves etcd's Election service.
pub struct ElectionService {
    node: Node,
}

impl ElectionService {
    /// The service over `node`.
    pub fn new(node: Node) -> ElectionService {
        ElectionService { node }
    }
}

/// etcd's errors of the election service (plain errors there, so gRPC code Unknown).
fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

fn no_leader() -> Status {
    Status::unknown("election: no leader")
}

fn missing_leader_key() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let req = request.into_inner();
        self.node.check_space()?;
        let place = queue::join_and_wait(
            &self.node,
            queue::queue_prefix(&req.name),
            req.lease,
            req.value,
        )
        .await?;
        let (key, rev) = place.keep();
        Ok(Response::new(pb::CampaignResponse {
            header: self.node.current_header(),
            leader: Some(pb::LeaderKey {
                name: req.name,
                key,
                rev,
                lease: req.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        let req = request.into_inner();
        let leader = req.leader.ok_or_else(missing_leader_key)?;
        self.node.check_space()?;
        let value = req.value;
        let txn = Txn::new()
            .when([Compare::create_revision(
                &leader.key,
                CompareOp::Equal,
                leader.rev,
            )])
            .and_then([TxnOp::Put(PutOp {
                key: leader.key.clone(),
                value,
                ignore_lease: true,
                ..Default::default()
            })]);
        let resp = self
            .node
            .backend()
            .txn(txn)
            .await
            .map_err(|e| self.node.fail(e))?;
        if !resp.succeeded {
            return Err(not_leader());
        }
        Ok(Response::new(pb::ProclaimResponse {
            header: self.node.header(resp.header_revision),
        }))
    }

    async fn leader(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        let prefix = queue::queue_prefix(&request.into_inner().name);
        let (revision, kv) = queue::front(self.node.backend(), &prefix)
            .await
            .map_err(|e| self.node.fail(e))?;
        let kv = kv.ok_or_else(no_leader)?;
        Ok(Response::new(pb::LeaderResponse {
            header: self.node.header(revision),
            kv: Some(kv_to_pb(kv)),
        }))
    }

    async fn observe(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let prefix = queue::queue_prefix(&request.into_inner().name);
        let node = self.node.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut revisions = node.revisions();
            let mut shutdown = node.shutdown_signal();
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                revisions.borrow_and_update();
                let read = queue::front(node.backend(), &prefix)
                    .await
                    .map_err(|e| node.fail(e));
                match read {
                    // etcd's Observe reports each leader (key and value change), never "none".
                    Ok((revision, Some(kv))) => {
                        let seen = (kv.key.clone(), kv.mod_revision);
                        if last.as_ref() != Some(&seen) {
                            last = Some(seen);
                            let resp = pb::LeaderResponse {
                                header: node.header(revision),
                                kv: Some(kv_to_pb(kv)),
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok((_, None)) => {}
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
                tokio::select! {
                    changed = revisions.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        let leader = request.into_inner().leader.ok_or_else(missing_leader_key)?;
        queue::delete_if_created_at(self.node.backend(), &leader.key, leader.rev)
            .await
            .map_err(|e| self.node.fail(e))?;
        Ok(Response::new(pb::ResignResponse {
            header: self.node.current_header(),
        }))
    }
}
