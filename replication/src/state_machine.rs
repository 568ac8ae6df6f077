//! The replicated state machine: the trees of the member's one replicated store. Committed
//! entries are applied with `Store::apply` (membership entries with `Store::apply_membership`),
//! in index order, on every member; snapshots are the store's own (`Store::snapshot_to`,
//! `Store::install_snapshot_with_membership`).
//!
//! # One store
//! The store's WAL is the Raft log ([`crate::engine_log::EngineLog`] over a clone of the same
//! handle) and its trees are the state machine, so Raft index `r` is engine index `r + 1`
//! everywhere (openraft numbers the first entry 0, the engine's first index is 1). Everything
//! openraft asks of a state machine is the store's: the applied (index, term) is
//! `Store::applied()`, the applied membership is `Store::applied_membership()` (the
//! [`StoredMembership`] encoded with [`crate::codec`]; none applied yet reads as the default,
//! empty membership). Both are durable together at every checkpoint, in the meta page: after a
//! crash the store is at its last checkpoint, and openraft re-applies the committed entries
//! after it from the log, which the engine keeps until they are applied and purged.
//!
//! # Snapshots
//! A snapshot is `Store::snapshot_to` of a pinned read view (writers go on meanwhile), written
//! to a file in `<store>.snapshots/` on the store's own storage (`Store::storage`: the real
//! file system, or a simulated disk in tests), read and written by openraft through a
//! [`SnapshotFile`]; a received snapshot is written there too, and the engine's install reads
//! it through the same storage. Its log id and membership are the ones the engine reports
//! for that view ([`engine::SnapshotInfo`]), never read separately (the applied index may have
//! moved on while the view was copied). Installing one replaces the store's state in place,
//! atomically, with the snapshot's membership; the log becomes empty at the snapshot's index
//! (so openraft's purge up to it afterwards has nothing to do) and the vote stays. Snapshot
//! files are not needed after a restart: the current one lives in memory, and openraft builds
//! a new one when a follower needs it. So nothing syncs them or their directory: a power cut
//! loses them, which is fine; a process crash leaves them, and the next start empties the
//! directory (with `std::fs`, since a `Storage` lists no directory; on a simulated disk that
//! directory is empty and the files, never made durable, are gone after a power cut).
//!
//! # Responses
//! Every member computes the typed response of every command it applies (the same on all).
//! The member that proposed a command ([`crate::types::Proposal::origin`]) hands its own
//! response to the caller waiting for it (read-your-writes on that member).

// openraft's traits fix the error type (`StorageError`, large); the helpers here return it as
// is rather than converting at every call.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use etch_engine as engine;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use tokio::sync::oneshot;

use crate::codec;
use crate::flush::LogFlusher;
use crate::log_gauge::LogGauge;
use crate::snapshot_file::SnapshotFile;
use crate::types::{Applied, Entry, NodeId, TypeConfig};
use engine::storage::{Storage, StorageFile};

/// The outcome of one applied command as its proposer sees it: the engine's response, or the
/// engine's refusal (the same on every member).
pub type CommandResult = Result<engine::CommandResponse, engine::Error>;

/// A membership as openraft stores it (with the log id of its entry).
pub type Membership = StoredMembership<NodeId, BasicNode>;

/// The largest encoded membership read back (the engine stores at most 3840 bytes).
const MAX_MEMBERSHIP_BYTES: usize = 4096;

/// A snapshot this member holds: its metadata, the file's path and an open handle.
type Current = (
    SnapshotMeta<NodeId, BasicNode>,
    PathBuf,
    Arc<dyn StorageFile>,
);

struct State {
    /// The newest snapshot this member built or installed.
    current: Option<Current>,
    /// The file a snapshot is being received into.
    receiving: Option<(PathBuf, Arc<dyn StorageFile>)>,
}

/// The state a member's Raft state machine and its client API share: the store and the callers
/// waiting for their commands' responses.
pub struct Machine {
    me: NodeId,
    /// The member's store file (snapshot files live in `<path>.snapshots/`).
    path: PathBuf,
    store: engine::Store,
    /// The store's storage, where snapshot files live.
    storage: Arc<dyn Storage>,
    state: Mutex<State>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<CommandResult>>>,
    /// The member's log figures; the applied index is shown here (crate::log_gauge).
    gauge: Arc<LogGauge>,
    /// Taken (shared) around every apply; [`Machine::hold_applies`] takes it exclusively.
    apply_gate: Arc<tokio::sync::RwLock<()>>,
}

