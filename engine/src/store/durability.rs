//! How commits become durable and visible: group commit (one syncer per round seals the
//! working state, fdatasyncs the WAL and publishes), publishing snapshots to readers and
//! watchers, and checkpoints into the main file.
//!
//! A local store's checkpoints hold the writer lock only to start and to finish
//! ([`Store::checkpoint`]): the start seals the state, writes its free list and notes the WAL
//! position after its last commit; then, with commits going on, the main file is fsynced and
//! the meta written to both slots; the finish releases the WAL up to the noted position and the
//! pages only the old checkpoint needed. One checkpoint is in flight at a time. A thread that
//! needs the main file quiet under the writer lock (a WAL-full commit, close, defrag, an
//! install) *drains* it: waits for its I/O, which needs no lock, and finishes it itself. See
//! docs/design.md, "Checkpoint", for the invariants and the crash argument.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commit::poison_message;
use super::raftlog::replicated_position;
use super::{make_snapshot, Shared, Store, Writer};
use crate::checkpoint::{
    checkpoint_done, make_durable, prepare_checkpoint, write_checkpoint_at, PreparedCheckpoint,
    WalPosition,
};
use crate::error::{Error, Result};
use crate::pager::merge_ranges;
use crate::profile;
use crate::raftlog::PurgePoint;
use crate::snapshot::SnapshotData;
use crate::wal::WAL_START;

/// Longest a group-commit leader waits for committers still appending.
const GROUP_WAIT: Duration = Duration::from_micros(100);

/// Sealed bytes that make a group commit ask for early writeback of the main file. A 10k-key
/// batch seals tens of MiB and asks every round, as before; a single put seals about six pages
/// (24 KiB) and asks about every fortieth commit, instead of waking the background thread and
/// submitting a device write beside every WAL sync.
const WRITEBACK_BYTES: u64 = 1 << 20;

/// A started checkpoint, until it is finished: what the finish needs.
pub(super) struct PendingCheckpoint {
    prepared: PreparedCheckpoint,
    /// Sequence number of the last commit in its state.
    seq: u64,
    /// The WAL's write position at its start: where replay starts once it is durable.
    wal_offset: u64,
    /// Its state, sealed at the start; published at the finish (its commits are durable then,
    /// if group commit had not made them so already).
    snap: Arc<SnapshotData>,
}

/// The concurrent checkpoint's coordination, kept with the background thread's state (under the
/// `background` mutex, signalled with `background_cv`). Lock order: writer, then background.
#[derive(Default)]
pub(super) struct CheckpointProgress {
    /// A concurrent checkpoint runs (from before its start until after its finish).
    running: bool,
    /// The started checkpoint, until its runner or a draining thread finishes it (with the
    /// writer lock held, so exactly once).
    pending: Option<PendingCheckpoint>,
    /// How the pending checkpoint's unlocked I/O ended: `None` while it runs, `Some(None)` when
    /// both meta slots are durable, `Some(Some(message))` when it failed.
    io_done: Option<Option<String>>,
}

impl Shared {
    /// Makes the newest snapshot visible to readers (never goes backwards).
    fn publish(&self, snap: Arc<SnapshotData>) {
        {
            let mut cur = self.published.write();
            // At one version, the later made is the newer: a compaction step's trees, or a
            // checkpoint's emptied WAL (status() after checkpoint() must see it), never the
            // state a checkpoint sealed at its start after a step published its own.
            let same_version_newer =
                snap.version == cur.version && snap.generation > cur.generation;
            if snap.version > cur.version || same_version_newer {
                *cur = snap;
            } else {
                return;
            }
        }
        *self.publish_generation.lock() += 1;
        self.published_cv.notify_all();
    }

    /// Poisons the writer with `message` (from a failure it cannot undo) and returns the error.
    fn poison_with(&self, w: &mut Writer, message: String) -> Error {
        w.poisoned.get_or_insert_with(|| message.clone());
        self.sync
            .lock()
            .poisoned
            .get_or_insert_with(|| message.clone());
        self.sync_cv.notify_all();
        Error::Poisoned(message)
    }

