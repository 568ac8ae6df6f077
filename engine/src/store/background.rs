//! The background thread (checkpoints by time, relaxed-mode syncs, lease expiry and
//! auto-compaction when the store makes its own background writes) and the auto-compaction
//! decision it and a replication layer share.

use std::sync::Weak;
use std::time::{Duration, Instant};

use super::durability::CheckpointProgress;
use super::{Shared, Store};
use crate::options::{AutoCompaction, Durability};
use crate::types::Revision;

/// What the background thread shares with the store's other threads (under the `background`
/// mutex; `background_cv` signals every change).
#[derive(Default)]
pub(super) struct Background {
    pub(super) stop: bool,
    /// A commit found the WAL past its checkpoint threshold: the thread runs a checkpoint now
    /// rather than at its next tick.
    pub(super) checkpoint_requested: bool,
    /// Group commit sealed pages into the main file: the thread starts their writeback, so that
    /// the main file's dirty pages reach the device a batch at a time rather than all at once
    /// in the next checkpoint's fsync (which then competes with commits' WAL syncs for the
    /// device for much longer).
    pub(super) writeback_requested: bool,
    /// The concurrent checkpoint in flight, if any (see `durability.rs`).
    pub(super) checkpoint: CheckpointProgress,
}

impl Store {
    /// The revision automatic compaction (see [`AutoCompaction`]) would compact to now, if any.
    /// The background thread calls this every tick; with [`Options::background_writes`](crate::Options::background_writes) off the
    /// replication layer calls it periodically and proposes the compaction. In periodic mode
    /// each call records a (time, revision) sample.
    pub fn auto_compaction_due(&self) -> Option<Revision> {
        let read = self.read().ok()?;
        let (revision, compacted) = (read.revision(), read.compact_revision());
        drop(read);
        match self.shared.opts.auto_compaction {
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
                let (requested, writeback) = {
                    let mut bg = shared.background.lock();
                    // Other notifications on the condvar (checkpoint progress) wake it too: it
                    // sleeps on until the tick, a stop, or a checkpoint or writeback request.
                    while !bg.stop && !bg.checkpoint_requested && !bg.writeback_requested {
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
                    (
                        std::mem::take(&mut bg.checkpoint_requested),
                        std::mem::take(&mut bg.writeback_requested),
                    )
                };
                if writeback {
                    // A hint only: an error here changes nothing durable, and the next sync
                    // reports a real I/O problem.
                    let main_file = shared.file.lock().clone();
                    let _ = main_file.start_writeback();
                }
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
                        let _ = store.compact(target);
                    }
                }
                // Release the strong reference before sleeping, so it never keeps the store open.
                drop(store);
            }
        });
}
