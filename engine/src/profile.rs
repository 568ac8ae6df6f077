//! Where commits and checkpoints spend their time: cumulative per-phase clocks a benchmark reads
//! before and after a commit ([`crate::Store::commit_profile`]) to tell what a slow commit
//! waited for. Each clock is a relaxed atomic add after an `Instant` pair, a few tens of
//! nanoseconds against a commit's microseconds, so they are always on; nothing prints them.
//!
//! The phases of one durable commit, in order: waiting for the writer lock, applying the batch
//! to the working trees, appending the WAL record (a commit that finds the WAL full waits for
//! the checkpoint in flight to free its start, or with none in flight checkpoints under the
//! lock), then waiting for durability: as the group-commit syncer, taking the writer lock again
//! and *sealing* (writing the dirty pages to the main file, growing it and its map first if
//! needed), then the WAL fdatasync; or, as a follower, waiting for another thread's round. A
//! concurrent checkpoint runs beside these in the background thread: its start and finish hold
//! the writer lock; its I/O (main-file fsync, two meta writes with a sync each) does not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shared clocks, in nanoseconds (and counts where named so).
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) writer_wait: AtomicU64,
    pub(crate) apply: AtomicU64,
    pub(crate) wal_append: AtomicU64,
    pub(crate) wal_full_checkpoint: AtomicU64,
    pub(crate) wal_full_drain: AtomicU64,
    pub(crate) sync_follow: AtomicU64,
    pub(crate) seal_lock_wait: AtomicU64,
    pub(crate) seal: AtomicU64,
    pub(crate) file_grow: AtomicU64,
    pub(crate) file_grows: AtomicU64,
    pub(crate) map_remap: AtomicU64,
    pub(crate) map_remaps: AtomicU64,
    pub(crate) wal_sync: AtomicU64,
    pub(crate) checkpoint_start: AtomicU64,
    pub(crate) checkpoint_io: AtomicU64,
    pub(crate) checkpoint_finish_wait: AtomicU64,
    pub(crate) checkpoint_finish: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    /// Nonzero while a concurrent checkpoint's unlocked I/O runs (a gauge, not a clock).
    pub(crate) checkpoint_io_running: AtomicU64,
}

/// Adds the time since `since` to `clock`; returns now, for the next phase.
pub(crate) fn add(clock: &AtomicU64, since: Instant) -> Instant {
    let now = Instant::now();
    clock.fetch_add(
        now.saturating_duration_since(since).as_nanos() as u64,
        Ordering::Relaxed,
    );
    now
}

fn get(clock: &AtomicU64) -> Duration {
    Duration::from_nanos(clock.load(Ordering::Relaxed))
}

impl Timers {
    pub(crate) fn snapshot(&self) -> CommitProfile {
        CommitProfile {
            writer_wait: get(&self.writer_wait),
            apply: get(&self.apply),
            wal_append: get(&self.wal_append),
            wal_full_checkpoint: get(&self.wal_full_checkpoint),
            wal_full_drain: get(&self.wal_full_drain),
            sync_follow: get(&self.sync_follow),
            seal_lock_wait: get(&self.seal_lock_wait),
            seal: get(&self.seal),
            file_grow: get(&self.file_grow),
            file_grows: self.file_grows.load(Ordering::Relaxed),
            map_remap: get(&self.map_remap),
            map_remaps: self.map_remaps.load(Ordering::Relaxed),
            wal_sync: get(&self.wal_sync),
            checkpoint_start: get(&self.checkpoint_start),
            checkpoint_io: get(&self.checkpoint_io),
            checkpoint_finish_wait: get(&self.checkpoint_finish_wait),
            checkpoint_finish: get(&self.checkpoint_finish),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            checkpoint_io_running: self.checkpoint_io_running.load(Ordering::Relaxed) > 0,
        }
    }
}

