//! The space quota on a replicated store: past it, the proposer refuses writes that add data
//! with the engine's `QuotaExceeded` (as a single `Store` does), while deletes, compaction and
//! leases go on; nothing refused reaches the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_engine::{Range, Txn, TxnOp};
use etch_replication::local::LocalNetwork;
use etch_replication::log_store::MemLogStore;
use etch_replication::{Error, NodeConfig, ReplicatedStore};

/// A one-member cluster whose proposer enforces `quota` bytes.
async fn single_member(dir: &std::path::Path, quota: Option<u64>) -> ReplicatedStore {
    let net = Arc::new(LocalNetwork::new());
    let member = ReplicatedStore::open(
        NodeConfig::new(1),
        dir.join("n1.etch"),
        etch_engine::Options::new().quota_bytes(quota),
        Arc::new(MemLogStore::new()),
        Arc::clone(&net),
    )
    .await
    .unwrap();
    net.register(1, member.handler());
    member.initialize([1].into_iter().collect()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !member.is_leader() {
        assert!(Instant::now() < deadline, "no leader within 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    member
}

fn is_quota_error(e: &Error) -> bool {
    matches!(e, Error::Store(etch_engine::Error::QuotaExceeded { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_quota_only_writes_that_add_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let quota = 256 << 10;
    let member = single_member(dir.path(), Some(quota)).await;
    // Fill the file until the proposer refuses (bounded: 64 puts of 16 KiB pass 256 KiB).
    let mut refused = None;
    for i in 0..64 {
        let used = member.status().unwrap().size_in_use;
        let before = member.applied_index();
        match member.put(format!("k{i}"), vec![b'v'; 16 << 10]).await {
            Ok(_) => assert!(used <= quota, "a put passed at {used} bytes in use"),
            Err(e) => {
                assert!(is_quota_error(&e), "{e}");
                assert!(used > quota, "refused at {used} bytes in use");
                assert_eq!(
                    member.applied_index(),
                    before,
                    "a refused write uses no entry"
                );
                refused = Some(e);
                break;
            }
        }
    }
    assert!(refused.is_some(), "the quota was never reached");
    let txn = member
        .txn(Txn {
            compare: vec![],
            success: vec![TxnOp::delete(Range::key("k0"))],
            failure: vec![TxnOp::Put(etch_engine::PutOp {
                key: b"c".to_vec(),
                value: b"3".to_vec(),
                ..Default::default()
            })],
        })
        .await
        .unwrap_err();
    assert!(
        is_quota_error(&txn),
        "a txn with a put in any branch: {txn}"
    );

    // What frees space, or adds none, goes on.
    let before = member.applied_index();
    let lease = member.lease_grant(60, 0).await.unwrap();
    member.lease_revoke(lease.id).await.unwrap();
    let deleted = member
        .delete_range(Range::prefix("k"), false)
        .await
        .unwrap();
    assert!(deleted.deleted > 0);
    member.compact(deleted.header_revision).await.unwrap();
    assert_eq!(member.get("k0").await.unwrap(), None);
    assert!(member.applied_index() > before);
    member.shutdown().await.unwrap();
}
