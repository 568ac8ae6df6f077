//! etcd's gRPC errors: the status codes and message texts of etcd's `rpctypes`, which clients
//! match on (clientv3 maps the message text back to a typed error).

use etch_engine::Error;
use tonic::{Code, Status};

/// `etcdserver: key is not provided`
pub fn empty_key() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

/// `etcdserver: too many operations in txn request`
pub fn too_many_ops() -> Status {
    Status::invalid_argument("etcdserver: too many operations in txn request")
}

/// `etcdserver: duplicate key given in txn request`
pub fn duplicate_key() -> Status {
    Status::invalid_argument("etcdserver: duplicate key given in txn request")
}

/// `etcdserver: mvcc: required revision has been compacted`
pub fn compacted() -> Status {
    Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
}

/// `etcdserver: mvcc: required revision is a future revision`
pub fn future_revision() -> Status {
    Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
}

/// `etcdserver: mvcc: database space exceeded`
pub fn no_space() -> Status {
    Status::resource_exhausted("etcdserver: mvcc: database space exceeded")
}

/// `etcdserver: requested lease not found`
pub fn lease_not_found() -> Status {
    Status::not_found("etcdserver: requested lease not found")
}

/// `etcdserver: too large lease TTL`
pub fn lease_ttl_too_large() -> Status {
    Status::out_of_range("etcdserver: too large lease TTL")
}

/// `etcdserver: request is too large`
pub fn request_too_large() -> Status {
    Status::invalid_argument("etcdserver: request is too large")
}

/// `etcdserver: too many requests`
pub fn too_many_requests() -> Status {
    Status::resource_exhausted("etcdserver: too many requests")
}

/// `etcdserver: member not found`
pub fn member_not_found() -> Status {
    Status::not_found("etcdserver: member not found")
}

/// `etcdserver: re-configuration failed due to not enough started members`
pub fn member_not_enough_started() -> Status {
    Status::failed_precondition(
        "etcdserver: re-configuration failed due to not enough started members",
    )
}

/// `etcdserver: can only promote a learner member`
pub fn member_not_learner() -> Status {
    Status::failed_precondition("etcdserver: can only promote a learner member")
}

/// `etcdserver: bad leader transferee`
pub fn bad_leader_transferee() -> Status {
    Status::failed_precondition("etcdserver: bad leader transferee")
}

/// `etcdserver: server stopped`
pub fn stopped() -> Status {
    Status::unavailable("etcdserver: server stopped")
}

/// `etcdserver: invalid sort option` (an enum value outside etcd's).
pub fn invalid_sort_option() -> Status {
    Status::invalid_argument("etcdserver: invalid sort option")
}

/// The gRPC error etcd returns for the engine's error `e`.
pub fn to_status(e: &Error) -> Status {
    match e {
        Error::EmptyKey => empty_key(),
        Error::KeyTooLarge { .. } | Error::RequestTooLarge { .. } => request_too_large(),
        Error::TooManyOps { .. } => too_many_ops(),
        Error::DuplicateKey { .. } => duplicate_key(),
        Error::KeyNotFound => Status::invalid_argument("etcdserver: key not found"),
        Error::ValueProvided => Status::invalid_argument("etcdserver: value is provided"),
        Error::LeaseProvided => Status::invalid_argument("etcdserver: lease is provided"),
        Error::LeaseNotFound { .. } => lease_not_found(),
        Error::LeaseExists { .. } => {
            Status::failed_precondition("etcdserver: lease already exists")
        }
        Error::Compacted { .. } => compacted(),
        Error::FutureRevision { .. } => future_revision(),
        Error::QuotaExceeded { .. } | Error::NoSpace(_) => no_space(),
        Error::Closed => stopped(),
        Error::Corrupt(_) => Status::new(Code::DataLoss, "etcdserver: corrupt cluster"),
        Error::InvalidOption(msg) => Status::invalid_argument(format!("etcdserver: {msg}")),
        Error::Conflict { .. } => Status::unavailable(format!("etch: {e}")),
        other => Status::internal(format!("etch: {other}")),
    }
}

/// `etcdserver: no leader`
pub fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

/// `etcdserver: request timed out`
pub fn timeout() -> Status {
    Status::unavailable("etcdserver: request timed out")
}

/// `etcdserver: not leader`
pub fn not_leader() -> Status {
    Status::failed_precondition("etcdserver: not leader")
}

/// `etcdserver: the member has been permanently removed from the cluster` (this member is
/// not, or no longer, in the membership: it serves no writes and no linearizable reads).
pub fn removed() -> Status {
    Status::unavailable("etcdserver: the member has been permanently removed from the cluster")
}

/// `etcdserver: member ID already exist`
pub fn member_exists() -> Status {
    Status::failed_precondition("etcdserver: member ID already exist")
}

/// `etcdserver: Peer URLs already exists`
pub fn peer_url_exists() -> Status {
    Status::failed_precondition("etcdserver: Peer URLs already exists")
}

/// `etcdserver: unhealthy cluster` (a membership change openraft refused, e.g. one still
/// in progress).
pub fn unhealthy() -> Status {
    Status::unavailable("etcdserver: unhealthy cluster")
}

/// The gRPC error etcd returns for a replicated store's error `e`: the store's own errors as
/// [`to_status`], the cluster's as etcd's texts.
pub fn cluster_to_status(e: &etch_replication::Error) -> Status {
    use etch_replication::Error as E;
    match e {
        E::Store(e) => to_status(e),
        E::NoLeader => no_leader(),
        E::Timeout => timeout(),
        E::NotMember { .. } => removed(),
        E::NotLeader { .. } => not_leader(),
        E::Shutdown => stopped(),
        E::TooManyRequests => too_many_requests(),
        E::Raft(msg) => Status::unavailable(format!("etcdserver: {msg}")),
        other => Status::internal(format!("etch: {other}")),
    }
}
