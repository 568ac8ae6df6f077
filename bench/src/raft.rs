//! `etch-bench raft`: the cost of consensus on this machine. Committed writes per second and
//! p50/p99 latency of a 3-member cluster in one process, next to a single-node
//! `etch_engine::Store`, both durable, in the same run.
//!
//! ```text
//! cargo run --release -p etch-bench -- raft [--quick] [--seconds S] [--max-writes N]
//! ```
//!
//! * The cluster: three `ReplicatedStore`s on real files in a temporary directory under the
//!   current one (every log append and every apply is fdatasync'ed before it is acknowledged),
//!   talking through `LocalNetwork` (direct calls, no added delay), on a multi-thread tokio
//!   runtime with one worker per core. etcd's timing (heartbeat 100 ms, election timeout
//!   1–2 s) and openraft's default snapshot policy. Every write is a put sent to the leader, so
//!   the figure is replication's cost without forwarding's.
//! * The single node: one `Store` with its default options (immediate durability: the WAL is
//!   fdatasync'ed before a commit returns; concurrent commits share a sync), driven by as many OS
//!   threads as there are writers.
//! * Rows: 1, 16 and 64 concurrent writers in a closed loop, each writing new 24-byte keys with
//!   150-byte values (the `compare` workload's sizes). A row runs for `--seconds` (default 10;
//!   `--quick`: 1) or until `--max-writes` writes (default 100,000; `--quick`: 2,000) have
//!   been acknowledged, whichever comes first. Each writer count is measured on the single node
//!   and then on the cluster, so a change in the machine's load hits both alike.
//! * Latency is the time from the call to its acknowledgement, per write.
//!
//! The ratio column is single-node writes/s divided by cluster writes/s: how many times fewer
//! writes the cluster commits per second.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etch_engine::Store;
use etch_replication::local::LocalNetwork;
use etch_replication::types::NodeId;
use etch_replication::{NodeConfig, ReplicatedStore};
use hdrhistogram::Histogram;

use crate::workload::{KEY_LEN, VALUE_LEN};

/// Concurrent writers of the rows.
const WRITERS: [usize; 3] = [1, 16, 64];
/// Members of the cluster.
const MEMBERS: u64 = 3;

/// How long and how far each row runs.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    duration: Duration,
    max_writes: u64,
}

fn usage() -> ! {
    eprintln!("usage: etch-bench raft [--quick] [--seconds S] [--max-writes N]");
    std::process::exit(2)
}

fn parse(mut args: impl Iterator<Item = String>) -> Bounds {
    let mut bounds = Bounds {
        duration: Duration::from_secs(10),
        max_writes: 100_000,
    };
    let mut duration = None;
    let mut max_writes = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                bounds = Bounds {
                    duration: Duration::from_secs(1),
                    max_writes: 2_000,
                }
            }
            "--seconds" => {
                let s: f64 = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .unwrap_or_else(|| usage());
                duration = Some(Duration::from_secs_f64(s));
            }
            "--max-writes" => {
                max_writes = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .unwrap_or_else(|| usage()),
                );
            }
            _ => usage(),
        }
    }
    // Explicit bounds win over --quick's, whatever the order of the flags.
    if let Some(d) = duration {
        bounds.duration = d;
    }
    if let Some(n) = max_writes {
        bounds.max_writes = n;
    }
    bounds
}

/// The outcome of one row on one system.
struct Row {
    writes: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency quantile `q` in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1e3
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds, from 1 µs to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// The key of write `n` of writer `writer` in row `row`: distinct across the whole run, padded
/// to [`KEY_LEN`] bytes.
fn key(row: usize, writer: usize, n: u64) -> Vec<u8> {
    let mut k = format!("r{row}/w{writer:02}/{n:010}").into_bytes();
    k.resize(KEY_LEN, b'.');
    k
}

/// A [`VALUE_LEN`]-byte value (its content does not matter to either system).
fn value() -> Vec<u8> {
    (0..VALUE_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Hands out write numbers until the row's count or deadline is reached.
struct Budget {
    issued: AtomicU64,
    max: u64,
    deadline: Instant,
}

impl Budget {
    fn new(bounds: Bounds) -> Budget {
        Budget {
            issued: AtomicU64::new(0),
            max: bounds.max_writes,
            deadline: Instant::now() + bounds.duration,
        }
    }

    /// The number of the next write, or `None` when the row is over.
    fn take(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        (n < self.max).then_some(n)
    }
}

/// One row on the single-node store: `writers` OS threads in a closed loop.
fn single_row(store: &Store, row: usize, writers: usize, bounds: Bounds) -> Row {
    let budget = Budget::new(bounds);
    let merged = Mutex::new(histogram());
    let value = value();
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (budget, merged, value) = (&budget, &merged, &value);
            s.spawn(move || {
                let mut latency = histogram();
                while let Some(n) = budget.take() {
                    let t = Instant::now();
                    store.put(key(row, w, n), value).expect("single-node put");
                    latency.saturating_record(t.elapsed().as_micros() as u64);
                }
                merged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(&latency)
                    .expect("histograms share bounds");
            });
        }
    });
    finish(
        started,
        merged.into_inner().unwrap_or_else(|p| p.into_inner()),
    )
}

