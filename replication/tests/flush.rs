//! The log flusher (`etch_replication::flush::LogFlusher`) over a log whose syncs wait for the
//! test to let them complete: a wait for durability ends only after a sync that covers its
//! index, and a wait the synced extent covers is answered without one; an index synced before
//! a truncation or a snapshot install is not taken as synced for the entry written there
//! afterwards (through the flusher's own calls and through the Raft log's truncate and the
//! state machine's install, which must tell it); a wait past the log's end fails, and stopping
//! answers pending waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use etch_engine as engine;
use etch_replication::flush::{FlushError, LogFlusher};
use etch_replication::log_store::{LogBounds, LogError, LogStore, StoredEntry};
use etch_replication::raft_log::RaftLog;
use etch_replication::state_machine::{Machine, StateMachine};
use etch_replication::EngineLog;
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, LogId};

/// A log in memory whose syncs wait for the test to open a gate, and which records how far
/// it synced (the "disk").
#[derive(Default)]
struct GatedLog {
    last: Mutex<Option<u64>>,
    durable: Mutex<Option<u64>>,
    /// Syncs allowed to complete.
    gate: Mutex<u64>,
    opened: Condvar,
    syncs: AtomicU64,
    /// When set, the flusher over this log: a truncation records its synced extent as the
    /// truncation starts (in `extent_at_truncate`).
    flusher: std::sync::OnceLock<Arc<LogFlusher>>,
    extent_at_truncate: Mutex<Option<Option<u64>>>,
}

impl GatedLog {
    fn open_gate(&self) {
        *self.gate.lock().unwrap() += 1;
        self.opened.notify_all();
    }
    fn durable(&self) -> Option<u64> {
        *self.durable.lock().unwrap()
    }
}

impl LogStore for GatedLog {
    fn append(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        self.append_unsynced(entries)?;
        let last = *self.last.lock().unwrap();
        *self.durable.lock().unwrap() = last;
        Ok(())
    }
    fn append_unsynced(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        if let Some(e) = entries.last() {
            *self.last.lock().unwrap() = Some(e.0);
        }
        Ok(())
    }
    fn sync_through(&self, index: u64) -> Result<(), LogError> {
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        let mut gate = self.gate.lock().unwrap();
        while *gate < n {
            gate = self.opened.wait(gate).unwrap();
        }
        drop(gate);
        let last = *self.last.lock().unwrap();
        if last.is_none_or(|l| index > l) {
            return Err(LogError::Invalid("past the end".into()));
        }
        *self.durable.lock().unwrap() = last;
        Ok(())
    }
    fn read(&self, _: u64, _: u64) -> Result<Vec<StoredEntry>, LogError> {
        Ok(Vec::new())
    }
    fn bounds(&self) -> Result<LogBounds, LogError> {
        let last = *self.last.lock().unwrap();
        Ok(LogBounds {
            last: last.map(|i| (i, 1)),
            purged: None,
        })
    }
    fn truncate(&self, index: u64) -> Result<(), LogError> {
        if let Some(f) = self.flusher.get() {
            *self.extent_at_truncate.lock().unwrap() = Some(f.synced());
        }
        let last = index.checked_sub(1);
        *self.last.lock().unwrap() = last;
        let mut d = self.durable.lock().unwrap();
        *d = match (*d, last) {
            (Some(d), Some(l)) => Some(d.min(l)),
            _ => None,
        };
        Ok(())
    }
    fn purge(&self, _: u64, _: u64) -> Result<(), LogError> {
        Ok(())
    }
    fn save_vote(&self, _: &[u8]) -> Result<(), LogError> {
        Ok(())
    }
    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError> {
        Ok(None)
    }
}

fn append(log: &GatedLog, from: u64, to: u64) {
    let entries: Vec<(u64, u64, &[u8])> = (from..=to).map(|i| (i, 1, &b""[..])).collect();
    log.append_unsynced(&entries).unwrap();
}

