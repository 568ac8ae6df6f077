//! One API over every backend: [`Kv`] is the core of [`Store`]'s API (keys, ranges,
//! transactions, watches, leases, compaction) as a trait, so a function written once runs on a
//! local file, on a remote server through [`Client`](crate::Client) (`client` feature), on an
//! in-process member of a Raft cluster through `replication::Member` (`replication` feature),
//! and on any other backend that implements it.
//!
//! ```no_run
//! use etch::kv::Kv;
//! // Registers a service; works the same on a Store and on a Client.
//! fn register<K: Kv>(db: &K, name: &str, addr: &str) -> Result<i64, K::Error> {
//!     let lease = db.lease_grant(10, 0)?;
//!     db.put_with(etch::PutOp {
//!         key: format!("svc/{name}").into_bytes(),
//!         value: addr.as_bytes().to_vec(),
//!         lease: lease.id,
//!         ..Default::default()
//!     })?;
//!     Ok(lease.id)
//! }
//! let db = etch::Store::open("app.etch")?;
//! register(&db, "api", "10.0.0.7:8080")?;
//! # Ok::<(), etch::Error>(())
//! ```
//!
//! The methods are synchronous, as [`Store`]'s. A backend whose core is async (the remote
//! client, a cluster member) implements them through a blocking facade that owns a runtime and
//! waits on it; its async API stays available beside the trait. Each backend keeps its own
//! error type ([`Kv::Error`]), because a remote backend fails in ways a file does not
//! (unreachable, timed out); [`Backend::engine`] exposes the engine's [`Error`] inside it, so
//! code matches `Compacted` or `LeaseNotFound` the same way on every backend.

use std::time::Duration;

use etch_engine::{
    BatchResponse, DeleteResponse, Error, KeyValue, LeaseGrant, LeaseInfo, PutOp, PutResponse,
    Range, RangeOptions, RangeResponse, Revision, Store, Txn, TxnResponse, WatchOptions,
    WatchResponse, Watcher, WriteOp,
};

/// What every backend's error offers beside its own variants.
pub trait Backend: std::error::Error + Send + Sync + 'static {
    /// The engine error this is, if the failure is one a local store has too (`Compacted`,
    /// `LeaseNotFound`, `TooManyOps`, ...).
    fn engine(&self) -> Option<&Error>;

    /// True if the backend could not be reached or did not answer in time (never for a local
    /// store): the request may succeed if tried again later.
    fn is_unavailable(&self) -> bool;
}

impl Backend for Error {
    fn engine(&self) -> Option<&Error> {
        Some(self)
    }

    fn is_unavailable(&self) -> bool {
        false
    }
}

/// A watch of any backend: responses in revision order.
pub trait Watch: Send {
    /// The backend's error.
    type Error: Backend;

    /// Waits for the next response; `Ok(None)` once the watch has ended.
    fn recv(&mut self) -> Result<Option<WatchResponse>, Self::Error>;

    /// Waits up to `timeout` for the next response; `Ok(None)` if none came in time or the
    /// watch has ended.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<WatchResponse>, Self::Error>;

    /// The first revision not delivered yet.
    fn next_revision(&self) -> Revision;

    /// Ends the watch.
    fn cancel(&mut self);
}

/// The core API of a key-value backend, with [`Store`]'s method names, request and response
/// types. See the [module documentation](self).
pub trait Kv {
    /// The backend's error; [`Backend::engine`] gives the engine error inside it.
    type Error: Backend;
    /// The backend's watch.
    type Watcher: Watch<Error = Self::Error>;

    /// Puts `key` = `value`.
    fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<PutResponse, Self::Error>;
    /// A put with etcd's options (lease, previous key-value, ignore value or lease).
    fn put_with(&self, op: PutOp) -> Result<PutResponse, Self::Error>;
    /// The current value of `key`, if it exists.
    fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>, Self::Error>;
    /// The keys of `range` at the current revision.
    fn range(&self, range: Range) -> Result<RangeResponse, Self::Error>;
    /// A range read with etcd's options.
    fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse, Self::Error>;
    /// Deletes `key`.
    fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse, Self::Error>;
    /// Deletes every key of `range`, returning them if `prev_kv`.
    fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse, Self::Error>;
    /// Writes at one revision.
    fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse, Self::Error>;
    /// A transaction with compares.
    fn txn(&self, txn: Txn) -> Result<TxnResponse, Self::Error>;
    /// Watches `range` from now on.
    fn watch(&self, range: Range) -> Result<Self::Watcher, Self::Error> {
        self.watch_with(range, WatchOptions::default())
    }
    /// Watches `range` with etcd's options (start revision, previous key-values, filters).
    fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<Self::Watcher, Self::Error>;
    /// Grants a lease of `ttl` seconds; `id` 0 picks a fresh one.
    fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant, Self::Error>;
    /// Revokes a lease, deleting its keys; returns the revision after.
    fn lease_revoke(&self, id: i64) -> Result<Revision, Self::Error>;
    /// Renews a lease once; returns its TTL.
    fn lease_keep_alive(&self, id: i64) -> Result<i64, Self::Error>;
    /// The remaining and granted TTL of a lease, and its keys if asked.
    fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo, Self::Error>;
    /// Every lease with its granted TTL.
    fn lease_list(&self) -> Result<Vec<LeaseGrant>, Self::Error>;
    /// Compacts the history up to `revision`: reads below it fail with [`Error::Compacted`].
    fn compact(&self, revision: Revision) -> Result<Revision, Self::Error>;
}

impl Watch for Watcher {
    type Error = Error;

