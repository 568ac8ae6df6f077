//! The store handle: an open etch file, its shared state (the published snapshot, the writer,
//! the group-commit state) and the small accessors. The rest of `Store` is split by concept:
//!
//! - [`open`]: opening, locking, recovery (replay of the WAL after the last checkpoint);
//! - [`commit`]: the write API and the commit pipeline (validate, apply, log);
//! - [`durability`]: group commit, publishing snapshots to readers, checkpoints;
//! - [`lease`]: lease grant/revoke/keep-alive and the in-memory lease clocks;
//! - [`maintenance`]: snapshot files, restore, defrag, hash, status, check;
//! - [`transfer`]: snapshots that keep their identity (Raft), their atomic install, and the
//!   main-file swap install and defrag share;
//! - [`background`]: the background thread and the auto-compaction decision;
//! - [`raftlog`]: the Raft log API of a replicated store (append, read, truncate, purge, vote).
//!
//! Commit protocol (durability `Immediate`):
//!
//! 1. Under the writer lock: validate, apply the batch to the working trees (dirty nodes in
//!    memory), append one logical record to the WAL map. Release the lock.
//! 2. Wait until the record is durable. One waiting committer at a time becomes the syncer: it
//!    takes the writer lock briefly to *seal* (write all dirty nodes to the file, unsynced, and
//!    register a snapshot of the working state), releases it, fdatasyncs the WAL, then
//!    publishes the snapshot and wakes every committer whose record that sync covered. Commits
//!    arriving during the sync join the next one (group commit).
//!
//! So a reader sees a commit only after its record is durable, and the writer builds the next
//! batch while a sync is in flight. Checkpoints (by WAL size, by time, on close) write the
//! sealed tree and free list, fsync the main file, write both meta slots (a sync after each) and
//! release the WAL they cover; commits go on meanwhile, except during the short start and finish
//! (see [`durability`]). See docs/design.md for why a crash at any point loses nothing
//! acknowledged.

mod admit;
mod background;
mod commit;
mod durability;
mod lease;
mod maintenance;
mod open;
mod raftlog;
mod transfer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::checkpoint::{write_checkpoint, write_checkpoint_at, MetaSlots};
use crate::error::{Error, Result};
use crate::file_lock::Registration;
use crate::keyspace::{self, KsState, Limits};
use crate::options::Options;
use crate::pager::Pager;
use crate::profile::{CommitProfile, Timers};
use crate::snapshot::{LiveSnapshots, ReadTxn, SnapshotData};
use crate::storage::{Storage, StorageFile};
use crate::types::{KeyValue, Range, RangeOptions, RangeResponse, Revision};
use crate::wal::{Damage as WalDamage, Wal};

use background::Background;
use lease::LeaseClock;
pub use lease::{LeaseGrant, LeaseInfo};
pub use raftlog::AppliedMembership;
pub use transfer::SnapshotInfo;

/// An open etch store. Cheap to clone (all clones share one store), `Send` and `Sync`.
///
/// ```no_run
/// use etch_engine::{Range, Store};
/// let db = Store::open("app.etch")?;
/// let rev = db.put("svc/a", "10.0.0.1")?.header_revision;
/// assert_eq!(db.get("svc/a")?.unwrap().value, b"10.0.0.1");
/// let listed = db.range(Range::prefix("svc/"))?;
/// assert_eq!(listed.kvs.len(), 1);
/// # let _ = rev;
/// # Ok::<(), etch_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    /// Shared by the user's clones only (not by the background thread): when the last clone
    /// goes, the store closes right there, in the dropping thread, so a reopen straight after
    /// finds the file unlocked.
    _close_on_drop: Option<Arc<CloseOnDrop>>,
}

struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Errors cannot be reported from a drop; nothing is lost by ignoring them: if the final
        // checkpoint fails the WAL stays, and the next open recovers from it.
        let _ = self.0.close();
    }
}

