//! Locks and elections through the server's Lock and Election services, on `etch serve` and on
//! a real etcd 3.4 (skipped when it is not installed, a failure when `ETCH_REQUIRE_TOOLS=1`).

use crate::serve;

#[path = "../../cli/tests/common/etcd.rs"]
#[allow(dead_code)]
mod etcd;

use std::time::Duration;

use etch_client::{Client, ClientOptions, Error};

fn locks_and_elections(client: &Client) {
    let short = Duration::from_millis(500);
    let first = client.lease_grant(30, 0).unwrap();
    let second = client.lease_grant(30, 0).unwrap();

    let held = client.lock("lk", first.id, short).unwrap();
    assert!(held.key.starts_with(b"lk/"));
    // Held by the first lease: the second waits, then times out.
    match client.lock("lk", second.id, short) {
        Err(Error::DeadlineExceeded { .. }) => {}
        other => panic!("the lock should be busy, got {other:?}"),
    }
    client.unlock(&held).unwrap();
    // Revoking the lease withdraws the timed-out request, if the server kept it queued.
    client.lease_revoke(second.id).unwrap();
    let again = client.lock("lk", first.id, Duration::from_secs(5)).unwrap();
    client.unlock(&again).unwrap();

    assert_eq!(client.leader("el").unwrap(), None, "nobody leads yet");
    let leader = client
        .campaign("el", first.id, "node-1", Duration::from_secs(5))
        .unwrap();
    assert_eq!(client.leader("el").unwrap().unwrap().value, b"node-1");
    client.proclaim(&leader, "node-1b").unwrap();
    assert_eq!(client.leader("el").unwrap().unwrap().value, b"node-1b");
    let third = client.lease_grant(30, 0).unwrap();
    assert!(client
        .campaign("el", third.id, "node-3", short)
        .unwrap_err()
        .is_unavailable());
    client.resign(&leader).unwrap();
    // Whether the timed-out campaign stayed queued is the server's choice (etcd withdraws
    // it); campaigning again with its lease leads either way.
    let next = client
        .campaign("el", third.id, "node-3", Duration::from_secs(5))
        .unwrap();
    assert_eq!(client.leader("el").unwrap().unwrap().value, b"node-3");
    client.resign(&next).unwrap();
}

#[test]
fn on_etch_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve::Served::start(&dir.path().join("r.etch"));
    let client = Client::connect(&[server.endpoint()], ClientOptions::default()).unwrap();
    locks_and_elections(&client);
}

#[test]
fn on_etcd() {
    let Some(etcd) = etcd::Etcd::start() else {
        return;
    };
    let client = Client::connect(&[etcd.endpoint.as_str()], ClientOptions::default()).unwrap();
    locks_and_elections(&client);
}
