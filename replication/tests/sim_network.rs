//! The simulated network on its own: seeded replay, loss, duplication, partitions (both ways
//! and one way), crashes, and the openraft adapter's error mapping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etch_replication::network::{
    BoxFuture, NetworkFactory, RaftHandler, RaftReply, RaftRequest, Transport, TransportError,
};
use etch_replication::sim::{Fate, Faults, SimNetwork};
use etch_replication::types::NodeId;
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{BasicNode, Vote};

/// Grants every vote and records which term it saw, on which node, when.
struct Recorder {
    node: NodeId,
    seen: Arc<Mutex<Vec<(NodeId, u64, Duration)>>>,
    start: tokio::time::Instant,
}

impl RaftHandler for Recorder {
    fn handle(&self, request: RaftRequest) -> BoxFuture<'_, RaftReply> {
        Box::pin(async move {
            let RaftRequest::Vote(v) = request else {
                panic!("only votes in this test")
            };
            self.seen.lock().unwrap().push((
                self.node,
                v.vote.leader_id().term,
                self.start.elapsed(),
            ));
            RaftReply::Vote(Ok(VoteResponse::new(v.vote, None, true)))
        })
    }
}

type Seen = Arc<Mutex<Vec<(NodeId, u64, Duration)>>>;

fn network(seed: u64, faults: Faults, nodes: &[NodeId]) -> (SimNetwork, Seen) {
    let net = SimNetwork::new(seed, faults);
    let seen: Seen = Arc::default();
    for &node in nodes {
        net.register(
            node,
            Arc::new(Recorder {
                node,
                seen: Arc::clone(&seen),
                start: tokio::time::Instant::now(),
            }),
        );
    }
    (net, seen)
}

fn vote(term: u64) -> RaftRequest {
    RaftRequest::Vote(VoteRequest::new(Vote::new(term, 1), None))
}

/// Sends `count` votes between random-looking but fixed pairs, all concurrently, and returns
/// the order in which the handlers saw them and the network's trace.
async fn run(seed: u64, count: u64) -> (Vec<(NodeId, u64, Duration)>, Vec<String>) {
    let (net, seen) = network(seed, Faults::lossy(), &[1, 2, 3]);
    let mut tasks = Vec::new();
    for i in 0..count {
        let from = 1 + i % 3;
        let to = 1 + (i + 1 + i / 3) % 3;
        let to = if to == from { 1 + (from % 3) } else { to };
        tasks.push(tokio::spawn(net.send(from, to, vote(i))));
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    let trace = net
        .trace()
        .iter()
        .map(|d| format!("{:?} {}->{} {} {:?}", d.at, d.from, d.to, d.kind, d.fate))
        .collect();
    let seen = seen.lock().unwrap().clone();
    (seen, trace)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_seed_replays_exactly_and_seeds_differ() {
    let a = run(11, 200).await;
    let b = run(11, 200).await;
    assert_eq!(a, b, "same seed, different run");
    let c = run(12, 200).await;
    assert_ne!(a.1, c.1, "different seeds gave the same trace");
    // The lossy profile really loses, duplicates and reorders.
    let fates: Vec<&str> = a.1.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert!(fates.contains(&"Dropped"));
    assert!(fates.contains(&"Duplicated"));
    let terms: Vec<u64> = a.0.iter().map(|s| s.1).collect();
    let mut sorted = terms.clone();
    sorted.sort_unstable();
    assert_ne!(terms, sorted, "no message overtook another");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn partitions_cut_both_ways_until_healed() {
    let (net, seen) = network(1, Faults::none(), &[1, 2, 3]);
    net.partition(&[1], &[2, 3]);
    assert_eq!(
        net.send(1, 2, vote(1)).await.unwrap_err(),
        TransportError::Unreachable { to: 2 }
    );
    assert_eq!(
        net.send(3, 1, vote(2)).await.unwrap_err(),
        TransportError::Unreachable { to: 1 }
    );
    assert!(
        net.send(2, 3, vote(3)).await.is_ok(),
        "same side still talks"
    );
    net.heal();
    assert!(net.send(1, 2, vote(4)).await.is_ok());
    let terms: Vec<u64> = seen.lock().unwrap().iter().map(|s| s.1).collect();
    assert_eq!(terms, vec![3, 4]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_one_way_cut_delivers_but_loses_the_reply() {
    let (net, seen) = network(1, Faults::none(), &[1, 2]);
    net.cut_one_way(1, 2);
    assert_eq!(
        net.send(1, 2, vote(1)).await.unwrap_err(),
        TransportError::Unreachable { to: 2 }
    );
    // 2 → 1 arrives and is acted on, but the answer travels 1 → 2, which is cut.
    assert_eq!(
        net.send(2, 1, vote(2)).await.unwrap_err(),
        TransportError::Lost { to: 1 }
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(net.trace().last().unwrap().fate, Fate::ReplyCut);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn loss_duplication_and_crashes() {
    let all_lost = Faults {
        drop: 1.0,
        ..Faults::none()
    };
    let (net, seen) = network(1, all_lost, &[1, 2]);
    let started = tokio::time::Instant::now();
    assert_eq!(
        net.send(1, 2, vote(1)).await.unwrap_err(),
        TransportError::Lost { to: 2 }
    );
    assert_eq!(
        started.elapsed(),
        Faults::none().lost_after,
        "loss is noticed by timeout"
    );
    assert!(seen.lock().unwrap().is_empty());

    net.set_faults(Faults {
        duplicate: 1.0,
        ..Faults::none()
    });
    assert!(net.send(1, 2, vote(2)).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the duplicate was handled too"
    );

    net.unregister(2);
    assert_eq!(
        net.send(1, 2, vote(3)).await.unwrap_err(),
        TransportError::Unreachable { to: 2 }
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn openraft_adapter_maps_transport_errors() {
    let (net, _seen) = network(1, Faults::none(), &[1, 2]);
    let net = Arc::new(net);
    let mut factory = NetworkFactory::new(1, Arc::clone(&net));
    let mut client = factory.new_client(2, &BasicNode::default()).await;
    let option = RPCOption::new(Duration::from_secs(1));
    let granted = client
        .vote(VoteRequest::new(Vote::new(5, 1), None), option.clone())
        .await
        .unwrap();
    assert!(granted.vote_granted);

    net.cut_one_way(1, 2);
    let err = client
        .vote(VoteRequest::new(Vote::new(6, 1), None), option.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");

    net.heal();
    net.cut_one_way(2, 1);
    let err = client
        .vote(VoteRequest::new(Vote::new(7, 1), None), option)
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Network(_)), "{err:?}");
}
