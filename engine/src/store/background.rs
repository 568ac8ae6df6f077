//! The background thread (checkpoints by time, relaxed-mode syncs, lease expiry and
//! auto-compaction when the store makes its own background writes, the steps of an unfinished
//! compaction), the writeback thread beside it, and the auto-compaction decision the
//! background thread and a replication layer share.

use std::sync::Weak;
use std::time::{Duration, Instant};

use super::durability::CheckpointProgress;
use super::{Shared, Store};
use crate::options::{AutoCompaction, Durability};
use crate::pager::merge_ranges;
use crate::types::Revision;

/// What the background thread shares with the store's other threads (under the `background`
/// mutex; `background_cv` signals every change).
#[derive(Default)]
pub(super) struct Background {
    pub(super) stop: bool,
    /// A commit found the WAL past its checkpoint threshold: the thread runs a checkpoint now
    /// rather than at its next tick.
    pub(super) checkpoint_requested: bool,
    /// Group commit sealed pages into the main file: the writeback thread starts their
    /// writeback, so that the main file's dirty pages reach the device a batch at a time rather
    /// than all at once in the next checkpoint's fsync (which then competes with commits' WAL
    /// syncs for the device for much longer).
    pub(super) writeback_requested: bool,
    /// The byte range the main file grew into ahead of need (see `Pager::ensure_room`): the
    /// writeback thread brings it into the page cache before commits write it.
    pub(super) prefault_requested: Option<(u64, u64)>,
    /// The concurrent checkpoint in flight, if any (see `durability.rs`).
    pub(super) checkpoint: CheckpointProgress,
    /// Change counts for [`AutoCompaction::Changes`].
    pub(super) changes: ChangeSamples,
    /// Where the compaction steps have got to (see `keyspace/compact.rs`; lost on a crash,
    /// when the sweep restarts from the first key).
    pub(super) sweep: crate::keyspace::SweepPosition,
    /// Compaction steps since the last checkpoint they ran (see `maintenance.rs`).
    pub(super) steps_since_checkpoint: u64,
}

/// What retention by change count knows of the change log: how many changes each sampled
/// revision closes, counted incrementally (each tick walks only the log entries of revisions it
/// has not counted yet), so that deciding costs no more than reading each change once.
#[derive(Default)]
pub(super) struct ChangeSamples {
    /// Revisions up to here are counted (0: nothing counted yet).
    counted_to: Revision,
    /// (revision, changes of revisions in (base, revision]) in revision order; the first is the
    /// base (the compact revision when counting started, with 0 changes). A sample is kept only
    /// when it is at least a sixteenth of the retention past the previous one, so the deque is
    /// short; compaction targets are always sampled revisions.
    samples: std::collections::VecDeque<(Revision, u64)>,
}

impl ChangeSamples {
    /// Appends a sample, first dropping the newest one if it lies less than `every` changes
    /// past the one before it (so samples stay at least `every` apart, except the newest).
    fn push(&mut self, sample: (Revision, u64), every: u64) {
        let n = self.samples.len();
        if n >= 2 && self.samples[n - 1].1 - self.samples[n - 2].1 < every {
            self.samples.pop_back();
        }
        self.samples.push_back(sample);
    }

