//! Watch fan-out: many watchers over a fixed number of watch streams while puts run at full
//! rate. Each put carries its send time in its value (see [`load::value`]); every delivered
//! event's latency is the time from that stamp to its arrival at the watching client, so it
//! includes the put itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etch_server::proto::etcdserverpb::watch_client::WatchClient;
use etch_server::proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::load::{self, Op, RunResult, Target};
use super::process::{Kind, Memory, Server};

/// What the watchers watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Watcher `i` watches key `i`; each put wakes one watcher.
    DistinctKeys,
    /// Every watcher watches one prefix; each put wakes all of them.
    SharedPrefix,
}

impl Shape {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Shape::DistinctKeys => "distinct-keys",
            Shape::SharedPrefix => "shared-prefix",
        }
    }
}

/// The size of one fan-out run.
#[derive(Clone, Copy, Debug)]
pub struct FanOut {
    /// Watchers in all.
    pub watchers: usize,
    /// Watch streams they are spread over (round robin).
    pub streams: usize,
    /// Connections the streams are spread over.
    pub connections: usize,
    /// Concurrent putting clients.
    pub put_clients: usize,
    /// Puts per measurement (once without watchers, once with).
    pub puts: u64,
    /// Longest wait, after the last put, for every expected event to arrive.
    pub drain_timeout: Duration,
}

/// What one fan-out run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FanOutResult {
    /// `distinct-keys` or `shared-prefix`.
    pub shape: &'static str,
    /// Watchers created.
    pub watchers: usize,
    /// Puts on the fresh server before any watcher exists.
    pub puts_without_watchers: RunResult,
    /// The same puts with the watchers in place.
    pub puts_with_watchers: RunResult,
    /// Put throughput with watchers / without.
    pub throughput_fraction: f64,
    /// Events the watchers should receive.
    pub events_expected: u64,
    /// Events they received before the drain timeout.
    pub events_delivered: u64,
    /// Seconds from the last put's response to the last expected event (or the timeout).
    pub drain_seconds: f64,
    /// Median delivery latency (put sent to event received), microseconds.
    pub delivery_p50_us: u64,
    /// 99th percentile delivery latency, microseconds.
    pub delivery_p99_us: u64,
    /// Server memory right after start.
    pub memory_at_start: Memory,
    /// Server memory once every watcher is created.
    pub memory_with_watchers: Memory,
    /// Server memory after the puts and the drain (its `hwm` is the run's peak).
    pub memory_at_end: Memory,
}

/// The shared state of all watch streams of one run.
struct Tally {
    created: AtomicU64,
    delivered: AtomicU64,
    latencies: Mutex<Histogram<u64>>,
    epoch: Instant,
}

