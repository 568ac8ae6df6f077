//! What the QUIC transport tests (quic, quic_fuzz, quic_listen) share: a handler that names the
//! member that answered a vote, and a raw peer connection past the hello, on whose streams a
//! test writes whatever bytes it wants.

use std::net::SocketAddr;
use std::sync::Arc;

use etch_replication::network::{BoxFuture, RaftHandler, RaftReply, RaftRequest, TransportError};
use etch_replication::quic::frame;
use etch_replication::quic::hello::{ClusterHash, Hello, HELLO_LIMIT};
use etch_replication::quic::tls::TlsConfigs;
use etch_replication::types::NodeId;
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::Vote;

/// Answers every vote with a refusal naming `id` as the voter: enough to see which endpoint
/// answered. Any other request fails the test.
pub struct Refuser {
    /// The member this handler speaks for.
    pub id: NodeId,
}

impl RaftHandler for Refuser {
    fn handle(&self, request: RaftRequest) -> BoxFuture<'_, RaftReply> {
        let id = self.id;
        Box::pin(async move {
            match request {
                RaftRequest::Vote(_) => {
                    RaftReply::Vote(Ok(VoteResponse::new(Vote::new(0, id), None, false)))
                }
                other => panic!("unexpected {}", other.kind()),
            }
        })
    }
}

/// Which member a [`Refuser`] reply came from.
pub fn answered_by(reply: Result<RaftReply, TransportError>) -> NodeId {
    match reply {
        Ok(RaftReply::Vote(Ok(v))) => v.vote.leader_id().voted_for().unwrap(),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// A vote request of member 1 in term 1.
pub fn vote() -> RaftRequest {
    RaftRequest::Vote(VoteRequest::new(Vote::new(1, 1), None))
}

/// A connection from "member 9" to member `to` at `addr` whose hello (cluster `token`) the
/// member accepted, made with the client side of `tls`.
pub async fn raw_connection(
    tls: TlsConfigs,
    token: &str,
    to: NodeId,
    addr: SocketAddr,
) -> (quinn::Endpoint, quinn::Connection) {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.client).unwrap();
    let client = quinn::ClientConfig::new(Arc::new(crypto));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(client, addr, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = Hello {
        cluster: ClusterHash::of(token),
        from: 9,
        to,
    };
    send.write_all(&frame::encode(&hello, HELLO_LIMIT).unwrap())
        .await
        .unwrap();
    send.finish().unwrap();
    let answer: Hello = frame::read(&mut recv, HELLO_LIMIT).await.unwrap();
    assert_eq!(answer.from, to);
    (endpoint, conn)
}
