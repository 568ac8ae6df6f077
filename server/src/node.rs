//! The state every service shares: the backend (a local store or a cluster member), this
//! member's identity, the active alarms, the request limits and the metrics; and the one way
//! services turn backend errors into etcd's gRPC errors.

use std::collections::BTreeSet;
use std::sync::Arc;

use etch_replication::ReplicatedStore;
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::Status;

use crate::backend::{Backend, BackendError};
use crate::config::ServerConfig;
use crate::dispatch::Dispatcher;
use crate::errors;
use crate::metrics::Metrics;
use crate::proto::etcdserverpb::{AlarmType, ResponseHeader};

/// The etcd release whose v3 API etch serves; reported by Status, `/version` and metrics.
pub const ETCD_COMPAT_VERSION: &str = "3.5.0";

/// A single node has exactly one Raft term: it never holds an election.
pub const RAFT_TERM: u64 = 1;

/// Shared by every service of one server; cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    config: ServerConfig,
    cluster_id: u64,
    member_id: u64,
    /// Active alarms (etcd keeps them per member).
    alarms: Mutex<BTreeSet<i32>>,
    metrics: Arc<Metrics>,
    /// The revision routed to watches, published by the change-log follower thread.
    revisions: watch::Receiver<i64>,
    /// Routes the follower's events to the watches of every stream.
    dispatcher: Dispatcher,
    /// Flips to true when the server starts shutting down, ending long-lived streams.
    shutdown: watch::Receiver<bool>,
}

/// What this member knows of the cluster's Raft state, for headers, Status and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftState {
    /// The current term.
    pub term: u64,
    /// The leader's member id; 0 when no leader is known.
    pub leader: u64,
    /// Whether this member is the leader.
    pub is_leader: bool,
    /// The index of the last entry in this member's log.
    pub last_index: u64,
    /// The index of the last entry this member applied.
    pub applied_index: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
}

impl Node {
    /// Wraps a backend. `shutdown` turning true ends every stream.
    pub fn new(backend: Backend, config: ServerConfig, shutdown: watch::Receiver<bool>) -> Node {
        let (member_id, cluster_id) = match &backend {
            Backend::Local(_) => {
                let member_id = member_id(&config.name, &config.advertise_client_urls);
                (
                    member_id,
                    fnv1a(&member_id.to_be_bytes(), b"etch-cluster").max(1),
                )
            }
            // Every member of one cluster derives the same id from the shared token.
            Backend::Member(m) => (
                m.id(),
                fnv1a(config.initial_cluster_token.as_bytes(), b"etch-cluster").max(1),
            ),
        };
        let (dispatcher, revisions) = crate::notifier::start(backend.clone());
        let metrics = Arc::new(Metrics::default());
        match &backend {
            // A single node leads from the start, once.
            Backend::Local(_) => metrics.leader_changed(),
            Backend::Member(m) => {
                count_leader_changes(m, Arc::clone(&metrics), shutdown.clone());
                // This member makes the cluster's membership changes while it leads, asked of
                // it or of a follower (crate::cluster).
                m.set_member_service(Arc::new(crate::cluster::LeaderMembership::new(
                    config.initial_cluster_token.clone(),
                )));
            }
        }
        Node {
            inner: Arc::new(Inner {
                revisions,
                dispatcher,
                backend,
                config,
                cluster_id,
                member_id,
                alarms: Mutex::new(BTreeSet::new()),
                metrics,
                shutdown,
            }),
        }
    }

