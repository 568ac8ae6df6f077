//! A follower's forwarded proposal whose first try reached the leader and was acted on, but
//! whose answer was lost, and whose resend then found the leader unreachable (a leader killed
//! after proposing, not up again for the resend): the proposal's fate is unknown, so the
//! follower must wait for it in its own log rather than propose it again. Proposing it again
//! applied the write twice (two revisions for one put), which the 5-member fault test
//! (tests/cluster_faults.rs) can see as a linearizability violation.
//!
//! The network here is `LocalNetwork` with a script for forwarded proposals only: the first is
//! delivered and its answer dropped (`Lost`), the resends are refused (`Unreachable`) for a
//! while, then everything goes through.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use etch_replication::forward::ClientRequest;
use etch_replication::local::LocalNetwork;
use etch_replication::network::{BoxFuture, RaftReply, RaftRequest, Transport, TransportError};
use etch_replication::types::NodeId;
use etch_replication::ReplicatedStore;

use crate::support::async_members::{self, wait_leader};

/// `LocalNetwork` with a fault script for forwarded proposals (`ClientRequest::Propose`).
struct Scripted {
    net: LocalNetwork,
    /// Forwarded proposals sent so far.
    proposals: AtomicU32,
    /// How many sends after the first are refused as unreachable.
    refused: u32,
    /// Whether the script is on.
    armed: std::sync::atomic::AtomicBool,
}

impl Transport for Scripted {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let propose = matches!(
            &request,
            RaftRequest::Client {
                request: ClientRequest::Propose { .. },
                ..
            }
        );
        if !propose || !self.armed.load(Ordering::SeqCst) {
            return self.net.send(from, to, request);
        }
        let n = self.proposals.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            // Delivered and acted on; the answer never arrives.
            let delivered = self.net.send(from, to, request);
            return Box::pin(async move {
                let _ = delivered.await;
                Err(TransportError::Lost { to })
            });
        }
        if n <= self.refused {
            return Box::pin(async move { Err(TransportError::Unreachable { to }) });
        }
        self.net.send(from, to, request)
    }
}

async fn start(dir: &Path, id: NodeId, net: &Arc<Scripted>) -> ReplicatedStore {
    let member = async_members::open(dir, crate::blocking_members::config(id), net).await;
    net.net.register(id, member.handler());
    member
}

/// A follower's put whose first forward is acted on with its answer lost, then `refused`
/// resends find the leader unreachable: the put must be applied exactly once.
async fn lost_then_unreachable(refused: u32) {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Scripted {
        net: LocalNetwork::new(),
        proposals: AtomicU32::new(0),
        refused,
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let mut members = Vec::new();
    for id in 1..=3 {
        members.push(start(dir.path(), id, &net).await);
    }
    members[0]
        .initialize([1, 2, 3].into_iter().collect())
        .await
        .unwrap();
    let leader = wait_leader(&members).await;
    let follower = members.iter().find(|m| m.id() != leader).unwrap();
    let before = follower.put("warm", "up").await.unwrap().header_revision;

    net.armed.store(true, Ordering::SeqCst);
    let answer = follower.put("k", "v").await;
    net.armed.store(false, Ordering::SeqCst);
    assert!(
        net.proposals.load(Ordering::SeqCst) >= 2,
        "the script did not run: the put was not resent"
    );

    // Every member has applied everything once a linearizable read on each returns.
    for m in &members {
        let kv = m.get("k").await.unwrap().expect("the put took effect");
        assert_eq!(
            kv.version,
            1,
            "member {}: one put of k applied {} times (revisions {before}..{})",
            m.id(),
            kv.version,
            kv.mod_revision
        );
        assert_eq!(kv.mod_revision, before + 1);
        assert_eq!(
            m.revision(),
            before + 1,
            "member {}: a second revision",
            m.id()
        );
    }
    // The put's own answer, if it came, names the one revision it made.
    if let Ok(put) = answer {
        assert_eq!(put.header_revision, before + 1);
    }
    for m in &members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_forward_then_an_unreachable_leader_is_not_proposed_again() {
    lost_then_unreachable(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_forward_then_a_long_unreachable_leader_is_not_proposed_again() {
    // More refusals than the resends of one try (`LOST_RETRIES` in node/client.rs is 4): with
    // the old handling the proposer kept asking until the leader answered, then proposed anew.
    lost_then_unreachable(6).await;
}
