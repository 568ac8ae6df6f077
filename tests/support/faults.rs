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
    /// The history, and beside each operation what the history format has no place for.
    ops: Mutex<(Vec<Operation>, Vec<Note>)>,
    /// Serializable reads answered (checked for plausibility, not linearizability).
    pub serializable_reads: AtomicU64,
    stop: AtomicBool,
    /// What the test did when (ns since the start), for reading a failure.
    marks: Mutex<Vec<(u64, String)>>,
}

impl Recorder {
    /// An empty history whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            epoch: Instant::now(),
            ops: Mutex::new((Vec::new(), Vec::new())),
            serializable_reads: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            marks: Mutex::new(Vec::new()),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn record(&self, op: Operation, note: Note) {
        let mut ops = self.ops.lock().unwrap();
        ops.0.push(op);
        ops.1.push(note);
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
        self.ops.lock().unwrap().0.clone()
    }

    /// Notes that the test did `what` now (a fault, a membership change), on the history's
    /// clock.
    pub fn mark(&self, what: impl Into<String>) {
        let at = self.now();
        self.marks.lock().unwrap().push((at, what.into()));
    }

    /// The test's marks so far, each with its time in ms on the history's clock, one a line.
    pub fn marks(&self) -> String {
        let marks = self.marks.lock().unwrap();
        marks
            .iter()
            .map(|(at, what)| format!("  {:>9.1} ms: {what}\n", *at as f64 / 1e6))
            .collect()
    }

    /// The note of every operation of [`Recorder::history`], by the same index.
    pub fn notes(&self) -> Vec<Note> {
        self.ops.lock().unwrap().1.clone()
    }
}

