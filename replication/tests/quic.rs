//! A 3-member `ReplicatedStore` cluster over the QUIC transport with mutual TLS on loopback:
//! replication, a follower's restart on the same file and port, refused peers (no certificate,
//! another CA, another cluster, another member), garbage datagrams and malformed frames.
//!
//! Real time, bounded: every wait has a deadline; every member and endpoint is shut down at the
//! end of its test, and the test's runtime drops whatever task is left.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_replication::network::{RaftReply, RaftRequest, Transport, TransportError};
use etch_replication::quic::{frame, PeerTls, QuicConfig, QuicTransport};
use etch_replication::types::NodeId;
use etch_replication::{Error, NodeConfig, ReplicatedStore};
use openraft::raft::VoteRequest;
use openraft::Vote;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::support::quic_peer::{answered_by, raw_connection, vote, Refuser};

const TOKEN: &str = "etch-quic-test";

/// The tests here run one at a time: each binds loopback ports and restarts members on theirs,
/// and a port freed by one test must not be taken by another's cluster meanwhile.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
}

/// A certificate authority made the way `etch cert ca` makes one.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes the CA certificate to `dir/<file>` and returns its path.
    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A node certificate for 127.0.0.1, usable as server and client certificate, written to
    /// `dir/<name>.crt` and `dir/<name>.key`.
    fn node(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec![name.to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// Mutual TLS with `name`'s certificate from `ca`, trusting `trusted`.
fn mtls(dir: &Path, ca: &Ca, name: &str, trusted: &Path) -> PeerTls {
    let (cert_file, key_file) = ca.node(dir, name);
    PeerTls::Files {
        cert_file,
        key_file,
        trusted_ca_file: trusted.to_path_buf(),
        client_cert_auth: true,
    }
}

fn member_config(id: NodeId) -> NodeConfig {
    let mut c = NodeConfig::new(id);
    c.raft.cluster_name = "quic".into();
    c.raft.heartbeat_interval = 50;
    c.raft.election_timeout_min = 300;
    c.raft.election_timeout_max = 600;
    c.request_timeout = Duration::from_secs(5);
    // Snapshots every 10 entries and no log kept behind them: a member that was down for more
    // catches up by snapshot, whose chunks cross the transport too.
    c.raft.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(10);
    c.raft.max_in_snapshot_log_to_keep = 0;
    c.raft.purge_batch_size = 1;
    c
}

/// Opens member `id` on `path`, speaking through `transport`. The one place a test
/// opens a member.
async fn open_member(id: NodeId, path: &Path, transport: Arc<QuicTransport>) -> ReplicatedStore {
    let mut tries = 0;
    loop {
        match ReplicatedStore::open(
            member_config(id),
            path,
            etch_engine::Options::new().wal_capacity(8 << 20),
            Arc::clone(&transport),
        )
        .await
        {
            Ok(m) => return m,
            // The stopped member's last tasks may hold the file for a moment.
            Err(Error::Store(etch_engine::Error::Locked { .. })) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("member {id} did not start: {e}"),
        }
    }
}

struct Member {
    store: ReplicatedStore,
    transport: Arc<QuicTransport>,
}

/// Three members on loopback with certificates from one CA.
struct QuicCluster {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, Member>,
}

impl QuicCluster {
    fn new() -> QuicCluster {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("etch test cluster CA");
        let ca_file = ca.write(dir.path(), "ca.crt");
        QuicCluster {
            dir,
            ca,
            ca_file,
            addrs: BTreeMap::new(),
            members: BTreeMap::new(),
        }
    }

    fn transport(&self, id: NodeId, listen: SocketAddr) -> Arc<QuicTransport> {
        let tls = mtls(self.dir.path(), &self.ca, &format!("n{id}"), &self.ca_file);
        Arc::new(QuicTransport::bind(QuicConfig::new(id, listen, TOKEN, tls)).unwrap())
    }

    /// Binds members `ids` on free ports, opens them, and initializes the cluster.
    async fn boot(&mut self, ids: &[NodeId]) {
        let mut transports = BTreeMap::new();
        for &id in ids {
            let t = self.transport(id, "127.0.0.1:0".parse().unwrap());
            self.addrs.insert(id, t.local_addr().unwrap());
            transports.insert(id, t);
        }
        for (id, t) in transports {
            self.start_on(id, t).await;
        }
        let first = &self.members[&ids[0]].store;
        first
            .initialize(ids.iter().copied().collect::<BTreeSet<_>>())
            .await
            .unwrap();
        self.wait_leader().await;
    }

    async fn start_on(&mut self, id: NodeId, transport: Arc<QuicTransport>) {
        for (&peer, &addr) in &self.addrs {
            if peer != id {
                transport.set_peer(peer, addr);
            }
        }
        let path = self.dir.path().join(format!("n{id}.etch"));
        let store = open_member(id, &path, Arc::clone(&transport)).await;
        transport.serve(store.handler());
        self.members.insert(id, Member { store, transport });
    }

    /// Restarts member `id` on its old port, file and log.
    async fn restart(&mut self, id: NodeId) {
        let t = self.transport(id, self.addrs[&id]);
        self.start_on(id, t).await;
    }

    async fn stop(&mut self, id: NodeId) {
        if let Some(m) = self.members.remove(&id) {
            m.store.shutdown().await.unwrap();
            m.transport.shutdown().await;
        }
    }

    async fn stop_all(&mut self) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    fn store(&self, id: NodeId) -> ReplicatedStore {
        self.members[&id].store.clone()
    }

    async fn wait_leader(&self) -> ReplicatedStore {
        for _ in 0..200 {
            if let Some(m) = self.members.values().find(|m| m.store.is_leader()) {
                return m.store.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader within 10 s");
    }

    async fn follower(&self) -> ReplicatedStore {
        let leader = self.wait_leader().await.id();
        self.members
            .values()
            .map(|m| m.store.clone())
            .find(|s| s.id() != leader)
            .unwrap()
    }

    fn term(&self, id: NodeId) -> u64 {
        self.members[&id]
            .store
            .raft()
            .metrics()
            .borrow()
            .current_term
    }
}

/// Waits until `member` has applied a value `value` for `key` (serializable, local read).
async fn wait_value(member: &ReplicatedStore, key: &str, value: &[u8]) {
    for _ in 0..200 {
        let got = member
            .get_consistent(key, etch_replication::ReadConsistency::Serializable)
            .await
            .unwrap();
        if got.map(|kv| kv.value).as_deref() == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("member {} never saw {key} = {value:?}", member.id());
}

/// A vote request with a huge term: answered, it would depose the leader.
fn disruptive_vote() -> RaftRequest {
    RaftRequest::Vote(VoteRequest::new(Vote::new(1_000, 9), None))
}

#[tokio::test]
async fn cluster_over_mutual_tls_replicates_and_a_restarted_follower_catches_up() {
    let _serial = SERIAL.lock().await;
    init_logs();
    let mut c = QuicCluster::new();
    c.boot(&[1, 2, 3]).await;
    let leader = c.wait_leader().await;
    let follower = c.follower().await;

    // A write on one member, a linearizable read on another.
    leader.put("greeting", "hello").await.unwrap();
    let got = follower.get("greeting").await.unwrap().unwrap();
    assert_eq!(got.value, b"hello");
    // A follower's write is forwarded to the leader over the same transport.
    follower.put("from-follower", "yes").await.unwrap();
    assert_eq!(
        leader.get("from-follower").await.unwrap().unwrap().value,
        b"yes"
    );

    // Stop the follower; the others keep a quorum and keep writing.
    let down = follower.id();
    c.stop(down).await;
    let leader = c.wait_leader().await;
    for i in 0..20 {
        leader.put(format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    // Purging runs in the background after a snapshot: wait for it (bounded).
    let mut purged_to = 0;
    for _ in 0..100 {
        purged_to = leader
            .raft()
            .metrics()
            .borrow()
            .purged
            .map_or(0, |l| l.index);
        if purged_to > 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let down_applied = 3; // initial membership, two puts: the entries it had before stopping
    assert!(
        purged_to > down_applied,
        "the leader kept its whole log ({purged_to}); no snapshot would be needed"
    );
    // Restarted on the same file and port, it reconnects (the others back off and retry)
    // and catches up, by snapshot since the entries it misses are purged.
    c.restart(down).await;
    let back = c.store(down);
    wait_value(&back, "k19", b"v19").await;
    let installed = back
        .raft()
        .metrics()
        .borrow()
        .snapshot
        .map_or(0, |l| l.index);
    assert!(
        installed > down_applied,
        "no snapshot installed ({installed})"
    );
    assert_eq!(back.get("k7").await.unwrap().unwrap().value, b"v7");
    let again = c.wait_leader().await;
    again.put("after", "restart").await.unwrap();
    wait_value(&back, "after", b"restart").await;

    // Every member served requests; nothing was refused along the way.
    for m in c.members.values() {
        let s = m.transport.stats();
        assert!(s.served > 0, "member {} served nothing", m.store.id());
        assert_eq!(s.refused_handshakes + s.refused_hellos, 0);
        assert_eq!(s.malformed_frames, 0);
    }
    c.stop_all().await;
}

#[tokio::test]
async fn peers_without_the_right_certificate_or_cluster_are_refused() {
    let _serial = SERIAL.lock().await;
    init_logs();
    let mut c = QuicCluster::new();
    c.boot(&[1, 2, 3]).await;
    let leader = c.wait_leader().await;
    let target = leader.id();
    let target_addr = c.addrs[&target];
    let term = c.term(target);
    let dir = c.dir.path().to_path_buf();

    let other_ca = Ca::new("another CA");
    let other_ca_file = other_ca.write(&dir, "other-ca.crt");
    let intruders: Vec<(&str, PeerTls, &str, NodeId)> = vec![
        // No certificate at all (plain peer URLs).
        ("no certificate", PeerTls::Plain, TOKEN, target),
        // A certificate from another CA (trusting ours, so it does reach the server's check).
        (
            "another CA",
            mtls(&dir, &other_ca, "intruder-ca", &c.ca_file),
            TOKEN,
            target,
        ),
        // A certificate trusted by the other CA only: it refuses our server's certificate.
        (
            "distrusting client",
            mtls(&dir, &c.ca, "intruder-trust", &other_ca_file),
            TOKEN,
            target,
        ),
        // The right CA, another cluster.
        (
            "another cluster",
            mtls(&dir, &c.ca, "intruder-token", &c.ca_file),
            "another-cluster",
            target,
        ),
        // The right CA and cluster, but addressing a member id the target is not.
        (
            "wrong member id",
            mtls(&dir, &c.ca, "intruder-id", &c.ca_file),
            TOKEN,
            target % 3 + 1,
        ),
    ];
    let before = c.members[&target].transport.stats();
    for (what, tls, token, addressed) in intruders {
        let intruder = QuicTransport::bind(QuicConfig::new(
            9,
            "127.0.0.1:0".parse().unwrap(),
            token,
            tls,
        ))
        .unwrap();
        intruder.set_peer(addressed, target_addr);
        let result = intruder.send(9, addressed, disruptive_vote()).await;
        assert_eq!(
            result.err(),
            Some(TransportError::Unreachable { to: addressed }),
            "{what}: the intruder got through"
        );
        intruder.shutdown().await;
    }
    let after = c.members[&target].transport.stats();
    // No certificate and another CA fail the server's TLS check, and so does the distrusting
    // client's handshake (it aborts it); another cluster and another member fail the hello.
    assert_eq!(after.refused_handshakes - before.refused_handshakes, 3);
    assert_eq!(after.refused_hellos - before.refused_hellos, 2);
    assert_eq!(after.accepted, before.accepted);

    // The cluster did not notice: same leader and term, writes and reads work.
    assert_eq!(c.term(target), term);
    assert!(leader.is_leader());
    leader.put("still", "working").await.unwrap();
    let follower = c.follower().await;
    assert_eq!(
        follower.get("still").await.unwrap().unwrap().value,
        b"working"
    );
    c.stop_all().await;
}

/// Writes `bytes` on a new stream and reads the answer frame.
async fn raw_request(
    conn: &quinn::Connection,
    bytes: &[u8],
) -> Result<RaftReply, frame::FrameError> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // The server may reset the stream before all is written: that is an answer too.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    tokio::time::timeout(
        Duration::from_secs(5),
        frame::read::<RaftReply, _>(&mut recv, 64 << 20),
    )
    .await
    .expect("the server neither answered nor reset the stream")
}

#[tokio::test]
async fn garbage_datagrams_and_malformed_frames_change_nothing() {
    let _serial = SERIAL.lock().await;
    init_logs();
    let mut c = QuicCluster::new();
    c.boot(&[1, 2, 3]).await;
    let leader = c.wait_leader().await;
    let target = leader.id();
    let term = c.term(target);

    // Garbage datagrams at every member: random bytes, and bytes shaped like QUIC long
    // headers (initial packets with nonsense inside). Bounded: 300 per member.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for addr in c.addrs.values() {
        for i in 0..300 {
            let len = 1 + (next() % 1400) as usize;
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && len > 6 {
                datagram[0] = 0xc0 | (datagram[0] & 0x0f); // long header, initial
                datagram[1..5].copy_from_slice(&1u32.to_be_bytes()); // QUIC v1
            }
            socket.send_to(&datagram, addr).unwrap();
        }
    }

    // Malformed frames on streams of an authenticated connection.
    let tls = mtls(c.dir.path(), &c.ca, "raw", &c.ca_file)
        .configs()
        .unwrap();
    let (endpoint, conn) = raw_connection(tls, TOKEN, target, c.addrs[&target]).await;
    let valid_body = frame::encode(&disruptive_vote(), 1 << 20).unwrap();
    let mut garbage_body = valid_body.clone();
    for b in &mut garbage_body[5..] {
        *b = 0xff;
    }
    let mut wrong_version = valid_body.clone();
    wrong_version[4] = 99;
    let huge_prefix = {
        let mut b = u32::MAX.to_be_bytes().to_vec();
        b.extend_from_slice(&[1, 2, 3]);
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage body", garbage_body),
        ("unknown version", wrong_version),
        ("huge length prefix", huge_prefix),
        (
            "truncated body",
            valid_body[..valid_body.len() - 3].to_vec(),
        ),
        ("truncated prefix", vec![0, 0]),
        ("empty stream", Vec::new()),
    ];
    let before = c.members[&target].transport.stats();
    for (what, bytes) in &cases {
        let answer = raw_request(&conn, bytes).await;
        assert!(answer.is_err(), "{what}: answered {answer:?}");
    }
    let after = c.members[&target].transport.stats();
    assert_eq!(
        after.malformed_frames - before.malformed_frames,
        cases.len() as u64
    );
    // The connection survives its bad streams: a valid (harmless, stale) vote is answered.
    let harmless = RaftRequest::Vote(VoteRequest::new(Vote::new(0, 9), None));
    let answer = raw_request(&conn, &frame::encode(&harmless, 1 << 20).unwrap())
        .await
        .expect("a valid request on the same connection is still answered");
    match answer {
        RaftReply::Vote(Ok(v)) => assert!(!v.vote_granted),
        other => panic!("unexpected reply {other:?}"),
    }
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;

    // The cluster did not notice.
    assert_eq!(c.term(target), term);
    leader.put("after", "garbage").await.unwrap();
    let follower = c.follower().await;
    assert_eq!(
        follower.get("after").await.unwrap().unwrap().value,
        b"garbage"
    );
    c.stop_all().await;
}

#[tokio::test]
async fn a_dead_peer_costs_bounded_requests_and_backs_off() {
    let _serial = SERIAL.lock().await;
    init_logs();
    // A "peer" that swallows every datagram.
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = QuicConfig::new(1, "127.0.0.1:0".parse().unwrap(), TOKEN, PeerTls::Plain);
    config.max_in_flight = 2;
    config.connect_timeout = Duration::from_millis(300);
    config.backoff_min = Duration::from_secs(5);
    config.backoff_max = Duration::from_secs(5);
    let transport = Arc::new(QuicTransport::bind(config.clone()).unwrap());
    transport.set_peer(2, hole.local_addr().unwrap());

    // Two requests take the two slots; the third is refused at once, not queued.
    let first = tokio::spawn({
        let t = Arc::clone(&transport);
        async move { t.send(1, 2, vote()).await }
    });
    let second = tokio::spawn({
        let t = Arc::clone(&transport);
        async move { t.send(1, 2, vote()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let third = transport.send(1, 2, vote()).await;
    assert_eq!(third.err(), Some(TransportError::Unreachable { to: 2 }));
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(transport.stats().overloaded, 1);
    // The first fails when connecting times out; the second, which waited for that attempt,
    // finds the peer in backoff and does not try again.
    let unreachable = Some(TransportError::Unreachable { to: 2 });
    assert_eq!(first.await.unwrap().err(), unreachable);
    assert_eq!(second.await.unwrap().err(), unreachable);
    assert_eq!(transport.stats().connect_failures, 1);

    // During the backoff, requests fail at once without a new attempt.
    let started = std::time::Instant::now();
    assert_eq!(transport.send(1, 2, vote()).await.err(), unreachable);
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(transport.stats().connect_failures, 1);
    // A member not in the address book is unreachable too.
    assert_eq!(
        transport.send(1, 7, vote()).await.err(),
        Some(TransportError::Unreachable { to: 7 })
    );

    // The backoff doubles per failure and is capped.
    let mut c = config;
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_secs(2);
    assert_eq!(c.backoff(1), Duration::from_millis(50));
    assert_eq!(c.backoff(3), Duration::from_millis(200));
    assert_eq!(c.backoff(40), Duration::from_secs(2));
    transport.shutdown().await;
}

#[tokio::test]
async fn auto_tls_peers_talk_and_a_moved_member_is_found_at_its_new_address() {
    let _serial = SERIAL.lock().await;
    init_logs();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let bind =
        |id| Arc::new(QuicTransport::bind(QuicConfig::new(id, any, TOKEN, PeerTls::Auto)).unwrap());
    let (one, two) = (bind(1), bind(2));
    two.serve(Arc::new(Refuser { id: 2 }));
    one.set_peer(2, two.local_addr().unwrap());
    assert_eq!(answered_by(one.send(1, 2, vote()).await), 2);
    assert_eq!(two.stats().accepted, 1);
    // Concurrent requests share the one connection.
    let replies = futures_join(&one, 20).await;
    assert!(replies.into_iter().all(|r| answered_by(r) == 2));
    assert_eq!(two.stats().accepted, 1);
    assert_eq!(two.stats().served, 21);

    // Member 2 moves: a new endpoint on another port. Until the book says so, requests go to
    // the old address, where nobody answers any more.
    two.shutdown().await;
    let moved = bind(2);
    moved.serve(Arc::new(Refuser { id: 2 }));
    assert!(one.send(1, 2, vote()).await.is_err());
    one.set_peer(2, moved.local_addr().unwrap());
    // The backoff earned at the old address does not delay the new one.
    assert_eq!(answered_by(one.send(1, 2, vote()).await), 2);
    assert_eq!(moved.stats().accepted, 1);
    one.shutdown().await;
    moved.shutdown().await;
}

async fn futures_join(
    transport: &Arc<QuicTransport>,
    n: usize,
) -> Vec<Result<RaftReply, TransportError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let t = Arc::clone(transport);
        tasks.spawn(async move {
            t.send(
                1,
                2,
                RaftRequest::Vote(VoteRequest::new(Vote::new(1, 1), None)),
            )
            .await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[test]
fn peer_tls_flags_resolve_as_etcd_reads_them() {
    use etch_replication::quic::PeerTlsOptions;
    let files = PeerTlsOptions {
        cert_file: Some("n1.crt".into()),
        key_file: Some("n1.key".into()),
        trusted_ca_file: Some("ca.crt".into()),
        client_cert_auth: true,
        auto_tls: true,
    };
    // Certificate files win over auto-TLS.
    assert_eq!(
        files.resolve().unwrap(),
        PeerTls::Files {
            cert_file: "n1.crt".into(),
            key_file: "n1.key".into(),
            trusted_ca_file: "ca.crt".into(),
            client_cert_auth: true,
        }
    );
    let auto = PeerTlsOptions {
        auto_tls: true,
        ..Default::default()
    };
    assert_eq!(auto.resolve().unwrap(), PeerTls::Auto);
    assert_eq!(PeerTlsOptions::default().resolve().unwrap(), PeerTls::Plain);
    let errors = [
        PeerTlsOptions {
            cert_file: Some("n1.crt".into()),
            ..Default::default()
        },
        PeerTlsOptions {
            key_file: Some("n1.key".into()),
            ..Default::default()
        },
        PeerTlsOptions {
            trusted_ca_file: None,
            ..files.clone()
        },
        PeerTlsOptions {
            client_cert_auth: true,
            auto_tls: true,
            ..Default::default()
        },
    ];
    for options in errors {
        let e = options.resolve().unwrap_err().to_string();
        assert!(e.contains("--peer-"), "{options:?}: {e}");
    }
    // Missing files are reported with their path.
    let e = match files.resolve().unwrap().configs() {
        Err(e) => e.to_string(),
        Ok(_) => panic!("configs from files that do not exist"),
    };
    assert!(e.contains("n1.crt"), "{e}");
}

#[tokio::test]
async fn server_certificates_are_checked_against_the_peer_url_host() {
    let _serial = SERIAL.lock().await;
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("names CA");
    let ca_file = ca.write(dir.path(), "ca.crt");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let bind = |id: NodeId| {
        let tls = mtls(dir.path(), &ca, &format!("n{id}"), &ca_file);
        Arc::new(QuicTransport::bind(QuicConfig::new(id, any, TOKEN, tls)).unwrap())
    };
    let (one, two) = (bind(1), bind(2));
    two.serve(Arc::new(Refuser { id: 2 }));
    let addr = two.local_addr().unwrap();
    // Member 2's certificate names "n2" and 127.0.0.1, not "n3".
    one.set_peer_named(2, addr, "n3");
    assert_eq!(
        one.send(1, 2, vote()).await.err(),
        Some(TransportError::Unreachable { to: 2 })
    );
    one.set_peer_named(2, addr, "n2");
    assert_eq!(answered_by(one.send(1, 2, vote()).await), 2);
    one.set_peer(2, addr);
    assert_eq!(answered_by(one.send(1, 2, vote()).await), 2);
    one.shutdown().await;
    two.shutdown().await;
}
