//! A member's peer transport settings.

use std::net::SocketAddr;
use std::time::Duration;

use super::tls::PeerTls;
use crate::types::NodeId;

/// Settings of a [`super::QuicTransport`].
#[derive(Clone, Debug)]
pub struct QuicConfig {
    /// This member's id: sent in every hello, and peers must address it.
    pub id: NodeId,
    /// The UDP address to listen on (the first of `listen-peer-urls`); port 0 picks a free
    /// one. Requests to peers go out from this address.
    pub listen: SocketAddr,
    /// Further UDP addresses that accept peers (the rest of `listen-peer-urls`), each an
    /// endpoint of its own that answers exactly as `listen` does. Default none.
    pub also_listen: Vec<SocketAddr>,
    /// etcd's `initial-cluster-token`: peers with another token are refused.
    pub cluster_token: String,
    /// How peer connections are secured.
    pub tls: PeerTls,
    /// Largest frame body sent or accepted. Must cover the largest AppendEntries batch and
    /// snapshot chunk (openraft's `max_payload_entries` times the largest request, and
    /// `snapshot_max_chunk_size`). Default 64 MiB.
    pub max_frame: usize,
    /// Requests in flight toward one peer at most; beyond it, sends fail at once with
    /// `TransportError::Unreachable` instead of queueing. Default 512.
    pub max_in_flight: usize,
    /// How long a request (connecting included) may take before it fails as lost. Default
    /// 2 s.
    pub request_timeout: Duration,
    /// The same for snapshot chunks, which carry megabytes. Default 30 s.
    pub snapshot_timeout: Duration,
    /// How long connecting (QUIC + TLS + hello) may take. Default 1 s.
    pub connect_timeout: Duration,
    /// First wait after a failed connection attempt; it doubles per failure. Default 50 ms.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts. Default 2 s.
    pub backoff_max: Duration,
    /// A connection that hears nothing for this long is dead. Default 3 s.
    pub idle_timeout: Duration,
    /// Keep-alive interval on idle connections (must be below `idle_timeout`). Default 1 s.
    pub keep_alive: Duration,
}

impl QuicConfig {
    /// Defaults for member `id` listening on `listen`, in cluster `cluster_token`.
    pub fn new(id: NodeId, listen: SocketAddr, cluster_token: &str, tls: PeerTls) -> QuicConfig {
        QuicConfig {
            id,
            listen,
            also_listen: Vec::new(),
            cluster_token: cluster_token.to_string(),
            tls,
            max_frame: 64 * 1024 * 1024,
            max_in_flight: 512,
            request_timeout: Duration::from_secs(2),
            snapshot_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            keep_alive: Duration::from_secs(1),
        }
    }

    /// The wait before the next connection attempt after `failures` consecutive failures
    /// (at least 1): `backoff_min` doubled per failure, capped at `backoff_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.backoff_min
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}
