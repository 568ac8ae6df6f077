//! `LocalNetwork`: a 3-member cluster in one process on a real multi-thread runtime, with real
//! files. Writes and reads through every member, and a member that leaves the network (a crash
//! as the others see it) does not stop the other two.

use std::path::Path;
use std::sync::Arc;

use etch_replication::local::LocalNetwork;
use etch_replication::types::NodeId;
use etch_replication::{ReadConsistency, ReplicatedStore};

use crate::support::async_members::{self, wait_leader};

/// Starts member `id` with its file in `dir` and registers it on `net`.
async fn start(dir: &Path, id: NodeId, net: &Arc<LocalNetwork>) -> ReplicatedStore {
    let member = async_members::open(dir, crate::blocking_members::config(id), net).await;
    net.register(id, member.handler());
    member
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(LocalNetwork::new());
    let mut members = Vec::new();
    for id in 1..=3 {
        members.push(start(dir.path(), id, &net).await);
    }
    members[0]
        .initialize([1, 2, 3].into_iter().collect())
        .await
        .unwrap();
    let leader = wait_leader(&members).await;

    // A write on every member, read linearizably on the next one.
    for (i, m) in members.iter().enumerate() {
        let key = format!("k{i}");
        let put = m.put(&key, "v").await.unwrap();
        let next = &members[(i + 1) % 3];
        let got = next.get(&key).await.unwrap().expect("written key is read");
        assert_eq!(got.mod_revision, put.header_revision);
    }

    // A follower leaves the network: the other two go on.
    let gone = members
        .iter()
        .position(|m| m.id() != leader)
        .expect("a follower");
    net.unregister(members[gone].id());
    let stayed: Vec<&ReplicatedStore> = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != gone)
        .map(|(_, m)| m)
        .collect();
    let put = stayed[1].put("after", "x").await.unwrap();
    let got = stayed[0]
        .get_consistent("after", ReadConsistency::Linearizable)
        .await
        .unwrap()
        .expect("written key is read");
    assert_eq!(got.mod_revision, put.header_revision);

    // It comes back and catches up.
    net.register(members[gone].id(), members[gone].handler());
    let got = members[gone].get("after").await.unwrap();
    assert_eq!(got.map(|kv| kv.mod_revision), Some(put.header_revision));

    for m in &members {
        m.shutdown().await.unwrap();
    }
}
