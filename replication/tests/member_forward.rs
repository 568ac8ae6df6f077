//! Membership changes asked of a follower travel to the leader as `ClientRequest::Member` over
//! the members' transport (`ReplicatedStore::change_members`), and the leader makes each at
//! most once, however the network copies or loses the request and its answer.
//!
//! The leader's `MemberService` here is a small one of the test's own (etch's server installs
//! etcd's): it counts its calls and adds a learner per `Add`, so a change made twice shows as
//! two calls and two learners. The network is `LocalNetwork` with a script for membership
//! requests only: every copy duplicated (one copy alongside the first, one after its answer),
//! or the first copy's answer lost.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etch_replication::forward::{
    ClientRequest, ForwardError, MemberChanged, MemberInfo, MemberRefusal, MemberRequest,
    MemberService,
};
use etch_replication::local::LocalNetwork;
use etch_replication::network::{BoxFuture, RaftReply, RaftRequest, Transport, TransportError};
use etch_replication::node::MemberChangeError;
use etch_replication::types::NodeId;
use etch_replication::ReplicatedStore;
use openraft::BasicNode;

use crate::support::async_members::{self, wait_leader};

/// What the network does to membership requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    /// Delivers them as they are.
    Plain,
    /// Delivers each one three times: once, a copy at the same time, and a copy after the
    /// first answer; the sender gets the first answer.
    Duplicate,
    /// Delivers the first one and loses its answer; the rest as they are.
    LoseFirstAnswer,
}

struct Scripted {
    net: LocalNetwork,
    script: std::sync::Mutex<Script>,
    /// Membership requests sent by members (not counting the copies this network makes).
    sent: AtomicU32,
}

impl Transport for Scripted {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let member = matches!(
            &request,
            RaftRequest::Client {
                request: ClientRequest::Member { .. },
                ..
            }
        );
        if !member {
            return self.net.send(from, to, request);
        }
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        let script = *self.script.lock().unwrap();
        match script {
            Script::Plain => self.net.send(from, to, request),
            Script::Duplicate => {
                let first = self.net.send(from, to, request.clone());
                let alongside = self.net.send(from, to, request.clone());
                let after = self.net.send(from, to, request);
                Box::pin(async move {
                    let (answer, _) = tokio::join!(first, alongside);
                    let _ = after.await;
                    answer
                })
            }
            Script::LoseFirstAnswer if n == 0 => {
                let delivered = self.net.send(from, to, request);
                Box::pin(async move {
                    let _ = delivered.await;
                    Err(TransportError::Lost { to })
                })
            }
            Script::LoseFirstAnswer => self.net.send(from, to, request),
        }
    }
}

/// The leader's side: counts its calls; `Add` adds a learner numbered from 100 with the first
/// peer URL as its node value; `Remove` of an id not in the membership is refused as etcd's
/// server refuses it.
#[derive(Default)]
struct Counting {
    calls: AtomicU32,
}

fn members_of(leader: &ReplicatedStore) -> Vec<MemberInfo> {
    let metrics = leader.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| MemberInfo {
            id: *id,
            peer_urls: vec![node.addr.clone()],
            is_learner: !voters.contains(id),
            ..MemberInfo::default()
        })
        .collect()
}

impl MemberService for Counting {
    fn change<'a>(
        &'a self,
        leader: &'a ReplicatedStore,
        request: MemberRequest,
    ) -> BoxFuture<'a, Result<MemberChanged, ForwardError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            match request {
                MemberRequest::Add { peer_urls, .. } => {
                    // Slow enough that the copy sent alongside arrives while this one runs.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let id = 100 + u64::from(n);
                    let node = BasicNode::new(peer_urls.first().cloned().unwrap_or_default());
                    leader
                        .raft()
                        .add_learner(id, node, false)
                        .await
                        .map_err(|e| ForwardError::Store(e.to_string()))?;
                    Ok(MemberChanged {
                        member: Some(MemberInfo {
                            id,
                            is_learner: true,
                            ..MemberInfo::default()
                        }),
                        members: members_of(leader),
                    })
                }
                MemberRequest::Remove { id } if !members_of(leader).iter().any(|m| m.id == id) => {
                    Err(ForwardError::MemberRefused(MemberRefusal {
                        code: 5,
                        message: "etcdserver: member not found".into(),
                    }))
                }
                _ => Err(ForwardError::Unsupported),
            }
        })
    }
}

async fn start(dir: &Path, id: NodeId, net: &Arc<Scripted>) -> ReplicatedStore {
    let member = async_members::open(dir, crate::blocking_members::config(id), net).await;
    net.net.register(id, member.handler());
    member
}

