//! Client histories on a simulated 3-member cluster with a lossy network and a leader isolated
//! and healed: clients on every member issue puts, linearizable and serializable gets, deletes
//! and compare-and-put transactions through `ReplicatedStore`. Checks on every seed:
//! (a) the history is linearizable (the crate's checker); (b) every acknowledged write is
//! applied on every member; (c) at most one leader per term; (d) `hash_kv` is equal on all
//! members afterwards and every file passes `check()`; (e) every member's watch stream from
//! revision 1 is the same, with every revision exactly once and in order (no gap, duplicate or
//! reordering across the leader changes); (f) serializable reads on the member that made a write
//! see it (read-your-writes there). Clients also grant, keep alive and revoke leases and put
//! keys on them, all in the checked history; and the members' lease clocks jump forward and
//! backward by seeded amounts during the run (`SteppedClock`). The leases' TTLs are far longer
//! than the run, so a lease that disappears without a revoke in the history (a jump revoking a
//! live lease) fails the check. A second test expires a lease across a leader change.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etch_engine::{EventKind, PutOp, Range, WatchOptions};
use etch_replication::check::{self, Operation, Outcome};
use etch_replication::node::SteppedClock;
use etch_replication::sim::Faults;
use etch_replication::types::NodeId;
use etch_replication::{Error, ReadConsistency};
use support::workload::{operate, ClientLease};
use support::{seeds, simulate, with_repro, Cluster, Leaders};

/// Timeouts and lost leaders leave an outcome open here; any other error would be a bug.
fn unknown(e: &Error) -> bool {
    matches!(e, Error::Timeout | Error::NoLeader)
}

const MEMBERS: [NodeId; 3] = [1, 2, 3];

/// A member's watch events as (revision, key, kind), shared with the task draining them.
type Stream = Arc<Mutex<Vec<(i64, Vec<u8>, EventKind)>>>;

/// Drains a watcher into a shared list every 50 ms until told to stop.
fn drain(
    mut w: etch_engine::Watcher,
    out: Stream,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            while let Ok(Some(resp)) = w.try_recv() {
                let mut out = out.lock().unwrap();
                for e in resp.events {
                    out.push((e.kv.mod_revision, e.kv.key, e.kind));
                }
            }
            if stop.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

async fn run(seed: u64) -> Vec<Operation> {
    let start = tokio::time::Instant::now();
    let mut c = Cluster::new(seed, Faults::lossy());
    let clocks = c.boot_with_clocks(&MEMBERS).await;
    let jumper = tokio::spawn(jump_clocks(clocks, seed));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut streams = BTreeMap::new();
    let mut drains = Vec::new();
    for id in MEMBERS {
        let w = c
            .member(id)
            .watch_with(
                Range::all(),
                WatchOptions {
                    start_revision: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        drains.push(drain(w, Arc::clone(&out), Arc::clone(&stop)));
        streams.insert(id, out);
    }
    let history = Arc::new(Mutex::new(Vec::new()));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let leaders = Leaders::default();
    let mut clients = Vec::new();
    for (client, id) in MEMBERS.iter().enumerate() {
        let m = c.member(*id);
        let history = Arc::clone(&history);
        let acknowledged = Arc::clone(&acknowledged);
        clients.push(tokio::spawn(async move {
            let mut lease = ClientLease::default();
            for step in 0..24u64 {
                let pause = 40 + (client as u64 * 37 + step * 101 + seed * 13) % 200;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let invoke = start.elapsed().as_nanos() as u64;
                let (request, outcome, written) =
                    operate(&m, unknown, &mut lease, client as u64, step, seed, start).await;
                if written > 0 {
                    acknowledged.lock().unwrap().push(written);
                    // (f) read-your-writes on this member, without a round trip.
                    let local = m.revision();
                    assert!(
                        local >= written as i64,
                        "member {} at {local} after writing {written}",
                        m.id()
                    );
                }
                history.lock().unwrap().push(Operation {
                    client: client as u64,
                    invoke,
                    request,
                    outcome,
                });
            }
        }));
    }
    // The fault: isolate the leader, then heal; twice.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        leaders.record(&c);
        if let Some(l) = c.leader() {
            c.net.isolate(l.id(), &MEMBERS);
        }
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            leaders.record(&c);
        }
        c.net.heal();
    }
    for client in clients {
        client.await.unwrap();
    }
    jumper.await.unwrap();
    c.converge().await;
    leaders.record(&c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    for d in drains {
        d.await.unwrap();
    }

    // (a) linearizable.
    let history = history.lock().unwrap().clone();
    let answered = history
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Returned { .. }))
        .count();
    assert!(
        answered >= 30,
        "seed {seed}: only {answered} operations answered"
    );
    // The lease requests were exercised, not all lost.
    let lease_answers = history
        .iter()
        .filter(|op| op.request.lease().is_some() && matches!(op.outcome, Outcome::Returned { .. }))
        .count();
    assert!(
        lease_answers >= 5,
        "seed {seed}: only {lease_answers} lease requests answered"
    );
    let verdict = check::check(&history, &check::Config::default()).unwrap();
    assert_eq!(
        verdict,
        check::Verdict::Linearizable,
        "seed {seed}: {history:#?}"
    );
    // (c) one leader per term.
    leaders.assert_one_per_term(seed);
    // (d) equal keyspaces, intact files.
    c.assert_same_keyspace().await;
    // (b) acknowledged writes are applied everywhere; (e) watch streams.
    let last = c.member(1).revision();
    let first = streams[&1].lock().unwrap().clone();
    for (id, s) in &streams {
        let s = s.lock().unwrap().clone();
        assert_eq!(
            s, first,
            "seed {seed}: member {id}'s watch stream differs from member 1's"
        );
        let revisions: BTreeSet<i64> = s.iter().map(|e| e.0).collect();
        let expected: BTreeSet<i64> = (2..=last).collect();
        assert_eq!(
            revisions, expected,
            "seed {seed}: member {id} missed revisions"
        );
        assert!(
            s.windows(2).all(|w| w[0].0 <= w[1].0),
            "seed {seed}: reordered events"
        );
        let distinct: BTreeSet<(i64, Vec<u8>)> = s.iter().map(|e| (e.0, e.1.clone())).collect();
        assert_eq!(
            distinct.len(),
            s.len(),
            "seed {seed}: duplicate events on {id}"
        );
    }
    for rev in acknowledged.lock().unwrap().iter() {
        assert!(
            first.iter().any(|e| e.0 == *rev as i64),
            "seed {seed}: acknowledged revision {rev} is in no watch stream"
        );
    }
    c.shutdown().await;
    history
}

