//! The client's error: the engine's [`etch_engine::Error`] where the server's answer means the
//! same thing, and typed client errors for what only a network client meets.
//!
//! etcd reports errors as a gRPC status whose message is one of a fixed set of texts
//! (`rpctypes` in etcd's code; `etch serve` sends the same). [`from_status`] matches those texts:
//!
//! | gRPC message (`etcdserver: ...`)            | error                                   |
//! |---------------------------------------------|-----------------------------------------|
//! | `key is not provided`                       | [`EngineError::EmptyKey`]               |
//! | `mvcc: required revision has been compacted`| [`EngineError::Compacted`]              |
//! | `mvcc: required revision is a future revision` | [`EngineError::FutureRevision`]      |
//! | `requested lease not found`                 | [`EngineError::LeaseNotFound`]          |
//! | `lease already exists`                      | [`EngineError::LeaseExists`]            |
//! | `key not found`                             | [`EngineError::KeyNotFound`]            |
//! | `value is provided` / `lease is provided`   | [`EngineError::ValueProvided`] / [`EngineError::LeaseProvided`] |
//! | `request is too large`                      | [`EngineError::RequestTooLarge`]        |
//! | `too many operations in txn request`        | [`EngineError::TooManyOps`]             |
//! | `duplicate key given in txn request`        | [`EngineError::DuplicateKey`]           |
//! | `mvcc: database space exceeded`             | [`EngineError::QuotaExceeded`]          |
//! | `too large lease TTL`                       | [`EngineError::InvalidOption`]          |
//! | code `UNAVAILABLE`, or the connection failed | [`Error::Unavailable`]                 |
//! | code `DEADLINE_EXCEEDED`, or the request timeout passed | [`Error::DeadlineExceeded`] |
//! | anything else                               | [`Error::Server`] with code and message |
//!
//! The server's texts carry no numbers, so the fields the client cannot know are filled from
//! the request where it has them (the requested revision, the lease id, the operation count,
//! the request's encoded size) and are 0 otherwise (the compact and current revisions, the
//! server's limits, the duplicated key).

use std::time::Duration;

use etch_engine::Error as EngineError;
use tonic::{Code, Status};

/// Result alias of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request for a reason the local store has too (compacted
    /// revision, lease not found, ...): the same variant a local [`etch_engine::Store`] returns.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `Client::connect` was given no endpoint.
    #[error("no endpoint given")]
    NoEndpoint,
    /// An endpoint is not `host:port`, `http://host:port` or `https://host:port`.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up (unreadable PEM file, certificate the server rejected, server
    /// certificate that does not verify).
    #[error("TLS: {0}")]
    Tls(String),
    /// No endpoint answered (every one refused, dropped the connection or reported itself
    /// unavailable) within the retries.
    #[error("unavailable: {message}")]
    Unavailable {
        /// The last failure, with its causes.
        message: String,
        /// True if a write may have been applied although it failed: the request may have
        /// reached a server before the connection broke. Always false for reads and for writes
        /// that surely never left the client.
        maybe_applied: bool,
    },
    /// The request did not complete within [`crate::ClientOptions::request_timeout`] (or the
    /// server's deadline).
    #[error("deadline exceeded after {timeout:?}")]
    DeadlineExceeded {
        /// The timeout that passed.
        timeout: Duration,
        /// True if a write may have been applied although it timed out.
        maybe_applied: bool,
    },
    /// Any other error status of the server: its gRPC code and message.
    #[error("server error ({code:?}): {message}")]
    Server {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// A blocking method of [`crate::Client`] was called on a thread that runs an async
    /// runtime, where blocking would stall it: use [`crate::AsyncClient`] there.
    #[error("a blocking etch client call was made inside an async runtime; use AsyncClient")]
    InsideRuntime,
    /// An [`crate::AsyncClient`] method that starts a background task was called outside a
    /// tokio runtime.
    #[error("this etch client call needs a tokio runtime (call it from async code on tokio)")]
    OutsideRuntime,
    /// An I/O error of the client itself: writing a snapshot to its destination, or starting
    /// the blocking client's runtime threads.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The engine error, if this is one (so code can match `Compacted`, `LeaseNotFound`, ...
    /// the same way for a local store and a remote server).
    pub fn engine(&self) -> Option<&EngineError> {
        match self {
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }

    /// True for failures of reaching a server (unavailable, timed out) as opposed to the
    /// server refusing the request.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::DeadlineExceeded { .. }
        )
    }
}

