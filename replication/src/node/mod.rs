//! A replicated store: etch's store API on a member of a Raft cluster.
//!
//! ```text
//! let db = ReplicatedStore::open(config, "app.etch", Options::new(), transport).await?;
//! db.put("k", "v").await?;            // proposed through Raft, applied here before it returns
//! db.get("k").await?;                 // linearizable (ReadIndex)
//! ```
//!
//! The methods, arguments and results are `etch_engine::Store`'s; they are `async` (a member
//! runs on tokio) and their error is [`Error`], which carries the store's own errors unchanged
//! ([`Error::Store`]) plus the cluster's. Paths:
//!
//! - **Writes** are admitted (`Store::admit`: the store's own checks and the quota), then
//!   proposed: on the leader directly, on a follower forwarded to the leader
//!   ([`crate::forward`]). The call returns once the entry is applied on *this* member, with the
//!   response this member's store computed (read-your-writes here). See `client.rs`.
//! - **Reads** are linearizable by default: ReadIndex through the leader, wait until this member
//!   has applied that index, read the local store. [`ReadConsistency::Serializable`] reads the
//!   local store at once (maybe stale).
//! - **Leases** are counted down by the leader only (`lease.rs`).
//! - **Watches** are the local store's: every member applies the same entries in the same order,
//!   so every member's watch stream carries the same revisions.
//!
//! A member keeps everything in one file: one engine store opened with
//! `Options::replicated(true)`, whose WAL is the Raft log ([`crate::engine_log`]) and whose
//! trees are the state machine ([`crate::state_machine`]).

mod bootstrap;
mod client;
mod corruption;
mod kv;
mod lease;
mod log_space;
mod membership;
mod serve;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etch_engine as engine;
use openraft::{BasicNode, ChangeMembers, ServerState};

pub use corruption::HashReport;
pub use kv::ReadConsistency;
pub use lease::{SteppedClock, TokioClock};
pub use membership::MemberChangeError;

use crate::engine_log::EngineLog;
use crate::error::{Error, Result};
use crate::flush::{LogFlush, LogFlusher};
use crate::forward::{ClientReply, ForwardError};
use crate::network::{NetworkFactory, RaftHandler, Transport};
use crate::raft_log::RaftLog;
use crate::state_machine::{Machine, StateMachine};
use crate::types::{NodeId, Raft};
use bootstrap::{cluster_state, open_store, FileState};

/// etcd's `maxGapBetweenApplyAndCommitIndex` ([`NodeConfig::max_apply_lag`]).
pub const MAX_APPLY_LAG: u64 = 5_000;

/// A member's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's id (never 0).
    pub id: NodeId,
    /// openraft's settings (heartbeat, election timeouts, snapshot policy, ...). etcd's
    /// defaults are a 100 ms heartbeat and a 1000 ms election timeout.
    pub raft: openraft::Config,
    /// How long a client call may take before it fails with [`Error::Timeout`] (or
    /// [`Error::NoLeader`] when no leader was found).
    pub request_timeout: Duration,
    /// How often the leader looks for expired leases and due auto-compaction.
    pub lease_tick: Duration,
    /// How the member's log makes appends durable: synced before openraft hears of them, or
    /// by a thread of its own while they are replicated ([`crate::flush`]). The default,
    /// [`LogFlush::Auto`], is the latter on a multi-threaded runtime and the former on a
    /// current-thread one (the simulations').
    pub log_flush: LogFlush,
    /// How long a new leader waits, after it took over, before it renews every lease and
    /// starts expiring any (and how far its lease clock may run ahead of its own time between
    /// two ticks before that is taken for a pause: see the `lease` module): etcd's election
    /// timeout, which etcd adds to every lease's TTL at a leadership change. `None` (what
    /// [`NodeConfig::new`] sets) means openraft's maximum election timeout, whatever it is set
    /// to; [`NodeConfig::etcd_timing`] sets etcd's `election-timeout`.
    pub lease_grace: Option<Duration>,
    /// etcd's second bound on proposals: a member refuses a new one with
    /// [`Error::TooManyRequests`] while more than this many committed entries wait to be
    /// applied on it (etcd's `maxGapBetweenApplyAndCommitIndex`, 5,000, what
    /// [`NodeConfig::new`] sets). The leader checks it for every proposal it admits
    /// (forwarded ones too), and the member a client asked checks its own.
    pub max_apply_lag: u64,
}