fn finish(started: Instant, latency: Histogram<u64>) -> Row {
    Row {
        writes: latency.len(),
        elapsed: started.elapsed(),
        latency,
    }
}

/// One row on the cluster: `writers` tasks in a closed loop, each putting on the leader.
async fn cluster_row(leader: &ReplicatedStore, row: usize, writers: usize, bounds: Bounds) -> Row {
    let budget = Arc::new(Budget::new(bounds));
    let value = Arc::new(value());
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (budget, value, leader) = (Arc::clone(&budget), Arc::clone(&value), leader.clone());
            tokio::spawn(async move {
                let mut latency = histogram();
                while let Some(n) = budget.take() {
                    let t = Instant::now();
                    leader
                        .put(key(row, w, n), value.as_slice())
                        .await
                        .expect("cluster put");
                    latency.saturating_record(t.elapsed().as_micros() as u64);
                }
                latency
            })
        })
        .collect();
    let mut merged = histogram();
    for task in tasks {
        let latency = task.await.expect("writer task");
        merged.add(&latency).expect("histograms share bounds");
    }
    finish(started, merged)
}

/// Opens member `id` in `dir` and registers it on `net`. The only place a member is opened.
async fn open_member(dir: &Path, id: NodeId, net: &Arc<LocalNetwork>) -> ReplicatedStore {
    let member = ReplicatedStore::open(
        NodeConfig::new(id),
        dir.join(format!("n{id}.etch")),
        etch_engine::Options::new(),
        Arc::clone(net),
    )
    .await
    .expect("open member");
    net.register(id, member.handler());
    member
}

/// Starts the cluster and returns its members, the leader first.
async fn start_cluster(dir: &Path) -> Vec<ReplicatedStore> {
    let net = Arc::new(LocalNetwork::new());
    let mut members = Vec::new();
    for id in 1..=MEMBERS {
        members.push(open_member(dir, id, &net).await);
    }
    let ids: BTreeSet<NodeId> = (1..=MEMBERS).collect();
    members[0].initialize(ids).await.expect("initialize");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: BTreeSet<Option<NodeId>> = members.iter().map(|m| m.leader()).collect();
        if let [Some(id)] = leaders.into_iter().collect::<Vec<_>>()[..] {
            let at = members
                .iter()
                .position(|m| m.id() == id)
                .expect("leader is a member");
            members.swap(0, at);
            return members;
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the benchmark with the arguments after `raft`.
pub fn main(args: impl Iterator<Item = String>) {
    let bounds = parse(args);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "etch-bench raft: {MEMBERS}-member cluster (LocalNetwork, real files, fdatasync) vs one \
         durable Store; {KEY_LEN}-byte keys, {VALUE_LEN}-byte values; each row {:.1}s or {} \
         writes; {cores} cores",
        bounds.duration.as_secs_f64(),
        bounds.max_writes
    );
    let dir = tempfile::tempdir_in(".").expect("create temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let single = etch_engine::Options::new()
        .open(dir.path().join("single.etch"))
        .expect("open single-node store");
    let members = runtime.block_on(start_cluster(dir.path()));

    let mut rows = Vec::new();
    for (i, &writers) in WRITERS.iter().enumerate() {
        let one = single_row(&single, i, writers, bounds);
        let three = runtime.block_on(cluster_row(&members[0], i, writers, bounds));
        eprintln!(
            "  {writers} writers: single {:.0}/s, cluster {:.0}/s",
            one.rate(),
            three.rate()
        );
        rows.push((writers, one, three));
    }

    // The cluster really replicated: every member applied the same keyspace.
    runtime.block_on(async {
        let revision = members[0].revision();
        for m in &members {
            let deadline = Instant::now() + Duration::from_secs(30);
            while m.revision() < revision {
                assert!(
                    Instant::now() < deadline,
                    "member {} did not catch up",
                    m.id()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let hash = members[0].hash_kv(revision).expect("hash_kv");
        for m in &members[1..] {
            assert_eq!(
                m.hash_kv(revision).expect("hash_kv"),
                hash,
                "members differ"
            );
        }
        for m in &members {
            m.shutdown().await.expect("shut down member");
        }
    });
    single.close().expect("close single-node store");
    drop(runtime);
    dir.close().expect("remove temporary directory");

    print_table(&rows);
}

fn print_table(rows: &[(usize, Row, Row)]) {
    println!();
    println!(
        "| writers | single writes/s | single p50 | single p99 | cluster writes/s | cluster p50 \
         | cluster p99 | single/cluster |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (writers, one, three) in rows {
        println!(
            "| {writers} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.2}x |",
            one.rate(),
            one.ms(0.5),
            one.ms(0.99),
            three.rate(),
            three.ms(0.5),
            three.ms(0.99),
            one.rate() / three.rate()
        );
    }
    for (writers, one, three) in rows {
        println!(
            "{writers} writers: single {} writes in {:.2}s, cluster {} writes in {:.2}s",
            one.writes,
            one.elapsed.as_secs_f64(),
            three.writes,
            three.elapsed.as_secs_f64()
        );
    }
}