    /// A concurrent checkpoint was started and is not finished yet (its I/O may be over).
    pub(super) fn checkpoint_pending(&self) -> bool {
        self.background.lock().checkpoint.pending.is_some()
    }

    /// Waits (writer lock held) for the in-flight checkpoint's I/O, if one is in flight, and
    /// finishes it. Afterwards no checkpoint I/O runs until the writer lock is released.
    pub(super) fn drain_checkpoint(&self, w: &mut Writer) -> Result<()> {
        {
            let mut bg = self.background.lock();
            if bg.checkpoint.pending.is_none() {
                return Ok(());
            }
            // The runner takes no lock between its start and `io_done`: this cannot deadlock.
            while bg.checkpoint.io_done.is_none() {
                self.background_cv.wait(&mut bg);
            }
        }
        self.finish_checkpoint(w)
    }

    /// Finishes the pending checkpoint, whose I/O is over (writer lock held): if its meta is
    /// durable, the WAL before its position and the pages only the old checkpoint needed are
    /// released, and its commits are durable; if the I/O failed, the writer is poisoned. Does
    /// nothing if a draining thread finished it already.
    fn finish_checkpoint(&self, w: &mut Writer) -> Result<()> {
        let (pending, io) = {
            let mut bg = self.background.lock();
            (bg.checkpoint.pending.take(), bg.checkpoint.io_done.clone())
        };
        let Some(p) = pending else { return Ok(()) };
        match io {
            Some(None) => {}
            Some(Some(message)) => return Err(self.poison_with(w, message)),
            None => {
                let e = Error::corrupt("internal: a checkpoint was finished before its I/O ended");
                return Err(self.poison_with(w, poison_message(&e)));
            }
        }
        checkpoint_done(&mut w.pager, &mut w.slots, &p.prepared);
        if let Some(wal) = w.wal.as_mut() {
            wal.release_until(p.wal_offset);
        }
        w.last_checkpoint = Instant::now();
        self.publish(p.snap);
        if w.seq == p.seq {
            // Nothing was committed meanwhile: publish the same state with the emptied WAL,
            // so that status() after checkpoint() sees it.
            if let Err(e) = w.pager.seal() {
                return Err(self.poison_with(w, poison_message(&e)));
            }
            let snap = Arc::new(make_snapshot(w));
            self.live.register(&snap);
            self.publish(snap);
        }
        let mut s = self.sync.lock();
        s.durable_seq = s.durable_seq.max(p.seq);
        self.sync_cv.notify_all();
        Ok(())
    }
}

impl Store {
    /// Makes the newest snapshot visible to readers (never goes backwards).
    pub(super) fn publish(&self, snap: Arc<SnapshotData>) {
        self.shared.publish(snap);
    }

    /// Counter of publishes, for watchers.
    pub(crate) fn publish_generation(&self) -> u64 {
        *self.shared.publish_generation.lock()
    }

    /// Wakes every watcher waiting for a publish (they re-check their state and sleep again
    /// if nothing concerns them): how a [`crate::WatchCanceller`] reaches a waiting watcher.
    pub(crate) fn wake_watchers(&self) {
        *self.shared.publish_generation.lock() += 1;
        self.shared.published_cv.notify_all();
    }

    /// Waits until a publish after `generation`, the store closes, or `until`.
    pub(crate) fn wait_for_publish(&self, generation: u64, until: Instant) {
        let mut g = self.shared.publish_generation.lock();
        while *g == generation && !self.shared.closed.load(Ordering::Acquire) {
            if self
                .shared
                .published_cv
                .wait_until(&mut g, until)
                .timed_out()
            {
                return;
            }
        }
    }

    /// Blocks until every commit up to `seq` is durable, syncing the WAL itself if no other
    /// thread is (group commit).
    pub(super) fn wait_durable(&self, seq: u64) -> Result<()> {
        let shared = &*self.shared;
        let mut s = shared.sync.lock();
        loop {
            if s.durable_seq >= seq {
                return Ok(());
            }
            if let Some(p) = &s.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            if s.syncing {
                let t = Instant::now();
                shared.sync_cv.wait(&mut s);
                profile::add(&shared.timers.sync_follow, t);
                continue;
            }
            s.syncing = true;
            drop(s);
            let result = self.sync_round();
            s = shared.sync.lock();
            s.syncing = false;
            match result {
                Ok(upto) => s.durable_seq = s.durable_seq.max(upto),
                Err(e) => {
                    s.poisoned.get_or_insert_with(|| poison_message(&e));
                }
            }
            shared.sync_cv.notify_all();
        }
    }

