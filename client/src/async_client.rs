//! The async core: every request as an `async fn` over the [`Balancer`]. [`crate::Client`] is
//! the blocking facade over it.

use std::io::Write;
use std::sync::Arc;

use etch_engine::{
    BatchResponse, DeleteResponse, Error as EngineError, KeyValue, LeaseGrant, LeaseInfo, PutOp,
    PutResponse, Range, RangeOptions, RangeResponse, Revision, Txn, TxnResponse, WatchOptions,
    WriteOp,
};
use etch_proto::etcdserverpb as pb;
use etch_proto::etcdserverpb::kv_client::KvClient;
use etch_proto::etcdserverpb::lease_client::LeaseClient;
use etch_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use prost::Message;
use tonic::transport::Channel;

use crate::balancer::{Balancer, Retry};
use crate::convert;
use crate::error::{Context, Error, Result};
use crate::keepalive::KeepAlive;
use crate::options::ClientOptions;
use crate::watch::WatchStream;

/// A server's status, as etcd's `StatusResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// The server's version string.
    pub version: String,
    /// The store's current revision.
    pub revision: Revision,
    /// Size of the database file in bytes.
    pub db_size: i64,
    /// Bytes of the database file in use.
    pub db_size_in_use: i64,
    /// The id of the member that answered.
    pub member_id: u64,
    /// The id of the current leader (the member itself for a single server).
    pub leader: u64,
    /// The Raft index.
    pub raft_index: u64,
    /// The Raft term.
    pub raft_term: u64,
    /// The last applied Raft index.
    pub raft_applied_index: u64,
    /// Alarms and errors the server reports.
    pub errors: Vec<String>,
}

/// A hash of the key-value history up to a revision ([`AsyncClient::hash_kv`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashKv {
    /// The hash.
    pub hash: u32,
    /// The compact revision when it was computed.
    pub compact_revision: Revision,
    /// The store's revision when it was computed.
    pub header_revision: Revision,
}

/// The async client. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct AsyncClient {
    pub(crate) balancer: Arc<Balancer>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient").finish_non_exhaustive()
    }
}

fn kv(ch: Channel, max: usize) -> KvClient<Channel> {
    KvClient::new(ch).max_decoding_message_size(max)
}

fn lease(ch: Channel) -> LeaseClient<Channel> {
    LeaseClient::new(ch)
}

fn maintenance(ch: Channel, max: usize) -> MaintenanceClient<Channel> {
    MaintenanceClient::new(ch).max_decoding_message_size(max)
}

