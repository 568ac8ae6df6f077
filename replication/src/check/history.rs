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

/// A request against etcd's KV model. Every request names exactly one key, which is what lets the
/// checker split a history by key.
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
}

impl Request {
    /// The key the request touches.
    pub fn key(&self) -> &[u8] {
        match self {
            Request::Put { key, .. }
            | Request::Get { key }
            | Request::Delete { key }
            | Request::Txn { key, .. } => key,
        }
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
        }
    }
}

impl std::error::Error for HistoryError {}

/// Checks the shape of every operation (not its consistency).
pub(crate) fn validate(history: &[Operation]) -> Result<(), HistoryError> {
    for (i, op) in history.iter().enumerate() {
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
        );
        if !matches {
            return Err(HistoryError::MismatchedResponse { op: i });
        }
    }
    Ok(())
}
