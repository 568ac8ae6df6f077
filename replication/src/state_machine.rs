//! The replicated state machine: committed entries applied to an etch [`engine::Store`] through
//! `Store::apply`, in index order, on every member; snapshots through [`SnapshotFiles`].
//!
//! # Indexes
//! openraft numbers the first entry (the initial membership) 0; the engine's first index is 1.
//! Raft index `r` is applied as engine index `r + delta`, where `delta` is 1 for a member that
//! never installed a snapshot, and `A - S` after installing a snapshot of Raft index `S` whose
//! store reports engine index `A` (today's copies report 0; see [`crate::snapshot_files`]).
//!
//! # Durable state beside the store
//! The store's own applied position survives a crash (every apply is durable before it
//! returns). What the engine cannot hold yet lives in a small sidecar file, `<store>.raft`,
//! replaced atomically (write, fsync, rename, fsync the directory): the store file generation,
//! `delta`, the snapshot position, and the last two applied memberships. A membership entry
//! updates the sidecar *before* its index is applied to the store, so after a crash between the
//! two the sidecar holds a membership newer than the store's position; opening picks the newest
//! membership at or below the applied position, which is why two are kept. When the engine
//! stores the membership with its applied index (`Store::apply_membership`), the sidecar goes.
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
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use etch_engine as engine;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::codec;
use crate::snapshot_files::SnapshotFiles;
use crate::types::{Applied, Entry, NodeId, TypeConfig};

/// The outcome of one applied command as its proposer sees it: the engine's response, or the
/// engine's refusal (the same on every member).
pub type CommandResult = Result<engine::CommandResponse, engine::Error>;

type Membership = StoredMembership<NodeId, BasicNode>;

/// The sidecar's content (see the module documentation).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    /// Store file generation: 0 is the member's own path, `n` is `<path>.g<n>`.
    generation: u64,
    /// Raft index + delta = engine index.
    delta: i64,
    /// The snapshot this generation was installed from: its last Raft log id and the engine
    /// index the installed store reported for it.
    base: Option<(LogId<NodeId>, u64)>,
    /// The last two applied memberships, oldest first.
    memberships: Vec<Membership>,
}

struct State {
    sidecar: Sidecar,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    /// The newest snapshot this member built or installed: its metadata and file.
    current: Option<(SnapshotMeta<NodeId, BasicNode>, PathBuf)>,
    /// The file a snapshot is being received into.
    receiving: Option<PathBuf>,
}

/// The state a member's Raft state machine and its client API share: the store and the callers
/// waiting for their commands' responses.
pub struct Machine {
    me: NodeId,
    path: PathBuf,
    opts: engine::Options,
    snapshots: Box<dyn SnapshotFiles>,
    store: RwLock<engine::Store>,
    state: Mutex<State>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<CommandResult>>>,
    file_counter: AtomicU64,
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".raft");
    PathBuf::from(p)
}

fn snapshot_dir(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".snapshots");
    PathBuf::from(p)
}

fn generation_path(path: &Path, generation: u64) -> PathBuf {
    if generation == 0 {
        return path.to_path_buf();
    }
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".g{generation}"));
    PathBuf::from(p)
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
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

fn write_sidecar(path: &Path, sidecar: &Sidecar) -> std::io::Result<()> {
    let bytes = codec::encode(sidecar).map_err(io_error)?;
    let target = sidecar_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &target)?;
    sync_dir(&target)
}

fn sync_dir(file: &Path) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

