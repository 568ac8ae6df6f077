//! A QUIC transport listening on several addresses (etcd's `listen-peer-urls` with more than
//! one URL): every address accepts peers and answers with the member's handler, requests go
//! out from the first, and shutdown releases every socket.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use etch_replication::network::Transport;
use etch_replication::quic::{PeerTls, QuicConfig, QuicTransport};
use etch_replication::types::NodeId;

use crate::support::quic_peer::{answered_by, vote, Refuser};

const TOKEN: &str = "etch-quic-listen-test";

/// A transport of member `id` on `listen` only.
fn single(id: NodeId, tls: PeerTls) -> Arc<QuicTransport> {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Arc::new(QuicTransport::bind(QuicConfig::new(id, any, TOKEN, tls)).unwrap())
}

#[tokio::test]
async fn every_listen_address_accepts_peers() {
    for tls in [PeerTls::Plain, PeerTls::Auto] {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = QuicConfig::new(2, any, TOKEN, tls.clone());
        config.also_listen = vec![any, any];
        let two = Arc::new(QuicTransport::bind(config).unwrap());
        let addrs = two.local_addrs();
        assert_eq!(addrs.len(), 3, "{addrs:?}");
        assert_eq!(addrs[0], two.local_addr().unwrap());
        let distinct: std::collections::BTreeSet<SocketAddr> = addrs.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "three sockets: {addrs:?}");
        // Nothing answers before `serve`.
        two.serve(Arc::new(Refuser { id: 2 }));

        // A peer that knows member 2 by any one of its addresses reaches it.
        for (i, addr) in addrs.iter().enumerate() {
            let one = single(10 + i as NodeId, tls.clone());
            one.set_peer(2, *addr);
            assert_eq!(
                answered_by(one.send(one.id(), 2, vote()).await),
                2,
                "through address {i} ({addr})"
            );
            one.shutdown().await;
        }
        assert_eq!(two.stats().accepted, 3);
        assert_eq!(two.stats().served, 3);

        // Requests from member 2 go out (from its first address) as before.
        let three = single(3, tls.clone());
        three.serve(Arc::new(Refuser { id: 3 }));
        two.set_peer(3, three.local_addr().unwrap());
        assert_eq!(answered_by(two.send(2, 3, vote()).await), 3);
        three.shutdown().await;

        // Shutdown releases every socket: each address can be bound again (once quinn's
        // endpoint driver task, which owns the socket, has seen its last handle go).
        two.shutdown().await;
        assert!(two.local_addrs().is_empty());
        drop(two);
        for (i, addr) in addrs.into_iter().enumerate() {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match UdpSocket::bind(addr) {
                    Ok(_) => break,
                    Err(e) if tokio::time::Instant::now() > deadline => {
                        panic!("address {i} ({addr}) still bound after shutdown: {e}")
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        }
    }
}

#[tokio::test]
async fn a_taken_extra_address_fails_the_bind() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = QuicConfig::new(2, "127.0.0.1:0".parse().unwrap(), TOKEN, PeerTls::Plain);
    config.also_listen = vec![taken.local_addr().unwrap()];
    match QuicTransport::bind(config) {
        Err(etch_replication::quic::QuicError::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("bound an address in use"),
    }
}
