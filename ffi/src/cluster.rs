//! etch_open_member(): an `etch_db *` that is a member of a Raft cluster in this process.
//!
//! The member's Raft tasks and peer transport run on a small runtime the handle owns (two
//! worker threads). Peers are reached over QUIC (`listen_peer` set; encrypted, and
//! authenticated with the peer certificate files) or, for members of one process, through a
//! named in-process network (`local_network` set): no sockets, no copies.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_char, c_int, CStr};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use etch_engine::Options;
use etch_replication::local::LocalNetwork;
use etch_replication::quic::{PeerTlsOptions, QuicConfig, QuicTransport};
use etch_replication::types::NodeId;
use etch_replication::{Error as ClusterError, Member, NodeConfig, ReplicatedStore};

use crate::backend::{cluster_failure, member_ids, Backend, MemberBackend, PeerLink};
use crate::boundary::{self, call, call_db, clear, opt_out, out};
use crate::db::{engine_options, etch_db, etch_options, into_handle};
use crate::error::{Failure, FfiResult, ETCH_CLUSTER, ETCH_INTERNAL};

/// How etch_open_member() starts a member.
///
/// Fill it with `etch_member_config_init(&config, sizeof config)`, then set at least `id`,
/// `path` and one of `listen_peer` / `local_network`. The strings are read during the call
/// only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_member_config {
    /// Size in bytes of the caller's struct: set by etch_member_config_init(), never by hand.
    pub size: usize,
    /// This member's id: unique in the cluster, not 0.
    pub id: u64,
    /// The member's store file (created if missing). A member keeps its whole state in it;
    /// reopening it rejoins the cluster.
    pub path: *const c_char,
    /// Peers as a comma-separated list of `id=host:port` (the QUIC address each peer listens
    /// on), or of bare ids on a local network; this member may be listed or not.
    pub peers: *const c_char,
    /// `host:port` to listen on for peers (UDP, QUIC). NULL: use `local_network`.
    pub listen_peer: *const c_char,
    /// The name of an in-process network: every member of this process opened with the same
    /// name reaches the others directly. Used when `listen_peer` is NULL.
    pub local_network: *const c_char,
    /// etcd's `initial-cluster-token`: QUIC peers with another token are refused. NULL:
    /// "etch-cluster".
    pub cluster_token: *const c_char,
    /// Non-zero: start a new cluster whose voters are this member and its `peers`, keeping
    /// everything the file holds (a standalone store becomes the cluster's first state).
    /// Ignored when the file already belongs to a cluster (it rejoins). Set it on one member
    /// only; the others start with 0 and are reached by the first.
    pub initialize: c_int,
    /// Leader heartbeat interval in milliseconds (default 100).
    pub heartbeat_ms: u64,
    /// Election timeout in milliseconds: a follower that hears no leader for between this and
    /// twice this campaigns (default 1000).
    pub election_timeout_ms: u64,
    /// Longest wait for a write or linearizable read, in milliseconds (default 5000): past it
    /// the call returns ETCH_TIMEOUT.
    pub request_timeout_ms: u64,
    /// Peer TLS (QUIC only; etcd's `--peer-cert-file`): this member's certificate (PEM).
    /// NULL: connections are encrypted with a throwaway certificate and peers are not
    /// authenticated.
    pub peer_cert_file: *const c_char,
    /// `--peer-key-file`: the certificate's private key (PEM).
    pub peer_key_file: *const c_char,
    /// `--peer-trusted-ca-file`: the CA every peer's certificate must chain to (PEM);
    /// connecting peers are then required to present one.
    pub peer_trusted_ca_file: *const c_char,
}

impl etch_member_config {
    fn defaults() -> etch_member_config {
        etch_member_config {
            size: std::mem::size_of::<etch_member_config>(),
            id: 0,
            path: std::ptr::null(),
            peers: std::ptr::null(),
            listen_peer: std::ptr::null(),
            local_network: std::ptr::null(),
            cluster_token: std::ptr::null(),
            initialize: 0,
            heartbeat_ms: 100,
            election_timeout_ms: 1000,
            request_timeout_ms: 5000,
            peer_cert_file: std::ptr::null(),
            peer_key_file: std::ptr::null(),
            peer_trusted_ca_file: std::ptr::null(),
        }
    }

