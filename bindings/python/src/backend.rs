//! The three places a `Store` can live: a local file (the engine's `Store`), an in-process
//! member of a Raft cluster (`etch_replication::Member` over QUIC), and a remote `etch serve`
//! or etcd server (`etch_client::AsyncClient` on a runtime this module owns).
//!
//! [`Backend`] gives all three the same blocking methods with the engine's request and response
//! types, so `store.rs` writes each Python method once. Every method blocks the calling thread;
//! callers release the GIL around them. Failures are a [`BackendError`]: the engine's error
//! whenever the backend reports one (a member's `Error::Store`, a client's `Error::Engine`),
//! so Python sees the same exception for the same refusal on every backend.
//!
//! Why the remote backend drives `AsyncClient` on its own runtime rather than using the blocking
//! `Client`: a watch's `recv` must be woken at once by `cancel()` from another thread, and the
//! blocking client's watcher cannot be cancelled while a `recv` holds it. Owning the runtime
//! lets a wait race the stream against a cancel signal (see `watch.rs`); every other call is the
//! same `block_on` the blocking client does.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etch_client::{AsyncClient, ClientOptions};
use etch_engine::{
    DeleteResponse, KeyValue, LeaseGrant, LeaseInfo, PutOp, PutResponse, Range, RangeOptions,
    RangeResponse, Revision, Store, Txn, TxnResponse, WatchOptions, Watcher,
};
use etch_replication::quic::{PeerTlsOptions, QuicConfig, QuicTransport};
use etch_replication::{Member, NodeConfig, ReplicatedStore};

/// Every way a backend call fails.
#[derive(Debug)]
pub enum BackendError {
    /// The engine's own error (also when a member or a server reported it).
    Engine(etch_engine::Error),
    /// A remote client's error that is not an engine error (unreachable, timed out, ...).
    Client(etch_client::Error),
    /// A cluster member's error that is not an engine error (no leader, timeout, ...).
    Cluster(etch_replication::Error),
    /// This backend cannot do this operation (named).
    Unsupported(&'static str),
    /// A connection or cluster setting is unusable (bad address, TLS files, ...).
    Config(String),
}

impl From<etch_engine::Error> for BackendError {
    fn from(e: etch_engine::Error) -> Self {
        BackendError::Engine(e)
    }
}

impl From<etch_client::Error> for BackendError {
    fn from(e: etch_client::Error) -> Self {
        match e {
            etch_client::Error::Engine(e) => BackendError::Engine(e),
            other => BackendError::Client(other),
        }
    }
}

impl From<etch_replication::Error> for BackendError {
    fn from(e: etch_replication::Error) -> Self {
        match e {
            etch_replication::Error::Store(e) => BackendError::Engine(e),
            other => BackendError::Cluster(other),
        }
    }
}

/// Result of a backend call.
pub type BResult<T> = Result<T, BackendError>;

/// A tokio runtime shut down in the background when dropped (dropping a runtime normally
/// blocks on its tasks, which must not happen while Python holds the last reference).
pub struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    fn new(name: &str) -> BResult<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(etch_engine::Error::Io)?;
        Ok(OwnedRuntime(Some(rt)))
    }

    /// The runtime (present until drop).
    pub fn get(&self) -> &tokio::runtime::Runtime {
        match &self.0 {
            Some(rt) => rt,
            None => unreachable!("the runtime is taken only in drop"),
        }
    }

    /// Runs `f` to completion; the calling thread is a Python thread, never a runtime worker.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.get().block_on(f)
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// How to reach a remote server.
pub struct RemoteOptions {
    /// `host:port`, `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// The client's settings (timeouts, retries, TLS).
    pub client: ClientOptions,
}

