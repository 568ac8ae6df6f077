//! [`EngineLog`]: a [`LogStore`] kept in the engine's WAL, durable across a machine crash.
//!
//! # Present wiring: a log-only store
//! The log lives in its own `etch_engine::Store` file, opened in replicated mode
//! (`Options::replicated(true).background_writes(false)`), whose WAL frames are the Raft
//! entries. The state machine ([`crate::state_machine::Machine`]) keeps the keys in *another*
//! store, which it opens itself (not replicated) and applies to with `Store::apply`. So the two
//! files share no index constraint: this log's engine index is always Raft index + 1 (openraft
//! numbers the first entry 0, the engine's first index is 1), while the state machine applies
//! Raft index `r` at `r + delta` in its own store. Putting the log and the keys in the *same*
//! replicated store (one file, one WAL, no double write) is the next step and is not wired.
//!
//! # The log-only store's applied position
//! The engine purges only entries its state machine has applied (`Error::LogNotApplied`), and
//! refuses to truncate applied ones. This store has no keys, so [`LogStore::purge`] first
//! applies every entry up to the purge point as a `Command::Noop` (in replicated mode an apply
//! writes nothing; the following purge's checkpoint makes it durable), then purges. The
//! applied position therefore never passes what openraft purged, and openraft never truncates
//! at or below a purged (committed) entry, so truncation is never refused for that reason.
//!
//! # Known mismatch: a purge past the log's end
//! After installing a snapshot, openraft may purge up to the snapshot's index while this log
//! ends before it. The engine can move a replicated log past its end only by installing a
//! snapshot *into the same store* (`Store::install_snapshot_with_membership`), which this
//! log-only store never receives. Such a purge is refused with [`LogError::Invalid`] and the
//! log is left as it was. Wiring the log and the state machine into one store removes the
//! mismatch (the install then empties the log at the snapshot's index, and the purge becomes
//! a no-op).
//!
//! # Errors
//! Rule violations the engine reports (`LogGap`, `LogPurged`, `LogApplied`, `LogNotApplied`,
//! `VoteTooLarge`) become [`LogError::Invalid`]. Everything else becomes [`LogError::Io`] whose
//! inner error is the engine's error itself (`std::io::Error::get_ref` and downcast to
//! `etch_engine::Error` to match on it): a full WAL ring (`Error::LogFull`) has kind
//! `StorageFull`, as does a full disk; a poisoned or closed store has kind `Other`.
//!
//! # Blocking
//! The [`LogStore`] trait is synchronous: `append` waits for the WAL's fdatasync (group
//! commit: concurrent appenders share one) and `purge` runs a checkpoint, on the calling
//! thread.

use std::path::Path;

use etch_engine as engine;

use crate::log_store::{LogBounds, LogError, LogStore, StoredEntry};

/// A [`LogStore`] in an engine store file opened in replicated mode (see the module
/// documentation for what it is wired to).
pub struct EngineLog {
    store: engine::Store,
}

/// The engine index of Raft index `raft`.
fn engine_index(raft: u64) -> Result<u64, LogError> {
    raft.checked_add(1)
        .ok_or_else(|| LogError::Invalid(format!("raft index {raft} has no engine index")))
}

/// The Raft position of an engine position; engine index 0 never names an entry.
fn raft_position(engine: Option<(u64, u64)>) -> Option<(u64, u64)> {
    engine.and_then(|(i, t)| i.checked_sub(1).map(|r| (r, t)))
}

/// Maps an engine error to a [`LogError`] (see the module documentation).
fn log_error(e: engine::Error) -> LogError {
    use std::io::ErrorKind;
    let kind = match &e {
        engine::Error::LogGap { .. }
        | engine::Error::LogPurged { .. }
        | engine::Error::LogApplied { .. }
        | engine::Error::LogNotApplied { .. }
        | engine::Error::VoteTooLarge { .. } => return LogError::Invalid(e.to_string()),
        engine::Error::LogFull { .. } | engine::Error::NoSpace(_) => ErrorKind::StorageFull,
        engine::Error::Io(io) => io.kind(),
        _ => ErrorKind::Other,
    };
    LogError::Io(std::io::Error::new(kind, e))
}

