//! What the services run on: one local store, or a member of a Raft cluster.
//!
//! Both have the store's API; the services call it through [`Backend`] and never care which it
//! is, except where a cluster has something to say (headers, Status, health, membership).
//!
//! - [`Backend::Local`]: an `etch_engine::Store`. Its calls block (locks, I/O, fsync), so each
//!   runs on tokio's blocking pool, never on the async executor.
//! - [`Backend::Member`]: an `etch_replication::ReplicatedStore`. Writes (put, delete, txn,
//!   compaction, lease grant, revoke and keep-alive) are proposed through Raft (forwarded to the
//!   leader from a follower) and answered once applied on this member; reads are linearizable
//!   (ReadIndex) unless the request asks for a serializable one; watches read this member's own
//!   applied store, whose revisions are the same on every member.

use etch_engine::{
    self as engine, KeyValue, LeaseGrant, LeaseInfo, PutOp, PutResponse, Range, RangeOptions,
    RangeResponse, Revision, Store, Txn, TxnResponse, WatchOptions, Watcher,
};
use etch_replication::{ReadConsistency, ReplicatedStore};

/// The store the server serves. Cheap to clone; clones share it.
#[derive(Clone)]
pub enum Backend {
    /// One local store, as `etch serve` on a single file.
    Local(Store),
    /// A member of a Raft cluster.
    Member(ReplicatedStore),
}

/// Why a backend call failed. Turned into etcd's gRPC errors by `crate::errors::backend`.
#[derive(Debug)]
pub enum BackendError {
    /// The store's or the cluster's error.
    Store(etch_replication::Error),
    /// The call panicked or was cancelled inside the server.
    Internal(String),
}

impl From<engine::Error> for BackendError {
    fn from(e: engine::Error) -> BackendError {
        BackendError::Store(etch_replication::Error::Store(e))
    }
}

impl From<etch_replication::Error> for BackendError {
    fn from(e: etch_replication::Error) -> BackendError {
        BackendError::Store(e)
    }
}

/// A backend call's result.
pub type BackendResult<T> = Result<T, BackendError>;

/// Runs `f` on the blocking pool with a clone of `store`.
async fn blocking<T, F>(store: &Store, f: F) -> BackendResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> engine::Result<T> + Send + 'static,
{
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(result) => result.map_err(BackendError::from),
        Err(e) => {
            tracing::error!(error = %e, "engine call panicked or was cancelled");
            Err(BackendError::Internal(
                "etch: request failed inside the server".into(),
            ))
        }
    }
}

/// Maps a member's error for the calls that must return the engine's error type (watch
/// readers): the member's own store errors stay, a stopped member reads as a closed store.
fn engine_error(e: etch_replication::Error) -> engine::Error {
    match e {
        etch_replication::Error::Store(e) => e,
        etch_replication::Error::Shutdown => engine::Error::Closed,
        other => engine::Error::InvalidOption(other.to_string()),
    }
}

fn consistency(serializable: bool) -> ReadConsistency {
    if serializable {
        ReadConsistency::Serializable
    } else {
        ReadConsistency::Linearizable
    }
}

impl Backend {
    /// The cluster member, if the backend is one.
    pub fn member(&self) -> Option<&ReplicatedStore> {
        match self {
            Backend::Local(_) => None,
            Backend::Member(m) => Some(m),
        }
    }

    /// The revision of this server's applied state (no round trip).
    pub fn revision(&self) -> Revision {
        match self {
            Backend::Local(s) => s.revision(),
            Backend::Member(m) => m.revision(),
        }
    }

    /// A watcher on this server's applied state (the local store, or this member's).
    pub fn watch_with(&self, range: Range, opts: WatchOptions) -> engine::Result<Watcher> {
        match self {
            Backend::Local(s) => s.watch_with(range, opts),
            Backend::Member(m) => m.watch_with(range, opts).map_err(engine_error),
        }
    }

    /// True once the backend is closed for good (its store closed, or the member shut down).
    pub fn is_closed(&self) -> bool {
        match self {
            Backend::Local(s) => s
                .status()
                .is_err_and(|e| matches!(e, engine::Error::Closed)),
            Backend::Member(m) => m
                .status()
                .is_err_and(|e| matches!(e, etch_replication::Error::Shutdown)),
        }
    }

