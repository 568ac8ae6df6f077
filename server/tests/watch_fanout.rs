//! Watch fan-out through the shared dispatcher: many watches on shared prefixes, distinct
//! keys and ranges, with filters, prev_kv and past start revisions, against a model of the
//! writes (every watch sees exactly its events, in order); and a stream whose client stops
//! reading, which is switched to catching up and rejoins the shared path with no gap and no
//! duplicate.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::watch_stream::WatchStream as Stream;
use common::TestServer;
use etch_engine::Range;
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::request_op::Request as Op;
use etch_server::proto::etcdserverpb::watch_request::RequestUnion;
use etch_server::proto::mvccpb::event::EventType;
use tokio_stream::StreamExt;

impl Stream {
    async fn next_response(&mut self) -> pb::WatchResponse {
        self.next_within(Duration::from_secs(20)).await
    }

    /// Creates a watch; returns its id and the revision the creation reported.
    async fn create_watch(&mut self, create: pb::WatchCreateRequest) -> (i64, i64) {
        self.send(RequestUnion::CreateRequest(create)).await;
        let resp = self.next_response().await;
        assert!(resp.created && !resp.canceled, "{resp:?}");
        (resp.watch_id, resp.header.unwrap().revision)
    }
}

/// One change as a watch reports it: revision, key, put?, value, previous value.
type Seen = (i64, String, bool, String, Option<String>);

/// A change made by the test.
#[derive(Clone, Debug)]
struct Write {
    revision: i64,
    key: String,
    put: bool,
    value: String,
}

/// What a watch asked for.
#[derive(Clone, Debug)]
struct Asked {
    range: Range,
    from: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
}

impl Asked {
    fn create_request(&self, start_revision: i64) -> pb::WatchCreateRequest {
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(pb::watch_create_request::FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(pb::watch_create_request::FilterType::Nodelete as i32);
        }
        pb::WatchCreateRequest {
            key: self.range.start().to_vec(),
            range_end: self.range.end().to_vec(),
            start_revision,
            prev_kv: self.prev_kv,
            filters,
            ..Default::default()
        }
    }

