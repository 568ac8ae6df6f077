//! The exception hierarchy, mirroring the engine's `Error` enum, and the mapping onto it.
//!
//! Every engine error becomes an instance of one subclass of `etch.Error`; structured fields
//! (revisions, lease ids, paths, limits) are also set as attributes of the exception.

use etch_engine::Error as EngineError;

use crate::backend::BackendError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{create_exception, BoundObject, PyTypeInfo};

create_exception!(
    etch,
    Error,
    PyException,
    "Base class of every error etch raises."
);
create_exception!(
    etch,
    InvalidRequestError,
    Error,
    "The request is malformed or over a limit; fix the request."
);
create_exception!(etch, EmptyKeyError, InvalidRequestError, "A key was empty.");
create_exception!(
    etch,
    KeyTooLargeError,
    InvalidRequestError,
    "A key is longer than `max_key_size` (attributes `len`, `max`)."
);
create_exception!(
    etch,
    RequestTooLargeError,
    InvalidRequestError,
    "The keys and values of one write exceed `max_request_bytes` (attributes `size`, `max`)."
);
create_exception!(
    etch,
    TooManyOpsError,
    InvalidRequestError,
    "A transaction has more operations or compares than `max_txn_ops` (attributes `count`, `max`)."
);
create_exception!(
    etch,
    DuplicateKeyError,
    InvalidRequestError,
    "One transaction branch writes the same key twice (attribute `key`)."
);
create_exception!(
    etch,
    KeyNotFoundError,
    InvalidRequestError,
    "`ignore_value` or `ignore_lease` was used on a key that does not exist."
);
create_exception!(
    etch,
    ValueProvidedError,
    InvalidRequestError,
    "`ignore_value` was set together with a non-empty value."
);
create_exception!(
    etch,
    LeaseProvidedError,
    InvalidRequestError,
    "`ignore_lease` was set together with a lease."
);
create_exception!(
    etch,
    InvalidOptionError,
    InvalidRequestError,
    "An option or argument is out of range (an open option, a lease TTL, ...)."
);
create_exception!(
    etch,
    LeaseNotFoundError,
    Error,
    "No lease with this id exists: never granted, revoked or expired (attribute `id`)."
);
create_exception!(
    etch,
    LeaseExistsError,
    Error,
    "A lease with this id already exists (attribute `id`)."
);
create_exception!(
    etch,
    CompactedError,
    Error,
    "The requested revision has been compacted (attributes `requested`, `compact_revision`, and `compacted_revision` as python-etcd3 spells it)."
);
create_exception!(
    etch,
    FutureRevisionError,
    Error,
    "The requested revision is newer than the current one (attributes `requested`, `current`)."
);
create_exception!(
    etch,
    NotEtchFileError,
    Error,
    "The file is not an etch file (attribute `path`)."
);
create_exception!(
    etch,
    NewerFormatError,
    Error,
    "The file was written by a newer version of etch (attribute `path`)."
);
create_exception!(
    etch,
    CorruptError,
    Error,
    "The file or its WAL is damaged; the message names the page or offset."
);
create_exception!(
    etch,
    LockedError,
    Error,
    "Another process or Store in this process has the file open (attribute `path`)."
);
create_exception!(
    etch,
    ReadOnlyError,
    Error,
    "The store was opened read-only and refuses every write (attribute `path`)."
);
create_exception!(
    etch,
    StorageError,
    Error,
    "An I/O error from the operating system (attribute `errno`, or None)."
);
create_exception!(
    etch,
    NoSpaceError,
    StorageError,
    "The disk is full; nothing acknowledged is lost: free space and reopen."
);
create_exception!(
    etch,
    PoisonedError,
    Error,
    "An earlier write or sync failed, so this handle refuses writes; reopen to recover."
);
create_exception!(
    etch,
    ClosedError,
    Error,
    "The store (or this object's store) is closed."
);
create_exception!(
    etch,
    QuotaExceededError,
    Error,
    "The store is past its space quota (etcd's NOSPACE alarm); delete, compact and defrag."
);
create_exception!(
    etch,
    ConflictError,
    Error,
    "An optimistic write transaction kept conflicting with concurrent writers (attribute `attempts`)."
);

