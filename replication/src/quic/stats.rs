//! Counters of what a member's peer transport accepted and refused, for logs, metrics and
//! tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a transport's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Incoming connections that completed TLS and the hello.
    pub accepted: u64,
    /// Incoming connections refused during the TLS handshake (no certificate, another CA,
    /// another ALPN).
    pub refused_handshakes: u64,
    /// Incoming connections refused at the hello (another cluster, another member id, a
    /// malformed or missing hello).
    pub refused_hellos: u64,
    /// Incoming request streams reset because their frame was malformed or too large.
    pub malformed_frames: u64,
    /// Incoming requests answered.
    pub served: u64,
    /// Outgoing requests failed at once because too many were already in flight to the peer.
    pub overloaded: u64,
    /// Outgoing connection attempts that failed.
    pub connect_failures: u64,
}

/// The live counters behind [`QuicStats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) refused_handshakes: AtomicU64,
    pub(super) refused_hellos: AtomicU64,
    pub(super) malformed_frames: AtomicU64,
    pub(super) served: AtomicU64,
    pub(super) overloaded: AtomicU64,
    pub(super) connect_failures: AtomicU64,
}

/// Adds one to `counter`.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> QuicStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QuicStats {
            accepted: get(&self.accepted),
            refused_handshakes: get(&self.refused_handshakes),
            refused_hellos: get(&self.refused_hellos),
            malformed_frames: get(&self.malformed_frames),
            served: get(&self.served),
            overloaded: get(&self.overloaded),
            connect_failures: get(&self.connect_failures),
        }
    }
}
