//! The client side of the multi-process fault tests (tests/cluster_faults.rs): concurrent gRPC
//! clients recording every operation in the history format of the linearizability checker
//! (`etch_replication::check`), watchers that follow every change across member crashes, and
//! the end-of-run checks (acknowledged writes present, watch streams complete and in order,
//! `HashKV` equal everywhere).
//!
//! Every request has a deadline; an answer that does not arrive in time, or any transport
//! error, is recorded as an unknown outcome (it may or may not have taken effect), and the
//! client moves on to the next member, as etcd's client does on a failed endpoint.

#![allow(dead_code)] // shared by several test binaries

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etch_replication::check::{self, Compare, KeyValue, Operation, Outcome, Request, Response};
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::lease_client::LeaseClient;
use etch_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etch_server::proto::etcdserverpb::watch_client::WatchClient;
use tonic::transport::Channel;

/// Longest a client waits for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// TTL of the leases the clients grant: longer than any run, so no lease expires by time (the
/// history must hold every write; an expiry would be a write outside it).
const LEASE_TTL: i64 = 3_600;

/// A gRPC channel to `url`, failing fast when nobody listens.
pub async fn channel(url: &str) -> Option<Channel> {
    let endpoint = Channel::from_shared(url.to_string()).ok()?;
    tokio::time::timeout(
        Duration::from_secs(2),
        endpoint
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect(),
    )
    .await
    .ok()?
    .ok()
}

/// The client URLs the workload may use, changed by the test when members come and go.
#[derive(Clone, Default)]
pub struct Endpoints(Arc<Mutex<Vec<String>>>);

impl Endpoints {
    /// Replaces the list.
    pub fn set(&self, urls: Vec<String>) {
        *self.0.lock().unwrap() = urls;
    }

    /// The `i`-th URL, round robin.
    fn pick(&self, i: usize) -> Option<String> {
        let urls = self.0.lock().unwrap();
        (!urls.is_empty()).then(|| urls[i % urls.len()].clone())
    }
}

/// What the clients record, shared by all of them.
pub struct Recorder {
    epoch: Instant,
    ops: Mutex<Vec<Operation>>,
    /// Serializable reads answered (checked for plausibility, not linearizability).
    pub serializable_reads: AtomicU64,
    stop: AtomicBool,
}

impl Recorder {
    /// An empty history whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            epoch: Instant::now(),
            ops: Mutex::new(Vec::new()),
            serializable_reads: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn record(&self, op: Operation) {
        self.ops.lock().unwrap().push(op);
    }

    /// Tells every client to finish its current operation and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The history so far.
    pub fn history(&self) -> Vec<Operation> {
        self.ops.lock().unwrap().clone()
    }
}

/// A deterministic generator per client.
struct Rng(u64);

impl Rng {
    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.step() % n
    }
}

/// The key `i` of the workload's key space.
pub fn key(i: u64) -> Vec<u8> {
    format!("k/{i:02}").into_bytes()
}

/// The prefix of every workload key, and its range end.
pub const PREFIX: &[u8] = b"k/";
/// The range end of [`PREFIX`].
pub const PREFIX_END: &[u8] = b"k0";

/// What one client knows of a key from its own last look (for compare-and-swap guards).
#[derive(Clone, Default)]
struct Seen {
    value: Option<Vec<u8>>,
    version: u64,
    mod_revision: u64,
}

