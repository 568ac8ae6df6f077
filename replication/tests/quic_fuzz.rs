//! Structure-aware fuzzing of the peer message decoder, and malformed messages thrown at a
//! running member.
//!
//! tests/quic_frame.rs feeds the frame decoder random bytes and one-byte changes of a vote.
//! Here the seeds are real messages of every kind a peer sends (appends carrying puts, txns,
//! nested txns and membership changes; snapshot chunks; forwarded client requests; every
//! reply), and the mutations are the ones that reach deep into postcard's decoding: several
//! byte changes, insertions, deletions, splices between messages, truncation, with the length
//! prefix kept consistent half of the time so the body is decoded rather than refused at the
//! frame. Whatever the input, decoding returns a value or a typed error; a value it returns
//! encodes to a frame that decodes to the same encoding (no decoder state survives a message).
//!
//! Then a 3-member QUIC cluster on loopback takes a stream of mutated frames that do not
//! decode, over an authenticated connection, plus random datagrams at every peer port: each bad
//! frame is refused and counted, the term does not move, and the cluster keeps committing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use etch_replication::command::{
    Command, Compare, CompareOp, CompareTarget, KeyRange, Put, Txn, TxnOp, WriteOp, MAX_TXN_DEPTH,
};
use etch_replication::forward::ClientRequest;
use etch_replication::network::{RaftReply, RaftRequest};
use etch_replication::quic::frame::{self, FrameError};
use etch_replication::quic::hello::{ClusterHash, Hello, HELLO_LIMIT};
use etch_replication::quic::{PeerTls, QuicConfig, QuicTransport};
use etch_replication::types::{NodeId, Proposal, TypeConfig};
use etch_replication::{NodeConfig, ReplicatedStore};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use crate::support::quic_peer::raw_connection;

/// The body limit peers use by default.
const LIMIT: usize = 64 << 20;

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn put(key: &str, value: &[u8]) -> Put {
    Put {
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        lease: 7,
        prev_kv: true,
        ..Put::default()
    }
}

/// A transaction nested `depth` levels deep (1: no nesting).
fn nested(depth: usize) -> Txn {
    let mut txn = Txn {
        compare: vec![Compare {
            range: KeyRange {
                start: b"k".to_vec(),
                end: vec![0],
            },
            op: CompareOp::Greater,
            target: CompareTarget::Mod(3),
        }],
        success: vec![TxnOp::Put(put("in", b"side"))],
        failure: vec![],
    };
    for _ in 1..depth {
        txn = Txn {
            compare: vec![],
            success: vec![TxnOp::Txn(txn)],
            failure: vec![TxnOp::Put(put("f", b""))],
        };
    }
    txn
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(2, index),
        payload,
    }
}

fn proposal(id: u64, command: Command) -> EntryPayload<TypeConfig> {
    EntryPayload::Normal(Proposal {
        origin: 2,
        id,
        command,
    })
}

fn membership() -> Membership<NodeId, BasicNode> {
    let voters = BTreeSet::from([1, 2, 3]);
    let nodes: BTreeMap<NodeId, BasicNode> = [1, 2, 3, 4]
        .into_iter()
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 2380 + id))))
        .collect();
    Membership::new(vec![voters], nodes)
}

/// One real message of every kind a peer sends.
fn requests() -> Vec<RaftRequest> {
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(2, 9)),
        entries: vec![
            entry(10, EntryPayload::Blank),
            entry(
                11,
                proposal(
                    1,
                    Command::Batch(vec![
                        WriteOp::Put(put("a", &[0xab; 40])),
                        WriteOp::Put(put("b", b"")),
                    ]),
                ),
            ),
            entry(12, proposal(2, Command::Txn(nested(4)))),
            entry(13, EntryPayload::Membership(membership())),
        ],
        leader_commit: Some(log_id(2, 10)),
    };
    let snapshot = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(2, 13)),
            last_membership: StoredMembership::new(Some(log_id(2, 13)), membership()),
            snapshot_id: "2-13-1".into(),
        },
        offset: 4096,
        data: (0..300u32).map(|i| (i * 7) as u8).collect(),
        done: false,
    };
    vec![
        RaftRequest::Vote(VoteRequest::new(Vote::new(3, 2), Some(log_id(2, 13)))),
        RaftRequest::AppendEntries(append),
        RaftRequest::InstallSnapshot(snapshot),
        RaftRequest::Client {
            from: 3,
            request: ClientRequest::Propose {
                proposal: Proposal {
                    origin: 3,
                    id: 99,
                    command: Command::Txn(nested(2)),
                },
                attempt: 1,
            },
        },
        RaftRequest::Client {
            from: 3,
            request: ClientRequest::ReadIndex,
        },
        RaftRequest::Client {
            from: 2,
            request: ClientRequest::LeaseTimeToLive { id: 5, keys: true },
        },
        RaftRequest::Client {
            from: 2,
            request: ClientRequest::HashKv { revision: 12 },
        },
    ]
}

