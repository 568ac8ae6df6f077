//! The key-value API of a replicated store: `etch_engine::Store`'s methods, through Raft.

use engine::{
    BatchResponse, CommandResponse, DeleteResponse, KeyValue, OpResponse, PutOp, PutResponse,
    Range, RangeOptions, RangeResponse, Revision, Txn, TxnResponse, WatchOptions, Watcher, WriteOp,
};
use etch_engine as engine;

use super::ReplicatedStore;
use crate::error::{Error, Result};

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Sees every write acknowledged before the read began, on any member (etcd's default):
    /// a ReadIndex round to the leader, then a local read.
    #[default]
    Linearizable,
    /// This member's applied state at once, with no round trip: may miss recent writes made
    /// elsewhere (never one acknowledged by this member), and can go on serving while the
    /// member is cut off.
    Serializable,
}

fn mismatched(what: &str, got: &CommandResponse) -> Error {
    Error::Store(engine::Error::Corrupt(format!(
        "internal: {what} produced {got:?}"
    )))
}

impl ReplicatedStore {
    async fn barrier(&self, consistency: ReadConsistency) -> Result<engine::Store> {
        match consistency {
            ReadConsistency::Linearizable => self.read_barrier().await?,
            ReadConsistency::Serializable => self.check_open()?,
        }
        Ok(self.inner.machine.store())
    }