/// Cumulative time a store's commits and checkpoints spent in each phase since it opened (see
/// [`crate::Store::commit_profile`]); subtract two readings ([`CommitProfile::since`]) for one
/// commit's or one run's share. Times of different threads add up: with several committers the
/// sum exceeds the wall time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitProfile {
    /// Waiting for the writer lock to apply a commit (held by another commit, a sealing
    /// syncer, a checkpoint's start or finish, a compaction step).
    pub writer_wait: Duration,
    /// Applying commands to the working trees (CPU, and page faults on the map).
    pub apply: Duration,
    /// Encoding and writing WAL records (`pwrite`; includes the WAL file's growth).
    pub wal_append: Duration,
    /// Checkpoints run under the writer lock by commits that found the WAL full (or their
    /// record too large for it) with no concurrent checkpoint to wait for.
    pub wal_full_checkpoint: Duration,
    /// Commits that found the WAL full waiting, writer lock held, for the concurrent checkpoint
    /// in flight to finish (which frees the WAL before its start), then appending.
    pub wal_full_drain: Duration,
    /// Waiting for another thread's group-commit round to make a commit durable.
    pub sync_follow: Duration,
    /// A group-commit syncer waiting for the writer lock to seal.
    pub seal_lock_wait: Duration,
    /// Sealing: writing the batch's dirty pages to the main file (`pwrite`, which may be
    /// throttled by the kernel's dirty-page limits), including `file_grow` and `map_remap`.
    pub seal: Duration,
    /// Growing the main file (`set_len`), a part of the seal or of a checkpoint's start.
    pub file_grow: Duration,
    /// How many times the main file grew.
    pub file_grows: u64,
    /// Making a larger memory map of the main file.
    pub map_remap: Duration,
    /// How many times the map was remade.
    pub map_remaps: u64,
    /// The group commit's WAL `fdatasync`.
    pub wal_sync: Duration,
    /// Checkpoint starts (writer lock held: seal, free list, meta encoding).
    pub checkpoint_start: Duration,
    /// Checkpoint I/O without the writer lock (main-file fsync, both meta slots and their syncs).
    pub checkpoint_io: Duration,
    /// A checkpoint's runner waiting for the writer lock to finish it.
    pub checkpoint_finish_wait: Duration,
    /// Checkpoint finishes (writer lock held).
    pub checkpoint_finish: Duration,
    /// Concurrent checkpoints started.
    pub checkpoints: u64,
    /// A concurrent checkpoint's I/O was running when this reading was taken.
    pub checkpoint_io_running: bool,
}

impl CommitProfile {
    /// What happened between `earlier` and this reading (`checkpoint_io_running` is this
    /// reading's).
    pub fn since(&self, earlier: &CommitProfile) -> CommitProfile {
        CommitProfile {
            writer_wait: self.writer_wait.saturating_sub(earlier.writer_wait),
            apply: self.apply.saturating_sub(earlier.apply),
            wal_append: self.wal_append.saturating_sub(earlier.wal_append),
            wal_full_checkpoint: self
                .wal_full_checkpoint
                .saturating_sub(earlier.wal_full_checkpoint),
            wal_full_drain: self.wal_full_drain.saturating_sub(earlier.wal_full_drain),
            sync_follow: self.sync_follow.saturating_sub(earlier.sync_follow),
            seal_lock_wait: self.seal_lock_wait.saturating_sub(earlier.seal_lock_wait),
            seal: self.seal.saturating_sub(earlier.seal),
            file_grow: self.file_grow.saturating_sub(earlier.file_grow),
            file_grows: self.file_grows.saturating_sub(earlier.file_grows),
            map_remap: self.map_remap.saturating_sub(earlier.map_remap),
            map_remaps: self.map_remaps.saturating_sub(earlier.map_remaps),
            wal_sync: self.wal_sync.saturating_sub(earlier.wal_sync),
            checkpoint_start: self
                .checkpoint_start
                .saturating_sub(earlier.checkpoint_start),
            checkpoint_io: self.checkpoint_io.saturating_sub(earlier.checkpoint_io),
            checkpoint_finish_wait: self
                .checkpoint_finish_wait
                .saturating_sub(earlier.checkpoint_finish_wait),
            checkpoint_finish: self
                .checkpoint_finish
                .saturating_sub(earlier.checkpoint_finish),
            checkpoints: self.checkpoints.saturating_sub(earlier.checkpoints),
            checkpoint_io_running: self.checkpoint_io_running,
        }
    }
}
