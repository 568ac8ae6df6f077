//! A recorded client history: what each client asked, when, and what it was told.

/// One client operation as a test recorded it.
///
/// Times are in any monotonic unit shared by all clients (the simulation uses nanoseconds of
/// simulated time). Intervals are closed: an operation that returned at `t` and one invoked at
/// `t` are treated as concurrent, which can only make the checker accept more histories, never
/// reject a linearizable one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued the operation (used only in reports).
    pub client: u64,
    /// When the request was sent.
    pub invoke: u64,
    /// What was asked.
    pub request: Request,
    /// What came back, if anything.
    pub outcome: Outcome,
}

/// A request against etcd's KV model with leases. A KV request names exactly one key and at
/// most one lease; a lease request names one lease. That is what lets the checker split a
/// history into one sub-history per key and per lease (see the crate's `check` module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `put(key, value)`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// A linearizable `get(key)` (serializable reads are not linearizable and must not be given
    /// to the checker).
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// `delete(key)` of a single key.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// `txn(if compare(key) then put(key, value) else get(key))`: etcd's compare-and-swap.
    Txn {
        /// The key compared, written on success and read on failure.
        key: Vec<u8>,
        /// The guard.
        compare: Compare,
        /// The value put when the guard holds.
        value: Vec<u8>,
    },
    /// `put(key, value)` attached to a lease (a plain [`Request::Put`] detaches the key from any
    /// lease, as in etcd). Answered by [`Response::Put`], or [`Response::LeaseNotFound`] when
    /// the lease did not exist.
    LeasePut {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// The lease (not 0).
        lease: i64,
    },
    /// `lease_grant(ttl, lease)`. Answered by [`Response::LeaseGrant`].
    LeaseGrant {
        /// The lease.
        lease: i64,
    },
    /// `lease_revoke(lease)`: the lease ends and every key attached to it is deleted, at one
    /// revision. Answered by [`Response::LeaseRevoke`] or [`Response::LeaseNotFound`].
    LeaseRevoke {
        /// The lease.
        lease: i64,
    },
    /// `lease_keep_alive(lease)`. Answered by [`Response::LeaseKeepAlive`] or
    /// [`Response::LeaseNotFound`].
    LeaseKeepAlive {
        /// The lease.
        lease: i64,
    },
}

impl Request {
    /// The key the request touches, if it is a KV request.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Request::Put { key, .. }
            | Request::Get { key }
            | Request::Delete { key }
            | Request::Txn { key, .. }
            | Request::LeasePut { key, .. } => Some(key),
            Request::LeaseGrant { .. }
            | Request::LeaseRevoke { .. }
            | Request::LeaseKeepAlive { .. } => None,
        }
    }

    /// The lease the request names, if any.
    pub fn lease(&self) -> Option<i64> {
        match self {
            Request::LeasePut { lease, .. }
            | Request::LeaseGrant { lease }
            | Request::LeaseRevoke { lease }
            | Request::LeaseKeepAlive { lease } => Some(*lease),
            Request::Put { .. }
            | Request::Get { .. }
            | Request::Delete { .. }
            | Request::Txn { .. } => None,
        }
    }

    /// Whether the request only observes (a lost answer then constrains nothing).
    pub(crate) fn is_read_only(&self) -> bool {
        matches!(self, Request::Get { .. } | Request::LeaseKeepAlive { .. })
    }
}

/// A transaction guard on one key, with etcd's meaning for an absent key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Compare {
    /// `mod_revision(key) == r`; an absent key has mod revision 0.
    ModRevision(u64),
    /// `version(key) == v`; an absent key has version 0.
    Version(u64),
    /// `value(key) == v`; false when the key is absent.
    Value(Vec<u8>),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client got an answer at time `at`.
    Returned {
        /// When the answer arrived (not before `invoke`).
        at: u64,
        /// The answer.
        response: Response,
    },
    /// No answer (timeout, connection lost, leader change): the operation may or may not have
    /// taken effect, at any time after its invocation.
    Unknown,
}

