//! What an `etch_db *` talks to: a local file ([`Store`]), an in-process member of a Raft
//! cluster ([`Member`]), or a remote `etch serve` / etcd server ([`Client`]).
//!
//! Every entry point calls the backend through the methods here, which have the engine's names
//! and return [`FfiResult`], so the entry points do not know which backend they run on. A call
//! that only a local file supports (snapshot, defrag, sync, checkpoint, integrity check, ...)
//! goes through [`Backend::local`], which gives `ETCH_UNSUPPORTED` on the other two. Errors
//! that only a cluster or a network can produce get their own status codes (see `error.rs`).

use std::sync::Arc;
use std::time::Duration;

use etch_client::{Client, Error as ClientError, Watcher as ClientWatcher};
use etch_engine::{
    DeleteResponse, KeyValue, LeaseGrant, LeaseInfo, PutOp, PutResponse, Range, RangeOptions,
    RangeResponse, Revision, Store, Txn, TxnResponse, WatchCanceller, WatchOptions, WatchResponse,
    Watcher, WriteTxn,
};
use etch_replication::local::LocalNetwork;
use etch_replication::quic::QuicTransport;
use etch_replication::types::NodeId;
use etch_replication::{Error as ClusterError, Member};

use crate::error::{
    code_of, Failure, FfiResult, ETCH_BUSY, ETCH_CLOSED, ETCH_CLUSTER, ETCH_EXISTS, ETCH_INTERNAL,
    ETCH_INVALID, ETCH_IO, ETCH_NOT_MEMBER, ETCH_TIMEOUT, ETCH_UNAVAILABLE, ETCH_UNSUPPORTED,
};

/// How a member reaches its peers; kept to stop it (QUIC) or leave the network (local).
pub(crate) enum PeerLink {
    /// QUIC on a UDP port.
    Quic(Arc<QuicTransport>),
    /// A named in-process network of this process.
    Local(Arc<LocalNetwork>),
}

/// An in-process cluster member with the runtime its Raft tasks and transport run on.
pub(crate) struct MemberBackend {
    pub(crate) member: Member,
    pub(crate) link: PeerLink,
    /// Owned here (not by the member) because the QUIC transport must be bound inside it
    /// before the member exists. `None` only while closing.
    pub(crate) runtime: Option<tokio::runtime::Runtime>,
}

impl MemberBackend {
    /// Stops the member (Raft, its store closed cleanly), then its transport and runtime.
    fn close(mut self) -> FfiResult {
        let stopped = self.member.shutdown().map_err(cluster_failure);
        match &self.link {
            PeerLink::Quic(transport) => {
                if let Some(rt) = &self.runtime {
                    rt.block_on(transport.shutdown());
                }
            }
            PeerLink::Local(net) => net.unregister(self.member.id()),
        }
        if let Some(rt) = self.runtime.take() {
            // Tasks still parked on the runtime (a peer connection's last timer) are dropped,
            // not waited for: the member and its file are closed already.
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        stopped
    }
}

impl Drop for MemberBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The backend of one handle.
pub(crate) enum Backend {
    /// A store file opened in this process (etch_open(), etch_restore()).
    Local(Store),
    /// A member of a cluster, in this process (etch_open_member()).
    Member(Box<MemberBackend>),
    /// A remote server (etch_connect()).
    Remote(Client),
}

/// The failure for a cluster member's error.
pub(crate) fn cluster_failure(err: ClusterError) -> Failure {
    let code = match &err {
        ClusterError::Store(e) => code_of(e),
        ClusterError::NoLeader => ETCH_UNAVAILABLE,
        ClusterError::Timeout => ETCH_TIMEOUT,
        ClusterError::NotMember { .. } => ETCH_NOT_MEMBER,
        ClusterError::Shutdown => ETCH_CLOSED,
        ClusterError::AlreadyMember { .. } | ClusterError::HasHistory => ETCH_EXISTS,
        ClusterError::NotLeader { .. } | ClusterError::Raft(_) => ETCH_CLUSTER,
        ClusterError::TooManyRequests => ETCH_BUSY,
        // A blocking call made where it would stall an async runtime: a misuse of the API.
        ClusterError::BlockingInAsync => ETCH_INVALID,
        // Variants added to the error later (it is non-exhaustive).
        _ => ETCH_INTERNAL,
    };
    Failure::new(code, err.to_string())
}

/// The failure for a remote client's error.
pub(crate) fn client_failure(err: ClientError) -> Failure {
    let code = match &err {
        ClientError::Engine(e) => code_of(e),
        ClientError::NoEndpoint | ClientError::InvalidEndpoint { .. } | ClientError::Tls(_) => {
            ETCH_INVALID
        }
        ClientError::Unavailable {
            maybe_applied: false,
            ..
        } => ETCH_UNAVAILABLE,
        // The request may have reached a server: as after a timeout, its outcome is unknown.
        ClientError::Unavailable {
            maybe_applied: true,
            ..
        }
        | ClientError::DeadlineExceeded { .. } => ETCH_TIMEOUT,
        // etcd's answer when the cluster cannot take a write now (`rpctypes.ErrTooManyRequests`).
        ClientError::Server { message, .. } if message == "etcdserver: too many requests" => {
            ETCH_BUSY
        }
        ClientError::Server { .. } => ETCH_CLUSTER,
        ClientError::Io(_) => ETCH_IO,
        _ => ETCH_INTERNAL,
    };
    Failure::new(code, err.to_string())
}

/// Runs the same call on whichever backend, converting each one's error.
macro_rules! each {
    ($self:expr, $b:ident => $call:expr) => {
        match $self {
            Backend::Local($b) => $call.map_err(Failure::from),
            Backend::Member(m) => {
                let $b = &m.member;
                $call.map_err(cluster_failure)
            }
            Backend::Remote($b) => $call.map_err(client_failure),
        }
    };
}

impl Backend {
    /// The local store, for the calls only a local file supports.
    pub(crate) fn local(&self, what: &str) -> FfiResult<&Store> {
        match self {
            Backend::Local(store) => Ok(store),
            Backend::Member(_) => Err(unsupported(what, "an in-process cluster member")),
            Backend::Remote(_) => Err(unsupported(what, "a remote server")),
        }
    }