    /// One group-commit round: seal, sync the WAL, publish. Returns the sequence number now
    /// durable.
    fn sync_round(&self) -> Result<u64> {
        let shared = &*self.shared;
        // Committers that are appending right now would otherwise miss this sync and wait a
        // whole extra round: give them a moment (bounded) to land in this group.
        let start = Instant::now();
        while shared.committing.load(Ordering::Acquire) > 0 && start.elapsed() < GROUP_WAIT {
            std::thread::yield_now();
        }
        // The WAL file is taken with the sealed state: an installed snapshot replaces it (see
        // `transfer.rs`), and this round must sync the file its records went to.
        let (snap, wal_file, writeback, prefault) = {
            let t = Instant::now();
            let mut w = shared.writer.lock();
            let t = profile::add(&shared.timers.seal_lock_wait, t);
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            let snap = self.guard(&mut w, |w| {
                w.pager.seal()?;
                Ok(make_snapshot(w))
            });
            profile::add(&shared.timers.seal, t);
            let snap = snap?;
            let snap = Arc::new(snap);
            shared.live.register(&snap);
            let writeback = w.pager.take_writeback_due(WRITEBACK_BYTES);
            let prefault = w.pager.take_prefault_due();
            let wal_file = w.wal.as_ref().map(|wal| wal.file.clone());
            (snap, wal_file, writeback, prefault)
        };
        let Some(wal_file) = wal_file else {
            return Err(Error::ReadOnly {
                path: shared.path.clone(),
            });
        };
        // The writeback thread starts the writeback of the pages sealed since the last
        // request while the WAL syncs (a hint: durability rests on the WAL sync and the
        // checkpoint's fsync), once they add up to `WRITEBACK_BYTES`. Requesting it only after
        // the sync was tried and measured no better (docs/benchmarks.md, "Scaling", the 16M
        // run).
        // The same thread brings a region the file grew into into the page cache, ahead of the
        // commits that will write it (see `Pager::ensure_room`).
        if writeback || prefault.is_some() {
            let mut bg = shared.background.lock();
            bg.writeback_requested |= writeback;
            if let Some((start, end)) = prefault {
                bg.prefault_requested = Some(merge_ranges(bg.prefault_requested, start, end));
            }
            shared.background_cv.notify_all();
        }
        let t = Instant::now();
        let synced = wal_file.sync_data();
        profile::add(&shared.timers.wal_sync, t);
        if let Err(e) = synced {
            let e = Error::from(e);
            shared
                .writer
                .lock()
                .poisoned
                .get_or_insert_with(|| poison_message(&e));
            return Err(e);
        }
        let upto = snap.version;
        self.publish(snap);
        Ok(upto)
    }

    /// Makes every commit so far durable (useful with [`Durability::Relaxed`](crate::Durability::Relaxed)).
    pub fn sync(&self) -> Result<()> {
        self.check_open()?;
        let target = self.shared.writer.lock().seq;
        self.wait_durable(target)
    }