struct Shared {
    path: PathBuf,
    opts: Options,
    limits: Limits,
    storage: Arc<dyn Storage>,
    /// The main file (swapped by `defrag`; the writer uses its pager's handle).
    file: Mutex<Arc<dyn StorageFile>>,
    /// This process's claim on the locked main file (swapped by `defrag` with the file; taken
    /// on close, after the unlock).
    registration: Mutex<Option<Registration>>,
    page_size: usize,
    published: RwLock<Arc<SnapshotData>>,
    live: LiveSnapshots,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    closed: AtomicBool,
    /// Committers between entering `batch` and releasing the writer lock; the group-commit
    /// leader waits briefly for them so their records ride its sync rather than the next one.
    committing: AtomicUsize,
    /// Bumped on every publish; watchers wait on `published_cv` for it to change.
    publish_generation: Mutex<u64>,
    published_cv: Condvar,
    /// Deadline and granted TTL of every lease. Not persisted: as in etcd, a reopened store
    /// gives every lease its full TTL again.
    lease_clocks: Mutex<HashMap<i64, LeaseClock>>,
    /// (time, revision) samples for periodic auto-compaction, one per
    /// [`Store::auto_compaction_due`] call.
    compaction_samples: Mutex<std::collections::VecDeque<(Instant, i64)>>,
    background: Mutex<Background>,
    background_cv: Condvar,
    /// What the open that made this handle repaired, if it repaired a damaged WAL.
    wal_repair: Option<WalRepair>,
    /// Group commit of Raft log appends (replicated stores).
    log_sync: raftlog::LogSync,
    /// Per-phase clocks of commits and checkpoints (see `profile.rs`); the writer's pager
    /// shares them.
    timers: Arc<Timers>,
}

/// What an open with [`Options::repair_wal`] did to a damaged WAL: the damage it found, where
/// it kept the damaged WAL, and (in the damage) how many records after it were dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRepair {
    /// Where the WAL broke and how many valid records followed (all of them were dropped).
    pub damage: WalDamage,
    /// The copy of the damaged WAL, next to the store (`<file>-wal.damaged`, or with a number
    /// appended if that exists).
    pub copy: PathBuf,
}

struct SyncState {
    /// Every commit with a sequence number <= this is durable.
    durable_seq: u64,
    /// A syncer is at work.
    syncing: bool,
    /// A sync failed: the store refuses writes until reopened.
    poisoned: Option<String>,
}

struct Writer {
    pager: Pager,
    /// `None` for a read-only store, which never writes a WAL.
    wal: Option<Wal>,
    /// Working state: includes appended commits that may not be durable yet.
    state: KsState,
    /// Sequence number of the last appended (or checkpointed) commit.
    seq: u64,
    /// Generation of the newest snapshot made of the working state (see [`make_snapshot`]).
    generation: u64,
    term: u64,
    slots: MetaSlots,
    poisoned: Option<String>,
    last_checkpoint: Instant,
    /// The Raft log's index, for a replicated store (its WAL holds log entries, not commits).
    log: Option<crate::raftlog::RaftLog>,
    /// A replicated store's applied membership (index, term, bytes): durable with the applied
    /// index at each checkpoint.
    membership: Option<(u64, u64, Vec<u8>)>,
}

impl Store {
    pub(crate) fn write_attempts(&self) -> u32 {
        self.shared.opts.write_attempts
    }

    /// The request limits with no bound on the number of operations.
    pub(crate) fn unbounded_op_limits(&self) -> Limits {
        Limits {
            max_txn_ops: usize::MAX,
            ..self.shared.limits
        }
    }

    /// What this handle's open repaired, if it was opened with [`Options::repair_wal`] and
    /// found the WAL damaged; `None` otherwise.
    pub fn wal_repair(&self) -> Option<&WalRepair> {
        self.shared.wal_repair.as_ref()
    }

