//! The shared watch dispatcher: one reader of the change log per store routes each event to
//! the watches it concerns, instead of every watch reading the log on its own.
//!
//! **Two groups, as etcd's synced and unsynced watchers.** A watch is *synced* while it is in
//! the dispatcher's [`WatchIndex`]: the follower thread (`notifier.rs`) reads each commit's
//! events once and [`Dispatcher::route`]s them, through each stream's [`Mailbox`], to the
//! stream that owns the watch. A watch is *unsynced* while its stream reads the change log for
//! it with an engine [`etch_engine::Watcher`] from its own next revision: a watch created with
//! a past start revision, or one whose stream fell behind. An unsynced watch joins the shared
//! path with [`Dispatcher::join`] once its next revision is past what the dispatcher has
//! routed; the check and the insertion happen under the dispatcher's lock, which routing also
//! holds, so the seam has no gap and no duplicate.
//!
//! **Slow streams.** A mailbox holds at most [`MAILBOX_EVENTS`] events (each shared by `Arc`
//! with the other streams the event concerns). When a delivery would overflow it, the
//! dispatcher takes all of that stream's watches out of the index and queues, after what the
//! mailbox already holds, a [`Mail::Lagged`] naming each watch's next revision. The stream
//! then reads those revisions itself (catch-up), at the pace of its client, and rejoins. So a
//! slow client never blocks the dispatcher or writers, and what is buffered for it is bounded:
//! unread changes stay in the file, as before.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_engine::{Event, EventKind};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::watch_index::{Entry, WatchIndex, WatchKey, WatchSpec};

/// Most events a stream's mailbox holds before its watches are switched to catch-up.
pub const MAILBOX_EVENTS: usize = 1024;

/// How long the follower keeps reading previous key-values after a watch asked for them.
pub const PREV_KV_LINGER: Duration = Duration::from_secs(5);

/// The events of one routed batch that concern one stream, and which watch gets which.
#[derive(Debug)]
pub struct Delivery {
    /// Every change up to this revision that concerns the stream's synced watches is in this
    /// or an earlier delivery.
    pub through: i64,
    /// The events, in revision order, shared with other streams.
    pub events: Vec<Arc<Event>>,
    /// For each watch: indices into `events`, ascending.
    pub watches: Vec<(i64, Vec<u32>)>,
}

/// What a stream finds in its mailbox.
#[derive(Debug)]
pub enum Mail {
    /// Events for synced watches.
    Events(Delivery),
    /// These watches (id, next revision to deliver) left the shared path; the stream reads
    /// the log for them from that revision.
    Lagged(Vec<(i64, i64)>),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Mail>,
    /// Events held by the `Events` items.
    events: usize,
    /// `Lagged` items queued and not taken yet; while any is, no watch of the stream joins.
    lagged: usize,
}

/// A stream's inbox from the dispatcher.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl Mailbox {
    /// The oldest item, if any.
    pub fn take(&self) -> Option<Mail> {
        let mut q = self.queue.lock();
        let item = q.items.pop_front()?;
        match &item {
            Mail::Events(d) => q.events -= d.events.len(),
            Mail::Lagged(_) => q.lagged -= 1,
        }
        Some(item)
    }

    /// Completes when something was queued since the last wait (a stored permit counts).
    pub async fn ready(&self) {
        self.notify.notified().await
    }

    /// Makes the next [`Mailbox::ready`] complete at once (the taker left items behind).
    pub fn rearm(&self) {
        self.notify.notify_one();
    }
}

struct State {
    index: WatchIndex,
    mailboxes: HashMap<u64, Arc<Mailbox>>,
    next_stream: u64,
    /// Whether the follower's current reads include previous key-values; a watch that wants
    /// them joins only while they do.
    reading_prev_kv: bool,
    /// When a watch was last refused a join because the follower's reads lack previous
    /// key-values.
    prev_kv_requested: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    /// Every change up to this revision has been routed.
    routed: AtomicI64,
    /// Times a stream's watches were switched to catch-up because its mailbox was full.
    lag_switches: AtomicU64,
}