    fn check_size(size: usize) -> FfiResult<()> {
        let known = std::mem::size_of::<etch_member_config>();
        if size == known {
            Ok(())
        } else {
            Err(Failure::invalid(format!(
                "etch_member_config size {size} is not {known}: fill the config with \
                 etch_member_config_init(&config, sizeof config)"
            )))
        }
    }
}

/// The named in-process networks of this process.
fn local_network(name: &str) -> Arc<LocalNetwork> {
    static NETWORKS: OnceLock<Mutex<HashMap<String, Arc<LocalNetwork>>>> = OnceLock::new();
    let mut networks = NETWORKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(networks.entry(name.to_string()).or_default())
}

/// A NUL-terminated UTF-8 string argument, or None for NULL.
///
/// # Safety
/// `ptr` must be NULL or NUL-terminated.
unsafe fn text(ptr: *const c_char, what: &str) -> FfiResult<Option<String>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's guarantee.
    let s = unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))?;
    Ok(Some(s.to_string()))
}

/// A `host:port` address.
fn address(s: &str, what: &str) -> FfiResult<SocketAddr> {
    s.trim()
        .parse()
        .map_err(|e| Failure::invalid(format!("{what} {s:?} is not an ip:port address: {e}")))
}

/// The peers list: `id=host:port` entries (the address is required with QUIC) or bare ids.
fn parse_peers(list: &str, quic: bool) -> FfiResult<Vec<(NodeId, Option<SocketAddr>)>> {
    let mut peers = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = match entry.split_once('=') {
            Some((id, addr)) => (id, Some(address(addr, "peer address")?)),
            None => (entry, None),
        };
        let id: NodeId = id
            .trim()
            .parse()
            .ok()
            .filter(|&id| id != 0)
            .ok_or_else(|| Failure::invalid(format!("peer id {id:?} is not a number above 0")))?;
        if quic && addr.is_none() {
            return Err(Failure::invalid(format!(
                "peer {id} has no address (id=host:port) but the member listens on QUIC"
            )));
        }
        peers.push((id, addr));
    }
    Ok(peers)
}

/// Everything etch_open_member() read from its arguments.
struct Plan {
    config: NodeConfig,
    path: PathBuf,
    options: Options,
    peers: Vec<(NodeId, Option<SocketAddr>)>,
    listen: Option<SocketAddr>,
    network: Option<String>,
    token: String,
    tls: PeerTlsOptions,
    initialize: bool,
}

impl Plan {
    /// Reads the caller's config.
    ///
    /// # Safety
    /// The pointers of `c` must be NULL or NUL-terminated strings.
    unsafe fn read(c: &etch_member_config, options: Options) -> FfiResult<Plan> {
        if c.id == 0 {
            return Err(Failure::invalid(
                "id 0 is reserved: give each member an id above 0",
            ));
        }
        // SAFETY: the caller's guarantee for every string pointer.
        let (path, peers, listen, network, token, cert, key, ca) = unsafe {
            (
                boundary::path(c.path, "config->path")?,
                text(c.peers, "peers")?,
                text(c.listen_peer, "listen_peer")?,
                text(c.local_network, "local_network")?,
                text(c.cluster_token, "cluster_token")?,
                text(c.peer_cert_file, "peer_cert_file")?,
                text(c.peer_key_file, "peer_key_file")?,
                text(c.peer_trusted_ca_file, "peer_trusted_ca_file")?,
            )
        };
        let listen = listen.map(|l| address(&l, "listen_peer")).transpose()?;
        if listen.is_none() && network.is_none() {
            return Err(Failure::invalid(
                "set listen_peer (QUIC) or local_network (members of this process)",
            ));
        }
        let peers = parse_peers(peers.as_deref().unwrap_or(""), listen.is_some())?;
        if c.heartbeat_ms == 0 || c.election_timeout_ms <= c.heartbeat_ms {
            return Err(Failure::invalid(format!(
                "election_timeout_ms ({}) must exceed heartbeat_ms ({}), which must be above 0",
                c.election_timeout_ms, c.heartbeat_ms
            )));
        }
        let token = token.unwrap_or_else(|| "etch-cluster".into());
        let mut config = NodeConfig::new(c.id);
        config.raft.cluster_name = token.clone();
        config.raft.heartbeat_interval = c.heartbeat_ms;
        config.raft.election_timeout_min = c.election_timeout_ms;
        config.raft.election_timeout_max = c.election_timeout_ms * 2;
        config.request_timeout = Duration::from_millis(c.request_timeout_ms.max(1));
        Ok(Plan {
            config,
            path,
            options,
            peers,
            listen,
            network,
            token,
            tls: PeerTlsOptions {
                cert_file: cert.map(PathBuf::from),
                key_file: key.map(PathBuf::from),
                trusted_ca_file: ca.map(PathBuf::from),
                client_cert_auth: false,
                auto_tls: false,
            },
            initialize: c.initialize != 0,
        })
    }

