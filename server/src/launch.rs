//! Starting a cluster member from etcd's settings ([`MemberSettings`]): the QUIC peer
//! transport, the member's file (new, restarted, promoted from a standalone store, or joining),
//! the server in front of it, and the background duty that publishes this member's name and
//! client URLs and keeps the transport's address book in step with the member table.
//!
//! Member ids. Every id is derived from the member's peer URLs and the cluster token
//! ([`crate::etcd_config::initial_member_id`]): the members of `initial-cluster` get theirs
//! that way on every process, and so does a member added with MemberAdd (see
//! `crate::cluster`). A process therefore knows its own id and its peers' from its flags alone,
//! with no discovery round: a member started with `initial-cluster-state: existing` after
//! `member add --peer-urls=URL` computes the id the leader gave it.
//!
//! Starting a new cluster (`initial-cluster-state: new`). The member with the lowest id
//! initializes the cluster with every member of `initial-cluster` as a voter; the others open
//! their (new) files and wait for its log. If the initializing member's file already holds a
//! standalone store, the cluster starts on it and keeps its history
//! (`ReplicatedStore::bootstrap`): that is how an application's file is promoted. Another
//! member's file with a history of its own is refused, since the leader's snapshot would
//! replace it.
//!
//! A file that belongs to a cluster is reopened as it is (a restart). One whose membership does
//! not list this member is refused ([`LaunchError::ForeignFile`]): it belongs to another
//! cluster, or this member was removed (etcd refuses both).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_replication::quic::{PeerTlsOptions, QuicConfig, QuicTransport};
use etch_replication::types::NodeId;
use etch_replication::{NodeConfig, ReplicatedStore};
use openraft::ChangeMembers;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::etcd_config::{ClusterState, MemberSettings};
use crate::members::{self, MemberRecord};
use crate::server::{start_member, ServeError, ServerHandle};

/// How often the publishing duty looks at the member table.
const PUBLISH_EVERY: Duration = Duration::from_millis(300);

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Settings that cannot work together (the message names the setting).
    #[error("{0}")]
    Config(String),
    /// The peer transport could not start (bind, TLS material).
    #[error("peer transport: {0}")]
    Transport(String),
    /// The member's file could not be opened or the cluster not started on it.
    #[error("cannot start member on {path}: {reason}")]
    Member {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file belongs to another cluster, or to a member that was removed.
    #[error(
        "{path} belongs to another cluster (its members are {members}); member {id:x} of cluster \
         token {token:?} is not among them (removed, or the wrong data file)"
    )]
    ForeignFile {
        /// The file.
        path: PathBuf,
        /// Its members' ids, hex.
        members: String,
        /// This member's id.
        id: NodeId,
        /// The configured cluster token.
        token: String,
    },
    /// A file with a standalone history given to a member that would lose it.
    #[error(
        "{path} holds a store with a history of its own; only the first member of a new cluster \
         (the one with the lowest id, here {first:x}) keeps its file, a joining member starts \
         empty (move the file away, or start the cluster on it)"
    )]
    WouldLoseHistory {
        /// The file.
        path: PathBuf,
        /// The member that would keep its file.
        first: NodeId,
    },
    /// The server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A running cluster member: its server, member and peer transport.
pub struct RunningMember {
    server: ServerHandle,
    transport: Arc<QuicTransport>,
    member: ReplicatedStore,
    stop: watch::Sender<bool>,
    duty: JoinHandle<()>,
}

impl RunningMember {
    /// The server (client addresses, node).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The member.
    pub fn member(&self) -> &ReplicatedStore {
        &self.member
    }

    /// The UDP address the peer transport is bound to (the first `listen-peer-urls` entry's).
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.transport.local_addr()
    }

    /// Every UDP address the peer transport accepts peers on, one per `listen-peer-urls`
    /// entry, in their order.
    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.transport.local_addrs()
    }

    /// Stops serving clients, shuts the member down (its file is checkpointed) and closes the
    /// peer transport.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        let _ = self.duty.await;
        let result = self.server.shutdown().await;
        self.transport.shutdown().await;
        result
    }
}

/// The address (and host name, when the URL names one) of a peer URL's `host:port`: what a
/// member dials, and the name it checks the peer's certificate against.
pub fn peer_address(url: &str) -> Result<(SocketAddr, Option<String>), String> {
    let hostport = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("peer URL {url}: {e}"))?
        .next()
        .ok_or_else(|| format!("peer URL {url} resolves to no address"))?;
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_matches(['[', ']']);
    let named = host.parse::<std::net::IpAddr>().is_err();
    Ok((addr, named.then(|| host.to_string())))
}