impl NodeConfig {
    /// Settings for member `id` with etcd's timing: heartbeat 100 ms, election timeout
    /// 1000–2000 ms, request timeout 5 s, lease tick 500 ms.
    pub fn new(id: NodeId) -> NodeConfig {
        NodeConfig {
            id,
            raft: openraft::Config {
                cluster_name: "etch".into(),
                heartbeat_interval: 100,
                election_timeout_min: 1000,
                election_timeout_max: 2000,
                ..openraft::Config::default()
            },
            request_timeout: Duration::from_secs(5),
            lease_tick: Duration::from_millis(500),
            log_flush: LogFlush::Auto,
            lease_grace: None,
            max_apply_lag: MAX_APPLY_LAG,
        }
    }

    /// The lease grace in effect ([`NodeConfig::lease_grace`], or openraft's maximum election
    /// timeout when it is not set).
    pub fn lease_grace(&self) -> Duration {
        self.lease_grace
            .unwrap_or(Duration::from_millis(self.raft.election_timeout_max))
    }

    /// Sets openraft's timing from etcd's `heartbeat-interval` and `election-timeout` (ms), so
    /// that a follower that stops hearing from its leader starts an election after a wait
    /// drawn from `[election, 1.5 * election)`, as etcd's (drawn from `[election,
    /// 2 * election)`, about as long on average).
    ///
    /// openraft 0.9 does not wait `election_timeout_min..election_timeout_max` after the last
    /// heartbeat, but that *plus* its leader lease, which is `election_timeout_max`: with the
    /// bounds set to etcd's `[T, 2T)` a follower waited `[3T, 4T)` (a measured failover of 3.3
    /// to 3.8 s against etcd's 1.5 s at T = 1 s). So the bounds are `[T/4, 3T/4)` and the lease
    /// `3T/4`. The lease also makes a member refuse votes for `3T/4` after it last heard from a
    /// leader, which is below any follower's wait, so a candidate is not refused for it. A
    /// first election (no leader known yet) waits `[T/4, 3T/4)` alone. The lower bound is kept
    /// above the heartbeat interval (openraft requires it). A new leader's lease grace
    /// ([`NodeConfig::lease_grace`]) is `T` itself, as etcd's, not the shortened bound.
    pub fn etcd_timing(&mut self, heartbeat_ms: u64, election_ms: u64) -> &mut NodeConfig {
        let heartbeat = heartbeat_ms.max(1);
        let min = (election_ms / 4).max(heartbeat + 1);
        let max = (election_ms * 3 / 4).max(min + 1);
        self.raft.heartbeat_interval = heartbeat;
        self.raft.election_timeout_min = min;
        self.raft.election_timeout_max = max;
        self.lease_grace = Some(Duration::from_millis(election_ms));
        self
    }
}

/// Remembers the forwarded proposals (and membership changes) a member has handled and how each ended, so that a copy
/// the network duplicated, or a sender's retry after a lost message (same attempt number), is
/// never proposed twice: it gets the first copy's answer, or [`ForwardError::Unknown`] while
/// that one is still running. Bounded: the oldest are forgotten; a copy delayed past that many
/// later proposals could slip through, which is why the bound is generous.
struct SeenProposals {
    map: HashMap<ProposalKey, Option<std::result::Result<ClientReply, ForwardError>>>,
    order: VecDeque<ProposalKey>,
}

/// (origin, proposal id, attempt); for a membership change (sender, request id, attempt),
/// from the same counter of the sender's ids.
type ProposalKey = (NodeId, u64, u32);

const SEEN_PROPOSALS: usize = 65_536;

impl SeenProposals {
    /// `None` if `key` is new (it is recorded as running), else what the first copy answered
    /// (`Unknown` while it runs).
    fn begin(
        &mut self,
        key: ProposalKey,
    ) -> Option<std::result::Result<ClientReply, ForwardError>> {
        if let Some(done) = self.map.get(&key) {
            return Some(done.clone().unwrap_or(Err(ForwardError::Unknown)));
        }
        self.map.insert(key, None);
        self.order.push_back(key);
        if self.order.len() > SEEN_PROPOSALS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        None
    }

