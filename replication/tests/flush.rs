//! The log flusher (`etch_replication::flush::LogFlusher`) over a log whose syncs wait for the
//! test to let them complete: a wait for durability ends only after a sync that covers its
//! index, an index synced before a truncation is not taken as synced for the entry written
//! there afterwards, a wait past the log's end fails, and stopping answers pending waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use etch_replication::flush::{FlushError, LogFlusher};
use etch_replication::log_store::{LogBounds, LogError, LogStore, StoredEntry};

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
    // Covered already: answered by a round whose sync has nothing to wait for (the engine's
    // returns at once; this log's waits at its gate once more).
    log.open_gate();
    assert_eq!(flusher.durable(5).await, Ok(()));
    flusher.stop();
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