/// Records member `id`'s first peer URL in the transport's address book.
fn set_peer(transport: &QuicTransport, id: NodeId, urls: &[String]) {
    let Some(url) = urls.first() else { return };
    match peer_address(url) {
        Ok((addr, None)) => transport.set_peer(id, addr),
        Ok((addr, Some(host))) => transport.set_peer_named(id, addr, &host),
        Err(e) => tracing::warn!(member = format!("{id:x}"), "{e}"),
    }
}

/// The member's Raft settings from etcd's: heartbeat, election timeout (a follower that lost
/// its leader waits between it and 1.5 times it, see `NodeConfig::etcd_timing`), snapshot
/// every `snapshot-count` applied entries.
fn node_config(id: NodeId, settings: &MemberSettings) -> NodeConfig {
    let mut config = NodeConfig::new(id);
    let heartbeat = settings.heartbeat.as_millis() as u64;
    let election = settings.election_timeout.as_millis() as u64;
    config.etcd_timing(heartbeat, election);
    config.raft.snapshot_policy =
        openraft::SnapshotPolicy::LogsSinceLast(settings.snapshot_count.max(1));
    config
}

fn engine_options(settings: &MemberSettings, server: &ServerConfig) -> etch_engine::Options {
    let mut options = etch_engine::Options::new()
        .max_request_bytes(server.max_request_bytes)
        .max_txn_ops(server.max_txn_ops);
    if let Some(quota) = settings.quota_backend_bytes {
        options = options.quota_bytes(Some(quota));
    }
    if let Some(mode) = settings.auto_compaction {
        options = options.auto_compaction(mode);
    }
    options
}

/// Starts the member `settings` describe on `file`, serving clients as `server` says (its
/// name, client URLs, quota, compaction and token are replaced by the settings').
pub async fn start_cluster_member(
    settings: &MemberSettings,
    file: &Path,
    mut server: ServerConfig,
) -> Result<RunningMember, LaunchError> {
    let me = settings
        .initial_cluster
        .iter()
        .find(|m| m.name == settings.name)
        .ok_or_else(|| LaunchError::Config("initial-cluster: this member is not listed".into()))?;
    let id = me.id;
    // QUIC listens on every URL: peers may be given any of them. Requests to peers go out
    // from the first.
    let (listen, also_listen) = match settings.listen_peer_urls.as_slice() {
        [first, rest @ ..] => (first.addr, rest.iter().map(|u| u.addr).collect()),
        [] => return Err(LaunchError::Config("listen-peer-urls: no URL".into())),
    };
    let security = &settings.peer_security;
    let tls = PeerTlsOptions {
        cert_file: security.cert_file.as_ref().map(PathBuf::from),
        key_file: security.key_file.as_ref().map(PathBuf::from),
        trusted_ca_file: security.trusted_ca_file.as_ref().map(PathBuf::from),
        client_cert_auth: security.client_cert_auth,
        auto_tls: security.auto_tls,
    }
    .resolve()
    .map_err(|e| LaunchError::Config(e.to_string()))?;
    if tls == etch_replication::quic::PeerTls::Auto {
        tracing::warn!(
            "peer-auto-tls: peers use self-signed certificates and are NOT authenticated; \
             anyone who can reach the peer port can join the Raft traffic"
        );
    }
    let mut quic = QuicConfig::new(id, listen, &settings.cluster_token, tls);
    quic.also_listen = also_listen;
    let transport =
        Arc::new(QuicTransport::bind(quic).map_err(|e| LaunchError::Transport(e.to_string()))?);
    for m in &settings.initial_cluster {
        if m.id != id {
            set_peer(&transport, m.id, &m.peer_urls);
        }
    }

    server.db = file.to_path_buf();
    server.name = settings.name.clone();
    server.listen_client_urls = settings.listen_client_urls.clone();
    server.advertise_client_urls = settings.advertise_client_urls.clone();
    server.quota_backend_bytes = settings.quota_backend_bytes;
    server.auto_compaction = settings.auto_compaction;
    server.initial_cluster_token = settings.cluster_token.clone();

    let member = match open_member(settings, file, &server, &transport, id).await {
        Ok(m) => m,
        Err(e) => {
            transport.shutdown().await;
            return Err(e);
        }
    };
    transport.serve(member.handler());
    let handle = match start_member(server, member.clone()).await {
        Ok(h) => h,
        Err(e) => {
            let _ = member.shutdown().await;
            transport.shutdown().await;
            return Err(e.into());
        }
    };
    let mine = MemberRecord {
        name: settings.name.clone(),
        peer_urls: settings.advertise_peer_urls.clone(),
        client_urls: settings.advertise_client_urls.clone(),
    };
    let (stop, stopped) = watch::channel(false);
    let duty = tokio::spawn(publish_duty(
        member.clone(),
        Arc::clone(&transport),
        mine,
        stopped,
    ));
    tracing::info!(
        id = format!("{id:x}"),
        peer = ?transport.local_addrs(),
        state = ?settings.cluster_state,
        "cluster member started"
    );
    Ok(RunningMember {
        server: handle,
        transport,
        member,
        stop,
        duty,
    })
}