    /// Records how the copy handled first ended.
    fn finish(
        &mut self,
        key: ProposalKey,
        answer: &std::result::Result<ClientReply, ForwardError>,
    ) {
        if let Some(slot) = self.map.get_mut(&key) {
            *slot = Some(answer.clone());
        }
    }
}

/// The first proposal id of a member's run: a random high half (never 0) over a counter.
///
/// Proposal ids must not repeat across a member's restarts: entries an earlier run proposed
/// can still be committed and applied after a restart (re-applied from the log, or committed
/// by a leader that had them), and the leader remembers answers by (origin, id, attempt). With
/// ids restarting at 1, such an entry's response went to the new run's caller waiting for the
/// same id (a put answered with an old lease grant's response, found by `tests/sim_power.rs`),
/// and a new proposal could be answered from the leader's memory of an old one. The random
/// half comes from the runtime's generator (seeded in simulations, so a seed still replays).
fn first_proposal_id() -> u64 {
    use rand::RngCore;
    let run = u64::from(crate::runtime::ThreadRng.next_u32()).max(1);
    run << 32
}

struct Inner {
    id: NodeId,
    config: NodeConfig,
    raft: Raft,
    machine: Arc<Machine>,
    transport: Arc<dyn Transport>,
    next_proposal: AtomicU64,
    seen: Mutex<SeenProposals>,
    closed: AtomicBool,
    background: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The log's flusher in background mode.
    flusher: Option<Arc<LogFlusher>>,
    /// Keeps the Raft log inside its WAL ring (`log_space`).
    log_space: log_space::LogSpace,
    /// The log's figures and the applied index, read by the write path without the store's
    /// writer lock (crate::log_gauge).
    gauge: Arc<crate::log_gauge::LogGauge>,
    /// Makes membership changes when this member leads (`membership`).
    member_service: Mutex<Option<Arc<dyn crate::forward::MemberService>>>,
}

impl Inner {
    /// The newest membership this member knows: openraft's (which includes appended, not yet
    /// applied membership entries), or, before openraft has published its first metrics after
    /// a start, the state machine's applied one.
    fn membership(&self) -> openraft::StoredMembership<NodeId, BasicNode> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        if m.log_id().is_some() {
            return (*m).clone();
        }
        self.machine.applied_membership()
    }
}

/// A member of a replicated etch cluster, with `etch_engine::Store`'s API. Cheap to clone;
/// clones share the member.
#[derive(Clone)]
pub struct ReplicatedStore {
    inner: Arc<Inner>,
}

impl ReplicatedStore {
    /// Opens (or creates) the member's store file at `path` and starts its Raft member on
    /// `transport`. Must be called inside a tokio runtime. The file is one engine store opened
    /// with `opts.replicated(true).background_writes(false)`: its WAL is the Raft log (and the
    /// vote), its trees are the keys (the leader proposes lease expiry and auto-compaction
    /// instead of the store deciding them). `opts.wal_capacity` must hold the log between two
    /// snapshots (see `NodeConfig::raft`'s snapshot policy), or appends fail with
    /// `etch_engine::Error::LogFull`.
    ///
    /// A new member is not in any cluster until [`ReplicatedStore::initialize`] (the first
    /// member of a new cluster) or a leader's [`ReplicatedStore::add_learner`]; a file with a
    /// history of its own starts a cluster with [`ReplicatedStore::bootstrap`]. Reopening a
    /// member's file after a stop or a crash rejoins its cluster.
    pub async fn open<T: Transport>(
        config: NodeConfig,
        path: impl AsRef<Path>,
        opts: engine::Options,
        transport: Arc<T>,
    ) -> Result<ReplicatedStore> {
        let store = open_store(&config, path.as_ref(), opts)?;
        Self::start(config, path.as_ref(), store, transport).await
    }