    /// Counts the changes after `counted_to` in `read` and returns the revision to compact to, if
    /// more than `n + n/10` changes are kept. The log walk runs without the `background` lock
    /// (commits take it); the samples are only touched under it.
    fn due(store: &Store, read: &crate::ReadTxn, n: u64) -> Option<Revision> {
        let (revision, compacted) = (read.revision(), read.compact_revision());
        let every = (n / 16).max(1);
        let (after, base) = {
            let mut bg = store.shared.background.lock();
            let c = &mut bg.changes;
            // Counting starts (again) at the compact revision the first time, when the compact
            // revision moved past what was counted, or when the history was replaced.
            if c.samples.is_empty() || c.counted_to < compacted || c.counted_to > revision {
                c.samples.clear();
                c.samples.push_back((compacted, 0));
                c.counted_to = compacted;
            }
            // The first sample is the newest at or below the compact revision.
            while c.samples.get(1).is_some_and(|&(r, _)| r <= compacted) {
                c.samples.pop_front();
            }
            (c.counted_to, c.samples.back().map_or(0, |&(_, k)| k))
        };
        // Samples of this walk, thinned by the same rule as the deque's.
        let mut found: Vec<(Revision, u64)> = Vec::new();
        crate::keyspace::count_changes(
            &read.snap.view(),
            &read.snap.state,
            after as u64,
            |rev, k| {
                let m = found.len();
                if m >= 2 && found[m - 1].1 - found[m - 2].1 < every {
                    found.pop();
                }
                found.push((rev as Revision, base + k));
            },
        )
        .ok()?;
        let mut bg = store.shared.background.lock();
        let c = &mut bg.changes;
        if c.counted_to != after {
            return None; // another caller counted meanwhile; the next call decides
        }
        for sample in found {
            c.push(sample, every);
        }
        c.counted_to = revision;
        let total = c.samples.back().map_or(0, |&(_, k)| k);
        let kept = total - c.samples.front().map_or(0, |&(_, k)| k);
        if kept <= n + n / 10 {
            return None;
        }
        // The oldest sampled revision after which at most `n` changes remain.
        c.samples
            .iter()
            .find(|&&(_, k)| total - k <= n)
            .map(|&(r, _)| r)
            .filter(|&r| r > compacted.max(1) && r <= revision)
    }
}

impl Store {
    /// The revision automatic compaction (see [`AutoCompaction`]) would compact to now, if any.
    /// The background thread calls this every tick; with [`Options::background_writes`](crate::Options::background_writes) off the
    /// replication layer calls it periodically and proposes the compaction. In periodic mode
    /// each call records a (time, revision) sample.
    pub fn auto_compaction_due(&self) -> Option<Revision> {
        let read = self.read().ok()?;
        let (revision, compacted) = (read.revision(), read.compact_revision());
        if let AutoCompaction::Changes(n) = self.shared.opts.auto_compaction {
            return ChangeSamples::due(self, &read, n);
        }
        drop(read);
        match self.shared.opts.auto_compaction {
            AutoCompaction::Changes(_) => None,
            AutoCompaction::Off => None,
            AutoCompaction::Revisions(n) => {
                let n = n as i64;
                let target = revision - n;
                // Compact in steps of a tenth of the retention, not at every revision.
                (target >= compacted.max(1) + (n / 10).max(1)).then_some(target)
            }
            AutoCompaction::Periodic(keep) => {
                let now = Instant::now();
                let mut samples = self.shared.compaction_samples.lock();
                samples.push_back((now, revision));
                let mut target = None;
                while let Some(&(t, r)) = samples.front() {
                    if now.duration_since(t) < keep {
                        break;
                    }
                    target = Some(r);
                    samples.pop_front();
                }
                target.filter(|&r| r > compacted.max(1))
            }
        }
    }
}

/// The background thread: checkpoints by WAL size (when a commit asks) and by time, and syncs
/// the WAL periodically in relaxed mode. Holds only a weak reference, so it never keeps a store
/// open.
pub(super) fn spawn_background(weak: Weak<Shared>) {
    let _ = std::thread::Builder::new()
        .name("etch-background".into())
        .spawn(move || {
            // When the periodic work (timed checkpoint, relaxed sync, leases, compaction) is
            // next due; wake-ups for writeback or a checkpoint request do not postpone it.
            let mut next_tick = Instant::now();
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let tick = shared
                    .opts
                    .checkpoint_interval
                    .min(shared.opts.relaxed_sync_interval)
                    .min(Duration::from_millis(500));
                if next_tick <= Instant::now() {
                    next_tick = Instant::now() + tick;
                }
                let requested = {
                    let mut bg = shared.background.lock();
                    // Other notifications on the condvar (checkpoint progress, writeback
                    // requests) wake it too: it sleeps on until the tick, a stop, or a
                    // checkpoint request.
                    while !bg.stop && !bg.checkpoint_requested {
                        if shared
                            .background_cv
                            .wait_until(&mut bg, next_tick)
                            .timed_out()
                        {
                            break;
                        }
                    }
                    if bg.stop {
                        return;
                    }
                    std::mem::take(&mut bg.checkpoint_requested)
                };
                if !requested && Instant::now() < next_tick {
                    continue;
                }
                let store = Store {
                    shared,
                    _close_on_drop: None,
                };
                let (due, pending) = {
                    let w = store.shared.writer.lock();
                    (
                        w.last_checkpoint.elapsed() >= store.shared.opts.checkpoint_interval,
                        w.wal.as_ref().is_some_and(|wal| wal.used() > 0),
                    )
                };
                // A failed checkpoint poisons the writer: the next commit reports it.
                if requested || (due && pending) {
                    let _ = store.checkpoint();
                } else if store.shared.opts.durability == Durability::Relaxed && pending {
                    let _ = store.sync();
                }
                if store.shared.opts.background_writes {
                    let _ = store.expire_leases();
                    if let Some(target) = store.auto_compaction_due() {
                        let _ = store.decide_compaction(target);
                    }
                }
                // A compaction decided here, left unfinished (by a crash) or decided through
                // `apply` (a replicated store's) goes on here, a bounded number of steps per
                // tick: its steps are local work, not writes of their own, and a big one must
                // not hold up this thread's checkpoints and relaxed syncs for its whole length.
                if store.shared.opts.background_writes || store.shared.opts.replicated {
                    background_compaction_steps(&store);
                }
                // Release the strong reference before sleeping, so it never keeps the store open.
                drop(store);
            }
        });
}

