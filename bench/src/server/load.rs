//! Closed-loop KV load: M clients (tokio tasks) share N connections and take request numbers
//! from one counter until a fixed count is done; each records its latencies in its own
//! histogram, merged at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::{
    request_op, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use hdrhistogram::Histogram;
use tonic::transport::Channel;

/// Size of every value written, as the issue asks.
pub const VALUE_LEN: usize = 256;

/// Longest a single request may take before the run fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One KV operation the load repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Put a 256-byte value.
    Put,
    /// Get one key, linearizable (etcd: a ReadIndex round before reading).
    GetLinearizable,
    /// Get one key, serializable (served from the local state).
    GetSerializable,
}

impl Op {
    /// Every operation, in table order.
    pub const ALL: [Op; 3] = [Op::Put, Op::GetLinearizable, Op::GetSerializable];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::GetLinearizable => "get-linearizable",
            Op::GetSerializable => "get-serializable",
        }
    }
}

/// The key of slot `i` of the key space.
pub fn key(prefix: &str, i: u64) -> Vec<u8> {
    format!("{prefix}{i:08}").into_bytes()
}

/// A 256-byte value whose first 8 bytes are `stamp` (little endian) and the rest a filler.
pub fn value(stamp: u64) -> Vec<u8> {
    let mut value = vec![b'v'; VALUE_LEN];
    value[..8].copy_from_slice(&stamp.to_le_bytes());
    value
}

/// The first 8 bytes of a value written by [`value`].
pub fn stamp_of(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

/// A latency histogram in microseconds, 1 us to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// What one run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunResult {
    /// Requests completed.
    pub requests: u64,
    /// Wall-clock seconds from the first request to the last response.
    pub seconds: f64,
    /// Requests per second.
    pub throughput: f64,
    /// Median latency in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency in microseconds.
    pub p99_us: u64,
}

impl RunResult {
    /// The figures of `hist` over `seconds`.
    pub fn of(hist: &Histogram<u64>, seconds: f64) -> RunResult {
        RunResult {
            requests: hist.len(),
            seconds,
            throughput: hist.len() as f64 / seconds,
            p50_us: hist.value_at_quantile(0.5),
            p99_us: hist.value_at_quantile(0.99),
        }
    }
}

/// Where a load writes or reads.
#[derive(Clone)]
pub struct Target {
    /// Keys are `prefix` + an 8-digit slot number.
    pub prefix: String,
    /// Number of slots; request `n` uses slot `n % keys`.
    pub keys: u64,
    /// Base of the timestamps put into values (see [`value`]).
    pub epoch: Instant,
}

/// Writes every slot of `target` once, 100 keys per transaction (etcd's default limit is 128
/// operations per transaction), so gets find their keys.
pub async fn prefill(channel: &Channel, target: &Target) -> Result<(), String> {
    let mut client = KvClient::new(channel.clone());
    let mut next = 0;
    while next < target.keys {
        let end = (next + 100).min(target.keys);
        let success = (next..end)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key(&target.prefix, i),
                    value: value(0),
                    ..Default::default()
                })),
            })
            .collect();
        let txn = TxnRequest {
            success,
            ..Default::default()
        };
        client.txn(txn).await.map_err(|e| format!("prefill: {e}"))?;
        next = end;
    }
    Ok(())
}

/// Longest a run keeps issuing requests: a run that reaches it stops early and reports the
/// requests it completed (so a pathologically slow server cannot stall the benchmark).
pub const RUN_TIME_LIMIT: Duration = Duration::from_secs(20);

/// Runs `requests` operations `op` from `clients` clients over `channels` (or as many as
/// complete within [`RUN_TIME_LIMIT`]) and returns the merged histogram and the elapsed
/// seconds. Any failed request fails the run.
pub async fn run(
    channels: &[Channel],
    clients: usize,
    requests: u64,
    op: Op,
    target: &Target,
) -> Result<(Histogram<u64>, f64), String> {
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + RUN_TIME_LIMIT;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let client = KvClient::new(channels[c % channels.len()].clone());
        let counter = Arc::clone(&counter);
        let target = target.clone();
        tasks.push(tokio::spawn(client_loop(
            client, counter, requests, deadline, op, target,
        )));
    }
    let mut merged = histogram();
    for task in tasks {
        let hist = task.await.map_err(|e| format!("client task: {e}"))??;
        merged.add(&hist).map_err(|e| e.to_string())?;
    }
    Ok((merged, started.elapsed().as_secs_f64()))
}

async fn client_loop(
    mut client: KvClient<Channel>,
    counter: Arc<AtomicU64>,
    requests: u64,
    deadline: Instant,
    op: Op,
    target: Target,
) -> Result<Histogram<u64>, String> {
    let mut hist = histogram();
    loop {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if n >= requests || Instant::now() >= deadline {
            return Ok(hist);
        }
        let key = key(&target.prefix, n % target.keys);
        let sent = Instant::now();
        let call = one_request(&mut client, op, key, &target);
        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(result) => result?,
            Err(_) => return Err(format!("{} timed out after 30 s", op.name())),
        }
        hist.saturating_record(sent.elapsed().as_micros().max(1) as u64);
    }
}

async fn one_request(
    client: &mut KvClient<Channel>,
    op: Op,
    key: Vec<u8>,
    target: &Target,
) -> Result<(), String> {
    match op {
        Op::Put => {
            let stamp = target.epoch.elapsed().as_nanos() as u64;
            let put = PutRequest {
                key,
                value: value(stamp),
                ..Default::default()
            };
            client.put(put).await.map_err(|e| format!("put: {e}"))?;
        }
        Op::GetLinearizable | Op::GetSerializable => {
            let get = RangeRequest {
                key,
                serializable: op == Op::GetSerializable,
                ..Default::default()
            };
            let resp = client.range(get).await.map_err(|e| format!("get: {e}"))?;
            let kvs = &resp.get_ref().kvs;
            if kvs.len() != 1 || kvs[0].value.len() != VALUE_LEN {
                return Err(format!(
                    "get returned {} keys instead of the one prefilled key",
                    kvs.len()
                ));
            }
        }
    }
    Ok(())
}