create_exception!(
    etch,
    UnavailableError,
    Error,
    "No server or cluster leader could be reached in time (attribute `maybe_applied`: True if a write may have been applied all the same). Retrying may succeed."
);
create_exception!(
    etch,
    DeadlineExceededError,
    UnavailableError,
    "A request to a server or a cluster did not complete within its timeout; its outcome is unknown for a write (attribute `maybe_applied`)."
);
create_exception!(
    etch,
    TooManyRequestsError,
    UnavailableError,
    "The cluster is too busy to take the write now (etcd's `too many requests`: the leader's Raft log has no safe room, or committed entries wait to be applied). Nothing was proposed (`maybe_applied` is False); retry after a back-off."
);
create_exception!(
    etch,
    ClusterError,
    Error,
    "A cluster member refused the request for a cluster reason: not (or no longer) a member, not the leader, a Raft failure."
);
create_exception!(
    etch,
    ServerError,
    Error,
    "A server answered with an error etch has no other class for (attributes `code`: the gRPC code name, `message`)."
);
create_exception!(
    etch,
    UnsupportedError,
    Error,
    "This kind of store cannot do this (a remote store has no local file to checkpoint, ...)."
);

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    macro_rules! add {
        ($($name:ident),* $(,)?) => {
            $( m.add(stringify!($name), $name::type_object(py))?; )*
        };
    }
    add!(
        Error,
        InvalidRequestError,
        EmptyKeyError,
        KeyTooLargeError,
        RequestTooLargeError,
        TooManyOpsError,
        DuplicateKeyError,
        KeyNotFoundError,
        ValueProvidedError,
        LeaseProvidedError,
        InvalidOptionError,
        LeaseNotFoundError,
        LeaseExistsError,
        CompactedError,
        FutureRevisionError,
        NotEtchFileError,
        NewerFormatError,
        CorruptError,
        LockedError,
        ReadOnlyError,
        StorageError,
        NoSpaceError,
        PoisonedError,
        ClosedError,
        QuotaExceededError,
        ConflictError,
        UnavailableError,
        DeadlineExceededError,
        TooManyRequestsError,
        ClusterError,
        ServerError,
        UnsupportedError,
    );
    Ok(())
}

/// Converts an engine error into the matching Python exception.
pub fn to_py(err: EngineError) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(e) => e,
        Err(e) => e,
    })
}

