//! The client against a 3-member `etch serve` cluster (separate processes, QUIC between them)
//! whose members are killed under it: writes keep succeeding on the surviving majority, with
//! typed errors (never a wrong answer) while a member dies or a leader is elected; a watch
//! over the whole run resumes on another member without gap or duplicate; every acknowledged
//! write is there at the end.
//!
//! Needs the `etch` binary next to the test executable (`cargo test --workspace` builds it),
//! as the whole-system tests in the root `tests/` do; their process harness is shared.

#[path = "../../tests/cluster/mod.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::ClusterProcs;
use etch_client::{Client, ClientOptions, Error};
use etch_engine::{EventKind, Range, WatchOptions};

const START: Duration = Duration::from_secs(30);

/// Puts `count` new keys `fo/<phase>/<i>`; returns the acknowledged ones with their revisions
/// and how many ended with an unknown outcome (unavailable or timed out while a member died
/// or a leader was elected; such a key may or may not exist, and is never written again).
fn put_keys(client: &Client, phase: usize, count: usize) -> (BTreeMap<String, i64>, usize) {
    let mut acked = BTreeMap::new();
    let mut unknown = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..count {
        assert!(Instant::now() < deadline, "phase {phase} took over 60 s");
        let key = format!("fo/{phase}/{i:03}");
        match client.put(&key, format!("v{phase}.{i}")) {
            Ok(r) => {
                acked.insert(key, r.header_revision);
            }
            Err(Error::Unavailable { .. } | Error::DeadlineExceeded { .. }) => unknown += 1,
            Err(e) => panic!("put {key}: an error other than unavailability: {e:?}"),
        }
    }
    (acked, unknown)
}

#[test]
fn a_client_rides_through_member_kills_and_its_watch_has_no_gap() {
    let mut c = ClusterProcs::new(&["f1", "f2", "f3"], "client-failover");
    c.start_new();
    c.wait_healthy(START);
    c.leader(START);
    let endpoints: Vec<String> = c
        .members
        .iter()
        .map(|m| m.client_addr().to_string())
        .collect();
    let options = ClientOptions::default()
        .dial_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(5));
    let client = Client::connect(&endpoints, options).expect("client connects");

    let first = client.put("fo/start", "0").unwrap().header_revision;
    let opts = WatchOptions {
        start_revision: first,
        ..WatchOptions::default()
    };
    let mut watcher = client.watch_with(Range::prefix("fo/"), opts).unwrap();

    let mut acked: BTreeMap<String, i64> = BTreeMap::from([("fo/start".to_string(), first)]);
    let mut unknown = 0;
    let (initial, token) = (c.initial_cluster(&[0, 1, 2]), c.token.clone());
    // Phase 0 runs on the whole cluster; before phase 1 the leader is killed, before phase 2
    // it is back and a follower is killed, before phase 3 that one is back too.
    let mut killed: Option<usize> = None;
    for phase in 0..4 {
        match phase {
            1 => {
                let leader = c.leader(START);
                c.members[leader].kill();
                killed = Some(leader);
            }
            2 => {
                let back = killed.take().unwrap();
                let flags = c.members[back].flags(&initial, "new", &token);
                c.members[back].start(&flags);
                c.wait_healthy(START);
                let leader = c.leader(START);
                let follower = (leader + 1) % 3;
                c.members[follower].kill();
                killed = Some(follower);
            }
            3 => {
                let back = killed.take().unwrap();
                let flags = c.members[back].flags(&initial, "new", &token);
                c.members[back].start(&flags);
                c.wait_healthy(START);
            }
            _ => {}
        }
        let (got, lost) = put_keys(&client, phase, 40);
        assert!(
            got.len() >= 30,
            "phase {phase}: only {} of 40 puts acknowledged while a majority was up",
            got.len()
        );
        acked.extend(got);
        unknown += lost;
    }

    // The watch: every change once, in revision order, each acknowledged put at its revision.
    let last = acked.values().copied().max().unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events
        .last()
        .is_none_or(|e: &etch_engine::Event| e.kv.mod_revision < last)
    {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the watch stopped at {:?}", events.last());
        if let Some(resp) = watcher.recv_timeout(left).expect("the watch resumes") {
            assert!(!resp.canceled, "the watch was cancelled: {resp:?}");
            events.extend(resp.events);
        }
    }
    let revisions: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "no duplicate and no reordering: {revisions:?}"
    );
    assert!(events.iter().all(|e| e.kind == EventKind::Put));
    let watched: BTreeMap<String, i64> = events
        .iter()
        .filter(|e| e.kv.mod_revision <= last)
        .map(|e| {
            (
                String::from_utf8(e.kv.key.clone()).unwrap(),
                e.kv.mod_revision,
            )
        })
        .collect();
    for (key, revision) in &acked {
        assert_eq!(
            watched.get(key),
            Some(revision),
            "acknowledged {key} at {revision} is in the watch"
        );
    }
    // No gap: what the watch delivered is exactly the changes the cluster has in that range
    // of revisions (a put with an unknown outcome that did apply shows in both).
    let stored = client.range(Range::prefix("fo/")).unwrap();
    let in_store: BTreeMap<String, i64> = stored
        .kvs
        .iter()
        .filter(|kv| kv.mod_revision <= last)
        .map(|kv| (String::from_utf8(kv.key.clone()).unwrap(), kv.mod_revision))
        .collect();
    assert_eq!(watched, in_store, "the watch equals the stored keys");
    assert!(
        watched.len() <= acked.len() + unknown,
        "nothing was applied that nobody wrote"
    );

    for m in &mut c.members {
        assert!(m.stop(), "{} stops cleanly on SIGTERM", m.name);
    }
}
