//! `check perf`: etcdctl's write benchmark of a server. Puts of a 256-byte key (under
//! `--prefix`) and a 1 KiB value at the load level's rate from its number of clients for
//! `--duration` (60 s, as etcdctl), then etcdctl's verdicts: throughput above 90% of the rate,
//! slowest request at most 0.5 s, standard deviation at most 0.1 s. The keys are deleted after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use tokio::sync::{mpsc, Mutex};

use crate::args::parse_duration;
use crate::client::{conn, Client, DEADLINE_EXCEEDED};
use crate::error::{CliError, CliResult};

/// etcdctl's load levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Load {
    /// 150 writes/s from 50 clients.
    S,
    /// 1,000 writes/s from 200 clients.
    M,
    /// 8,000 writes/s from 500 clients.
    L,
    /// 15,000 writes/s from 1,000 clients.
    Xl,
}

impl Load {
    /// (writes per second, clients).
    fn rate_and_clients(self) -> (u64, usize) {
        match self {
            Load::S => (150, 50),
            Load::M => (1000, 200),
            Load::L => (8000, 500),
            Load::Xl => (15000, 1000),
        }
    }
}

/// `check perf`'s flags.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// Load level: s, m, l or xl (etcdctl's)
    #[arg(long, value_enum, default_value_t = Load::S, ignore_case = true)]
    pub load: Load,
    /// Key prefix of the benchmark's writes (must hold no keys)
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    pub prefix: String,
    /// How long to write (etcdctl: always 60s)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Compact the store to the revision after the benchmark's deletion
    #[arg(long)]
    pub auto_compact: bool,
    /// Defragment the store after the benchmark (with --auto-compact, the space is returned)
    #[arg(long)]
    pub auto_defrag: bool,
}

/// Connections shared by the clients (HTTP/2 multiplexes the clients' requests on them).
const CONNECTIONS: usize = 8;

/// The latencies and errors of a run.
struct Outcome {
    latencies: Vec<f64>,
    errors: std::collections::BTreeMap<String, u64>,
    elapsed: Duration,
}

/// Runs the benchmark and prints etcdctl's verdict lines; FAIL exits 1.
pub fn run(c: &Client, a: &PerfArgs) -> CliResult {
    let (rate, clients) = a.load.rate_and_clients();
    let prefix = a.prefix.as_bytes().to_vec();
    let end = etch::prefix_end(&prefix);
    let mut kv = KvClient::new(c.channel.clone());
    let existing = c.call(kv.range(pb::RangeRequest {
        key: prefix.clone(),
        range_end: end.clone(),
        limit: 1,
        ..Default::default()
    }))?;
    if !existing.kvs.is_empty() {
        return Err(CliError::invalid_input(format!(
            "prefix {:?} has keys. Delete with etcdctl del --prefix {} first.",
            a.prefix, a.prefix
        )));
    }
    let mut channels = vec![c.channel.clone()];
    for _ in 1..CONNECTIONS.min(clients) {
        let more = c.block_on(conn::dial(
            c.conn(),
            &c.endpoint,
            Instant::now() + c.conn().command_timeout,
        ));
        channels.push(more.map_err(CliError::failed)?);
    }
    let bar = crate::progress::bar(a.duration.as_secs().max(1), false, "writing");
    let outcome = c.block_on(load(channels, &prefix, rate, clients, a.duration, &bar));
    bar.finish_and_clear();
    let deleted = c.call(kv.delete_range(pb::DeleteRangeRequest {
        key: prefix,
        range_end: end,
        prev_kv: false,
    }))?;
    if a.auto_compact {
        let rev = deleted.header.as_ref().map_or(0, |h| h.revision);
        c.call(kv.compact(pb::CompactionRequest {
            revision: rev,
            physical: true,
        }))?;
    }
    if a.auto_defrag {
        let mut m = etch_server::proto::etcdserverpb::maintenance_client::MaintenanceClient::new(
            c.channel.clone(),
        );
        c.call(m.defragment(pb::DefragmentRequest {}))?;
    }
    report(&outcome, rate)
}

