//! `etch-bench cluster`: a 3-member `etch serve` cluster against a 3-member etcd 3.4 cluster on
//! loopback, driven by the same load tool as `etch-bench server` (bench/src/server/load.rs).
//!
//! ```text
//! cargo build --release -p etch-cli -p etch-bench
//! target/release/etch-bench cluster [--quick] [--json FILE] [--catch-up-keys N] [--rounds N]
//! ```
//!
//! * KV: puts of 256-byte values and linearizable single-key gets at 1, 64 and 256 clients
//!   (closed loop). The clients share `clients / 8` connections (at least one), spread round
//!   robin over the three members, as etcd's own benchmark spreads over its endpoints; a
//!   follower forwards writes to the leader (etch) or proposes them through Raft (etcd), and a
//!   linearizable read on a follower asks the leader for a read index in both. Both clusters
//!   run side by side and each row runs on etcd and then on etch, so a change in the machine's
//!   load hits both alike; the load average is printed before and after.
//! * Catch-up: a fresh cluster of each kind with `--snapshot-count 1000` is loaded with N keys
//!   (1,000,000; `--quick`: 20,000) of 256-byte values, then a fourth member is added
//!   (MemberAdd, then started with `initial-cluster-state=existing`); the time from its process
//!   start until a serializable count of the keys on that member sees all N.
//! * Failover: SIGKILL of the leader, then puts through both survivors at once (250 ms per
//!   attempt) until one succeeds; the time from the kill to that success. The killed member is
//!   restarted between rounds.

pub mod procs;

use std::time::{Duration, Instant};

use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::Channel;

use crate::server::kv_rows::{self, KvRow, KvScale, CLIENTS};
use crate::server::load::{self, Op, Target};
use crate::server::process::{self, Kind};
use procs::{channel, ProcCluster};

/// Members of each cluster.
const MEMBERS: usize = 3;

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
struct Scale {
    name: &'static str,
    kv: KvScale,
    /// Keys loaded before a member is added.
    catch_up_keys: u64,
    /// Leader kills measured.
    rounds: usize,
}

const QUICK: Scale = Scale {
    name: "quick",
    kv: KvScale {
        keys: 1_000,
        single: (100, 200),
        many: (2_000, 4_000),
    },
    catch_up_keys: 20_000,
    rounds: 1,
};

const FULL: Scale = Scale {
    name: "full",
    kv: KvScale {
        keys: 10_000,
        single: (1_000, 2_000),
        many: (20_000, 40_000),
    },
    catch_up_keys: 1_000_000,
    rounds: 3,
};

fn usage() -> ! {
    eprintln!(
        "usage: etch-bench cluster [--quick] [--json FILE] [--catch-up-keys N] [--rounds N]\n\
         \x20                        [--only kv|catch-up|failover]"
    );
    std::process::exit(2)
}

#[derive(Clone, Debug)]
struct Options {
    json: Option<String>,
    kv: bool,
    catch_up: bool,
    failover: bool,
}

/// A new member catching up on a loaded store.
#[derive(Clone, Debug, serde::Serialize)]
struct CatchUp {
    server: &'static str,
    keys: u64,
    /// Seconds to load the keys (not the subject, printed for context).
    load_seconds: f64,
    /// Load transactions sent again after the server answered that it timed out.
    load_retries: u64,
    /// Load transactions sent again after the server refused them as `too many requests`
    /// (nothing proposed; sent again after a back-off, as etcd's clients do).
    load_refused: u64,
    /// Seconds from the new member's process start to it counting every key.
    catch_up_seconds: f64,
}

/// Leader failover times.
#[derive(Clone, Debug, serde::Serialize)]
struct Failover {
    server: &'static str,
    /// Milliseconds from SIGKILL of the leader to the first acknowledged put, per round.
    millis: Vec<f64>,
}