fn replies() -> Vec<RaftReply> {
    vec![
        RaftReply::Vote(Ok(VoteResponse {
            vote: Vote::new(3, 2),
            vote_granted: true,
            last_log_id: Some(log_id(2, 13)),
        })),
        RaftReply::AppendEntries(Ok(AppendEntriesResponse::Success)),
        RaftReply::AppendEntries(Ok(AppendEntriesResponse::Conflict)),
        RaftReply::AppendEntries(Ok(AppendEntriesResponse::HigherVote(Vote::new(4, 3)))),
    ]
}

/// The encoded frames every mutation starts from.
fn seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = requests()
        .iter()
        .map(|r| frame::encode(r, LIMIT).unwrap())
        .collect();
    out.extend(replies().iter().map(|r| frame::encode(r, LIMIT).unwrap()));
    out.push(
        frame::encode(
            &Hello {
                cluster: ClusterHash::of("fuzz"),
                from: 2,
                to: 1,
            },
            HELLO_LIMIT,
        )
        .unwrap(),
    );
    out
}

/// One edit of a frame.
#[derive(Clone, Debug)]
enum Mutation {
    Set {
        at: prop::sample::Index,
        byte: u8,
    },
    FlipBit {
        at: prop::sample::Index,
        bit: u8,
    },
    Insert {
        at: prop::sample::Index,
        bytes: Vec<u8>,
    },
    Delete {
        at: prop::sample::Index,
        len: usize,
    },
    /// Copies a slice of another seed over this one (a field from another message).
    Splice {
        seed: prop::sample::Index,
        from: prop::sample::Index,
        at: prop::sample::Index,
        len: usize,
    },
    Truncate {
        at: prop::sample::Index,
    },
    /// A varint-looking run of continuation bytes (a huge length or number).
    HugeVarint {
        at: prop::sample::Index,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>;
    prop_oneof![
        3 => (idx(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        3 => (idx(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (idx(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (idx(), 1usize..32).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (idx(), idx(), idx(), 1usize..64)
            .prop_map(|(seed, from, at, len)| Mutation::Splice { seed, from, at, len }),
        1 => idx().prop_map(|at| Mutation::Truncate { at }),
        1 => idx().prop_map(|at| Mutation::HugeVarint { at }),
    ]
}

/// Applies `mutations` to `frame` (a copy of seed `seeds[i]`); if `fix_prefix`, rewrites the
/// length prefix to the body's real length so the frame checks pass and postcard sees the body.
fn mutate(
    seeds: &[Vec<u8>],
    mut input: Vec<u8>,
    mutations: &[Mutation],
    fix_prefix: bool,
) -> Vec<u8> {
    for m in mutations {
        let len = input.len().max(1);
        match m {
            Mutation::Set { at, byte } => {
                if !input.is_empty() {
                    let i = at.index(len);
                    input[i] = *byte;
                }
            }
            Mutation::FlipBit { at, bit } => {
                if !input.is_empty() {
                    let i = at.index(len);
                    input[i] ^= 1 << bit;
                }
            }
            Mutation::Insert { at, bytes } => {
                let i = at.index(input.len() + 1);
                input.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete { at, len: n } => {
                if !input.is_empty() {
                    let i = at.index(len);
                    let end = (i + n).min(input.len());
                    input.drain(i..end);
                }
            }
            Mutation::Splice {
                seed,
                from,
                at,
                len: n,
            } => {
                let other = &seeds[seed.index(seeds.len())];
                let f = from.index(other.len());
                let piece = &other[f..(f + n).min(other.len())];
                let i = at.index(input.len() + 1);
                let end = (i + piece.len()).min(input.len());
                input.splice(i..end, piece.iter().copied());
            }
            Mutation::Truncate { at } => {
                let i = at.index(input.len() + 1);
                input.truncate(i);
            }
            Mutation::HugeVarint { at } => {
                let i = at.index(input.len() + 1);
                input.splice(
                    i..i,
                    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                );
            }
        }
    }
    if fix_prefix && input.len() >= frame::PREFIX {
        let body = (input.len() - frame::PREFIX) as u32;
        input[..frame::PREFIX].copy_from_slice(&body.to_be_bytes());
    }
    input
}

/// Decodes `input` as `T`; a value must re-encode to a frame that decodes to the same bytes.
fn decode_checked<T>(input: &[u8], limit: usize) -> Result<(), FrameError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let value: T = frame::decode(input, limit)?;
    let again = frame::encode(&value, limit).expect("a decoded value encodes");
    let value2: T = frame::decode(&again, limit).expect("a re-encoded value decodes");
    assert_eq!(
        frame::encode(&value2, limit).unwrap(),
        again,
        "decode ∘ encode is stable"
    );
    Ok(())
}

/// Every decoder a peer runs on `input`. Panics are failures by themselves.
fn decode_all(input: &[u8]) -> bool {
    let request = decode_checked::<RaftRequest>(input, LIMIT).is_ok();
    let _ = decode_checked::<RaftReply>(input, LIMIT);
    let _ = decode_checked::<Hello>(input, HELLO_LIMIT);
    // The streaming reader agrees with the in-memory decoder, except that it reads one frame
    // and leaves what follows to the stream's end check (the whole-frame decoder refuses
    // trailing bytes itself).
    let streamed = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(frame::read::<RaftRequest, _>(&mut &input[..], LIMIT));
    if request {
        assert!(
            streamed.is_ok(),
            "the streaming reader refused a valid frame"
        );
    } else if streamed.is_ok() {
        assert!(
            matches!(
                frame::decode::<RaftRequest>(input, LIMIT),
                Err(FrameError::TrailingBytes(_))
            ),
            "the streaming reader accepted a frame the whole-frame decoder refuses"
        );
    }
    request
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn mutated_messages_of_every_kind_decode_or_fail_typed(
        seed in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        fix_prefix in any::<bool>(),
    ) {
        let seeds = seeds();
        let start = seeds[seed.index(seeds.len())].clone();
        let input = mutate(&seeds, start, &mutations, fix_prefix);
        decode_all(&input);
    }
}

#[test]
fn every_seed_round_trips() {
    for (i, seed) in seeds().iter().enumerate() {
        let ok = decode_checked::<RaftRequest>(seed, LIMIT).is_ok()
            || decode_checked::<RaftReply>(seed, LIMIT).is_ok()
            || decode_checked::<Hello>(seed, HELLO_LIMIT).is_ok();
        assert!(ok, "seed {i} does not decode");
    }
}

#[test]
fn transactions_nested_too_deep_are_refused_typed() {
    let frame_of = |depth| {
        let request = RaftRequest::Client {
            from: 2,
            request: ClientRequest::Propose {
                proposal: Proposal {
                    origin: 2,
                    id: 1,
                    command: Command::Txn(nested(depth)),
                },
                attempt: 0,
            },
        };
        frame::encode(&request, LIMIT).unwrap()
    };
    // `nested(d)` holds d - 1 transactions inside the top one: MAX_TXN_DEPTH nested levels
    // are accepted, one more is refused, and a very deep one is refused without exhausting the
    // stack.
    assert!(frame::decode::<RaftRequest>(&frame_of(MAX_TXN_DEPTH + 1), LIMIT).is_ok());
    for depth in [MAX_TXN_DEPTH + 2, 10_000] {
        match frame::decode::<RaftRequest>(&frame_of(depth), LIMIT) {
            Err(FrameError::Codec(_)) => {}
            other => panic!("depth {depth}: {other:?}"),
        }
    }
}

// ---- against a running cluster ----

const TOKEN: &str = "etch-quic-fuzz";

fn member_config(id: NodeId) -> NodeConfig {
    let mut c = NodeConfig::new(id);
    c.raft.cluster_name = "fuzz".into();
    c.raft.heartbeat_interval = 50;
    c.raft.election_timeout_min = 400;
    c.raft.election_timeout_max = 800;
    c.request_timeout = Duration::from_secs(5);
    c
}

struct Cluster {
    _dir: tempfile::TempDir,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, (ReplicatedStore, Arc<QuicTransport>)>,
}

impl Cluster {
    async fn boot() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut transports = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=3 {
            let config = QuicConfig::new(id, "127.0.0.1:0".parse().unwrap(), TOKEN, PeerTls::Auto);
            let t = Arc::new(QuicTransport::bind(config).unwrap());
            addrs.insert(id, t.local_addr().unwrap());
            transports.insert(id, t);
        }
        let mut members = BTreeMap::new();
        for (id, t) in transports {
            for (&peer, &addr) in &addrs {
                if peer != id {
                    t.set_peer(peer, addr);
                }
            }
            let store = ReplicatedStore::open(
                member_config(id),
                &dir.path().join(format!("m{id}.etch")),
                etch_engine::Options::new().wal_capacity(8 << 20),
                Arc::clone(&t),
            )
            .await
            .unwrap();
            t.serve(store.handler());
            members.insert(id, (store, t));
        }
        members[&1]
            .0
            .initialize(BTreeSet::from([1, 2, 3]))
            .await
            .unwrap();
        let c = Cluster {
            _dir: dir,
            addrs,
            members,
        };
        c.leader().await;
        c
    }

    async fn leader(&self) -> ReplicatedStore {
        for _ in 0..200 {
            for (store, _) in self.members.values() {
                if store.is_leader() {
                    return store.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader within 10 s");
    }

    fn term(&self, id: NodeId) -> u64 {
        self.members[&id].0.raft().metrics().borrow().current_term
    }

    async fn stop(self) {
        for (store, t) in self.members.into_values() {
            store.shutdown().await.unwrap();
            t.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_cluster_refuses_mutated_frames_and_keeps_serving() {
    let c = Cluster::boot().await;
    let leader = c.leader().await;
    let target = leader.id();
    let term = c.term(target);
    leader.put("before", "fuzz").await.unwrap();

    // Mutated frames that this build cannot decode (checked locally first: a frame that does
    // decode is a real request a trusted peer could send, which is not this test's subject).
    let seeds = seeds();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        any::<prop::sample::Index>(),
        proptest::collection::vec(mutation(), 1..6),
        any::<bool>(),
    );
    let mut bad = Vec::new();
    while bad.len() < 150 {
        let (seed, mutations, fix) = strategy.new_tree(&mut runner).unwrap().current();
        let input = mutate(
            &seeds,
            seeds[seed.index(seeds.len())].clone(),
            &mutations,
            fix,
        );
        if frame::decode::<RaftRequest>(&input, LIMIT).is_err() && !input.is_empty() {
            bad.push(input);
        }
    }
    let before = c.members[&target].1.stats();
    // Auto-TLS peers verify nobody: any certificate passes.
    let tls = PeerTls::Auto.configs().unwrap();
    let (endpoint, conn) = raw_connection(tls, TOKEN, target, c.addrs[&target]).await;
    for (i, input) in bad.iter().enumerate() {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let _ = send.write_all(input).await; // the member may reset the stream first
        let _ = send.finish();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            frame::read::<RaftReply, _>(&mut recv, LIMIT),
        )
        .await
        .unwrap_or_else(|_| panic!("frame {i}: neither answered nor reset"));
        assert!(
            answer.is_err(),
            "frame {i} ({input:02x?}) was answered: {answer:?}"
        );
    }
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    let after = c.members[&target].1.stats();
    assert_eq!(
        after.malformed_frames - before.malformed_frames,
        bad.len() as u64
    );

    // Random datagrams at every peer port, half shaped like QUIC v1 initial packets.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for addr in c.addrs.values() {
        for i in 0..500 {
            let len = 1 + (next() % 1400) as usize;
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && len > 6 {
                datagram[0] = 0xc0 | (datagram[0] & 0x0f);
                datagram[1..5].copy_from_slice(&1u32.to_be_bytes());
            }
            socket.send_to(&datagram, addr).unwrap();
        }
    }

    // Nothing changed: same term, writes commit and reach every member.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.term(target), term, "the fuzzing disturbed the leader");
    assert!(leader.is_leader());
    for i in 0..20 {
        leader.put(format!("after/{i}"), "fuzz").await.unwrap();
    }
    for (id, (store, _)) in &c.members {
        let mut found = false;
        for _ in 0..100 {
            let got = store
                .get_consistent("after/19", etch_replication::ReadConsistency::Serializable)
                .await
                .unwrap();
            if got.is_some() {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            found,
            "member {id} did not apply the writes after the fuzzing"
        );
    }
    c.stop().await;
}