    /// The cluster member, for the calls only a member supports.
    pub(crate) fn member(&self, what: &str) -> FfiResult<&Member> {
        match self {
            Backend::Member(m) => Ok(&m.member),
            Backend::Local(_) => Err(unsupported(what, "a local store")),
            Backend::Remote(_) => Err(unsupported(what, "a remote server")),
        }
    }

    pub(crate) fn put_with(&self, op: PutOp) -> FfiResult<PutResponse> {
        each!(self, b => b.put_with(op))
    }

    pub(crate) fn get(&self, key: &[u8]) -> FfiResult<Option<KeyValue>> {
        each!(self, b => b.get(key))
    }

    pub(crate) fn range_with(
        &self,
        range: &Range,
        opts: &RangeOptions,
    ) -> FfiResult<RangeResponse> {
        each!(self, b => b.range_with(range, opts))
    }

    pub(crate) fn delete_range(&self, range: Range, prev_kv: bool) -> FfiResult<DeleteResponse> {
        each!(self, b => b.delete_range(range, prev_kv))
    }

    pub(crate) fn txn(&self, txn: Txn) -> FfiResult<TxnResponse> {
        each!(self, b => b.txn(txn))
    }

    pub(crate) fn compact(&self, revision: Revision) -> FfiResult<Revision> {
        each!(self, b => b.compact(revision))
    }

    /// A lease grant. The arguments are checked here for every backend, as the local store
    /// checks them: an etcd server would grant a TTL of 0 or less as its minimum TTL instead,
    /// and the C API promises ETCH_INVALID for it on every handle.
    pub(crate) fn lease_grant(&self, ttl: i64, id: i64) -> FfiResult<LeaseGrant> {
        if !(1..=9_000_000_000).contains(&ttl) {
            return Err(Failure::invalid(format!(
                "lease TTL {ttl} is not between 1 and 9000000000 seconds"
            )));
        }
        if id < 0 {
            return Err(Failure::invalid(format!("lease id {id} is negative")));
        }
        each!(self, b => b.lease_grant(ttl, id))
    }

    pub(crate) fn lease_revoke(&self, id: i64) -> FfiResult<Revision> {
        each!(self, b => b.lease_revoke(id))
    }

    pub(crate) fn lease_keep_alive(&self, id: i64) -> FfiResult<i64> {
        each!(self, b => b.lease_keep_alive(id))
    }

    pub(crate) fn lease_time_to_live(&self, id: i64, with_keys: bool) -> FfiResult<LeaseInfo> {
        each!(self, b => b.lease_time_to_live(id, with_keys))
    }

    pub(crate) fn lease_list(&self) -> FfiResult<Vec<LeaseGrant>> {
        each!(self, b => b.lease_list())
    }

    /// The current revision: the store's; the cluster's, read linearizably through a member
    /// (a count-only read of one key: a follower first catches up with the leader's commit,
    /// so a revision read after a write is never older than the write); the server's, from
    /// its status.
    pub(crate) fn revision(&self) -> FfiResult<Revision> {
        match self {
            Backend::Local(store) => Ok(store.read()?.revision()),
            Backend::Member(m) => {
                let probe = RangeOptions {
                    count_only: true,
                    ..RangeOptions::default()
                };
                let read = m.member.range_with(&Range::key([0u8]), &probe);
                Ok(read.map_err(cluster_failure)?.header_revision)
            }
            Backend::Remote(client) => Ok(client.status().map_err(client_failure)?.revision),
        }
    }