/// Opens (and for the first member of a new cluster, starts the cluster on) the member's file.
async fn open_member(
    settings: &MemberSettings,
    file: &Path,
    server: &ServerConfig,
    transport: &Arc<QuicTransport>,
    id: NodeId,
) -> Result<ReplicatedStore, LaunchError> {
    let fail = |reason: String| LaunchError::Member {
        path: file.to_path_buf(),
        reason,
    };
    let config = node_config(id, settings);
    let options = engine_options(settings, server);
    let first = settings
        .initial_cluster
        .iter()
        .map(|m| m.id)
        .min()
        .unwrap_or(id);
    let initializes = settings.cluster_state == ClusterState::New && first == id;
    let existed = file.exists();
    if settings.force_new_cluster {
        if !existed {
            return Err(fail(
                "force-new-cluster needs the member's existing file".into(),
            ));
        }
        let record = MemberRecord {
            name: settings.name.clone(),
            peer_urls: settings.advertise_peer_urls.clone(),
            client_urls: settings.advertise_client_urls.clone(),
        };
        force_new_cluster(file, id, &record, options.clone()).map_err(fail)?;
        return ReplicatedStore::open(config, file, options, Arc::clone(transport))
            .await
            .map_err(|e| fail(e.to_string()));
    }
    let member = if initializes && existed {
        // A standalone store (or a new file) becomes the first member, keeping its history; a
        // member's file is reopened.
        let voters: BTreeSet<NodeId> = settings.initial_cluster.iter().map(|m| m.id).collect();
        match ReplicatedStore::bootstrap(
            config.clone(),
            file,
            options.clone(),
            Arc::clone(transport),
            voters,
        )
        .await
        {
            Ok(m) => {
                tracing::info!(file = %file.display(), "cluster started on the existing file");
                m
            }
            Err(etch_replication::Error::AlreadyMember { .. }) => {
                ReplicatedStore::open(config, file, options, Arc::clone(transport))
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    } else {
        let m = ReplicatedStore::open(config, file, options, Arc::clone(transport))
            .await
            .map_err(|e| fail(e.to_string()))?;
        if initializes {
            let records: Vec<(NodeId, MemberRecord)> = settings
                .initial_cluster
                .iter()
                .map(|im| {
                    // As in etcd, a member's name and client URLs are known once it has
                    // started and published them; its peer URLs from the start.
                    let (name, client_urls) = if im.id == id {
                        (im.name.clone(), settings.advertise_client_urls.clone())
                    } else {
                        (String::new(), Vec::new())
                    };
                    let record = MemberRecord {
                        name,
                        peer_urls: im.peer_urls.clone(),
                        client_urls,
                    };
                    (im.id, record)
                })
                .collect();
            if let Err(e) = members::bootstrap(&m, &records).await {
                let _ = m.shutdown().await;
                return Err(fail(e.to_string()));
            }
        }
        m
    };
    if let Err(e) = check_file(&member, settings, file, id, first, initializes) {
        let _ = member.shutdown().await;
        return Err(e);
    }
    Ok(member)
}

/// etcd's `--force-new-cluster` on a member's file: the member becomes the only voter of its
/// cluster, keeping its data, so that a cluster that lost its quorum can go on from one
/// survivor (the others are then wiped and added again with `member add`).
///
/// Raft cannot change a membership without a quorum, so this edits the file before Raft
/// starts, as etcd rewrites its WAL: every log entry is kept (committed ones, and uncommitted
/// ones, which the new one-member cluster commits, as any new leader commits its log), and a
/// membership entry listing only this member is appended at the next index, in a term above
/// every term in the file; the vote moves to that term, for this member. On open, the
/// newest membership in the log is in effect at once (Raft's rule), so this member is the only
/// voter and elects itself. Running it again appends another such entry (harmless; etcd too
/// expects the flag to be dropped after one start).
fn force_new_cluster(
    file: &Path,
    id: NodeId,
    record: &MemberRecord,
    options: etch_engine::Options,
) -> Result<(), String> {
    use etch_replication::log_store::LogStore;
    use etch_replication::types::Entry;
    let store = options
        .replicated(true)
        .background_writes(false)
        .open(file)
        .map_err(|e| e.to_string())?;
    let log = etch_replication::EngineLog::new(store.clone());
    let vote_term = match log.read_vote().map_err(|e| e.to_string())? {
        Some(bytes) => {
            let vote: openraft::Vote<NodeId> =
                etch_replication::codec::decode(&bytes, 4096).map_err(|e| e.to_string())?;
            vote.leader_id().term
        }
        None => 0,
    };
    let bounds = log.bounds().map_err(|e| e.to_string())?;
    let last_term = bounds.last.map_or(0, |(_, t)| t);
    let (applied_index, applied_term) = store.applied();
    let term = vote_term.max(last_term).max(applied_term) + 1;
    let next = match bounds.last {
        Some((index, _)) => index + 1,
        // No entry and nothing purged: after the applied state (engine index = Raft + 1).
        None => applied_index,
    };
    let entry = Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(term, id), next),
        payload: openraft::EntryPayload::Membership(openraft::Membership::new(
            vec![BTreeSet::from([id])],
            BTreeMap::from([(id, record.to_node())]),
        )),
    };
    let bytes = etch_replication::codec::encode(&entry).map_err(|e| e.to_string())?;
    log.append(&[(next, term, &bytes)])
        .map_err(|e| e.to_string())?;
    let vote = openraft::Vote::new(term, id);
    let vote = etch_replication::codec::encode(&vote).map_err(|e| e.to_string())?;
    log.save_vote(&vote).map_err(|e| e.to_string())?;
    drop(log);
    store.close().map_err(|e| e.to_string())?;
    tracing::warn!(
        member = format!("{id:x}"),
        term,
        index = next,
        "force-new-cluster: this member is now the only voter; wipe the others and add them \
         again with member add"
    );
    Ok(())
}