/// Three members with a [`Counting`] service each; returns them, the services and the
/// leader's index.
async fn cluster(
    dir: &Path,
    net: &Arc<Scripted>,
) -> (Vec<ReplicatedStore>, Vec<Arc<Counting>>, usize) {
    let mut members = Vec::new();
    let mut services = Vec::new();
    for id in 1..=3 {
        let member = start(dir, id, net).await;
        let service = Arc::new(Counting::default());
        member.set_member_service(Arc::clone(&service) as Arc<dyn MemberService>);
        members.push(member);
        services.push(service);
    }
    members[0]
        .initialize([1, 2, 3].into_iter().collect())
        .await
        .unwrap();
    let leader = wait_leader(&members).await;
    let index = members.iter().position(|m| m.id() == leader).unwrap();
    (members, services, index)
}

fn scripted(script: Script) -> Arc<Scripted> {
    Arc::new(Scripted {
        net: LocalNetwork::new(),
        script: std::sync::Mutex::new(script),
        sent: AtomicU32::new(0),
    })
}

fn learners(member: &ReplicatedStore) -> usize {
    members_of(member).iter().filter(|m| m.is_learner).count()
}

/// Adds a learner through a follower with `script` on the network: the change is made once,
/// the follower gets its answer.
async fn add_through_follower(script: Script) {
    let dir = tempfile::tempdir().unwrap();
    let net = scripted(Script::Plain);
    let (members, services, leader) = cluster(dir.path(), &net).await;
    let follower = &members[(leader + 1) % 3];
    *net.script.lock().unwrap() = script;
    let changed = follower
        .change_members(
            MemberRequest::Add {
                peer_urls: vec!["http://127.0.0.1:1".into()],
                learner: true,
            },
            Duration::from_secs(10),
        )
        .await
        .expect("the change is answered");
    *net.script.lock().unwrap() = Script::Plain;
    assert!(net.sent.load(Ordering::SeqCst) >= 1);
    if script == Script::LoseFirstAnswer {
        assert!(
            net.sent.load(Ordering::SeqCst) >= 2,
            "the follower did not ask again after the lost answer"
        );
    }
    assert_eq!(changed.member.map(|m| m.id), Some(100));
    assert_eq!(
        services[leader].calls.load(Ordering::SeqCst),
        1,
        "the leader made the change more than once"
    );
    for (i, s) in services.iter().enumerate() {
        if i != leader {
            assert_eq!(s.calls.load(Ordering::SeqCst), 0, "a follower made it");
        }
    }
    assert_eq!(learners(&members[leader]), 1, "one learner, added once");
    assert_eq!(changed.members.iter().filter(|m| m.is_learner).count(), 1);
    for m in &members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_forwarded_member_change_is_made_once() {
    add_through_follower(Script::Duplicate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_member_change_whose_answer_is_lost_is_made_once_and_answered() {
    add_through_follower(Script::LoseFirstAnswer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_refusal_reaches_the_follower_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let net = scripted(Script::Plain);
    let (members, services, leader) = cluster(dir.path(), &net).await;
    let follower = &members[(leader + 1) % 3];
    let refused = follower
        .change_members(MemberRequest::Remove { id: 77 }, Duration::from_secs(10))
        .await
        .expect_err("no member 77");
    match refused {
        MemberChangeError::Refused(r) => {
            assert_eq!(r.code, 5);
            assert_eq!(r.message, "etcdserver: member not found");
        }
        other => panic!("expected the leader's refusal, got {other:?}"),
    }
    assert_eq!(services[leader].calls.load(Ordering::SeqCst), 1);
    // Asked of the leader itself: the same answer, from the same service.
    let on_leader = members[leader]
        .change_members(MemberRequest::Remove { id: 77 }, Duration::from_secs(10))
        .await
        .expect_err("no member 77");
    assert!(
        matches!(&on_leader, MemberChangeError::Refused(r) if r.message == "etcdserver: member not found"),
        "{on_leader:?}"
    );
    assert_eq!(services[leader].calls.load(Ordering::SeqCst), 2);
    for m in &members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_the_leader_answers_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let net = scripted(Script::Plain);
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
    let e = follower
        .change_members(MemberRequest::Promote { id: 1 }, Duration::from_secs(5))
        .await
        .expect_err("no service installed");
    assert!(matches!(e, MemberChangeError::Cluster(_)), "{e:?}");
    for m in &members {
        m.shutdown().await.unwrap();
    }
}
