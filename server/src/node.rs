//! The state every service shares: the store, this member's identity, the active alarms, the
//! request limits and the metrics; and the one way services run engine calls (off the async
//! executor, with engine errors turned into etcd's gRPC errors).

use std::collections::BTreeSet;
use std::sync::Arc;

use etch_engine::Store;
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::Status;

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
    store: Store,
    config: ServerConfig,
    cluster_id: u64,
    member_id: u64,
    /// Active alarms (etcd keeps them per member; here there is one member).
    alarms: Mutex<BTreeSet<i32>>,
    metrics: Metrics,
    /// The revision routed to watches, published by the change-log follower thread.
    revisions: watch::Receiver<i64>,
    /// Routes the follower's events to the watches of every stream.
    dispatcher: Dispatcher,
    /// Flips to true when the server starts shutting down, ending long-lived streams.
    shutdown: watch::Receiver<bool>,
}

impl Node {
    /// Wraps an open store. `shutdown` turning true ends every stream.
    pub fn new(store: Store, config: ServerConfig, shutdown: watch::Receiver<bool>) -> Node {
        let member_id = member_id(&config.name, &config.advertise_client_urls);
        let cluster_id = fnv1a(&member_id.to_be_bytes(), b"etch-cluster").max(1);
        let (dispatcher, revisions) = crate::notifier::start(store.clone());
        Node {
            inner: Arc::new(Inner {
                revisions,
                dispatcher,
                store,
                config,
                cluster_id,
                member_id,
                alarms: Mutex::new(BTreeSet::new()),
                metrics: Metrics::default(),
                shutdown,
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// This member's id (stable for a name and set of advertised URLs).
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

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.inner.member_id,
            revision,
            raft_term: RAFT_TERM,
        })
    }

    /// A response header at the store's current revision.
    pub fn current_header(&self) -> Option<ResponseHeader> {
        self.header(self.inner.store.revision())
    }

    /// Runs `f` on the blocking pool (engine calls block on locks, I/O and fsync) and turns an
    /// engine error into etcd's gRPC error.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> etch_engine::Result<T> + Send + 'static,
    {
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result.map_err(|e| self.engine_error(e)),
            Err(e) => {
                tracing::error!(error = %e, "engine call panicked or was cancelled");
                Err(Status::internal("etch: request failed inside the server"))
            }
        }
    }

    /// etcd's gRPC error for an engine error; a quota error also raises the NOSPACE alarm, as
    /// etcd does when its backend passes the quota.
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
fn fnv1a(data: &[u8], salt: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.iter().chain(data) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
