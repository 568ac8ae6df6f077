//! The background flush (`etch_replication::flush`) under power cuts: a 3-member cluster in one
//! process, on a real multi-threaded runtime (the flusher is a thread of its own, so this cannot
//! run in the paused simulations), every member's store on its own `SimDisk`, members talking
//! through a `LocalNetwork`. Clients on every member put distinct keys while the leader loses
//! power (unsynced writes dropped) and restarts, twice; then every member loses power at once
//! and all restart from their images.
//!
//! The claim under test: a put acknowledged to a client is durable on a majority even though
//! each member's log reports appends flushed before they are synced. So after all three lose
//! power, every acknowledged key is there with its value on every member, and the members agree
//! (same applied index, revision and hash). Without the gates (a follower acknowledging, or a
//! leader applying or sending a commit index, before its own sync), an acknowledged entry can
//! sit on one disk only and be overwritten after the cut.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etch_engine::sim::{CrashPolicy, SimDisk, SimImage};
use etch_engine::storage::{Mapping, Storage, StorageFile};
use etch_replication::flush::LogFlush;
use etch_replication::local::LocalNetwork;
use etch_replication::types::NodeId;
use etch_replication::{Error, NodeConfig, ReadConsistency, ReplicatedStore};

const MEMBERS: [NodeId; 3] = [1, 2, 3];

/// How long a file sync takes. A `SimDisk` sync is a memory copy; a real fdatasync takes
/// milliseconds, and that window (written, reported flushed, not yet durable) is where a
/// missing gate would let an unsynced entry be acknowledged. With syncs this slow, a cluster
/// whose waits for durability return at once loses acknowledged puts in this test.
const SYNC_DELAY: Duration = Duration::from_millis(3);

/// A `SimDisk` whose file syncs take [`SYNC_DELAY`].
struct SlowSync(SimDisk);

struct SlowFile(Arc<dyn StorageFile>);

impl Storage for SlowSync {
    fn open(&self, path: &std::path::Path, create: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(SlowFile(self.0.open(path, create)?)))
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.0.remove(path)
    }
    fn sync_dir(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.0.sync_dir(path)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
}

impl StorageFile for SlowFile {
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
        std::thread::sleep(SYNC_DELAY);
        self.0.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        std::thread::sleep(SYNC_DELAY);
        self.0.sync_all()
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        self.0.try_lock()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.0.unlock()
    }
    fn map(&self, len: usize, random_access: bool) -> std::io::Result<Box<dyn Mapping>> {
        self.0.map(len, random_access)
    }
}
const CLIENTS: usize = 6;

type Members = Arc<Mutex<BTreeMap<NodeId, ReplicatedStore>>>;

struct Cluster {
    dir: tempfile::TempDir,
    net: Arc<LocalNetwork>,
    members: Members,
    disks: BTreeMap<NodeId, SimDisk>,
    made: u64,
}

fn config(id: NodeId) -> NodeConfig {
    let mut c = NodeConfig::new(id);
    c.raft.cluster_name = "flush-power".into();
    c.raft.snapshot_policy = openraft::SnapshotPolicy::Never;
    c.etcd_timing(50, 500);
    c.request_timeout = Duration::from_secs(3);
    c.log_flush = LogFlush::Background;
    c
}