/// The server's watch dispatcher; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl Dispatcher {
    /// A dispatcher that has routed everything up to `revision`.
    pub fn new(revision: i64) -> Dispatcher {
        Dispatcher {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    index: WatchIndex::default(),
                    mailboxes: HashMap::new(),
                    next_stream: 1,
                    reading_prev_kv: false,
                    prev_kv_requested: None,
                }),
                routed: AtomicI64::new(revision),
                lag_switches: AtomicU64::new(0),
            }),
        }
    }

    /// Every change up to this revision has been routed to the synced watches' mailboxes.
    pub fn routed(&self) -> i64 {
        self.shared.routed.load(Ordering::Acquire)
    }

    /// Times a slow stream's watches were switched to catch-up.
    pub fn lag_switches(&self) -> u64 {
        self.shared.lag_switches.load(Ordering::Relaxed)
    }

    /// Number of synced watches.
    pub fn synced_watches(&self) -> usize {
        self.shared.state.lock().index.len()
    }

    /// Registers a stream; its watches are removed when the registration is dropped.
    pub fn register(&self) -> StreamRegistration {
        let mut st = self.shared.state.lock();
        let id = st.next_stream;
        st.next_stream += 1;
        let mailbox = Arc::new(Mailbox::default());
        st.mailboxes.insert(id, mailbox.clone());
        StreamRegistration {
            dispatcher: self.clone(),
            id,
            mailbox,
        }
    }

    /// Puts a watch on the shared path from revision `from`, if that leaves no gap (nothing at
    /// or after `from` is routed yet: the caller has delivered everything before `from`), the
    /// stream has no pending switch to catch-up, and the follower reads what the watch needs.
    /// Returns whether it joined; if not, the caller keeps reading the log for it and retries.
    pub fn join(&self, stream: u64, id: i64, spec: &WatchSpec, from: i64) -> bool {
        let mut st = self.shared.state.lock();
        // Routing stores `routed` under this lock, so this read is exact.
        if spec.prev_kv && !st.reading_prev_kv {
            st.prev_kv_requested = Some(Instant::now());
            return false;
        }
        if from <= self.routed() {
            return false;
        }
        let Some(mailbox) = st.mailboxes.get(&stream) else {
            return false;
        };
        if mailbox.queue.lock().lagged > 0 {
            return false;
        }
        st.index.insert(
            WatchKey { stream, id },
            Entry {
                spec: spec.clone(),
                from,
            },
        );
        true
    }

    /// Takes a watch off the shared path (cancelled by its client). No delivery for it is
    /// queued after this returns; earlier ones may still be in the mailbox.
    pub fn leave(&self, stream: u64, id: i64) {
        self.shared
            .state
            .lock()
            .index
            .remove(&WatchKey { stream, id });
    }

    /// Decides whether the follower's reads from now on include previous key-values: yes iff
    /// a synced watch wants them or one was refused a join for want of them in the last
    /// [`PREV_KV_LINGER`] (so that the refused watch finds them on when it retries). Decided and
    /// recorded under the lock that [`Dispatcher::join`] takes, so no watch that wants them
    /// joins while the follower reads without them. The follower must switch its reader (from
    /// the next revision to route) before routing again.
    pub fn choose_prev_kv(&self) -> bool {
        let mut st = self.shared.state.lock();
        let requested = st
            .prev_kv_requested
            .is_some_and(|at| at.elapsed() < PREV_KV_LINGER);
        let on = st.index.prev_kv_watches() > 0 || requested;
        st.reading_prev_kv = on;
        on
    }

    /// Routes one batch of events, in revision order, covering every change up to `through`.
    pub fn route(&self, events: Vec<Event>, through: i64) {
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        let mut st = self.shared.state.lock();
        let first_revision = self.routed() + 1;
        let mut per_stream: HashMap<u64, Builder> = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            let revision = ev.kv.mod_revision;
            let is_put = ev.kind == EventKind::Put;
            st.index.for_each_match(&ev.kv.key, |key, entry| {
                if revision >= entry.from && entry.spec.wants(is_put) {
                    per_stream
                        .entry(key.stream)
                        .or_default()
                        .add(key.id, i, &events[i]);
                }
            });
        }
        for (stream, built) in per_stream {
            let Some(mailbox) = st.mailboxes.get(&stream).cloned() else {
                continue;
            };
            let delivery = built.finish(through);
            let mut q = mailbox.queue.lock();
            if q.events > 0 && q.events + delivery.events.len() > MAILBOX_EVENTS {
                drop(q);
                self.switch_to_catch_up(&mut st, stream, &mailbox, first_revision);
                continue;
            }
            q.events += delivery.events.len();
            q.items.push_back(Mail::Events(delivery));
            drop(q);
            mailbox.notify.notify_one();
        }
        self.shared.routed.store(through, Ordering::Release);
    }

    /// The follower lost its place to a compaction at `compacted`: every synced watch
    /// switches to reading the log itself (those that needed compacted history are then
    /// cancelled with the compact revision, as etcd cancels them), and routing resumes after
    /// `compacted`.
    pub fn skip_to(&self, compacted: i64) {
        let mut st = self.shared.state.lock();
        let first_revision = self.routed() + 1;
        for stream in st.index.streams() {
            if let Some(mailbox) = st.mailboxes.get(&stream).cloned() {
                self.switch_to_catch_up(&mut st, stream, &mailbox, first_revision);
            }
        }
        let routed = self.routed().max(compacted);
        self.shared.routed.store(routed, Ordering::Release);
    }

    /// Takes every watch of `stream` off the shared path; each is to be read from the later of
    /// its start and `first_revision` (the first revision not delivered to the mailbox).
    fn switch_to_catch_up(
        &self,
        st: &mut State,
        stream: u64,
        mailbox: &Mailbox,
        first_revision: i64,
    ) {
        let lagged: Vec<(i64, i64)> = st
            .index
            .remove_stream(stream)
            .into_iter()
            .map(|(id, entry)| (id, entry.from.max(first_revision)))
            .collect();
        if lagged.is_empty() {
            return;
        }
        self.shared.lag_switches.fetch_add(1, Ordering::Relaxed);
        let mut q = mailbox.queue.lock();
        q.lagged += 1;
        q.items.push_back(Mail::Lagged(lagged));
        drop(q);
        mailbox.notify.notify_one();
    }

    fn unregister(&self, stream: u64) {
        let mut st = self.shared.state.lock();
        st.index.remove_stream(stream);
        st.mailboxes.remove(&stream);
    }
}

