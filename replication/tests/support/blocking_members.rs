//! Blocking members of one in-process cluster over `LocalNetwork`, with test timing (50 ms
//! heartbeat, 300-600 ms election timeout). Shared by `replication/tests/blocking.rs` and the
//! root crate's `tests/kv_backends.rs` (included with `#[path]`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_replication::local::LocalNetwork;
use etch_replication::types::NodeId;
use etch_replication::{Member, NodeConfig};

/// The test timing for member `id`.
pub fn config(id: NodeId) -> NodeConfig {
    let mut config = NodeConfig::new(id);
    config.raft.heartbeat_interval = 50;
    config.raft.election_timeout_min = 300;
    config.raft.election_timeout_max = 600;
    config
}

/// Starts member `id` with its file `n<id>.etch` in `dir`, registered on `net`.
pub fn start(dir: &Path, id: NodeId, net: &Arc<LocalNetwork>) -> Member {
    start_with(dir, net, config(id), etch_engine::Options::new())
}

/// [`start`] with other settings and store options.
pub fn start_with(
    dir: &Path,
    net: &Arc<LocalNetwork>,
    config: NodeConfig,
    options: etch_engine::Options,
) -> Member {
    let id = config.id;
    let member = Member::open(
        config,
        dir.join(format!("n{id}.etch")),
        options,
        Arc::clone(net),
    )
    .unwrap();
    net.register(id, member.handler());
    member
}

/// Members 1, 2 and 3, each started by `start` in `dir` on one new network, member 1
/// initializing the cluster of all three; returns them and the leader they agree on.
pub fn three(
    dir: &Path,
    start: impl Fn(&Path, NodeId, &Arc<LocalNetwork>) -> Member,
) -> (Vec<Member>, NodeId) {
    let net = Arc::new(LocalNetwork::new());
    let members: Vec<Member> = (1..=3).map(|id| start(dir, id, &net)).collect();
    members[0]
        .initialize([1, 2, 3].into_iter().collect())
        .unwrap();
    let leader = wait_leader(&members);
    (members, leader)
}

/// The leader all of `members` agree on, waited for up to 20 s.
pub fn wait_leader(members: &[Member]) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let known: BTreeSet<Option<NodeId>> = members.iter().map(|m| m.leader()).collect();
        if let [Some(id)] = known.into_iter().collect::<Vec<_>>()[..] {
            return id;
        }
        assert!(Instant::now() < deadline, "no leader agreed on within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
