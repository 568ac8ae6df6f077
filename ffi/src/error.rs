//! Status codes, their static descriptions, and the mapping from the engine's [`Error`].

use std::ffi::{c_char, c_int};

use etch_engine::Error;

/// Success.
pub const ETCH_OK: c_int = 0;
/// Not an error: the key or lease does not exist, an iterator is exhausted, or a watch poll
/// timed out with nothing to report. Output parameters are left as documented per function.
pub const ETCH_NOT_FOUND: c_int = 1;
/// The requested revision has been compacted away.
pub const ETCH_COMPACTED: c_int = 2;
/// The requested revision is newer than the store's current revision.
pub const ETCH_FUTURE_REV: c_int = 3;
/// The file is locked by another process, or already open in this one.
pub const ETCH_LOCKED: c_int = 4;
/// The file or its WAL is damaged (etch_errmsg() names the page or offset).
pub const ETCH_CORRUPT: c_int = 5;
/// An I/O error from the operating system.
pub const ETCH_IO: c_int = 6;
/// The disk is full (ENOSPC or EDQUOT). Nothing acknowledged is lost; free space and reopen.
pub const ETCH_NOSPACE: c_int = 7;
/// A bad argument: a NULL pointer where one is required, an empty key, an option out of range,
/// an unknown enum value, a key written twice in one transaction, a value or lease given
/// together with ignore_value / ignore_lease.
pub const ETCH_INVALID: c_int = 8;
/// A key, a request or a transaction exceeds the configured limits (max_key_size,
/// max_request_bytes, max_txn_ops).
pub const ETCH_TOO_LARGE: c_int = 9;
/// An optimistic transaction (etch_write()) kept conflicting with concurrent writers and gave
/// up after `etch_options.write_attempts` attempts.
pub const ETCH_CONFLICT: c_int = 10;
/// A bug in etch (a Rust panic was caught at the boundary). The handle stays usable, but
/// please report it with etch_errmsg().
pub const ETCH_INTERNAL: c_int = 11;
/// The file is not an etch file, or was written by a newer version of etch.
pub const ETCH_FORMAT: c_int = 12;
/// The store's space quota is exceeded (etcd's NOSPACE alarm): writes that add data are
/// refused; reads, deletes, compaction and defrag still work.
pub const ETCH_QUOTA: c_int = 13;
/// An earlier write or sync failed, so this handle refuses writes; reopen the file to recover
/// every acknowledged commit.
pub const ETCH_POISONED: c_int = 14;
/// The store was closed (seen by watches that outlive etch_close()), or the watch has ended.
pub const ETCH_CLOSED: c_int = 15;
/// The lease (or other object) to create already exists.
pub const ETCH_EXISTS: c_int = 16;
/// The store was opened read-only: every write is refused.
pub const ETCH_READONLY: c_int = 17;
/// The WAL is damaged in the middle: valid, acknowledged records follow the damage, so the
/// open refused to drop them and changed nothing. etch_errmsg(NULL) names the WAL offset, the
/// last good sequence number and how many records follow. Reopen with
/// `etch_options.repair_wal` set to keep a copy of the WAL and recover up to the damage
/// (etch_wal_repair() then reports it). Distinct from ETCH_CORRUPT, which no option repairs.
pub const ETCH_WAL_DAMAGED: c_int = 18;
/// A cluster member or remote handle could not serve the call now: the cluster has no leader
/// this member can reach (an election is running, or a majority is down), or no endpoint of a
/// remote handle answered. Nothing was applied; retrying later is safe.
pub const ETCH_UNAVAILABLE: c_int = 19;
/// No answer came within the request timeout (a member's `request_timeout_ms`, a remote
/// handle's `request_timeout_ms`), or a remote connection broke after the request was sent.
/// The outcome is **unknown**: a write may still be applied. Make writes idempotent, or read
/// before retrying.
pub const ETCH_TIMEOUT: c_int = 20;
/// This cluster member is not, or no longer, in the cluster's membership (not added yet, or
/// removed): it serves no writes and no linearizable reads.
pub const ETCH_NOT_MEMBER: c_int = 21;
/// A cluster or server failure not covered by another code: Raft refused a change or stopped
/// on this member, the peer port could not be bound, or a server answered with an error of its
/// own (etch_errmsg() has its text).
pub const ETCH_CLUSTER: c_int = 22;
/// The call is not available on this kind of handle (e.g. etch_defrag() on a remote server,
/// etch_member_info() on a local file).
pub const ETCH_UNSUPPORTED: c_int = 23;
/// The cluster is too busy to take the write now (etcd's `too many requests`): the leader's
/// Raft log has no safe room for it, or committed entries wait to be applied (more than
/// `max_apply_lag`, etcd's 5,000). Nothing was proposed or applied; retry after a back-off.
pub const ETCH_BUSY: c_int = 24;