impl EngineLog {
    /// Opens (or creates) the log file at `path` with `opts`, switched to replicated mode with
    /// background writes off. `opts` sets, for instance, `wal_capacity`: the ring must hold the
    /// entries between two purges, or appends fail with `Error::LogFull`.
    pub fn open(path: impl AsRef<Path>, opts: engine::Options) -> engine::Result<EngineLog> {
        let store = opts.replicated(true).background_writes(false).open(path)?;
        Ok(EngineLog { store })
    }

    /// The engine store holding the log (for its `log_state`, e.g. to watch how full the ring
    /// is).
    pub fn store(&self) -> &engine::Store {
        &self.store
    }

    /// Closes the file: the log and the vote stay in its WAL for the next open.
    pub fn close(self) -> engine::Result<()> {
        self.store.close()
    }

    /// Applies (as no-ops) every entry up to engine index `upto`, so the engine lets them be
    /// purged. `upto` is in the log.
    fn apply_through(&self, upto: u64) -> Result<(), LogError> {
        let (applied, _) = self.store.applied();
        if applied >= upto {
            return Ok(());
        }
        let entries = self
            .store
            .log_read(applied + 1, upto + 1)
            .map_err(log_error)?;
        for e in entries {
            self.store
                .apply(e.index, e.term, &engine::Command::Noop)
                .map_err(log_error)?;
        }
        Ok(())
    }
}

impl LogStore for EngineLog {
    fn append(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut mapped = Vec::with_capacity(entries.len());
        for &(index, term, payload) in entries {
            mapped.push((engine_index(index)?, term, payload));
        }
        // Durable before returning: openraft's flush callback follows this call.
        let last = self.store.log_append(&mapped).map_err(log_error)?;
        self.store.wait_log_durable(last).map_err(log_error)
    }

    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, LogError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let state = self.store.log_state().map_err(log_error)?;
        // The trait reads only what is kept; the engine refuses to read purged entries.
        let first_kept = state.last_purged.map_or(1, |(p, _)| p + 1);
        let from = engine_index(from)?.max(first_kept);
        let to = to.saturating_add(1);
        if from >= to {
            return Ok(Vec::new());
        }
        let entries = self.store.log_read(from, to).map_err(log_error)?;
        Ok(entries
            .into_iter()
            .map(|e| (e.index - 1, e.term, e.payload))
            .collect())
    }

    fn bounds(&self) -> Result<LogBounds, LogError> {
        let state = self.store.log_state().map_err(log_error)?;
        Ok(LogBounds {
            last: raft_position(state.last),
            purged: raft_position(state.last_purged),
        })
    }

    fn truncate(&self, index: u64) -> Result<(), LogError> {
        let index = engine_index(index)?;
        let state = self.store.log_state().map_err(log_error)?;
        if state.last_purged.is_some_and(|(p, _)| index <= p) {
            return Err(LogError::Invalid(format!(
                "truncate at raft index {} reaches purged entries",
                index - 1
            )));
        }
        self.store.log_truncate(index).map_err(log_error)
    }

    fn purge(&self, index: u64, term: u64) -> Result<(), LogError> {
        let raft = index;
        let index = engine_index(index)?;
        let state = self.store.log_state().map_err(log_error)?;
        if state.last_purged.is_some_and(|(p, _)| index <= p) {
            return Ok(());
        }
        let last = state.last.map_or(0, |(i, _)| i);
        if index > last {
            let ends = match raft_position(state.last) {
                Some((i, _)) => format!("the log ends at raft index {i}"),
                None => "the log is empty".to_string(),
            };
            return Err(LogError::Invalid(format!(
                "purge up to raft index {raft}, but {ends}: the engine log moves past its end \
                 only by a snapshot install into the same store"
            )));
        }
        let held = self.store.log_read(index, index + 1).map_err(log_error)?;
        if held.first().is_some_and(|e| e.term != term) {
            return Err(LogError::Invalid(format!(
                "purge up to raft index {raft} of term {term}, but the log holds another term there"
            )));
        }
        self.apply_through(index)?;
        self.store.log_purge(index).map_err(log_error)
    }

    fn save_vote(&self, vote: &[u8]) -> Result<(), LogError> {
        self.store.save_vote(vote).map_err(log_error)
    }

    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError> {
        self.store.read_vote().map_err(log_error)
    }
}
