//! [`Member`]: a replicated store with `etch_engine::Store`'s *blocking* methods, for
//! applications that do not use async (and for the C and Python bindings).
//!
//! A member needs a tokio runtime: openraft's tasks (elections, replication, applying) run on
//! it whether or not a caller is waiting. [`Member::open`] makes one (two worker threads) for
//! the member; [`Member::from_async`] wraps a [`ReplicatedStore`] on a runtime the caller
//! shares between several members of one process. Each method blocks the calling thread on the
//! async method of the same name, so arguments, results and errors are exactly
//! [`ReplicatedStore`]'s, which are `Store`'s plus the cluster's (see [`crate::Error`]).
//!
//! Calling a blocking method from a thread that is running async code (inside a tokio runtime)
//! would stall that runtime's worker, or deadlock it; such a call returns
//! [`Error::BlockingInAsync`] instead. Use the [`ReplicatedStore`] ([`Member::as_async`]) there.
//!
//! Dropping the last handle of a runtime [`Member::open`] made shuts it down in the background
//! (allowed anywhere, unlike dropping a tokio runtime inside async code); call
//! [`Member::shutdown`] first for a clean stop.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use etch_engine as engine;
use etch_engine::{
    BatchResponse, DeleteResponse, KeyValue, LeaseGrant, LeaseInfo, PutOp, PutResponse, Range,
    RangeOptions, RangeResponse, Revision, Txn, TxnResponse, WatchOptions, Watcher, WriteOp,
};

use crate::error::{Error, Result};
use crate::log_store::LogStore;
use crate::network::{RaftHandler, Transport};
use crate::node::{HashReport, NodeConfig, ReadConsistency, ReplicatedStore};
use crate::types::NodeId;

/// Owns a runtime and shuts it down without blocking when the last member using it goes.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Where a member's async work runs.
#[derive(Clone)]
enum Runtime {
    Owned(Arc<OwnedRuntime>),
    Shared(tokio::runtime::Handle),
}

impl Runtime {
    fn handle(&self) -> tokio::runtime::Handle {
        match self {
            Runtime::Owned(rt) => match &rt.0 {
                Some(rt) => rt.handle().clone(),
                None => unreachable!("the runtime is taken only when the last handle drops"),
            },
            Runtime::Shared(h) => h.clone(),
        }
    }
}

/// A member of a Raft cluster with blocking methods; see the module documentation. Clones
/// share the member.
#[derive(Clone)]
pub struct Member {
    runtime: Runtime,
    store: ReplicatedStore,
}

/// Runs `f` to completion on `handle`, refusing when the calling thread is itself inside a
/// runtime.
fn block_on<F: Future>(handle: &tokio::runtime::Handle, f: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::BlockingInAsync);
    }
    Ok(handle.block_on(f))
}