/// One client: a loop of random operations on `keys` keys until the recorder stops.
pub async fn client(id: u64, keys: u64, endpoints: Endpoints, rec: Arc<Recorder>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut member = id as usize;
    let mut conn: Option<Channel> = None;
    let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut leases: Vec<i64> = Vec::new();
    let mut n = 0u64;
    while !rec.stopped() {
        let ch = match &conn {
            Some(c) => c.clone(),
            None => {
                let Some(url) = endpoints.pick(member) else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                match channel(&url).await {
                    Some(c) => {
                        conn = Some(c.clone());
                        c
                    }
                    None => {
                        member += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        n += 1;
        let k = rng.below(keys);
        let value = format!("c{id}-{n}").into_bytes();
        let roll = rng.below(100);
        let invoke = rec.now();
        let (request, outcome) = if roll < 30 {
            let request = Request::Put {
                key: key(k),
                value: value.clone(),
            };
            (request, put(&ch, key(k), value, 0).await)
        } else if roll < 55 {
            let out = get(&ch, key(k), false).await;
            if let Some(Response::Get { kv, .. }) = returned(&out) {
                seen.insert(k, seen_of(kv));
            }
            (Request::Get { key: key(k) }, out)
        } else if roll < 70 {
            let s = seen.get(&k).cloned().unwrap_or_default();
            let compare = match rng.below(3) {
                0 => Compare::Version(s.version),
                1 => Compare::ModRevision(s.mod_revision),
                _ => match s.value {
                    Some(v) => Compare::Value(v),
                    None => Compare::Version(0),
                },
            };
            let out = txn(&ch, key(k), &compare, value.clone()).await;
            let request = Request::Txn {
                key: key(k),
                compare,
                value,
            };
            (request, out)
        } else if roll < 80 {
            // Serializable: may be stale, so not in the history; it must still answer.
            if let Outcome::Returned { .. } = get(&ch, key(k), true).await {
                rec.serializable_reads.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        } else if roll < 85 || leases.is_empty() {
            let lease = (id as i64 + 1) * 1_000_000 + n as i64;
            let out = lease_grant(&ch, lease).await;
            leases.push(lease);
            (Request::LeaseGrant { lease }, out)
        } else if roll < 92 {
            let lease = leases[rng.below(leases.len() as u64) as usize];
            let request = Request::LeasePut {
                key: key(k),
                value: value.clone(),
                lease,
            };
            (request, put(&ch, key(k), value, lease).await)
        } else if roll < 96 {
            let lease = leases[rng.below(leases.len() as u64) as usize];
            (
                Request::LeaseKeepAlive { lease },
                keep_alive(&ch, lease).await,
            )
        } else {
            let lease = leases[rng.below(leases.len() as u64) as usize];
            (
                Request::LeaseRevoke { lease },
                lease_revoke(&ch, lease).await,
            )
        };
        let unknown = matches!(outcome, Outcome::Unknown);
        rec.record(Operation {
            client: id,
            invoke,
            request,
            outcome: stamp(outcome, &rec, invoke),
        });
        if unknown {
            // Another member next time, on a fresh connection.
            conn = None;
            member += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Puts the return time on a returned outcome (the helpers leave it 0), at least `invoke`.
fn stamp(outcome: Outcome, rec: &Recorder, invoke: u64) -> Outcome {
    match outcome {
        Outcome::Returned { response, .. } => Outcome::Returned {
            at: rec.now().max(invoke),
            response,
        },
        Outcome::Unknown => Outcome::Unknown,
    }
}

fn returned(outcome: &Outcome) -> Option<&Response> {
    match outcome {
        Outcome::Returned { response, .. } => Some(response),
        Outcome::Unknown => None,
    }
}

fn seen_of(kv: &Option<KeyValue>) -> Seen {
    match kv {
        Some(kv) => Seen {
            value: Some(kv.value.clone()),
            version: kv.version,
            mod_revision: kv.mod_revision,
        },
        None => Seen::default(),
    }
}

fn kv_of(kv: &etch_server::proto::mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        value: kv.value.clone(),
        create_revision: kv.create_revision as u64,
        mod_revision: kv.mod_revision as u64,
        version: kv.version as u64,
    }
}

fn revision(header: &Option<pb::ResponseHeader>) -> u64 {
    header.as_ref().map_or(0, |h| h.revision as u64)
}

fn done(response: Response) -> Outcome {
    Outcome::Returned { at: 0, response }
}

/// Why a request got no answer to record.
enum Failed {
    /// The server said the lease does not exist: a definite answer, nothing changed.
    LeaseNotFound,
    /// A timeout, a transport error or any other error: the outcome is unknown.
    Unknown,
}

/// Runs a request with [`REQUEST_TIMEOUT`].
async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, Failed> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(status)) if status.message().contains("lease not found") => {
            Err(Failed::LeaseNotFound)
        }
        _ => Err(Failed::Unknown),
    }
}

async fn put(ch: &Channel, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Outcome {
    let request = pb::PutRequest {
        key,
        value,
        lease,
        ..Default::default()
    };
    match bounded(KvClient::new(ch.clone()).put(request)).await {
        Ok(r) => done(Response::Put {
            revision: revision(&r.into_inner().header),
        }),
        Err(Failed::LeaseNotFound) if lease != 0 => done(Response::LeaseNotFound),
        Err(_) => Outcome::Unknown,
    }
}

async fn get(ch: &Channel, key: Vec<u8>, serializable: bool) -> Outcome {
    let request = pb::RangeRequest {
        key,
        serializable,
        ..Default::default()
    };
    match bounded(KvClient::new(ch.clone()).range(request)).await {
        Ok(r) => {
            let r = r.into_inner();
            done(Response::Get {
                revision: revision(&r.header),
                kv: r.kvs.first().map(kv_of),
            })
        }
        Err(_) => Outcome::Unknown,
    }
}

async fn txn(ch: &Channel, key: Vec<u8>, compare: &Compare, value: Vec<u8>) -> Outcome {
    let (target, union) = match compare {
        Compare::Version(v) => (CompareTarget::Version, TargetUnion::Version(*v as i64)),
        Compare::ModRevision(r) => (CompareTarget::Mod, TargetUnion::ModRevision(*r as i64)),
        Compare::Value(v) => (CompareTarget::Value, TargetUnion::Value(v.clone())),
    };
    let request = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: CompareResult::Equal as i32,
            target: target as i32,
            key: key.clone(),
            target_union: Some(union),
            ..Default::default()
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: key.clone(),
                value,
                ..Default::default()
            })),
        }],
        failure: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                key,
                ..Default::default()
            })),
        }],
    };
    match bounded(KvClient::new(ch.clone()).txn(request)).await {
        Ok(r) => {
            let r = r.into_inner();
            let kv = if r.succeeded {
                None
            } else {
                match r.responses.first().and_then(|op| op.response.as_ref()) {
                    Some(pb::response_op::Response::ResponseRange(range)) => {
                        range.kvs.first().map(kv_of)
                    }
                    _ => return Outcome::Unknown,
                }
            };
            done(Response::Txn {
                revision: revision(&r.header),
                succeeded: r.succeeded,
                kv,
            })
        }
        Err(_) => Outcome::Unknown,
    }
}

