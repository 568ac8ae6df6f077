//! The one error type of the engine.
//!
//! Every fallible public function returns [`Result<T>`](Result). Variants are grouped by what the
//! caller can do about them: fix the request (`EmptyKey`, `KeyTooLarge`, ...), pick another
//! revision (`Compacted`, `FutureRevision`), wait or pick another file (`Locked`), open the file
//! another way (`ReadOnly`, `Open`), or give up on this handle (`Corrupt`, `Io` after a failed
//! sync, which poisons the store).

use std::path::PathBuf;

/// Result alias used throughout etch.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in etch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key was empty; etcd rejects empty keys and so does etch.
    #[error("key is empty")]
    EmptyKey,
    /// A key is longer than the configured maximum.
    #[error("key of {len} bytes exceeds the maximum key size of {max} bytes")]
    KeyTooLarge {
        /// Length of the offending key.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A request (the keys and values of one write) is larger than the configured maximum
    /// (etcd's `--max-request-bytes`, 1.5 MiB by default).
    #[error("request of {size} bytes exceeds the maximum request size of {max} bytes")]
    RequestTooLarge {
        /// Size of the request in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A batch or transaction has more operations than allowed (etcd's `--max-txn-ops`, 128).
    #[error("too many operations in one transaction: {count} > {max}")]
    TooManyOps {
        /// Number of operations in the request.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// The same key is written twice in one batch (etcd: "duplicate key given in txn request").
    #[error("duplicate key given in txn request: {key:?}")]
    DuplicateKey {
        /// The key written twice (lossy UTF-8 for display).
        key: String,
    },
    /// `ignore_value` or `ignore_lease` was used on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// `ignore_value` was set together with a non-empty value.
    #[error("value is provided")]
    ValueProvided,
    /// `ignore_lease` was set together with a lease.
    #[error("lease is provided")]
    LeaseProvided,
    /// No lease with this id exists (never granted, revoked, or expired).
    #[error("requested lease not found (id {id})")]
    LeaseNotFound {
        /// The lease id.
        id: i64,
    },
    /// A lease with this id already exists.
    #[error("lease {id} already exists")]
    LeaseExists {
        /// The lease id.
        id: i64,
    },
    /// The requested revision has been compacted.
    #[error(
        "mvcc: required revision has been compacted (requested {requested}, compact revision {compacted})"
    )]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The store's compact revision.
        compacted: i64,
    },
    /// The requested revision is newer than the store's current revision.
    #[error(
        "mvcc: required revision is a future revision (requested {requested}, current revision {current})"
    )]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },
    /// The file does not start with etch's magic number.
    #[error("{path}: not an etch file")]
    NotEtchFile {
        /// The file that was opened.
        path: PathBuf,
    },
    /// The file was written by a newer version of etch.
    #[error("{path}: file format version {found} is newer than the supported version {supported}")]
    NewerFormat {
        /// The file that was opened.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// The file (or its WAL) is damaged; the message names the page or offset and what failed.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// The WAL is damaged in the middle: the log breaks at `offset`, yet `records_after` valid
    /// records follow that were written after the missing one was durable, so replaying up to
    /// the damage would silently drop acknowledged commits. Nothing was changed. Open with
    /// [`crate::Options::repair_wal`] (`etch check --repair`) to keep a copy of the WAL and
    /// recover up to the damage.
    #[error(
        "{path}: WAL is damaged at offset {offset}: the log breaks after sequence number \
         {last_good_seq}, and {records_after} valid records written after it follow \
         (acknowledged commits); the WAL was left untouched. To recover up to the damage, \
         keeping a copy of the WAL, open with repair (Options::repair_wal, `etch check --repair`)"
    )]
    WalDamaged {
        /// The WAL file.
        path: PathBuf,
        /// Byte offset of the first frame that could not be read.
        offset: u64,
        /// Sequence number of the last record read intact.
        last_good_seq: u64,
        /// Valid records after the damage (what a repair drops).
        records_after: u64,
    },
    /// Another process, or another `Store` in this process, holds the file with a lock that
    /// conflicts with the one this open needs (a writer excludes everyone; read-only stores
    /// exclude writers only), and it was not released within [`crate::Options::lock_timeout`].
    #[error("{path}: database is locked {}", locked_by(*in_this_process))]
    Locked {
        /// The file that was opened.
        path: PathBuf,
        /// True if the holder is this very process (another open `Store` of the same file),
        /// false if it is another process.
        in_this_process: bool,
    },
    /// A write was asked of a store opened with [`crate::Options::read_only`].
    #[error("{path}: the store is open read-only: writes are refused")]
    ReadOnly {
        /// The store's file.
        path: PathBuf,
    },
    /// An I/O error while opening a store: names the file and the step that failed.
    /// (A full disk is [`Error::NoSpace`] instead, its message naming the file.)
    #[error("{path}: {action}: {source}")]
    Open {
        /// The file being worked on: the main file or its WAL.
        path: PathBuf,
        /// What was being done.
        action: OpenAction,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// The disk is full. Nothing acknowledged is lost; free space and reopen.
    #[error("no space left on device: {0}")]
    NoSpace(std::io::Error),
    /// An I/O error from the operating system.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// An earlier write or sync failed, so this handle refuses further writes: the state on disk
    /// is consistent and a reopen recovers every acknowledged commit. (Like SQLite and redb, a
    /// failed fsync is never retried as if the data were safe.)
    #[error("store is read-only after an earlier fatal I/O error ({0}); reopen it to recover")]
    Poisoned(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The store is past its space quota (etcd's NOSPACE alarm): writes that add data are refused;
    /// reads, deletes and compaction still work, so space can be reclaimed.
    #[error("database space exceeded (NOSPACE): {used} bytes in use, quota {quota} bytes")]
    QuotaExceeded {
        /// Bytes of the file in use.
        used: u64,
        /// The configured quota.
        quota: u64,
    },
    /// An optimistic read-write transaction ([`crate::Store::write`]) kept conflicting with
    /// concurrent writers and gave up.
    #[error("transaction conflicted with concurrent writes {attempts} times; giving up")]
    Conflict {
        /// How many times it was tried.
        attempts: u32,
    },
    /// An option passed to the builder is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// [`Store::apply`](crate::Store::apply) was given a log index that is not the next one.
    #[error("log index {got} applied out of order: the next index is {expected}")]
    OutOfOrder {
        /// The index the store expects next (last applied + 1).
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// A local write (put, delete, batch, txn, compaction, lease grant or revocation)
    /// on a store opened with [`crate::Options::replicated`]: its writes go through the
    /// replication layer, which applies committed log entries with
    /// [`Store::apply`](crate::Store::apply).
    #[error("the store is replicated: writes go through the replication layer, not {what}")]
    ReplicatedWrite {
        /// The refused call.
        what: &'static str,
    },
    /// A Raft log call on a store not opened with [`crate::Options::replicated`], or a
    /// replicated store's file opened without it (its WAL holds log entries, not local
    /// commits, and a local open would misread it).
    #[error("{0}")]
    NotReplicated(String),
    /// A log read or wait asked for an entry the log no longer holds: it was purged.
    #[error("log entry {index} was purged (the log holds entries after {purged})")]
    LogPurged {
        /// The index asked for.
        index: u64,
        /// The last purged index.
        purged: u64,
    },
    /// Entries appended to the log must continue it: the first new index must be the last
    /// index + 1 (truncate first to replace a suffix). Also returned when waiting for an index
    /// the log does not hold.
    #[error("log entry {got} does not continue the log: the next index is {expected}")]
    LogGap {
        /// The index the log expects next (last + 1).
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// The WAL ring has no room for the entry: the log's unpurged entries fill it. Nothing is
    /// overwritten: purge entries the state machine has applied ([`crate::Store::log_purge`],
    /// after a snapshot), or open with a larger [`crate::Options::wal_capacity`].
    #[error(
        "the Raft log is full: an entry of {needed} bytes does not fit beside the {used}          unpurged bytes in a {capacity}-byte WAL; purge applied entries or raise wal_capacity"
    )]
    LogFull {
        /// Bytes the entry's frame needs.
        needed: u64,
        /// Bytes the unpurged entries occupy.
        used: u64,
        /// The ring's capacity in bytes.
        capacity: u64,
    },
    /// A truncation would drop an entry the state machine has already applied (Raft never
    /// truncates committed entries, so this is a caller bug).
    #[error("cannot truncate the log at {index}: entries up to {applied} are applied")]
    LogApplied {
        /// The truncation point asked for.
        index: u64,
        /// The last applied index.
        applied: u64,
    },
    /// A purge past the last applied entry: only what the state machine holds (and a
    /// checkpoint makes durable in the main file) may leave the log.
    #[error("cannot purge the log up to {index}: only entries up to {applied} are applied")]
    LogNotApplied {
        /// The purge point asked for.
        index: u64,
        /// The last applied index.
        applied: u64,
    },
    /// A membership larger than the meta page holds.
    #[error("membership of {len} bytes exceeds the maximum of {max} bytes")]
    MembershipTooLarge {
        /// Length of the membership.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A vote larger than the WAL's vote slot holds.
    #[error("vote of {len} bytes exceeds the maximum of {max} bytes")]
    VoteTooLarge {
        /// Length of the vote.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A snapshot file failed verification before it was installed: not an etch file, written
    /// by a newer etch, another page size than this store's, truncated, or damaged (a checksum,
    /// the tree shape or the page accounting is wrong). Nothing was changed.
    #[error("{path}: not an installable snapshot: {reason}")]
    InvalidSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What verification found.
        reason: String,
    },
    /// [`Store::install_snapshot`](crate::Store::install_snapshot) was given a snapshot of
    /// another database (another cluster). Nothing was changed;
    /// [`Store::install_snapshot_replacing_identity`](crate::Store::install_snapshot_replacing_identity)
    /// installs it anyway.
    #[error(
        "the snapshot is of database {snapshot:#018x}, this store is database {store:#018x}; \
         refusing to replace its identity"
    )]
    SnapshotIdentity {
        /// This store's database id.
        store: u64,
        /// The snapshot's database id.
        snapshot: u64,
    },
    /// A snapshot that does not move the store forward: below its applied index (installing it
    /// would move the log index backwards), or, for a snapshot of another database, at it.
    /// Nothing was changed.
    #[error(
        "the snapshot is at log index {snapshot}, not ahead of this store's applied index {applied}"
    )]
    SnapshotBehind {
        /// The snapshot's applied index.
        snapshot: u64,
        /// This store's applied index.
        applied: u64,
    },
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        // ENOSPC (28) and EDQUOT (122) both mean "the disk will not take more bytes".
        match err.raw_os_error() {
            Some(28) | Some(122) => Error::NoSpace(err),
            _ => Error::Io(err),
        }
    }
}