/// What the client knows about the request whose error is mapped: fills the fields of the
/// engine's variants that etcd's message texts do not carry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Context {
    /// The revision the request named (a read's or a compaction's).
    pub revision: i64,
    /// The lease the request named.
    pub lease: i64,
    /// The number of operations of a transaction.
    pub ops: usize,
    /// The request's encoded size in bytes.
    pub size: usize,
    /// True for writes: an unavailable or timed-out write may have been applied.
    pub write: bool,
}

/// The error of a status the server (or tonic, for a broken connection) returned.
pub(crate) fn from_status(status: &Status, ctx: &Context, timeout: Duration) -> Error {
    let message = status.message();
    let text = message.strip_prefix("etcdserver: ").unwrap_or(message);
    let engine = match text {
        "key is not provided" => Some(EngineError::EmptyKey),
        "mvcc: required revision has been compacted" => Some(EngineError::Compacted {
            requested: ctx.revision,
            compacted: 0,
        }),
        "mvcc: required revision is a future revision" => Some(EngineError::FutureRevision {
            requested: ctx.revision,
            current: 0,
        }),
        "requested lease not found" => Some(EngineError::LeaseNotFound { id: ctx.lease }),
        "lease already exists" => Some(EngineError::LeaseExists { id: ctx.lease }),
        "key not found" => Some(EngineError::KeyNotFound),
        "value is provided" => Some(EngineError::ValueProvided),
        "lease is provided" => Some(EngineError::LeaseProvided),
        "request is too large" => Some(EngineError::RequestTooLarge {
            size: ctx.size,
            max: 0,
        }),
        "too many operations in txn request" => Some(EngineError::TooManyOps {
            count: ctx.ops,
            max: 0,
        }),
        "duplicate key given in txn request" => {
            Some(EngineError::DuplicateKey { key: String::new() })
        }
        "mvcc: database space exceeded" => Some(EngineError::QuotaExceeded { used: 0, quota: 0 }),
        "too large lease TTL" => Some(EngineError::InvalidOption(message.to_string())),
        _ => None,
    };
    if let Some(e) = engine {
        return Error::Engine(e);
    }
    match status.code() {
        Code::Unavailable => Error::Unavailable {
            message: describe(status),
            maybe_applied: ctx.write,
        },
        Code::DeadlineExceeded => Error::DeadlineExceeded {
            timeout,
            maybe_applied: ctx.write,
        },
        code => Error::Server {
            code,
            message: message.to_string(),
        },
    }
}

/// True if the status says the connection failed (rather than a server's answer): tonic
/// reports those with code `UNAVAILABLE` (or `UNKNOWN` for HTTP/2 failures) and the transport
/// error as its source, where an etcd server's own errors have no source.
pub(crate) fn is_transport_failure(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal | Code::Cancelled => {
            std::error::Error::source(status).is_some()
        }
        _ => false,
    }
}

/// True if the request surely never reached a server: the connection was refused or could
/// not be made, so a write can go to another endpoint without risk of applying it twice.
pub(crate) fn surely_not_sent(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        // hyper's connector wraps the dial failure in an error whose text says so; its type
        // is private, so the text is all there is.
        let text = err.to_string();
        if text.contains("tcp connect error") || text.contains("error trying to connect") {
            return true;
        }
        source = err.source();
    }
    false
}

/// A status's message followed by its causes, `a: b: c` (tonic's own text says little).
pub(crate) fn describe(status: &Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let part = err.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_texts_become_engine_errors() {
        let ctx = Context {
            revision: 7,
            lease: 42,
            ..Context::default()
        };
        let t = Duration::from_secs(1);
        let compacted =
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert!(matches!(
            from_status(&compacted, &ctx, t),
            Error::Engine(EngineError::Compacted { requested: 7, .. })
        ));
        let lease = Status::not_found("etcdserver: requested lease not found");
        assert!(matches!(
            from_status(&lease, &ctx, t),
            Error::Engine(EngineError::LeaseNotFound { id: 42 })
        ));
        let other = Status::permission_denied("etcdserver: permission denied");
        assert!(matches!(
            from_status(&other, &ctx, t),
            Error::Server {
                code: Code::PermissionDenied,
                ..
            }
        ));
        let down = Status::unavailable("etcdserver: server stopped");
        assert!(from_status(&down, &ctx, t).is_unavailable());
    }
}