/// Steps the members' lease clocks during the run: every 300-1000 ms of simulated time one
/// member's clock jumps, by a seeded amount: small (up to 1.5 s either way: ordinary time
/// to the leader) or large (back up to 8 s, forward up to 60 s: a gap, or a clock held still).
async fn jump_clocks(clocks: BTreeMap<NodeId, Arc<SteppedClock>>, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let members: Vec<NodeId> = clocks.keys().copied().collect();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300 + next(700))).await;
        let id = members[next(members.len() as u64) as usize];
        let by = if next(2) == 0 {
            next(3_001) as i64 - 1_500
        } else {
            next(68_001) as i64 - 8_000
        };
        clocks[&id].step(by);
    }
}

#[test]
fn histories_are_linearizable_and_watches_complete_across_leader_changes() {
    for seed in seeds(100) {
        with_repro(seed, "sim_history", "histories_are_linearizable", || {
            simulate(seed, || async move {
                run(seed).await;
            })
        });
    }
}

/// A seed replays the same client history, answer for answer and nanosecond for nanosecond of
/// simulated time: what makes a failing seed's one-line reproduction work.
#[test]
fn a_seed_replays_the_same_history() {
    let a = simulate(11, || run(11));
    let b = simulate(11, || run(11));
    assert_eq!(a, b, "seed 11 did not replay");
}

/// Seeds of [`a_lease_expires_after_a_leader_change_but_not_early`] that found bugs, run on
/// every run: 14 (a keep-alive through a follower failed with `Timeout` at once when one
/// heartbeat answer of the leader's read barrier was lost; `ask_leader` now asks again).
const LEASE_REGRESSION_SEEDS: [u64; 1] = [14];

#[test]
fn a_lease_expires_after_a_leader_change_but_not_early() {
    let mut all = seeds(10);
    if std::env::var("ETCH_RAFT_SEED").is_err() {
        let extra: Vec<u64> = LEASE_REGRESSION_SEEDS
            .into_iter()
            .filter(|s| !all.contains(s))
            .collect();
        all.extend(extra);
    }
    for seed in all {
        with_repro(seed, "sim_history", "a_lease_expires", || {
            simulate(seed, || async move {
                let mut c = Cluster::new(seed, Faults::lossy());
                c.boot(&MEMBERS).await;
                let follower = c.follower();
                let lease = follower.lease_grant(4, 0).await.unwrap();
                follower
                    .put_with(PutOp {
                        key: b"lock".to_vec(),
                        value: b"held".to_vec(),
                        lease: lease.id,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                for _ in 0..4 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    follower.lease_keep_alive(lease.id).await.unwrap();
                }
                // Last keep-alive at t0; then the leader dies.
                let t0 = tokio::time::Instant::now();
                let old = c.wait_leader().await.id();
                let survivor = c.members.values().find(|m| m.id() != old).unwrap().id();
                c.crash(old).await;
                let s = c.member(survivor);
                // Not before its TTL (4 s) after the last keep-alive.
                tokio::time::sleep_until(t0 + Duration::from_millis(3500)).await;
                assert!(
                    s.get_consistent("lock", ReadConsistency::Serializable)
                        .await
                        .unwrap()
                        .is_some(),
                    "seed {seed}: the lease expired early"
                );
                // Gone within TTL + election timeout + renewal after the new leader took over.
                let mut gone = false;
                for _ in 0..150 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // An error (no leader yet after the crash) is not an answer.
                    if matches!(s.get("lock").await, Ok(None)) {
                        gone = true;
                        break;
                    }
                }
                assert!(
                    gone,
                    "seed {seed}: the lease never expired after the leader change"
                );
                assert!(t0.elapsed() >= Duration::from_secs(4));
                c.converge().await;
                c.assert_same_keyspace().await;
                for m in c.members.values() {
                    assert!(m.get("lock").await.unwrap().is_none());
                }
                c.shutdown().await;
            })
        });
    }
}