/// Entry point of `etch-bench cluster ARGS`.
pub fn main(mut args: impl Iterator<Item = String>) {
    let mut scale = FULL;
    let mut options = Options {
        json: None,
        kv: true,
        catch_up: true,
        failover: true,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => scale = QUICK,
            "--json" => options.json = Some(args.next().unwrap_or_else(|| usage())),
            "--catch-up-keys" => scale.catch_up_keys = number(args.next()),
            "--rounds" => scale.rounds = number(args.next()) as usize,
            "--only" => {
                let only = args.next();
                options.kv = only.as_deref() == Some("kv");
                options.catch_up = only.as_deref() == Some("catch-up");
                options.failover = only.as_deref() == Some("failover");
                if !(options.kv || options.catch_up || options.failover) {
                    usage();
                }
            }
            _ => usage(),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start tokio runtime");
    if let Err(e) = runtime.block_on(run(scale, options)) {
        eprintln!("etch-bench cluster: {e}");
        std::process::exit(1);
    }
}

fn number(arg: Option<String>) -> u64 {
    arg.and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| usage())
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn run(scale: Scale, options: Options) -> Result<(), String> {
    let started = Instant::now();
    let etcd_version = process::check_binaries()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = loadavg();
    println!(
        "etch-bench cluster: scale {}, {MEMBERS} members each, {etcd_version}, {}-byte values, \
         {cores} cores, load average {load_before}",
        scale.name,
        load::VALUE_LEN
    );

    let mut rows = Vec::new();
    let mut failovers = Vec::new();
    if options.kv || options.failover {
        let mut etcd = ProcCluster::start(Kind::Etcd, MEMBERS, None).await?;
        let mut etch = ProcCluster::start(Kind::Etch, MEMBERS, None).await?;
        if options.kv {
            rows = measure_kv(&scale.kv, &etcd, &etch).await?;
            print_kv(&rows);
        }
        if options.failover {
            for cluster in [&mut etcd, &mut etch] {
                eprintln!("  failover on {}", cluster.kind.name());
                failovers.push(failover(cluster, scale.rounds).await?);
            }
            print_failover(&failovers);
        }
    }
    let mut catch_ups = Vec::new();
    if options.catch_up {
        for kind in [Kind::Etcd, Kind::Etch] {
            eprintln!("  catch-up on {}", kind.name());
            catch_ups.push(catch_up(kind, scale.catch_up_keys).await?);
        }
        print_catch_up(&catch_ups);
    }
    let load_after = loadavg();
    println!(
        "load average before {load_before}, after {load_after}; total {:.1}s",
        started.elapsed().as_secs_f64()
    );

    if let Some(path) = options.json {
        let doc = serde_json::json!({
            "scale": scale.name,
            "members": MEMBERS,
            "etcd_version": etcd_version,
            "cores": cores,
            "load_before": load_before,
            "load_after": load_after,
            "kv": rows,
            "failover": failovers,
            "catch_up": catch_ups,
        });
        process::write_json(&path, &doc)?;
    }
    Ok(())
}

/// `n` connections spread round robin over the cluster's running members.
async fn connect(cluster: &ProcCluster, n: usize) -> Result<Vec<Channel>, String> {
    let urls: Vec<&str> = cluster
        .members
        .iter()
        .filter(|m| m.is_up())
        .map(|m| m.client_url.as_str())
        .collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(channel(urls[i % urls.len()]).await?);
    }
    Ok(out)
}

/// The KV rows, etcd then etch for each. The single client of the 1-client row talks to one
/// member, a follower or the leader as the round robin falls, the same member index on both.
async fn measure_kv(
    scale: &KvScale,
    etcd: &ProcCluster,
    etch: &ProcCluster,
) -> Result<Vec<KvRow>, String> {
    let connections_for = |clients: usize| clients.div_ceil(8).clamp(1, clients);
    let most = CLIENTS
        .iter()
        .map(|&c| connections_for(c))
        .max()
        .unwrap_or(1);
    let target = kv_rows::target(scale);
    let mut deployments = Vec::new();
    for cluster in [etcd, etch] {
        // At least one connection per member, so the 1-client row can start on any member.
        let channels = connect(cluster, most.max(MEMBERS)).await?;
        load::prefill(&channels[0], &target).await?;
        deployments.push((cluster.kind, channels));
    }
    let deployments: [_; 2] = deployments.try_into().expect("two clusters");
    let ops = [Op::Put, Op::GetLinearizable];
    kv_rows::run(scale, &target, &ops, &deployments, connections_for).await
}

