//! The client against `etch serve` servers that are down or go down: failover to a live
//! endpoint, typed errors when none is left, a watch that resumes without gap or duplicate
//! after its server restarts, background keep-alive, and the maintenance calls.

use crate::serve;

use std::time::{Duration, Instant};

use etch_client::{Client, ClientOptions, Error, KeepAliveStatus};
use etch_engine::{Error as EngineError, EventKind, Range, Store};
use serve::Served;

/// A loopback endpoint nothing listens on.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn a_dead_first_endpoint_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("live.etch"));
    let endpoints = [dead_endpoint(), server.endpoint()];
    let client = Client::connect(&endpoints, ClientOptions::default()).unwrap();
    for i in 0..20 {
        let key = format!("k/{i:02}");
        client.put(&key, "v").unwrap();
        assert_eq!(client.get(&key).unwrap().unwrap().value, b"v");
    }
    assert_eq!(client.range(Range::prefix("k/")).unwrap().count, 20);

    // With no live endpoint: a typed error within the request timeout, and the write surely
    // not applied (nothing could be dialed).
    let options = ClientOptions::default()
        .request_timeout(Duration::from_secs(2))
        .retries(1);
    let nobody = Client::connect(&[dead_endpoint(), dead_endpoint()], options).unwrap();
    let started = Instant::now();
    match nobody.put("x", "y") {
        Err(Error::Unavailable {
            maybe_applied: false,
            ..
        }) => {}
        other => panic!("expected Unavailable without maybe_applied, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded retries"
    );
    assert!(nobody.get("x").unwrap_err().is_unavailable());
}

#[test]
fn a_server_that_stops_is_failed_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Served::start(&dir.path().join("first.etch"));
    let second = Served::start(&dir.path().join("second.etch"));
    let client = Client::connect(
        &[first.endpoint(), second.endpoint()],
        ClientOptions::default(),
    )
    .unwrap();
    // Both endpoints are in use (round robin) before the first goes away.
    for i in 0..4 {
        client.put(format!("before/{i}"), "v").unwrap();
    }
    first.stop();
    // Writes go on: the stopped server refuses connections, so they surely were not sent there
    // and go to the second one; a write caught on the closing connection is reported as
    // possibly applied (and not repeated) rather than retried.
    let mut uncertain = 0;
    for i in 0..20 {
        let key = format!("after/{i:02}");
        match client.put(&key, "v") {
            Ok(_) => {}
            Err(Error::Unavailable {
                maybe_applied: true,
                ..
            }) if uncertain == 0 => {
                uncertain += 1;
                client.put(&key, "v").unwrap();
            }
            Err(e) => panic!("put {key} failed: {e:?}"),
        }
        assert_eq!(client.get(&key).unwrap().unwrap().value, b"v");
    }
    assert_eq!(client.range(Range::prefix("after/")).unwrap().count, 20);
}

#[test]
fn a_watch_resumes_after_its_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Served::start(&dir.path().join("w.etch"));
    let client = Client::connect(&[server.endpoint()], ClientOptions::default()).unwrap();
    let mut watcher = client.watch(Range::prefix("r/")).unwrap();
    let mut expected = Vec::new();
    for i in 1..=3 {
        expected.push(client.put(format!("r/{i}"), "v").unwrap().header_revision);
    }
    let mut seen = Vec::new();
    collect(&mut watcher, &mut seen, 3);

    server.stop();
    // Changes made while the watch is disconnected: written to the file directly.
    {
        let db = Store::open(&server.db).unwrap();
        expected.push(db.put("r/4", "v").unwrap().header_revision);
        expected.push(db.delete("r/1").unwrap().header_revision);
        db.put("elsewhere", "v").unwrap();
        expected.push(db.put("r/5", "v").unwrap().header_revision);
        db.close().unwrap();
    }
    server.restart();
    expected.push(client.put("r/6", "v").unwrap().header_revision);
    collect(&mut watcher, &mut seen, expected.len());

    let revisions: Vec<_> = seen.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revisions, expected,
        "no gap and no duplicate across the restart"
    );
    assert_eq!(seen[4].kind, EventKind::Delete);
    assert_eq!(watcher.next_revision(), expected[expected.len() - 1] + 1);
    // Nothing else arrives.
    assert!(watcher
        .recv_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none_or(|r| r.events.is_empty()));
}

/// Receives events until `seen` holds `count` (bounded in time).
fn collect(watcher: &mut etch_client::Watcher, seen: &mut Vec<etch_engine::Event>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {count} events: {seen:?}",
            seen.len()
        );
        if let Some(resp) = watcher.recv_timeout(left).unwrap() {
            assert!(!resp.canceled);
            seen.extend(resp.events);
        }
    }
}

#[test]
fn keep_alive_holds_a_lease_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let _server_guard;
    let client = {
        let server = Served::start(&dir.path().join("l.etch"));
        let client = Client::connect(&[server.endpoint()], ClientOptions::default()).unwrap();
        _server_guard = server;
        client
    };
    let lease = client.lease_grant(2, 0).unwrap();
    let keeper = client.keep_alive(lease.id).unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(keeper.status(), KeepAliveStatus::Alive { ttl: 2 });
    assert!(client.lease_time_to_live(lease.id, false).unwrap().ttl >= 1);
    drop(keeper);
    // Without renewals the lease expires after its TTL.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.lease_time_to_live(lease.id, false) {
            Err(Error::Engine(EngineError::LeaseNotFound { id })) => {
                assert_eq!(id, lease.id);
                break;
            }
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("the lease should have expired: {other:?}"),
        }
    }
    let revoked = client.keep_alive(lease.id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while revoked.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(revoked.status(), KeepAliveStatus::LeaseNotFound);
}

#[test]
fn status_hash_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("m.etch"));
    let client = Client::connect(&[server.endpoint()], ClientOptions::default()).unwrap();
    let revision = client.put("snap/k", "v").unwrap().header_revision;
    let status = client.status().unwrap();
    assert_eq!(status.revision, revision);
    assert!(status.db_size > 0);
    let hash = client.hash_kv(0).unwrap();
    assert_eq!(hash.header_revision, revision);
    assert_eq!(
        client.hash_kv(revision).unwrap().hash,
        hash.hash,
        "same history, same hash"
    );
    client.put("snap/k2", "v").unwrap();
    assert_ne!(client.hash_kv(0).unwrap().hash, hash.hash);

    let path = dir.path().join("copy.etch");
    let mut file = std::fs::File::create(&path).unwrap();
    let written = client.snapshot(&mut file).unwrap();
    drop(file);
    assert_eq!(written, std::fs::metadata(&path).unwrap().len());
    // The file is the store followed by its 32-byte SHA-256, as etcdctl saves it.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(written - 32).unwrap();
    drop(file);
    let copy = Store::open(&path).unwrap();
    assert_eq!(copy.get("snap/k2").unwrap().unwrap().value, b"v");
}

#[test]
fn blocking_calls_inside_a_runtime_are_refused() {
    let client = Client::connect(&[dead_endpoint()], ClientOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(async { client.get("k") });
    assert!(matches!(result, Err(Error::InsideRuntime)), "{result:?}");
}