async fn lease_grant(ch: &Channel, lease: i64) -> Outcome {
    let request = pb::LeaseGrantRequest {
        ttl: LEASE_TTL,
        id: lease,
    };
    match bounded(LeaseClient::new(ch.clone()).lease_grant(request)).await {
        Ok(r) if r.get_ref().error.is_empty() => done(Response::LeaseGrant),
        _ => Outcome::Unknown,
    }
}

async fn lease_revoke(ch: &Channel, lease: i64) -> Outcome {
    let request = pb::LeaseRevokeRequest { id: lease };
    match bounded(LeaseClient::new(ch.clone()).lease_revoke(request)).await {
        Ok(r) => done(Response::LeaseRevoke {
            revision: revision(&r.into_inner().header),
        }),
        Err(Failed::LeaseNotFound) => done(Response::LeaseNotFound),
        Err(_) => Outcome::Unknown,
    }
}

async fn keep_alive(ch: &Channel, lease: i64) -> Outcome {
    let once = tokio_stream::once(pb::LeaseKeepAliveRequest { id: lease });
    let call = async {
        let mut stream = LeaseClient::new(ch.clone())
            .lease_keep_alive(once)
            .await?
            .into_inner();
        stream.message().await
    };
    match bounded(call).await {
        Ok(Some(r)) if r.ttl > 0 => done(Response::LeaseKeepAlive),
        Ok(Some(_)) => done(Response::LeaseNotFound),
        Err(Failed::LeaseNotFound) => done(Response::LeaseNotFound),
        _ => Outcome::Unknown,
    }
}

