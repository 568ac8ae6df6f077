//! Watch: a stream of the changes to a key, a prefix or a range, from now or from a past
//! revision, as etcd's Watch.
//!
//! A [`Watcher`] holds no queue. It remembers the next revision it has to deliver and, when
//! asked, reads the changes since then from the store's change log (the `log` tree) through a
//! snapshot, waiting for the next publish if there are none. So replaying history and following
//! live changes are one code path, with no gap and no duplicate at the seam; a slow consumer
//! never blocks a writer and never makes memory grow (what it has not read yet stays in the
//! file); and the events of one transaction are always delivered together. The price: a watcher
//! that falls behind past a compaction is cancelled with the compact revision, exactly as etcd
//! cancels one, and each watcher scans the whole change log since its position (filtering by
//! range), so thousands of watchers on a busy store cost proportionally.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::keyspace;
use crate::store::Store;
use crate::types::{KeyValue, Range, Revision};

/// Largest number of events in one response (a transaction's events are never split, so a
/// response can exceed it by one transaction).
const BATCH: usize = 1000;

/// What kind of change an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A put (creation or update).
    Put,
    /// A deletion.
    Delete,
}

/// One change, as etcd's `mvccpb.Event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change. For a delete: the key, with `mod_revision` set to the
    /// deletion's revision and the other fields zero.
    pub kv: KeyValue,
    /// The key before the change, if requested and it existed.
    pub prev_kv: Option<KeyValue>,
}

/// Options of a watch, as etcd's `WatchCreateRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// First revision to deliver; 0 for "changes after now".
    pub start_revision: Revision,
    /// Include each event's previous key-value.
    pub prev_kv: bool,
    /// Leave out puts (etcd's NOPUT filter).
    pub no_put: bool,
    /// Leave out deletes (etcd's NODELETE filter).
    pub no_delete: bool,
    /// Send a response with no events (a progress notification) when nothing happened for
    /// this long; `None` for never.
    pub progress_notify: Option<Duration>,
}

/// One response of a watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponse {
    /// Store revision when the response was made; every change up to it that matches the
    /// watch has been delivered.
    pub header_revision: Revision,
    /// The changes, in revision order. Empty for a progress notification or a cancellation.
    pub events: Vec<Event>,
    /// True if the watch ended: it needed history that compaction removed.
    pub canceled: bool,
    /// The compact revision, when `canceled` because of compaction.
    pub compact_revision: Revision,
    /// True in the one response that completes the replay of a watch started at a past
    /// revision: with it, every matching change up to the revision that was current when the
    /// watch was created has been delivered, and what follows is live. It may carry the last
    /// replayed events or none (when the end of the history held no matching change). A watch
    /// from now has nothing to replay and never sets it; see [`Watcher::caught_up`].
    pub caught_up: bool,
}

/// A watch on a range. Iterate it, or call [`Watcher::recv`] / [`Watcher::recv_timeout`].
/// Dropping it cancels the watch. `Send`, so it can live on its own thread. A watcher holds a
/// handle on the store, so the store stays open while it lives; after an explicit
/// [`Store::close`] the watcher ends (its iterator returns `None`).
pub struct Watcher {
    store: Store,
    range: Range,
    opts: WatchOptions,
    /// Next revision to deliver.
    next: u64,
    /// The store revision when the watch was created: the end of the history to replay.
    replay_until: u64,
    /// `next > replay_until` has been reported (or there was nothing to replay).
    caught_up: bool,
    done: bool,
    last_sent: Instant,
    /// Set by a [`WatchCanceller`] from another thread.
    cancelled: Arc<AtomicBool>,
}

/// Cancels a [`Watcher`] from another thread, waking it if it is waiting in
/// [`Watcher::recv`] (which then returns `Ok(None)`). From [`Watcher::canceller`]; cheap to
/// clone.
#[derive(Clone)]
pub struct WatchCanceller {
    store: Store,
    cancelled: Arc<AtomicBool>,
}

impl std::fmt::Debug for WatchCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCanceller")
            .field("cancelled", &self.cancelled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl WatchCanceller {
    /// Ends the watch. Idempotent.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.store.wake_watchers();
    }
}

impl Store {
    /// Watches the keys of `range` from now on.
    ///
    /// ```no_run
    /// use etch_engine::{Range, Store};
    /// let db = Store::open("app.etch")?;
    /// let mut watcher = db.watch(Range::prefix("cfg/"))?;
    /// db.put("cfg/mode", "safe")?;
    /// for resp in watcher.by_ref().take(1) {
    ///     for ev in resp?.events {
    ///         println!("{:?} {:?} at {}", ev.kind, ev.kv.key, ev.kv.mod_revision);
    ///     }
    /// }
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn watch(&self, range: Range) -> Result<Watcher> {
        self.watch_with(range, WatchOptions::default())
    }

