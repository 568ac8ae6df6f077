//! [`LogFlusher`]: makes a member's Raft log durable on a thread of its own, so that openraft's
//! task never waits for an fdatasync (the *background flush* mode of a member's log).
//!
//! # Why
//! openraft 0.9 appends every client write on its one core task, one entry per write, and
//! awaits the append's flush callback before it does anything else. With the flush inside the
//! append, the leader's core spends one fdatasync per write (milliseconds on a real disk) and
//! the followers' appends, the replies and the next writes all wait behind it: a replicated
//! put could never go faster than one leader fdatasync, and the leader's sync and the
//! followers' ran one after the other.
//!
//! # What changes (the Raft thesis, section 10.2.1)
//! In background mode a member's append only *writes* its entries (`Store::log_append`) and
//! reports them flushed to openraft at once; this flusher syncs the WAL meanwhile (one
//! fdatasync covers every entry written before it: group commit). So the leader writes its
//! entries, replicates them and syncs its own disk in parallel, as etcd's leader does. openraft
//! then counts the leader's own copy towards a commit before it is durable. That is safe
//! because nothing is *let out* of a member before the entries it rests on are durable there:
//!
//! 1. **A follower's acknowledgement.** A member answers an AppendEntries with success only
//!    after every entry up to the one the answer acknowledges is durable on it
//!    (`node::serve`). So a leader counts a follower only for durable entries, as Raft needs.
//! 2. **A commit index sent to followers.** The leader sends an AppendEntries (or heartbeat)
//!    carrying commit index `c` only once its own log is durable through `c`
//!    ([`crate::network::PeerClient`]). Together with 1, any entry a follower learns is
//!    committed is durable on a majority: the followers that acknowledged it (durably) and the
//!    leader.
//! 3. **Applying.** Every member applies an entry only once its own copy is durable
//!    ([`crate::state_machine::StateMachine`]): the leader therefore answers a client, serves a
//!    read, fires a watch or builds a snapshot only from entries durable on a majority (1 and
//!    its own), and the engine's rule that the applied state is in the durable log holds as
//!    before.
//!
//! Votes, truncations and purges stay synchronous and durable before they return. A member
//! that crashes loses only entries it had not let out: for the cluster that is a follower that
//! never received them, or a leader whose uncommitted tail is lost, which Raft handles. Log
//! matching is kept because the WAL is sequential: what a crash keeps is a prefix of what was
//! written.
//!
//! # Deterministic simulations
//! The simulations run every member on one paused, single-threaded runtime over a simulated
//! disk: a thread of its own would make them depend on the OS scheduler. They keep the inline
//! mode (the append syncs before it returns), where none of the above is needed
//! ([`LogFlush`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use tokio::sync::oneshot;

use crate::log_store::LogStore;

/// How a member's log makes its appends durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFlush {
    /// Each append syncs before openraft hears of it (deterministic; what simulations use).
    Inline,
    /// Appends are written at once and synced by a [`LogFlusher`] thread (see the module
    /// documentation for why this is safe).
    Background,
    /// [`LogFlush::Background`] on a multi-threaded tokio runtime, [`LogFlush::Inline`] on a
    /// current-thread one (where the simulations and single-threaded tests run).
    #[default]
    Auto,
}

impl LogFlush {
    /// Whether this setting means a background flusher on the current runtime. Must be called
    /// inside a tokio runtime for [`LogFlush::Auto`] (outside one it means inline).
    pub fn background(self) -> bool {
        match self {
            LogFlush::Inline => false,
            LogFlush::Background => true,
            LogFlush::Auto => tokio::runtime::Handle::try_current()
                .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
                .unwrap_or(false),
        }
    }
}

/// Why a wait for durability failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlushError {
    /// The sync failed (the store is poisoned: nothing more becomes durable).
    Failed(String),
    /// The entry waited for is no longer in the log (truncated before it became durable), or
    /// was never appended.
    Missing {
        /// The Raft index waited for.
        index: u64,
    },
    /// The flusher stopped (its member shut down).
    Stopped,
}

