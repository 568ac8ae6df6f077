//! `EngineLog` (the Raft log in the WAL of a member's replicated store) against the `LogStore`
//! rules, then what only a file can show (reopen after close), the engine's own limits (a full
//! ring, a purge past the end) and a purge after a snapshot install; last, a simulated cluster
//! whose member restarts from its one file.

use crate::support;

use std::path::Path;
use std::time::Duration;

use etch_engine as engine;
use etch_replication::log_store::{LogError, LogStore};
use etch_replication::sim::Faults;
use etch_replication::EngineLog;
use support::{simulate, Cluster};

fn options() -> engine::Options {
    engine::Store::options()
        .replicated(true)
        .background_writes(false)
        .wal_capacity(1 << 20)
}

fn open(path: &Path) -> EngineLog {
    EngineLog::new(options().open(path).unwrap())
}

fn close(log: EngineLog) {
    log.store().clone().close().unwrap();
}

/// Applies (as no-ops) the entries up to Raft index `raft`, as the state machine would: the
/// engine purges only applied entries.
fn apply_through(log: &EngineLog, raft: u64) {
    let store = log.store();
    let (applied, _) = store.applied();
    for e in store.log_read(applied + 1, raft + 2).unwrap() {
        store
            .apply(e.index, e.term, &engine::Command::Noop)
            .unwrap();
    }
    assert!(store.applied().0 > raft);
}

fn invalid<T: std::fmt::Debug>(r: Result<T, LogError>) -> bool {
    matches!(r, Err(LogError::Invalid(_)))
}

/// The rules the log keeps.
fn check_log_rules(log: &EngineLog) {
    assert_eq!(log.bounds().unwrap().last, None);
    assert_eq!(log.read_vote().unwrap(), None);
    log.append(&[(0, 1, b"a"), (1, 1, b"b"), (2, 2, b"c")])
        .unwrap();
    assert!(invalid(log.append(&[(5, 2, b"x")])), "a gap is refused");
    assert_eq!(log.bounds().unwrap().last, Some((2, 2)));
    assert_eq!(
        log.read(1, 3).unwrap(),
        vec![(1, 1, b"b".to_vec()), (2, 2, b"c".to_vec())]
    );
    assert!(log.read(2, 2).unwrap().is_empty());
    log.truncate(2).unwrap();
    assert_eq!(log.bounds().unwrap().last, Some((1, 1)));
    // Truncating past the end changes nothing.
    log.truncate(7).unwrap();
    assert_eq!(log.bounds().unwrap().last, Some((1, 1)));
    log.append(&[(2, 3, b"d")]).unwrap();
    // Unapplied entries are not purged yet: the purge is deferred.
    log.purge(1, 1).unwrap();
    assert_eq!(log.bounds().unwrap().purged, None);
    assert_eq!(log.read(0, 2).unwrap().len(), 2);
    apply_through(log, 1);
    assert!(
        invalid(log.truncate(1)),
        "applied entries are not truncated"
    );
    assert!(
        invalid(log.purge(1, 2)),
        "a purge naming the wrong term is refused"
    );
    assert_eq!(log.bounds().unwrap().purged, None);
    log.purge(1, 1).unwrap();
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((2, 3)), Some((1, 1))));
    // Purged entries are simply not returned.
    assert_eq!(log.read(0, 10).unwrap(), vec![(2, 3, b"d".to_vec())]);
    // A purge at or below the purge point changes nothing.
    log.purge(0, 1).unwrap();
    assert_eq!(log.bounds().unwrap().purged, Some((1, 1)));
    assert!(
        invalid(log.truncate(1)),
        "truncation cannot reach purged entries"
    );
    log.truncate(2).unwrap();
    // Empty after the purge point: the last position is the purge point.
    assert_eq!(log.bounds().unwrap().last, Some((1, 1)));
    assert!(log.read(0, u64::MAX).unwrap().is_empty());
    assert!(invalid(log.append(&[(3, 4, b"e")])));
    log.append(&[(2, 4, b"e"), (3, 4, b"f")]).unwrap();
    apply_through(log, 3);
    log.purge(3, 4).unwrap();
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((3, 4)), Some((3, 4))));
    log.append(&[(4, 4, b"g")]).unwrap();
    log.save_vote(b"v1").unwrap();
    log.save_vote(b"v2").unwrap();
    assert_eq!(log.read_vote().unwrap(), Some(b"v2".to_vec()));
}