    /// Watches with etcd's options: a start revision in the past replays history first, and
    /// the response that completes the replay has [`WatchResponse::caught_up`] set. An empty
    /// start key is [`Error::EmptyKey`] (etcd: "key is not provided"; watch every key with
    /// [`Range::all`]).
    pub fn watch_with(&self, range: Range, opts: WatchOptions) -> Result<Watcher> {
        if range.start().is_empty() {
            return Err(Error::EmptyKey);
        }
        let snap = self.read()?;
        let next = if opts.start_revision <= 0 {
            snap.revision() + 1
        } else {
            opts.start_revision
        };
        let replay_until = snap.revision() as u64;
        Ok(Watcher {
            store: self.clone(),
            range,
            opts,
            next: next as u64,
            replay_until,
            caught_up: next as u64 > replay_until,
            done: false,
            last_sent: Instant::now(),
            cancelled: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Watcher {
    /// The next revision this watcher will deliver.
    pub fn next_revision(&self) -> Revision {
        self.next as i64
    }

    /// True once every matching change up to the revision that was current when the watch
    /// was created has been delivered: at once for a watch from now; for a watch replaying
    /// history, from the response with [`WatchResponse::caught_up`] on. A consumer that must
    /// know when it has seen the past (to build a cache, then follow changes) waits for that
    /// response instead of polling [`Watcher::next_revision`].
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Ends the watch; later calls return `None` / nothing.
    pub fn cancel(&mut self) {
        self.done = true;
    }

    /// A handle that cancels this watch from another thread, even while it waits.
    pub fn canceller(&self) -> WatchCanceller {
        WatchCanceller {
            store: self.store.clone(),
            cancelled: self.cancelled.clone(),
        }
    }

    /// Waits for the next response.
    pub fn recv(&mut self) -> Result<Option<WatchResponse>> {
        loop {
            if let Some(r) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
        }
    }

    /// Returns the next response if there is one now.
    pub fn try_recv(&mut self) -> Result<Option<WatchResponse>> {
        self.recv_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for the next response (events, a progress notification, or the
    /// cancellation). `Ok(None)` if none came in time or the watch has ended.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<WatchResponse>> {
        let deadline = crate::clock::deadline_after(Instant::now(), timeout);
        loop {
            if self.cancelled.load(Ordering::Acquire) {
                self.done = true;
            }
            if self.done {
                return Ok(None);
            }
            let generation = self.store.publish_generation();
            let snap = self.store.read()?;
            let (revision, compacted) = (snap.revision(), snap.compact_revision());
            if (self.next as i64) <= compacted {
                self.done = true;
                return Ok(Some(WatchResponse {
                    header_revision: revision,
                    events: Vec::new(),
                    canceled: true,
                    compact_revision: compacted,
                    caught_up: false,
                }));
            }
            if (self.next as i64) <= revision {
                let (logged, next) = keyspace::events_since(
                    &snap.snap.view(),
                    &snap.snap.state,
                    self.next,
                    &self.range,
                    self.opts.prev_kv,
                    BATCH,
                )?;
                self.next = next;
                let events: Vec<Event> = logged
                    .into_iter()
                    .filter(|e| {
                        if e.is_put {
                            !self.opts.no_put
                        } else {
                            !self.opts.no_delete
                        }
                    })
                    .map(|e| Event {
                        kind: if e.is_put {
                            EventKind::Put
                        } else {
                            EventKind::Delete
                        },
                        kv: e.kv,
                        prev_kv: e.prev_kv,
                    })
                    .collect();
                let completes_replay = !self.caught_up && next > self.replay_until;
                if completes_replay {
                    self.caught_up = true;
                }
                if !events.is_empty() || completes_replay {
                    self.last_sent = Instant::now();
                    let header_revision = (next as i64 - 1).min(revision);
                    return Ok(Some(WatchResponse {
                        header_revision,
                        events,
                        caught_up: completes_replay,
                        ..Default::default()
                    }));
                }
                continue;
            }
            let now = Instant::now();
            if let Some(every) = self.opts.progress_notify {
                if now >= crate::clock::deadline_after(self.last_sent, every) {
                    self.last_sent = now;
                    return Ok(Some(WatchResponse {
                        header_revision: revision,
                        ..Default::default()
                    }));
                }
            }
            if now >= deadline {
                return Ok(None);
            }
            let mut until = deadline;
            if let Some(every) = self.opts.progress_notify {
                until = until.min(crate::clock::deadline_after(self.last_sent, every));
            }
            self.store.wait_for_publish(generation, until);
        }
    }
}

impl Iterator for Watcher {
    type Item = Result<WatchResponse>;

    /// Blocks for the next response; ends after a cancellation or an error.
    fn next(&mut self) -> Option<Self::Item> {
        match self.recv() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                if matches!(e, Error::Closed) {
                    None
                } else {
                    Some(Err(e))
                }
            }
        }
    }
}
