//! The accepting side: connections from peers are checked (TLS by rustls, then ALPN and the
//! hello), then every stream they open is one request, answered by the member's handler in a
//! task of its own.
//!
//! Tasks are owned: the accept loop owns one task per connection (a `JoinSet`), each of those
//! owns one task per stream; aborting the accept loop (shutdown) drops them all.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{Connection, ConnectionError, Incoming, RecvStream, SendStream};
use tokio::task::JoinSet;

use super::frame::{self, FrameError};
use super::hello::{self, Hello, CLOSE_BAD_HELLO, HELLO_LIMIT, STREAM_MALFORMED};
use super::peer::describe;
use super::stats::bump;
use super::tls::ALPN;
use super::transport::Shared;
use crate::network::{RaftHandler, RaftRequest};
use crate::types::NodeId;

/// Accepts connections until the endpoint closes (or the task is aborted).
pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    handler: Arc<dyn RaftHandler>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    connections.spawn(serve_connection(
                        Arc::clone(&shared),
                        Arc::clone(&handler),
                        incoming,
                    ));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Checks an incoming connection and serves its streams until it closes.
async fn serve_connection(shared: Arc<Shared>, handler: Arc<dyn RaftHandler>, incoming: Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) if is_tls_failure(&e) => {
            bump(&shared.counters.refused_handshakes);
            tracing::warn!(%remote, reason = %describe(&e), "refused a peer connection: TLS handshake failed");
            return;
        }
        Err(e) => {
            // Abandoned by the caller (its connect timed out, or a retransmitted packet of an
            // attempt made to this port's previous owner): nothing was refused.
            tracing::debug!(%remote, reason = %describe(&e), "peer handshake abandoned");
            return;
        }
    };
    let Some(from) = greet(&shared, &conn, remote).await else {
        bump(&shared.counters.refused_hellos);
        return;
    };
    bump(&shared.counters.accepted);
    tracing::debug!(peer = from, %remote, "peer connected");
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(Arc::clone(&shared), Arc::clone(&handler), from, send, recv));
                }
                Err(e) => {
                    tracing::debug!(peer = from, %remote, reason = %describe(&e), "peer connection ended");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
}

/// Whether a handshake ended in a TLS error (an alert either side sent: a missing or
/// untrusted certificate, no common protocol), as opposed to being abandoned.
fn is_tls_failure(e: &ConnectionError) -> bool {
    // TLS alerts travel as QUIC's CRYPTO_ERROR codes, 0x100 + the alert.
    let crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match e {
        ConnectionError::TransportError(t) => crypto(t.code),
        ConnectionError::ConnectionClosed(c) => crypto(c.error_code),
        _ => false,
    }
}

/// The ALPN and hello checks; the caller's member id if it passes. A refused connection is
/// closed with the reason's code and logged.
async fn greet(shared: &Shared, conn: &Connection, remote: SocketAddr) -> Option<NodeId> {
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(ALPN) {
        conn.close(CLOSE_BAD_HELLO, b"wrong application protocol");
        tracing::warn!(%remote, "refused a peer connection: not the etch-raft/1 protocol");
        return None;
    }
    let received = tokio::time::timeout(shared.config.connect_timeout, async {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| describe(&e))?;
        let hello = frame::read::<Hello, _>(&mut recv, HELLO_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((send, hello))
    })
    .await
    .unwrap_or_else(|_| Err("no hello in time".to_string()));
    let (mut send, theirs) = match received {
        Ok(got) => got,
        Err(reason) => {
            conn.close(CLOSE_BAD_HELLO, b"no valid hello");
            tracing::warn!(%remote, %reason, "refused a peer connection: no valid hello");
            return None;
        }
    };
    if let Err(refusal) = hello::check_incoming(&theirs, shared.cluster, shared.config.id) {
        conn.close(refusal.code(), refusal.to_string().as_bytes());
        tracing::warn!(%remote, peer = theirs.from, reason = %refusal, "refused a peer connection");
        return None;
    }
    let ours = Hello {
        cluster: shared.cluster,
        from: shared.config.id,
        to: 0,
    };
    let answered = match frame::encode(&ours, HELLO_LIMIT) {
        Ok(bytes) => send.write_all(&bytes).await.is_ok() && send.finish().is_ok(),
        Err(_) => false,
    };
    answered.then_some(theirs.from)
}

/// Answers the one request of a stream.
async fn serve_stream(
    shared: Arc<Shared>,
    handler: Arc<dyn RaftHandler>,
    from: NodeId,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let request = match frame::read::<RaftRequest, _>(&mut recv, shared.config.max_frame).await {
        Ok(request) => request,
        Err(FrameError::Io(e)) => {
            tracing::debug!(peer = from, error = %e, "request stream failed");
            return;
        }
        Err(e) => {
            bump(&shared.counters.malformed_frames);
            tracing::warn!(peer = from, error = %e, "malformed request from peer; stream reset");
            let _ = recv.stop(STREAM_MALFORMED);
            let _ = send.reset(STREAM_MALFORMED);
            return;
        }
    };
    let kind = request.kind();
    let reply = handler.handle(request).await;
    match frame::encode(&reply, shared.config.max_frame) {
        Ok(bytes) => {
            if send.write_all(&bytes).await.is_ok() && send.finish().is_ok() {
                bump(&shared.counters.served);
            }
        }
        Err(e) => {
            tracing::error!(peer = from, kind, error = %e, "cannot send reply");
            let _ = send.reset(STREAM_MALFORMED);
        }
    }
}