/// A successful answer. `revision` is always the response header's revision: the store's revision
/// right after the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::Put`].
    Put {
        /// The revision the put created.
        revision: u64,
    },
    /// Answer to [`Request::Get`].
    Get {
        /// Header revision.
        revision: u64,
        /// The key's live version, if any.
        kv: Option<KeyValue>,
    },
    /// Answer to [`Request::Delete`].
    Delete {
        /// Header revision: the new revision when something was deleted, else the current one.
        revision: u64,
        /// Whether the key existed and was deleted.
        deleted: bool,
    },
    /// Answer to [`Request::Txn`].
    Txn {
        /// Header revision: the new revision when the guard held, else the current one.
        revision: u64,
        /// Whether the guard held (and the put ran).
        succeeded: bool,
        /// When the guard failed: what the else branch's `get(key)` returned. Ignored on success.
        kv: Option<KeyValue>,
    },
    /// Answer to [`Request::LeaseGrant`] (a grant creates no revision).
    LeaseGrant,
    /// Answer to [`Request::LeaseRevoke`].
    LeaseRevoke {
        /// Header revision: a new one when keys were attached and deleted, else the current one.
        revision: u64,
    },
    /// Answer to [`Request::LeaseKeepAlive`]: the lease was alive and is renewed.
    LeaseKeepAlive,
    /// The lease named by a [`Request::LeasePut`], [`Request::LeaseRevoke`] or
    /// [`Request::LeaseKeepAlive`] did not exist (never granted, or revoked): nothing changed.
    LeaseNotFound,
}

/// A key's live version as a read returned it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the put that created this incarnation of the key.
    pub create_revision: u64,
    /// Revision of the last put.
    pub mod_revision: u64,
    /// Number of puts since creation (1 right after creation).
    pub version: u64,
}

/// A history the checker cannot interpret (a bug in the test that recorded it, not in the system
/// under test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// The response does not answer the request (e.g. a `Get` answered by a `Put` response).
    MismatchedResponse {
        /// Index of the operation in the history.
        op: usize,
    },
    /// The operation returned before it was invoked.
    ReturnedBeforeInvoked {
        /// Index of the operation in the history.
        op: usize,
    },
    /// The operation names lease 0, which means "no lease".
    ZeroLease {
        /// Index of the operation in the history.
        op: usize,
    },
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HistoryError::MismatchedResponse { op } => {
                write!(f, "operation {op}: the response does not match the request")
            }
            HistoryError::ReturnedBeforeInvoked { op } => {
                write!(f, "operation {op}: returned before it was invoked")
            }
            HistoryError::ZeroLease { op } => {
                write!(f, "operation {op}: names lease 0 (no lease)")
            }
        }
    }
}

impl std::error::Error for HistoryError {}

/// Checks the shape of every operation (not its consistency).
pub(crate) fn validate(history: &[Operation]) -> Result<(), HistoryError> {
    for (i, op) in history.iter().enumerate() {
        if op.request.lease() == Some(0) {
            return Err(HistoryError::ZeroLease { op: i });
        }
        let Outcome::Returned { at, response } = &op.outcome else {
            continue;
        };
        if *at < op.invoke {
            return Err(HistoryError::ReturnedBeforeInvoked { op: i });
        }
        let matches = matches!(
            (&op.request, response),
            (Request::Put { .. }, Response::Put { .. })
                | (Request::Get { .. }, Response::Get { .. })
                | (Request::Delete { .. }, Response::Delete { .. })
                | (Request::Txn { .. }, Response::Txn { .. })
                | (
                    Request::LeasePut { .. },
                    Response::Put { .. } | Response::LeaseNotFound
                )
                | (Request::LeaseGrant { .. }, Response::LeaseGrant)
                | (
                    Request::LeaseRevoke { .. },
                    Response::LeaseRevoke { .. } | Response::LeaseNotFound
                )
                | (
                    Request::LeaseKeepAlive { .. },
                    Response::LeaseKeepAlive | Response::LeaseNotFound
                )
        );
        if !matches {
            return Err(HistoryError::MismatchedResponse { op: i });
        }
    }
    Ok(())
}
