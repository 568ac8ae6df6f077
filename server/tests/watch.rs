//! The Watch stream through the generated client: creation and cancellation, many watches per
//! stream, history replay, filters, prev_kv, progress, fragments, compaction, disconnects, and
//! clients that stop reading (writers unaffected, memory bounded, the store intact).

use crate::common;

use std::time::{Duration, Instant};

use common::watch_stream::WatchStream as Stream;
use common::TestServer;
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::watch_request::RequestUnion;
use etch_server::proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

impl Stream {
    async fn create(&mut self, create: pb::WatchCreateRequest) -> pb::WatchResponse {
        self.send(RequestUnion::CreateRequest(create)).await;
        let resp = self.next().await;
        assert!(resp.created, "expected a created response, got {resp:?}");
        resp
    }

    async fn next(&mut self) -> pb::WatchResponse {
        self.next_within(Duration::from_secs(10)).await
    }

    /// No response within `wait`.
    async fn quiet(&mut self, wait: Duration) {
        if let Ok(resp) = tokio::time::timeout(wait, self.rx.next()).await {
            panic!("unexpected response {resp:?}");
        }
    }
}

fn on(key: &str) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn on_prefix(key: &str) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        range_end: etch_engine::prefix_end(key.as_bytes()),
        ..Default::default()
    }
}

