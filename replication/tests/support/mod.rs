//! A simulated cluster of `ReplicatedStore` members for tests: one paused current-thread tokio
//! runtime, the seeded simulated network, and one store file per member (its Raft log and its
//! keys) in a temporary directory. A crash drops a member without a checkpoint; its restart
//! reopens the file (the engine replays its WAL, openraft re-applies what was committed).
// Each test binary uses only some of these helpers.
#![allow(dead_code)]

pub mod async_members;
pub mod quic_peer;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::storage::{FsStorage, Mapping, Storage, StorageFile};
use etch_replication::node::TokioClock;
use etch_replication::runtime::seed_thread_rng;
use etch_replication::sim::{Faults, SimNetwork};
use etch_replication::types::NodeId;
use etch_replication::{Error, NodeConfig, ReplicatedStore};
use openraft::SnapshotPolicy;

/// Runs `f` on a fresh paused current-thread runtime with openraft's generator seeded.
pub fn simulate<F: Future>(seed: u64, f: impl FnOnce() -> F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        seed_thread_rng(seed);
        f().await
    })
}

/// The member settings the simulations use: etcd's timing, no snapshots unless asked.
pub fn node_config(id: NodeId, snapshot_every: Option<u64>) -> NodeConfig {
    let mut c = NodeConfig::new(id);
    c.raft.cluster_name = "sim".into();
    c.request_timeout = Duration::from_secs(3);
    c.lease_tick = Duration::from_millis(200);
    match snapshot_every {
        None => c.raft.snapshot_policy = SnapshotPolicy::Never,
        Some(n) => {
            c.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(n);
            c.raft.max_in_snapshot_log_to_keep = 0;
            c.raft.purge_batch_size = 1;
        }
    }
    c
}

/// The file system under simulated members: the real one with every sync skipped. The
/// simulations crash *processes*, and a process crash keeps whatever the page cache holds, so
/// a sync changes nothing they can observe; skipping the fdatasyncs (one per Raft append on
/// every member) keeps hundreds of seeds fast. Power cuts are the engine's own tests' business
/// (`etch_engine::sim::SimDisk`).
pub struct ProcessCrashDisk;

struct NoSyncFile(Arc<dyn StorageFile>);

impl Storage for ProcessCrashDisk {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(NoSyncFile(FsStorage.open(path, create)?)))
    }
    fn open_read_only(&self, path: &Path) -> std::io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(NoSyncFile(FsStorage.open_read_only(path)?)))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, _path: &Path) -> std::io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        FsStorage.rename(from, to)
    }
}

impl StorageFile for NoSyncFile {
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        self.0.try_lock()
    }
    fn try_lock_shared(&self) -> std::io::Result<bool> {
        self.0.try_lock_shared()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.0.unlock()
    }
    fn identity(&self) -> std::io::Result<Option<(u64, u64)>> {
        self.0.identity()
    }
    fn map(&self, len: usize, random_access: bool) -> std::io::Result<Box<dyn Mapping>> {
        self.0.map(len, random_access)
    }
}

/// A simulated member's store options: a WAL ring of [`WAL_CAPACITY`] on
/// [`ProcessCrashDisk`].
pub fn sim_store_options() -> etch_engine::Options {
    etch_engine::Options::new()
        .storage(Arc::new(ProcessCrashDisk))
        .wal_capacity(WAL_CAPACITY)
}

/// The WAL ring of a simulated member: 4 MiB (the simulations' logs are far smaller; the
/// default 64 MiB would be written out for every member).
pub const WAL_CAPACITY: u64 = 4 << 20;

/// A simulated cluster.
pub struct Cluster {
    pub net: Arc<SimNetwork>,
    pub dir: tempfile::TempDir,
    pub members: BTreeMap<NodeId, ReplicatedStore>,
    pub snapshot_every: Option<u64>,
    /// The stores' auto-compaction mode (default: the engine's).
    pub auto_compaction: Option<etch_engine::AutoCompaction>,
}

impl Cluster {
    /// An empty cluster (no member started) on a network with `faults`.
    pub fn new(seed: u64, faults: Faults) -> Cluster {
        Cluster {
            net: Arc::new(SimNetwork::new(seed, faults)),
            dir: tempfile::tempdir().unwrap(),
            members: BTreeMap::new(),
            snapshot_every: None,
            auto_compaction: None,
        }
    }