/// Kills the leader `rounds` times (restarting it in between) and times each failover.
async fn failover(cluster: &mut ProcCluster, rounds: usize) -> Result<Failover, String> {
    let mut millis = Vec::new();
    for round in 0..rounds {
        let leader = cluster.leader().await?;
        let survivors: Vec<Channel> = {
            let mut out = Vec::new();
            for (i, m) in cluster.members.iter().enumerate() {
                if i != leader && m.is_up() {
                    out.push(channel(&m.client_url).await?);
                }
            }
            out
        };
        let killed = Instant::now();
        cluster.kill(leader);
        let deadline = killed + Duration::from_secs(30);
        let mut attempt = 0u64;
        'wait: loop {
            let mut tasks = tokio::task::JoinSet::new();
            for ch in &survivors {
                let mut client = KvClient::new(ch.clone());
                let put = PutRequest {
                    key: format!("failover/{round}/{attempt}").into_bytes(),
                    value: load::value(attempt),
                    ..Default::default()
                };
                tasks.spawn(async move {
                    matches!(
                        tokio::time::timeout(Duration::from_millis(250), client.put(put)).await,
                        Ok(Ok(_))
                    )
                });
            }
            while let Some(done) = tasks.join_next().await {
                if done.unwrap_or(false) {
                    break 'wait;
                }
            }
            attempt += 1;
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no write succeeded within 30 s of the kill",
                    cluster.kind.name()
                ));
            }
        }
        millis.push(killed.elapsed().as_secs_f64() * 1e3);
        cluster.restart(leader).await?;
    }
    Ok(Failover {
        server: cluster.kind.name(),
        millis,
    })
}

/// Loads `keys` keys into a fresh cluster of `kind`, adds a member and times its catch-up.
async fn catch_up(kind: Kind, keys: u64) -> Result<CatchUp, String> {
    let mut cluster = ProcCluster::start(kind, MEMBERS, Some(1_000)).await?;
    let target = Target {
        prefix: "catch-up/".to_string(),
        keys,
        epoch: Instant::now(),
    };
    let loading = Instant::now();
    let channels = connect(&cluster, 16).await?;
    // 16 loaders, each writing its own share of the slots in transactions of 100 puts.
    let mut tasks = tokio::task::JoinSet::new();
    let share = keys.div_ceil(16);
    for (n, ch) in channels.into_iter().enumerate() {
        let start = n as u64 * share;
        let end = (start + share).min(keys);
        let part = Target {
            prefix: target.prefix.clone(),
            keys: end.saturating_sub(start),
            epoch: target.epoch,
        };
        tasks.spawn(async move { load_slots(ch, &part, start).await });
    }
    let mut load_retries = 0;
    let mut load_refused = 0;
    while let Some(done) = tasks.join_next().await {
        let (retries, refused) = done.map_err(|e| e.to_string())??;
        load_retries += retries;
        load_refused += refused;
    }
    let load_seconds = loading.elapsed().as_secs_f64();

    let (new, started) = cluster.add_member().await?;
    cluster.wait_ready(new).await?;
    let url = cluster.members[new].client_url.clone();
    let deadline = started + Duration::from_secs(600);
    loop {
        if count_serializable(&url, &target.prefix).await.ok() == Some(keys as i64) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: the new member did not catch up in 600 s",
                kind.name()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(CatchUp {
        server: kind.name(),
        keys,
        load_seconds,
        load_retries,
        load_refused,
        catch_up_seconds: started.elapsed().as_secs_f64(),
    })
}

/// How many times one load transaction is sent in all when the server answers that it timed
/// out (`Unavailable`).
const LOAD_TRIES: u32 = 5;

/// How many times in all one load transaction is sent when the server refuses it as
/// `too many requests` (each after [`REFUSED_BACKOFF`]): a refused write was not proposed, so
/// sending it again is always safe; the bound only keeps a broken cluster from looping.
const REFUSED_TRIES: u32 = 1_000;

/// The pause before a refused load transaction is sent again.
const REFUSED_BACKOFF: Duration = Duration::from_millis(50);

/// Writes slots `offset..offset + part.keys` of `part.prefix` in transactions of 100 puts;
/// returns how many transactions were sent again after a timeout and after a refusal as
/// `too many requests` (etcd's `ResourceExhausted` with that text). A transaction the server answered as timed
/// out (a loaded machine: the load is not what is measured) is sent again, at most
/// [`LOAD_TRIES`] times in all: it puts fixed values under fixed keys, so applying it twice
/// leaves the same keys and values (only the revision moves), which is all the catch-up
/// counts.
async fn load_slots(channel: Channel, part: &Target, offset: u64) -> Result<(u64, u64), String> {
    use etch_server::proto::etcdserverpb::{request_op, RequestOp, TxnRequest};
    let mut client = KvClient::new(channel);
    let mut next = 0;
    let mut retries = 0;
    let mut refused = 0;
    while next < part.keys {
        let end = (next + 100).min(part.keys);
        let success = (next..end)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: load::key(&part.prefix, offset + i),
                    value: load::value(i),
                    ..Default::default()
                })),
            })
            .collect();
        let request = TxnRequest {
            success,
            ..Default::default()
        };
        let mut tries = 1;
        let mut refusals = 0;
        loop {
            match client.txn(request.clone()).await {
                Ok(_) => break,
                Err(e) if e.code() == tonic::Code::Unavailable && tries < LOAD_TRIES => {
                    tries += 1;
                    retries += 1;
                }
                Err(e)
                    if e.code() == tonic::Code::ResourceExhausted
                        && e.message() == "etcdserver: too many requests"
                        && refusals + 1 < REFUSED_TRIES =>
                {
                    refusals += 1;
                    refused += 1;
                    tokio::time::sleep(REFUSED_BACKOFF).await;
                }
                Err(e) => return Err(format!("load: {e}")),
            }
        }
        next = end;
    }
    Ok((retries, refused))
}

