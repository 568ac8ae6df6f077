//! openraft's log storage over any [`LogStore`]: entries and the vote are encoded with
//! [`crate::codec`] and stored as opaque payloads numbered by (index, term).
//!
//! Reading an entry back checks that its decoded log id is the one its position claims, so a
//! misplaced or stale payload is reported as a storage error instead of being replicated.
//!
//! The store's methods are synchronous and called directly from openraft's task. An append
//! either waits for its fdatasync there (inline mode, [`RaftLog::new`]: group commit shares it
//! with concurrent appenders; it keeps a simulation on one paused runtime deterministic, where
//! a blocking pool would let simulated time run while a sync is in flight), or only writes its
//! entries and leaves the sync to a [`LogFlusher`] thread (background mode,
//! [`RaftLog::with_flusher`]; why that is safe is in [`crate::flush`]).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    CommittedLeaderId, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError,
    Vote,
};

use crate::codec;
use crate::flush::LogFlusher;
use crate::log_store::{LogError, LogStore};
use crate::types::{Entry, NodeId, TypeConfig};

/// The largest encoded entry read back from a log (a request is at most the engine's request
/// limit, 1.5 MiB by default; membership entries are small).
pub const MAX_ENTRY_BYTES: usize = 64 << 20;

/// openraft's `RaftLogStorage` (and log reader) over a [`LogStore`]. Clones share the store.
pub struct RaftLog<L: LogStore> {
    store: Arc<L>,
    /// Background mode: appends are synced by this flusher, not before they return.
    flusher: Option<Arc<LogFlusher>>,
}

impl<L: LogStore> Clone for RaftLog<L> {
    fn clone(&self) -> Self {
        RaftLog {
            store: Arc::clone(&self.store),
            flusher: self.flusher.clone(),
        }
    }
}

impl<L: LogStore> RaftLog<L> {
    /// The log kept in `store`, inline mode: every append is durable before openraft hears
    /// of it.
    pub fn new(store: Arc<L>) -> RaftLog<L> {
        RaftLog {
            store,
            flusher: None,
        }
    }

    /// The log kept in `store`, background mode: an append writes its entries and reports
    /// them flushed at once, `flusher` (over the same store) syncs them. Only sound with the
    /// member's other gates in place (see [`crate::flush`]): the state machine and the
    /// network built with the same flusher, and follower acknowledgements held until durable.
    pub fn with_flusher(store: Arc<L>, flusher: Arc<LogFlusher>) -> RaftLog<L> {
        RaftLog {
            store,
            flusher: Some(flusher),
        }
    }
}

fn log_id(index: u64, term: u64) -> LogId<NodeId> {
    // With `single-term-leader` a committed leader id is the term alone (the node id argument
    // is ignored), so (term, index) is a complete log id.
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn storage_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: LogError,
) -> StorageError<NodeId> {
    let io = match e {
        LogError::Io(io) => io,
        LogError::Invalid(msg) => std::io::Error::other(msg),
    };
    StorageError::from_io_error(subject, verb, io)
}

fn codec_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: codec::CodecError,
) -> StorageError<NodeId> {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

impl<L: LogStore> RaftLogReader<TypeConfig> for RaftLog<L> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let stored = self
            .store
            .read(from, to)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let mut out = Vec::with_capacity(stored.len());
        for (index, term, payload) in stored {
            let subject = || ErrorSubject::Log(log_id(index, term));
            let entry: Entry = codec::decode(&payload, MAX_ENTRY_BYTES)
                .map_err(|e| codec_error(subject(), ErrorVerb::Read, e))?;
            if entry.log_id != log_id(index, term) {
                return Err(storage_error(
                    subject(),
                    ErrorVerb::Read,
                    LogError::Invalid(format!(
                        "the payload at index {index} term {term} holds log id {}",
                        entry.log_id
                    )),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

impl<L: LogStore> RaftLogStorage<TypeConfig> for RaftLog<L> {
    type LogReader = RaftLog<L>;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let b = self
            .store
            .bounds()
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        Ok(LogState {
            last_purged_log_id: b.purged.map(|(i, t)| log_id(i, t)),
            last_log_id: b.last.map(|(i, t)| log_id(i, t)),
        })
    }

    async fn get_log_reader(&mut self) -> RaftLog<L> {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = codec::encode(vote)
            .map_err(|e| codec_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.store
            .save_vote(&bytes)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let bytes = self
            .store
            .read_vote()
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, e))?;
        bytes
            .map(|b| codec::decode(&b, 4096))
            .transpose()
            .map_err(|e| codec_error(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for e in entries {
            let bytes = codec::encode(&e)
                .map_err(|err| codec_error(ErrorSubject::Log(e.log_id), ErrorVerb::Write, err))?;
            encoded.push((e.log_id.index, e.log_id.leader_id.term, bytes));
        }
        let frames: Vec<(u64, u64, &[u8])> = encoded
            .iter()
            .map(|(i, t, b)| (*i, *t, b.as_slice()))
            .collect();
        let Some(last) = frames.last().map(|f| f.0) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let appended = match &self.flusher {
            None => self.store.append(&frames),
            // Written, not yet durable: reported flushed now, synced by the flusher meanwhile
            // (started here so that the sync overlaps the replication of these entries).
            // Nothing is let out of this member until the sync covers them (crate::flush).
            Some(flusher) => self
                .store
                .append_unsynced(&frames)
                .inspect(|()| flusher.kick(last)),
        };
        match appended {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg)));
                Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let truncated = self
            .store
            .truncate(log_id.index)
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e));
        if let Some(flusher) = &self.flusher {
            // Before any new entry takes a truncated index: the flusher must not count those
            // indexes as synced any more. Told even after a failed truncate (it may have
            // dropped entries before failing); being told too often costs only a sync.
            flusher.truncated(log_id.index.checked_sub(1));
        }
        truncated
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Only shown to the write path (crate::log_gauge); `read_committed` stays openraft's
        // default (none), so a restart does not re-apply from a saved commit index.
        self.store.committed(committed.map(|c| c.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.store
            .purge(log_id.index, log_id.leader_id.term)
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }
}
