//! Async members of one in-process cluster with the test timing of `blocking_members` (50 ms
//! heartbeat, 300-600 ms election timeout): what the tests of forwarding, apply lag and
//! `LocalNetwork` share.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_replication::network::Transport;
use etch_replication::types::NodeId;
use etch_replication::{NodeConfig, ReplicatedStore};

/// Opens member `config.id` with its file `n<id>.etch` in `dir` on `transport` (the caller
/// registers its handler on the network).
pub async fn open<T: Transport>(
    dir: &Path,
    config: NodeConfig,
    transport: &Arc<T>,
) -> ReplicatedStore {
    let id = config.id;
    ReplicatedStore::open(
        config,
        dir.join(format!("n{id}.etch")),
        etch_engine::Options::new(),
        Arc::clone(transport),
    )
    .await
    .unwrap()
}

/// The leader all of `members` agree on, waited for up to 20 s.
pub async fn wait_leader<'a>(members: impl IntoIterator<Item = &'a ReplicatedStore>) -> NodeId {
    let members: Vec<&ReplicatedStore> = members.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let known: BTreeSet<Option<NodeId>> = members.iter().map(|m| m.leader()).collect();
        if let [Some(id)] = known.into_iter().collect::<Vec<_>>()[..] {
            return id;
        }
        assert!(Instant::now() < deadline, "no leader agreed on within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
