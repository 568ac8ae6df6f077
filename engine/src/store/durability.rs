//! How commits become durable and visible: group commit (one syncer per round seals the
//! working state, fdatasyncs the WAL and publishes), publishing snapshots to readers and
//! watchers, and checkpoints into the main file.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commit::poison_message;
use super::raftlog::replicated_position;
use super::{make_snapshot, Store, Writer};
use crate::checkpoint::{write_checkpoint_at, WalPosition};
use crate::error::{Error, Result};
use crate::raftlog::PurgePoint;
use crate::snapshot::SnapshotData;
use crate::wal::WAL_START;

/// Longest a group-commit leader waits for committers still appending.
const GROUP_WAIT: Duration = Duration::from_micros(100);

impl Store {
    /// Makes the newest snapshot visible to readers (never goes backwards).
    pub(super) fn publish(&self, snap: Arc<SnapshotData>) {
        {
            let mut cur = self.shared.published.write();
            // At one version the WAL only shrinks (a checkpoint; appends take a new version),
            // so a smaller `wal_used` is the newer snapshot: status() after checkpoint() must
            // see the emptied WAL.
            let same_version_newer = snap.version == cur.version
                && (snap.state != cur.state || snap.wal_used < cur.wal_used);
            if snap.version > cur.version || same_version_newer {
                *cur = snap;
            } else {
                return;
            }
        }
        *self.shared.publish_generation.lock() += 1;
        self.shared.published_cv.notify_all();
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
                shared.sync_cv.wait(&mut s);
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
        let (snap, wal_file) = {
            let mut w = shared.writer.lock();
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            let snap = self.guard(&mut w, |w| {
                w.pager.seal()?;
                Ok(make_snapshot(w))
            })?;
            let snap = Arc::new(snap);
            shared.live.register(&snap);
            (snap, w.wal.as_ref().map(|wal| wal.file.clone()))
        };
        let Some(wal_file) = wal_file else {
            return Err(Error::ReadOnly {
                path: shared.path.clone(),
            });
        };
        if let Err(e) = wal_file.sync_data() {
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

    /// Runs a checkpoint now: the main file then holds every commit and the WAL is emptied.
    pub fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = self.shared.writer.lock();
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        self.checkpoint_locked(&mut w)
    }

    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        self.checkpoint_with(w, None)
    }

    /// A checkpoint; for a replicated store it keeps the WAL's generation (the WAL is the Raft
    /// log) and records the log's start, or `purge`'s new start (see [`Store::log_purge`]).
    pub(super) fn checkpoint_with(&self, w: &mut Writer, purge: Option<PurgePoint>) -> Result<()> {
        self.check_writable()?;
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
