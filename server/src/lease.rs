//! The Lease service: Grant, Revoke, the KeepAlive stream, TimeToLive and Leases. Expiry runs
//! on the engine's background thread (a local store) or is proposed by the leader (a cluster).

use std::pin::Pin;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::backend::BackendError;
use crate::errors;
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_server::Lease;

/// etcd's largest lease TTL in seconds (`MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// etcd's smallest lease TTL with its default heartbeat and election timeout: shorter TTLs
/// are raised to it (1.5 election timeouts, rounded up to whole seconds).
pub const MIN_LEASE_TTL: i64 = 2;

/// Keep-alive responses buffered per stream before the stream waits for the client.
const KEEPALIVE_CAPACITY: usize = 16;

/// Serves etcd's Lease service.
pub struct LeaseService {
    node: Node,
}

impl LeaseService {
    /// The service over `node`.
    pub fn new(node: Node) -> LeaseService {
        LeaseService { node }
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        self.node.check_space()?;
        if req.ttl > MAX_LEASE_TTL {
            return Err(errors::lease_ttl_too_large());
        }
        if req.id < 0 {
            return Err(Status::invalid_argument(
                "etcdserver: lease ID must be positive",
            ));
        }
        let ttl = req.ttl.max(MIN_LEASE_TTL);
        let grant = self
            .node
            .backend()
            .lease_grant(ttl, req.id)
            .await
            .map_err(|e| self.node.fail(e))?;
        self.node.metrics().lease_granted();
        Ok(Response::new(pb::LeaseGrantResponse {
            header: self.node.current_header(),
            id: grant.id,
            ttl: grant.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let revision = self
            .node
            .backend()
            .lease_revoke(id)
            .await
            .map_err(|e| self.node.fail(e))?;
        self.node.metrics().lease_revoked();
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.node.header(revision),
        }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_CAPACITY);
        let node = self.node.clone();
        tokio::spawn(async move {
            let mut shutdown = node.shutdown_signal();
            loop {
                let req = tokio::select! {
                    biased;
                    _ = shutdown.changed() => {
                        let _ = tx.try_send(Err(errors::stopped()));
                        return;
                    }
                    msg = inbound.message() => match msg {
                        Ok(Some(req)) => req,
                        Ok(None) | Err(_) => return,
                    },
                };
                let id = req.id;
                // etcd answers a renewal of an unknown lease with TTL 0, not an error.
                let renewed = node.backend().lease_keep_alive(id).await;
                let ttl = match renewed.map_err(|e| node.fail(e)) {
                    Ok(ttl) => {
                        node.metrics().lease_renewed();
                        ttl
                    }
                    Err(status) if status.code() == tonic::Code::NotFound => 0,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let resp = pb::LeaseKeepAliveResponse {
                    header: node.current_header(),
                    id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let (id, keys) = (req.id, req.keys);
        let info = match self.node.backend().lease_time_to_live(id, keys).await {
            Ok(info) => Some(info),
            Err(BackendError::Store(etch_replication::Error::Store(
                etch_engine::Error::LeaseNotFound { .. },
            ))) => None,
            Err(e) => return Err(self.node.fail(e)),
        };
        let header = self.node.current_header();
        // etcd reports an unknown (or expired) lease as TTL -1 rather than an error.
        let resp = match info {
            Some(info) => pb::LeaseTimeToLiveResponse {
                header,
                id,
                ttl: info.ttl,
                granted_ttl: info.granted_ttl,
                keys: info.keys,
            },
            None => pb::LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let leases = self
            .node
            .backend()
            .lease_list()
            .await
            .map_err(|e| self.node.fail(e))?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.node.current_header(),
            leases: leases
                .into_iter()
                .map(|l| pb::LeaseStatus { id: l.id })
                .collect(),
        }))
    }
}
