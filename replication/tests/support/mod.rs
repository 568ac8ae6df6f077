//! Test support for cluster runs until the engine's log-store seam exists: an in-memory Raft
//! log, and a state machine that applies entries to a real etch `Store` through
//! `Store::apply` (the engine's state-machine seam).
//!
//! Limits, on purpose: the log and the applied membership live in memory (a node cannot
//! restart), and the state machine does not build or install snapshots (runs use
//! `SnapshotPolicy::Never` and never purge, so no follower needs one). Each such call returns a
//! storage error saying so.
// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use etch_engine as engine;
use etch_replication::types::{Applied, Entry, NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership, Vote,
};

#[derive(Default)]
struct LogInner {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry>,
    purged: Option<LogId<NodeId>>,
}

/// An in-memory Raft log (shared by its clones, as openraft's log reader requires).
#[derive(Clone, Default)]
pub struct MemLog {
    inner: Arc<Mutex<LogInner>>,
}

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let inner = self.inner.lock().unwrap();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock().unwrap();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> MemLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().unwrap().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.inner.lock().unwrap().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().unwrap().committed)
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
        {
            let mut inner = self.inner.lock().unwrap();
            for e in entries {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().unwrap();
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().unwrap();
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.purged = Some(log_id);
        Ok(())
    }
}

fn unsupported(what: &str) -> StorageError<NodeId> {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        ErrorVerb::Read,
        std::io::Error::other(format!("{what}: not supported by the test state machine")),
    )
}

/// Applies committed entries to an etch store. openraft numbers the first entry (the initial
/// membership) 0; the engine's first index is 1, so entry `i` is applied as engine index `i + 1`.
pub struct StoreMachine {
    pub store: engine::Store,
    membership: StoredMembership<NodeId, BasicNode>,
    last_applied: Option<LogId<NodeId>>,
}

impl StoreMachine {
    pub fn new(store: engine::Store) -> StoreMachine {
        StoreMachine {
            store,
            membership: StoredMembership::default(),
            last_applied: None,
        }
    }
}

/// See [`StoreMachine`]: snapshots are out of scope for these runs.
pub struct NoSnapshots;

impl RaftSnapshotBuilder<TypeConfig> for NoSnapshots {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        Err(unsupported("build_snapshot"))
    }
}

impl RaftStateMachine<TypeConfig> for StoreMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for e in entries {
            let command = match &e.payload {
                EntryPayload::Blank => engine::Command::Noop,
                EntryPayload::Normal(c) => engine::Command::try_from(c).map_err(|err| {
                    StorageError::from_io_error(
                        ErrorSubject::Apply(e.log_id),
                        ErrorVerb::Write,
                        std::io::Error::other(err.to_string()),
                    )
                })?,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    engine::Command::Noop
                }
            };
            let index = e.log_id.index + 1;
            match self.store.apply(index, e.log_id.leader_id.term, &command) {
                // A refusal is the command's result, the same on every member.
                Ok(_)
                | Err(engine::Error::LeaseNotFound { .. })
                | Err(engine::Error::LeaseExists { .. })
                | Err(engine::Error::KeyNotFound)
                | Err(engine::Error::Compacted { .. })
                | Err(engine::Error::FutureRevision { .. }) => {}
                Err(other) => {
                    return Err(StorageError::from_io_error(
                        ErrorSubject::Apply(e.log_id),
                        ErrorVerb::Write,
                        std::io::Error::other(other.to_string()),
                    ))
                }
            }
            self.last_applied = Some(e.log_id);
            out.push(Applied {
                index: e.log_id.index,
                revision: self.store.revision(),
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> NoSnapshots {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        Err(unsupported("begin_receiving_snapshot"))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, BasicNode>,
        _snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        Err(unsupported("install_snapshot"))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(None)
    }
}