impl Member {
    /// Opens (or creates) the member's store at `path` and starts it, on a runtime of its own
    /// (two worker threads); see [`ReplicatedStore::open`] for the arguments.
    pub fn open<L: LogStore, T: Transport>(
        config: NodeConfig,
        path: impl AsRef<Path>,
        opts: engine::Options,
        log: Arc<L>,
        transport: Arc<T>,
    ) -> Result<Member> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("etch-member-{}", config.id))
            .enable_all()
            .build()
            .map_err(|e| Error::Store(engine::Error::Io(e)))?;
        let handle = rt.handle().clone();
        let runtime = Runtime::Owned(Arc::new(OwnedRuntime(Some(rt))));
        let path = path.as_ref().to_path_buf();
        let store = block_on(
            &handle,
            ReplicatedStore::open(config, path, opts, log, transport),
        )??;
        Ok(Member { runtime, store })
    }

    /// Wraps a member started on a runtime the caller owns (`handle` must be a multi-thread
    /// runtime's, or one some other thread drives: a blocking call waits for work on it).
    pub fn from_async(handle: tokio::runtime::Handle, store: ReplicatedStore) -> Member {
        Member {
            runtime: Runtime::Shared(handle),
            store,
        }
    }

    /// The async store underneath (for async code, and what a transport registers).
    pub fn as_async(&self) -> &ReplicatedStore {
        &self.store
    }

    fn block<F: Future>(&self, f: F) -> Result<F::Output> {
        block_on(&self.runtime.handle(), f)
    }

    /// What answers this member's peers (see [`ReplicatedStore::handler`]).
    pub fn handler(&self) -> Arc<dyn RaftHandler> {
        self.store.handler()
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.store.id()
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.store.leader()
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.store.is_leader()
    }

    /// The voters and the learners, as this member knows them.
    pub fn members(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        self.store.members()
    }

    /// Makes a new cluster of `members` (see [`ReplicatedStore::initialize`]).
    pub fn initialize(&self, members: BTreeSet<NodeId>) -> Result<()> {
        self.block(self.store.initialize(members))?
    }

    /// Adds a learner and waits until it caught up (on the leader).
    pub fn add_learner(&self, id: NodeId) -> Result<()> {
        self.block(self.store.add_learner(id))?
    }

    /// Makes a learner a voter (on the leader).
    pub fn promote(&self, id: NodeId) -> Result<()> {
        self.block(self.store.promote(id))?
    }

    /// Removes a member (on the leader).
    pub fn remove(&self, id: NodeId) -> Result<()> {
        self.block(self.store.remove(id))?
    }

    /// Stops the member: Raft, its background duties, the store (closed cleanly).
    pub fn shutdown(&self) -> Result<()> {
        self.block(self.store.shutdown())?
    }

    /// Puts `key = value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<PutResponse> {
        self.block(self.store.put(key, value))?
    }

    /// A put with etcd's options.
    pub fn put_with(&self, op: PutOp) -> Result<PutResponse> {
        self.block(self.store.put_with(op))?
    }

    /// Deletes one key.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse> {
        self.block(self.store.delete(key))?
    }

    /// Deletes every key of a range at one revision.
    pub fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse> {
        self.block(self.store.delete_range(range, prev_kv))?
    }

    /// Applies several writes atomically at one revision.
    pub fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse> {
        self.block(self.store.batch(ops))?
    }

    /// Runs a transaction (compares evaluated when applied).
    pub fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.block(self.store.txn(txn))?
    }

    /// An optimistic read-write transaction (see [`ReplicatedStore::write`]).
    pub fn write<T>(
        &self,
        f: impl FnMut(&mut engine::WriteTxn) -> engine::Result<T>,
    ) -> Result<(T, Revision)> {
        self.block(self.store.write(f))?
    }

    /// Compacts history up to `revision` on every member.
    pub fn compact(&self, revision: Revision) -> Result<Revision> {
        self.block(self.store.compact(revision))?
    }

    /// A key's live version (linearizable).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        self.block(self.store.get(key))?
    }

    /// A key's live version with the given consistency.
    pub fn get_consistent(
        &self,
        key: impl AsRef<[u8]>,
        consistency: ReadConsistency,
    ) -> Result<Option<KeyValue>> {
        self.block(self.store.get_consistent(key, consistency))?
    }

    /// The keys of a range (linearizable).
    pub fn range(&self, range: Range) -> Result<RangeResponse> {
        self.block(self.store.range(range))?
    }

    /// The keys of a range with etcd's options (linearizable).
    pub fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        self.block(self.store.range_with(range, opts))?
    }

    /// The keys of a range with etcd's options and the given consistency.
    pub fn range_consistent(
        &self,
        range: &Range,
        opts: &RangeOptions,
        consistency: ReadConsistency,
    ) -> Result<RangeResponse> {
        self.block(self.store.range_consistent(range, opts, consistency))?
    }

    /// This member's applied revision (serializable).
    pub fn revision(&self) -> Revision {
        self.store.revision()
    }

    /// Watches a range on this member's store.
    pub fn watch(&self, range: Range) -> Result<Watcher> {
        self.store.watch(range)
    }

    /// Watches a range with options.
    pub fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<Watcher> {
        self.store.watch_with(range, opts)
    }

    /// Grants a lease (`id` 0: one is chosen).
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant> {
        self.block(self.store.lease_grant(ttl, id))?
    }

    /// Revokes a lease and deletes its keys.
    pub fn lease_revoke(&self, id: i64) -> Result<Revision> {
        self.block(self.store.lease_revoke(id))?
    }

    /// Renews a lease through the leader; returns its TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.block(self.store.lease_keep_alive(id))?
    }

    /// A lease's granted and remaining TTL, and its keys if asked.
    pub fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        self.block(self.store.lease_time_to_live(id, with_keys))?
    }

    /// Every lease.
    pub fn lease_list(&self) -> Result<Vec<LeaseGrant>> {
        self.block(self.store.lease_list())?
    }

    /// The hash of the key space at `revision` on this member.
    pub fn hash_kv(&self, revision: Revision) -> Result<u32> {
        self.store.hash_kv(revision)
    }

    /// Compares every member's `hash_kv` at `revision` (etcd's corruption check).
    pub fn check_hashes(&self, revision: Revision) -> Result<HashReport> {
        self.block(self.store.check_hashes(revision))?
    }

    /// This member's store status.
    pub fn status(&self) -> Result<engine::Status> {
        self.store.status()
    }

    /// Integrity check of this member's store.
    pub fn check(&self) -> Result<engine::CheckReport> {
        self.store.check()
    }
}