/// Counts of a checked history.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checked {
    /// Operations in the history.
    pub operations: usize,
    /// Of which answered.
    pub answered: usize,
    /// Acknowledged writes (puts, successful txns, revocations that deleted keys).
    pub acknowledged_writes: usize,
    /// Acknowledged writes missing from the final change log (target: 0).
    pub lost: usize,
}

/// One change of the store as a watch from revision 1 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The revision.
    pub revision: i64,
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for a delete).
    pub value: Vec<u8>,
    /// Whether it deleted the key.
    pub delete: bool,
}

/// Follows every change under [`PREFIX`] from revision 1 on the members of `endpoints`,
/// resuming after the last change seen on another member when its stream breaks; stops when
/// it has seen `until` (set by the test at the end) or the deadline passes.
pub struct Watcher {
    /// The changes in the order received.
    pub changes: Arc<Mutex<Vec<Change>>>,
    /// Streams that were opened (1 + resumptions).
    pub streams: Arc<AtomicU64>,
    until: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Starts following, first on member `start` of `endpoints`.
    pub fn start(start: usize, endpoints: Endpoints) -> Watcher {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::new(AtomicU64::new(0));
        let until = Arc::new(AtomicU64::new(u64::MAX));
        let task = tokio::spawn(follow(
            start,
            endpoints,
            Arc::clone(&changes),
            Arc::clone(&streams),
            Arc::clone(&until),
        ));
        Watcher {
            changes,
            streams,
            until,
            task,
        }
    }

    /// Waits (up to `within`) until the watcher has seen revision `revision`, then stops it;
    /// returns the changes.
    pub async fn finish(self, revision: i64, within: Duration) -> Vec<Change> {
        self.until.store(revision as u64, Ordering::SeqCst);
        let _ = tokio::time::timeout(within, self.task).await;
        let changes = self.changes.lock().unwrap();
        changes.clone()
    }
}

async fn follow(
    mut member: usize,
    endpoints: Endpoints,
    changes: Arc<Mutex<Vec<Change>>>,
    streams: Arc<AtomicU64>,
    until: Arc<AtomicU64>,
) {
    let reached = |changes: &Arc<Mutex<Vec<Change>>>| {
        let last = changes.lock().unwrap().last().map_or(0, |c| c.revision);
        last as u64 >= until.load(Ordering::SeqCst)
    };
    loop {
        if reached(&changes) {
            return;
        }
        let start = changes.lock().unwrap().last().map_or(1, |c| c.revision + 1);
        let Some(url) = endpoints.pick(member) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        member += 1;
        let Some(ch) = channel(&url).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: PREFIX.to_vec(),
                    range_end: PREFIX_END.to_vec(),
                    start_revision: start,
                    ..Default::default()
                },
            )),
        };
        let _ = tx.send(create).await;
        let mut client = WatchClient::new(ch);
        let open = client.watch(tokio_stream::wrappers::ReceiverStream::new(rx));
        let Ok(Ok(response)) = tokio::time::timeout(REQUEST_TIMEOUT, open).await else {
            continue;
        };
        streams.fetch_add(1, Ordering::Relaxed);
        let mut stream = response.into_inner();
        loop {
            if reached(&changes) {
                return;
            }
            // A quiet stream is polled so the stop condition is seen; a stream that stays
            // quiet while a member is partitioned away is given up for another member.
            let next = tokio::time::timeout(Duration::from_secs(3), stream.message()).await;
            let Ok(Ok(Some(msg))) = next else {
                break;
            };
            if msg.canceled {
                break;
            }
            let mut list = changes.lock().unwrap();
            for ev in msg.events {
                let Some(kv) = ev.kv else { continue };
                list.push(Change {
                    revision: kv.mod_revision,
                    key: kv.key,
                    value: kv.value,
                    delete: ev.r#type == 1,
                });
            }
        }
        drop(tx);
    }
}

