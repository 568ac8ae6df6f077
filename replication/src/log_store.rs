//! The rules of a member's Raft log and vote: the [`LogStore`] trait.
//!
//! The trait speaks in opaque payloads numbered by (index, term) because that is exactly what a
//! WAL frame holds: the engine's replicated-mode WAL (`Store::log_append`, `log_read`,
//! `log_truncate`, `log_purge`, `save_vote`, `read_vote`) implements it with one adapter,
//! [`crate::engine_log::EngineLog`]. The openraft side ([`crate::raft_log::RaftLog`]) encodes
//! entries with [`crate::codec`] and checks each payload's log id against its frame. The trait
//! keeps openraft's side independent of the engine's calls, and states the rules the adapter is
//! tested against.

/// One stored entry: (index, term, payload).
pub type StoredEntry = (u64, u64, Vec<u8>);

/// The extent of a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// The last entry's (index, term); when the log is empty, the last purged one.
    pub last: Option<(u64, u64)>,
    /// The last purged entry's (index, term), if any was purged.
    pub purged: Option<(u64, u64)>,
}

/// Why a log operation failed.
#[derive(Debug)]
pub enum LogError {
    /// The storage below failed; the log may not hold what was asked.
    Io(std::io::Error),
    /// The operation breaks the log's rules (a gap in indexes, a purge past the last entry, ...):
    /// a bug in the caller, refused before anything changed.
    Invalid(String),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "log I/O failed: {e}"),
            LogError::Invalid(msg) => write!(f, "invalid log operation: {msg}"),
        }
    }
}

impl std::error::Error for LogError {}

/// A Raft log and vote store. Implementations are synchronous (the engine is); every method
/// that changes the log returns once the change is durable in the implementation's sense.
///
/// Invariants every implementation keeps: indexes are consecutive from the first kept entry to
/// the last; entries at or below the purge point are gone; a truncation removes every entry at
/// or above its index.
pub trait LogStore: Send + Sync + 'static {
    /// Appends entries; the first index must be `last + 1` (or any index when the log is empty
    /// and nothing was purged, or `purged + 1`).
    fn append(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError>;
    /// Appends entries like [`LogStore::append`] but returns once they are written, maybe
    /// before they are durable; [`LogStore::sync_through`] makes them durable. Entries written
    /// this way are readable at once. The default is [`LogStore::append`] (durable at once).
    fn append_unsynced(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        self.append(entries)
    }
    /// Returns once every entry up to `index` (which must be in the log: else
    /// [`LogError::Invalid`]) is durable. The default has nothing to wait for, matching the
    /// default [`LogStore::append_unsynced`].
    fn sync_through(&self, index: u64) -> Result<(), LogError> {
        let _ = index;
        Ok(())
    }
    /// The entries with `from <= index < to` that are still kept, in order.
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, LogError>;
    /// The last and purged positions.
    fn bounds(&self) -> Result<LogBounds, LogError>;
    /// Removes every entry with index `>= index`.
    fn truncate(&self, index: u64) -> Result<(), LogError>;
    /// Removes every entry with index `<= index` and remembers (index, term) as the purge
    /// point. At or below the purge point it does nothing (after a snapshot install the purge
    /// point is the snapshot's last entry). An implementation may defer a purge of entries
    /// its state machine has not applied yet (see [`crate::engine_log`]).
    fn purge(&self, index: u64, term: u64) -> Result<(), LogError>;
    /// Stores the vote (opaque bytes).
    fn save_vote(&self, vote: &[u8]) -> Result<(), LogError>;
    /// The stored vote, if any.
    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError>;

    /// Told that the log is committed up to `index` (openraft's `save_committed`). Not
    /// persisted: a restarted member learns its commit index from the leader again. The
    /// default ignores it.
    fn committed(&self, index: Option<u64>) {
        let _ = index;
    }
}
