//! The UDP fault proxy (tests/support/udp_proxy.rs) on its own: plain sockets stand for a
//! member's peer port and for a peer, so each test sees exactly which datagrams crossed.
//! Cuts really block (in the direction cut only), healing really heals, and loss, duplication
//! and delay do what they say.

#[path = "support/udp_proxy.rs"]
mod udp_proxy;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use udp_proxy::{FaultNet, LinkFaults};

/// Member 0 listens on `member`; member 1 sends from `peer`; both are known to the net, and
/// `proxy` stands in front of member 0.
struct Pair {
    net: FaultNet,
    member: UdpSocket,
    peer: UdpSocket,
    proxy: SocketAddr,
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

fn pair() -> Pair {
    let mut net = FaultNet::new();
    let (member, peer) = (socket(), socket());
    let proxy = net.add(0, member.local_addr().unwrap()).unwrap();
    // The peer is a member too (with a proxy of its own), so the net can name its datagrams.
    net.add(1, peer.local_addr().unwrap()).unwrap();
    Pair {
        net,
        member,
        peer,
        proxy,
    }
}

/// The next datagram on `s` within its timeout, with its source.
fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, a)| (buf[..n].to_vec(), a))
}

/// Sends `what` from the peer to member 0 through the proxy; returns where it came from on the
/// member's side (the proxy's upstream socket), if it arrived.
fn to_member(p: &Pair, what: &[u8]) -> Option<SocketAddr> {
    p.peer.send_to(what, p.proxy).unwrap();
    let (got, from) = recv(&p.member)?;
    assert_eq!(got, what);
    Some(from)
}

/// Sends `what` from the member back to `upstream`; true if it reached the peer, from the
/// proxy's address.
fn to_peer(p: &Pair, upstream: SocketAddr, what: &[u8]) -> bool {
    p.member.send_to(what, upstream).unwrap();
    match recv(&p.peer) {
        Some((got, from)) => {
            assert_eq!(got, what);
            assert_eq!(from, p.proxy, "answers come from the proxy's address");
            true
        }
        None => false,
    }
}

#[test]
fn forwards_both_ways_from_the_proxy_address() {
    let p = pair();
    let upstream = to_member(&p, b"hello").expect("forwarded to the member");
    assert_ne!(
        upstream,
        p.peer.local_addr().unwrap(),
        "sent from the proxy"
    );
    assert!(to_peer(&p, upstream, b"answer"));
    // The same sender keeps the same upstream socket (a QUIC connection keeps its path).
    assert_eq!(to_member(&p, b"again"), Some(upstream));
    assert_eq!(p.net.stats().forwarded, 3);
}

#[test]
fn one_way_cuts_block_one_direction_and_heal_restores_it() {
    let p = pair();
    let upstream = to_member(&p, b"open").unwrap();

    // Peer (1) → member (0) cut: nothing reaches the member; the member still reaches the peer.
    p.net.cut_one_way(1, 0);
    assert_eq!(to_member(&p, b"blocked"), None);
    assert!(to_peer(&p, upstream, b"still flows"));

    // The other way round.
    p.net.heal();
    p.net.cut_one_way(0, 1);
    assert_eq!(to_member(&p, b"flows"), Some(upstream));
    assert!(!to_peer(&p, upstream, b"blocked"));

    p.net.heal();
    assert_eq!(to_member(&p, b"healed"), Some(upstream));
    assert!(to_peer(&p, upstream, b"healed"));
    assert_eq!(p.net.stats().dropped, 2);
}

#[test]
fn partitions_and_isolation_block_both_ways() {
    let p = pair();
    let upstream = to_member(&p, b"open").unwrap();
    p.net.partition(&[0], &[1]);
    assert_eq!(to_member(&p, b"x"), None);
    assert!(!to_peer(&p, upstream, b"y"));
    p.net.heal();
    p.net.isolate(1);
    assert_eq!(to_member(&p, b"x"), None);
    assert!(!to_peer(&p, upstream, b"y"));
    p.net.heal();
    assert!(to_member(&p, b"x").is_some());
    assert!(to_peer(&p, upstream, b"y"));
}