/// A failed call: its status code and the message etch_errmsg() will return.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: c_int,
    pub(crate) message: String,
}

impl Failure {
    /// A failure with an explicit code.
    pub(crate) fn new(code: c_int, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// An `ETCH_INVALID` failure.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ETCH_INVALID, message)
    }

    /// An `ETCH_NOT_FOUND` result.
    pub(crate) fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(ETCH_NOT_FOUND, message)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure::new(code_of(&err), err.to_string())
    }
}

/// Result of an entry point's body.
pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

/// The status code for an engine error.
pub(crate) fn code_of(err: &Error) -> c_int {
    match err {
        Error::EmptyKey
        | Error::DuplicateKey { .. }
        | Error::ValueProvided
        | Error::LeaseProvided
        | Error::InvalidOption(_) => ETCH_INVALID,
        Error::KeyTooLarge { .. } | Error::RequestTooLarge { .. } | Error::TooManyOps { .. } => {
            ETCH_TOO_LARGE
        }
        Error::KeyNotFound | Error::LeaseNotFound { .. } => ETCH_NOT_FOUND,
        Error::LeaseExists { .. } => ETCH_EXISTS,
        Error::Compacted { .. } => ETCH_COMPACTED,
        Error::FutureRevision { .. } => ETCH_FUTURE_REV,
        Error::NotEtchFile { .. } | Error::NewerFormat { .. } => ETCH_FORMAT,
        Error::Corrupt(_) => ETCH_CORRUPT,
        Error::WalDamaged { .. } => ETCH_WAL_DAMAGED,
        Error::Locked { .. } => ETCH_LOCKED,
        Error::NoSpace(_) => ETCH_NOSPACE,
        Error::Io(_) | Error::Open { .. } => ETCH_IO,
        Error::ReadOnly { .. } => ETCH_READONLY,
        Error::Poisoned(_) => ETCH_POISONED,
        Error::Closed => ETCH_CLOSED,
        Error::QuotaExceeded { .. } => ETCH_QUOTA,
        Error::Conflict { .. } => ETCH_CONFLICT,
        _ => ETCH_INTERNAL,
    }
}