async fn put(server: &TestServer, key: &str, value: &str) -> i64 {
    let mut kv = server.kv().await;
    kv.put(pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

async fn delete(server: &TestServer, key: &str) {
    let mut kv = server.kv().await;
    kv.delete_range(pb::DeleteRangeRequest {
        key: key.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_events_filters_prev_kv_cancel() {
    let server = TestServer::start().await;
    let mut s = Stream::open(&server).await;
    let w0 = s.create(on("a")).await;
    assert_eq!(w0.watch_id, 0, "server-chosen ids start at 0 as etcd's");
    let w1 = s
        .create(pb::WatchCreateRequest {
            prev_kv: true,
            filters: vec![pb::watch_create_request::FilterType::Noput as i32],
            ..on_prefix("a")
        })
        .await;
    assert_eq!(w1.watch_id, 1);
    let w7 = s
        .create(pb::WatchCreateRequest {
            watch_id: 7,
            ..on("b")
        })
        .await;
    assert_eq!(w7.watch_id, 7);
    // A duplicate client-chosen id is refused, as etcd: created and cancelled, id -1.
    s.send(RequestUnion::CreateRequest(pb::WatchCreateRequest {
        watch_id: 7,
        ..on("c")
    }))
    .await;
    let dup = s.next().await;
    assert!(dup.created && dup.canceled);
    assert_eq!(dup.watch_id, -1);
    assert_eq!(
        dup.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    // An empty range (key >= range_end) is refused the same way.
    s.send(RequestUnion::CreateRequest(pb::WatchCreateRequest {
        key: "z".into(),
        range_end: "a".into(),
        ..Default::default()
    }))
    .await;
    let empty = s.next().await;
    assert!(empty.canceled);
    assert_eq!(empty.cancel_reason, "mvcc: watcher range is empty");

    let rev = put(&server, "a", "1").await;
    let ev = s.next().await;
    assert_eq!(ev.watch_id, 0);
    assert_eq!(ev.header.unwrap().revision, rev);
    assert_eq!(ev.events.len(), 1);
    assert_eq!(ev.events[0].r#type, EventType::Put as i32);
    assert_eq!(ev.events[0].kv.as_ref().unwrap().value, b"1");
    // Watch 1 filters puts: nothing for it. The delete reaches both, with prev_kv for 1.
    delete(&server, "a").await;
    let mut got = [s.next().await, s.next().await];
    got.sort_by_key(|r| r.watch_id);
    assert_eq!(got[0].watch_id, 0);
    assert_eq!(got[0].events[0].r#type, EventType::Delete as i32);
    assert!(got[0].events[0].prev_kv.is_none());
    assert_eq!(got[1].watch_id, 1);
    assert_eq!(got[1].events[0].prev_kv.as_ref().unwrap().value, b"1");
    put(&server, "b", "bee").await;
    assert_eq!(s.next().await.watch_id, 7);

    // Cancel: answered with canceled; an unknown id is ignored and the stream goes on.
    s.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
        watch_id: 0,
    }))
    .await;
    let c = s.next().await;
    assert!(c.canceled);
    assert_eq!(c.watch_id, 0);
    s.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
        watch_id: 4242,
    }))
    .await;
    s.quiet(Duration::from_millis(200)).await;
    let rev = put(&server, "a", "2").await;
    s.quiet(Duration::from_millis(300)).await; // 0 is gone, 1 filters puts
                                               // Progress request: every watch is caught up, so the current revision, id -1.
    s.send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
        .await;
    let p = s.next().await;
    assert_eq!(p.watch_id, -1);
    assert!(p.events.is_empty());
    assert_eq!(p.header.unwrap().revision, rev);
    drop(s);
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_replay_and_compaction() {
    let server = TestServer::start().await;
    let first = put(&server, "k", "v1").await;
    put(&server, "k", "v2").await;
    put(&server, "k", "v3").await;
    let mut s = Stream::open(&server).await;
    s.create(pb::WatchCreateRequest {
        start_revision: first,
        ..on("k")
    })
    .await;
    let replay = s.next().await;
    let values: Vec<_> = replay
        .events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().value.clone())
        .collect();
    assert_eq!(values, [b"v1".to_vec(), b"v2".to_vec(), b"v3".to_vec()]);

    // A live watch outlives a compaction: it is caught up, so it keeps going.
    let mut kv = server.kv().await;
    let now = put(&server, "k", "v4").await;
    assert_eq!(s.next().await.events.len(), 1);
    kv.compact(pb::CompactionRequest {
        revision: now,
        physical: true,
    })
    .await
    .unwrap();
    put(&server, "k", "v5").await;
    let after = s.next().await;
    assert_eq!(after.events[0].kv.as_ref().unwrap().value, b"v5");

    // A watch from a compacted revision: created, then cancelled with the compact revision.
    s.send(RequestUnion::CreateRequest(pb::WatchCreateRequest {
        start_revision: first,
        ..on("k")
    }))
    .await;
    let created = s.next().await;
    assert!(created.created && !created.canceled);
    let cancelled = s.next().await;
    assert_eq!(cancelled.watch_id, created.watch_id);
    assert!(cancelled.canceled);
    assert_eq!(cancelled.compact_revision, now);
    drop((s, kv));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notify_and_fragments() {
    let server = TestServer::start_with(|c| {
        c.watch_progress_notify_interval = Duration::from_millis(200);
        c.max_request_bytes = 64 * 1024;
    })
    .await;
    let mut s = Stream::open(&server).await;
    let w = s
        .create(pb::WatchCreateRequest {
            progress_notify: true,
            ..on("quiet")
        })
        .await;
    let progress = s.next().await;
    assert_eq!(progress.watch_id, w.watch_id);
    assert!(progress.events.is_empty() && !progress.canceled);
    s.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
        watch_id: w.watch_id,
    }))
    .await;
    assert!(s.next().await.canceled);

    // 20 puts of 10 KiB, then a watch replaying them with fragment: the 200 KiB of events
    // arrive in fragments under the 64 KiB limit; all but the last are marked.
    let value = "v".repeat(10 * 1024);
    let mut first = 0;
    for i in 0..20 {
        let rev = put(&server, &format!("frag/{i:02}"), &value).await;
        if i == 0 {
            first = rev;
        }
    }
    s.create(pb::WatchCreateRequest {
        start_revision: first,
        fragment: true,
        ..on_prefix("frag/")
    })
    .await;
    let mut events = 0;
    let mut parts = 0;
    loop {
        let part = s.next().await;
        assert!(prost::Message::encoded_len(&part) < 64 * 1024 + 1024);
        events += part.events.len();
        parts += 1;
        if !part.fragment {
            break;
        }
    }
    assert_eq!(events, 20);
    assert!(parts >= 4, "{parts} fragments");
    // Without fragment the same history comes as one response.
    s.create(pb::WatchCreateRequest {
        start_revision: first,
        ..on_prefix("frag/")
    })
    .await;
    let whole = s.next().await;
    assert_eq!(whole.events.len(), 20);
    assert!(!whole.fragment);
    drop(s);
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream_releases_watches() {
    let server = TestServer::start().await;
    let node = server.handle.as_ref().unwrap().node().clone();
    {
        let mut s = Stream::open(&server).await;
        for i in 0..50 {
            s.create(on(&format!("d/{i}"))).await;
        }
        put(&server, "d/1", "x").await;
        assert_eq!(s.next().await.events.len(), 1);
        assert_eq!(node.metrics().watchers(), 50);
        // The stream and its client are dropped here, mid-stream.
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.metrics().watchers() != 0 {
        assert!(
            Instant::now() < deadline,
            "watches not released after disconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The server goes on.
    let mut s = Stream::open(&server).await;
    s.create(on("after")).await;
    put(&server, "after", "1").await;
    assert_eq!(s.next().await.events.len(), 1);
    drop((s, node));
    server.stop_and_check().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_block_nobody() {
    let server = TestServer::start().await;
    let node = server.handle.as_ref().unwrap().node().clone();
    // 100 streams x 20 watches on one hot prefix, with prev_kv; nobody reads the events.
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let mut s = Stream::open(&server).await;
        for _ in 0..20 {
            s.create(pb::WatchCreateRequest {
                prev_kv: true,
                ..on_prefix("hot/")
            })
            .await;
        }
        stalled.push(s);
    }
    assert_eq!(node.metrics().watchers(), 2000);
    let rss_before = rss_bytes();
    // Writers run at full speed: 1,000 puts of 4 KiB, bounded in time.
    let value = "w".repeat(4096);
    let mut kv = server.kv().await;
    let started = Instant::now();
    for i in 0..1000 {
        kv.put(pb::PutRequest {
            key: format!("hot/{}", i % 50).into(),
            value: value.clone().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "writers slowed to {took:?}");
    // Another client is served promptly meanwhile.
    let mut fresh = Stream::open(&server).await;
    fresh.create(on("other")).await;
    let rev = put(&server, "other", "1").await;
    let resp = fresh.next().await;
    assert_eq!(resp.header.unwrap().revision, rev);
    // 2000 watches x 1000 events x ~8 KiB would be 16 GiB if queued; buffering is bounded.
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < 512 << 20, "memory grew by {} MiB", grown >> 20);
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.metrics().watchers() != 1 {
        assert!(Instant::now() < deadline, "stalled watches not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((fresh, kv, node));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_match_a_model() {
    // 8 writers on disjoint keys and one watcher on everything: the watcher sees every write
    // exactly once, in revision order, and the final range equals the model.
    let server = TestServer::start().await;
    let mut s = Stream::open(&server).await;
    s.create(on_prefix("m/")).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut kv = server.kv().await;
        writers.push(tokio::spawn(async move {
            let mut model = std::collections::BTreeMap::new();
            for i in 0..50 {
                let key = format!("m/{w}/{}", i % 7);
                let value = format!("{w}-{i}");
                if i % 5 == 4 {
                    kv.delete_range(pb::DeleteRangeRequest {
                        key: key.clone().into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                    model.remove(&key);
                } else {
                    kv.put(pb::PutRequest {
                        key: key.clone().into(),
                        value: value.clone().into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                    model.insert(key, value);
                }
            }
            model
        }));
    }
    let mut model = std::collections::BTreeMap::new();
    for w in writers {
        model.extend(w.await.unwrap());
    }
    let mut kv = server.kv().await;
    let all = kv
        .range(pb::RangeRequest {
            key: "m/".into(),
            range_end: etch_engine::prefix_end(b"m/"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: std::collections::BTreeMap<String, String> = all
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.clone()).unwrap(),
                String::from_utf8(kv.value.clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, model);
    let last = all.header.unwrap().revision;
    let mut seen_revs = Vec::new();
    while seen_revs.last().copied().unwrap_or(0) < last {
        for ev in s.next().await.events {
            seen_revs.push(ev.kv.unwrap().mod_revision);
        }
    }
    // Deleting an absent key makes no revision, so count the revisions that changed m/.
    let expected: Vec<i64> = (2..=last).collect();
    assert_eq!(seen_revs, expected);
    drop((s, kv));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_and_waiting_calls() {
    use etch_server::proto::v3lockpb;
    let server = TestServer::start().await;
    // An open watch, an open keep-alive stream, a lock held and another waiting for it.
    let mut s = Stream::open(&server).await;
    s.create(on("x")).await;
    let mut lease = server.lease().await;
    let id = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let (ka_tx, ka_rx) = mpsc::channel(1);
    let mut keepalive = lease
        .lease_keep_alive(ReceiverStream::new(ka_rx))
        .await
        .unwrap()
        .into_inner();
    ka_tx.send(pb::LeaseKeepAliveRequest { id }).await.unwrap();
    keepalive.next().await.unwrap().unwrap();
    let mut lock = server.lock().await;
    lock.lock(v3lockpb::LockRequest {
        name: "l".into(),
        lease: id,
    })
    .await
    .unwrap();
    let id2 = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut lock2 = server.lock().await;
    let waiting = tokio::spawn(async move {
        lock2
            .lock(v3lockpb::LockRequest {
                name: "l".into(),
                lease: id2,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Shutdown finishes in time although every client is still connected.
    let started = Instant::now();
    let TestServer {
        dir, db, handle, ..
    } = server;
    tokio::time::timeout(Duration::from_secs(4), handle.unwrap().shutdown())
        .await
        .expect("shutdown does not wait for open streams")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    // Each stream ended with etcd's "server stopped" (or the connection closed).
    let watch_end = tokio::time::timeout(Duration::from_secs(5), s.rx.next())
        .await
        .unwrap();
    assert!(!matches!(watch_end, Some(Ok(_))), "{watch_end:?}");
    let waited = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(waited.is_err());
    let store = etch_engine::Store::open(&db).unwrap();
    store.check().unwrap();
    store.close().unwrap();
    drop((dir, keepalive, ka_tx));
}