/// Holds a member's applies while it lives ([`Machine::hold_applies`]).
pub struct ApplyHold {
    _held: tokio::sync::OwnedRwLockWriteGuard<()>,
}

/// The number in the next snapshot file's name (see [`Machine::new_file`]).
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// `<path>.snapshots`: where a member keeps snapshot files.
pub fn snapshot_dir(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".snapshots");
    PathBuf::from(p)
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    // With `single-term-leader` a committed leader id is the term alone.
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// The Raft log id of an engine (index, term); engine index 0 (nothing applied) is none.
pub fn raft_log_id(engine: (u64, u64)) -> Option<LogId<NodeId>> {
    let (index, term) = engine;
    index.checked_sub(1).map(|r| log_id(term, r))
}

/// The engine index of Raft index `raft`.
fn engine_index(raft: u64) -> Result<u64, StorageError<NodeId>> {
    raft.checked_add(1).ok_or_else(|| {
        sm_error(
            ErrorVerb::Write,
            format!("raft index {raft} has no engine index"),
        )
    })
}

/// The membership an engine store recorded (see the module documentation).
pub fn decode_membership(
    applied: Option<&engine::AppliedMembership>,
) -> Result<Membership, codec::CodecError> {
    match applied {
        None => Ok(Membership::default()),
        Some(m) => codec::decode(&m.membership, MAX_MEMBERSHIP_BYTES),
    }
}

/// The bytes `Store::apply_membership` records for `m`.
pub fn encode_membership(m: &Membership) -> Result<Vec<u8>, codec::CodecError> {
    codec::encode(m)
}