fn read_sidecar(path: &Path) -> std::io::Result<Option<Sidecar>> {
    match std::fs::read(sidecar_path(path)) {
        Ok(bytes) => Ok(Some(codec::decode(&bytes, 1 << 20).map_err(io_error)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Machine {
    /// Opens the member's store at `path` (or the generation its sidecar names) with `opts`,
    /// background writes switched off (the leader decides lease expiry and compaction), and
    /// recovers the applied position and membership.
    pub fn open(
        me: NodeId,
        path: &Path,
        opts: engine::Options,
        snapshots: Box<dyn SnapshotFiles>,
    ) -> engine::Result<Arc<Machine>> {
        let opts = opts.background_writes(false);
        let sidecar = read_sidecar(path)?.unwrap_or(Sidecar {
            delta: 1,
            ..Sidecar::default()
        });
        let store = opts
            .clone()
            .open(generation_path(path, sidecar.generation))?;
        std::fs::create_dir_all(snapshot_dir(path))?;
        let (engine_index, engine_term) = store.applied();
        let last_applied = match sidecar.base {
            Some((base, base_engine)) if base_engine == engine_index => Some(base),
            _ => {
                let raft = engine_index as i64 - sidecar.delta;
                (raft >= 0).then(|| log_id(engine_term, raft as u64))
            }
        };
        let applied_index = last_applied.map(|l| l.index);
        let membership = sidecar
            .memberships
            .iter()
            .rev()
            .find(|m| m.log_id().map(|l| l.index) <= applied_index)
            .cloned()
            .unwrap_or_default();
        Ok(Arc::new(Machine {
            me,
            path: path.to_path_buf(),
            opts,
            snapshots,
            store: RwLock::new(store),
            state: Mutex::new(State {
                sidecar,
                last_applied,
                membership,
                current: None,
                receiving: None,
            }),
            waiters: Mutex::new(HashMap::new()),
            file_counter: AtomicU64::new(0),
        }))
    }

    /// The member's store as it is now (a snapshot install replaces it).
    pub fn store(&self) -> engine::Store {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last applied entry's log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.state().last_applied
    }

    /// The membership of the last applied membership entry.
    pub fn applied_membership(&self) -> Membership {
        self.state().membership.clone()
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

    /// Closes the store (a clean stop: checkpoint, WAL removed).
    pub fn close(&self) -> engine::Result<()> {
        self.store().close()
    }

    /// A path for a new snapshot file that no file uses yet. The counter restarts with each
    /// open, and a member restarted inside one process (tests, an embedding application) finds
    /// its earlier files still there, so names already taken are skipped.
    fn new_file(&self, prefix: &str) -> PathBuf {
        loop {
            let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
            let path =
                snapshot_dir(&self.path).join(format!("{prefix}-{}-{n}", std::process::id()));
            if !path.exists() {
                return path;
            }
        }
    }

    fn apply_entry(&self, e: &Entry) -> Result<Applied, StorageError<NodeId>> {
        let (delta, proposal) = {
            let mut st = self.state();
            let delta = st.sidecar.delta;
            let proposal = match &e.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(p) => Some(p),
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(e.log_id), m.clone());
                    st.sidecar.memberships.push(stored.clone());
                    let excess = st.sidecar.memberships.len().saturating_sub(2);
                    st.sidecar.memberships.drain(..excess);
                    write_sidecar(&self.path, &st.sidecar)
                        .map_err(|err| sm_error(ErrorVerb::Write, err))?;
                    st.membership = stored;
                    None
                }
            };
            (delta, proposal)
        };
        let command = match proposal.map(|p| engine::Command::try_from(&p.command)) {
            None => Ok(engine::Command::Noop),
            Some(Ok(c)) => Ok(c),
            // Decoded but not convertible (an invalid sort code, say): refused alike everywhere.
            Some(Err(err)) => Err(engine::Error::InvalidOption(err.to_string())),
        };
        let engine_index = e.log_id.index as i64 + delta;
        if engine_index <= 0 {
            return Err(sm_error(
                ErrorVerb::Write,
                format!("entry {} maps to engine index {engine_index}", e.log_id),
            ));
        }
        let store = self.store();
        let term = e.log_id.leader_id.term;
        let result = match &command {
            Ok(c) => store.apply(engine_index as u64, term, c),
            Err(_) => store
                .apply(engine_index as u64, term, &engine::Command::Noop)
                .map(|_| engine::CommandResponse::Noop),
        };
        let result = match (command, result) {
            (Err(refusal), Ok(_)) => Err(refusal),
            (_, Err(err)) if !is_refusal(&err) => {
                return Err(StorageError::from_io_error(
                    ErrorSubject::Apply(e.log_id),
                    ErrorVerb::Write,
                    io_error(err),
                ))
            }
            (_, r) => r,
        };
        self.state().last_applied = Some(e.log_id);
        if let Some(p) = proposal.filter(|p| p.origin == self.me && p.id != 0) {
            if let Some(tx) = self.waiters().remove(&p.id) {
                let _ = tx.send(result);
            }
        }
        Ok(Applied {
            index: e.log_id.index,
            revision: store.revision(),
        })
    }

    /// Writes a snapshot of the state as applied now.
    fn snapshot_now(
        &self,
    ) -> Result<(SnapshotMeta<NodeId, BasicNode>, PathBuf), StorageError<NodeId>> {
        let (last, membership) = {
            let st = self.state();
            (st.last_applied, st.membership.clone())
        };
        let path = self.new_file("built");
        self.snapshots
            .save(&self.store(), &path)
            .map_err(|e| sm_error(ErrorVerb::Read, e))?;
        let id = match last {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id.term,
                l.index,
                self.file_counter.load(Ordering::Relaxed)
            ),
            None => format!("empty-{}", self.file_counter.load(Ordering::Relaxed)),
        };
        Ok((
            SnapshotMeta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id: id,
            },
            path,
        ))
    }

    /// Makes `(meta, path)` the current snapshot, removing the previous file.
    fn set_current(&self, meta: SnapshotMeta<NodeId, BasicNode>, path: PathBuf) {
        let old = self.state().current.replace((meta, path));
        if let Some((_, old)) = old {
            let _ = std::fs::remove_file(old);
        }
    }

    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        file: &Path,
    ) -> Result<(), StorageError<NodeId>> {
        let err = |e: &dyn std::fmt::Display| sm_error(ErrorVerb::Write, e);
        let mut sidecar = self.state().sidecar.clone();
        let old_generation = sidecar.generation;
        sidecar.generation += 1;
        let target = generation_path(&self.path, sidecar.generation);
        // A leftover from a crash during an earlier install of this generation.
        let _ = std::fs::remove_file(&target);
        let store = self
            .snapshots
            .install(file, &target, self.opts.clone())
            .map_err(|e| err(&e))?;
        let (engine_index, _) = store.applied();
        let last = meta.last_log_id;
        let raft_index = last.map_or(-1, |l| l.index as i64);
        sidecar.delta = engine_index as i64 - raft_index;
        sidecar.base = last.map(|l| (l, engine_index));
        sidecar.memberships = vec![meta.last_membership.clone()];
        // The switch: before this rename a crash leaves the old generation in charge, after it
        // the new one, complete and checked.
        write_sidecar(&self.path, &sidecar).map_err(|e| err(&e))?;
        let old = std::mem::replace(
            &mut *self.store.write().unwrap_or_else(|p| p.into_inner()),
            store,
        );
        let old_path = generation_path(&self.path, old_generation);
        let _ = old.close();
        let _ = std::fs::remove_file(&old_path);
        {
            let mut st = self.state();
            st.sidecar = sidecar;
            st.last_applied = last;
            st.membership = meta.last_membership.clone();
        }
        Ok(())
    }
}