/// Collects one stream's share of a batch.
#[derive(Default)]
struct Builder {
    events: Vec<Arc<Event>>,
    /// Batch index of the last event pushed to `events`.
    last: Option<usize>,
    watches: HashMap<i64, Vec<u32>>,
}

impl Builder {
    fn add(&mut self, id: i64, batch_index: usize, event: &Arc<Event>) {
        if self.last != Some(batch_index) {
            self.last = Some(batch_index);
            self.events.push(event.clone());
        }
        let local = (self.events.len() - 1) as u32;
        self.watches.entry(id).or_default().push(local);
    }

    fn finish(self, through: i64) -> Delivery {
        let mut watches: Vec<(i64, Vec<u32>)> = self.watches.into_iter().collect();
        watches.sort_unstable_by_key(|(id, _)| *id);
        Delivery {
            through,
            events: self.events,
            watches,
        }
    }
}

/// A stream's place in the dispatcher; dropping it takes the stream's watches off the
/// shared path (also when the stream's task ends abnormally).
pub struct StreamRegistration {
    dispatcher: Dispatcher,
    id: u64,
    mailbox: Arc<Mailbox>,
}

impl StreamRegistration {
    /// The stream's id in the dispatcher.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The stream's mailbox.
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

impl Drop for StreamRegistration {
    fn drop(&mut self) {
        self.dispatcher.unregister(self.id);
    }
}