/// Runs one fan-out measurement on a fresh `kind` server.
pub async fn run(kind: Kind, shape: Shape, size: FanOut) -> Result<FanOutResult, String> {
    let server = Server::start(kind).await?;
    let memory_at_start = server.memory();
    let epoch = Instant::now();
    let prefix = format!("watch/{}/", shape.name());
    let target = Target {
        prefix: prefix.clone(),
        keys: size.watchers as u64,
        epoch,
    };
    let put_channels = server.connect(size.put_clients.div_ceil(8)).await?;

    let (hist, seconds) = load::run(&put_channels, size.put_clients, size.puts, Op::Put, &target)
        .await
        .map_err(|e| format!("{} {}: {e}", kind.name(), shape.name()))?;
    let puts_without_watchers = RunResult::of(&hist, seconds);

    let tally = Arc::new(Tally {
        created: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        latencies: Mutex::new(load::histogram()),
        epoch,
    });
    let watch_channels = server.connect(size.connections).await?;
    // Every create request is queued before its stream is opened: etcd (gRPC-Go) sends the
    // response headers only with the first response, so opening a stream waits for a request.
    let mut requests: Vec<Vec<WatchRequest>> = vec![Vec::new(); size.streams];
    for w in 0..size.watchers {
        let (key, range_end) = match shape {
            Shape::DistinctKeys => (load::key(&prefix, w as u64), Vec::new()),
            Shape::SharedPrefix => (prefix.clone().into_bytes(), prefix_end(prefix.as_bytes())),
        };
        requests[w % size.streams].push(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key,
                    range_end,
                    ..Default::default()
                },
            )),
        });
    }
    let mut senders = Vec::with_capacity(size.streams);
    let mut readers = Vec::with_capacity(size.streams);
    for (s, creates) in requests.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel::<WatchRequest>(creates.len().max(1));
        for create in creates {
            tx.try_send(create)
                .expect("the channel holds every create request of its stream");
        }
        let mut client = WatchClient::new(watch_channels[s % watch_channels.len()].clone());
        let open = client.watch(ReceiverStream::new(rx));
        let responses = tokio::time::timeout(Duration::from_secs(60), open)
            .await
            .map_err(|_| "opening a watch stream took over 60 s".to_string())?
            .map_err(|e| format!("open watch stream: {e}"))?
            .into_inner();
        readers.push(tokio::spawn(read_stream(responses, Arc::clone(&tally))));
        // Kept open until the end: closing the request side ends the stream.
        senders.push(tx);
    }
    wait_for(
        &tally.created,
        size.watchers as u64,
        Duration::from_secs(120),
    )
    .await
    .map_err(|got| format!("only {got} of {} watchers were created", size.watchers))?;
    let memory_with_watchers = server.memory();

    let (hist, seconds) = load::run(&put_channels, size.put_clients, size.puts, Op::Put, &target)
        .await
        .map_err(|e| format!("{} {} with watchers: {e}", kind.name(), shape.name()))?;
    let puts_with_watchers = RunResult::of(&hist, seconds);
    let puts_done = Instant::now();
    let events_expected = match shape {
        Shape::DistinctKeys => size.puts,
        Shape::SharedPrefix => size.puts * size.watchers as u64,
    };
    let drained = wait_for(&tally.delivered, events_expected, size.drain_timeout).await;
    let drain_seconds = puts_done.elapsed().as_secs_f64();
    let memory_at_end = server.memory();

    drop(senders);
    for reader in &readers {
        reader.abort();
    }
    let events_delivered = match drained {
        Ok(()) => events_expected,
        Err(got) => got,
    };
    let latencies = tally.latencies.lock().expect("latency lock").clone();
    drop(server);
    Ok(FanOutResult {
        shape: shape.name(),
        watchers: size.watchers,
        throughput_fraction: puts_with_watchers.throughput / puts_without_watchers.throughput,
        puts_without_watchers,
        puts_with_watchers,
        events_expected,
        events_delivered,
        drain_seconds,
        delivery_p50_us: latencies.value_at_quantile(0.5),
        delivery_p99_us: latencies.value_at_quantile(0.99),
        memory_at_start,
        memory_with_watchers,
        memory_at_end,
    })
}

/// The end of the range of every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Waits until `counter` reaches `goal`; on timeout returns the count reached.
async fn wait_for(counter: &AtomicU64, goal: u64, timeout: Duration) -> Result<(), u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = counter.load(Ordering::Relaxed);
        if now >= goal {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(now);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Counts created watchers and delivered events of one stream and records their latencies.
async fn read_stream(
    mut responses: tonic::Streaming<etch_server::proto::etcdserverpb::WatchResponse>,
    tally: Arc<Tally>,
) {
    let mut local = load::histogram();
    while let Ok(Some(resp)) = responses.message().await {
        if resp.created {
            tally.created.fetch_add(1, Ordering::Relaxed);
        }
        if resp.events.is_empty() {
            continue;
        }
        let now = tally.epoch.elapsed().as_nanos() as u64;
        for event in &resp.events {
            let stamp = event
                .kv
                .as_ref()
                .and_then(|kv| load::stamp_of(&kv.value))
                .unwrap_or(now);
            local.saturating_record((now.saturating_sub(stamp) / 1000).max(1));
        }
        // Merge before counting, so a waiter that sees the count also sees the latencies.
        tally
            .latencies
            .lock()
            .expect("latency lock")
            .add(&local)
            .expect("same histogram bounds");
        local.reset();
        tally
            .delivered
            .fetch_add(resp.events.len() as u64, Ordering::Relaxed);
    }
}
