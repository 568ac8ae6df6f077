//! A simulated network: every message is delayed, dropped, duplicated or cut off according to a
//! seeded random generator and the current partitions, all in tokio time.
//!
//! Run it on a current-thread runtime with paused time (`tokio::time::pause`): delays then cost
//! no wall-clock time, and since every random choice for a message is drawn when it is sent, in
//! the order messages are sent, the same seed and the same sequence of sends give the same
//! deliveries. Reordering needs no rule of its own: each message travels in its own task with
//! its own random delay, so later messages overtake earlier ones, and a duplicate arrives after
//! its original, possibly long after.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::network::{BoxFuture, RaftHandler, RaftReply, RaftRequest, Transport, TransportError};
use crate::types::NodeId;

/// The fault rates and delays of a [`SimNetwork`].
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a request is lost.
    pub drop: f64,
    /// Probability that a request is delivered a second time.
    pub duplicate: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay (the delay is uniform between the two).
    pub max_delay: Duration,
    /// How long a sender waits before it learns that a message was lost or its peer is cut off
    /// (a transport's timeout).
    pub lost_after: Duration,
}

impl Faults {
    /// A perfect network: no loss, no duplicates, no delay.
    pub fn none() -> Faults {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            lost_after: Duration::from_millis(100),
        }
    }

    /// A lossy LAN: 1–10 ms, 5 % loss, 2 % duplicates.
    pub fn lossy() -> Faults {
        Faults {
            drop: 0.05,
            duplicate: 0.02,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
            lost_after: Duration::from_millis(100),
        }
    }
}

/// What happened to one message, for traces and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Time since the network was created, in tokio time.
    pub at: Duration,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The request's kind ([`RaftRequest::kind`]).
    pub kind: &'static str,
    /// What became of it.
    pub fate: Fate,
}

/// The fate of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Handled, and the reply reached the sender.
    Answered,
    /// Handled, but the reply was cut off on the way back.
    ReplyCut,
    /// Lost at random.
    Dropped,
    /// Not delivered: the link was cut or the receiver is not running.
    Cut,
    /// A duplicate copy was handled (its reply goes nowhere).
    Duplicated,
}

/// The random choices for one message, all drawn when it is sent.
struct Plan {
    dropped: bool,
    there: Duration,
    back: Duration,
    duplicate_after: Option<Duration>,
}

struct State {
    rng: StdRng,
    faults: Faults,
    handlers: BTreeMap<NodeId, Arc<dyn RaftHandler>>,
    /// Directed links that are cut: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    trace: Vec<Delivery>,
}

struct Shared {
    start: tokio::time::Instant,
    state: Mutex<State>,
}

/// A deterministic simulated network; cheap to clone (clones share the network).
#[derive(Clone)]
pub struct SimNetwork {
    shared: Arc<Shared>,
}

impl SimNetwork {
    /// A network with its own generator seeded by `seed`. Call from inside the runtime.
    pub fn new(seed: u64, faults: Faults) -> SimNetwork {
        SimNetwork {
            shared: Arc::new(Shared {
                start: tokio::time::Instant::now(),
                state: Mutex::new(State {
                    rng: StdRng::seed_from_u64(seed),
                    faults,
                    handlers: BTreeMap::new(),
                    cut: BTreeSet::new(),
                    trace: Vec::new(),
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the simulation's state as consistent as any
        // single statement left it; keep going so the test reports the original panic.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Attaches member `id` (it starts receiving messages).
    pub fn register(&self, id: NodeId, handler: Arc<dyn RaftHandler>) {
        self.state().handlers.insert(id, handler);
    }

    /// Detaches member `id` (a crash: messages to it are cut until it registers again).
    pub fn unregister(&self, id: NodeId) {
        self.state().handlers.remove(&id);
    }

    /// Replaces the fault rates.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// Cuts the link from `from` to `to` only (a one-way partition).
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.state().cut.insert((from, to));
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut state = self.state();
        for &x in a {
            for &y in b {
                state.cut.insert((x, y));
                state.cut.insert((y, x));
            }
        }
    }

    /// Cuts `node` off from everyone else, both ways.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        let rest: Vec<NodeId> = others.iter().copied().filter(|&o| o != node).collect();
        self.partition(&[node], &rest);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state().cut.clear();
    }

    /// Every message's fate so far, in the order the fates were decided.
    pub fn trace(&self) -> Vec<Delivery> {
        self.state().trace.clone()
    }

    fn plan(&self) -> Plan {
        let mut state = self.state();
        let faults = state.faults.clone();
        let rng = &mut state.rng;
        let mut delay = || {
            if faults.max_delay > faults.min_delay {
                rng.gen_range(faults.min_delay..=faults.max_delay)
            } else {
                faults.min_delay
            }
        };
        let there = delay();
        let back = delay();
        let duplicate_extra = delay();
        let dropped = state.rng.gen_bool(faults.drop.clamp(0.0, 1.0));
        let duplicated = state.rng.gen_bool(faults.duplicate.clamp(0.0, 1.0));
        Plan {
            dropped,
            there,
            back,
            duplicate_after: duplicated.then_some(there + duplicate_extra),
        }
    }

    /// The receiver's handler if the link `from → to` is up and `to` is running.
    fn reachable(&self, from: NodeId, to: NodeId) -> Option<Arc<dyn RaftHandler>> {
        let state = self.state();
        if state.cut.contains(&(from, to)) {
            return None;
        }
        state.handlers.get(&to).cloned()
    }

    fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.state().cut.contains(&(from, to))
    }

    fn record(&self, from: NodeId, to: NodeId, kind: &'static str, fate: Fate) {
        let at = self.shared.start.elapsed();
        self.state().trace.push(Delivery {
            at,
            from,
            to,
            kind,
            fate,
        });
    }

    fn lost_after(&self) -> Duration {
        self.state().faults.lost_after
    }

    async fn deliver(
        self,
        from: NodeId,
        to: NodeId,
        request: RaftRequest,
        plan: Plan,
    ) -> Result<RaftReply, TransportError> {
        let kind = request.kind();
        if plan.dropped {
            tokio::time::sleep(self.lost_after()).await;
            self.record(from, to, kind, Fate::Dropped);
            return Err(TransportError::Lost { to });
        }
        tokio::time::sleep(plan.there).await;
        let Some(handler) = self.reachable(from, to) else {
            tokio::time::sleep(self.lost_after().saturating_sub(plan.there)).await;
            self.record(from, to, kind, Fate::Cut);
            return Err(TransportError::Unreachable { to });
        };
        if let Some(after) = plan.duplicate_after {
            let copy = request.clone();
            let net = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after - plan.there).await;
                if let Some(handler) = net.reachable(from, to) {
                    net.record(from, to, kind, Fate::Duplicated);
                    let _ignored_reply = handler.handle(copy).await;
                }
            });
        }
        let reply = handler.handle(request).await;
        tokio::time::sleep(plan.back).await;
        if !self.link_up(to, from) {
            self.record(from, to, kind, Fate::ReplyCut);
            return Err(TransportError::Lost { to });
        }
        self.record(from, to, kind, Fate::Answered);
        Ok(reply)
    }
}

impl Transport for SimNetwork {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let plan = self.plan();
        Box::pin(self.clone().deliver(from, to, request, plan))
    }
}