    pub fn path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("n{id}.etch"))
    }

    /// The store options of a member: [`sim_store_options`], the simulated clock, the
    /// cluster's auto-compaction mode.
    pub fn store_options(&self) -> etch_engine::Options {
        let mut opts = sim_store_options().clock(Arc::new(TokioClock::new()));
        if let Some(mode) = self.auto_compaction {
            opts = opts.auto_compaction(mode);
        }
        opts
    }

    /// Starts (or restarts, on its surviving file) member `id`.
    pub async fn start(&mut self, id: NodeId) -> ReplicatedStore {
        let opts = self.store_options();
        self.start_with_options(id, opts).await
    }

    /// [`Cluster::start`] with the store options `opts`.
    pub async fn start_with_options(
        &mut self,
        id: NodeId,
        opts: etch_engine::Options,
    ) -> ReplicatedStore {
        match self.try_start_with_options(id, opts).await {
            Ok(m) => m,
            Err(e) => panic!("member {id} did not start: {e}"),
        }
    }

    /// [`Cluster::start_with_options`], returning the error of an open that fails.
    pub async fn try_start_with_options(
        &mut self,
        id: NodeId,
        opts: etch_engine::Options,
    ) -> Result<ReplicatedStore, Error> {
        // A crashed member's last tasks (a message being handled when it stopped) may hold its
        // store for a moment after the crash; a real process would be gone. Retry briefly.
        let mut tries = 0;
        let member = loop {
            match ReplicatedStore::open(
                node_config(id, self.snapshot_every),
                self.path(id),
                opts.clone(),
                Arc::clone(&self.net),
            )
            .await
            {
                Ok(m) => break m,
                Err(Error::Store(etch_engine::Error::Locked { .. })) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.net.register(id, member.handler());
        self.members.insert(id, member.clone());
        Ok(member)
    }

    /// Starts members `ids` and makes them a cluster (all voters).
    pub async fn boot(&mut self, ids: &[NodeId]) {
        for &id in ids {
            self.start(id).await;
        }
        let first = self.members[&ids[0]].clone();
        first
            .initialize(ids.iter().copied().collect::<BTreeSet<_>>())
            .await
            .unwrap();
        self.wait_leader().await;
    }

    /// A process crash of member `id`: it stops, its network handler goes, its file stays (with
    /// what it wrote, synced or not, as a process crash leaves it).
    pub async fn crash(&mut self, id: NodeId) {
        self.net.unregister(id);
        if let Some(m) = self.members.remove(&id) {
            m.crash().await;
        }
        // Let the aborted tasks drop their handles on the store (its file lock goes with them).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    pub fn member(&self, id: NodeId) -> ReplicatedStore {
        self.members[&id].clone()
    }

    /// The running member that believes it leads, if one does.
    pub fn leader(&self) -> Option<ReplicatedStore> {
        self.members.values().find(|m| m.is_leader()).cloned()
    }

    /// Some running member that is not the leader.
    pub fn follower(&self) -> ReplicatedStore {
        let leader = self.leader().map(|l| l.id());
        self.members
            .values()
            .find(|m| Some(m.id()) != leader)
            .cloned()
            .expect("a follower")
    }

    /// Waits (simulated time) until some member leads; panics after a minute.
    pub async fn wait_leader(&self) -> ReplicatedStore {
        for _ in 0..600 {
            if let Some(l) = self.leader() {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let states: Vec<String> = self
            .members
            .values()
            .map(|m| {
                let x = m.raft().metrics().borrow().clone();
                format!(
                    "{}: {:?} term {} vote {} last log {:?} applied {:?} running {:?} membership {:?}",
                    x.id,
                    x.state,
                    x.current_term,
                    x.vote,
                    x.last_log_index,
                    x.last_applied.map(|l| l.index),
                    x.running_state,
                    x.membership_config.membership()
                )
            })
            .collect();
        for d in self.net.trace().iter().rev().take(12) {
            eprintln!("TRACE {d:?}");
        }
        panic!("no leader within a minute of simulated time: {states:#?}");
    }

    /// Waits until every running member has applied the same last index and revision.
    pub async fn converge(&self) {
        for _ in 0..600 {
            let applied: BTreeSet<_> = self
                .members
                .values()
                .map(|m| (m.applied_index(), m.revision()))
                .collect();
            if applied.len() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let applied: Vec<_> = self
            .members
            .values()
            .map(|m| (m.id(), m.applied_index(), m.revision()))
            .collect();
        panic!("members did not converge: {applied:?}");
    }

    /// After [`Cluster::converge`]: every member's hash at the common revision is equal, and
    /// every store file passes `check()`.
    pub async fn assert_same_keyspace(&self) {
        let any = self.members.values().next().unwrap();
        let report = any.check_hashes(0).await.unwrap();
        assert!(!report.mismatch(), "hash mismatch: {report:?}");
        for (id, h) in &report.hashes {
            // A crashed member still in the membership cannot answer.
            if self.members.contains_key(id) {
                assert!(h.is_ok(), "member {id} gave no hash: {report:?}");
            }
        }
        for m in self.members.values() {
            m.check().unwrap();
        }
    }

    pub async fn shutdown(&mut self) {
        for (_, m) in std::mem::take(&mut self.members) {
            m.shutdown().await.unwrap();
        }
    }
}

/// The seeds to run: `ETCH_RAFT_SEED=<seed>` runs one (to reproduce a failure),
/// `ETCH_RAFT_SEEDS=<n>` runs seeds 1..=n (long runs); the default is `ci` seeds.
pub fn seeds(ci: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("ETCH_RAFT_SEED") {
        return vec![seed.parse().expect("ETCH_RAFT_SEED is a number")];
    }
    let n = std::env::var("ETCH_RAFT_SEEDS")
        .ok()
        .map(|n| n.parse().expect("ETCH_RAFT_SEEDS is a number"))
        .unwrap_or(ci);
    (1..=n).collect()
}

/// Runs `f` on a seed, printing the one-line command that reproduces a failure.
pub fn with_repro(seed: u64, file: &str, test: &str, f: impl FnOnce() + std::panic::UnwindSafe) {
    if let Err(panic) = std::panic::catch_unwind(f) {
        eprintln!(
            "reproduce: ETCH_RAFT_SEED={seed} cargo test --release --workspace \
             --test replication {file}::{test}"
        );
        std::panic::resume_unwind(panic);
    }
}

/// Members whose lease clocks the test steps ([`SteppedClock`]), for clock-jump simulations.
impl Cluster {
    /// Starts member `id` like [`Cluster::start`], with `clock` as its store's lease clock.
    pub async fn start_with_clock(
        &mut self,
        id: NodeId,
        clock: Arc<etch_replication::node::SteppedClock>,
    ) -> ReplicatedStore {
        let opts = self.store_options().clock(clock);
        self.start_with_options(id, opts).await
    }

    /// Starts members `ids`, each with a new stepped clock, and makes them a cluster (all
    /// voters, as [`Cluster::boot`]). Returns the clocks by member.
    pub async fn boot_with_clocks(
        &mut self,
        ids: &[NodeId],
    ) -> BTreeMap<NodeId, Arc<etch_replication::node::SteppedClock>> {
        let mut clocks = BTreeMap::new();
        for &id in ids {
            let clock = Arc::new(etch_replication::node::SteppedClock::new());
            self.start_with_clock(id, Arc::clone(&clock)).await;
            clocks.insert(id, clock);
        }
        let first = self.members[&ids[0]].clone();
        first
            .initialize(ids.iter().copied().collect::<BTreeSet<_>>())
            .await
            .unwrap();
        self.wait_leader().await;
        clocks
    }
}

/// The leaders seen in each term, sampled from the members' metrics during a run: Raft's
/// election safety says at most one per term.
#[derive(Clone, Default)]
pub struct Leaders(Arc<std::sync::Mutex<BTreeMap<u64, BTreeSet<NodeId>>>>);

impl Leaders {
    /// Notes every member of `c` that reports itself leader, under its term.
    pub fn record(&self, c: &Cluster) {
        for m in c.members.values() {
            let metrics = m.raft().metrics().borrow().clone();
            if metrics.state == openraft::ServerState::Leader {
                self.0
                    .lock()
                    .unwrap()
                    .entry(metrics.current_term)
                    .or_default()
                    .insert(m.id());
            }
        }
    }

    /// Panics (naming `seed`) if some term had two leaders.
    pub fn assert_one_per_term(&self, seed: u64) {
        for (term, ids) in self.0.lock().unwrap().iter() {
            assert!(
                ids.len() <= 1,
                "seed {seed}: term {term} had leaders {ids:?}"
            );
        }
    }
}
