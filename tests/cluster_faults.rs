//! Multi-process fault tests: 3 and 5 `etch serve` processes (tests/cluster/mod.rs starts and
//! stops them by pid) whose peer traffic all crosses UDP fault proxies
//! (tests/support/udp_proxy.rs: each member advertises its proxy's address, so every QUIC
//! datagram between members passes one), while concurrent gRPC clients put, compare-and-swap,
//! read linearizably and serializably, grant, use, renew and revoke leases, and watch
//! (tests/support/faults.rs).
//!
//! Faults while the clients run: SIGKILL of the leader and of followers, restarts, partitions
//! (the leader isolated, a minority with the leader cut from the majority), one-way cuts both
//! ways, loss with delay and jitter, duplication, garbage datagrams at every peer port, a
//! follower cut off while more than `--snapshot-count` entries are committed (so it catches up
//! by snapshot), and, on 5 members, a member added (as a learner, then promoted) and one
//! removed under load.
//!
//! Checks after healing: the recorded history is linearizable (`etch_replication::check`, the
//! checker of the simulation); every acknowledged write is in the final change log at the
//! revision it was acknowledged with; `HashKV` is equal on every member at the final revision;
//! every watcher's stream, resumed across crashes, is in order, without repeats and equal to
//! the complete log; and after a clean shutdown the engine's `check()` passes on every
//! member's file.
//!
//! Bounded for CI (about 25 s each); `ETCH_SOAK_SECS=N` repeats the fault cycle of the
//! 3-member test for N seconds. Needs the `etch` binary (`cargo build --release -p etch-cli`).

mod cluster;
#[path = "support/faults.rs"]
mod faults;
#[path = "support/udp_proxy.rs"]
mod udp_proxy;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::ClusterProcs;
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::cluster_client::ClusterClient;
use faults::{Change, Endpoints, Recorder, Watcher};
use udp_proxy::{FaultNet, LinkFaults};

/// Keys of the workload: few enough that operations on one key overlap, enough to keep the
/// checker's per-key searches small.
const KEYS: u64 = 16;

/// How long the members may take to become healthy after a start.
const HEALTHY: Duration = Duration::from_secs(30);

/// Counts for the report.
#[derive(Default, Debug)]
struct Tally {
    kills: u32,
    partitions: u32,
    one_way_cuts: u32,
    lossy_periods: u32,
    lagging_followers: u32,
    membership_changes: u32,
    garbage_datagrams: u32,
}

/// A cluster of `etch serve` processes behind fault proxies.
struct Faulty {
    procs: ClusterProcs,
    net: FaultNet,
    snapshot_count: u64,
    /// Each started member's flags, reused to restart it after a kill.
    flags: Vec<Option<Vec<String>>>,
    /// Client URLs the workload uses.
    endpoints: Endpoints,
    /// Indices of the members that belong to the cluster now.
    active: Vec<usize>,
    /// The workload's recorder, once it runs: faults are marked on its clock.
    rec: Option<Arc<Recorder>>,
}

impl Faulty {
    fn new(names: &[&str], token: &str, snapshot_count: u64) -> Faulty {
        let procs = ClusterProcs::new(names, token);
        let mut net = FaultNet::new();
        for (i, m) in procs.members.iter().enumerate() {
            net.add(i, SocketAddr::from(([127, 0, 0, 1], m.peer_port)))
                .expect("a proxy port");
        }
        Faulty {
            flags: vec![None; names.len()],
            procs,
            net,
            snapshot_count,
            endpoints: Endpoints::default(),
            active: Vec::new(),
            rec: None,
        }
    }

    /// The peer URL member `i` advertises: its proxy.
    fn advertised(&self, i: usize) -> String {
        format!("http://{}", self.net.proxy(i))
    }

