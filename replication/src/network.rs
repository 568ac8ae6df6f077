//! The network between members, as a trait: [`Transport`] carries a [`RaftRequest`] from one
//! member to another and brings back the [`RaftReply`]; [`RaftHandler`] is what answers it on the
//! receiving member. [`NetworkFactory`] adapts any transport to openraft's
//! `RaftNetworkFactory`/`RaftNetwork`.
//!
//! Implementations: the deterministic simulation in [`crate::sim`], direct calls in one process
//! ([`crate::local`]) and QUIC with mutual TLS ([`crate::quic`]).
//! All move the same message enums, which are serde types so the QUIC transport can encode them
//! with [`crate::codec`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::flush::LogFlusher;
use crate::forward::{ClientReply, ClientRequest, ForwardError};
use crate::types::{NodeId, Raft, TypeConfig};

/// A boxed, sendable future (what the object-safe traits here return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A message openraft sends to a peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// An election.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client request a member passes to the leader (see [`crate::forward`]).
    Client {
        /// The member that took the client's request.
        from: NodeId,
        /// The request.
        request: ClientRequest,
    },
}

impl RaftRequest {
    /// A short name for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            RaftRequest::AppendEntries(_) => "append",
            RaftRequest::Vote(_) => "vote",
            RaftRequest::InstallSnapshot(_) => "snapshot",
            RaftRequest::Client { .. } => "client",
        }
    }
}

/// The answer to a [`RaftRequest`], of the matching kind.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// Answer to [`RaftRequest::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRequest::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRequest::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answer to [`RaftRequest::Client`].
    Client(Result<ClientReply, ForwardError>),
}

/// Why a request got no answer. Either way the sender cannot tell whether the receiver acted on
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The peer cannot be reached (down, not known, or cut off): back off before retrying.
    Unreachable {
        /// The peer.
        to: NodeId,
    },
    /// The request or its reply was lost in transit: retrying at once is reasonable.
    Lost {
        /// The peer.
        to: NodeId,
    },
    /// The peer answered with a reply of another kind than the request (a transport bug).
    MismatchedReply {
        /// The peer.
        to: NodeId,
    },
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Unreachable { to } => write!(f, "node {to} is unreachable"),
            TransportError::Lost { to } => write!(f, "message to node {to} or its reply was lost"),
            TransportError::MismatchedReply { to } => {
                write!(f, "node {to} answered with a reply of the wrong kind")
            }
        }
    }
}

impl std::error::Error for TransportError {}

/// The receiving end on a member: answers requests from peers.
pub trait RaftHandler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: RaftRequest) -> BoxFuture<'_, RaftReply>;
}

impl RaftHandler for Raft {
    fn handle(&self, request: RaftRequest) -> BoxFuture<'_, RaftReply> {
        Box::pin(async move {
            match request {
                RaftRequest::AppendEntries(r) => {
                    RaftReply::AppendEntries(self.append_entries(r).await)
                }
                RaftRequest::Vote(r) => RaftReply::Vote(self.vote(r).await),
                RaftRequest::InstallSnapshot(r) => {
                    RaftReply::InstallSnapshot(self.install_snapshot(r).await)
                }
                // A bare Raft has no store to serve clients from; members built with
                // `crate::node::ReplicatedStore` answer these.
                RaftRequest::Client { .. } => RaftReply::Client(Err(ForwardError::Unsupported)),
            }
        })
    }
}

/// Carries requests between members.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` from member `from` to member `to` and waits for the reply.
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>>;
}

/// openraft's network factory over any [`Transport`], for the member `me`.
pub struct NetworkFactory<T: Transport> {
    me: NodeId,
    transport: Arc<T>,
    flusher: Option<Arc<LogFlusher>>,
}

impl<T: Transport> NetworkFactory<T> {
    /// The network of member `me` (its log in inline mode: every entry is durable once
    /// openraft knows of it).
    pub fn new(me: NodeId, transport: Arc<T>) -> NetworkFactory<T> {
        NetworkFactory {
            me,
            transport,
            flusher: None,
        }
    }

    /// The network of member `me` whose log is in background mode, synced by `flusher`: an
    /// AppendEntries carrying commit index `c` leaves only once this member's log is durable
    /// through `c` (see [`crate::flush`]).
    pub fn with_flusher(
        me: NodeId,
        transport: Arc<T>,
        flusher: Arc<LogFlusher>,
    ) -> NetworkFactory<T> {
        NetworkFactory {
            me,
            transport,
            flusher: Some(flusher),
        }
    }
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for NetworkFactory<T> {
    type Network = PeerClient<T>;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> PeerClient<T> {
        PeerClient {
            me: self.me,
            target,
            transport: Arc::clone(&self.transport),
            flusher: self.flusher.clone(),
        }
    }
}

/// openraft's connection from one member to one peer.
pub struct PeerClient<T: Transport> {
    me: NodeId,
    target: NodeId,
    transport: Arc<T>,
    flusher: Option<Arc<LogFlusher>>,
}

type RpcResult<R, E = openraft::error::Infallible> =
    Result<R, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl<T: Transport> PeerClient<T> {
    async fn call(&self, request: RaftRequest) -> Result<RaftReply, TransportError> {
        self.transport.send(self.me, self.target, request).await
    }

    fn transport_error<E: std::error::Error>(
        e: TransportError,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match e {
            TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            TransportError::Lost { .. } | TransportError::MismatchedReply { .. } => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    fn mismatched<E: std::error::Error>(
        &self,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        Self::transport_error(TransportError::MismatchedReply { to: self.target })
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for PeerClient<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        if let (Some(flusher), Some(commit)) = (&self.flusher, rpc.leader_commit) {
            // A follower applies what it is told is committed: only entries durable here too
            // (with the followers' durable acknowledgements, on a majority).
            if let Err(e) = flusher.durable(commit.index).await {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        }
        match self.call(RaftRequest::AppendEntries(rpc)).await {
            Ok(RaftReply::AppendEntries(reply)) => reply.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.mismatched()),
            Err(e) => Err(Self::transport_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(RaftRequest::InstallSnapshot(rpc)).await {
            Ok(RaftReply::InstallSnapshot(reply)) => reply.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.mismatched()),
            Err(e) => Err(Self::transport_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(RaftRequest::Vote(rpc)).await {
            Ok(RaftReply::Vote(reply)) => reply.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.mismatched()),
            Err(e) => Err(Self::transport_error(e)),
        }
    }
}