    /// Path of the main file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Refuses if the store is closed or read-only: the first check of every write.
    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.shared.opts.read_only {
            return Err(Error::ReadOnly {
                path: self.shared.path.clone(),
            });
        }
        Ok(())
    }

    /// Whether the store was opened with [`Options::read_only`].
    pub fn is_read_only(&self) -> bool {
        self.shared.opts.read_only
    }

    /// A consistent read-only view of the newest durable state. Never waits for the writer.
    pub fn read(&self) -> Result<ReadTxn> {
        self.check_open()?;
        Ok(ReadTxn {
            snap: self.shared.published.read().clone(),
        })
    }

    /// Cumulative time this store's commits and checkpoints spent in each phase since it
    /// opened: take one reading before and one after a slow commit and subtract them
    /// ([`CommitProfile::since`]) to see what it waited for. Always counted; costs a few atomic
    /// adds per commit.
    pub fn commit_profile(&self) -> CommitProfile {
        self.shared.timers.snapshot()
    }

    /// Current revision (of the newest state readers can see).
    pub fn revision(&self) -> Revision {
        self.shared.published.read().state.revision as i64
    }

    /// The current value and metadata of `key`, or `None`. A key no put could write is refused
    /// as a put refuses it: empty ([`Error::EmptyKey`]) or over `max_key_size`
    /// ([`Error::KeyTooLarge`]).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        keyspace::check_key(key.as_ref(), &self.shared.limits)?;
        self.read()?.get(key)
    }

    /// The keys of a range at the current revision.
    pub fn range(&self, range: Range) -> Result<RangeResponse> {
        self.read()?.range(range)
    }

    /// The keys of a range with etcd's options (limit, revision, sort, filters, count/keys only).
    pub fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        self.read()?.range_with(range, opts)
    }

    /// Checkpoints, removes the WAL (leaving one file) and releases the file lock. Other clones
    /// of this handle get [`Error::Closed`] afterwards.
    pub fn close(self) -> Result<()> {
        self.shared.close()
    }
}

impl Shared {
    fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut bg = self.background.lock();
            bg.stop = true;
            self.background_cv.notify_all();
        }
        if !self.opts.read_only {
            // A checkpoint in flight finishes first; if it failed, the writer is poisoned and
            // that is reported below.
            let _ = self.drain_checkpoint(&mut w);
        }
        let result = match w.poisoned.clone() {
            // Nothing to write back: a read-only store changed nothing.
            _ if self.opts.read_only => Ok(()),
            Some(p) => Err(Error::Poisoned(p)),
            None if self.opts.replicated => {
                // The WAL stays: it holds the Raft log and the vote.
                let w = &mut *w;
                raftlog::replicated_position(w, None).and_then(|position| {
                    let Some(position) = position else {
                        return Err(Error::corrupt("internal: a replicated store has no log"));
                    };
                    write_checkpoint_at(
                        &*w.pager.file.clone(),
                        &mut w.pager,
                        &w.state,
                        (w.seq, w.term),
                        &mut w.slots,
                        &position,
                    )
                })
            }
            None => {
                let salt = crate::file::random_u64();
                let w = &mut *w;
                write_checkpoint(
                    &*w.pager.file.clone(),
                    &mut w.pager,
                    &w.state,
                    (w.seq, w.term),
                    &mut w.slots,
                    salt,
                )
                .and_then(|_| {
                    self.storage.remove(&Wal::path_for(&self.path))?;
                    Ok(self.storage.sync_dir(&self.path)?)
                })
            }
        };
        drop(w);
        let _ = self.file.lock().unlock();
        // After the unlock, so a refused open never blames this process for a lock it released.
        self.registration.lock().take();
        *self.publish_generation.lock() += 1;
        self.published_cv.notify_all();
        result
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A drop without close still checkpoints; errors cannot be reported here, and nothing
        // is lost by ignoring them: the WAL stays and the next open recovers from it.
        let _ = self.close();
    }
}

/// A snapshot of the writer's (sealed) working state, of the next generation.
///
/// Generations number the snapshots in the order they are made (every commit's, every
/// checkpoint's, every published compaction step's), and they are what the reader rule of
/// page reclamation counts in (`alloc.rs`): a page freed while the newest snapshot has
/// generation `g` is tagged `g + 1` (`pager.seq`), so it is reused only once every live
/// snapshot is of generation `g + 1` or later, all made after the free and so unable to reach
/// the page. Commit sequence numbers cannot serve: a compaction step changes the trees without
/// a commit, so a snapshot of its state has the same version as the one before it.
fn make_snapshot(w: &mut Writer) -> SnapshotData {
    w.generation += 1;
    w.pager.seq = w.generation + 1;
    SnapshotData {
        generation: w.generation,
        version: w.seq,
        term: w.term,
        db_id: w.slots.db_id,
        state: w.state,
        map: w.pager.map.clone(),
        page_count: w.pager.alloc.high_water,
        unused_pages: w.pager.alloc.unused_pages(),
        wal_used: w.wal.as_ref().map_or(0, Wal::used),
        // Small, and set only in a replicated store (which changes it only on membership
        // entries): a Raft snapshot needs the membership of exactly this state.
        membership: w.membership.clone(),
    }
}