/// Refuses a file of another cluster (or of a removed member), and a standalone history a
/// joining member would lose.
fn check_file(
    member: &ReplicatedStore,
    settings: &MemberSettings,
    file: &Path,
    id: NodeId,
    first: NodeId,
    initializes: bool,
) -> Result<(), LaunchError> {
    let (voters, learners) = member.members();
    let all: BTreeSet<NodeId> = voters.union(&learners).copied().collect();
    if all.is_empty() {
        if !initializes && member.applied_index().is_some() {
            return Err(LaunchError::WouldLoseHistory {
                path: file.to_path_buf(),
                first,
            });
        }
        return Ok(());
    }
    if !all.contains(&id) {
        return Err(LaunchError::ForeignFile {
            path: file.to_path_buf(),
            members: all
                .iter()
                .map(|m| format!("{m:x}"))
                .collect::<Vec<_>>()
                .join(", "),
            id,
            token: settings.cluster_token.clone(),
        });
    }
    Ok(())
}

/// Until `stopped`: keeps the transport's address book equal to the member table (peer URLs
/// of every member, removed members forgotten), and publishes this member's record (name,
/// client URLs, and peer URLs where the table has none) whenever the table's differs, as etcd
/// publishes a started member's attributes through Raft. On the leader the record is set
/// directly; a follower sends it to the leader's Cluster service.
async fn publish_duty(
    member: ReplicatedStore,
    transport: Arc<QuicTransport>,
    mine: MemberRecord,
    mut stopped: watch::Receiver<bool>,
) {
    let me = member.id();
    let mut known: BTreeSet<NodeId> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(PUBLISH_EVERY) => {}
        }
        let table = members::table(&member);
        if table.is_empty() {
            continue;
        }
        let ids: BTreeSet<NodeId> = table.iter().map(|e| e.id).collect();
        for entry in &table {
            if entry.id != me && !entry.record.peer_urls.is_empty() {
                set_peer(&transport, entry.id, &entry.record.peer_urls);
            }
        }
        for gone in known.difference(&ids) {
            if *gone != me {
                transport.remove_peer(*gone);
            }
        }
        known = ids;
        let Some(entry) = table.iter().find(|e| e.id == me) else {
            continue;
        };
        let wanted = MemberRecord {
            name: mine.name.clone(),
            peer_urls: if entry.record.peer_urls.is_empty() {
                mine.peer_urls.clone()
            } else {
                entry.record.peer_urls.clone()
            },
            client_urls: mine.client_urls.clone(),
        };
        if entry.record == wanted {
            continue;
        }
        let result = if member.is_leader() {
            // In the queue of membership changes, as a MemberUpdate would be.
            let change = ChangeMembers::SetNodes(BTreeMap::from([(me, wanted.to_node())]));
            match members::ChangeTurn::wait(&member).await {
                Ok(turn) => turn
                    .apply(&member, members::Change::Members(change))
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            crate::cluster::publish_to_leader(&member, &wanted).await
        };
        match result {
            Ok(()) => tracing::info!(
                name = %wanted.name,
                client_urls = ?wanted.client_urls,
                "published this member's attributes"
            ),
            Err(e) => tracing::debug!("publishing this member's attributes: {e}"),
        }
    }
}
