use etch_server::errors::*;
use tonic::Code;

/// etcd's clients recognise the refusal by code and text (clientv3's
/// `ErrTooManyRequests`) and back off; a write the leader had no room for must read the
/// same.
#[test]
fn too_many_requests_is_etcds_resource_exhausted() {
    let status = cluster_to_status(&etch_replication::Error::TooManyRequests);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "etcdserver: too many requests");
}