/// Checks a watcher's changes are in revision order with no repeats: revisions never go back,
/// and a revision repeats only for distinct keys (a lease revocation deletes several keys at
/// one revision).
pub fn assert_in_order(changes: &[Change], who: &str) {
    let mut seen = std::collections::BTreeSet::new();
    for pair in changes.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(a.revision <= b.revision, "{who}: change {b:?} after {a:?}");
    }
    for c in changes {
        assert!(
            seen.insert((c.revision, c.key.clone())),
            "{who}: change {c:?} delivered twice"
        );
    }
}

/// Runs the linearizability checker and asserts it finds the history linearizable; then
/// checks that every acknowledged write is in `log` (the complete change log) at the revision
/// it was acknowledged with, and returns the counts.
pub fn check_history(history: &[Operation], log: &[Change]) -> Checked {
    let verdict = check::check(history, &check::Config::default()).expect("a well-formed history");
    assert_eq!(
        verdict,
        check::Verdict::Linearizable,
        "the recorded history is not linearizable"
    );
    let at: BTreeMap<(i64, &[u8]), &Change> = log
        .iter()
        .map(|c| ((c.revision, c.key.as_slice()), c))
        .collect();
    let mut counts = Checked {
        operations: history.len(),
        ..Checked::default()
    };
    for op in history {
        let Outcome::Returned { response, .. } = &op.outcome else {
            continue;
        };
        counts.answered += 1;
        let write = match (&op.request, response) {
            (Request::Put { key, value }, Response::Put { revision })
            | (Request::LeasePut { key, value, .. }, Response::Put { revision }) => {
                Some((key, value, *revision))
            }
            (
                Request::Txn { key, value, .. },
                Response::Txn {
                    revision,
                    succeeded: true,
                    ..
                },
            ) => Some((key, value, *revision)),
            _ => None,
        };
        if let Some((key, value, revision)) = write {
            counts.acknowledged_writes += 1;
            let found = at
                .get(&(revision as i64, key.as_slice()))
                .is_some_and(|c| !c.delete && &c.value == value);
            if !found {
                counts.lost += 1;
                eprintln!("acknowledged write lost: {key:?} = {value:?} at revision {revision}");
            }
        }
    }
    counts
}

/// `HashKV` of every member of `urls` at `revision`, once each has applied it.
pub async fn hashes(urls: &[String], revision: i64) -> Vec<u32> {
    let mut out = Vec::new();
    for url in urls {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = async {
                let ch = channel(url).await?;
                let r = MaintenanceClient::new(ch)
                    .hash_kv(pb::HashKvRequest { revision })
                    .await
                    .ok()?;
                Some(r.into_inner().hash)
            };
            if let Some(h) = attempt.await {
                out.push(h);
                break;
            }
            assert!(Instant::now() < deadline, "{url}: no HashKV at {revision}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

/// The revision a linearizable read on `url` reports (the cluster's current revision).
pub async fn current_revision(url: &str) -> Option<i64> {
    let ch = channel(url).await?;
    let r = bounded(KvClient::new(ch).range(pb::RangeRequest {
        key: b"probe".to_vec(),
        ..Default::default()
    }))
    .await
    .ok()?;
    Some(r.into_inner().header?.revision)
}