/// The number of keys under `prefix`, read serializably (from that member's own state).
async fn count_serializable(url: &str, prefix: &str) -> Result<i64, String> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    let request = RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: end,
        count_only: true,
        serializable: true,
        ..Default::default()
    };
    let resp = KvClient::new(channel(url).await?)
        .range(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.into_inner().count)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1e3)
}

fn print_kv(rows: &[KvRow]) {
    println!("\n| operation (3 members) | clients | etcd op/s | etch op/s | ratio | etcd p50 ms | etch p50 ms | etcd p99 ms | etch p99 ms | p99 ratio | target |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let met = if row.clients == 1 {
            row.op != "put" || row.etch.p50_us < row.etcd.p50_us
        } else {
            row.etch.throughput >= 3.0 * row.etcd.throughput
                && row.etch.p99_us as f64 <= 0.5 * row.etcd.p99_us as f64
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2}x | {} | {} | {} | {} | {:.2} | {} |",
            row.op,
            row.clients,
            row.etcd.throughput,
            row.etch.throughput,
            row.etch.throughput / row.etcd.throughput,
            ms(row.etcd.p50_us),
            ms(row.etch.p50_us),
            ms(row.etcd.p99_us),
            ms(row.etch.p99_us),
            row.etch.p99_us as f64 / row.etcd.p99_us as f64,
            if met { "met" } else { "not met" },
        );
    }
    println!(
        "targets: at 64 and 256 clients at least 3x etcd's throughput and at most half its p99; \
         at 1 client a put median below etcd's"
    );
}

fn print_failover(results: &[Failover]) {
    println!(
        "\n| leader failover (SIGKILL to first acknowledged put) | rounds | each ms | median ms |"
    );
    println!("|---|---:|---|---:|");
    for f in results {
        let mut sorted = f.millis.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
        let each: Vec<String> = f.millis.iter().map(|m| format!("{m:.0}")).collect();
        println!(
            "| {} | {} | {} | {median:.0} |",
            f.server,
            f.millis.len(),
            each.join(", ")
        );
    }
}

fn print_catch_up(results: &[CatchUp]) {
    println!(
        "\n| new member catch-up | keys | load s | load retries | load refused | catch-up s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for c in results {
        println!(
            "| {} | {} | {:.1} | {} | {} | {:.2} |",
            c.server, c.keys, c.load_seconds, c.load_retries, c.load_refused, c.catch_up_seconds
        );
    }
}