fn locked_by(in_this_process: bool) -> &'static str {
    if in_this_process {
        "(it is already open in this process)"
    } else {
        "by another process"
    }
}

/// The step of opening a store that an [`Error::Open`] failed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenAction {
    /// Opening (or creating) the main file.
    OpenFile,
    /// Opening the main file for a read-only store, which never creates it.
    OpenFileReadOnly,
    /// Creating the main file: a `NotFound` here means its directory does not exist.
    CreateFile,
    /// Taking the file lock.
    Lock,
    /// Writing the first meta pages of a new file.
    InitFile,
    /// Reading the meta pages.
    ReadMeta,
    /// Mapping the main file and reading its free list.
    MapFile,
    /// Opening and reading an existing WAL for recovery.
    ReadWal,
    /// Writing the state recovered from the WAL into the main file.
    WriteRecovered,
    /// Creating the new WAL.
    CreateWal,
}

impl std::fmt::Display for OpenAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpenAction::OpenFile => "opening the database file",
            OpenAction::OpenFileReadOnly => {
                "opening the database file read-only (a read-only open never creates it)"
            }
            OpenAction::CreateFile => "creating the database file (does its directory exist?)",
            OpenAction::Lock => "locking the database file",
            OpenAction::InitFile => "writing the first pages of the new database file",
            OpenAction::ReadMeta => "reading the meta pages",
            OpenAction::MapFile => "mapping the database file",
            OpenAction::ReadWal => "reading the WAL for recovery",
            OpenAction::WriteRecovered => "writing the state recovered from the WAL",
            OpenAction::CreateWal => "creating the WAL",
        })
    }
}

impl Error {
    /// Names `path` and `action` in an I/O error met while opening a store: [`Error::Io`]
    /// becomes [`Error::Open`], and [`Error::NoSpace`] keeps its variant with the path and step
    /// in its message. Every other error passes unchanged (they name what failed already).
    pub(crate) fn opening(self, path: &std::path::Path, action: OpenAction) -> Error {
        match self {
            Error::Io(source) => Error::Open {
                path: path.to_path_buf(),
                action,
                source,
            },
            Error::NoSpace(e) => Error::NoSpace(std::io::Error::new(
                e.kind(),
                format!("{}: {action}: {e}", path.display()),
            )),
            other => other,
        }
    }

    /// Builds a [`Error::Corrupt`] from anything printable.
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
}
