//! The server through its own generated client: KV, Lease, Cluster, Maintenance, Auth, Lock,
//! Election and the HTTP endpoints, with etcd's error codes and texts. Every test ends by
//! shutting the server down and checking the store file.

use crate::common;

use std::time::Duration;

use common::TestServer;
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etch_server::proto::etcdserverpb::lease_client::LeaseClient;
use etch_server::proto::etcdserverpb::request_op::Request as Op;
use etch_server::proto::etcdserverpb::response_op::Response as OpResp;
use etch_server::proto::{v3electionpb, v3lockpb};
use tonic::transport::Channel;
use tonic::Code;

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// Grants a lease of `ttl` seconds with a server-chosen id and returns the id.
async fn grant(lease: &mut LeaseClient<Channel>, ttl: i64) -> i64 {
    lease
        .lease_grant(pb::LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

fn get(key: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn prefix(key: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.into(),
        range_end: etch_engine::prefix_end(key.as_bytes()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_range_delete_with_headers_and_flags() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    let r1 = kv.put(put("a/1", "one")).await.unwrap().into_inner();
    let header = r1.header.unwrap();
    // As in etcd, an empty store is at revision 1, so the first write makes revision 2.
    assert_eq!(header.revision, 2);
    assert_ne!(header.cluster_id, 0);
    assert_ne!(header.member_id, 0);
    assert_eq!(header.raft_term, 1);
    kv.put(put("a/2", "two")).await.unwrap();
    kv.put(put("a/3", "three")).await.unwrap();
    kv.put(put("b", "bee")).await.unwrap();
    let prev = kv
        .put(pb::PutRequest {
            prev_kv: true,
            ..put("a/1", "uno")
        })
        .await
        .unwrap()
        .into_inner();
    let prev_kv = prev.prev_kv.unwrap();
    assert_eq!(prev_kv.value, b"one");
    assert_eq!(prev_kv.mod_revision, 2);

    let all = kv.range(prefix("a/")).await.unwrap().into_inner();
    assert_eq!(all.header.unwrap().revision, 6);
    assert_eq!(all.count, 3);
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [b"a/1".to_vec(), b"a/2".to_vec(), b"a/3".to_vec()]);
    assert_eq!(all.kvs[0].version, 2);
    assert_eq!(all.kvs[0].create_revision, 2);

    // limit + sort descending by key; more and count report the whole range.
    let limited = kv
        .range(pb::RangeRequest {
            limit: 2,
            sort_order: pb::range_request::SortOrder::Descend as i32,
            ..prefix("a/")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(limited.more);
    assert_eq!(limited.count, 3);
    assert_eq!(limited.kvs[0].key, b"a/3");
    // Past revision, keys only, count only, from-key, filters.
    let old = kv
        .range(pb::RangeRequest {
            revision: 2,
            ..get("a/1")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.kvs[0].value, b"one");
    let keys_only = kv
        .range(pb::RangeRequest {
            keys_only: true,
            ..prefix("a/")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
    let count_only = kv
        .range(pb::RangeRequest {
            count_only: true,
            ..prefix("a/")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(count_only.kvs.is_empty());
    assert_eq!(count_only.count, 3);
    let from_key = kv
        .range(pb::RangeRequest {
            range_end: vec![0],
            ..get("a/3")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_key.count, 2); // a/3 and b
    let modified_late = kv
        .range(pb::RangeRequest {
            min_mod_revision: 4,
            ..prefix("a/")
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = modified_late.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [b"a/1".to_vec(), b"a/3".to_vec()]);
    let by_value = kv
        .range(pb::RangeRequest {
            sort_target: pb::range_request::SortTarget::Value as i32,
            ..prefix("a/")
        })
        .await
        .unwrap()
        .into_inner();
    let values: Vec<_> = by_value.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(
        values,
        [b"three".to_vec(), b"two".to_vec(), b"uno".to_vec()]
    );

    let deleted = kv
        .delete_range(pb::DeleteRangeRequest {
            key: "a/".into(),
            range_end: etch_engine::prefix_end(b"a/"),
            prev_kv: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 3);
    assert_eq!(deleted.prev_kvs.len(), 3);
    assert_eq!(deleted.header.unwrap().revision, 7);
    assert_eq!(kv.range(prefix("a/")).await.unwrap().into_inner().count, 0);
    drop(kv);
    server.stop_and_check().await;
}

/// Asserts that a request was refused with etcd's status code and text.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    let err = result.unwrap_err();
    assert_eq!((err.code(), err.message()), (code, message), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_errors_have_etcd_codes_and_texts() {
    const NO_KEY: &str = "etcdserver: key is not provided";
    const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
    const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    let server = TestServer::start_with(|c| c.max_txn_ops = 4).await;
    let mut kv = server.kv().await;
    assert_refused(kv.put(put("", "v")).await, Code::InvalidArgument, NO_KEY);
    assert_refused(kv.range(get("")).await, Code::InvalidArgument, NO_KEY);
    let with_lease = pb::PutRequest {
        lease: 12345,
        ..put("k", "v")
    };
    assert_refused(
        kv.put(with_lease).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    let keep_value = |key: &str, value: &str| pb::PutRequest {
        ignore_value: true,
        ..put(key, value)
    };
    assert_refused(
        kv.put(keep_value("missing", "")).await,
        Code::InvalidArgument,
        "etcdserver: key not found",
    );
    assert_refused(
        kv.put(keep_value("k", "v")).await,
        Code::InvalidArgument,
        "etcdserver: value is provided",
    );

    for i in 0..5 {
        kv.put(put("k", &i.to_string())).await.unwrap();
    }
    let at = |revision: i64| pb::RangeRequest {
        revision,
        ..get("k")
    };
    let compact = |revision: i64, physical: bool| pb::CompactionRequest { revision, physical };
    assert_refused(kv.range(at(100)).await, Code::OutOfRange, FUTURE);
    kv.compact(compact(3, true)).await.unwrap();
    assert_refused(kv.range(at(2)).await, Code::OutOfRange, COMPACTED);
    assert_refused(
        kv.compact(compact(2, false)).await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_refused(
        kv.compact(compact(99, false)).await,
        Code::OutOfRange,
        FUTURE,
    );
    let bad_order = pb::RangeRequest {
        sort_order: 17,
        ..get("k")
    };
    assert_eq!(
        kv.range(bad_order).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // Too many operations, duplicate keys in one transaction.
    let txn_of_puts = |keys: Vec<String>| pb::TxnRequest {
        success: keys
            .iter()
            .map(|k| pb::RequestOp {
                request: Some(Op::RequestPut(put(k, "v"))),
            })
            .collect(),
        ..Default::default()
    };
    assert_refused(
        kv.txn(txn_of_puts((0..5).map(|i| format!("t{i}")).collect()))
            .await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    assert_refused(
        kv.txn(txn_of_puts(vec!["same".into(); 2])).await,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );

    // Inverted range: nothing, not an error (as etcd).
    let inverted = kv
        .range(pb::RangeRequest {
            key: "z".into(),
            range_end: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inverted.count, 0);
    drop(kv);
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_requests_are_refused_and_the_server_goes_on() {
    let server = TestServer::start_with(|c| c.max_request_bytes = 64 * 1024).await;
    let mut kv = server.kv().await;
    // Over the request limit but under the transport limit: etcd's "request is too large".
    assert_refused(
        kv.put(put("big", &"x".repeat(100 * 1024))).await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    // Over the transport limit too: refused before decoding.
    let err = kv.put(put("huge", &"x".repeat(2 << 20))).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    // The connection and the store are fine.
    kv.put(put("small", "ok")).await.unwrap();
    assert_eq!(kv.range(get("small")).await.unwrap().into_inner().count, 1);
    assert_eq!(kv.range(get("big")).await.unwrap().into_inner().count, 0);
    drop(kv);
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_gets_a_grpc_error() {
    let server = TestServer::start().await;
    // A gRPC frame whose payload is not a valid RangeRequest (a truncated varint field).
    let body: Vec<u8> = {
        let payload = [0x08u8, 0xff, 0xff];
        let mut b = vec![0u8];
        b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        b.extend_from_slice(&payload);
        b
    };
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Range");
    let result: Result<tonic::Response<pb::RangeResponse>, tonic::Status> = grpc
        .unary(
            tonic::Request::new(RawBytes(body[5..].to_vec())),
            path,
            RawCodec,
        )
        .await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    // The server still answers.
    let mut kv = server.kv().await;
    kv.put(put("after", "ok")).await.unwrap();
    drop(kv);
    server.stop_and_check().await;
}

/// Bytes sent as a message body as they are (to send malformed protobuf).
#[derive(Clone)]
struct RawBytes(Vec<u8>);

#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RangeDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = RawBytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: RawBytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes_put::BufMut;
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl tonic::codec::Decoder for RangeDecoder {
    type Item = pb::RangeResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<pb::RangeResponse>, tonic::Status> {
        use prost::Message;
        pb::RangeResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = RawBytes;
    type Decode = pb::RangeResponse;
    type Encoder = RawEncoder;
    type Decoder = RangeDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RangeDecoder {
        RangeDecoder
    }
}

mod bytes_put {
    pub use prost::bytes::BufMut;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_nested_compare_and_branches() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    kv.put(put("x", "1")).await.unwrap();
    let cmp = |value: &str| pb::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Value as i32,
        key: "x".into(),
        target_union: Some(TargetUnion::Value(value.into())),
        range_end: Vec::new(),
    };
    let inner = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: CompareResult::Greater as i32,
            target: CompareTarget::Version as i32,
            key: "x".into(),
            target_union: Some(TargetUnion::Version(0)),
            range_end: Vec::new(),
        }],
        success: vec![pb::RequestOp {
            request: Some(Op::RequestPut(put("nested", "yes"))),
        }],
        failure: vec![],
    };
    let req = pb::TxnRequest {
        compare: vec![cmp("1")],
        success: vec![
            pb::RequestOp {
                request: Some(Op::RequestPut(put("x", "2"))),
            },
            pb::RequestOp {
                request: Some(Op::RequestRange(get("x"))),
            },
            pb::RequestOp {
                request: Some(Op::RequestTxn(inner)),
            },
        ],
        failure: vec![pb::RequestOp {
            request: Some(Op::RequestPut(put("failed", "1"))),
        }],
    };
    let resp = kv.txn(req.clone()).await.unwrap().into_inner();
    assert!(resp.succeeded);
    assert_eq!(resp.responses.len(), 3);
    match &resp.responses[1].response {
        Some(OpResp::ResponseRange(r)) => assert_eq!(r.kvs[0].value, b"2"),
        other => panic!("expected a range response, got {other:?}"),
    }
    match &resp.responses[2].response {
        Some(OpResp::ResponseTxn(t)) => assert!(t.succeeded),
        other => panic!("expected a txn response, got {other:?}"),
    }
    assert_eq!(kv.range(get("nested")).await.unwrap().into_inner().count, 1);
    // Same request again: x is now 2, so the failure branch runs.
    let resp = kv.txn(req).await.unwrap().into_inner();
    assert!(!resp.succeeded);
    assert_eq!(kv.range(get("failed")).await.unwrap().into_inner().count, 1);
    drop(kv);
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_grant_keepalive_ttl_list_revoke() {
    use tokio_stream::StreamExt;
    let server = TestServer::start().await;
    let mut lease = server.lease().await;
    let mut kv = server.kv().await;
    let granted = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.id > 0);
    assert_eq!(granted.ttl, 30);
    // etcd raises a too-short TTL to its minimum.
    let short = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 1, id: 77 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((short.id, short.ttl), (77, 2));
    let err = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 5, id: 77 })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: lease already exists");
    let err = lease
        .lease_grant(pb::LeaseGrantRequest {
            ttl: 9_000_000_001,
            id: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: too large lease TTL");

    kv.put(pb::PutRequest {
        lease: granted.id,
        ..put("svc/a", "1")
    })
    .await
    .unwrap();
    let ttl = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: granted.id,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.granted_ttl, 30);
    assert!(ttl.ttl > 0 && ttl.ttl <= 30);
    assert_eq!(ttl.keys, vec![b"svc/a".to_vec()]);
    let leases = lease
        .lease_leases(pb::LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<_> = leases.leases.iter().map(|l| l.id).collect();
    ids.sort();
    let mut want = vec![granted.id, 77];
    want.sort();
    assert_eq!(ids, want);

    // Keep-alive stream: renewals answer with the TTL; after revoke, TTL 0 (not an error).
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut responses = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(pb::LeaseKeepAliveRequest { id: granted.id })
        .await
        .unwrap();
    let renewed = responses.next().await.unwrap().unwrap();
    assert_eq!((renewed.id, renewed.ttl), (granted.id, 30));
    lease
        .lease_revoke(pb::LeaseRevokeRequest { id: granted.id })
        .await
        .unwrap();
    assert_eq!(kv.range(get("svc/a")).await.unwrap().into_inner().count, 0);
    tx.send(pb::LeaseKeepAliveRequest { id: granted.id })
        .await
        .unwrap();
    let after = responses.next().await.unwrap().unwrap();
    assert_eq!((after.id, after.ttl), (granted.id, 0));
    let err = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: granted.id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "etcdserver: requested lease not found");
    let gone = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: granted.id,
            keys: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.ttl, -1);
    // Closing our side ends the stream.
    drop(tx);
    assert!(responses.next().await.is_none());

    // Expiry: a 2-second lease with no keep-alive takes its key with it.
    kv.put(pb::PutRequest {
        lease: 77,
        ..put("ephemeral", "1")
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while kv.range(get("ephemeral")).await.unwrap().into_inner().count != 0 {
        assert!(std::time::Instant::now() < deadline, "lease did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((kv, lease, responses));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_maintenance_auth_answers() {
    use tokio_stream::StreamExt;
    let server = TestServer::start_with(|c| c.name = "node-a".into()).await;
    let mut cluster = server.cluster().await;
    let members = cluster
        .member_list(pb::MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    let me = &members.members[0];
    assert_eq!(me.name, "node-a");
    assert_eq!(me.id, members.header.unwrap().member_id);
    assert_eq!(me.client_ur_ls, vec!["http://127.0.0.1:0".to_string()]);
    let err = cluster
        .member_add(pb::MemberAddRequest {
            peer_ur_ls: vec!["http://10.0.0.2:2380".into()],
            is_learner: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = cluster
        .member_remove(pb::MemberRemoveRequest { id: me.id + 1 })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: member not found");

    let mut kv = server.kv().await;
    for i in 0..10 {
        kv.put(put(&format!("k{i}"), "value")).await.unwrap();
    }
    let mut m = server.maintenance().await;
    let status = m.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.version, "3.5.0");
    assert_eq!(status.leader, me.id);
    assert!(status.db_size > 0);
    assert_eq!(status.header.unwrap().revision, 11);
    let h1 = m
        .hash_kv(pb::HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    let h2 = m
        .hash_kv(pb::HashKvRequest { revision: 11 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h1.hash, h2.hash);
    let h5 = m
        .hash_kv(pb::HashKvRequest { revision: 5 })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(h1.hash, h5.hash);
    m.hash(pb::HashRequest {}).await.unwrap();
    m.defragment(pb::DefragmentRequest {}).await.unwrap();
    // The data is intact after defragmentation.
    assert_eq!(kv.range(prefix("k")).await.unwrap().into_inner().count, 10);

    // Snapshot: streamed in chunks whose remaining_bytes count down to 0; the result is a
    // store that opens with the same data.
    let mut stream = m
        .snapshot(pb::SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    let mut last_remaining = u64::MAX;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.remaining_bytes <= last_remaining);
        last_remaining = chunk.remaining_bytes;
        bytes.extend_from_slice(&chunk.blob);
    }
    assert_eq!(last_remaining, 0);
    // As etcd's: the data, then its SHA-256 (etcdctl checks `len % 512 == 32`).
    assert_eq!(bytes.len() % 512, 32);
    let (data, digest) = bytes.split_at(bytes.len() - 32);
    use sha2::Digest;
    assert_eq!(sha2::Sha256::digest(data).as_slice(), digest);
    let snap = server.dir.path().join("copy.etch");
    std::fs::write(&snap, data).unwrap();
    let restored_path = server.dir.path().join("restored.etch");
    let (snap2, restored2) = (snap.clone(), restored_path.clone());
    let count = tokio::task::spawn_blocking(move || {
        let store =
            etch_engine::Store::restore(&snap2, &restored2, etch_engine::Options::new()).unwrap();
        let n = store.range(etch_engine::Range::prefix("k")).unwrap().count;
        store.close().unwrap();
        n
    })
    .await
    .unwrap();
    assert_eq!(count, 10);
    std::fs::remove_file(&snap).unwrap();
    std::fs::remove_file(&restored_path).unwrap();

    // Alarms: none, activate, list, disarm.
    let none = m
        .alarm(pb::AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(none.alarms.is_empty());
    m.alarm(pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Activate as i32,
        member_id: me.id,
        alarm: pb::AlarmType::Nospace as i32,
    })
    .await
    .unwrap();
    let err = kv.put(put("blocked", "v")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.message(), "etcdserver: mvcc: database space exceeded");
    // Reads and deletes still work under NOSPACE.
    kv.delete_range(pb::DeleteRangeRequest {
        key: "k0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let listed = m
        .alarm(pb::AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.alarms.len(), 1);
    assert_eq!(listed.alarms[0].alarm, pb::AlarmType::Nospace as i32);
    let status = m.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.errors.len(), 1);
    m.alarm(pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Deactivate as i32,
        member_id: me.id,
        alarm: pb::AlarmType::Nospace as i32,
    })
    .await
    .unwrap();
    kv.put(put("unblocked", "v")).await.unwrap();

    m.move_leader(pb::MoveLeaderRequest { target_id: me.id })
        .await
        .unwrap();
    let err = m
        .move_leader(pb::MoveLeaderRequest {
            target_id: me.id + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: bad leader transferee");
    let err = m
        .downgrade(pb::DowngradeRequest {
            action: pb::downgrade_request::DowngradeAction::Cancel as i32,
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: no inflight downgrade job");

    let mut auth = server.auth().await;
    let st = auth
        .auth_status(pb::AuthStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!st.enabled);
    let err = auth
        .authenticate(pb::AuthenticateRequest {
            name: "root".into(),
            password: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: authentication is not enabled");
    drop((cluster, kv, m, auth, stream));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_raises_nospace_alarm() {
    let server = TestServer::start_with(|c| c.quota_backend_bytes = Some(256 * 1024)).await;
    let mut kv = server.kv().await;
    let value = "v".repeat(16 * 1024);
    let mut refused = None;
    for i in 0..200 {
        if let Err(e) = kv.put(put(&format!("fill/{i}"), &value)).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the quota stops writes");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.message(), "etcdserver: mvcc: database space exceeded");
    let mut m = server.maintenance().await;
    let alarms = m
        .alarm(pb::AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alarms.alarms.len(), 1);
    assert_eq!(alarms.alarms[0].alarm, pb::AlarmType::Nospace as i32);
    drop((kv, m));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_excludes_and_hands_over() {
    let server = TestServer::start().await;
    let mut lease = server.lease().await;
    let l1 = grant(&mut lease, 30).await;
    let l2 = grant(&mut lease, 30).await;
    let mut lock = server.lock().await;
    let first = lock
        .lock(v3lockpb::LockRequest {
            name: "jobs".into(),
            lease: l1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.key.starts_with(b"jobs/"));
    let mut lock2 = server.lock().await;
    let waiter = tokio::spawn(async move {
        lock2
            .lock(v3lockpb::LockRequest {
                name: "jobs".into(),
                lease: l2,
            })
            .await
            .map(|r| r.into_inner().key)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second locker waits");
    lock.unlock(v3lockpb::UnlockRequest {
        key: first.key.clone(),
    })
    .await
    .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(second, first.key);
    // A locker that gives up (its call is cancelled) leaves the line: nothing stays behind.
    let mut lock3 = server.lock().await;
    let l3 = grant(&mut lease, 30).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        lock3.lock(v3lockpb::LockRequest {
            name: "jobs".into(),
            lease: l3,
        }),
    )
    .await;
    assert!(gave_up.is_err());
    let mut kv = server.kv().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = kv.range(prefix("jobs/")).await.unwrap().into_inner().count;
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "abandoned waiter left its key: {n} keys"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A lock with an unknown lease is refused.
    let err = lock
        .lock(v3lockpb::LockRequest {
            name: "x".into(),
            lease: 999,
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: requested lease not found");
    drop((lease, lock, lock3, kv));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_campaign_proclaim_observe_resign() {
    use tokio_stream::StreamExt;
    let server = TestServer::start().await;
    let mut lease = server.lease().await;
    let l1 = grant(&mut lease, 30).await;
    let l2 = grant(&mut lease, 30).await;
    let mut e = server.election().await;
    let err = e
        .leader(v3electionpb::LeaderRequest {
            name: "sched".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "election: no leader");
    let won = e
        .campaign(v3electionpb::CampaignRequest {
            name: "sched".into(),
            lease: l1,
            value: "n1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    let mut observe = server
        .election()
        .await
        .observe(v3electionpb::LeaderRequest {
            name: "sched".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = observe.next().await.unwrap().unwrap();
    assert_eq!(seen.kv.unwrap().value, b"n1");
    e.proclaim(v3electionpb::ProclaimRequest {
        leader: Some(won.clone()),
        value: "n1-epoch2".into(),
    })
    .await
    .unwrap();
    let seen = observe.next().await.unwrap().unwrap();
    assert_eq!(seen.kv.unwrap().value, b"n1-epoch2");
    let leader = e
        .leader(v3electionpb::LeaderRequest {
            name: "sched".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leader.kv.unwrap().value, b"n1-epoch2");
    let mut e2 = server.election().await;
    let second = tokio::spawn(async move {
        e2.campaign(v3electionpb::CampaignRequest {
            name: "sched".into(),
            lease: l2,
            value: "n2".into(),
        })
        .await
        .map(|r| r.into_inner().leader.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished());
    e.resign(v3electionpb::ResignRequest {
        leader: Some(won.clone()),
    })
    .await
    .unwrap();
    let l2_key = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let seen = observe.next().await.unwrap().unwrap();
    assert_eq!(seen.kv.unwrap().value, b"n2");
    // The old leader can no longer proclaim.
    let err = e
        .proclaim(v3electionpb::ProclaimRequest {
            leader: Some(won),
            value: "stale".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "election: not leader");
    assert_eq!(l2_key.lease, l2);
    drop((lease, e, observe));
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_version_metrics_on_the_client_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    kv.put(put("m", "1")).await.unwrap();
    async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }
    let health = http_get(server.addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains(r#"{"health":"true","reason":""}"#),
        "{health}"
    );
    let version = http_get(server.addr, "/version").await;
    assert!(version.contains(r#""etcdserver":"3.5.0""#), "{version}");
    let metrics = http_get(server.addr, "/metrics").await;
    for name in [
        "etcd_server_has_leader 1",
        "etcd_mvcc_db_total_size_in_bytes ",
        "etcd_mvcc_put_total 1",
        "etcd_debugging_mvcc_current_revision 2",
        "etcd_network_client_grpc_sent_bytes_total ",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    drop(kv);
    server.stop_and_check().await;
}