    /// Starts the member.
    fn start(self) -> FfiResult<MemberBackend> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("etch-member-{}", self.config.id))
            .enable_all()
            .build()
            .map_err(|e| Failure::new(ETCH_INTERNAL, format!("cannot start the runtime: {e}")))?;
        let id = self.config.id;
        let link = match (self.listen, &self.network) {
            (Some(listen), _) => {
                let mut tls = self.tls.clone();
                tls.client_cert_auth = tls.trusted_ca_file.is_some() && tls.cert_file.is_some();
                let tls = tls.resolve().map_err(|e| Failure::invalid(e.to_string()))?;
                let _inside = runtime.enter(); // the UDP socket registers with this runtime
                let transport = QuicTransport::bind(QuicConfig::new(id, listen, &self.token, tls))
                    .map_err(|e| Failure::new(ETCH_CLUSTER, e.to_string()))?;
                for &(peer, addr) in &self.peers {
                    if let (true, Some(addr)) = (peer != id, addr) {
                        transport.set_peer(peer, addr);
                    }
                }
                PeerLink::Quic(Arc::new(transport))
            }
            (None, Some(name)) => PeerLink::Local(local_network(name)),
            (None, None) => unreachable!("checked by Plan::read"),
        };
        let voters: BTreeSet<NodeId> = self
            .peers
            .iter()
            .map(|&(peer, _)| peer)
            .chain([id])
            .collect();
        let opened = match &link {
            PeerLink::Quic(t) => self.open(&runtime, Arc::clone(t), voters),
            PeerLink::Local(n) => self.open(&runtime, Arc::clone(n), voters),
        };
        let store = match opened {
            Ok(store) => store,
            Err(e) => {
                if let PeerLink::Quic(t) = &link {
                    runtime.block_on(t.shutdown());
                }
                runtime.shutdown_background();
                return Err(cluster_failure(e));
            }
        };
        match &link {
            PeerLink::Quic(t) => runtime.block_on(async { t.serve(store.handler()) }),
            PeerLink::Local(n) => n.register(id, store.handler()),
        }
        let member = Member::from_async(runtime.handle().clone(), store);
        Ok(MemberBackend {
            member,
            link,
            runtime: Some(runtime),
        })
    }

    /// Opens the member's store on `transport`: a new cluster (bootstrap) if asked and the
    /// file is not a member yet, otherwise joining or rejoining.
    fn open<T: etch_replication::network::Transport>(
        &self,
        runtime: &tokio::runtime::Runtime,
        transport: Arc<T>,
        voters: BTreeSet<NodeId>,
    ) -> Result<ReplicatedStore, ClusterError> {
        let (config, path, options) = (self.config.clone(), &self.path, self.options.clone());
        if self.initialize {
            let boot = runtime.block_on(ReplicatedStore::bootstrap(
                config.clone(),
                path,
                options.clone(),
                Arc::clone(&transport),
                voters,
            ));
            match boot {
                Err(ClusterError::AlreadyMember { .. }) => {}
                other => return other,
            }
        }
        runtime.block_on(ReplicatedStore::open(config, path, options, transport))
    }
}

