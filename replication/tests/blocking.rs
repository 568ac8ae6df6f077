//! `blocking::Member`: three members with blocking methods in one process (no async in the
//! test), each on a runtime of its own, connected by `LocalNetwork`; and a blocking call made
//! inside async code is refused with a typed error instead of stalling the runtime.

use crate::blocking_members;

use std::sync::Arc;
use std::time::Duration;

use blocking_members::start;
use etch_engine::{Range, Txn, TxnOp};
use etch_replication::local::LocalNetwork;
use etch_replication::Error;

#[test]
fn blocking_members_serve_the_store_api() {
    let dir = tempfile::tempdir().unwrap();
    let (members, leader) = blocking_members::three(dir.path(), start);
    let follower = members.iter().find(|m| m.id() != leader).unwrap();

    // A watch on one member sees writes made through another.
    let mut watcher = members[2].watch(Range::prefix("k")).unwrap();
    let put = follower.put("k1", "v1").unwrap();
    let got = members[0].get("k1").unwrap().unwrap();
    assert_eq!(got.mod_revision, put.header_revision);
    let resp = watcher
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("an event within 10 s");
    assert_eq!(resp.events[0].kv.key, b"k1");

    let txn = members[2]
        .txn(Txn::new().and_then([TxnOp::put("k2", "v2"), TxnOp::put("k3", "v3")]))
        .unwrap();
    assert!(txn.succeeded);
    let ((), rev) = follower
        .write(|tx| {
            let n = tx.get("k2")?.map_or(0, |kv| kv.value.len());
            tx.put("k4", vec![b'x'; n]);
            Ok(())
        })
        .unwrap();
    assert_eq!(members[0].get("k4").unwrap().unwrap().mod_revision, rev);

    let lease = follower.lease_grant(30, 0).unwrap();
    assert_eq!(members[0].lease_keep_alive(lease.id).unwrap(), 30);
    follower.lease_revoke(lease.id).unwrap();
    members[1].compact(rev).unwrap();
    let all = members[0].range(Range::prefix("k")).unwrap();
    assert_eq!(all.kvs.len(), 4);
    let report = members[0].check_hashes(members[0].revision()).unwrap();
    assert!(!report.mismatch());

    for m in &members {
        m.shutdown().unwrap();
    }
}

#[test]
fn a_blocking_call_inside_async_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(LocalNetwork::new());
    let member = start(dir.path(), 1, &net);
    member.initialize([1].into_iter().collect()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inside = rt.block_on(async { member.put("k", "v") });
    assert!(matches!(inside, Err(Error::BlockingInAsync)), "{inside:?}");
    // Outside async code the same call works.
    member.put("k", "v").unwrap();
    member.shutdown().unwrap();
}
