//! The blocking client: the [`AsyncClient`] driven by a small tokio runtime of its own, with the
//! method names and types of [`etch_engine::Store`].

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use etch_engine::{
    BatchResponse, DeleteResponse, KeyValue, LeaseGrant, LeaseInfo, PutOp, PutResponse, Range,
    RangeOptions, RangeResponse, Revision, Txn, TxnResponse, WatchOptions, WatchResponse, WriteOp,
};
use tokio::runtime::Runtime;

use crate::async_client::{AsyncClient, HashKv, ServerStatus};
use crate::error::{Error, Result};
use crate::keepalive::KeepAlive;
use crate::options::ClientOptions;
use crate::recipes::{Leader, LockKey};
use crate::watch::WatchStream;

/// Threads of the client's runtime: enough for watches and keep-alives to progress while the
/// caller's thread waits on a request.
const WORKER_THREADS: usize = 2;

/// Owns the runtime; shuts it down without waiting (dropping a runtime blocks, which would
/// panic if the last handle went away inside some other async context).
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl OwnedRuntime {
    fn get(&self) -> &Runtime {
        // Only `drop` takes the runtime out.
        self.0
            .as_ref()
            .expect("the runtime lives as long as its owner")
    }

    /// Runs `future` to completion on the runtime; refused (rather than panicking, as tokio
    /// would) on a thread that is itself running async code.
    fn block_on<F: Future>(&self, future: F) -> Result<F::Output> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        Ok(self.get().block_on(future))
    }
}

/// A blocking client of an `etch serve` cluster or an etcd v3 server, shaped like
/// [`etch_engine::Store`]: same method names, same request and response types, engine errors
/// where the server means the same thing (see the crate documentation for the mapping).
/// Cheap to clone; clones share connections and the runtime.
///
/// ```no_run
/// use etch_client::{Client, ClientOptions};
/// let client = Client::connect(&["127.0.0.1:2379"], ClientOptions::default())?;
/// client.put("svc/api", "10.0.0.7:8080")?;
/// assert_eq!(client.get("svc/api")?.unwrap().value, b"10.0.0.7:8080");
/// # Ok::<(), etch_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: AsyncClient,
    runtime: Arc<OwnedRuntime>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `endpoints` (`host:port`, `http://host:port` or `https://host:port`).
    /// Nothing is dialed yet: a server that is down now is no error here.
    pub fn connect<S: AsRef<str>>(endpoints: &[S], options: ClientOptions) -> Result<Client> {
        let inner = AsyncClient::connect(endpoints, options)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("etch-client")
            .enable_all()
            .build()?;
        Ok(Client {
            inner,
            runtime: Arc::new(OwnedRuntime(Some(runtime))),
        })
    }

    /// The async client underneath (shares connections with this one).
    pub fn async_client(&self) -> &AsyncClient {
        &self.inner
    }

    fn run<T, F: Future<Output = Result<T>>>(&self, future: F) -> Result<T> {
        self.runtime.block_on(future)?
    }

    /// Puts `key` = `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<PutResponse> {
        self.run(self.inner.put(key, value))
    }

    /// A put with etcd's options.
    pub fn put_with(&self, op: PutOp) -> Result<PutResponse> {
        self.run(self.inner.put_with(op))
    }

    /// The current value of `key`, if it exists.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        self.run(self.inner.get(key))
    }

    /// The keys of `range` at the current revision.
    pub fn range(&self, range: Range) -> Result<RangeResponse> {
        self.run(self.inner.range(range))
    }

    /// A range read with etcd's options.
    pub fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        self.run(self.inner.range_with(range, opts))
    }

    /// Deletes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse> {
        self.run(self.inner.delete(key))
    }

    /// Deletes every key of `range`, returning them if `prev_kv`.
    pub fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse> {
        self.run(self.inner.delete_range(range, prev_kv))
    }

    /// Writes at one revision (one transaction on the server).
    pub fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse> {
        self.run(self.inner.batch(ops))
    }

    /// A transaction.
    pub fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.run(self.inner.txn(txn))
    }

    /// Compacts the history up to `revision`.
    pub fn compact(&self, revision: Revision) -> Result<Revision> {
        self.run(self.inner.compact(revision))
    }

    /// Grants a lease of `ttl` seconds; `id` 0 lets the server pick one.
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant> {
        self.run(self.inner.lease_grant(ttl, id))
    }

    /// Revokes a lease, deleting its keys.
    pub fn lease_revoke(&self, id: i64) -> Result<Revision> {
        self.run(self.inner.lease_revoke(id))
    }

    /// Renews a lease once; returns its TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.run(self.inner.lease_keep_alive(id))
    }

    /// Keeps lease `id` alive in the background until the handle is dropped.
    pub fn keep_alive(&self, id: i64) -> Result<KeepAlive> {
        let inner = self.inner.clone();
        let keeper = self
            .runtime
            .block_on(async move { inner.keep_alive(id) })??;
        Ok(keeper.holding(self.runtime.clone()))
    }

    /// The remaining and granted TTL of a lease, and its keys if asked.
    pub fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        self.run(self.inner.lease_time_to_live(id, with_keys))
    }

    /// Every lease with its granted TTL.
    pub fn lease_list(&self) -> Result<Vec<LeaseGrant>> {
        self.run(self.inner.lease_list())
    }

    /// Watches `range` from now on.
    pub fn watch(&self, range: Range) -> Result<Watcher> {
        self.watch_with(range, WatchOptions::default())
    }

    /// Watches `range` with etcd's options; resumes after reconnects with no gap and no
    /// duplicate (see [`AsyncClient::watch_with`]).
    pub fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<Watcher> {
        let stream = self.run(self.inner.watch_with(range, opts))?;
        Ok(Watcher {
            stream,
            runtime: self.runtime.clone(),
        })
    }

    /// The status of one of the servers.
    pub fn status(&self) -> Result<ServerStatus> {
        self.run(self.inner.status())
    }

    /// The hash of the key-value history up to `revision` (0 for the current one).
    pub fn hash_kv(&self, revision: Revision) -> Result<HashKv> {
        self.run(self.inner.hash_kv(revision))
    }

    /// Takes the lock `name`, held by `lease`, waiting up to `timeout` (see
    /// [`AsyncClient::lock`]).
    pub fn lock(&self, name: impl AsRef<[u8]>, lease: i64, timeout: Duration) -> Result<LockKey> {
        self.run(self.inner.lock(name, lease, timeout))
    }

    /// Releases a lock.
    pub fn unlock(&self, lock: &LockKey) -> Result<Revision> {
        self.run(self.inner.unlock(lock))
    }

    /// Campaigns in election `name` until this candidate leads or `timeout` passes.
    pub fn campaign(
        &self,
        name: impl AsRef<[u8]>,
        lease: i64,
        value: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Leader> {
        self.run(self.inner.campaign(name, lease, value, timeout))
    }

    /// The current leader of election `name`, `None` if nobody leads.
    pub fn leader(&self, name: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        self.run(self.inner.leader(name))
    }

    /// Publishes a new value as `leader`.
    pub fn proclaim(&self, leader: &Leader, value: impl AsRef<[u8]>) -> Result<Revision> {
        self.run(self.inner.proclaim(leader, value))
    }

    /// Gives up leadership.
    pub fn resign(&self, leader: &Leader) -> Result<Revision> {
        self.run(self.inner.resign(leader))
    }

    /// Streams a snapshot of the server's database into `out`; returns the bytes written.
    pub fn snapshot(&self, out: &mut (dyn Write + Send)) -> Result<u64> {
        self.run(self.inner.snapshot(out))
    }
}