    fn recv(&mut self) -> Result<Option<WatchResponse>, Error> {
        Watcher::recv(self)
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<WatchResponse>, Error> {
        Watcher::recv_timeout(self, timeout)
    }

    fn next_revision(&self) -> Revision {
        Watcher::next_revision(self)
    }

    fn cancel(&mut self) {
        Watcher::cancel(self)
    }
}

/// Implements [`Kv`] for a type whose inherent methods have the trait's names and shapes;
/// `$wrap` turns what the type's `watch_with` returns into `$watcher`.
macro_rules! delegate_kv {
    ($backend:ty, $error:ty, $watcher:ty) => {
        delegate_kv!($backend, $error, $watcher, std::convert::identity);
    };
    ($backend:ty, $error:ty, $watcher:ty, $wrap:expr) => {
        impl Kv for $backend {
            type Error = $error;
            type Watcher = $watcher;

            fn put(
                &self,
                key: impl AsRef<[u8]>,
                value: impl AsRef<[u8]>,
            ) -> Result<PutResponse, $error> {
                <$backend>::put(self, key, value)
            }
            fn put_with(&self, op: PutOp) -> Result<PutResponse, $error> {
                <$backend>::put_with(self, op)
            }
            fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>, $error> {
                <$backend>::get(self, key)
            }
            fn range(&self, range: Range) -> Result<RangeResponse, $error> {
                <$backend>::range(self, range)
            }
            fn range_with(
                &self,
                range: &Range,
                opts: &RangeOptions,
            ) -> Result<RangeResponse, $error> {
                <$backend>::range_with(self, range, opts)
            }
            fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse, $error> {
                <$backend>::delete(self, key)
            }
            fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse, $error> {
                <$backend>::delete_range(self, range, prev_kv)
            }
            fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse, $error> {
                <$backend>::batch(self, ops)
            }
            fn txn(&self, txn: Txn) -> Result<TxnResponse, $error> {
                <$backend>::txn(self, txn)
            }
            fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<$watcher, $error> {
                <$backend>::watch_with(self, range, opts).map($wrap)
            }
            fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant, $error> {
                <$backend>::lease_grant(self, ttl, id)
            }
            fn lease_revoke(&self, id: i64) -> Result<Revision, $error> {
                <$backend>::lease_revoke(self, id)
            }
            fn lease_keep_alive(&self, id: i64) -> Result<i64, $error> {
                <$backend>::lease_keep_alive(self, id)
            }
            fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo, $error> {
                <$backend>::lease_time_to_live(self, id, with_keys)
            }
            fn lease_list(&self) -> Result<Vec<LeaseGrant>, $error> {
                <$backend>::lease_list(self)
            }
            fn compact(&self, revision: Revision) -> Result<Revision, $error> {
                <$backend>::compact(self, revision)
            }
        }
    };
}

delegate_kv!(Store, Error, Watcher);

#[cfg(feature = "client")]
mod remote {
    use super::*;
    use etch_client::{Client, Error as ClientError, Watcher as ClientWatcher};

    impl Backend for ClientError {
        fn engine(&self) -> Option<&Error> {
            ClientError::engine(self)
        }

        fn is_unavailable(&self) -> bool {
            ClientError::is_unavailable(self)
        }
    }

    impl Watch for ClientWatcher {
        type Error = ClientError;

        fn recv(&mut self) -> Result<Option<WatchResponse>, ClientError> {
            ClientWatcher::recv(self)
        }

        fn recv_timeout(
            &mut self,
            timeout: Duration,
        ) -> Result<Option<WatchResponse>, ClientError> {
            ClientWatcher::recv_timeout(self, timeout)
        }

        fn next_revision(&self) -> Revision {
            ClientWatcher::next_revision(self)
        }

        fn cancel(&mut self) {
            ClientWatcher::cancel(self)
        }
    }

    delegate_kv!(Client, ClientError, ClientWatcher);
}

#[cfg(feature = "replication")]
mod member {
    use super::*;
    use etch_replication::{Error as ClusterError, Member};

    /// A cluster member's errors: the engine's inside [`ClusterError::Store`]; no leader, a
    /// timeout and a leader without room in its log are the transient ones (a new leader may
    /// be elected, the answer may come, the log may be purged).
    impl Backend for ClusterError {
        fn engine(&self) -> Option<&Error> {
            match self {
                ClusterError::Store(e) => Some(e),
                _ => None,
            }
        }

        fn is_unavailable(&self) -> bool {
            matches!(
                self,
                ClusterError::NoLeader | ClusterError::Timeout | ClusterError::TooManyRequests
            )
        }
    }

    /// A watch on a cluster member's own store: the engine's [`Watcher`] with its errors in
    /// the member's error type, as [`Kv`] asks (a member's watch is served locally from what it
    /// has applied, so it keeps working while the member is a follower or has no leader).
    pub struct MemberWatcher(Watcher);

    impl MemberWatcher {
        /// The engine watcher inside.
        pub fn into_inner(self) -> Watcher {
            self.0
        }
    }

    impl Watch for MemberWatcher {
        type Error = ClusterError;

        fn recv(&mut self) -> Result<Option<WatchResponse>, ClusterError> {
            self.0.recv().map_err(ClusterError::Store)
        }

        fn recv_timeout(
            &mut self,
            timeout: Duration,
        ) -> Result<Option<WatchResponse>, ClusterError> {
            self.0.recv_timeout(timeout).map_err(ClusterError::Store)
        }

        fn next_revision(&self) -> Revision {
            self.0.next_revision()
        }

        fn cancel(&mut self) {
            self.0.cancel()
        }
    }

    delegate_kv!(Member, ClusterError, MemberWatcher, MemberWatcher);
}

#[cfg(feature = "replication")]
pub use member::MemberWatcher;