/// A static, NUL-terminated English description of a status code ("unknown status code" for
/// codes etch does not define). Never NULL. The string is owned by the library and lives for
/// the whole process: do not free it. Safe to call from any thread at any time.
#[no_mangle]
pub extern "C" fn etch_strerror(code: c_int) -> *const c_char {
    let text: &'static [u8] = match code {
        ETCH_OK => b"ok\0",
        ETCH_NOT_FOUND => b"not found\0",
        ETCH_COMPACTED => b"required revision has been compacted\0",
        ETCH_FUTURE_REV => b"required revision is a future revision\0",
        ETCH_LOCKED => b"database is locked by another process, or already open in this one\0",
        ETCH_CORRUPT => b"database is corrupt\0",
        ETCH_IO => b"I/O error\0",
        ETCH_NOSPACE => b"no space left on device\0",
        ETCH_INVALID => b"invalid argument\0",
        ETCH_TOO_LARGE => b"request exceeds a configured limit\0",
        ETCH_CONFLICT => b"transaction conflicted with concurrent writes\0",
        ETCH_INTERNAL => b"internal error in etch\0",
        ETCH_FORMAT => b"not an etch file, or a newer format version\0",
        ETCH_QUOTA => b"database space quota exceeded (NOSPACE)\0",
        ETCH_POISONED => b"store is read-only after an earlier fatal I/O error\0",
        ETCH_CLOSED => b"store or watch is closed\0",
        ETCH_EXISTS => b"already exists\0",
        ETCH_READONLY => b"store is open read-only\0",
        ETCH_WAL_DAMAGED => b"WAL is damaged before acknowledged records (open with repair_wal)\0",
        ETCH_UNAVAILABLE => b"cluster or server unavailable (no leader, or no endpoint answered)\0",
        ETCH_TIMEOUT => b"request timed out; its outcome is unknown\0",
        ETCH_NOT_MEMBER => b"this member is not in the cluster's membership\0",
        ETCH_CLUSTER => b"cluster or server error\0",
        ETCH_UNSUPPORTED => b"not supported by this kind of handle\0",
        ETCH_BUSY => b"too many requests: the cluster is busy, retry after a back-off\0",
        _ => b"unknown status code\0",
    };
    text.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_engine_error_has_its_code() {
        let io = || std::io::Error::other("x");
        let cases = [
            (Error::EmptyKey, ETCH_INVALID),
            (Error::KeyTooLarge { len: 2, max: 1 }, ETCH_TOO_LARGE),
            (Error::RequestTooLarge { size: 2, max: 1 }, ETCH_TOO_LARGE),
            (Error::TooManyOps { count: 2, max: 1 }, ETCH_TOO_LARGE),
            (Error::DuplicateKey { key: "k".into() }, ETCH_INVALID),
            (Error::KeyNotFound, ETCH_NOT_FOUND),
            (Error::ValueProvided, ETCH_INVALID),
            (Error::LeaseProvided, ETCH_INVALID),
            (Error::LeaseNotFound { id: 1 }, ETCH_NOT_FOUND),
            (Error::LeaseExists { id: 1 }, ETCH_EXISTS),
            (
                Error::Compacted {
                    requested: 1,
                    compacted: 2,
                },
                ETCH_COMPACTED,
            ),
            (
                Error::FutureRevision {
                    requested: 2,
                    current: 1,
                },
                ETCH_FUTURE_REV,
            ),
            (Error::NotEtchFile { path: "p".into() }, ETCH_FORMAT),
            (
                Error::NewerFormat {
                    path: "p".into(),
                    found: 9,
                    supported: 1,
                },
                ETCH_FORMAT,
            ),
            (Error::Corrupt("page 3".into()), ETCH_CORRUPT),
            (
                Error::WalDamaged {
                    path: "p-wal".into(),
                    offset: 4096,
                    last_good_seq: 7,
                    records_after: 3,
                },
                ETCH_WAL_DAMAGED,
            ),
            (
                Error::Locked {
                    path: "p".into(),
                    in_this_process: true,
                },
                ETCH_LOCKED,
            ),
            (Error::ReadOnly { path: "p".into() }, ETCH_READONLY),
            (
                Error::Open {
                    path: "p".into(),
                    action: etch_engine::OpenAction::OpenFile,
                    source: io(),
                },
                ETCH_IO,
            ),
            (Error::NoSpace(io()), ETCH_NOSPACE),
            (Error::Io(io()), ETCH_IO),
            (Error::Poisoned("sync".into()), ETCH_POISONED),
            (Error::Closed, ETCH_CLOSED),
            (Error::QuotaExceeded { used: 2, quota: 1 }, ETCH_QUOTA),
            (Error::Conflict { attempts: 3 }, ETCH_CONFLICT),
            (Error::InvalidOption("x".into()), ETCH_INVALID),
        ];
        for (err, code) in cases {
            let f = Failure::from(err);
            assert_eq!(f.code, code, "{}", f.message);
            assert!(!f.message.is_empty());
        }
    }

    #[test]
    fn strerror_is_distinct_per_code_and_never_null() {
        let mut seen = std::collections::HashSet::new();
        for code in ETCH_OK..=ETCH_BUSY {
            let p = etch_strerror(code);
            assert!(!p.is_null());
            // SAFETY: etch_strerror returns pointers to NUL-terminated static byte strings.
            let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
            assert!(seen.insert(s), "code {code} repeats a description");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(etch_strerror(-7)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown status code");
    }
}
