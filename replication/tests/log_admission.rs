//! A burst of writes must not fill any member's Raft log (its WAL ring) and stop it.
//!
//! Three members with a 1 MiB ring, no snapshot policy and a lease tick too slow to make room
//! in time take 4-16 KiB puts from 64 threads at once (about 640 KiB in flight), through every
//! member. The leader refuses what its ring cannot safely take with `Error::TooManyRequests`
//! (etcd's `too many requests`; the writer sends it again after 5 ms), and a follower appends
//! only what fits its own ring (`node/log_space.rs`). Checked: no member's Raft stopped, every
//! member still applies later writes, and every acknowledged put is on every member with its
//! value. Without the admission check the leader's append failed with `LogFull` here,
//! openraft stopped it and the puts failed with `Shutdown`; without the follower's rule (the
//! leader's admission alone) a follower's did and the test failed or hung.

use crate::blocking_members;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_engine::{Range, RangeOptions};
use etch_replication::local::LocalNetwork;
use etch_replication::types::NodeId;
use etch_replication::{Error, Member, ReadConsistency};

const RING: u64 = 1 << 20;
const WRITERS: usize = 64;
const PUTS_PER_WRITER: usize = 30;
/// How long the writers write at most (a stopped member would make every later put through
/// it wait for the request timeout).
const BURST_LIMIT: Duration = Duration::from_secs(60);

fn start(dir: &Path, id: NodeId, net: &Arc<LocalNetwork>) -> Member {
    // The lease tick (which also makes room) comes too rarely to matter: only the write and
    // append paths keep the ring.
    crate::log_space::start_small_ring(dir, id, net, RING, Duration::from_secs(30))
}

/// Writer `w`'s `i`th value: 4 to 16 KiB, its bytes naming it.
fn value(w: usize, i: usize) -> Vec<u8> {
    let len = (4 << 10) + ((w * 7 + i * 13) % 13) * 1024;
    let mut v = format!("w{w}-i{i}-").into_bytes();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

/// Whether `m`'s Raft still runs.
fn running(m: &Member) -> bool {
    m.as_async().raft().metrics().borrow().running_state.is_ok()
}

/// `key` on `m`, read serializably (this member's own applied state).
fn local_get(m: &Member, key: &str) -> Option<Vec<u8>> {
    m.range_consistent(
        &Range::key(key),
        &RangeOptions::default(),
        ReadConsistency::Serializable,
    )
    .unwrap()
    .kvs
    .into_iter()
    .next()
    .map(|kv| kv.value)
}

#[test]
fn a_burst_never_fills_a_members_log() {
    let dir = tempfile::tempdir().unwrap();
    let (members, _) = blocking_members::three(dir.path(), start);

    let refused = Arc::new(AtomicUsize::new(0));
    let unknown = Arc::new(AtomicUsize::new(0));
    let burst_end = Instant::now() + BURST_LIMIT;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            // Through every member: a third of the writers on each (two thirds forwarded).
            let m = members[w % members.len()].clone();
            let refused = Arc::clone(&refused);
            let unknown = Arc::clone(&unknown);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                'puts: for i in 0..PUTS_PER_WRITER {
                    let key = format!("k/{w:02}/{i:04}");
                    loop {
                        if Instant::now() > burst_end {
                            break 'puts;
                        }
                        match m.put(&key, value(w, i)) {
                            Ok(_) => {
                                acked.push((key, value(w, i)));
                                break;
                            }
                            // Nothing was proposed: sent again after a back-off, as a client
                            // of etcd does.
                            Err(Error::TooManyRequests) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            // Outcome unknown (a loaded machine, an election): not
                            // acknowledged, so not checked. A stopped member shows below.
                            Err(Error::Timeout | Error::NoLeader) => {
                                unknown.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(e) => panic!("writer {w}, put {i}: {e}"),
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let acked: BTreeMap<String, Vec<u8>> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let refused = refused.load(Ordering::Relaxed);
    let unknown = unknown.load(Ordering::Relaxed);
    let bytes: usize = acked.values().map(Vec::len).sum();
    eprintln!(
        "{} puts acknowledged ({} KiB), {refused} refused as too many requests, {unknown} \
         timed out",
        acked.len(),
        bytes >> 10
    );
    assert!(
        bytes as u64 > 4 * RING,
        "the acknowledged puts must not fit the ring: {bytes} bytes"
    );

    for m in &members {
        assert!(running(m), "member {}'s Raft stopped", m.id());
    }

    // Every member still takes and applies writes: one more put through each, retried while
    // refused, seen on every member.
    for m in &members {
        let key = format!("after/{}", m.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match m.put(&key, "v") {
                Ok(_) => break,
                Err(Error::TooManyRequests | Error::Timeout | Error::NoLeader)
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("a put through member {} after the burst: {e}", m.id()),
            }
        }
    }
    for m in &members {
        let deadline = Instant::now() + Duration::from_secs(60);
        while (1..=3).any(|id| local_get(m, &format!("after/{id}")).is_none()) {
            assert!(
                Instant::now() < deadline,
                "member {} did not apply the writes after the burst",
                m.id()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // Every acknowledged put is on every member, with its value.
    for m in &members {
        for (key, value) in &acked {
            assert!(
                local_get(m, key).as_ref() == Some(value),
                "acknowledged put of {key} missing or wrong on member {}",
                m.id()
            );
        }
        assert!(running(m), "member {}'s Raft stopped", m.id());
    }
    let last = members[0].revision();
    let report = members[0].check_hashes(last).unwrap();
    assert!(!report.mismatch(), "{report:?}");
    for m in &members {
        m.shutdown().unwrap();
    }
}