/// openraft's state machine over a [`Machine`].
pub struct StateMachine {
    machine: Arc<Machine>,
}

impl StateMachine {
    /// The state machine of `machine`.
    pub fn new(machine: Arc<Machine>) -> StateMachine {
        StateMachine { machine }
    }
}

/// Builds a snapshot from the copy taken when openraft asked for the builder (taken in the
/// state machine's task, so it matches the applied position exactly).
pub struct SnapshotBuilder {
    machine: Arc<Machine>,
    taken: Result<(SnapshotMeta<NodeId, BasicNode>, PathBuf), StorageError<NodeId>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, path) = std::mem::replace(
            &mut self.taken,
            Err(sm_error(ErrorVerb::Read, "snapshot builder used twice")),
        )?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| sm_error(ErrorVerb::Read, e))?;
        self.machine.set_current(meta.clone(), path);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let st = self.machine.state();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        entries
            .into_iter()
            .map(|e| self.machine.apply_entry(&e))
            .collect()
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            machine: Arc::clone(&self.machine),
            taken: self.machine.snapshot_now(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let path = self.machine.new_file("received");
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        if let Some(old) = self.machine.state().receiving.replace(path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        snapshot
            .sync_all()
            .await
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        drop(snapshot);
        let path = self
            .machine
            .state()
            .receiving
            .take()
            .ok_or_else(|| sm_error(ErrorVerb::Write, "no snapshot was being received"))?;
        self.machine.install(meta, &path)?;
        self.machine.set_current(meta.clone(), path);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = self.machine.state().current.clone();
        match current {
            None => Ok(None),
            Some((meta, path)) => {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| sm_error(ErrorVerb::Read, e))?;
                Ok(Some(Snapshot {
                    meta,
                    snapshot: Box::new(file),
                }))
            }
        }
    }
}