/// Whether an error from `Store::apply` is the command's refusal (nothing changed, the index was
/// used, every member refuses alike) rather than a failure of this member's store.
pub fn is_refusal(e: &engine::Error) -> bool {
    use engine::Error as E;
    matches!(
        e,
        E::EmptyKey
            | E::KeyTooLarge { .. }
            | E::RequestTooLarge { .. }
            | E::TooManyOps { .. }
            | E::DuplicateKey { .. }
            | E::KeyNotFound
            | E::ValueProvided
            | E::LeaseProvided
            | E::LeaseNotFound { .. }
            | E::LeaseExists { .. }
            | E::Compacted { .. }
            | E::FutureRevision { .. }
            | E::QuotaExceeded { .. }
            | E::Conflict { .. }
            | E::InvalidOption(_)
    )
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn sm_error(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageError::from_io_error(ErrorSubject::StateMachine, verb, io_error(e))
}

impl Machine {
    /// The state machine of `store`, the member's one replicated store at `path` (opened with
    /// `replicated(true)`). Empties `<path>.snapshots/` (its files are not needed after a
    /// restart) and creates it if missing.
    pub fn new(me: NodeId, path: &Path, store: engine::Store) -> std::io::Result<Arc<Machine>> {
        let dir = snapshot_dir(path);
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let _ = std::fs::remove_file(entry?.path());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(&dir)?,
            Err(e) => return Err(e),
        }
        let gauge = Arc::new(LogGauge::default());
        gauge.applied(raft_log_id(store.applied()).map(|l| l.index));
        Ok(Arc::new(Machine {
            me,
            path: path.to_path_buf(),
            storage: store.storage(),
            store,
            state: Mutex::new(State {
                current: None,
                receiving: None,
            }),
            waiters: Mutex::new(HashMap::new()),
            gauge,
            apply_gate: Arc::new(tokio::sync::RwLock::new(())),
        }))
    }

    /// The gauge the applied index is shown on; give it to the member's log
    /// ([`crate::EngineLog::with_gauge`]) so that the write path sees both.
    pub fn gauge(&self) -> Arc<LogGauge> {
        Arc::clone(&self.gauge)
    }

    /// Stops this member from applying entries until the returned hold is dropped (waits
    /// for an apply in progress). Entries go on being appended and committed meanwhile; what
    /// a member does while its applies lag (etcd's `too many requests` once the lag passes
    /// its bound) is tested with it.
    pub async fn hold_applies(&self) -> ApplyHold {
        ApplyHold {
            _held: Arc::clone(&self.apply_gate).write_owned().await,
        }
    }

    /// The member's store (a handle shared with its Raft log).
    pub fn store(&self) -> engine::Store {
        self.store.clone()
    }

    /// The last applied entry's log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        raft_log_id(self.store.applied())
    }

    /// The membership of the last applied membership entry (or installed snapshot); the
    /// default, empty one if none was applied, or if the stored one cannot be read.
    pub fn applied_membership(&self) -> Membership {
        decode_membership(self.store.applied_membership().as_ref()).unwrap_or_default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<CommandResult>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers interest in the response to this member's proposal `id`; the receiver gets
    /// it when the entry is applied here.
    pub fn wait_for(&self, id: u64) -> oneshot::Receiver<CommandResult> {
        let (tx, rx) = oneshot::channel();
        self.waiters().insert(id, tx);
        rx
    }

    /// Drops interest in proposal `id` (its caller gave up).
    pub fn forget(&self, id: u64) {
        self.waiters().remove(&id);
    }

    /// Closes the store (a clean stop: a checkpoint; the WAL keeps the log and the vote).
    pub fn close(&self) -> engine::Result<()> {
        self.store.clone().close()
    }

    /// A path for a new snapshot file that no file uses yet. Names are never reused within a
    /// process (the counter is process-wide): a member restarted inside one process (tests,
    /// an embedding application) may still have a task of its earlier instance finishing a
    /// snapshot, which removes that instance's previous file by name. Names already taken (a
    /// file from another process with the same pid) are skipped. Returns the path and the new,
    /// empty file, created on the store's storage.
    fn new_file(&self, prefix: &str) -> std::io::Result<(PathBuf, Arc<dyn StorageFile>)> {
        loop {
            let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
            let path =
                snapshot_dir(&self.path).join(format!("{prefix}-{}-{n}", std::process::id()));
            match self.storage.open(&path, false) {
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let file = self.storage.open(&path, true)?;
            if file.len()? != 0 {
                continue;
            }
            return Ok((path, file));
        }
    }

    fn apply_entry(&self, e: &Entry) -> Result<Applied, StorageError<NodeId>> {
        let index = engine_index(e.log_id.index)?;
        let term = e.log_id.leader_id.term;
        let noop = &engine::Command::Noop;
        let mut proposal = None;
        let result = match &e.payload {
            EntryPayload::Blank => self.store.apply(index, term, noop),
            EntryPayload::Membership(m) => {
                let stored = StoredMembership::new(Some(e.log_id), m.clone());
                let bytes =
                    encode_membership(&stored).map_err(|err| sm_error(ErrorVerb::Write, err))?;
                self.store
                    .apply_membership(index, term, &bytes)
                    .map(|()| engine::CommandResponse::Noop)
            }
            EntryPayload::Normal(p) => {
                proposal = Some(p);
                match engine::Command::try_from(&p.command) {
                    Ok(c) => self.store.apply(index, term, &c),
                    // Decoded but not convertible (an invalid sort code, say): the index is
                    // used by a no-op and the command refused, alike on every member.
                    Err(err) => self
                        .store
                        .apply(index, term, noop)
                        .and(Err(engine::Error::InvalidOption(err.to_string()))),
                }
            }
        };
        if let Err(err) = &result {
            if !is_refusal(err) {
                return Err(StorageError::from_io_error(
                    ErrorSubject::Apply(e.log_id),
                    ErrorVerb::Write,
                    io_error(err),
                ));
            }
        }
        if let Some(p) = proposal.filter(|p| p.origin == self.me && p.id != 0) {
            if let Some(tx) = self.waiters().remove(&p.id) {
                let _ = tx.send(result);
            }
        }
        self.gauge.applied(Some(e.log_id.index));
        Ok(Applied {
            index: e.log_id.index,
            revision: self.store.revision(),
        })
    }

    /// Writes a snapshot of the store's published state to a new file; its log id and
    /// membership are the copied state's own.
    fn build(&self) -> Result<Current, StorageError<NodeId>> {
        let (path, file) = self
            .new_file("built")
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        let info = self
            .store
            .snapshot_to(&mut SnapshotFile::new(Arc::clone(&file)));
        let info = match info {
            Ok(info) => info,
            Err(e) => {
                let _ = self.storage.remove(&path);
                return Err(sm_error(ErrorVerb::Read, e));
            }
        };
        let last = raft_log_id((info.index, info.term));
        let membership = decode_membership(info.membership.as_ref())
            .map_err(|e| sm_error(ErrorVerb::Read, e))?;
        let n = NEXT_FILE.load(Ordering::Relaxed);
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{n}", l.leader_id.term, l.index),
            None => format!("empty-{n}"),
        };
        Ok((
            SnapshotMeta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id,
            },
            path,
            file,
        ))
    }

    /// Makes `current` the current snapshot, removing the previous one's file (a reader still
    /// holding it keeps reading through its handle).
    fn set_current(&self, current: Current) {
        let old = self.state().current.replace(current);
        if let Some((_, old, _)) = old {
            let _ = self.storage.remove(&old);
        }
    }

    /// Installs the snapshot file at `file` described by `meta` in place of the store's state.
    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        file: &Path,
    ) -> Result<(), StorageError<NodeId>> {
        let err = |e: &dyn std::fmt::Display| sm_error(ErrorVerb::Write, e);
        let last = meta
            .last_log_id
            .ok_or_else(|| err(&"a snapshot without a last log id"))?;
        let bytes = encode_membership(&meta.last_membership).map_err(|e| err(&e))?;
        let (m_index, m_term) = match meta.last_membership.log_id() {
            Some(l) => (engine_index(l.index)?, l.leader_id.term),
            None => (0, 0),
        };
        let info = self
            .store
            .install_snapshot_with_membership(file, m_index, m_term, &bytes)
            .map_err(|e| err(&e))?;
        if raft_log_id((info.index, info.term)) != Some(last) {
            // The store now holds the file's state, which is not what its sender described:
            // stop rather than go on with a state Raft does not know.
            return Err(err(&format!(
                "snapshot {} holds engine index {} term {}, its metadata says {last}",
                meta.snapshot_id, info.index, info.term
            )));
        }
        self.gauge.applied(Some(last.index));
        // The install emptied the log without going through it: show the ring as it is now.
        if let Ok(state) = self.store.log_state() {
            self.gauge.observe(&state);
        }
        Ok(())
    }
}