async fn pending<T>(rx: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(Duration::from_millis(50), rx)
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_ends_only_after_a_sync_covering_it() {
    let log = Arc::new(GatedLog::default());
    let flusher = LogFlusher::new(&log).unwrap();
    append(&log, 0, 9);
    flusher.kick(9);
    let f = Arc::clone(&flusher);
    let mut waiter = tokio::spawn(async move { f.durable(9).await });
    // The sync is held at the gate: nothing is durable, the waiter waits.
    assert!(pending(&mut waiter).await);
    assert_eq!(log.durable(), None);
    log.open_gate();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(log.durable(), Some(9));
    assert_eq!(flusher.synced(), Some(9));
    flusher.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covered_wait_is_answered_without_a_sync() {
    let log = Arc::new(GatedLog::default());
    let flusher = LogFlusher::new(&log).unwrap();
    append(&log, 0, 9);
    log.open_gate();
    assert_eq!(flusher.durable(9).await, Ok(()));
    let syncs = log.syncs.load(Ordering::SeqCst);
    // The gate stays closed: a wait that needed a sync round would hang here.
    for index in [0, 5, 9] {
        let answer = tokio::time::timeout(Duration::from_secs(5), flusher.durable(index)).await;
        assert_eq!(answer, Ok(Ok(())), "index {index}");
    }
    flusher.kick(7);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        log.syncs.load(Ordering::SeqCst),
        syncs,
        "no round was started"
    );
    // Past the extent: a round, held at the gate.
    append(&log, 10, 10);
    let f = Arc::clone(&flusher);
    let mut waiter = tokio::spawn(async move { f.durable(10).await });
    assert!(pending(&mut waiter).await);
    log.open_gate();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(flusher.synced(), Some(10));
    flusher.stop();
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// The Raft log's truncate lowers the flusher's extent before it truncates the store (no
/// wait is answered from it for an entry being removed) and after (the new entries at those
/// indexes wait for a sync of their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_logs_truncate_lowers_the_extent() {
    let log = Arc::new(GatedLog::default());
    let flusher = LogFlusher::new(&log).unwrap();
    let _ = log.flusher.set(Arc::clone(&flusher));
    let mut raft_log = RaftLog::with_flusher(Arc::clone(&log), Arc::clone(&flusher));
    append(&log, 0, 9);
    log.open_gate();
    assert_eq!(flusher.durable(9).await, Ok(()));
    assert_eq!(flusher.synced(), Some(9));
    RaftLogStorage::truncate(&mut raft_log, log_id(1, 5))
        .await
        .unwrap();
    let seen = log.extent_at_truncate.lock().unwrap().unwrap();
    assert!(
        seen.is_none_or(|d| d <= 4),
        "the extent was {seen:?} while entries 5.. were being removed"
    );
    assert!(flusher.synced().is_none_or(|d| d <= 4));
    append(&log, 5, 7);
    let f = Arc::clone(&flusher);
    let mut waiter = tokio::spawn(async move { f.durable(7).await });
    assert!(pending(&mut waiter).await, "answered from the extent");
    log.open_gate();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(log.durable(), Some(7));
    flusher.stop();
}

/// An [`EngineLog`] whose syncs wait at a gate like [`GatedLog`]'s.
struct GatedEngine {
    log: EngineLog,
    gate: GatedLog,
}

impl LogStore for GatedEngine {
    fn append(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        self.log.append(entries)
    }
    fn append_unsynced(&self, entries: &[(u64, u64, &[u8])]) -> Result<(), LogError> {
        self.log.append_unsynced(entries)
    }
    fn sync_through(&self, index: u64) -> Result<(), LogError> {
        let n = self.gate.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        let mut gate = self.gate.gate.lock().unwrap();
        while *gate < n {
            gate = self.gate.opened.wait(gate).unwrap();
        }
        drop(gate);
        self.log.sync_through(index)
    }
    fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, LogError> {
        self.log.read(from, to)
    }
    fn bounds(&self) -> Result<LogBounds, LogError> {
        self.log.bounds()
    }
    fn truncate(&self, index: u64) -> Result<(), LogError> {
        self.log.truncate(index)
    }
    fn purge(&self, index: u64, term: u64) -> Result<(), LogError> {
        self.log.purge(index, term)
    }
    fn save_vote(&self, vote: &[u8]) -> Result<(), LogError> {
        self.log.save_vote(vote)
    }
    fn read_vote(&self) -> Result<Option<Vec<u8>>, LogError> {
        self.log.read_vote()
    }
}

fn open_store(path: &std::path::Path) -> engine::Store {
    engine::Store::options()
        .replicated(true)
        .background_writes(false)
        .wal_capacity(1 << 20)
        .open(path)
        .unwrap()
}

/// A snapshot install through the state machine empties the log at the snapshot's index,
/// replacing what the log held there: the extent synced before it must not answer a wait
/// for an entry appended after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_install_resets_the_extent() {
    let dir = tempfile::tempdir().unwrap();
    // A leader's store at Raft index 9 of term 5, applied, and its snapshot.
    let leader_path = dir.path().join("leader.etch");
    let leader_store = open_store(&leader_path);
    let leader_log = EngineLog::new(leader_store.clone());
    for i in 0..10u64 {
        leader_log.append(&[(i, 5, b"x")]).unwrap();
        leader_store
            .apply(i + 1, 5, &engine::Command::Noop)
            .unwrap();
    }
    let leader = Machine::new(1, &leader_path, leader_store.clone()).unwrap();
    let mut builder = StateMachine::new(Arc::clone(&leader))
        .get_snapshot_builder()
        .await;
    let mut snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(5, 9)));

    // A follower whose log holds entries 0..=12 of an older term, all synced.
    let path = dir.path().join("follower.etch");
    let store = open_store(&path);
    let log = Arc::new(GatedEngine {
        log: EngineLog::new(store.clone()),
        gate: GatedLog::default(),
    });
    let flusher = LogFlusher::new(&log).unwrap();
    let entries: Vec<(u64, u64, &[u8])> = (0..=12).map(|i| (i, 1, &b"old"[..])).collect();
    log.append_unsynced(&entries).unwrap();
    log.gate.open_gate();
    assert_eq!(flusher.durable(12).await, Ok(()));
    assert_eq!(flusher.synced(), Some(12));

    let machine = Machine::new(2, &path, store.clone()).unwrap();
    let mut sm = StateMachine::with_flusher(machine, Arc::clone(&flusher));
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    std::io::copy(&mut *snapshot.snapshot, &mut *received).unwrap();
    sm.install_snapshot(&snapshot.meta, received).await.unwrap();
    assert_eq!(log.bounds().unwrap().last, Some((9, 5)));
    assert!(
        flusher.synced().is_none_or(|d| d <= 9),
        "extent {:?} after an install at 9",
        flusher.synced()
    );

    // New entries at 10 and 11 (of a newer term): not durable until a sync covers them.
    log.append_unsynced(&[(10, 6, b"new"), (11, 6, b"new")])
        .unwrap();
    let f = Arc::clone(&flusher);
    let mut waiter = tokio::spawn(async move { f.durable(11).await });
    assert!(
        pending(&mut waiter).await,
        "answered from the extent synced before the install"
    );
    log.gate.open_gate();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(flusher.synced(), Some(11));
    flusher.stop();
    drop(sm);
    leader.close().unwrap();
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_index_is_not_taken_as_synced() {
    let log = Arc::new(GatedLog::default());
    let flusher = LogFlusher::new(&log).unwrap();
    append(&log, 0, 9);
    log.open_gate();
    assert_eq!(flusher.durable(9).await, Ok(()));
    // Entries 5.. are replaced by new, unsynced ones.
    log.truncate(5).unwrap();
    flusher.truncated(Some(4));
    append(&log, 5, 7);
    let f = Arc::clone(&flusher);
    let mut waiter = tokio::spawn(async move { f.durable(7).await });
    assert!(pending(&mut waiter).await, "answered from a stale sync");
    assert_eq!(log.durable(), Some(4));
    log.open_gate();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(log.durable(), Some(7));
    flusher.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_past_the_log_fail_and_stop_ends_waits() {
    let log = Arc::new(GatedLog::default());
    let flusher = LogFlusher::new(&log).unwrap();
    append(&log, 0, 3);
    log.open_gate();
    assert_eq!(
        flusher.durable(8).await,
        Err(FlushError::Missing { index: 8 })
    );
    append(&log, 4, 6);
    let f = Arc::clone(&flusher);
    let waiter = tokio::spawn(async move { f.durable(6).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Its sync is held at the gate; stopping answers it.
    let f = Arc::clone(&flusher);
    let stopper = std::thread::spawn(move || f.stop());
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.open_gate();
    stopper.join().unwrap();
    let answer = waiter.await.unwrap();
    assert!(
        answer == Ok(()) || answer == Err(FlushError::Stopped),
        "{answer:?}"
    );
    assert_eq!(flusher.durable(6).await, Err(FlushError::Stopped));
}