impl Cluster {
    fn path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("n{id}.etch"))
    }

    fn scratch(&mut self) -> PathBuf {
        self.made += 1;
        let dir = self.dir.path().join(format!("disk-{}", self.made));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    async fn start_on(&mut self, id: NodeId, disk: SimDisk) -> ReplicatedStore {
        let opts = etch_engine::Options::new()
            .storage(Arc::new(SlowSync(disk.clone())))
            .wal_capacity(8 << 20);
        self.disks.insert(id, disk);
        let path = self.path(id);
        // A cut member's last tasks may hold its store for a moment; retry briefly.
        let mut tries = 0;
        let member = loop {
            match ReplicatedStore::open(config(id), &path, opts.clone(), Arc::clone(&self.net))
                .await
            {
                Ok(m) => break m,
                Err(Error::Store(etch_engine::Error::Locked { .. })) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("member {id} did not start: {e}"),
            }
        };
        self.net.register(id, member.handler());
        self.members.lock().unwrap().insert(id, member.clone());
        member
    }

    /// Cuts the power of `ids`: every disk dies first (its next write or sync fails, so
    /// nothing more becomes durable on it), then each one's image keeps what it had synced.
    /// Other threads run meanwhile (the flushers), so the disks die one after the other, as
    /// they might in a real outage; an image taken after its disk's death is exactly what that
    /// disk held when it died.
    async fn cut(&mut self, ids: &[NodeId]) -> Vec<(NodeId, SimImage)> {
        for &id in ids {
            let disk = &self.disks[&id];
            // `crash_at_op` names one operation: retry if another thread's op slipped in.
            loop {
                let n = disk.ops();
                disk.crash_at_op(n + 1);
                if disk.is_dead() || disk.ops() == n {
                    break;
                }
            }
        }
        let mut images = Vec::new();
        for &id in ids {
            images.push((id, self.disks[&id].crash_image(CrashPolicy::DropUnsynced)));
        }
        for &id in ids {
            self.net.unregister(id);
            let m = self.members.lock().unwrap().remove(&id);
            if let Some(m) = m {
                m.crash().await;
            }
        }
        images
    }

    async fn restart(&mut self, id: NodeId, image: &SimImage) {
        let disk = SimDisk::from_image(&self.scratch(), image).unwrap();
        self.start_on(id, disk).await;
    }

    fn leader(&self) -> Option<ReplicatedStore> {
        self.members
            .lock()
            .unwrap()
            .values()
            .find(|m| m.is_leader())
            .cloned()
    }

    async fn wait_leader(&self) -> ReplicatedStore {
        for _ in 0..300 {
            if let Some(l) = self.leader() {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader within 15 s");
    }
}

/// Puts distinct keys through member `client % 3` (or the next running one) until `stop`;
/// returns the acknowledged (key, value) pairs.
async fn client(
    members: Members,
    client: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let key = format!("c{client}-{n}");
        let value = format!("v{client}-{n}-{}", n * 7919);
        let member = {
            let m = members.lock().unwrap();
            let ids: Vec<NodeId> = m.keys().copied().collect();
            if ids.is_empty() {
                None
            } else {
                m.get(&ids[(client + n as usize) % ids.len()]).cloned()
            }
        };
        let Some(member) = member else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match member.put(&key, &value).await {
            Ok(_) => acked.push((key, value)),
            // Outcome unknown (the member lost power, no leader, a timeout): not counted.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    acked
}

async fn run() {
    let mut c = Cluster {
        dir: tempfile::tempdir().unwrap(),
        net: Arc::new(LocalNetwork::new()),
        members: Arc::default(),
        disks: BTreeMap::new(),
        made: 0,
    };
    for id in MEMBERS {
        let disk = SimDisk::new(&c.scratch());
        c.start_on(id, disk).await;
    }
    let first = c.members.lock().unwrap()[&1].clone();
    first
        .initialize(MEMBERS.into_iter().collect())
        .await
        .unwrap();
    c.wait_leader().await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(Arc::clone(&c.members), i, Arc::clone(&stop))))
        .collect();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = c.wait_leader().await.id();
        let images = c.cut(&[leader]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (id, image) in &images {
            c.restart(*id, image).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Every member loses power at once, clients still running.
    let images = c.cut(&MEMBERS).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in clients {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "too few puts acknowledged to test anything: {}",
        acked.len()
    );
    for (id, image) in &images {
        c.restart(*id, image).await;
    }
    let leader = c.wait_leader().await;
    // A write in the new term, so that everything before it is committed and applied.
    leader.put("after-the-cut", "x").await.unwrap();
    let members: Vec<ReplicatedStore> = c.members.lock().unwrap().values().cloned().collect();
    let mut converged = false;
    for _ in 0..200 {
        let applied: std::collections::BTreeSet<_> = members
            .iter()
            .map(|m| (m.applied_index(), m.revision()))
            .collect();
        if applied.len() == 1 {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(converged, "members did not converge after the cut");
    for m in &members {
        for (key, value) in &acked {
            let kv = m
                .get_consistent(key, ReadConsistency::Serializable)
                .await
                .unwrap();
            let got = kv.map(|kv| kv.value);
            assert_eq!(
                got.as_deref(),
                Some(value.as_bytes()),
                "acknowledged put of {key} lost on member {} after every member lost power",
                m.id()
            );
        }
        m.check().unwrap();
    }
    let revision = members[0].revision();
    let hashes: std::collections::BTreeSet<u32> = members
        .iter()
        .map(|m| m.hash_kv(revision).unwrap())
        .collect();
    assert_eq!(hashes.len(), 1, "members' keyspaces differ");
    eprintln!(
        "flush_power: {} acknowledged puts kept through 2 leader cuts and a cut of all members",
        acked.len()
    );
    for m in members {
        m.shutdown().await.unwrap();
    }
}

#[test]
fn acknowledged_puts_survive_power_cuts_with_background_flush() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}