    /// A range; `serializable` reads this server's state at once (on a member: maybe stale),
    /// otherwise a linearizable read.
    pub async fn range(
        &self,
        range: Range,
        opts: RangeOptions,
        serializable: bool,
    ) -> BackendResult<RangeResponse> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.range_with(&range, &opts)).await,
            Backend::Member(m) => Ok(m
                .range_consistent(&range, &opts, consistency(serializable))
                .await?),
        }
    }

    /// One key's live version (linearizable on a member).
    pub async fn get(&self, key: Vec<u8>) -> BackendResult<Option<KeyValue>> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.get(&key)).await,
            Backend::Member(m) => Ok(m.get(key).await?),
        }
    }

    /// A put with etcd's options.
    pub async fn put(&self, op: PutOp) -> BackendResult<PutResponse> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.put_with(op)).await,
            Backend::Member(m) => Ok(m.put_with(op).await?),
        }
    }

    /// Deletes a range at one revision.
    pub async fn delete_range(
        &self,
        range: Range,
        prev_kv: bool,
    ) -> BackendResult<engine::DeleteResponse> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.delete_range(range, prev_kv)).await,
            Backend::Member(m) => Ok(m.delete_range(range, prev_kv).await?),
        }
    }

    /// A transaction.
    pub async fn txn(&self, txn: Txn) -> BackendResult<TxnResponse> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.txn(txn)).await,
            Backend::Member(m) => Ok(m.txn(txn).await?),
        }
    }

    /// Compacts history up to `revision`; returns the revision at the time.
    pub async fn compact(&self, revision: Revision) -> BackendResult<Revision> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.compact(revision)).await,
            Backend::Member(m) => Ok(m.compact(revision).await?),
        }
    }

    /// Grants a lease of `ttl` seconds (`id` 0: a fresh id).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> BackendResult<LeaseGrant> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.lease_grant(ttl, id)).await,
            Backend::Member(m) => Ok(m.lease_grant(ttl, id).await?),
        }
    }

    /// Revokes a lease; returns the revision that deleted its keys.
    pub async fn lease_revoke(&self, id: i64) -> BackendResult<Revision> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.lease_revoke(id)).await,
            Backend::Member(m) => Ok(m.lease_revoke(id).await?),
        }
    }

    /// Renews a lease; returns its TTL.
    pub async fn lease_keep_alive(&self, id: i64) -> BackendResult<i64> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.lease_keep_alive(id)).await,
            Backend::Member(m) => Ok(m.lease_keep_alive(id).await?),
        }
    }

    /// A lease's remaining and granted TTL, and its keys if asked.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> BackendResult<LeaseInfo> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.lease_time_to_live(id, keys)).await,
            Backend::Member(m) => Ok(m.lease_time_to_live(id, keys).await?),
        }
    }

    /// Every lease.
    pub async fn lease_list(&self) -> BackendResult<Vec<LeaseGrant>> {
        match self {
            Backend::Local(s) => blocking(s, |s| s.lease_list()).await,
            Backend::Member(m) => Ok(m.lease_list().await?),
        }
    }

    /// The status of this server's store (on a member: its own applied store).
    pub async fn status(&self) -> BackendResult<engine::Status> {
        match self {
            Backend::Local(s) => blocking(s, |s| s.status()).await,
            Backend::Member(m) => {
                let m = m.clone();
                match tokio::task::spawn_blocking(move || m.status()).await {
                    Ok(r) => Ok(r?),
                    Err(e) => Err(BackendError::Internal(e.to_string())),
                }
            }
        }
    }

    /// The hash of the keyspace at `revision` (0: the current one) on this server's store.
    pub async fn hash_kv(&self, revision: Revision) -> BackendResult<u32> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.hash_kv(revision)).await,
            Backend::Member(m) => {
                let m = m.clone();
                match tokio::task::spawn_blocking(move || m.hash_kv(revision)).await {
                    Ok(r) => Ok(r?),
                    Err(e) => Err(BackendError::Internal(e.to_string())),
                }
            }
        }
    }

    /// Writes a standalone copy of the store (a member: of its applied state) to `path`, which
    /// must not exist; returns the copy's revision and size.
    pub async fn snapshot(&self, path: std::path::PathBuf) -> BackendResult<(Revision, u64)> {
        match self {
            Backend::Local(s) => blocking(s, move |s| s.snapshot(&path)).await,
            Backend::Member(m) => {
                let m = m.clone();
                match tokio::task::spawn_blocking(move || m.snapshot(&path)).await {
                    Ok(r) => Ok(r?),
                    Err(e) => Err(BackendError::Internal(e.to_string())),
                }
            }
        }
    }

    /// The local store, for the maintenance calls only a local store offers here
    /// (defragment): `None` on a cluster member.
    pub fn local_store(&self) -> Option<&Store> {
        match self {
            Backend::Local(s) => Some(s),
            Backend::Member(_) => None,
        }
    }

    /// Closes the backend: checkpoints and closes the local store, or shuts the member down
    /// (its Raft stops and its store is checkpointed and closed).
    pub async fn close(&self) -> BackendResult<()> {
        match self {
            Backend::Local(s) => {
                let s = s.clone();
                match tokio::task::spawn_blocking(move || s.close()).await {
                    Ok(r) => Ok(r?),
                    Err(e) => Err(BackendError::Internal(e.to_string())),
                }
            }
            Backend::Member(m) => Ok(m.shutdown().await?),
        }
    }
}