#[test]
fn engine_log_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log.etch"));
    check_log_rules(&log);
    close(log);
}

/// A purge past the applied index (openraft issues one beside a snapshot install, possibly
/// first) is deferred: nothing changes until the install empties the log at the snapshot's
/// index, and a purge up to it afterwards has nothing left to do. A deferred purge that
/// becomes applied runs on the next purge.
#[test]
fn a_purge_past_the_end_waits_for_the_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log.etch"));
    log.append(&[(0, 1, b"a"), (1, 1, b"b")]).unwrap();
    apply_through(&log, 0);
    log.purge(1, 1).unwrap();
    assert_eq!(log.bounds().unwrap().purged, None, "deferred");
    apply_through(&log, 1);
    log.purge(0, 1).unwrap();
    assert_eq!(
        log.bounds().unwrap().purged,
        Some((1, 1)),
        "the deferred purge ran"
    );
    log.append(&[(2, 1, b"c")]).unwrap();
    log.purge(9, 5).unwrap();
    // Deferred: nothing changed.
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((2, 1)), Some((1, 1))));
    assert_eq!(log.read(0, 9).unwrap().len(), 1);

    // A leader at Raft index 9 of term 5, and its snapshot.
    let leader = open(&dir.path().join("leader.etch"));
    for i in 0..10u64 {
        leader.append(&[(i, 5, b"x")]).unwrap();
    }
    apply_through(&leader, 9);
    let snap = dir.path().join("snap.etch");
    let info = leader
        .store()
        .snapshot_to(&mut std::fs::File::create(&snap).unwrap())
        .unwrap();
    assert_eq!((info.index, info.term), (10, 5));
    log.store()
        .install_snapshot_with_membership(&snap, 1, 1, b"membership")
        .unwrap();
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((9, 5)), Some((9, 5))));
    log.purge(9, 5).unwrap();
    log.purge(4, 5).unwrap();
    assert_eq!(log.bounds().unwrap(), b);
    log.append(&[(10, 6, b"c")]).unwrap();
    assert_eq!(log.read(0, 20).unwrap(), vec![(10, 6, b"c".to_vec())]);
    close(log);
    close(leader);
}

#[test]
fn entries_vote_truncation_and_purge_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.etch");
    let payload = |i: u64| format!("entry {i}").into_bytes();

    let log = open(&path);
    for i in 0..20u64 {
        log.append(&[(i, 1 + i / 10, &payload(i))]).unwrap();
    }
    log.save_vote(b"vote of term 2").unwrap();
    close(log);

    let log = open(&path);
    assert_eq!(log.read_vote().unwrap(), Some(b"vote of term 2".to_vec()));
    let all = log.read(0, u64::MAX).unwrap();
    assert_eq!(all.len(), 20);
    for (i, (index, term, p)) in all.into_iter().enumerate() {
        let i = i as u64;
        assert_eq!((index, term, p), (i, 1 + i / 10, payload(i)));
    }
    // Replace a suffix with entries of a later term; the old suffix must stay gone.
    log.truncate(15).unwrap();
    log.append(&[(15, 3, b"new 15")]).unwrap();
    close(log);

    let log = open(&path);
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((15, 3)), None));
    assert_eq!(log.read(14, 30).unwrap().len(), 2);
    assert_eq!(log.read(15, 16).unwrap(), vec![(15, 3, b"new 15".to_vec())]);
    apply_through(&log, 9);
    log.purge(9, 1).unwrap();
    close(log);

    let log = open(&path);
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((15, 3)), Some((9, 1))));
    let kept = log.read(0, u64::MAX).unwrap();
    assert_eq!(kept.first().map(|e| e.0), Some(10));
    assert_eq!(kept.len(), 6);
    assert!(invalid(log.truncate(9)));
    // The log continues after the reopen: a truncation above the purge point, an append.
    log.truncate(12).unwrap();
    log.append(&[(12, 4, b"12 of term 4")]).unwrap();
    assert_eq!(log.read_vote().unwrap(), Some(b"vote of term 2".to_vec()));
    close(log);

    let log = open(&path);
    assert_eq!(log.bounds().unwrap().last, Some((12, 4)));
    close(log);
}

