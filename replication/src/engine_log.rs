//! [`EngineLog`]: the Raft log ([`LogStore`]) kept in the WAL of a member's replicated store,
//! durable across a machine crash.
//!
//! # One store
//! The log is the WAL of the member's one store, opened in replicated mode
//! (`Options::replicated(true).background_writes(false)`): each WAL frame is a Raft entry, and
//! the same store's trees are the state machine ([`crate::state_machine::Machine`] holds
//! another clone of the handle). Engine index = Raft index + 1 (openraft numbers the first
//! entry 0, the engine's first index is 1).
//!
//! # Rules the engine adds
//! The engine purges only applied entries (`Error::LogNotApplied`) and never truncates applied
//! ones (`Error::LogApplied`). openraft truncates only uncommitted entries, and purges only
//! what a snapshot covers, with one exception: when it installs a snapshot sent by the leader,
//! it issues the purge up to the snapshot's last entry at once, *beside* the install (openraft
//! 0.9 gives a purge no condition on the state machine's commands), so the purge may come
//! first, naming entries this store has not applied (or never held). Such a purge is
//! *deferred*: [`EngineLog`] remembers it and reports success; the install that follows
//! empties the log at the snapshot's index (its purge point becomes that entry), which
//! fulfils it; a later purge runs a deferred one that is applied by then. A purge at or below
//! the purge point does nothing, which is also what openraft's purge after an install is. A
//! crash before the install leaves the log unpurged, which openraft reads back on restart.
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
//! thread. `append_unsynced` only writes, and `sync_through` waits for the sync (a member's
//! [`crate::flush::LogFlusher`] calls it on its own thread).

use etch_engine as engine;

use std::sync::Arc;

use crate::log_gauge::LogGauge;
use crate::log_store::{LogBounds, LogError, LogStore, StoredEntry};

/// The [`LogStore`] in the WAL of a replicated engine store (see the module documentation).
pub struct EngineLog {
    store: engine::Store,
    /// A purge past the applied index, waiting (engine index, term); see the module docs.
    deferred: std::sync::Mutex<Option<(u64, u64)>>,
    /// The log's figures for the write path, refreshed after every change of the log.
    gauge: Arc<LogGauge>,
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
    /// The log of `store`, a handle on the member's store opened with
    /// `Options::replicated(true)` (the log calls fail with `Error::NotReplicated` otherwise).
    /// The ring (`Options::wal_capacity`) must hold the entries between two purges, or appends
    /// fail with `Error::LogFull`.
    pub fn new(store: engine::Store) -> EngineLog {
        let gauge = Arc::new(LogGauge::default());
        EngineLog::with_gauge(store, gauge)
    }

    /// [`EngineLog::new`], showing its figures on `gauge` (shared with the member's state
    /// machine, which shows the applied index there).
    pub fn with_gauge(store: engine::Store, gauge: Arc<LogGauge>) -> EngineLog {
        let log = EngineLog {
            store,
            deferred: std::sync::Mutex::new(None),
            gauge,
        };
        log.refresh();
        log
    }

    /// The gauge this log shows its figures on.
    pub fn gauge(&self) -> &Arc<LogGauge> {
        &self.gauge
    }

    /// Shows the ring's state on the gauge after a change (a closed store leaves it as it was).
    fn refresh(&self) {
        if let Ok(state) = self.store.log_state() {
            self.gauge.observe(&state);
        }
    }

    /// Appends `entries` (engine indexes) and shows the log's state after it on the gauge: the
    /// state the append returns, read under its lock, or after a refusal (`LogFull` may come
    /// after some entries went in) the state read again.
    fn append_observed(&self, entries: &[(u64, u64, &[u8])]) -> Result<engine::LogState, LogError> {
        match self.store.log_append(entries) {
            Ok(state) => {
                self.gauge.observe(&state);
                Ok(state)
            }
            Err(e) => {
                self.refresh();
                Err(log_error(e))
            }
        }
    }

    /// The engine store holding the log (for its `log_state`, e.g. to watch how full the ring
    /// is).
    pub fn store(&self) -> &engine::Store {
        &self.store
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
        let state = self.append_observed(&mapped)?;
        let last = state.last.map_or(0, |(index, _)| index);
        self.store.wait_log_durable(last).map_err(log_error)
    }

    fn append_unsynced(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut mapped = Vec::with_capacity(entries.len());
        for &(index, term, payload) in entries {
            mapped.push((engine_index(index)?, term, payload));
        }
        self.append_observed(&mapped).map(|_| ())
    }

    fn sync_through(&self, index: u64) -> Result<(), LogError> {
        // Group commit: concurrent callers share one fdatasync.
        self.store
            .wait_log_durable(engine_index(index)?)
            .map_err(log_error)
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
        let truncated = self.store.log_truncate(index).map_err(log_error)?;
        self.gauge.observe(&truncated);
        Ok(())
    }

    fn purge(&self, index: u64, term: u64) -> Result<(), LogError> {
        let index = engine_index(index)?;
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = match *deferred {
            Some(d) if d.0 > index => d,
            _ => (index, term),
        };
        let state = self.store.log_state().map_err(log_error)?;
        if state.last_purged.is_some_and(|(p, _)| wanted.0 <= p) {
            *deferred = None;
            return Ok(());
        }
        let (applied, _) = self.store.applied();
        // Run what is applied now (the request, or an earlier deferred purge); defer the rest.
        let now = if wanted.0 <= applied {
            *deferred = None;
            wanted
        } else {
            *deferred = Some(wanted);
            match (index <= applied).then_some((index, term)) {
                Some(now) => now,
                None => return Ok(()),
            }
        };
        if state.last_purged.is_some_and(|(p, _)| now.0 <= p) {
            return Ok(());
        }
        let held = self.store.log_read(now.0, now.0 + 1).map_err(log_error)?;
        if held.first().is_some_and(|e| e.term != now.1) {
            return Err(LogError::Invalid(format!(
                "purge up to raft index {} of term {}, but the log holds another term there",
                now.0 - 1,
                now.1
            )));
        }
        let purged = self.store.log_purge(now.0).map_err(log_error)?;
        self.gauge.observe(&purged);
        Ok(())
    }

    fn save_vote(&self, vote: &[u8]) -> Result<(), LogError> {
        self.store.save_vote(vote).map_err(log_error)
    }

    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError> {
        self.store.read_vote().map_err(log_error)
    }

    fn committed(&self, index: Option<u64>) {
        self.gauge.committed(index);
    }
}
