//! `EngineLog` (the Raft log in the engine's WAL) against the `LogStore` rules: the checks the
//! in-memory log passes, run against both implementations, then what only a file can show
//! (reopen after close) and the engine's own limits (a full ring, a purge past the end); last,
//! a simulated cluster in which one member keeps its log in an `EngineLog` file and restarts.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etch_engine as engine;
use etch_replication::log_store::{LogError, LogStore, MemLogStore};
use etch_replication::node::TokioClock;
use etch_replication::sim::Faults;
use etch_replication::types::NodeId;
use etch_replication::{EngineLog, ReplicatedStore};
use support::{node_config, simulate, Cluster};

fn open(path: &Path) -> EngineLog {
    EngineLog::open(path, engine::Store::options().wal_capacity(1 << 20)).unwrap()
}

fn invalid<T: std::fmt::Debug>(r: Result<T, LogError>) -> bool {
    matches!(r, Err(LogError::Invalid(_)))
}

/// The rules every `LogStore` keeps, up to (not including) a purge past the log's end, which
/// the two implementations handle differently (see the tests below).
fn check_log_rules(log: &dyn LogStore) {
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
    log.purge(3, 4).unwrap();
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((3, 4)), Some((3, 4))));
    log.append(&[(4, 4, b"g")]).unwrap();
    log.save_vote(b"v1").unwrap();
    log.save_vote(b"v2").unwrap();
    assert_eq!(log.read_vote().unwrap(), Some(b"v2".to_vec()));
}

#[test]
fn memory_log_keeps_the_rules() {
    check_log_rules(&MemLogStore::new());
}

#[test]
fn engine_log_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log.etch"));
    check_log_rules(&log);
    log.close().unwrap();
}

#[test]
fn a_purge_past_the_end_empties_the_memory_log_and_is_refused_by_the_engine_log() {
    let mem = MemLogStore::new();
    mem.append(&[(0, 1, b"a")]).unwrap();
    mem.purge(9, 5).unwrap();
    assert_eq!(mem.bounds().unwrap().last, Some((9, 5)));

    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log.etch"));
    log.append(&[(0, 1, b"a"), (1, 1, b"b")]).unwrap();
    assert!(invalid(log.purge(9, 5)));
    // Refused before anything changed.
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((1, 1)), None));
    assert_eq!(log.read(0, 9).unwrap().len(), 2);
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
    log.close().unwrap();

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
    log.close().unwrap();

    let log = open(&path);
    let b = log.bounds().unwrap();
    assert_eq!((b.last, b.purged), (Some((15, 3)), None));
    assert_eq!(log.read(14, 30).unwrap().len(), 2);
    assert_eq!(log.read(15, 16).unwrap(), vec![(15, 3, b"new 15".to_vec())]);
    log.purge(9, 1).unwrap();
    log.close().unwrap();

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
    log.close().unwrap();

    let log = open(&path);
    assert_eq!(log.bounds().unwrap().last, Some((12, 4)));
    log.close().unwrap();
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
    log.purge(next - 2, 1).unwrap();
    log.append(&[(next, 1, &payload)]).unwrap();
    assert_eq!(log.read(0, u64::MAX).unwrap().len(), 2);
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.etch");
    let log = open(&path);
    assert!(EngineLog::open(&path, engine::Store::options()).is_err());
    log.close().unwrap();
}

/// Starts member `id` of `c` on an `EngineLog` in `log_path` (closed and reopened by the
/// caller across restarts); returns the log's engine store, to close it after a shutdown.
async fn start_on_engine_log(c: &mut Cluster, id: NodeId, log_path: &Path) -> engine::Store {
    let log = Arc::new(open(log_path));
    let log_store = log.store().clone();
    let opts = engine::Options::new().clock(Arc::new(TokioClock::new()));
    let member = ReplicatedStore::open(
        node_config(id, c.snapshot_every),
        c.path(id),
        opts,
        log,
        Arc::clone(&c.net),
    )
    .await
    .unwrap();
    c.net.register(id, member.handler());
    c.members.insert(id, member);
    log_store
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

/// One member of three keeps its Raft log in an `EngineLog` file (snapshots every 10 entries,
/// so its log is purged too, before the restart); it is shut down, its log file closed and reopened, and the
/// cluster converges to the same keyspace (hash check) with writes before and after.
#[test]
fn a_member_on_an_engine_log_restarts_from_its_file_and_the_cluster_converges() {
    simulate(7, || async {
        let mut c = Cluster::new(7, Faults::none());
        c.snapshot_every = Some(10);
        let log_path = c.dir.path().join("n3.raftlog");
        c.start(1).await;
        c.start(2).await;
        let log_store = start_on_engine_log(&mut c, 3, &log_path).await;
        c.members[&1]
            .initialize([1, 2, 3].into_iter().collect())
            .await
            .unwrap();
        put_keys(&c, "before/", 40).await;
        c.converge().await;
        c.assert_same_keyspace().await;
        let state = log_store.log_state().unwrap();
        assert!(
            state.last.is_some_and(|(i, _)| i > 40),
            "member 3's file holds the log: {state:?}"
        );
        assert!(
            state.last_purged.is_some(),
            "snapshots purged member 3's file log: {state:?}"
        );

        // Restart member 3 from its files.
        c.net.unregister(3);
        let m3 = c.members.remove(&3).unwrap();
        m3.shutdown().await.unwrap();
        drop(m3);
        log_store.close().unwrap();
        let reopened = open(&log_path);
        let b = reopened.bounds().unwrap();
        assert_eq!(
            b.last.map(|(i, _)| i + 1),
            state.last.map(|(i, _)| i),
            "the reopened log ends where it did"
        );
        assert!(reopened.read_vote().unwrap().is_some(), "the vote is kept");
        reopened.close().unwrap();
        // The restarted member keeps snapshotting: its new snapshot files must not collide
        // with the ones its first run left in the same directory.
        let log_store = start_on_engine_log(&mut c, 3, &log_path).await;

        put_keys(&c, "after/", 40).await;
        c.converge().await;
        c.assert_same_keyspace().await;
        let after = log_store.log_state().unwrap();
        assert!(
            after.last > state.last,
            "member 3 appended after its restart: {after:?}"
        );
        assert!(
            after.last_purged > state.last_purged,
            "member 3 snapshotted and purged after its restart: {after:?}"
        );
        c.shutdown().await;
        log_store.close().unwrap();
    });
}