impl std::fmt::Display for FlushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushError::Failed(msg) => write!(f, "the log sync failed: {msg}"),
            FlushError::Missing { index } => {
                write!(f, "log entry {index} is not in the log any more")
            }
            FlushError::Stopped => write!(f, "the log flusher stopped"),
        }
    }
}

impl std::error::Error for FlushError {}

type Waiter = (u64, oneshot::Sender<Result<(), FlushError>>);

struct State {
    /// The highest Raft index anyone asked to be made durable (`None`: nothing yet).
    wanted: Option<u64>,
    /// What the last completed sync round covered. Only a hint that spares [`LogFlusher::kick`]
    /// a round for entries synced already; never used to answer a wait (a snapshot install
    /// empties the log without telling the flusher, so it may be stale until the next round,
    /// which sets it afresh).
    synced: Option<u64>,
    /// Callers waiting for an index, answered after the sync that covers it.
    waiters: Vec<Waiter>,
    /// Counts truncations: a sync round that saw another count when it started covers
    /// entries that may be gone, so it answers no one and records nothing.
    epoch: u64,
    /// The first sync failure; every later wait fails with it.
    failed: Option<String>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Syncs a member's log on a thread of its own and tells waiters when their entries are
/// durable (see the module documentation). Dropping it (or [`LogFlusher::stop`]) ends the
/// thread; waiters still pending get [`FlushError::Stopped`].
pub struct LogFlusher {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LogFlusher {
    /// A flusher for `log`. The thread holds the log only while it syncs (a weak handle
    /// otherwise), so that a member's store can close while the flusher lives.
    pub fn new<L: LogStore>(log: &Arc<L>) -> std::io::Result<Arc<LogFlusher>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                wanted: None,
                synced: None,
                waiters: Vec::new(),
                epoch: 0,
                failed: None,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let weak: Weak<L> = Arc::downgrade(log);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("etch-log-flush".into())
            .spawn(move || run(&thread_shared, &weak))?;
        Ok(Arc::new(LogFlusher {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Asks for every entry up to Raft index `index` to be synced soon, without waiting
    /// (called after each append, so the sync starts while the entries are replicated).
    pub fn kick(&self, index: u64) {
        let mut s = self.shared.lock();
        if s.synced.is_some_and(|d| d >= index) {
            return;
        }
        s.wanted = Some(s.wanted.map_or(index, |w| w.max(index)));
        drop(s);
        self.shared.wake.notify_one();
    }

    /// Waits until every entry up to Raft index `index` (which must be in the log) is durable.
    pub async fn durable(&self, index: u64) -> Result<(), FlushError> {
        let rx = {
            let mut s = self.shared.lock();
            if let Some(msg) = &s.failed {
                return Err(FlushError::Failed(msg.clone()));
            }
            // No shortcut from `synced`: each wait is answered by a round, whose sync returns
            // at once when the engine has synced the entry already (the engine tracks
            // truncations and installs itself).
            if s.stop {
                return Err(FlushError::Stopped);
            }
            let (tx, rx) = oneshot::channel();
            s.waiters.push((index, tx));
            s.wanted = Some(s.wanted.map_or(index, |w| w.max(index)));
            rx
        };
        self.shared.wake.notify_one();
        rx.await.unwrap_or(Err(FlushError::Stopped))
    }

    /// Tells the flusher that the log was truncated so that `last` is its last entry (`None`:
    /// empty). A truncation syncs by itself; what is past `last` must not count as synced any
    /// more (new entries will take those indexes).
    pub fn truncated(&self, last: Option<u64>) {
        let mut s = self.shared.lock();
        s.epoch += 1;
        s.synced = match (s.synced, last) {
            (Some(d), Some(l)) => Some(d.min(l)),
            _ => None,
        };
        s.wanted = match (s.wanted, last) {
            (Some(w), Some(l)) => Some(w.min(l)),
            _ => None,
        };
        drop(s);
        self.shared.wake.notify_one();
    }

    /// Ends the thread and waits for it (at most the sync in progress). Pending waiters get
    /// [`FlushError::Stopped`].
    pub fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

/// The flusher thread: sync whenever someone wants more than the last sync covered.
fn run<L: LogStore>(shared: &Shared, log: &Weak<L>) {
    loop {
        let (target, epoch) = {
            let mut s = shared.lock();
            loop {
                if s.stop {
                    for (_, tx) in s.waiters.drain(..) {
                        let _ = tx.send(Err(FlushError::Stopped));
                    }
                    return;
                }
                let pending = match (s.wanted, s.synced) {
                    (Some(w), Some(d)) => w > d,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if pending || !s.waiters.is_empty() {
                    break;
                }
                s = shared.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            (s.wanted, s.epoch)
        };
        let Some(log) = log.upgrade() else {
            let mut s = shared.lock();
            s.stop = true;
            continue;
        };
        let outcome = sync(&*log, target);
        let mut s = shared.lock();
        match outcome {
            // A truncation intervened: sync again (the waiters stay for the next round).
            Ok(_) if s.epoch != epoch => {}
            Ok(last) => {
                // Everything up to `covered` is durable now (and was in the log when synced).
                let covered = match (target, last) {
                    (Some(t), Some(l)) => Some(t.min(l)),
                    _ => None,
                };
                s.synced = covered;
                // Asked past the log's end (entries truncated since) and nothing asked since:
                // what is not there cannot be synced; later appends ask again.
                if s.wanted == target {
                    s.wanted = covered;
                }
                let mut rest = Vec::new();
                for (index, tx) in std::mem::take(&mut s.waiters) {
                    if covered.is_some_and(|c| index <= c) {
                        let _ = tx.send(Ok(()));
                    } else {
                        rest.push((index, tx));
                    }
                }
                if !rest.is_empty() {
                    // Registered after this round read the log's end, or waiting for an entry
                    // that is gone. Every waiter's entry was appended before it registered, so
                    // the end read now tells them apart: past it, the entry was truncated.
                    drop(s);
                    let now = log.bounds().ok().map(|b| b.last.map(|(i, _)| i));
                    s = shared.lock();
                    for (index, tx) in rest {
                        match now {
                            Some(end) if end.is_none_or(|l| index > l) => {
                                let _ = tx.send(Err(FlushError::Missing { index }));
                            }
                            _ => s.waiters.push((index, tx)),
                        }
                    }
                }
            }
            Err(msg) => {
                s.failed.get_or_insert(msg.clone());
                for (_, tx) in s.waiters.drain(..) {
                    let _ = tx.send(Err(FlushError::Failed(msg.clone())));
                }
                s.stop = true;
            }
        }
        drop(s);
        drop(log);
    }
}

/// Syncs `log` through `target` (clamped to its last entry); returns the last entry's index
/// as read before the sync.
fn sync<L: LogStore>(log: &L, target: Option<u64>) -> Result<Option<u64>, String> {
    let last = log
        .bounds()
        .map_err(|e| e.to_string())?
        .last
        .map(|(i, _)| i);
    let (Some(t), Some(l)) = (target, last) else {
        return Ok(last);
    };
    match log.sync_through(t.min(l)) {
        Ok(()) => Ok(last),
        // A truncation between reading the bounds and the sync (it synced by itself): the
        // waiters past it are answered Missing on the next round, the others by its sync.
        Err(crate::log_store::LogError::Invalid(_)) => {
            let last = log
                .bounds()
                .map_err(|e| e.to_string())?
                .last
                .map(|(i, _)| i);
            match last {
                Some(l) => log.sync_through(t.min(l)).map(|()| Some(l)),
                None => Ok(None),
            }
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