    /// The hash of the keyspace at `revision` (0: now).
    pub(crate) fn hash_kv(&self, revision: Revision) -> FfiResult<u32> {
        match self {
            Backend::Local(store) => Ok(store.hash_kv(revision)?),
            Backend::Member(m) => m.member.hash_kv(revision).map_err(cluster_failure),
            Backend::Remote(client) => Ok(client.hash_kv(revision).map_err(client_failure)?.hash),
        }
    }

    /// An optimistic read-write transaction (etch_write()): on a local store or a member.
    pub(crate) fn write<T>(
        &self,
        f: impl FnMut(&mut WriteTxn) -> etch_engine::Result<T>,
    ) -> FfiResult<(T, Revision)> {
        match self {
            Backend::Local(store) => Ok(store.write(f)?),
            Backend::Member(m) => m.member.write(f).map_err(cluster_failure),
            Backend::Remote(_) => Err(unsupported("etch_write", "a remote server")),
        }
    }

    /// A watch on `range`.
    pub(crate) fn watch_with(&self, range: Range, opts: WatchOptions) -> FfiResult<AnyWatcher> {
        match self {
            Backend::Local(store) => Ok(AnyWatcher::Engine(store.watch_with(range, opts)?)),
            Backend::Member(m) => m
                .member
                .watch_with(range, opts)
                .map(AnyWatcher::Engine)
                .map_err(cluster_failure),
            Backend::Remote(client) => client
                .watch_with(range, opts)
                .map(AnyWatcher::Remote)
                .map_err(client_failure),
        }
    }

    /// Closes the backend: checkpoints and closes a local store; shuts a member down (its
    /// store closed cleanly, its transport stopped); drops a client's connections.
    pub(crate) fn close(self) -> FfiResult {
        match self {
            Backend::Local(store) => Ok(store.close()?),
            Backend::Member(m) => m.close(),
            Backend::Remote(client) => {
                drop(client);
                Ok(())
            }
        }
    }
}

/// `ETCH_UNSUPPORTED` for `what` on a backend.
fn unsupported(what: &str, backend: &str) -> Failure {
    Failure::new(
        ETCH_UNSUPPORTED,
        format!("{what} is not available on {backend}"),
    )
}

/// A watch of any backend.
pub(crate) enum AnyWatcher {
    /// A local store's or a member's (served from its own store).
    Engine(Watcher),
    /// A remote server's (resumed after reconnects by the client).
    Remote(ClientWatcher),
}

impl AnyWatcher {
    /// Waits up to `timeout` for the next response.
    pub(crate) fn recv_timeout(&mut self, timeout: Duration) -> FfiResult<Option<WatchResponse>> {
        match self {
            AnyWatcher::Engine(w) => Ok(w.recv_timeout(timeout)?),
            AnyWatcher::Remote(w) => w.recv_timeout(timeout).map_err(client_failure),
        }
    }

    /// What wakes a waiting [`AnyWatcher::recv_timeout`] at once, if the backend has one (a
    /// remote watch's wait is cut into short slices instead).
    pub(crate) fn canceller(&self) -> Option<WatchCanceller> {
        match self {
            AnyWatcher::Engine(w) => Some(w.canceller()),
            AnyWatcher::Remote(_) => None,
        }
    }
}

/// The id of a member and of the leader it knows (0: none).
pub(crate) fn member_ids(member: &Member) -> (NodeId, NodeId) {
    (member.id(), member.leader().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cluster_error_has_a_code_of_its_own() {
        let cases = [
            (ClusterError::NoLeader, ETCH_UNAVAILABLE),
            (ClusterError::Timeout, ETCH_TIMEOUT),
            (ClusterError::NotMember { id: 2 }, ETCH_NOT_MEMBER),
            (ClusterError::Shutdown, ETCH_CLOSED),
            (ClusterError::HasHistory, ETCH_EXISTS),
            (ClusterError::NotLeader { leader: None }, ETCH_CLUSTER),
            (ClusterError::Raft("x".into()), ETCH_CLUSTER),
            (ClusterError::TooManyRequests, ETCH_BUSY),
            (ClusterError::BlockingInAsync, ETCH_INVALID),
            (
                ClusterError::Store(etch_engine::Error::EmptyKey),
                ETCH_INVALID,
            ),
        ];
        for (err, code) in cases {
            let f = cluster_failure(err);
            assert_eq!(f.code, code, "{}", f.message);
        }
    }

    #[test]
    fn a_servers_too_many_requests_is_busy() {
        let busy = client_failure(ClientError::Server {
            code: tonic::Code::ResourceExhausted,
            message: "etcdserver: too many requests".into(),
        });
        assert_eq!(busy.code, ETCH_BUSY);
        let other = client_failure(ClientError::Server {
            code: tonic::Code::ResourceExhausted,
            message: "etcdserver: mvcc: database space exceeded".into(),
        });
        assert_eq!(other.code, ETCH_CLUSTER);
    }
}