/// `Result<T, EngineError>` into `PyResult<T>`, for `?` at the boundary.
pub trait IntoPyResult<T> {
    /// Maps the error with [`to_py`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, EngineError> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

impl<T> IntoPyResult<T> for Result<T, BackendError> {
    fn py(self) -> PyResult<T> {
        self.map_err(backend_to_py)
    }
}

/// Converts a backend error: engine errors as [`to_py`], the others into the cluster and
/// network exceptions.
pub fn backend_to_py(err: BackendError) -> PyErr {
    use etch_client::Error as C;
    use etch_replication::Error as R;
    let unavailable = |msg: String, maybe_applied: bool| {
        with_attrs(
            UnavailableError::new_err(msg),
            &[("maybe_applied", maybe_applied)],
        )
    };
    let deadline = |msg: String, maybe_applied: bool| {
        with_attrs(
            DeadlineExceededError::new_err(msg),
            &[("maybe_applied", maybe_applied)],
        )
    };
    match err {
        BackendError::Engine(e) => to_py(e),
        BackendError::Unsupported(what) => {
            UnsupportedError::new_err(format!("{what} is not available on this kind of store"))
        }
        BackendError::Config(msg) => InvalidOptionError::new_err(msg),
        BackendError::Client(e) => {
            let msg = e.to_string();
            match e {
                C::Unavailable { maybe_applied, .. } => unavailable(msg, maybe_applied),
                C::DeadlineExceeded { maybe_applied, .. } => deadline(msg, maybe_applied),
                C::Tls(_) => unavailable(msg, false),
                C::NoEndpoint | C::InvalidEndpoint { .. } => InvalidOptionError::new_err(msg),
                // etcd's answer when the cluster cannot take a write now.
                C::Server { message, .. } if message == "etcdserver: too many requests" => {
                    with_attrs(
                        TooManyRequestsError::new_err(msg),
                        &[("maybe_applied", false)],
                    )
                }
                C::Server { code, message } => Python::attach(|py| {
                    let e = ServerError::new_err(msg);
                    let v = e.value(py);
                    let _ = v.setattr("code", format!("{code:?}"));
                    let _ = v.setattr("message", message);
                    e
                }),
                C::Io(io) => to_py(EngineError::Io(io)),
                _ => Error::new_err(msg),
            }
        }
        BackendError::Cluster(e) => {
            let msg = e.to_string();
            match e {
                R::NoLeader => unavailable(msg, false),
                R::Timeout => deadline(msg, true),
                R::Shutdown => ClosedError::new_err(msg),
                R::TooManyRequests => with_attrs(
                    TooManyRequestsError::new_err(msg),
                    &[("maybe_applied", false)],
                ),
                _ => ClusterError::new_err(msg),
            }
        }
    }
}

/// `err` with boolean attributes set.
fn with_attrs(err: PyErr, attrs: &[(&str, bool)]) -> PyErr {
    Python::attach(|py| {
        let v = err.value(py);
        for (name, value) in attrs {
            let _ = v.setattr(*name, *value);
        }
    });
    err
}

/// The exception for `err` with its structured fields set as attributes.
fn build(py: Python<'_>, err: &EngineError) -> PyResult<PyErr> {
    let msg = err.to_string();
    let (pyerr, attrs): (PyErr, Vec<(&str, Py<PyAny>)>) = match err {
        EngineError::EmptyKey => (EmptyKeyError::new_err(msg), vec![]),
        EngineError::KeyTooLarge { len, max } => (
            KeyTooLargeError::new_err(msg),
            vec![("len", obj(py, *len)?), ("max", obj(py, *max)?)],
        ),
        EngineError::RequestTooLarge { size, max } => (
            RequestTooLargeError::new_err(msg),
            vec![("size", obj(py, *size)?), ("max", obj(py, *max)?)],
        ),
        EngineError::TooManyOps { count, max } => (
            TooManyOpsError::new_err(msg),
            vec![("count", obj(py, *count)?), ("max", obj(py, *max)?)],
        ),
        EngineError::DuplicateKey { key } => (
            DuplicateKeyError::new_err(msg),
            vec![("key", obj(py, key.as_str())?)],
        ),
        EngineError::KeyNotFound => (KeyNotFoundError::new_err(msg), vec![]),
        EngineError::ValueProvided => (ValueProvidedError::new_err(msg), vec![]),
        EngineError::LeaseProvided => (LeaseProvidedError::new_err(msg), vec![]),
        EngineError::LeaseNotFound { id } => (
            LeaseNotFoundError::new_err(msg),
            vec![("id", obj(py, *id)?)],
        ),
        EngineError::LeaseExists { id } => {
            (LeaseExistsError::new_err(msg), vec![("id", obj(py, *id)?)])
        }
        EngineError::Compacted {
            requested,
            compacted,
        } => (
            CompactedError::new_err(msg),
            vec![
                ("requested", obj(py, *requested)?),
                ("compact_revision", obj(py, *compacted)?),
                // python-etcd3's `RevisionCompactedError` spelling.
                ("compacted_revision", obj(py, *compacted)?),
            ],
        ),
        EngineError::FutureRevision { requested, current } => (
            FutureRevisionError::new_err(msg),
            vec![
                ("requested", obj(py, *requested)?),
                ("current", obj(py, *current)?),
            ],
        ),
        EngineError::NotEtchFile { path } => (
            NotEtchFileError::new_err(msg),
            vec![("path", obj(py, path.to_string_lossy().as_ref())?)],
        ),
        EngineError::NewerFormat { path, .. } => (
            NewerFormatError::new_err(msg),
            vec![("path", obj(py, path.to_string_lossy().as_ref())?)],
        ),
        // The WAL figures exist only for a damaged WAL; None otherwise, so every CorruptError
        // has the same attributes.
        EngineError::Corrupt(_) => (
            CorruptError::new_err(msg),
            vec![
                ("path", py.None()),
                ("offset", py.None()),
                ("last_good_seq", py.None()),
                ("records_after", py.None()),
            ],
        ),
        EngineError::WalDamaged {
            path,
            offset,
            last_good_seq,
            records_after,
        } => (
            CorruptError::new_err(msg),
            vec![
                ("path", obj(py, path.to_string_lossy().as_ref())?),
                ("offset", obj(py, *offset)?),
                ("last_good_seq", obj(py, *last_good_seq)?),
                ("records_after", obj(py, *records_after)?),
            ],
        ),
        EngineError::ReadOnly { path } => (
            ReadOnlyError::new_err(msg),
            vec![("path", obj(py, path.to_string_lossy().as_ref())?)],
        ),
        EngineError::Open { source, .. } => (
            StorageError::new_err(msg),
            vec![("errno", obj(py, source.raw_os_error())?)],
        ),
        EngineError::Locked { path, .. } => (
            LockedError::new_err(msg),
            vec![("path", obj(py, path.to_string_lossy().as_ref())?)],
        ),
        EngineError::NoSpace(io) => (
            NoSpaceError::new_err(msg),
            vec![("errno", obj(py, io.raw_os_error())?)],
        ),
        EngineError::Io(io) => (
            StorageError::new_err(msg),
            vec![("errno", obj(py, io.raw_os_error())?)],
        ),
        EngineError::Poisoned(_) => (PoisonedError::new_err(msg), vec![]),
        EngineError::Closed => (ClosedError::new_err(msg), vec![]),
        EngineError::QuotaExceeded { used, quota } => (
            QuotaExceededError::new_err(msg),
            vec![("used", obj(py, *used)?), ("quota", obj(py, *quota)?)],
        ),
        EngineError::Conflict { attempts } => (
            ConflictError::new_err(msg),
            vec![("attempts", obj(py, *attempts)?)],
        ),
        EngineError::InvalidOption(_) => (InvalidOptionError::new_err(msg), vec![]),
        // The engine's enum is non-exhaustive: a variant added later is still an etch.Error.
        _ => (Error::new_err(msg), vec![]),
    };
    let value = pyerr.value(py);
    for (name, v) in attrs {
        value.setattr(name, v)?;
    }
    Ok(pyerr)
}

fn obj<T: for<'py> IntoPyObject<'py>>(py: Python<'_>, v: T) -> PyResult<Py<PyAny>> {
    v.into_pyobject(py)
        .map(|b| b.into_any().unbind())
        .map_err(Into::into)
}

/// The `ClosedError` raised by a handle whose store was closed through `Store.close`.
pub fn closed() -> PyErr {
    ClosedError::new_err("store is closed")
}
