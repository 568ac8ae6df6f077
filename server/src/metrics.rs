//! The server's counters and their Prometheus text exposition, under etcd's metric names where
//! one applies (`etcd_mvcc_*`, `etcd_server_*`, `etcd_network_client_grpc_*`,
//! `etcd_debugging_mvcc_*`) and `etch_*` for etch's own.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use etch_engine::Status;

use crate::node::RaftState;

/// Counters updated by the services; all relaxed atomics (they are statistics).
#[derive(Default)]
pub struct Metrics {
    range_total: AtomicU64,
    put_total: AtomicU64,
    delete_total: AtomicU64,
    txn_total: AtomicU64,
    watch_streams: AtomicU64,
    watchers: AtomicU64,
    lease_grants: AtomicU64,
    lease_revokes: AtomicU64,
    lease_renewals: AtomicU64,
    received_bytes: AtomicU64,
    sent_bytes: AtomicU64,
    leader_changes: AtomicU64,
}

impl Metrics {
    /// The known leader changed to another member (or was first found).
    pub fn leader_changed(&self) {
        self.leader_changes.fetch_add(1, Relaxed);
    }
    /// A Range request.
    pub fn range(&self) {
        self.range_total.fetch_add(1, Relaxed);
    }
    /// A Put request.
    pub fn put(&self) {
        self.put_total.fetch_add(1, Relaxed);
    }
    /// A DeleteRange request.
    pub fn delete(&self) {
        self.delete_total.fetch_add(1, Relaxed);
    }
    /// A Txn request.
    pub fn txn(&self) {
        self.txn_total.fetch_add(1, Relaxed);
    }
    /// A watch stream opened.
    pub fn watch_stream_opened(&self) {
        self.watch_streams.fetch_add(1, Relaxed);
    }
    /// A watch stream closed.
    pub fn watch_stream_closed(&self) {
        self.watch_streams.fetch_sub(1, Relaxed);
    }
    /// `n` watches created.
    pub fn watchers_opened(&self, n: usize) {
        self.watchers.fetch_add(n as u64, Relaxed);
    }
    /// `n` watches ended.
    pub fn watchers_closed(&self, n: usize) {
        self.watchers.fetch_sub(n as u64, Relaxed);
    }
    /// A lease granted.
    pub fn lease_granted(&self) {
        self.lease_grants.fetch_add(1, Relaxed);
    }
    /// A lease revoked by request.
    pub fn lease_revoked(&self) {
        self.lease_revokes.fetch_add(1, Relaxed);
    }
    /// A lease renewed by keep-alive.
    pub fn lease_renewed(&self) {
        self.lease_renewals.fetch_add(1, Relaxed);
    }
    /// `n` bytes of request messages received.
    pub fn received_bytes(&self, n: usize) {
        self.received_bytes.fetch_add(n as u64, Relaxed);
    }
    /// `n` bytes of response messages sent.
    pub fn sent_bytes(&self, n: usize) {
        self.sent_bytes.fetch_add(n as u64, Relaxed);
    }
    /// Current number of watches.
    pub fn watchers(&self) -> u64 {
        self.watchers.load(Relaxed)
    }

    /// The Prometheus text exposition of these counters, the store's `status` and the Raft
    /// state. etcd's `proposals_committed_total` is its commit index; openraft does not
    /// publish a follower's commit index, so both proposal counters report the applied index
    /// (a commit index is never below it, and equal once the member has caught up).
    pub fn render(
        &self,
        status: &Status,
        raft: &RaftState,
        quota: Option<u64>,
        version: &str,
    ) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "etcd_server_has_leader",
            "gauge",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            u64::from(raft.leader != 0),
        );
        metric(
            "etcd_server_is_leader",
            "gauge",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            u64::from(raft.is_leader),
        );
        metric(
            "etcd_server_leader_changes_seen_total",
            "counter",
            "The number of leader changes seen.",
            self.leader_changes.load(Relaxed),
        );
        metric(
            "etcd_server_proposals_committed_total",
            "gauge",
            "The total number of consensus proposals committed.",
            raft.applied_index,
        );
        metric(
            "etcd_server_proposals_applied_total",
            "gauge",
            "The total number of consensus proposals applied.",
            raft.applied_index,
        );
        metric(
            "etcd_mvcc_db_total_size_in_bytes",
            "gauge",
            "Total size of the underlying database physically allocated in bytes.",
            status.file_size,
        );
        metric(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "gauge",
            "Total size of the underlying database logically in use in bytes.",
            status.size_in_use,
        );
        metric(
            "etcd_server_quota_backend_bytes",
            "gauge",
            "Current backend storage quota size in bytes.",
            quota.unwrap_or(0),
        );
        metric(
            "etcd_debugging_mvcc_keys_total",
            "gauge",
            "Total number of keys.",
            status.key_count,
        );
        metric(
            "etcd_debugging_mvcc_current_revision",
            "gauge",
            "The current revision of store.",
            status.revision.max(0) as u64,
        );
        metric(
            "etcd_debugging_mvcc_compact_revision",
            "gauge",
            "The revision of the last compaction in store.",
            status.compact_revision.max(0) as u64,
        );
        metric(
            "etcd_mvcc_range_total",
            "counter",
            "Total number of ranges seen by this member.",
            self.range_total.load(Relaxed),
        );
        metric(
            "etcd_mvcc_put_total",
            "counter",
            "Total number of puts seen by this member.",
            self.put_total.load(Relaxed),
        );
        metric(
            "etcd_mvcc_delete_total",
            "counter",
            "Total number of deletes seen by this member.",
            self.delete_total.load(Relaxed),
        );
        metric(
            "etcd_mvcc_txn_total",
            "counter",
            "Total number of txns seen by this member.",
            self.txn_total.load(Relaxed),
        );
        metric(
            "etcd_debugging_mvcc_watch_stream_total",
            "gauge",
            "Total number of watch streams.",
            self.watch_streams.load(Relaxed),
        );
        metric(
            "etcd_debugging_mvcc_watcher_total",
            "gauge",
            "Total number of watchers.",
            self.watchers.load(Relaxed),
        );
        metric(
            "etcd_debugging_lease_granted_total",
            "counter",
            "The total number of granted leases.",
            self.lease_grants.load(Relaxed),
        );
        metric(
            "etcd_debugging_lease_revoked_total",
            "counter",
            "The total number of revoked leases.",
            self.lease_revokes.load(Relaxed),
        );
        metric(
            "etcd_debugging_lease_renewed_total",
            "counter",
            "The number of renewed leases seen by the leader.",
            self.lease_renewals.load(Relaxed),
        );
        metric(
            "etcd_network_client_grpc_received_bytes_total",
            "counter",
            "The total number of bytes received from grpc clients.",
            self.received_bytes.load(Relaxed),
        );
        metric(
            "etcd_network_client_grpc_sent_bytes_total",
            "counter",
            "The total number of bytes sent to grpc clients.",
            self.sent_bytes.load(Relaxed),
        );
        metric(
            "etch_wal_size_bytes",
            "gauge",
            "Bytes of the store's write-ahead log.",
            status.wal_size,
        );
        let _ = writeln!(out, "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.");
        let _ = writeln!(out, "# TYPE etcd_server_version gauge");
        let _ = writeln!(out, "etcd_server_version{{server_version=\"{version}\"}} 1");
        out
    }
}
