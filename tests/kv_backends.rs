//! The core cases of tests/support/kv_cases.rs, written once against `etch::kv::Kv`, on each
//! backend: a local store file, a follower of an in-process 3-member cluster
//! (`replication::Member` over `LocalNetwork`), `etch serve` (in this process, on a loopback
//! port) through the remote client, and a real etcd 3.4 (started by the test; skipped when it is
//! not installed, a failure when `ETCH_REQUIRE_TOOLS=1`).
//!
//! Needs the `client` and `replication` features:
//! `cargo test --release --workspace --features etch/client,etch/replication --test kv_backends`.

#[path = "support/kv_cases.rs"]
mod kv_cases;

#[path = "../replication/tests/support/blocking_members.rs"]
#[allow(dead_code)] // the replication tests use more of its helpers
mod blocking_members;

#[path = "../client/tests/support/serve.rs"]
mod serve;

#[path = "../cli/tests/common/etcd.rs"]
#[allow(dead_code)]
mod etcd;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch::replication::local::LocalNetwork;
use etch::replication::Member;
use etch::{Client, ClientOptions, Store};

#[test]
fn local_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("local.etch")).unwrap();
    kv_cases::all(&db);
    db.check().expect("the file is intact after the cases");
}

#[test]
fn cluster_member() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(LocalNetwork::new());
    let members: Vec<Member> = (1..=3)
        .map(|id| blocking_members::start(dir.path(), id, &net))
        .collect();
    members[0].initialize(BTreeSet::from([1, 2, 3])).unwrap();
    let leader = blocking_members::wait_leader(&members);
    // A follower: every write and linearizable read crosses the cluster, watches are served
    // from what it applied.
    let follower = members.iter().find(|m| m.id() != leader).unwrap();
    kv_cases::all(follower);

    // The three files hold the same key space at the follower's last revision (a member that
    // has not applied it yet answers with an error: asked again until all three answer).
    let revision = follower.revision();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = follower.check_hashes(revision).unwrap();
        assert!(!report.mismatch(), "members disagree: {report:?}");
        if report.hashes.len() == 3 && report.hashes.values().all(Result::is_ok) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every member answered: {report:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for m in &members {
        m.shutdown().unwrap();
    }
}

#[test]
fn etch_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve::Served::start(&dir.path().join("served.etch"));
    let client = Client::connect(&[server.endpoint()], ClientOptions::default()).unwrap();
    kv_cases::all(&client);
    drop(client);
    server.stop();
    let db = Store::open(&server.db).unwrap();
    db.check()
        .expect("the served file is intact after the cases");
}

#[test]
fn real_etcd() {
    let Some(etcd) = etcd::Etcd::start() else {
        return;
    };
    let client = Client::connect(&[etcd.endpoint.as_str()], ClientOptions::default()).unwrap();
    kv_cases::all(&client);
}