/// A client of a remote server with the runtime that drives it.
pub struct Remote {
    /// The client (its futures run on `runtime`).
    pub client: AsyncClient,
    /// The runtime the client's requests, watches and connections run on.
    pub runtime: Arc<OwnedRuntime>,
    /// The endpoints as given, joined by commas (the store's `path`).
    pub endpoints: String,
    /// Set by `close`: every request and wait in progress ends at once with `Closed`.
    closed: tokio::sync::watch::Sender<bool>,
}

impl Remote {
    /// Runs one client request; `close` from another thread ends it with `Closed`.
    pub fn run<T, F: Future<Output = Result<T, etch_client::Error>>>(&self, f: F) -> BResult<T> {
        let mut closed = self.closed.subscribe();
        self.runtime.block_on(async {
            tokio::select! {
                r = f => r.map_err(BackendError::from),
                _ = closed.wait_for(|c| *c) => Err(etch_engine::Error::Closed.into()),
            }
        })
    }

    /// A receiver that sees `close`.
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Ends every request and wait in progress on this connection.
    fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// How an in-process member joins its cluster.
pub struct ClusterOptions {
    /// This member's id (not 0).
    pub id: u64,
    /// Every voting member's id and QUIC peer address (this one's is where it listens).
    pub peers: BTreeMap<u64, SocketAddr>,
    /// etcd's `initial-cluster-token`: members of other clusters are refused.
    pub token: String,
    /// Start a new cluster of `peers` from this member (once, on one member). A member whose
    /// file already belongs to a cluster rejoins it instead.
    pub initialize: bool,
    /// Peer TLS (etcd's `--peer-*` flags); none: encrypted, nobody authenticated.
    pub tls: PeerTlsOptions,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Shortest election timeout (the longest is twice it).
    pub election_timeout: Duration,
    /// How long a client call may take before it fails.
    pub request_timeout: Duration,
}

/// A running member with its transport and runtime.
pub struct Cluster {
    /// The blocking member.
    pub member: Member,
    /// Its QUIC endpoint.
    pub transport: Arc<QuicTransport>,
    /// The runtime Raft, the transport and blocking calls run on (dropped last).
    pub runtime: Arc<OwnedRuntime>,
}

impl Cluster {
    /// Binds the QUIC endpoint, opens the member's file and starts it; initializes the cluster
    /// if asked.
    pub fn open(path: PathBuf, engine: etch_engine::Options, o: ClusterOptions) -> BResult<Self> {
        let listen = *o.peers.get(&o.id).ok_or_else(|| {
            BackendError::Config(format!(
                "peers has no address for this member (id {})",
                o.id
            ))
        })?;
        let tls = o
            .tls
            .resolve()
            .map_err(|e| BackendError::Config(e.to_string()))?;
        let runtime = Arc::new(OwnedRuntime::new(&format!("etch-member-{}", o.id))?);
        let rt = runtime.get();
        let _context = rt.enter();
        let transport = Arc::new(
            QuicTransport::bind(QuicConfig::new(o.id, listen, &o.token, tls))
                .map_err(|e| BackendError::Config(e.to_string()))?,
        );
        for (&id, &addr) in &o.peers {
            if id != o.id {
                transport.set_peer(id, addr);
            }
        }
        let mut config = NodeConfig::new(o.id);
        let heartbeat = o.heartbeat.as_millis().max(1) as u64;
        let election = (o.election_timeout.as_millis() as u64).max(heartbeat * 3);
        config.raft.heartbeat_interval = heartbeat;
        config.raft.election_timeout_min = election;
        config.raft.election_timeout_max = election * 2;
        config.request_timeout = o.request_timeout;
        let store = match rt.block_on(ReplicatedStore::open(
            config,
            &path,
            engine,
            Arc::clone(&transport),
        )) {
            Ok(s) => s,
            Err(e) => {
                rt.block_on(transport.shutdown());
                return Err(e.into());
            }
        };
        transport.serve(store.handler());
        if o.initialize {
            match rt.block_on(store.initialize(o.peers.keys().copied().collect())) {
                // Reopened: the file already belongs to the cluster, which goes on.
                Ok(()) | Err(etch_replication::Error::AlreadyMember { .. }) => {}
                Err(e) => {
                    let _ = rt.block_on(store.shutdown());
                    rt.block_on(transport.shutdown());
                    return Err(e.into());
                }
            }
        }
        let member = Member::from_async(rt.handle().clone(), store);
        Ok(Cluster {
            member,
            transport,
            runtime: Arc::clone(&runtime),
        })
    }