    /// The backend (a local store or a cluster member).
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// This member's id (a local store: stable for a name and set of advertised URLs; a
    /// cluster member: its Raft node id).
    pub fn member_id(&self) -> u64 {
        self.inner.member_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The server's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// A receiver that turns true when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// A receiver of the store's revision, woken on every change (once the change is routed
    /// to the synced watches).
    pub fn revisions(&self) -> watch::Receiver<i64> {
        self.inner.revisions.clone()
    }

    /// The shared watch dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// Unwraps a request, counting its size in the received-bytes metric.
    pub fn received<M: prost::Message>(&self, request: tonic::Request<M>) -> M {
        let message = request.into_inner();
        self.inner.metrics.received_bytes(message.encoded_len());
        message
    }

    /// Wraps a response, counting its size in the sent-bytes metric.
    pub fn respond<M: prost::Message>(&self, message: M) -> tonic::Response<M> {
        self.inner.metrics.sent_bytes(message.encoded_len());
        tonic::Response::new(message)
    }

    /// The Raft state as this member knows it; a local store is its own leader in term 1,
    /// its log index its applied revision.
    pub fn raft_state(&self) -> RaftState {
        match &self.inner.backend {
            Backend::Local(store) => {
                let index = store.revision().max(0) as u64;
                RaftState {
                    term: RAFT_TERM,
                    leader: self.inner.member_id,
                    is_leader: true,
                    last_index: index,
                    applied_index: index,
                    is_learner: false,
                }
            }
            Backend::Member(m) => member_raft_state(m),
        }
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let raft_term = match &self.inner.backend {
            Backend::Local(_) => RAFT_TERM,
            Backend::Member(m) => m.raft().metrics().borrow().current_term,
        };
        Some(ResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.inner.member_id,
            revision,
            raft_term,
        })
    }

    /// A response header at the store's current revision.
    pub fn current_header(&self) -> Option<ResponseHeader> {
        self.header(self.inner.backend.revision())
    }

    /// etcd's gRPC error for a backend error; a quota error also raises the NOSPACE alarm, as
    /// etcd does when its backend passes the quota.
    pub fn fail(&self, e: BackendError) -> Status {
        match e {
            BackendError::Store(etch_replication::Error::Store(e)) => self.engine_error(e),
            BackendError::Store(e) => errors::cluster_to_status(&e),
            BackendError::Internal(msg) => Status::internal(msg),
        }
    }

    /// etcd's gRPC error for an engine error; a quota error also raises the NOSPACE alarm.
    pub fn engine_error(&self, e: etch_engine::Error) -> Status {
        if matches!(e, etch_engine::Error::QuotaExceeded { .. }) {
            self.raise_alarm(AlarmType::Nospace);
        }
        errors::to_status(&e)
    }

    /// Refuses a request that adds data while the NOSPACE alarm is active (until disarmed, as
    /// etcd: freeing space alone does not lift it).
    pub fn check_space(&self) -> Result<(), Status> {
        if self
            .inner
            .alarms
            .lock()
            .contains(&(AlarmType::Nospace as i32))
        {
            return Err(errors::no_space());
        }
        Ok(())
    }

    /// Activates an alarm; true if it was not active.
    pub fn raise_alarm(&self, alarm: AlarmType) -> bool {
        let raised = self.inner.alarms.lock().insert(alarm as i32);
        if raised {
            tracing::warn!(alarm = alarm.as_str_name(), "alarm raised");
        }
        raised
    }

    /// Deactivates an alarm; true if it was active.
    pub fn disarm_alarm(&self, alarm: AlarmType) -> bool {
        let disarmed = self.inner.alarms.lock().remove(&(alarm as i32));
        if disarmed {
            tracing::info!(alarm = alarm.as_str_name(), "alarm disarmed");
        }
        disarmed
    }

    /// The active alarms.
    pub fn alarms(&self) -> Vec<AlarmType> {
        self.inner
            .alarms
            .lock()
            .iter()
            .filter_map(|a| AlarmType::try_from(*a).ok())
            .collect()
    }
}

fn member_raft_state(m: &ReplicatedStore) -> RaftState {
    let metrics = m.raft().metrics().borrow().clone();
    let is_learner = metrics
        .membership_config
        .membership()
        .learner_ids()
        .any(|id| id == m.id());
    RaftState {
        term: metrics.current_term,
        leader: metrics.current_leader.unwrap_or(0),
        is_leader: metrics.state == openraft::ServerState::Leader,
        last_index: metrics.last_log_index.unwrap_or(0),
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        is_learner,
    }
}

/// Counts every change of the known leader to another member (etcd's
/// `etcd_server_leader_changes_seen_total`) until the server shuts down.
fn count_leader_changes(
    m: &ReplicatedStore,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut raft = m.raft().metrics();
    tokio::spawn(async move {
        let mut last: Option<u64> = None;
        loop {
            let leader = raft.borrow_and_update().current_leader;
            if leader.is_some() && leader != last {
                metrics.leader_changed();
                last = leader;
            }
            tokio::select! {
                changed = raft.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// A member id derived from the member's name and advertised URLs, never 0, as etcd derives
/// its ids from the member's URLs.
fn member_id(name: &str, urls: &[String]) -> u64 {
    let mut bytes = name.as_bytes().to_vec();
    for url in urls {
        bytes.push(0);
        bytes.extend_from_slice(url.as_bytes());
    }
    fnv1a(&bytes, b"etch-member").max(1)
}

/// 64-bit FNV-1a of `salt` then `data`.
pub(crate) fn fnv1a(data: &[u8], salt: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.iter().chain(data) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