    fn initial_cluster(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&i| format!("{}={}", self.procs.members[i].name, self.advertised(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The harness's flags for member `i`, advertising its proxy, with a small snapshot count.
    fn flags(&self, i: usize, initial_cluster: &str, state: &str) -> Vec<String> {
        let mut flags = self.procs.members[i].flags(initial_cluster, state, &self.procs.token);
        let at = flags
            .iter()
            .position(|f| f == "--initial-advertise-peer-urls")
            .expect("the harness sets --initial-advertise-peer-urls");
        flags[at + 1] = self.advertised(i);
        flags.push("--snapshot-count".into());
        flags.push(self.snapshot_count.to_string());
        flags.push("--log-level".into());
        flags.push("warn".into());
        flags
    }

    fn start(&mut self, i: usize, flags: Vec<String>) {
        self.procs.members[i].start(&flags);
        self.flags[i] = Some(flags);
    }

    fn start_new(&mut self, members: &[usize]) {
        let initial = self.initial_cluster(members);
        for &i in members {
            let flags = self.flags(i, &initial, "new");
            self.start(i, flags);
        }
        self.active = members.to_vec();
        self.procs.wait_healthy(HEALTHY);
        self.publish_endpoints();
    }

    fn publish_endpoints(&self) {
        let urls = self
            .active
            .iter()
            .map(|&i| self.procs.members[i].client_url())
            .collect();
        self.endpoints.set(urls);
    }

    fn urls(&self) -> Vec<String> {
        self.active
            .iter()
            .map(|&i| self.procs.members[i].client_url())
            .collect()
    }

    fn leader(&mut self) -> usize {
        self.procs.leader(HEALTHY)
    }

    fn followers(&mut self) -> Vec<usize> {
        let leader = self.leader();
        self.active
            .iter()
            .copied()
            .filter(|&i| i != leader)
            .collect()
    }

    /// Notes `what` on the workload's clock (for a failure's account).
    fn mark(&self, what: impl Into<String>) {
        if let Some(rec) = &self.rec {
            rec.mark(what);
        }
    }

    fn name(&self, i: usize) -> String {
        self.procs.members[i].name.clone()
    }

    fn kill(&mut self, i: usize) {
        self.procs.members[i].kill();
        self.mark(format!("killed {}", self.name(i)));
    }

    fn restart(&mut self, i: usize) {
        let flags = self.flags[i].clone().expect("member was started before");
        self.procs.members[i].start(&flags);
        self.mark(format!("restarted {}", self.name(i)));
    }

    /// Random datagrams at every member's real peer port and at every proxy (half shaped like
    /// QUIC v1 initial packets); returns how many were sent.
    fn garbage(&self, per_target: u32) -> u32 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut sent = 0;
        for &i in &self.active {
            let real = SocketAddr::from(([127, 0, 0, 1], self.procs.members[i].peer_port));
            for target in [real, self.net.proxy(i)] {
                for n in 0..per_target {
                    let len = 1 + (next() % 1200) as usize;
                    let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    if n % 2 == 0 && len > 6 {
                        d[0] = 0xc0 | (d[0] & 0x0f);
                        d[1..5].copy_from_slice(&1u32.to_be_bytes());
                    }
                    let _ = socket.send_to(&d, target);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        sent
    }
}

/// Sleeps `ms` milliseconds while the workload runs.
fn run_for(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The workload: clients and watchers on the test's runtime.
struct Workload {
    rt: tokio::runtime::Runtime,
    rec: Arc<Recorder>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    watchers: Vec<Watcher>,
}

impl Workload {
    fn start(clients: u64, watchers: usize, endpoints: &Endpoints) -> Workload {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let rec = Recorder::new();
        let _guard = rt.enter();
        let clients = (0..clients)
            .map(|id| {
                rt.spawn(faults::client(
                    id,
                    KEYS,
                    endpoints.clone(),
                    Arc::clone(&rec),
                ))
            })
            .collect();
        let watchers = (0..watchers)
            .map(|w| Watcher::start(w, endpoints.clone()))
            .collect();
        Workload {
            rt,
            rec,
            clients,
            watchers,
        }
    }

    /// Stops the clients (each finishes its operation in flight, bounded by its timeout).
    fn stop_clients(&mut self) {
        self.rec.stop();
        for c in self.clients.drain(..) {
            let _ = self.rt.block_on(c);
        }
    }
}

/// What the end-of-run checks found.
#[derive(Debug)]
struct Report {
    operations: usize,
    answered: usize,
    acknowledged_writes: usize,
    lost: usize,
    serializable_reads: u64,
    watch_streams: u64,
    revision: i64,
}

/// Heals the network, stops the clients, and runs every check.
fn heal_and_check(c: &mut Faulty, mut w: Workload) -> Report {
    c.net.heal();
    c.mark("healed; the clients stop");
    run_for(500);
    w.stop_clients();
    c.procs.wait_healthy(HEALTHY);
    let urls = c.urls();
    let revision =
        w.rt.block_on(async {
            for _ in 0..100 {
                if let Some(r) = faults::current_revision(&urls[0]).await {
                    return Some(r);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        })
        .expect("a linearizable read after healing");

    // HashKV equal on every member at the final revision.
    let hashes = w.rt.block_on(faults::hashes(&urls, revision));
    assert!(
        hashes.windows(2).all(|p| p[0] == p[1]),
        "HashKV differs at revision {revision}: {hashes:?} (members {urls:?})"
    );

    // The complete change log, from a fresh watch, and every watcher's stream against it.
    let fresh = {
        let _g = w.rt.enter();
        Watcher::start(0, c.endpoints.clone())
    };
    let log =
        w.rt.block_on(fresh.finish(revision, Duration::from_secs(20)));
    assert_eq!(
        log.last().map(|c| c.revision),
        Some(revision),
        "the fresh watch did not reach revision {revision}"
    );
    faults::assert_in_order(&log, "fresh watch");
    let mut streams = 0;
    for (i, watcher) in w.watchers.drain(..).enumerate() {
        streams += watcher.streams.load(std::sync::atomic::Ordering::Relaxed);
        let got: Vec<Change> =
            w.rt.block_on(watcher.finish(revision, Duration::from_secs(20)));
        faults::assert_in_order(&got, &format!("watcher {i}"));
        assert_eq!(
            got.len(),
            log.len(),
            "watcher {i} saw {} changes, the log has {}",
            got.len(),
            log.len()
        );
        assert!(got == log, "watcher {i} differs from the log");
    }

    let history = w.rec.history();
    let members: String = c
        .procs
        .members
        .iter()
        .map(|m| format!("  {} at {}\n", m.name, m.client_url()))
        .collect();
    let context = format!("what the test did:\n{}members:\n{members}", w.rec.marks());
    let counts = faults::check_history(&history, &w.rec.notes(), &log, &context);
    Report {
        operations: counts.operations,
        answered: counts.answered,
        acknowledged_writes: counts.acknowledged_writes,
        lost: counts.lost,
        serializable_reads: w
            .rec
            .serializable_reads
            .load(std::sync::atomic::Ordering::Relaxed),
        watch_streams: streams,
        revision,
    }
}

/// Stops every member cleanly (SIGTERM) and runs `etch --db <data-dir>/member.etch check` on
/// each file (the CLI opens a member's file as one: its WAL is the Raft log).
fn shutdown_and_check_files(c: &mut Faulty) {
    for m in &mut c.procs.members {
        if m.pid().is_none() {
            continue;
        }
        assert!(
            m.stop(),
            "{} did not stop cleanly:\n{}",
            m.name,
            m.log_text()
        );
    }
    for (i, m) in c.procs.members.iter().enumerate() {
        if c.flags[i].is_none() {
            continue; // never started
        }
        let file = m.data_dir.join("member.etch");
        let out = std::process::Command::new(cluster::etch_bin())
            .arg("--db")
            .arg(&file)
            .args(["check", "-w", "fields"])
            .output()
            .expect("run etch check");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "check of {} failed: {}{text}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let keys: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("\"Keys\" : "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no key count in {text}"));
        assert!(keys > 0, "{}: no keys", file.display());
    }
}

/// One cycle of faults on a cluster of any size; returns when every fault is healed.
fn fault_cycle(c: &mut Faulty, t: &mut Tally) {
    // The leader, killed and restarted; then a follower.
    let leader = c.leader();
    c.kill(leader);
    t.kills += 1;
    run_for(1_200);
    c.restart(leader);
    let follower = c.followers()[0];
    c.kill(follower);
    t.kills += 1;
    run_for(600);
    c.restart(follower);
    c.procs.wait_healthy(HEALTHY);

    // The leader isolated: the others elect a new one; the old one must not acknowledge.
    let leader = c.leader();
    c.net.isolate(leader);
    c.mark(format!("leader {} isolated", c.name(leader)));
    t.partitions += 1;
    run_for(2_000);
    c.net.heal();
    c.mark("healed");
    run_for(500);

    // One-way cuts, each direction between the leader and a follower.
    let leader = c.leader();
    let follower = c.followers()[0];
    c.net.cut_one_way(leader, follower);
    run_for(1_200);
    c.net.heal();
    c.net.cut_one_way(follower, leader);
    run_for(1_200);
    c.net.heal();
    t.one_way_cuts += 2;

    // Loss with delay and jitter on every link, then duplication.
    c.net.set_default(LinkFaults {
        drop: 0.2,
        duplicate: 0.0,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(15),
    });
    run_for(2_000);
    c.net.set_default(LinkFaults {
        duplicate: 0.3,
        ..LinkFaults::NONE
    });
    run_for(1_000);
    c.net.heal();
    t.lossy_periods += 2;

    // A follower cut off while more than snapshot-count entries commit: it catches up by
    // snapshot once healed.
    let follower = c.followers()[0];
    let before = revision_now(c);
    c.net.isolate(follower);
    let deadline = Instant::now() + Duration::from_secs(10);
    while revision_now(c) < before + 3 * c.snapshot_count as i64 && Instant::now() < deadline {
        run_for(200);
    }
    c.net.heal();
    t.lagging_followers += 1;

    // Garbage at every peer port and proxy while the cluster works.
    t.garbage_datagrams += c.garbage(200);
    c.procs.wait_healthy(HEALTHY);
}

/// The cluster's revision now, from any member that answers.
fn revision_now(c: &Faulty) -> i64 {
    let urls = c.urls();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for url in &urls {
            if let Some(r) = faults::current_revision(url).await {
                return r;
            }
        }
        0
    })
}

fn soak_secs() -> u64 {
    std::env::var("ETCH_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn three_members_survive_kills_partitions_loss_and_a_lagging_follower() {
    let mut c = Faulty::new(&["a", "b", "c"], "faults-3", 20);
    c.start_new(&[0, 1, 2]);
    let w = Workload::start(6, 3, &c.endpoints);
    c.rec = Some(Arc::clone(&w.rec));
    let mut t = Tally::default();
    run_for(1_000);
    let started = Instant::now();
    let soak = Duration::from_secs(soak_secs());
    let mut cycles = 0;
    loop {
        fault_cycle(&mut c, &mut t);
        cycles += 1;
        if started.elapsed() >= soak {
            break;
        }
    }
    let report = heal_and_check(&mut c, w);
    shutdown_and_check_files(&mut c);
    eprintln!(
        "3 members, {cycles} cycle(s) in {:.0} s: {t:?}; {report:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report.lost, 0);
    assert!(report.acknowledged_writes > 0 && report.serializable_reads > 0);
    assert!(report.answered <= report.operations && report.revision > 0);
    assert!(report.watch_streams >= 3, "every watcher opened a stream");
}

/// MemberList's id of the member whose peer URL is `peer_url`.
async fn member_id(url: &str, peer_url: &str) -> Option<u64> {
    let ch = faults::channel(url).await?;
    let list = ClusterClient::new(ch)
        .member_list(pb::MemberListRequest::default())
        .await
        .ok()?
        .into_inner();
    list.members
        .iter()
        .find(|m| m.peer_ur_ls.iter().any(|u| u == peer_url))
        .map(|m| m.id)
}

#[test]
fn five_members_survive_faults_and_membership_changes_under_load() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut c = Faulty::new(&names, "faults-5", 20);
    c.start_new(&[0, 1, 2, 3, 4]);
    let w = Workload::start(8, 2, &c.endpoints);
    c.rec = Some(Arc::clone(&w.rec));
    let mut t = Tally::default();
    run_for(1_000);

    // The leader killed twice in a row (a new one each time), then restarted.
    for _ in 0..2 {
        let leader = c.leader();
        c.kill(leader);
        t.kills += 1;
        run_for(1_200);
        c.restart(leader);
    }
    c.procs.wait_healthy(HEALTHY);

    // A minority (the leader and one follower) cut from the majority.
    let leader = c.leader();
    let follower = c.followers()[0];
    let majority: Vec<usize> = c
        .active
        .iter()
        .copied()
        .filter(|&i| i != leader && i != follower)
        .collect();
    c.net.partition(&[leader, follower], &majority);
    c.mark(format!(
        "partition: leader {} and {} cut from the others",
        c.name(leader),
        c.name(follower)
    ));
    t.partitions += 1;
    run_for(2_500);
    c.net.heal();
    c.mark("healed");
    run_for(500);

    // Member f added under load: MemberAdd as a learner, started with state existing,
    // promoted once it has caught up.
    let new = 5;
    let any = c.urls()[0].clone();
    let add = pb::MemberAddRequest {
        peer_ur_ls: vec![c.advertised(new)],
        is_learner: true,
    };
    // An election may still be settling after the heal: a change refused for want of a
    // leader was not made and is sent again, as an operator would (bounded).
    w.rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ch = faults::channel(&any).await.expect("a member answers");
            match ClusterClient::new(ch).member_add(add.clone()).await {
                Err(s)
                    if (s.message() == "etcdserver: not leader"
                        || s.message() == "etcdserver: no leader")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    })
    .expect("member add");
    c.mark("f added as a learner");
    let mut all = c.active.clone();
    all.push(new);
    let flags = c.flags(new, &c.initial_cluster(&all), "existing");
    c.start(new, flags);
    let peer = c.advertised(new);
    let promoted = w.rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(id) = member_id(&any, &peer).await {
                if let Some(ch) = faults::channel(&any).await {
                    let promote = pb::MemberPromoteRequest { id };
                    if ClusterClient::new(ch).member_promote(promote).await.is_ok() {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    assert!(
        promoted,
        "the new member was not promoted within 30 s:\n{}",
        c.procs.logs()
    );
    c.mark("f promoted");
    c.active.push(new);
    c.publish_endpoints();
    t.membership_changes += 2;

    // Member b removed under load (the leader if b leads: etcd allows that too).
    let gone = 1;
    let peer = c.advertised(gone);
    c.active.retain(|&i| i != gone);
    c.publish_endpoints();
    let via = c.urls()[0].clone();
    let removed = w.rt.block_on(async {
        let id = member_id(&via, &peer).await?;
        let ch = faults::channel(&via).await?;
        ClusterClient::new(ch)
            .member_remove(pb::MemberRemoveRequest { id })
            .await
            .ok()
    });
    assert!(removed.is_some(), "member remove failed");
    c.mark(format!("b removed (via {via})"));
    t.membership_changes += 1;
    run_for(1_000);
    // The removed member's process is stopped as an operator would; its file is checked too.
    assert!(
        c.procs.members[gone].stop(),
        "the removed member did not stop cleanly"
    );
    c.mark("b stopped");

    // A follower of the new configuration killed and restarted, with loss on every link.
    c.net.set_default(LinkFaults::lossy(0.1));
    c.mark("loss 10% on every link");
    t.lossy_periods += 1;
    let follower = c.followers()[0];
    c.kill(follower);
    t.kills += 1;
    run_for(1_000);
    c.restart(follower);
    run_for(1_000);
    t.garbage_datagrams += c.garbage(100);

    let report = heal_and_check(&mut c, w);
    shutdown_and_check_files(&mut c);
    eprintln!("5 members: {t:?}; {report:?}");
    assert_eq!(report.lost, 0);
    assert!(report.acknowledged_writes > 0);
    assert!(report.answered <= report.operations && report.revision > 0);
    assert!(report.watch_streams >= 2, "every watcher opened a stream");
}