    /// Stops the member and its transport.
    pub fn shutdown(&self) -> BResult<()> {
        let stopped = self.member.shutdown();
        self.runtime.block_on(self.transport.shutdown());
        match stopped {
            Ok(()) | Err(etch_replication::Error::Shutdown) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A watch on any backend.
pub enum AnyWatcher {
    /// The engine's watcher (a local store's or a member's).
    Engine(Watcher),
    /// A remote watch stream with the connection it runs on.
    Remote(etch_client::WatchStream, Arc<Remote>),
}

/// Where a `Store` lives; see the module documentation. Cheap to clone.
#[derive(Clone)]
pub enum Backend {
    /// A local file.
    Local(Store),
    /// An in-process cluster member.
    Member(Arc<Cluster>),
    /// A remote server.
    Remote(Arc<Remote>),
}

impl Backend {
    /// Connects to remote endpoints (nothing is dialed yet).
    pub fn connect(o: RemoteOptions) -> BResult<Self> {
        let client = AsyncClient::connect(&o.endpoints, o.client)?;
        Ok(Backend::Remote(Arc::new(Remote {
            client,
            runtime: Arc::new(OwnedRuntime::new("etch-client")?),
            endpoints: o.endpoints.join(","),
            closed: tokio::sync::watch::channel(false).0,
        })))
    }

    /// The key's current version.
    pub fn get(&self, key: &[u8]) -> BResult<Option<KeyValue>> {
        Ok(match self {
            Backend::Local(s) => s.get(key)?,
            Backend::Member(m) => m.member.get(key)?,
            Backend::Remote(r) => r.run(r.client.get(key))?,
        })
    }

    /// A range read with etcd's options.
    pub fn range_with(&self, range: &Range, opts: &RangeOptions) -> BResult<RangeResponse> {
        Ok(match self {
            Backend::Local(s) => s.range_with(range, opts)?,
            Backend::Member(m) => m.member.range_with(range, opts)?,
            Backend::Remote(r) => r.run(r.client.range_with(range, opts))?,
        })
    }

    /// A put with etcd's options.
    pub fn put_with(&self, op: PutOp) -> BResult<PutResponse> {
        Ok(match self {
            Backend::Local(s) => s.put_with(op)?,
            Backend::Member(m) => m.member.put_with(op)?,
            Backend::Remote(r) => r.run(r.client.put_with(op))?,
        })
    }

    /// Deletes a range at one revision.
    pub fn delete_range(&self, range: Range, prev_kv: bool) -> BResult<DeleteResponse> {
        Ok(match self {
            Backend::Local(s) => s.delete_range(range, prev_kv)?,
            Backend::Member(m) => m.member.delete_range(range, prev_kv)?,
            Backend::Remote(r) => r.run(r.client.delete_range(range, prev_kv))?,
        })
    }

    /// A transaction.
    pub fn txn(&self, txn: Txn) -> BResult<TxnResponse> {
        Ok(match self {
            Backend::Local(s) => s.txn(txn)?,
            Backend::Member(m) => m.member.txn(txn)?,
            Backend::Remote(r) => r.run(r.client.txn(txn))?,
        })
    }

    /// Compacts history below `revision`; returns the current revision.
    pub fn compact(&self, revision: Revision) -> BResult<Revision> {
        Ok(match self {
            Backend::Local(s) => s.compact(revision)?,
            Backend::Member(m) => m.member.compact(revision)?,
            Backend::Remote(r) => r.run(r.client.compact(revision))?,
        })
    }

    /// Grants a lease.
    pub fn lease_grant(&self, ttl: i64, id: i64) -> BResult<LeaseGrant> {
        Ok(match self {
            Backend::Local(s) => s.lease_grant(ttl, id)?,
            Backend::Member(m) => m.member.lease_grant(ttl, id)?,
            Backend::Remote(r) => r.run(r.client.lease_grant(ttl, id))?,
        })
    }

    /// Revokes a lease.
    pub fn lease_revoke(&self, id: i64) -> BResult<Revision> {
        Ok(match self {
            Backend::Local(s) => s.lease_revoke(id)?,
            Backend::Member(m) => m.member.lease_revoke(id)?,
            Backend::Remote(r) => r.run(r.client.lease_revoke(id))?,
        })
    }

    /// Renews a lease once.
    pub fn lease_keep_alive(&self, id: i64) -> BResult<i64> {
        Ok(match self {
            Backend::Local(s) => s.lease_keep_alive(id)?,
            Backend::Member(m) => m.member.lease_keep_alive(id)?,
            Backend::Remote(r) => r.run(r.client.lease_keep_alive(id))?,
        })
    }

    /// A lease's TTLs and keys.
    pub fn lease_time_to_live(&self, id: i64, keys: bool) -> BResult<LeaseInfo> {
        Ok(match self {
            Backend::Local(s) => s.lease_time_to_live(id, keys)?,
            Backend::Member(m) => m.member.lease_time_to_live(id, keys)?,
            Backend::Remote(r) => r.run(r.client.lease_time_to_live(id, keys))?,
        })
    }

    /// Every lease.
    pub fn lease_list(&self) -> BResult<Vec<LeaseGrant>> {
        Ok(match self {
            Backend::Local(s) => s.lease_list()?,
            Backend::Member(m) => m.member.lease_list()?,
            Backend::Remote(r) => r.run(r.client.lease_list())?,
        })
    }

    /// Watches a range.
    pub fn watch_with(&self, range: Range, opts: WatchOptions) -> BResult<AnyWatcher> {
        Ok(match self {
            Backend::Local(s) => AnyWatcher::Engine(s.watch_with(range, opts)?),
            Backend::Member(m) => AnyWatcher::Engine(m.member.watch_with(range, opts)?),
            Backend::Remote(r) => {
                let stream = r.run(r.client.watch_with(range, opts))?;
                AnyWatcher::Remote(stream, Arc::clone(r))
            }
        })
    }

    /// The current revision (a member's applied revision; a server's, by a count-only read).
    pub fn revision(&self) -> BResult<Revision> {
        Ok(match self {
            Backend::Local(s) => s.revision(),
            Backend::Member(m) => m.member.revision(),
            Backend::Remote(_) => {
                let opts = RangeOptions {
                    count_only: true,
                    limit: 1,
                    ..Default::default()
                };
                self.range_with(&Range::key(b"\0"), &opts)?.header_revision
            }
        })
    }

    /// A hash of the keyspace at `revision` (0: current).
    pub fn hash_kv(&self, revision: Revision) -> BResult<u32> {
        Ok(match self {
            Backend::Local(s) => s.hash_kv(revision)?,
            Backend::Member(m) => m.member.hash_kv(revision)?,
            Backend::Remote(r) => r.run(r.client.hash_kv(revision))?.hash,
        })
    }

    /// The local engine store, or `Unsupported(what)`.
    pub fn local(&self, what: &'static str) -> BResult<&Store> {
        match self {
            Backend::Local(s) => Ok(s),
            _ => Err(BackendError::Unsupported(what)),
        }
    }

    /// Ends the backend: closes a file, stops a member, drops a client's connections.
    pub fn close(self) -> BResult<()> {
        match self {
            Backend::Local(s) => Ok(s.close()?),
            Backend::Member(m) => m.shutdown(),
            Backend::Remote(r) => {
                r.close();
                Ok(())
            }
        }
    }
}