    /// Starts the Raft member on its opened store.
    async fn start<T: Transport>(
        config: NodeConfig,
        path: &Path,
        store: engine::Store,
        transport: Arc<T>,
    ) -> Result<ReplicatedStore> {
        let raft_config = Arc::new(
            config
                .raft
                .clone()
                .validate()
                .map_err(|e| Error::Store(engine::Error::InvalidOption(e.to_string())))?,
        );
        let machine = Machine::new(config.id, path, store.clone()).map_err(engine::Error::Io)?;
        // One gauge for the log's figures and the applied index (crate::log_gauge).
        let gauge = machine.gauge();
        let log = Arc::new(EngineLog::with_gauge(store, Arc::clone(&gauge)));
        let flusher = if config.log_flush.background() {
            Some(LogFlusher::new(&log).map_err(engine::Error::Io)?)
        } else {
            None
        };
        // Background mode needs all three gates (crate::flush): the log, the state machine and
        // the network share the flusher, and the handler holds acknowledgements until durable.
        let raft = match &flusher {
            None => {
                Raft::new(
                    config.id,
                    raft_config,
                    NetworkFactory::new(config.id, Arc::clone(&transport)),
                    RaftLog::new(log),
                    StateMachine::new(Arc::clone(&machine)),
                )
                .await
            }
            Some(f) => {
                Raft::new(
                    config.id,
                    raft_config,
                    NetworkFactory::with_flusher(config.id, Arc::clone(&transport), Arc::clone(f)),
                    RaftLog::with_flusher(log, Arc::clone(f)),
                    StateMachine::with_flusher(Arc::clone(&machine), Arc::clone(f)),
                )
                .await
            }
        }
        .map_err(|e| Error::Raft(e.to_string()))?;
        let transport: Arc<dyn Transport> = transport;
        let inner = Arc::new(Inner {
            id: config.id,
            config,
            raft,
            machine,
            transport,
            next_proposal: AtomicU64::new(first_proposal_id()),
            seen: Mutex::new(SeenProposals {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            closed: AtomicBool::new(false),
            background: Mutex::new(None),
            flusher,
            log_space: log_space::LogSpace::default(),
            gauge,
            member_service: Mutex::new(None),
        });
        let task = tokio::spawn(lease::leader_duties(Arc::downgrade(&inner)));
        *inner.background.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(ReplicatedStore { inner })
    }

    /// What answers this member's peers: register it with the transport under
    /// [`ReplicatedStore::id`].
    pub fn handler(&self) -> Arc<dyn RaftHandler> {
        Arc::new(serve::Handler::new(&self.inner))
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The underlying openraft member (metrics, triggers), for tests and tools.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Stops this member from applying committed entries until the returned hold is dropped
    /// (see [`crate::state_machine::Machine::hold_applies`]): for tests of a member whose
    /// applies lag its commits, which then refuses proposals past
    /// [`NodeConfig::max_apply_lag`].
    pub async fn hold_applies(&self) -> crate::state_machine::ApplyHold {
        self.inner.machine.hold_applies().await
    }

    /// How many committed entries wait to be applied on this member.
    pub fn apply_lag(&self) -> u64 {
        self.inner.gauge.apply_lag()
    }

    /// Whether this member believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The last applied Raft log index.
    pub fn applied_index(&self) -> Option<u64> {
        self.inner.machine.last_applied().map(|l| l.index)
    }

    /// The voters and learners of the newest membership this member knows (appended, maybe
    /// not yet committed).
    pub fn members(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let m = self.inner.membership();
        let voters = m.membership().voter_ids().collect();
        let learners = m.membership().learner_ids().collect();
        (voters, learners)
    }

    /// Makes this member, on a new file, the first of a new cluster whose voters are
    /// `members` (usually just this one: grow it with [`ReplicatedStore::add_learner`] and
    /// [`ReplicatedStore::promote`]).
    ///
    /// Refused: on a file with a history of its own ([`Error::HasHistory`]: use
    /// [`ReplicatedStore::bootstrap`], which keeps it), and on a member of a cluster
    /// ([`Error::AlreadyMember`]).
    pub async fn initialize(&self, members: BTreeSet<NodeId>) -> Result<()> {
        let store = self.inner.machine.store();
        match cluster_state(&store)? {
            FileState::New => {}
            FileState::Standalone => return Err(Error::HasHistory),
            FileState::Member => return Err(Error::AlreadyMember { id: self.inner.id }),
        }
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|id| (id, BasicNode::default()))
            .collect();
        use openraft::error::{InitializeError, RaftError};
        match self.inner.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(Error::AlreadyMember { id: self.inner.id })
            }
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    /// Adds member `id` as a learner (it receives the log but does not vote) and waits until it
    /// has caught up. Call on the leader.
    pub async fn add_learner(&self, id: NodeId) -> Result<()> {
        self.membership(
            self.inner
                .raft
                .add_learner(id, BasicNode::default(), true)
                .await,
        )
    }

    /// Makes learner `id` a voter (joint consensus). Call on the leader.
    pub async fn promote(&self, id: NodeId) -> Result<()> {
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.membership(self.inner.raft.change_membership(change, false).await)
    }

    /// Removes member `id` (voter or learner) from the cluster. Call on the leader. A removed
    /// member refuses writes and linearizable reads with [`Error::NotMember`].
    pub async fn remove(&self, id: NodeId) -> Result<()> {
        let (voters, _) = self.members();
        if voters.contains(&id) {
            let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
            self.membership(self.inner.raft.change_membership(change, false).await)?;
        }
        let (_, learners) = self.members();
        if learners.contains(&id) {
            let change = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
            self.membership(self.inner.raft.change_membership(change, false).await)?;
        }
        Ok(())
    }

    fn membership<T>(
        &self,
        r: std::result::Result<
            T,
            openraft::error::RaftError<
                NodeId,
                openraft::error::ClientWriteError<NodeId, BasicNode>,
            >,
        >,
    ) -> Result<()> {
        use openraft::error::{ClientWriteError, RaftError};
        match r {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Error::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::Fatal(_)) => Err(Error::Shutdown),
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    /// Stops the member: its Raft stops, its leader duties end and its store is closed
    /// (checkpointed). Other clones get [`Error::Shutdown`] afterwards.
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let task = self
            .inner
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
        let _ = self.inner.raft.shutdown().await;
        self.stop_flusher().await;
        self.inner.machine.close().map_err(Error::Store)
    }

    /// Ends the log flusher's thread (background mode), after Raft stopped: it holds the store
    /// while it syncs, and a stopped member must let go of its file.
    async fn stop_flusher(&self) {
        if let Some(f) = self.inner.flusher.clone() {
            let _ = tokio::task::spawn_blocking(move || f.stop()).await;
        }
    }

    /// Stops the member as a process crash would: Raft and the leader duties stop, the store is
    /// dropped without a checkpoint (its WAL holds the log and the vote; a reopen replays it,
    /// and openraft re-applies the committed entries after the last checkpoint). For crash
    /// tests.
    pub async fn crash(self) {
        self.inner.closed.store(true, Ordering::Release);
        let task = self
            .inner
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let _ = self.inner.raft.shutdown().await;
        self.stop_flusher().await;
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    /// [`Error::NotMember`] unless this member is a voter or learner of the newest membership
    /// it knows. A member that knows no membership yet (just added, still catching up, or
    /// just booted on a lossy network) waits for one, up to the request timeout.
    async fn check_member(&self) -> Result<()> {
        let me = self.inner.id;
        let deadline = tokio::time::Instant::now() + self.inner.config.request_timeout;
        loop {
            let m = self.inner.membership();
            if m.membership().nodes().any(|(id, _)| *id == me) {
                return Ok(());
            }
            if m.log_id().is_some() || tokio::time::Instant::now() >= deadline {
                return Err(Error::NotMember { id: me });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.check_open()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_timing_keeps_etcds_election_timeout_as_the_lease_grace() {
        let mut config = NodeConfig::new(1);
        assert_eq!(config.lease_grace(), Duration::from_millis(2000));
        config.raft.election_timeout_max = 600;
        assert_eq!(
            config.lease_grace(),
            Duration::from_millis(600),
            "follows openraft's bound"
        );
        config.etcd_timing(100, 1000);
        // openraft's bounds are shortened (its leader lease adds to them), the grace is not.
        assert_eq!(config.raft.election_timeout_max, 750);
        assert_eq!(config.lease_grace(), Duration::from_millis(1000));
    }
}