    /// Runs a checkpoint now: the main file then holds every commit acknowledged before the
    /// call, and the WAL keeps only the records of commits made while it ran. Commits continue
    /// during the checkpoint's main-file sync (a replicated store's checkpoint still holds the
    /// writer lock throughout).
    pub fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        if self.shared.opts.replicated {
            let mut w = self.shared.writer.lock();
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            return self.checkpoint_locked(&mut w);
        }
        let shared = &*self.shared;
        {
            let mut bg = shared.background.lock();
            while bg.checkpoint.running {
                shared.background_cv.wait(&mut bg);
            }
            bg.checkpoint.running = true;
            bg.checkpoint.io_done = None;
            bg.checkpoint_requested = false;
        }
        let result = self.run_checkpoint();
        let mut bg = shared.background.lock();
        bg.checkpoint.running = false;
        shared.background_cv.notify_all();
        result
    }

    /// Asks the background thread for a checkpoint (a commit found the WAL past its threshold),
    /// unless one runs already.
    pub(super) fn request_checkpoint(&self) {
        let mut bg = self.shared.background.lock();
        if !bg.checkpoint.running && !bg.checkpoint_requested {
            bg.checkpoint_requested = true;
            self.shared.background_cv.notify_all();
        }
    }

    /// The three phases of a concurrent checkpoint; the caller marked it running.
    fn run_checkpoint(&self) -> Result<()> {
        let shared = &*self.shared;
        let timers = &*shared.timers;
        let (file, prepared) = {
            let mut w = shared.writer.lock();
            let t = Instant::now();
            self.check_open()?;
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            let Some(wal) = w.wal.as_ref() else {
                return Err(Error::ReadOnly {
                    path: shared.path.clone(),
                });
            };
            // Records from here on are not in this checkpoint's state: replay starts here.
            let position = WalPosition {
                offset: wal.head(),
                salt: wal.salt(),
                purged: None,
                membership: None,
            };
            let prepared = self.guard(&mut w, |w| {
                prepare_checkpoint(&mut w.pager, &w.state, (w.seq, w.term), &w.slots, &position)
            })?;
            let snap = Arc::new(make_snapshot(&mut w));
            shared.live.register(&snap);
            shared.background.lock().checkpoint.pending = Some(PendingCheckpoint {
                prepared: prepared.clone(),
                seq: w.seq,
                wal_offset: position.offset,
                snap,
            });
            profile::add(&timers.checkpoint_start, t);
            timers.checkpoints.fetch_add(1, Ordering::Relaxed);
            (w.pager.file.clone(), prepared)
        };
        // No lock: commits go on, writing only pages that are free in both the durable tree
        // and this one (see `alloc.rs`), and WAL frames after `position`.
        timers.checkpoint_io_running.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        let io = make_durable(&*file, &prepared);
        let t = profile::add(&timers.checkpoint_io, t);
        timers.checkpoint_io_running.fetch_sub(1, Ordering::Relaxed);
        {
            let mut bg = shared.background.lock();
            bg.checkpoint.io_done = Some(io.as_ref().err().map(poison_message));
            shared.background_cv.notify_all();
        }
        let mut w = shared.writer.lock();
        let t = profile::add(&timers.checkpoint_finish_wait, t);
        let finished = shared.finish_checkpoint(&mut w);
        profile::add(&timers.checkpoint_finish, t);
        io.and(finished)
    }

    /// A checkpoint under the writer lock (held throughout), after draining any in-flight one:
    /// for callers that need the main file to hold everything before they go on.
    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        self.checkpoint_with(w, None)
    }

    /// A checkpoint; for a replicated store it keeps the WAL's generation (the WAL is the Raft
    /// log) and records the log's start, or `purge`'s new start (see [`Store::log_purge`]).
    pub(super) fn checkpoint_with(&self, w: &mut Writer, purge: Option<PurgePoint>) -> Result<()> {
        self.check_writable()?;
        self.shared.drain_checkpoint(w)?;
        let salt = crate::file::random_u64();
        let file = w.pager.file.clone();
        let replicated = self.guard(w, |w| replicated_position(w, purge))?;
        self.guard(w, |w| {
            let fresh = WalPosition {
                offset: WAL_START,
                salt,
                purged: None,
                membership: None,
            };
            write_checkpoint_at(
                &*file,
                &mut w.pager,
                &w.state,
                (w.seq, w.term),
                &mut w.slots,
                replicated.as_ref().unwrap_or(&fresh),
            )
        })?;
        if replicated.is_none() {
            if let Some(wal) = w.wal.as_mut() {
                wal.reset(salt);
            }
        }
        w.last_checkpoint = Instant::now();
        let snap = Arc::new(make_snapshot(w));
        self.shared.live.register(&snap);
        let upto = snap.version;
        self.publish(snap);
        let mut s = self.shared.sync.lock();
        s.durable_seq = s.durable_seq.max(upto);
        self.shared.sync_cv.notify_all();
        Ok(())
    }
}