/// Issues puts at `rate` per second from `clients` tasks for `duration`.
async fn load(
    channels: Vec<tonic::transport::Channel>,
    prefix: &[u8],
    rate: u64,
    clients: usize,
    duration: Duration,
    bar: &indicatif::ProgressBar,
) -> Outcome {
    let (tx, rx) = mpsc::channel::<pb::PutRequest>(clients);
    let rx = Arc::new(Mutex::new(rx));
    let (results_tx, mut results_rx) = mpsc::unbounded_channel::<Result<f64, String>>();
    let mut workers = Vec::with_capacity(clients);
    for i in 0..clients {
        let (rx, results) = (rx.clone(), results_tx.clone());
        let mut kv = KvClient::new(channels[i % channels.len()].clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(req) = rx.lock().await.recv().await else {
                    return;
                };
                let start = Instant::now();
                let r = match tokio::time::timeout(Duration::from_secs(30), kv.put(req)).await {
                    Ok(Ok(_)) => Ok(start.elapsed().as_secs_f64()),
                    Ok(Err(s)) => Err(s.message().to_string()),
                    Err(_) => Err(DEADLINE_EXCEEDED.to_string()),
                };
                if results.send(r).is_err() {
                    return;
                }
            }
        }));
    }
    drop(results_tx);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let value = vec![0u8; 1024];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    while start.elapsed() < duration {
        // Tokens accrue continuously at `rate` per second (etcdctl's limiter, burst 1).
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            // xorshift: a random 256-byte key, as etcdctl's varint of a random number
            // padded with zeros.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut key = prefix.to_vec();
            let mut suffix = vec![0u8; 256];
            suffix[..8].copy_from_slice(&seed.to_le_bytes());
            key.extend_from_slice(&suffix);
            let req = pb::PutRequest {
                key,
                value: value.clone(),
                ..Default::default()
            };
            if tx.send(req).await.is_err() {
                break;
            }
            sent += 1;
        }
        bar.set_position(start.elapsed().as_secs());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(sent as usize);
    let mut errors = std::collections::BTreeMap::new();
    while let Some(r) = results_rx.recv().await {
        match r {
            Ok(l) => latencies.push(l),
            Err(e) => *errors.entry(e).or_insert(0) += 1,
        }
    }
    for w in workers {
        let _ = w.await;
    }
    Outcome {
        latencies,
        errors,
        elapsed: start.elapsed(),
    }
}

/// etcdctl's verdict lines.
fn report(o: &Outcome, rate: u64) -> CliResult {
    let n = o.latencies.len() as f64;
    let rps = n / o.elapsed.as_secs_f64().max(1e-9);
    let slowest = o.latencies.iter().copied().fold(0.0, f64::max);
    let mean = if n > 0.0 {
        o.latencies.iter().sum::<f64>() / n
    } else {
        0.0
    };
    let stddev = if n > 0.0 {
        (o.latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt()
    } else {
        0.0
    };
    let mut ok = true;
    if !o.errors.is_empty() {
        println!("FAIL: too many errors");
        for (e, count) in &o.errors {
            println!("FAIL: ERROR({e}) -> {count}");
        }
        ok = false;
    }
    if rps / rate as f64 <= 0.9 {
        println!("FAIL: Throughput too low: {} writes/s", rps as u64 + 1);
        ok = false;
    } else {
        println!("PASS: Throughput is {} writes/s", rps as u64 + 1);
    }
    if slowest > 0.5 {
        println!("Slowest request took too long: {slowest:.6}s");
        ok = false;
    } else {
        println!("PASS: Slowest request took {slowest:.6}s");
    }
    if stddev > 0.1 {
        println!("Stddev too high: {stddev:.6}s");
        ok = false;
    } else {
        println!("PASS: Stddev is {stddev:.6}s");
    }
    if ok {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        Err(CliError::silent(crate::error::EXIT_ERROR))
    }
}