/// What the checker's history format does not hold about one operation, for reading a failure:
/// the member that was asked and, when the outcome is unknown, why.
#[derive(Clone, Debug, Default)]
pub struct Note {
    /// The client URL of the member the request went to.
    pub member: String,
    /// The error or timeout that left the outcome unknown.
    pub error: Option<String>,
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
    let mut conn: Option<(Channel, String)> = None;
    let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut leases: Vec<i64> = Vec::new();
    let mut n = 0u64;
    while !rec.stopped() {
        let (ch, url) = match &conn {
            Some(c) => c.clone(),
            None => {
                let Some(url) = endpoints.pick(member) else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                match channel(&url).await {
                    Some(c) => {
                        conn = Some((c.clone(), url.clone()));
                        (c, url)
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
        let (request, (outcome, error)) = if roll < 30 {
            let request = Request::Put {
                key: key(k),
                value: value.clone(),
            };
            (request, put(&ch, key(k), value, 0).await)
        } else if roll < 55 {
            let out = get(&ch, key(k), false).await;
            if let Some(Response::Get { kv, .. }) = returned(&out.0) {
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
            if let (Outcome::Returned { .. }, _) = get(&ch, key(k), true).await {
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
        rec.record(
            Operation {
                client: id,
                invoke,
                request,
                outcome: stamp(outcome, &rec, invoke),
            },
            Note { member: url, error },
        );
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

fn done(response: Response) -> Answer {
    (Outcome::Returned { at: 0, response }, None)
}

/// An outcome, and when it is unknown, why (for [`Note::error`]).
type Answer = (Outcome, Option<String>);

fn unknown(why: Failed) -> Answer {
    let why = match why {
        Failed::LeaseNotFound => "lease not found".to_string(),
        Failed::Unknown(why) => why,
    };
    (Outcome::Unknown, Some(why))
}

/// Why a request got no answer to record.
enum Failed {
    /// The server said the lease does not exist: a definite answer, nothing changed.
    LeaseNotFound,
    /// A timeout, a transport error or any other error (described): the outcome is unknown.
    Unknown(String),
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
        Ok(Err(status)) => Err(Failed::Unknown(format!(
            "{:?}: {}",
            status.code(),
            status.message()
        ))),
        Err(_) => Err(Failed::Unknown(format!("no answer in {REQUEST_TIMEOUT:?}"))),
    }
}

async fn put(ch: &Channel, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Answer {
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
        Err(e) => unknown(e),
    }
}

async fn get(ch: &Channel, key: Vec<u8>, serializable: bool) -> Answer {
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
        Err(e) => unknown(e),
    }
}

async fn txn(ch: &Channel, key: Vec<u8>, compare: &Compare, value: Vec<u8>) -> Answer {
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
                    _ => return unknown(Failed::Unknown("a txn answer without its range".into())),
                }
            };
            done(Response::Txn {
                revision: revision(&r.header),
                succeeded: r.succeeded,
                kv,
            })
        }
        Err(e) => unknown(e),
    }
}

async fn lease_grant(ch: &Channel, lease: i64) -> Answer {
    let request = pb::LeaseGrantRequest {
        ttl: LEASE_TTL,
        id: lease,
    };
    match bounded(LeaseClient::new(ch.clone()).lease_grant(request)).await {
        Ok(r) if r.get_ref().error.is_empty() => done(Response::LeaseGrant),
        Ok(r) => unknown(Failed::Unknown(format!(
            "grant error {}",
            r.get_ref().error
        ))),
        Err(e) => unknown(e),
    }
}

async fn lease_revoke(ch: &Channel, lease: i64) -> Answer {
    let request = pb::LeaseRevokeRequest { id: lease };
    match bounded(LeaseClient::new(ch.clone()).lease_revoke(request)).await {
        Ok(r) => done(Response::LeaseRevoke {
            revision: revision(&r.into_inner().header),
        }),
        Err(Failed::LeaseNotFound) => done(Response::LeaseNotFound),
        Err(e) => unknown(e),
    }
}

async fn keep_alive(ch: &Channel, lease: i64) -> Answer {
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
        Ok(None) => unknown(Failed::Unknown("the keep-alive stream ended".into())),
        Err(Failed::LeaseNotFound) => done(Response::LeaseNotFound),
        Err(e) => unknown(e),
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
///
/// On a violation the panic message shows what happened around it (see [`explain`]): `notes`
/// are the history's notes ([`Recorder::notes`]); `context` is printed after it (what the test
/// did when, which member has which URL).
pub fn check_history(
    history: &[Operation],
    notes: &[Note],
    log: &[Change],
    context: &str,
) -> Checked {
    let verdict = check::check(history, &check::Config::default()).expect("a well-formed history");
    if verdict != check::Verdict::Linearizable {
        panic!(
            "the recorded history is not linearizable: {verdict:?}\n{}{context}",
            explain(&verdict, history, notes, log)
        );
    }
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

/// Most operations of one key shown from the end of the longest prefix the search built.
const SHOWN_PLACED: usize = 16;
/// Most not-yet-placed operations shown after them.
const SHOWN_OPEN: usize = 24;
/// Most log changes of the key shown.
const SHOWN_CHANGES: usize = 40;
/// Most lines of any other list.
const SHOWN_OTHER: usize = 12;

/// A readable account of a failed check, bounded in length: for a key or lease, the last
/// operations of the longest order the search could build, then the operations it could not
/// place (earliest invoked first), each with its times (ms since the start), the member asked,
/// what it asked and what it was told; the key's changes in the final change log near the
/// revisions those operations report, each with the operation that wrote it; and, over the whole
/// history, values the log holds twice (a write applied twice) and values the log holds although
/// their write was answered as not made.
pub fn explain(
    verdict: &check::Verdict,
    history: &[Operation],
    notes: &[Note],
    log: &[Change],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let line = |i: usize| describe(i, history, notes);
    // Which operation wrote each value (values are unique per client and operation).
    let writer: BTreeMap<&[u8], usize> = history
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match &op.request {
            Request::Put { value, .. }
            | Request::LeasePut { value, .. }
            | Request::Txn { value, .. } => Some((value.as_slice(), i)),
            _ => None,
        })
        .collect();
    let ops_and_prefix = match verdict {
        check::Verdict::NotLinearizable(check::Violation::Key {
            ops,
            longest_prefix,
            ..
        })
        | check::Verdict::NotLinearizable(check::Violation::Lease {
            ops,
            longest_prefix,
            ..
        }) => Some((ops, longest_prefix)),
        _ => None,
    };
    if let Some((ops, prefix)) = ops_and_prefix {
        let placed: std::collections::BTreeSet<usize> = prefix.iter().copied().collect();
        let _ = writeln!(
            out,
            "{} operations, the longest order placed {}; its last {}:",
            ops.len(),
            prefix.len(),
            SHOWN_PLACED.min(prefix.len())
        );
        let from = prefix.len().saturating_sub(SHOWN_PLACED);
        for (n, &i) in prefix.iter().enumerate().skip(from) {
            let _ = writeln!(out, "  placed {n:>4}: {}", line(i));
        }
        let mut open: Vec<usize> = ops
            .iter()
            .copied()
            .filter(|i| !placed.contains(i))
            .collect();
        open.sort_by_key(|&i| history[i].invoke);
        let _ = writeln!(
            out,
            "not placed ({}), the first {} by invocation:",
            open.len(),
            SHOWN_OPEN.min(open.len())
        );
        for &i in open.iter().take(SHOWN_OPEN) {
            let _ = writeln!(out, "  open: {}", line(i));
        }
        // The key's changes between the lowest and highest revision the lines above report.
        let shown: Vec<usize> = prefix[from..]
            .iter()
            .chain(open.iter().take(SHOWN_OPEN))
            .copied()
            .collect();
        let revisions: Vec<u64> = shown
            .iter()
            .filter_map(|&i| reported_revision(&history[i].outcome))
            .collect();
        if let (Some(key), Some(&low), Some(&high)) = (
            shown.iter().find_map(|&i| history[i].request.key()),
            revisions.iter().min(),
            revisions.iter().max(),
        ) {
            let changes: Vec<&Change> = log
                .iter()
                .filter(|c| c.key == key && (low as i64..=high as i64).contains(&c.revision))
                .collect();
            let _ = writeln!(
                out,
                "the log's changes of {} at revisions {low}..={high} ({}):",
                String::from_utf8_lossy(key),
                changes.len()
            );
            for c in changes.iter().take(SHOWN_CHANGES) {
                let by = writer
                    .get(c.value.as_slice())
                    .map_or("?".to_string(), |i| format!("#{i}"));
                let what = if c.delete {
                    "deleted".to_string()
                } else {
                    format!("= {} (by {by})", String::from_utf8_lossy(&c.value))
                };
                let _ = writeln!(out, "  rev {:>6}: {what}", c.revision);
            }
        }
    } else {
        let _ = writeln!(out, "(no per-key order: a check across keys failed)");
        let involved: Vec<usize> = match verdict {
            check::Verdict::NotLinearizable(check::Violation::DuplicateRevision {
                ops, ..
            }) => {
                vec![ops.0, ops.1]
            }
            check::Verdict::NotLinearizable(check::Violation::RevisionWentBack {
                earlier,
                later,
            }) => vec![*earlier, *later],
            check::Verdict::NotLinearizable(check::Violation::RevisionBeforeStart {
                op, ..
            }) => vec![*op],
            _ => Vec::new(),
        };
        for i in involved {
            let _ = writeln!(out, "  {}", line(i));
        }
    }
    // Whole-history facts that explain most violations at once.
    let mut revisions_of: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
    for c in log.iter().filter(|c| !c.delete) {
        revisions_of.entry(&c.value).or_default().push(c.revision);
    }
    let twice: Vec<_> = revisions_of.iter().filter(|(_, r)| r.len() > 1).collect();
    let _ = writeln!(out, "values the log holds more than once: {}", twice.len());
    for (value, revisions) in twice.iter().take(SHOWN_OTHER) {
        let by = writer.get(*value).map_or("?".to_string(), |&i| line(i));
        let _ = writeln!(
            out,
            "  {} at revisions {revisions:?}, written by {by}",
            String::from_utf8_lossy(value)
        );
    }
    let denied: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            let not_made = matches!(
                &op.outcome,
                Outcome::Returned {
                    response: Response::LeaseNotFound
                        | Response::Txn {
                            succeeded: false,
                            ..
                        },
                    ..
                }
            );
            let value = match &op.request {
                Request::LeasePut { value, .. } | Request::Txn { value, .. } => Some(value),
                _ => None,
            };
            not_made && value.is_some_and(|v| revisions_of.contains_key(v.as_slice()))
        })
        .map(|(i, _)| i)
        .collect();
    let _ = writeln!(
        out,
        "writes answered as not made whose value is in the log: {}",
        denied.len()
    );
    for &i in denied.iter().take(SHOWN_OTHER) {
        let _ = writeln!(out, "  {}", line(i));
    }
    out
}

/// The revision an answer reports, if it is one that carries one.
fn reported_revision(outcome: &Outcome) -> Option<u64> {
    match outcome {
        Outcome::Returned { response, .. } => match response {
            Response::Put { revision }
            | Response::Get { revision, .. }
            | Response::Delete { revision, .. }
            | Response::Txn { revision, .. }
            | Response::LeaseRevoke { revision } => Some(*revision),
            Response::LeaseGrant | Response::LeaseKeepAlive | Response::LeaseNotFound => None,
        },
        Outcome::Unknown => None,
    }
}

/// One line for operation `i`: index, client, invocation and return (ms), member, request and
/// outcome.
fn describe(i: usize, history: &[Operation], notes: &[Note]) -> String {
    let op = &history[i];
    let ms = |t: u64| format!("{:.1}", t as f64 / 1e6);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let kv = |kv: &Option<KeyValue>| match kv {
        Some(kv) => format!(
            "{} (create {}, mod {}, version {})",
            text(&kv.value),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        None => "absent".to_string(),
    };
    let request = match &op.request {
        Request::Put { key, value } => format!("put {} = {}", text(key), text(value)),
        Request::Get { key } => format!("get {}", text(key)),
        Request::Delete { key } => format!("delete {}", text(key)),
        Request::Txn {
            key,
            compare,
            value,
        } => {
            let guard = match compare {
                Compare::Version(v) => format!("version == {v}"),
                Compare::ModRevision(r) => format!("mod == {r}"),
                Compare::Value(v) => format!("value == {}", text(v)),
            };
            format!("txn if {guard} then put {} = {}", text(key), text(value))
        }
        Request::LeasePut { key, value, lease } => {
            format!("put {} = {} with lease {lease}", text(key), text(value))
        }
        Request::LeaseGrant { lease } => format!("grant lease {lease}"),
        Request::LeaseRevoke { lease } => format!("revoke lease {lease}"),
        Request::LeaseKeepAlive { lease } => format!("keep lease {lease} alive"),
    };
    let (end, outcome) = match &op.outcome {
        Outcome::Returned { at, response } => (
            ms(*at),
            match response {
                Response::Put { revision } => format!("put at rev {revision}"),
                Response::Get { revision, kv: v } => format!("rev {revision}: {}", kv(v)),
                Response::Delete { revision, deleted } => {
                    format!("rev {revision}, deleted: {deleted}")
                }
                Response::Txn {
                    revision,
                    succeeded: true,
                    ..
                } => format!("succeeded at rev {revision}"),
                Response::Txn {
                    revision,
                    succeeded: false,
                    kv: v,
                } => format!("failed at rev {revision}, saw {}", kv(v)),
                Response::LeaseGrant => "granted".to_string(),
                Response::LeaseRevoke { revision } => format!("revoked at rev {revision}"),
                Response::LeaseKeepAlive => "kept alive".to_string(),
                Response::LeaseNotFound => "lease not found".to_string(),
            },
        ),
        Outcome::Unknown => ("?".to_string(), "UNKNOWN".to_string()),
    };
    let note = notes.get(i).cloned().unwrap_or_default();
    let why = note.error.map_or(String::new(), |e| format!(" ({e})"));
    format!(
        "#{i} c{} [{} .. {end}] via {}: {request} -> {outcome}{why}",
        op.client,
        ms(op.invoke),
        note.member
    )
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