/// The writeback thread: starts the main file's writeback whenever group commit asks (see
/// [`Background::writeback_requested`]), and brings the region the file grew into into the
/// page cache ([`Background::prefault_requested`]). It is a thread of its own because the
/// background thread spends a checkpoint's whole main-file sync blocked in it: requests left
/// waiting for that sync to end kept every page sealed meanwhile dirty in the page cache, for
/// the next checkpoint's sync to write all at once. It ends when the store closes (the stop
/// flag).
pub(super) fn spawn_writeback(weak: Weak<Shared>) {
    let _ = std::thread::Builder::new()
        .name("etch-writeback".into())
        .spawn(move || loop {
            let Some(shared) = weak.upgrade() else { return };
            let (writeback, prefault) = {
                let mut bg = shared.background.lock();
                while !bg.stop && !bg.writeback_requested && bg.prefault_requested.is_none() {
                    shared.background_cv.wait(&mut bg);
                }
                if bg.stop {
                    return;
                }
                let writeback = std::mem::take(&mut bg.writeback_requested);
                (writeback, bg.prefault_requested.take())
            };
            // Both are hints: an error here changes nothing durable, and the next sync reports
            // a real I/O problem.
            let main_file = shared.file.lock().clone();
            if writeback {
                let _ = main_file.start_writeback();
            }
            if let Some((start, end)) = prefault {
                prefault_region(&shared, &*main_file, start, end);
            }
        });
}

/// How much of a prefault runs between two looks at the stop flag.
const PREFAULT_SLICE: u64 = 8 << 20;

/// Brings `[start, end)` of the main file into the page cache, a slice at a time, stopping
/// early when the store closes, or when group commit asks for writeback meanwhile: starting
/// that matters more, and it waits at most one slice (8 MiB, 2-20 ms); the rest of the region
/// is put back as requested, to go on after it.
fn prefault_region(shared: &Shared, file: &dyn crate::storage::StorageFile, start: u64, end: u64) {
    let mut at = start;
    while at < end {
        let n = (end - at).min(PREFAULT_SLICE);
        if file.prefault(at, n).is_err() {
            return;
        }
        at += n;
        let mut bg = shared.background.lock();
        if bg.stop {
            return;
        }
        if bg.writeback_requested && at < end {
            bg.prefault_requested = Some(merge_ranges(bg.prefault_requested, at, end));
            return;
        }
    }
}

/// The background thread's share of a pending compaction in one tick: at most
/// [`Options::compaction_steps_per_tick`](crate::Options::compaction_steps_per_tick) steps,
/// fewer if a commit asks for a checkpoint or the store closes meanwhile (the thread then
/// runs the checkpoint at once; the compaction goes on at the next tick).
pub(super) fn background_compaction_steps(store: &Store) {
    let mut ran = 0;
    while ran < store.shared.opts.compaction_steps_per_tick {
        {
            let bg = store.shared.background.lock();
            if bg.stop || bg.checkpoint_requested {
                break;
            }
        }
        // An error poisons the writer or means the store closed: the next commit reports it.
        match store.compaction_steps(1) {
            Ok(more) => {
                ran += 1;
                if !more {
                    break;
                }
            }
            Err(_) => break,
        }
    }
}
