//! The sending side toward one peer: its single connection, reconnection with capped
//! exponential backoff, and the bound on requests in flight.
//!
//! Every request gets its own bidirectional stream on the shared connection, so a snapshot
//! chunk in transit never holds up a heartbeat or a vote behind it (QUIC streams are delivered
//! independently).

use std::sync::Arc;

use quinn::{Connection, ConnectionError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::frame;
use super::hello::{self, Hello, CLOSE_BAD_HELLO, CLOSE_SHUTDOWN, HELLO_LIMIT};
use super::stats::bump;
use super::transport::{PeerAddress, Shared};
use crate::network::{RaftReply, TransportError};
use crate::types::NodeId;

/// The connection state toward a peer.
#[derive(Default)]
struct Link {
    /// The open connection and the address it goes to.
    conn: Option<(Connection, PeerAddress)>,
    /// Consecutive failed attempts to connect.
    failures: u32,
    /// No new attempt before this instant (the backoff).
    retry_at: Option<Instant>,
    /// The address the failures were counted against: a new address starts afresh.
    tried: Option<PeerAddress>,
}

/// One peer as seen by the sender.
pub(super) struct Peer {
    id: NodeId,
    in_flight: Arc<Semaphore>,
    /// Held while connecting, so concurrent requests share one attempt.
    link: tokio::sync::Mutex<Link>,
}

/// How a connection failure reads in a log line.
pub(super) fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(close) => format!(
            "closed by the peer: {} ({})",
            hello::close_reason(close.error_code),
            String::from_utf8_lossy(&close.reason)
        ),
        other => other.to_string(),
    }
}

impl Peer {
    pub(super) fn new(id: NodeId, max_in_flight: usize) -> Peer {
        Peer {
            id,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            link: tokio::sync::Mutex::new(Link::default()),
        }
    }

    /// A slot for one more request, unless `max_in_flight` are already out.
    pub(super) fn try_reserve(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.in_flight).try_acquire_owned().ok()
    }

    /// Closes the connection (the peer was removed).
    pub(super) fn close(&self) {
        if let Ok(mut link) = self.link.try_lock() {
            if let Some((conn, _)) = link.conn.take() {
                conn.close(CLOSE_SHUTDOWN, b"member removed");
            }
        }
    }

    fn unreachable(&self) -> TransportError {
        TransportError::Unreachable { to: self.id }
    }

    /// The live connection to the peer's current address, connecting if there is none and the
    /// backoff allows.
    pub(super) async fn connection(&self, shared: &Shared) -> Result<Connection, TransportError> {
        let address = shared.address(self.id).ok_or_else(|| self.unreachable())?;
        let addr = address.addr;
        let mut link = self.link.lock().await;
        if let Some((conn, at)) = &link.conn {
            if *at == address && conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
            if *at != address {
                conn.close(CLOSE_SHUTDOWN, b"peer address changed");
            } else if let Some(reason) = conn.close_reason() {
                tracing::info!(peer = self.id, %addr, reason = %describe(&reason), "peer connection lost");
            }
            link.conn = None;
        }
        if link.tried.as_ref() != Some(&address) {
            link.tried = Some(address.clone());
            link.failures = 0;
            link.retry_at = None;
        }
        if link.retry_at.is_some_and(|t| Instant::now() < t) {
            return Err(self.unreachable());
        }
        let attempt = tokio::time::timeout(
            shared.config.connect_timeout,
            connect(shared, self.id, &address),
        );
        let result = match attempt.await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_string()),
        };
        match result {
            Ok(conn) => {
                if link.failures > 0 {
                    tracing::info!(peer = self.id, %addr, after = link.failures, "connected to peer after failed attempts");
                }
                link.failures = 0;
                link.retry_at = None;
                link.conn = Some((conn.clone(), address));
                Ok(conn)
            }
            Err(reason) => {
                bump(&shared.counters.connect_failures);
                link.failures = link.failures.saturating_add(1);
                let wait = shared.config.backoff(link.failures);
                link.retry_at = Some(Instant::now() + wait);
                // The first failure of a streak is worth a warning; the retries are not.
                if link.failures == 1 {
                    tracing::warn!(peer = self.id, %addr, %reason, "cannot connect to peer");
                } else {
                    tracing::debug!(peer = self.id, %addr, %reason, failures = link.failures, retry_in = ?wait, "cannot connect to peer");
                }
                Err(self.unreachable())
            }
        }
    }

    /// Sends one framed request on a new stream of `conn` and reads the reply.
    pub(super) async fn exchange(
        &self,
        shared: &Shared,
        conn: &Connection,
        request: &[u8],
    ) -> Result<RaftReply, TransportError> {
        let to = self.id;
        // Nothing has been sent if the stream cannot be opened: the peer is unreachable.
        let (mut send, mut recv) = conn.open_bi().await.map_err(|_| self.unreachable())?;
        let lost = TransportError::Lost { to };
        send.write_all(request).await.map_err(|_| lost.clone())?;
        send.finish().map_err(|_| lost.clone())?;
        match frame::read::<RaftReply, _>(&mut recv, shared.config.max_frame).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                tracing::debug!(peer = to, error = %e, "no valid reply");
                Err(lost)
            }
        }
    }
}

/// Opens a connection to member `to` at `addr`: QUIC + TLS, then the hello exchange. A peer
/// that answers as another cluster or member is closed with the matching code.
async fn connect(shared: &Shared, to: NodeId, address: &PeerAddress) -> Result<Connection, String> {
    let addr = address.addr;
    // With verification on, the peer's certificate must name the host of its peer URL (as
    // etcd's): the host name given, else the IP address.
    let server_name = match (&address.name, shared.verifies_server) {
        (Some(host), true) => host.clone(),
        (None, true) => addr.ip().to_string(),
        (_, false) => "etch-peer".to_string(),
    };
    let endpoint = shared.endpoint().ok_or("the peer transport is shut down")?;
    let connecting = endpoint
        .connect_with(shared.client.clone(), addr, &server_name)
        .map_err(|e| e.to_string())?;
    let conn = connecting.await.map_err(|e| describe(&e))?;
    let ours = Hello {
        cluster: shared.cluster,
        from: shared.config.id,
        to,
    };
    let exchanged = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| describe(&e))?;
        let bytes = frame::encode(&ours, HELLO_LIMIT).map_err(|e| e.to_string())?;
        send.write_all(&bytes).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        frame::read::<Hello, _>(&mut recv, HELLO_LIMIT)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let answer = match exchanged {
        Ok(answer) => answer,
        Err(e) => {
            // A refusal by the peer shows as the connection's close reason (a TLS alert when
            // it rejected our certificate, a hello close code otherwise).
            let reason = conn.close_reason().map(|r| describe(&r)).unwrap_or(e);
            conn.close(CLOSE_BAD_HELLO, b"no valid hello");
            return Err(reason);
        }
    };
    if let Err(refusal) = hello::check_answer(&answer, shared.cluster, to) {
        conn.close(refusal.code(), refusal.to_string().as_bytes());
        return Err(format!("refused the peer: {refusal}"));
    }
    Ok(conn)
}