#[test]
fn a_full_ring_is_a_typed_error_and_a_purge_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log.etch"));
    let payload = vec![7u8; 64 << 10];
    let mut next = 0u64;
    let err = loop {
        assert!(
            next < 64,
            "a 1 MiB ring took more than 64 entries of 64 KiB"
        );
        match log.append(&[(next, 1, &payload)]) {
            Ok(()) => next += 1,
            Err(e) => break e,
        }
    };
    let LogError::Io(io) = &err else {
        panic!("a full ring is an I/O-kind error, got {err}");
    };
    assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
    let inner = io.get_ref().and_then(|e| e.downcast_ref::<engine::Error>());
    assert!(
        matches!(inner, Some(engine::Error::LogFull { .. })),
        "the engine's error is kept: {err}"
    );
    assert!(next > 4, "the ring held only {next} entries");
    // The log is as it was before the failing append.
    assert_eq!(log.bounds().unwrap().last, Some((next - 1, 1)));
    apply_through(&log, next - 2);
    log.purge(next - 2, 1).unwrap();
    log.append(&[(next, 1, &payload)]).unwrap();
    assert_eq!(log.read(0, u64::MAX).unwrap().len(), 2);
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.etch");
    let log = open(&path);
    assert!(options().open(&path).is_err());
    close(log);
}

/// Puts `count` keys through whichever member leads, retrying a refused proposal (bounded).
async fn put_keys(c: &Cluster, prefix: &str, count: usize) {
    for i in 0..count {
        let mut tries = 0;
        loop {
            let leader = c.wait_leader().await;
            match leader
                .put(format!("{prefix}{i}"), format!("value {i}"))
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("put {prefix}{i}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("put {prefix}{i} failed 20 times: {e}"),
            }
        }
    }
}

/// The log state and vote of a stopped member's file.
fn file_log(path: &Path) -> (engine::LogState, bool) {
    let log = open(path);
    let state = log.store().log_state().unwrap();
    let voted = log.read_vote().unwrap().is_some();
    close(log);
    (state, voted)
}

/// A member's one file holds its log (purged by snapshots every 10 entries) and its vote; the
/// member is shut down and restarts from that file, and the cluster converges to the same
/// keyspace (hash check) with writes before and after; its log goes on from where it was.
#[test]
fn a_member_restarts_from_its_one_file_and_the_cluster_converges() {
    simulate(7, || async {
        let mut c = Cluster::new(7, Faults::none());
        c.snapshot_every = Some(10);
        c.boot(&[1, 2, 3]).await;
        put_keys(&c, "before/", 40).await;
        c.converge().await;
        c.assert_same_keyspace().await;

        // Wait until member 3 has snapshotted and purged (beside the applies), then stop it and
        // look at its file.
        for _ in 0..100 {
            if c.member(3).raft().metrics().borrow().purged.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.net.unregister(3);
        let m3 = c.members.remove(&3).unwrap();
        m3.shutdown().await.unwrap();
        drop(m3);
        let (state, voted) = file_log(&c.path(3));
        assert!(
            state.last.is_some_and(|(i, _)| i > 40),
            "member 3's file holds the log: {state:?}"
        );
        assert!(
            state.last_purged.is_some(),
            "snapshots purged member 3's log: {state:?}"
        );
        assert!(voted, "the vote is kept");
        c.start(3).await;

        put_keys(&c, "after/", 40).await;
        c.converge().await;
        c.assert_same_keyspace().await;
        c.shutdown().await;
        let (after, _) = file_log(&c.path(3));
        assert!(
            after.last > state.last,
            "member 3 appended after its restart: {after:?}"
        );
        assert!(
            after.last_purged > state.last_purged,
            "member 3 snapshotted and purged after its restart: {after:?}"
        );
    });
}