impl AsyncClient {
    /// A client of `endpoints` (`host:port`, `http://host:port` or `https://host:port`).
    /// Connections are made on first use, so a server that is down now is no error here;
    /// an invalid endpoint or an empty list is.
    pub fn connect<S: AsRef<str>>(endpoints: &[S], options: ClientOptions) -> Result<AsyncClient> {
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_string()).collect();
        Ok(AsyncClient {
            balancer: Arc::new(Balancer::new(&endpoints, options)?),
        })
    }

    fn max(&self) -> usize {
        self.balancer.opts.max_response_bytes
    }

    /// Puts `key` = `value`.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<PutResponse> {
        self.put_with(PutOp {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            ..PutOp::default()
        })
        .await
    }

    /// A put with etcd's options.
    pub async fn put_with(&self, op: PutOp) -> Result<PutResponse> {
        if op.key.is_empty() {
            return Err(EngineError::EmptyKey.into());
        }
        let request = convert::put_request(op);
        let ctx = Context {
            lease: request.lease,
            size: request.encoded_len(),
            ..Context::default()
        };
        let max = self.max();
        let response = self
            .balancer
            .call(Retry::Write, ctx, |ch| {
                let request = request.clone();
                async move { kv(ch, max).put(request).await }
            })
            .await?;
        Ok(convert::put_response(response.into_inner()))
    }

    /// The current value of `key`, if it exists.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        let response = self.range(Range::key(key)).await?;
        Ok(response.kvs.into_iter().next())
    }

    /// The keys of `range` at the current revision.
    pub async fn range(&self, range: Range) -> Result<RangeResponse> {
        self.range_with(&range, &RangeOptions::default()).await
    }

    /// A range read with etcd's options (limit, revision, sort, filters).
    pub async fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        if range.start().is_empty() {
            return Err(EngineError::EmptyKey.into());
        }
        let request = convert::range_request(range, opts);
        let ctx = Context {
            revision: opts.revision,
            ..Context::default()
        };
        let max = self.max();
        let response = self
            .balancer
            .call(Retry::Idempotent, ctx, |ch| {
                let request = request.clone();
                async move { kv(ch, max).range(request).await }
            })
            .await?;
        Ok(convert::range_response(response.into_inner()))
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse> {
        self.delete_range(Range::key(key), false).await
    }

    /// Deletes every key of `range`, returning them if `prev_kv`.
    pub async fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse> {
        if range.start().is_empty() {
            return Err(EngineError::EmptyKey.into());
        }
        let request = convert::delete_request(&range, prev_kv);
        let ctx = Context {
            size: request.encoded_len(),
            ..Context::default()
        };
        let max = self.max();
        let response = self
            .balancer
            .call(Retry::Write, ctx, |ch| {
                let request = request.clone();
                async move { kv(ch, max).delete_range(request).await }
            })
            .await?;
        Ok(convert::delete_response(response.into_inner()))
    }

    /// Writes at one revision, sent as a transaction without compares.
    pub async fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse> {
        let txn = convert::batch_txn(ops);
        Ok(convert::batch_response(self.txn(txn).await?))
    }

    /// A transaction; see [`etch_engine::Txn`].
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let ops = convert::txn_ops(&txn);
        let request = convert::txn_request(txn);
        let writes = request
            .success
            .iter()
            .chain(&request.failure)
            .any(|op| !matches!(op.request, Some(pb::request_op::Request::RequestRange(_))));
        let ctx = Context {
            ops,
            size: request.encoded_len(),
            ..Context::default()
        };
        let retry = if writes {
            Retry::Write
        } else {
            Retry::Idempotent
        };
        let max = self.max();
        let response = self
            .balancer
            .call(retry, ctx, |ch| {
                let request = request.clone();
                async move { kv(ch, max).txn(request).await }
            })
            .await?;
        Ok(convert::txn_response(response.into_inner()))
    }

    /// Compacts the history up to `revision` (reads below it then fail with
    /// [`EngineError::Compacted`]); returns the revision of the response header.
    pub async fn compact(&self, revision: Revision) -> Result<Revision> {
        let request = pb::CompactionRequest {
            revision,
            physical: true,
        };
        let ctx = Context {
            revision,
            ..Context::default()
        };
        let max = self.max();
        // A write: sent again after it was applied it would fail with `Compacted`.
        let response = self
            .balancer
            .call(Retry::Write, ctx, |ch| async move {
                kv(ch, max).compact(request).await
            })
            .await?;
        Ok(convert::revision(response.into_inner().header.as_ref()))
    }

    /// Grants a lease of `ttl` seconds; `id` 0 lets the server pick one.
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant> {
        let request = pb::LeaseGrantRequest { ttl, id };
        let ctx = Context {
            lease: id,
            ..Context::default()
        };
        // With a chosen id a repeated grant is refused ("lease already exists"), never applied
        // twice; with id 0 a repeat could grant a second lease, so it is a write.
        let retry = if id != 0 {
            Retry::Idempotent
        } else {
            Retry::Write
        };
        let response = self
            .balancer
            .call(retry, ctx, |ch| async move {
                lease(ch).lease_grant(request).await
            })
            .await?
            .into_inner();
        if !response.error.is_empty() {
            return Err(Error::Server {
                code: tonic::Code::Unknown,
                message: response.error,
            });
        }
        Ok(LeaseGrant {
            id: response.id,
            ttl: response.ttl,
        })
    }

    /// Revokes a lease, deleting its keys; returns the revision after the revocation.
    pub async fn lease_revoke(&self, id: i64) -> Result<Revision> {
        let request = pb::LeaseRevokeRequest { id };
        let ctx = Context {
            lease: id,
            ..Context::default()
        };
        // A write: sent again after it was applied it would fail with `LeaseNotFound`.
        let response = self
            .balancer
            .call(Retry::Write, ctx, |ch| async move {
                lease(ch).lease_revoke(request).await
            })
            .await?;
        Ok(convert::revision(response.into_inner().header.as_ref()))
    }

    /// Renews a lease once; returns its TTL. [`AsyncClient::keep_alive`] renews in the
    /// background.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        let ctx = Context {
            lease: id,
            ..Context::default()
        };
        let ttl = self
            .balancer
            .call(Retry::Idempotent, ctx, |ch| async move {
                let request = pb::LeaseKeepAliveRequest { id };
                let mut stream = lease(ch)
                    .lease_keep_alive(tokio_stream::once(request))
                    .await?
                    .into_inner();
                match stream.message().await? {
                    Some(response) => Ok(response.ttl),
                    None => Err(tonic::Status::unavailable(
                        "the server closed the keep-alive stream",
                    )),
                }
            })
            .await?;
        if ttl <= 0 {
            return Err(EngineError::LeaseNotFound { id }.into());
        }
        Ok(ttl)
    }

    /// Keeps lease `id` alive in the background until the returned handle is dropped. The
    /// renewals run as a task on the current tokio runtime ([`Error::OutsideRuntime`] without
    /// one).
    pub fn keep_alive(&self, id: i64) -> Result<KeepAlive> {
        KeepAlive::start(self.clone(), id)
    }

    /// The remaining and granted TTL of a lease, and its keys if asked.
    pub async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        let request = pb::LeaseTimeToLiveRequest {
            id,
            keys: with_keys,
        };
        let ctx = Context {
            lease: id,
            ..Context::default()
        };
        let response = self
            .balancer
            .call(Retry::Idempotent, ctx, |ch| async move {
                lease(ch).lease_time_to_live(request).await
            })
            .await?
            .into_inner();
        // etcd 3.4 answers an unknown lease with TTL -1 rather than an error.
        if response.ttl < 0 {
            return Err(EngineError::LeaseNotFound { id }.into());
        }
        Ok(LeaseInfo {
            id: response.id,
            ttl: response.ttl,
            granted_ttl: response.granted_ttl,
            keys: response.keys,
        })
    }

    /// Every lease with its granted TTL. etcd's list gives ids only, so each lease's TTL is
    /// asked for; a lease that expires meanwhile is left out.
    pub async fn lease_list(&self) -> Result<Vec<LeaseGrant>> {
        let response = self
            .balancer
            .call(Retry::Idempotent, Context::default(), |ch| async move {
                lease(ch).lease_leases(pb::LeaseLeasesRequest {}).await
            })
            .await?
            .into_inner();
        let mut leases = Vec::with_capacity(response.leases.len());
        for status in response.leases {
            match self.lease_time_to_live(status.id, false).await {
                Ok(info) => leases.push(LeaseGrant {
                    id: info.id,
                    ttl: info.granted_ttl,
                }),
                Err(Error::Engine(EngineError::LeaseNotFound { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        leases.sort_by_key(|l| l.id);
        Ok(leases)
    }

    /// Watches `range` from now on; see [`AsyncClient::watch_with`].
    pub async fn watch(&self, range: Range) -> Result<WatchStream> {
        self.watch_with(range, WatchOptions::default()).await
    }

    /// Watches `range` with etcd's options. Returns once the server has created the watch, so
    /// every change committed after this returns is delivered. After a lost connection the
    /// watch is created again, on any endpoint, from the revision after the last one delivered:
    /// no change is missed or delivered twice.
    pub async fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<WatchStream> {
        WatchStream::start(self.clone(), range, opts).await
    }

    /// The status of one of the servers.
    pub async fn status(&self) -> Result<ServerStatus> {
        let max = self.max();
        let r = self
            .balancer
            .call(Retry::Idempotent, Context::default(), |ch| async move {
                maintenance(ch, max).status(pb::StatusRequest {}).await
            })
            .await?
            .into_inner();
        Ok(ServerStatus {
            version: r.version,
            revision: convert::revision(r.header.as_ref()),
            db_size: r.db_size,
            db_size_in_use: r.db_size_in_use,
            member_id: r.header.as_ref().map_or(0, |h| h.member_id),
            leader: r.leader,
            raft_index: r.raft_index,
            raft_term: r.raft_term,
            raft_applied_index: r.raft_applied_index,
            errors: r.errors,
        })
    }

    /// The hash of the key-value history up to `revision` (0 for the current one).
    pub async fn hash_kv(&self, revision: Revision) -> Result<HashKv> {
        let ctx = Context {
            revision,
            ..Context::default()
        };
        let max = self.max();
        let r = self
            .balancer
            .call(Retry::Idempotent, ctx, |ch| async move {
                maintenance(ch, max)
                    .hash_kv(pb::HashKvRequest { revision })
                    .await
            })
            .await?
            .into_inner();
        Ok(HashKv {
            hash: r.hash,
            compact_revision: r.compact_revision,
            header_revision: convert::revision(r.header.as_ref()),
        })
    }

    /// Streams a snapshot of the server's database into `out`, as etcdctl saves it: the
    /// database file followed by the SHA-256 of it (32 bytes) that etcd sends last, which is
    /// checked here. Returns the bytes written. The whole stream is one attempt: when it breaks
    /// the error is returned (what was written is incomplete) and the caller starts over.
    pub async fn snapshot(&self, out: &mut (dyn Write + Send)) -> Result<u64> {
        use sha2::{Digest, Sha256};
        let max = self.max();
        let deadline = tokio::time::Instant::now() + self.balancer.opts.request_timeout;
        let (i, ch) = self.balancer.pick(deadline).await?;
        let ctx = Context::default();
        let timeout = self.balancer.opts.request_timeout;
        let fail = |status: tonic::Status| {
            if crate::error::is_transport_failure(&status) {
                self.balancer.mark_failed(i);
            }
            crate::error::from_status(&status, &ctx, timeout)
        };
        let mut stream = maintenance(ch, max)
            .snapshot(pb::SnapshotRequest {})
            .await
            .map_err(fail)?
            .into_inner();
        let mut written = 0u64;
        let mut digest = Sha256::new();
        // The latest chunk is hashed only once another follows: the last one is the checksum.
        let mut latest: Option<Vec<u8>> = None;
        while let Some(chunk) = stream.message().await.map_err(fail)? {
            out.write_all(&chunk.blob)?;
            written += chunk.blob.len() as u64;
            if let Some(previous) = latest.replace(chunk.blob) {
                digest.update(&previous);
            }
        }
        out.flush()?;
        let expected = digest.finalize();
        match latest {
            Some(sum) if sum.as_slice() == expected.as_slice() => Ok(written),
            _ => Err(Error::Server {
                code: tonic::Code::DataLoss,
                message: "the snapshot does not end with the SHA-256 of its data".into(),
            }),
        }
    }
}