/// Fills `*config` with the defaults (no id or path yet, a 100 ms heartbeat, a 1 s election
/// timeout, 5 s per request, token "etch-cluster", no peer TLS files). `size` must be
/// `sizeof *config`. Returns ETCH_OK, or ETCH_INVALID for a NULL `config` or an unknown size.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_member_config_init(
    config: *mut etch_member_config,
    size: usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract config is NULL or writable for sizeof *config.
        let config = unsafe { out(config, "config") }?;
        etch_member_config::check_size(size)?;
        config.set(etch_member_config::defaults());
        Ok(())
    })
}

/// Opens the store file `config->path` as a member of a Raft cluster that runs in this
/// process, and gives a handle taking the same calls as one from etch_open(): writes and
/// linearizable reads go through the cluster's leader (from any member), watches are served
/// from what this member has applied.
///
/// `opts` (NULL for the defaults) are the store's options, as for etch_open(). On success `*db` receives a handle owned by the caller;
/// etch_close() shuts the member down (its file closed cleanly, its peers see it gone). On
/// failure `*db` is NULL and etch_errmsg(NULL) says why.
///
/// Until a leader is elected (or while this member cannot reach a majority) writes and
/// linearizable reads wait up to `request_timeout_ms` and then return ETCH_UNAVAILABLE; a
/// write whose answer does not come in time returns ETCH_TIMEOUT (its outcome is unknown). A
/// member removed from the cluster answers ETCH_NOT_MEMBER. etch_snapshot(), etch_defrag(),
/// etch_status(), etch_check(), etch_sync(), etch_checkpoint() and etch_wal_repair() return
/// ETCH_UNSUPPORTED on a member.
///
/// Returns ETCH_OK, ETCH_INVALID (NULL or bad config, bad options), ETCH_LOCKED (the file is
/// open elsewhere), ETCH_CLUSTER (the peer port cannot be bound, or Raft refused to start),
/// ETCH_FORMAT, ETCH_CORRUPT, ETCH_IO. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_open_member(
    config: *const etch_member_config,
    opts: *const etch_options,
    db: *mut *mut etch_db,
) -> c_int {
    // SAFETY: by the header's contract `db` is NULL or writable; cleared first so that every
    // failure leaves NULL there.
    unsafe { clear(db) };
    call(|| {
        // SAFETY: by the header's contract db is writable, config NULL or an
        // etch_member_config filled by etch_member_config_init() whose strings are NULL or
        // NUL-terminated, and opts NULL or an etch_options filled by etch_options_init().
        let (db, plan) = unsafe {
            let db = out(db, "db")?;
            let config = boundary::object(config, "config")?;
            etch_member_config::check_size(config.size)?;
            let options = engine_options(opts)?;
            (db, Plan::read(config, options)?)
        };
        let backend = plan.start()?;
        db.set(into_handle(Backend::Member(Box::new(backend))));
        Ok(())
    })
}

/// For a handle from etch_open_member(): `id` (optional) receives this member's id and
/// `leader` (optional) the id of the leader it knows, 0 while there is none (an election is
/// running, or it cannot reach a majority). Returns ETCH_OK, ETCH_INVALID (NULL db) or
/// ETCH_UNSUPPORTED (a local or remote handle). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_member_info(
    db: *const etch_db,
    id: *mut u64,
    leader: *mut u64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract id and leader are NULL or writable.
        let (id, leader) = unsafe { (opt_out(id), opt_out(leader)) };
        let (me, known) = member_ids(db.store.member("etch_member_info")?);
        if let Some(out) = id {
            out.set(me);
        }
        if let Some(out) = leader {
            out.set(known);
        }
        Ok(())
    })
}