#[test]
fn unknown_senders_follow_the_default_rule() {
    let p = pair();
    let stranger = socket();
    stranger.send_to(b"who", p.proxy).unwrap();
    assert_eq!(recv(&p.member).map(|(b, _)| b), Some(b"who".to_vec()));
    p.net.set_default(LinkFaults::CUT);
    stranger.send_to(b"who", p.proxy).unwrap();
    assert!(recv(&p.member).is_none());
    // A rule of its own overrides the default for a known member.
    p.net.set(1, 0, LinkFaults::NONE);
    assert!(to_member(&p, b"known").is_some());
}

#[test]
fn loss_drops_about_the_fraction_asked() {
    let p = pair();
    p.net.set(1, 0, LinkFaults::lossy(0.5));
    p.member
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sent = 400;
    for i in 0..sent {
        p.peer.send_to(&(i as u32).to_be_bytes(), p.proxy).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5)); // stay under the socket buffers
        }
    }
    let mut arrived = 0;
    while recv(&p.member).is_some() {
        arrived += 1;
    }
    // Binomial(400, 0.5): outside 120..280 has probability far below 1e-15.
    assert!((120..280).contains(&arrived), "{arrived} of {sent} arrived");
    let stats = p.net.stats();
    assert_eq!(stats.dropped + stats.forwarded, sent);
    assert_eq!(stats.forwarded, arrived);
}

#[test]
fn duplication_sends_every_datagram_twice() {
    let p = pair();
    p.net.set(
        1,
        0,
        LinkFaults {
            duplicate: 1.0,
            ..LinkFaults::NONE
        },
    );
    for i in 0..10u8 {
        p.peer.send_to(&[i], p.proxy).unwrap();
    }
    let mut got = Vec::new();
    while let Some((b, _)) = recv(&p.member) {
        got.push(b[0]);
    }
    got.sort_unstable();
    let expected: Vec<u8> = (0..10u8).flat_map(|i| [i, i]).collect();
    assert_eq!(got, expected);
    assert_eq!(p.net.stats().duplicated, 10);
}

#[test]
fn delay_holds_datagrams_back_and_keeps_them() {
    let p = pair();
    let upstream = to_member(&p, b"open").unwrap();
    let delay = Duration::from_millis(250);
    p.net.set(0, 1, LinkFaults::slow(delay, Duration::ZERO));
    p.peer
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sent = Instant::now();
    assert!(to_peer(&p, upstream, b"late"));
    let took = sent.elapsed();
    assert!(took >= delay, "arrived after {took:?}");
    // With jitter, datagrams all arrive, possibly reordered.
    p.net.set(
        1,
        0,
        LinkFaults::slow(Duration::from_millis(20), Duration::from_millis(80)),
    );
    for i in 0..20u8 {
        p.peer.send_to(&[i], p.proxy).unwrap();
    }
    let mut got = Vec::new();
    while let Some((b, _)) = recv(&p.member) {
        got.push(b[0]);
    }
    got.sort_unstable();
    assert_eq!(got, (0..20u8).collect::<Vec<_>>());
    assert_eq!(p.net.stats().delayed, 21);
}

#[test]
fn dropping_the_net_stops_forwarding_and_frees_the_port() {
    let p = pair();
    assert!(to_member(&p, b"open").is_some());
    let Pair {
        net,
        member,
        peer,
        proxy,
    } = p;
    drop(net);
    peer.send_to(b"after", proxy).unwrap();
    assert!(recv(&member).is_none());
    // The proxy's socket is closed: its port can be bound again.
    UdpSocket::bind(proxy).expect("the proxy's port is free after drop");
}