    /// Puts `key = value`.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<PutResponse> {
        self.put_with(PutOp {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            ..Default::default()
        })
        .await
    }

    /// A put with etcd's options (lease, prev_kv, ignore_value, ignore_lease).
    pub async fn put_with(&self, op: PutOp) -> Result<PutResponse> {
        let mut resp = self.batch(vec![WriteOp::Put(op)]).await?;
        match resp.responses.pop() {
            Some(OpResponse::Put(p)) => Ok(p),
            other => Err(Error::Store(engine::Error::Corrupt(format!(
                "internal: put produced {other:?}"
            )))),
        }
    }

    /// Deletes one key; `deleted` is 0 or 1.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse> {
        self.delete_range(Range::key(key), false).await
    }

    /// Deletes every key of a range at one revision.
    pub async fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse> {
        let mut resp = self
            .batch(vec![WriteOp::DeleteRange { range, prev_kv }])
            .await?;
        match resp.responses.pop() {
            Some(OpResponse::Delete(d)) => Ok(d),
            other => Err(Error::Store(engine::Error::Corrupt(format!(
                "internal: delete produced {other:?}"
            )))),
        }
    }

    /// Applies several writes atomically at one revision.
    pub async fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse> {
        match self.propose(engine::Command::Batch(ops)).await? {
            CommandResponse::Batch(r) => Ok(r),
            other => Err(mismatched("batch", &other)),
        }
    }

    /// Runs a transaction; its compares are evaluated when it is applied, on every member.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        match self.propose(engine::Command::Txn(txn)).await? {
            CommandResponse::Txn(r) => Ok(r),
            other => Err(mismatched("txn", &other)),
        }
    }

    /// Runs `f` as an optimistic read-write transaction, as `etch_engine::Store::write` does:
    /// `f` reads this member's store after a linearizable barrier and buffers writes; they are
    /// proposed as one transaction guarded by what `f` read, whose compares every member
    /// evaluates when it applies it. If a concurrent writer changed something `f` read, `f` runs
    /// again on a fresh view, up to the store's `Options::write_attempts` times, then
    /// [`engine::Error::Conflict`]. `f` must have no other side effects; an error from `f`
    /// aborts without writing. Returns `f`'s result and the revision of the writes (of the
    /// view read, when `f` wrote nothing).
    pub async fn write<T>(
        &self,
        mut f: impl FnMut(&mut engine::WriteTxn) -> engine::Result<T>,
    ) -> Result<(T, Revision)> {
        let store = self.inner.machine.store();
        let attempts = store.write_attempt_limit();
        for _ in 0..attempts {
            let store = self.barrier(ReadConsistency::Linearizable).await?;
            let mut tx = store.begin_write()?;
            let out = f(&mut tx)?;
            let revision = tx.revision();
            let Some(txn) = tx.into_guarded_txn() else {
                return Ok((out, revision));
            };
            // One transaction however many keys `f` touched, as on a single store.
            match self
                .propose_admitted(engine::Command::Txn(txn), true)
                .await?
            {
                CommandResponse::Txn(r) if r.succeeded => return Ok((out, r.header_revision)),
                CommandResponse::Txn(_) => continue,
                other => return Err(mismatched("write", &other)),
            }
        }
        Err(Error::Store(engine::Error::Conflict { attempts }))
    }

    /// Compacts history up to `revision` on every member; returns the revision at the time.
    pub async fn compact(&self, revision: Revision) -> Result<Revision> {
        match self.propose(engine::Command::Compact(revision)).await? {
            CommandResponse::Compact(r) => Ok(r),
            other => Err(mismatched("compact", &other)),
        }
    }

    /// A key's live version (linearizable).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        self.get_consistent(key, ReadConsistency::Linearizable)
            .await
    }

    /// A key's live version with the given consistency.
    pub async fn get_consistent(
        &self,
        key: impl AsRef<[u8]>,
        consistency: ReadConsistency,
    ) -> Result<Option<KeyValue>> {
        Ok(self.barrier(consistency).await?.get(key)?)
    }

    /// The keys of a range at the current revision (linearizable).
    pub async fn range(&self, range: Range) -> Result<RangeResponse> {
        self.range_with(&range, &RangeOptions::default()).await
    }

    /// The keys of a range with etcd's options (linearizable).
    pub async fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        self.range_consistent(range, opts, ReadConsistency::Linearizable)
            .await
    }

    /// The keys of a range with etcd's options and the given consistency.
    pub async fn range_consistent(
        &self,
        range: &Range,
        opts: &RangeOptions,
        consistency: ReadConsistency,
    ) -> Result<RangeResponse> {
        Ok(self.barrier(consistency).await?.range_with(range, opts)?)
    }

    /// This member's applied revision (serializable).
    pub fn revision(&self) -> Revision {
        self.inner.machine.store().revision()
    }

    /// Watches a range on this member's applied state. Every member applies the same entries
    /// in the same order, so the events and their revisions are the same on every member, and
    /// nothing uncommitted is ever shown. A snapshot installed on this member (it fell too far
    /// behind) replaces the store and ends its watches.
    pub fn watch(&self, range: Range) -> Result<Watcher> {
        self.check_open()?;
        Ok(self.inner.machine.store().watch(range)?)
    }

    /// [`ReplicatedStore::watch`] with etcd's options (start revision, prev_kv, filters).
    pub fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<Watcher> {
        self.check_open()?;
        Ok(self.inner.machine.store().watch_with(range, opts)?)
    }

    /// This member's hash of the keyspace at `revision` (0: its current one); compare members
    /// with [`ReplicatedStore::check_hashes`].
    pub fn hash_kv(&self, revision: Revision) -> Result<u32> {
        self.check_open()?;
        Ok(self.inner.machine.store().hash_kv(revision)?)
    }

    /// This member's store status (its applied revision, sizes, ...).
    pub fn status(&self) -> Result<engine::Status> {
        self.check_open()?;
        Ok(self.inner.machine.store().status()?)
    }

    /// Integrity check of this member's store file.
    pub fn check(&self) -> Result<engine::CheckReport> {
        self.check_open()?;
        Ok(self.inner.machine.store().check()?)
    }

    /// Defragments this member's file (etcd's defrag, run on one member): the store is
    /// rewritten compactly and its Raft log (entries and vote) kept as it is, so the member goes
    /// on replicating and restarts as before. Writes to the store, appends to the log included,
    /// wait while it runs, as etcd's member blocks during a defrag: run it on one member at a
    /// time. Returns the file size before and after.
    pub fn defrag(&self) -> Result<(u64, u64)> {
        self.check_open()?;
        Ok(self.inner.machine.store().defrag()?)
    }

    /// Writes a standalone copy of this member's applied state to `path` (which must not
    /// exist), as [`engine::Store::snapshot`] does for a local store: a file that opens as a
    /// plain store, or starts a new cluster with `ReplicatedStore::bootstrap`, with every key,
    /// revision and lease this member had applied. Returns the copy's revision and size. Like
    /// etcd's `snapshot save` against one member, the copy is that member's state: a follower's
    /// may trail the leader's by the entries it has not applied yet.
    pub fn snapshot(&self, path: impl AsRef<std::path::Path>) -> Result<(Revision, u64)> {
        self.check_open()?;
        Ok(self.inner.machine.store().snapshot(path)?)
    }
}