    /// What the watch must see, given every write in revision order.
    fn expected(&self, writes: &[Write]) -> Vec<Seen> {
        let mut state: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for w in writes {
            let prev = if w.put {
                state.insert(w.key.clone(), w.value.clone())
            } else {
                state.remove(&w.key)
            };
            let wanted = if w.put { !self.no_put } else { !self.no_delete };
            if w.revision >= self.from && wanted && self.range.contains(w.key.as_bytes()) {
                let value = if w.put {
                    w.value.clone()
                } else {
                    String::new()
                };
                out.push((
                    w.revision,
                    w.key.clone(),
                    w.put,
                    value,
                    prev.filter(|_| self.prev_kv),
                ));
            }
        }
        out
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Reads `stream` until a progress response reports `target` or later; returns what each
/// watch saw.
async fn collect_until(stream: &mut Stream, target: i64) -> BTreeMap<i64, Vec<Seen>> {
    let mut seen: BTreeMap<i64, Vec<Seen>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    stream
        .send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
        .await;
    loop {
        assert!(Instant::now() < deadline, "watches never caught up");
        let resp = stream.next_response().await;
        assert!(!resp.canceled, "{resp:?}");
        if resp.watch_id == -1 {
            if resp.header.unwrap().revision >= target {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            stream
                .send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
                .await;
            continue;
        }
        let list = seen.entry(resp.watch_id).or_default();
        for ev in resp.events {
            let kv = ev.kv.unwrap();
            let put = ev.r#type == EventType::Put as i32;
            list.push((
                kv.mod_revision,
                text(&kv.key),
                put,
                text(&kv.value),
                ev.prev_kv.map(|p| text(&p.value)),
            ));
        }
    }
}

/// Runs `ops` writes from one client: puts and deletes on `keys`; returns what changed.
async fn writer(server: &TestServer, seed: u64, keys: Vec<String>, ops: usize) -> Vec<Write> {
    let mut kv = server.kv().await;
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut writes = Vec::new();
    for i in 0..ops {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = keys[(x >> 33) as usize % keys.len()].clone();
        if (x >> 20).is_multiple_of(5) {
            let resp = kv
                .delete_range(pb::DeleteRangeRequest {
                    key: key.clone().into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if resp.deleted > 0 {
                writes.push(Write {
                    revision: resp.header.unwrap().revision,
                    key,
                    put: false,
                    value: String::new(),
                });
            }
        } else {
            let value = format!("{seed}-{i}");
            let resp = kv
                .put(pb::PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            writes.push(Write {
                revision: resp.header.unwrap().revision,
                key,
                put: true,
                value,
            });
        }
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watches_see_exactly_their_events() {
    let server = TestServer::start().await;
    let node = server.handle.as_ref().unwrap().node().clone();
    let keys: Vec<String> = (0..24)
        .map(|i| format!("{}/{i:02}", ["f", "g", "h"][i % 3]))
        .collect();
    // Phase 1 writes, so that later watches can start in the past.
    let mut writes = writer(&server, 1, keys.clone(), 60).await;
    let past = writes[10].revision;

    // 8 streams, each with distinct single keys, two shared prefixes (one filtered, one with
    // prev_kv), a key range, from-key, and one watch replaying from the past.
    let mut streams = Vec::new();
    let mut asked: Vec<BTreeMap<i64, Asked>> = Vec::new();
    for s in 0..8usize {
        let mut stream = Stream::open(&server).await;
        let mut mine = BTreeMap::new();
        let mut specs = Vec::new();
        for j in 0..4 {
            specs.push((
                Range::key(&keys[(s * 3 + j * 5) % keys.len()]),
                false,
                false,
                false,
            ));
        }
        specs.push((Range::prefix("f/"), false, false, false));
        specs.push((Range::prefix("f/"), true, false, true));
        specs.push((Range::prefix("g/"), false, true, s % 2 == 0));
        specs.push((Range::between("f/05", "h/10"), false, false, false));
        specs.push((Range::from_key("h/"), false, false, false));
        for (range, no_put, no_delete, prev_kv) in specs {
            let mut a = Asked {
                range,
                from: 0,
                no_put,
                no_delete,
                prev_kv,
            };
            let (id, rev) = stream.create_watch(a.create_request(0)).await;
            a.from = rev + 1;
            mine.insert(id, a);
        }
        let mut replay = Asked {
            range: Range::prefix(if s % 2 == 0 { "f/" } else { "h/" }),
            from: past,
            no_put: false,
            no_delete: false,
            prev_kv: s % 3 == 0,
        };
        let (id, _) = stream.create_watch(replay.create_request(past)).await;
        replay.from = past;
        mine.insert(id, replay);
        streams.push(stream);
        asked.push(mine);
    }
    // Readers keep up while 4 writers run concurrently.
    let mut readers = Vec::new();
    let (target_tx, target_rx) = tokio::sync::watch::channel(0i64);
    for mut stream in streams {
        let mut target = target_rx.clone();
        readers.push(tokio::spawn(async move {
            let mut seen: BTreeMap<i64, Vec<Seen>> = BTreeMap::new();
            // Read events as they come; once the writers are done, read to the target.
            loop {
                tokio::select! {
                    changed = target.changed() => {
                        changed.unwrap();
                        let t = *target.borrow();
                        for (id, more) in collect_until(&mut stream, t).await {
                            seen.entry(id).or_default().extend(more);
                        }
                        return (seen, stream);
                    }
                    resp = stream.rx.next() => {
                        let resp = resp.unwrap().unwrap();
                        let list = seen.entry(resp.watch_id).or_default();
                        for ev in resp.events {
                            let kv = ev.kv.unwrap();
                            list.push((
                                kv.mod_revision,
                                text(&kv.key),
                                ev.r#type == EventType::Put as i32,
                                text(&kv.value),
                                ev.prev_kv.map(|p| text(&p.value)),
                            ));
                        }
                    }
                }
            }
        }));
    }
    // Four writers on their own connections, interleaved.
    let phase2: Vec<_> = (0..4u64)
        .map(|w| writer(&server, 10 + w, keys.clone(), 80))
        .collect();
    for more in futures_util::future::join_all(phase2).await {
        writes.extend(more);
    }
    writes.sort_by_key(|w| w.revision);
    let last = writes.last().unwrap().revision;
    target_tx.send(last).unwrap();
    let mut compared = 0;
    let mut open = Vec::new();
    for (reader, mine) in readers.into_iter().zip(&asked) {
        let (seen, stream) = reader.await.unwrap();
        open.push(stream);
        for (id, a) in mine {
            let expected = a.expected(&writes);
            let got = seen.get(id).cloned().unwrap_or_default();
            assert_eq!(got, expected, "watch {id}: {a:?}");
            compared += expected.len();
        }
    }
    assert!(compared > 1000, "the model test saw too little: {compared}");
    // Every watch, the replaying ones included, ended on the shared path.
    assert_eq!(node.dispatcher().synced_watches(), 8 * 10);
    drop((open, node));
    server.stop_and_check().await;
}

async fn txn_puts(
    kv: &mut pb::kv_client::KvClient<tonic::transport::Channel>,
    round: usize,
) -> i64 {
    let value = "s".repeat(1024);
    let ops = (0..50)
        .map(|i| pb::RequestOp {
            request: Some(Op::RequestPut(pb::PutRequest {
                key: format!("slow/{i:02}").into(),
                value: format!("{round}-{value}").into(),
                ..Default::default()
            })),
        })
        .collect();
    kv.txn(pb::TxnRequest {
        success: ops,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_catches_up_and_rejoins_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let node = server.handle.as_ref().unwrap().node().clone();
    let dispatcher = node.dispatcher().clone();
    let mut slow = Stream::open(&server).await;
    let (whole, from) = slow
        .create_watch(pb::WatchCreateRequest {
            key: "slow/".into(),
            range_end: etch_engine::prefix_end(b"slow/"),
            ..Default::default()
        })
        .await;
    let (single, _) = slow
        .create_watch(pb::WatchCreateRequest {
            key: "slow/07".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(dispatcher.synced_watches(), 2);
    // The client stops reading; transactions of 50 puts of 1 KiB go on until the stream's
    // mailbox overflows and its watches switch to catching up.
    let mut kv = server.kv().await;
    let switches = dispatcher.lag_switches();
    let started = Instant::now();
    let mut rounds = 0;
    while dispatcher.lag_switches() == switches {
        assert!(rounds < 2000, "the stream never fell behind");
        assert!(started.elapsed() < Duration::from_secs(60));
        txn_puts(&mut kv, rounds).await;
        rounds += 1;
    }
    // Writes go on while the stream is behind.
    for _ in 0..20 {
        txn_puts(&mut kv, rounds).await;
        rounds += 1;
    }
    let mut last = 0;
    // The client reads again: every revision exactly once, in order, for both watches.
    let mut revs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected_last = from + rounds as i64;
    while revs.get(&whole).and_then(|r| r.last()).copied() != Some(expected_last)
        || revs.get(&single).and_then(|r| r.last()).copied() != Some(expected_last)
    {
        assert!(Instant::now() < deadline, "slow stream never caught up");
        let resp = slow.next_response().await;
        assert!(!resp.canceled, "{resp:?}");
        let list = revs.entry(resp.watch_id).or_default();
        for ev in resp.events {
            let kv = ev.kv.unwrap();
            if resp.watch_id == whole && text(&kv.key) != "slow/00" {
                continue; // one event per revision is enough to check the sequence
            }
            list.push(kv.mod_revision);
            last = last.max(kv.mod_revision);
        }
    }
    let all: Vec<i64> = (from + 1..=expected_last).collect();
    assert_eq!(revs[&whole], all);
    assert_eq!(revs[&single], all);
    // Back on the shared path once caught up; new writes arrive there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dispatcher.synced_watches() != 2 {
        assert!(Instant::now() < deadline, "the stream did not rejoin");
        txn_puts(&mut kv, rounds).await;
        rounds += 1;
        loop {
            // Drain what those writes sent, keeping the sequence check.
            let resp = slow.next_response().await;
            let r = resp.events[0].kv.as_ref().unwrap().mod_revision;
            if resp.watch_id == single {
                assert_eq!(r, last + 1);
                last = r;
                break;
            }
        }
    }
    let rev = txn_puts(&mut kv, rounds).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let resp = slow.next_response().await;
        assert_eq!(resp.events[0].kv.as_ref().unwrap().mod_revision, rev);
        assert_eq!(rev, last + 1);
        got.push(resp.watch_id);
    }
    got.sort();
    assert_eq!(got, vec![whole, single]);
    drop((slow, kv, node));
    server.stop_and_check().await;
}