/// A blocking watch, like [`etch_engine::Watcher`]: iterate it or call [`Watcher::recv`] /
/// [`Watcher::recv_timeout`]. Dropping it ends the watch.
pub struct Watcher {
    stream: WatchStream,
    runtime: Arc<OwnedRuntime>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.stream.fmt(f)
    }
}

impl Watcher {
    /// Waits for the next response; `Ok(None)` once the watch has ended.
    pub fn recv(&mut self) -> Result<Option<WatchResponse>> {
        let stream = &mut self.stream;
        self.runtime.block_on(stream.recv())?.transpose()
    }

    /// Waits up to `timeout` for the next response; `Ok(None)` if none came in time or the
    /// watch has ended.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<WatchResponse>> {
        let stream = &mut self.stream;
        // The timer is made inside the runtime: tokio's timers need its context.
        let next = async move { tokio::time::timeout(timeout, stream.recv()).await };
        match self.runtime.block_on(next)? {
            Ok(next) => next.transpose(),
            Err(_) => Ok(None),
        }
    }

    /// The first revision not delivered yet.
    pub fn next_revision(&self) -> Revision {
        self.stream.next_revision()
    }

    /// Ends the watch.
    pub fn cancel(&mut self) {
        self.stream.cancel();
    }
}

impl Iterator for Watcher {
    type Item = Result<WatchResponse>;

    /// Blocks for the next response; ends when the watch ends.
    fn next(&mut self) -> Option<Self::Item> {
        self.recv().transpose()
    }
}
