//! `etch-serve-bench`: etcd 3.4 (Debian's `etcd-server`) against `etch serve`, through the
//! project's generated gRPC client, in one run on loopback.
//!
//! For each server: puts of 256-byte values, linearizable gets and serializable gets of single
//! keys, at 1, 64 and 256 concurrent clients spread over up to 16 connections, each level a
//! fixed number of requests; prints throughput, p50 and p99 per level and the ratios.
//!
//! ```sh
//! cargo build --release -p etch-cli -p etch-bench
//! target/release/etch-serve-bench            # --requests N scales the request counts
//! ```
//!
//! `etch serve` runs as a process from the `etch` binary beside this one (so both servers are
//! separate processes, as in production); both use their default durability (fsync per commit,
//! group commit under concurrency).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

/// Kills and reaps a server process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(23799)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Put,
    LinearizableGet,
    SerializableGet,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put 256 B",
            Op::LinearizableGet => "get (linearizable)",
            Op::SerializableGet => "get (serializable)",
        }
    }
}

struct Result {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `total` requests of `op` from `clients` concurrent clients over `conns` connections.
async fn run_level(channels: &[Channel], op: Op, clients: usize, total: usize) -> Result {
    let per_client = total.div_ceil(clients);
    let value = Arc::new(vec![b'v'; 256]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut kv = KvClient::new(channels[c % channels.len()].clone());
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let key = format!("bench/{}", (c * per_client + i) % 1000).into_bytes();
                let t = Instant::now();
                let ok = match op {
                    Op::Put => kv
                        .put(pb::PutRequest {
                            key,
                            value: value.to_vec(),
                            ..Default::default()
                        })
                        .await
                        .is_ok(),
                    Op::LinearizableGet | Op::SerializableGet => kv
                        .range(pb::RangeRequest {
                            key,
                            serializable: op == Op::SerializableGet,
                            ..Default::default()
                        })
                        .await
                        .is_ok(),
                };
                if !ok {
                    eprintln!("request failed");
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(per_client * clients);
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Result {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

async fn connect(endpoint: &str, n: usize) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..n {
        let channel = Channel::from_shared(format!("http://{endpoint}"))
            .expect("endpoint URL")
            .connect()
            .await
            .expect("connects");
        channels.push(channel);
    }
    channels
}

async fn wait_ready(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(ch) = Channel::from_shared(format!("http://{endpoint}"))
            .expect("endpoint URL")
            .connect()
            .await
        {
            let mut kv = KvClient::new(ch);
            if kv
                .range(pb::RangeRequest {
                    key: b"ready".to_vec(),
                    ..Default::default()
                })
                .await
                .is_ok()
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{endpoint} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_etcd(dir: &Path) -> (Guard, String) {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.join("etcd-data"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (Debian: apt-get install etcd-server) starts");
    (Guard(child), format!("127.0.0.1:{client}"))
}

fn etch_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.with_file_name("etch")
}

fn start_etch(dir: &Path) -> (Guard, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(etch_binary())
        .arg("serve")
        .arg("--db")
        .arg(dir.join("bench.etch"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etch serve starts (build it: cargo build --release -p etch-cli)");
    (Guard(child), format!("127.0.0.1:{port}"))
}

/// Runs every level against `endpoint`.
async fn measure(endpoint: &str, scale: usize) -> Vec<(Op, usize, Result)> {
    wait_ready(endpoint).await;
    let mut out = Vec::new();
    for op in [Op::Put, Op::LinearizableGet, Op::SerializableGet] {
        for clients in [1usize, 64, 256] {
            let channels = connect(endpoint, clients.min(16)).await;
            let total = match clients {
                1 => scale / 10,
                _ => scale,
            };
            let r = run_level(&channels, op, clients, total.max(clients)).await;
            eprintln!(
                "  {endpoint} {:<20} {clients:>3} clients: {:>8.0} op/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
                op.name(),
                r.ops_per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3
            );
            out.push((op, clients, r));
        }
    }
    out
}

fn main() {
    let mut scale = 20_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--requests" => {
                scale = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--requests N")
            }
            other => {
                eprintln!("unknown argument {other}; usage: etch-serve-bench [--requests N]");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!("etcd 3.4:");
    let etcd = {
        let (_guard, endpoint) = start_etcd(dir.path());
        runtime.block_on(measure(&endpoint, scale))
    };
    eprintln!("etch serve:");
    let etch = {
        let (_guard, endpoint) = start_etch(dir.path());
        runtime.block_on(measure(&endpoint, scale))
    };
    println!("| operation | clients | etcd op/s | etch op/s | ratio | etcd p50 ms | etch p50 ms | etcd p99 ms | etch p99 ms | p99 ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((op, clients, e), (_, _, x)) in etcd.iter().zip(&etch) {
        println!(
            "| {} | {clients} | {:.0} | {:.0} | {:.2}x | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} |",
            op.name(),
            e.ops_per_sec,
            x.ops_per_sec,
            x.ops_per_sec / e.ops_per_sec,
            e.p50.as_secs_f64() * 1e3,
            x.p50.as_secs_f64() * 1e3,
            e.p99.as_secs_f64() * 1e3,
            x.p99.as_secs_f64() * 1e3,
            x.p99.as_secs_f64() / e.p99.as_secs_f64(),
        );
    }
}