/// openraft's state machine over a [`Machine`].
pub struct StateMachine {
    machine: Arc<Machine>,
    /// Background mode: entries are applied only once this flusher has made them durable.
    flusher: Option<Arc<LogFlusher>>,
}

impl StateMachine {
    /// The state machine of `machine`, for a log in inline mode (every entry openraft hands
    /// over is durable already).
    pub fn new(machine: Arc<Machine>) -> StateMachine {
        StateMachine {
            machine,
            flusher: None,
        }
    }

    /// The state machine of `machine` for a log in background mode synced by `flusher`: an
    /// entry is applied only once it is durable on this member (see [`crate::flush`]).
    pub fn with_flusher(machine: Arc<Machine>, flusher: Arc<LogFlusher>) -> StateMachine {
        StateMachine {
            machine,
            flusher: Some(flusher),
        }
    }
}

/// Builds a snapshot of the store as it is when it runs (openraft runs it beside the applies;
/// the snapshot says which index it holds).
pub struct SnapshotBuilder {
    machine: Arc<Machine>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, path, file) = self.machine.build()?;
        let snapshot = Box::new(SnapshotFile::new(Arc::clone(&file)));
        self.machine.set_current((meta.clone(), path, file));
        Ok(Snapshot { meta, snapshot })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let store = &self.machine.store;
        let membership = decode_membership(store.applied_membership().as_ref())
            .map_err(|e| sm_error(ErrorVerb::Read, e))?;
        Ok((raft_log_id(store.applied()), membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let _gate = self.machine.apply_gate.read().await;
        if let (Some(flusher), Some(last)) = (&self.flusher, entries.last()) {
            // Applied means let out (answered, readable, watched): only durable entries. On
            // the leader this also makes every entry it answers for durable on a majority.
            flusher.durable(last.log_id.index).await.map_err(|e| {
                StorageError::from_io_error(
                    ErrorSubject::Apply(last.log_id),
                    ErrorVerb::Write,
                    io_error(e),
                )
            })?;
        }
        entries
            .iter()
            .map(|e| self.machine.apply_entry(e))
            .collect()
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            machine: Arc::clone(&self.machine),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotFile>, StorageError<NodeId>> {
        let (path, file) = self
            .machine
            .new_file("received")
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        let snapshot = Box::new(SnapshotFile::new(Arc::clone(&file)));
        if let Some((old, _)) = self.machine.state().receiving.replace((path, file)) {
            let _ = self.machine.storage.remove(&old);
        }
        Ok(snapshot)
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError<NodeId>> {
        // Every write is already in the file (a `SnapshotFile` buffers nothing), and the
        // install copies the file and syncs the copy: this one needs no flush or sync.
        drop(snapshot);
        let (path, file) = self
            .machine
            .state()
            .receiving
            .take()
            .ok_or_else(|| sm_error(ErrorVerb::Write, "no snapshot was being received"))?;
        self.machine.install(meta, &path)?;
        self.machine.set_current((meta.clone(), path, file));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = self.machine.state().current.clone();
        match current {
            None => Ok(None),
            Some((meta, _, file)) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(SnapshotFile::new(file)),
            })),
        }
    }
}
