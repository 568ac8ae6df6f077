//! Where a member keeps its Raft log and vote: the [`LogStore`] trait, and [`MemLogStore`], an
//! in-memory implementation.
//!
//! The trait speaks in opaque payloads numbered by (index, term) because that is exactly what a
//! WAL frame holds: the engine's replicated-mode WAL (`Store::log_append`, `log_read`,
//! `log_truncate`, `log_purge`, `save_vote`, `read_vote`) implements it with one adapter. The
//! openraft side ([`crate::raft_log::RaftLog`]) encodes entries with [`crate::codec`] and checks
//! each payload's log id against its frame.
//!
//! [`MemLogStore`] is **not durable across a machine crash**: it lives in the process. Its clones
//! share one log, so a test can "crash" a member (drop its Raft and store handles) and restart it
//! on the same log, which models a process crash where the log survived (as a synced WAL would).
//! Production members need the engine's WAL log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// The entries with `from <= index < to` that are still kept, in order.
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, LogError>;
    /// The last and purged positions.
    fn bounds(&self) -> Result<LogBounds, LogError>;
    /// Removes every entry with index `>= index`.
    fn truncate(&self, index: u64) -> Result<(), LogError>;
    /// Removes every entry with index `<= index` and remembers (index, term) as the purge
    /// point. The entry itself need not be in the log: after a snapshot install the log may
    /// end before it (or hold nothing); then the whole log goes.
    fn purge(&self, index: u64, term: u64) -> Result<(), LogError>;
    /// Stores the vote (opaque bytes).
    fn save_vote(&self, vote: &[u8]) -> Result<(), LogError>;
    /// The stored vote, if any.
    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError>;
}

#[derive(Default)]
struct MemInner {
    vote: Option<Vec<u8>>,
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    purged: Option<(u64, u64)>,
}

/// An in-memory [`LogStore`] for tests and simulations (see the module documentation: it
/// survives a simulated process crash, not a real one). Clones share the log.
#[derive(Clone, Default)]
pub struct MemLogStore {
    inner: Arc<Mutex<MemInner>>,
}

impl MemLogStore {
    /// An empty log.
    pub fn new() -> MemLogStore {
        MemLogStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        // Every method leaves the map whole between statements, so a poisoned lock still guards
        // a consistent log.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogStore for MemLogStore {
    fn append(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        let mut inner = self.lock();
        let mut next = inner
            .entries
            .keys()
            .next_back()
            .map(|i| i + 1)
            .or(inner.purged.map(|(i, _)| i + 1));
        for &(index, _, _) in entries {
            if let Some(n) = next {
                if index != n {
                    return Err(LogError::Invalid(format!(
                        "append of index {index}, expected {n}"
                    )));
                }
            }
            next = Some(index + 1);
        }
        for &(index, term, payload) in entries {
            inner.entries.insert(index, (term, payload.to_vec()));
        }
        Ok(())
    }

    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, LogError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        Ok(inner
            .entries
            .range(from..to)
            .map(|(&i, (t, p))| (i, *t, p.clone()))
            .collect())
    }

    fn bounds(&self) -> Result<LogBounds, LogError> {
        let inner = self.lock();
        let last = inner
            .entries
            .iter()
            .next_back()
            .map(|(&i, (t, _))| (i, *t))
            .or(inner.purged);
        Ok(LogBounds {
            last,
            purged: inner.purged,
        })
    }

    fn truncate(&self, index: u64) -> Result<(), LogError> {
        let mut inner = self.lock();
        if inner.purged.is_some_and(|(p, _)| index <= p) {
            return Err(LogError::Invalid(format!(
                "truncate at {index} reaches purged entries"
            )));
        }
        inner.entries.split_off(&index);
        Ok(())
    }

    fn purge(&self, index: u64, term: u64) -> Result<(), LogError> {
        let mut inner = self.lock();
        if inner.purged.is_some_and(|(p, _)| index <= p) {
            return Ok(());
        }
        if inner.entries.get(&index).is_some_and(|(t, _)| *t != term) {
            return Err(LogError::Invalid(format!(
                "purge up to index {index} of term {term}, but the log holds another term there"
            )));
        }
        let kept = inner.entries.split_off(&(index + 1));
        inner.entries = kept;
        inner.purged = Some((index, term));
        Ok(())
    }

    fn save_vote(&self, vote: &[u8]) -> Result<(), LogError> {
        self.lock().vote = Some(vote.to_vec());
        Ok(())
    }

    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.lock().vote.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_truncate_purge_keep_the_rules() {
        let log = MemLogStore::new();
        log.append(&[(0, 1, b"a"), (1, 1, b"b"), (2, 2, b"c")])
            .unwrap();
        assert!(matches!(
            log.append(&[(5, 2, b"x")]),
            Err(LogError::Invalid(_))
        ));
        assert_eq!(log.bounds().unwrap().last, Some((2, 2)));
        log.truncate(2).unwrap();
        assert_eq!(log.bounds().unwrap().last, Some((1, 1)));
        log.append(&[(2, 3, b"d")]).unwrap();
        assert!(log.purge(1, 2).is_err());
        log.purge(1, 1).unwrap();
        let b = log.bounds().unwrap();
        assert_eq!((b.last, b.purged), (Some((2, 3)), Some((1, 1))));
        assert_eq!(log.read(0, 10).unwrap(), vec![(2, 3, b"d".to_vec())]);
        assert!(log.truncate(1).is_err());
        log.truncate(2).unwrap();
        // Empty after the purge point: the last position is the purge point.
        assert_eq!(log.bounds().unwrap().last, Some((1, 1)));
        log.append(&[(2, 4, b"e")]).unwrap();
        // A purge past the end (after a snapshot install) empties the log.
        log.purge(9, 5).unwrap();
        assert_eq!(log.bounds().unwrap().last, Some((9, 5)));
        assert!(log.read(0, 100).unwrap().is_empty());
        log.append(&[(10, 5, b"f")]).unwrap();
        log.save_vote(b"v").unwrap();
        assert_eq!(log.clone().read_vote().unwrap(), Some(b"v".to_vec()));
    }
}
