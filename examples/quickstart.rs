//! The README's main job: an application grows from a local file into a replicated cluster
//! without changing its calls. Run with `cargo run --release --example quickstart`.
//!
//! 1. The application opens `./app.etch` as a plain local store and writes to it.
//! 2. The file is promoted into a 3-member Raft cluster on loopback: it becomes member 1 with
//!    its whole history (`ReplicatedStore::bootstrap`), two empty members join as learners
//!    (they receive the history as a snapshot) and are promoted to voters. The members talk
//!    over QUIC on 127.0.0.1 (encrypted; peers are not authenticated in this demo, which uses
//!    no certificates: `etch cert` makes them for a real cluster).
//! 3. A watch on one member sees writes made through another.
//! 4. The leader is shut down; the other two elect a new leader and writes continue.
//! 5. Every key written before and after is read back from the surviving members.
//!
//! The member files are `app.etch`, `app-member2.etch` and `app-member3.etch` in the current
//! directory; a run starts by removing those of an earlier run.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch::{Compare, CompareOp, Range, RangeOptions, Store, Txn, TxnOp};
use etch_replication::quic::{PeerTls, QuicConfig, QuicTransport};
use etch_replication::types::NodeId;
use etch_replication::{Member, NodeConfig, ReplicatedStore};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The cluster token peers must share (etcd's `--initial-cluster-token`).
const TOKEN: &str = "quickstart";

/// Member `id`'s file: the application's own file for member 1.
fn member_file(id: NodeId) -> PathBuf {
    match id {
        1 => PathBuf::from("app.etch"),
        n => PathBuf::from(format!("app-member{n}.etch")),
    }
}

/// Removes a store file and its side files (`-wal`, ...) left by an earlier run.
fn remove_store(path: &Path) -> Result<()> {
    let name = path.to_string_lossy().into_owned();
    for entry in std::fs::read_dir(".")? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if file == name || file.starts_with(&format!("{name}-")) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A member's Raft settings: short timeouts, so the demo's election takes well under a second.
fn member_config(id: NodeId) -> NodeConfig {
    let mut config = NodeConfig::new(id);
    config.raft.cluster_name = TOKEN.into();
    config.raft.heartbeat_interval = 50;
    config.raft.election_timeout_min = 300;
    config.raft.election_timeout_max = 600;
    config.request_timeout = Duration::from_secs(5);
    config
}

/// One member of the demo cluster: its blocking handle and its peer transport.
struct Node {
    member: Member,
    transport: Arc<QuicTransport>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits (at most 10 s) until the members in `nodes` agree on one leader among them.
fn wait_for_leader(nodes: &BTreeMap<NodeId, Node>) -> Result<NodeId> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let known: BTreeSet<Option<NodeId>> = nodes.values().map(|n| n.member.leader()).collect();
        if let [Some(id)] = known.into_iter().collect::<Vec<_>>()[..] {
            if nodes.contains_key(&id) {
                return Ok(id);
            }
        }
        if Instant::now() > deadline {
            return Err("no leader was elected within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() -> Result<()> {
    let started = Instant::now();
    for id in 1..=3 {
        remove_store(&member_file(id))?;
    }

    // ---- 1. A local file -------------------------------------------------------------------
    println!("1. The application opens app.etch, a plain local file, and writes to it.");
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let db = Store::open(member_file(1))?;
    let first = db.put("config/mode", "fast")?.header_revision;
    db.put("config/mode", "safe")?;
    written.insert("config/mode".into(), "safe".into());
    for i in 1..=3 {
        let (key, value) = (format!("svc/api/{i}"), format!("10.0.0.{i}:8080"));
        db.put(&key, &value)?;
        written.insert(key, value);
    }
    let claim = Txn::new()
        .when([Compare::version("election/leader", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("election/leader", "app-1")]);
    db.txn(claim)?;
    written.insert("election/leader".into(), "app-1".into());
    let old = db.range_with(
        &Range::key("config/mode"),
        &RangeOptions {
            revision: first,
            ..Default::default()
        },
    )?;
    println!(
        "   wrote {} keys; revision is {}; config/mode is \"safe\" now and was {:?} at revision {first}",
        written.len(),
        db.revision(),
        text(&old.kvs[0].value)
    );
    let local_revision = db.revision();
    db.close()?;
    println!("   closed app.etch: one file holding the data and its history.");

    // ---- 2. Promotion ----------------------------------------------------------------------
    println!();
    println!(
        "2. app.etch is promoted into a 3-member cluster on 127.0.0.1 (QUIC between members)."
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Each member's peer transport listens on a free loopback UDP port; every member learns
    // the others' addresses.
    let transports: BTreeMap<NodeId, Arc<QuicTransport>> = {
        let _inside = rt.enter(); // binding registers the UDP socket with this runtime
        let mut out = BTreeMap::new();
        for id in 1..=3 {
            let listen: SocketAddr = "127.0.0.1:0".parse()?;
            let config = QuicConfig::new(id, listen, TOKEN, PeerTls::Plain);
            out.insert(id, Arc::new(QuicTransport::bind(config)?));
        }
        out
    };
    let addrs: BTreeMap<NodeId, SocketAddr> = transports
        .iter()
        .map(|(&id, t)| Ok((id, t.local_addr()?)))
        .collect::<Result<_>>()?;
    for (&id, transport) in &transports {
        for (&peer, &addr) in &addrs {
            if peer != id {
                transport.set_peer(peer, addr);
            }
        }
    }

    let mut nodes: BTreeMap<NodeId, Node> = BTreeMap::new();
    let transport = Arc::clone(&transports[&1]);
    let store = rt.block_on(ReplicatedStore::bootstrap(
        member_config(1),
        member_file(1),
        etch::Options::new(),
        Arc::clone(&transport),
        BTreeSet::from([1]),
    ))?;
    rt.block_on(async { transport.serve(store.handler()) });
    let member = Member::from_async(rt.handle().clone(), store);
    println!(
        "   member 1 starts the cluster from app.etch (listening on {}), keeping its history: revision {}",
        addrs[&1],
        member.revision()
    );
    nodes.insert(1, Node { member, transport });
    wait_for_leader(&nodes)?;

    for id in [2, 3] {
        let transport = Arc::clone(&transports[&id]);
        let store = rt.block_on(ReplicatedStore::open(
            member_config(id),
            member_file(id),
            etch::Options::new(),
            Arc::clone(&transport),
        ))?;
        rt.block_on(async { transport.serve(store.handler()) });
        let member = Member::from_async(rt.handle().clone(), store);
        nodes.insert(id, Node { member, transport });
        let leader = &nodes[&1].member;
        leader.add_learner(id)?; // returns once the learner has caught up
        leader.promote(id)?;
        // A linearizable read on the new member returns once it has applied everything the
        // leader had committed: the history, received as a snapshot.
        let mode = nodes[&id].member.get("config/mode")?;
        println!(
            "   member {id} ({}) joined as a learner, received the history, and became a voter; it is at revision {} and holds config/mode = {:?}",
            addrs[&id],
            nodes[&id].member.revision(),
            mode.map(|kv| text(&kv.value)).unwrap_or_default()
        );
    }
    let (voters, _) = nodes[&1].member.members();
    let leader = wait_for_leader(&nodes)?;
    println!("   the cluster's voters are {voters:?}; member {leader} leads");
    for (id, node) in &nodes {
        let kv = node
            .member
            .get("config/mode")?
            .ok_or("config/mode is missing")?;
        println!(
            "   member {id} reads config/mode = {:?} (version {}, written at revision {})",
            text(&kv.value),
            kv.version,
            kv.mod_revision
        );
    }

    // ---- 3. A watch on one member sees writes made through another ------------------------
    println!();
    let followers: Vec<NodeId> = nodes.keys().copied().filter(|&id| id != leader).collect();
    let (watching, writing) = (followers[0], followers[1]);
    println!("3. A watch on member {watching} sees writes made through member {writing}.");
    let mut watcher = nodes[&watching].member.watch(Range::prefix("orders/"))?;
    for i in 1..=3 {
        let (key, value) = (
            format!("orders/{i}"),
            format!("order {i} before the failure"),
        );
        let put = nodes[&writing].member.put(&key, &value)?;
        println!(
            "   member {writing} wrote {key} at revision {}",
            put.header_revision
        );
        written.insert(key, value);
    }
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(resp) = watcher.recv_timeout(left)? else {
            return Err(format!("the watch saw only {seen} of 3 writes within 10 s").into());
        };
        for ev in &resp.events {
            println!(
                "   member {watching}'s watch: {:?} {} = {:?} at revision {}",
                ev.kind,
                text(&ev.kv.key),
                text(&ev.kv.value),
                ev.kv.mod_revision
            );
            seen += 1;
        }
    }

    // ---- 4. The leader is killed -----------------------------------------------------------
    println!();
    println!("4. The leader, member {leader}, is shut down.");
    let killed = nodes.remove(&leader).ok_or("the leader is not a member")?;
    killed.member.shutdown()?;
    rt.block_on(killed.transport.shutdown());
    let elected = Instant::now();
    let new_leader = wait_for_leader(&nodes)?;
    println!(
        "   members {:?} elected member {new_leader} as the new leader in {} ms",
        nodes.keys().collect::<Vec<_>>(),
        elected.elapsed().as_millis()
    );
    for (i, id) in (4..=6).zip(nodes.keys().copied().cycle()) {
        let (key, value) = (
            format!("orders/{i}"),
            format!("order {i} after the failure"),
        );
        let put = nodes[&id].member.put(&key, &value)?;
        println!(
            "   member {id} wrote {key} at revision {}",
            put.header_revision
        );
        written.insert(key, value);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < 6 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(resp) = watcher.recv_timeout(left)? else {
            return Err(format!("the watch saw only {seen} of 6 writes within 10 s").into());
        };
        seen += resp.events.len();
        for ev in &resp.events {
            println!(
                "   member {watching}'s watch, still open: {:?} {} at revision {}",
                ev.kind,
                text(&ev.kv.key),
                ev.kv.mod_revision
            );
        }
    }

    // ---- 5. Every key is there -------------------------------------------------------------
    println!();
    println!("5. Every key written before and after the failure is read back from each surviving member.");
    for (id, node) in &nodes {
        let all = node.member.range(Range::all())?;
        let found: BTreeMap<String, String> = all
            .kvs
            .iter()
            .map(|kv| (text(&kv.key), text(&kv.value)))
            .collect();
        if found != written {
            return Err(format!(
                "member {id} holds {found:?}, but the application wrote {written:?}"
            )
            .into());
        }
        let mode = all
            .kvs
            .iter()
            .find(|kv| kv.key == b"config/mode")
            .ok_or("config/mode is missing")?;
        println!(
            "   member {id}: all {} keys present with their values; config/mode still has version {} from the local file (revision {local_revision} was the file's last)",
            found.len(),
            mode.version
        );
    }

    for (_, node) in nodes {
        node.member.shutdown()?;
        rt.block_on(node.transport.shutdown());
    }
    drop(rt);
    println!();
    println!(
        "Done in {:.1} s: the same put/get/range/txn/watch calls ran on a local file and on a cluster.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
