//! Checkpoints that run while commits go on (docs/design.md, "Checkpoint"): commits complete
//! while a checkpoint's main-file sync is held up, writer threads racing checkpoints lose
//! nothing, and a power cut at any storage operation while checkpoints and commits overlap
//! leaves every acknowledged write, and nothing else but the one commit each thread had in
//! flight, with `check()` clean.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etch_engine::sim::{CrashPolicy, SimDisk};
use etch_engine::storage::{FsStorage, Mapping, Storage, StorageFile};
use etch_engine::{Options, Store, WriteOp};

/// A file system whose main-file syncs wait while the gate is closed (WAL syncs never do).
#[derive(Clone, Default)]
struct GatedStorage {
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: std::sync::Condvar,
    /// Main-file syncs waiting at the gate right now.
    waiting: AtomicUsize,
    /// Writeback starts asked of the main file so far.
    writebacks: AtomicUsize,
    /// The main file's lengths, in the order it was set to them.
    lengths: Mutex<Vec<u64>>,
    /// The byte ranges of the main file prefaulted so far, in order.
    prefaults: Mutex<Vec<(u64, u64)>>,
    /// The main file's length before its first growth since the WAL's last sync (which ends a
    /// commit's round: a seal, then the WAL sync).
    grown_this_round: Mutex<Option<u64>>,
    /// Writes to the main file past that length: into a region the same round grew into.
    writes_into_own_growth: AtomicUsize,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }

    /// Closes the gate, starts a checkpoint on another thread and returns once that checkpoint
    /// waits in its main-file sync (at most 10 s, else the test fails).
    fn hold_checkpoint(&self, db: &Store) -> std::thread::JoinHandle<etch_engine::Result<()>> {
        self.set_closed(true);
        let checkpointer = {
            let db = db.clone();
            std::thread::spawn(move || db.checkpoint())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.waiting.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the checkpoint never reached its sync"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        checkpointer
    }

    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

struct GatedFile {
    inner: Arc<dyn StorageFile>,
    /// The main file's gate; `None` for the WAL.
    gate: Option<Arc<Gate>>,
    /// Every file's: the WAL's syncs end a commit's round (see `Gate::grown_this_round`).
    all: Arc<Gate>,
}

impl Storage for GatedStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let inner = FsStorage.open(path, create)?;
        let is_main = path.extension().is_some_and(|e| e == "etch");
        Ok(Arc::new(GatedFile {
            inner,
            gate: is_main.then(|| self.gate.clone()),
            all: self.gate.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        FsStorage.sync_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
}

impl StorageFile for GatedFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            let mut lengths = gate.lengths.lock().unwrap();
            let mut grown = gate.grown_this_round.lock().unwrap();
            if let Some(&old) = lengths.last() {
                grown.get_or_insert(old);
            }
            lengths.push(len);
        }
        self.inner.set_len(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn prefault(&self, offset: u64, len: u64) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.prefaults.lock().unwrap().push((offset, offset + len));
        }
        self.inner.prefault(offset, len)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            let grown = *gate.grown_this_round.lock().unwrap();
            if grown.is_some_and(|old| offset + buf.len() as u64 > old) {
                gate.writes_into_own_growth.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.pass();
        } else {
            *self.all.grown_this_round.lock().unwrap() = None;
        }
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        self.inner.sync_all()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.inner.try_lock_shared()
    }
    fn unlock(&self) -> io::Result<()> {
        self.inner.unlock()
    }
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        self.inner.identity()
    }
    fn map(&self, len: usize, random_access: bool) -> io::Result<Box<dyn Mapping>> {
        self.inner.map(len, random_access)
    }
    fn start_writeback(&self) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.writebacks.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.start_writeback()
    }
}

/// Opens the gate when dropped, so that a failing test never leaves a thread stuck at it.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set_closed(false);
    }
}

/// The higher checkpoint counter of the two meta slots (u64 at offset 24 of each slot).
fn checkpoint_counter(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    at(24).max(at(4096 + 24))
}

#[test]
fn commits_complete_while_a_checkpoint_syncs_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gated.etch");
    let (db, gate, _open_gate) = open_gated(&path, Options::new());
    for i in 0..100 {
        db.put(format!("before/{i:03}"), format!("v{i}")).unwrap();
    }
    let counter_before = checkpoint_counter(&path);

    let checkpointer = gate.hold_checkpoint(&db);
    // The checkpoint is inside its main-file sync. Commits, reads and WAL syncs go on.
    let (done_tx, done_rx) = mpsc::channel();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                let rev = db
                    .put(format!("during/{i:02}"), format!("d{i}"))
                    .unwrap()
                    .header_revision;
                assert_eq!(
                    db.get(format!("during/{i:02}"))
                        .unwrap()
                        .unwrap()
                        .mod_revision,
                    rev
                );
            }
            done_tx.send(()).unwrap();
        })
    };
    let finished = done_rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        gate.waiting.load(Ordering::SeqCst),
        1,
        "the sync is still held"
    );
    gate.set_closed(false);
    writer.join().unwrap();
    assert!(
        finished.is_ok(),
        "commits waited for the checkpoint's main-file sync"
    );
    checkpointer.join().unwrap().unwrap();
    assert_eq!(checkpoint_counter(&path), counter_before + 1);
    // The records of the commits made during the checkpoint stay in the WAL until the next one.
    assert!(db.status().unwrap().wal_size > 0);
    db.checkpoint().unwrap();
    assert_eq!(db.status().unwrap().wal_size, 0);
    db.check().unwrap();
    db.close().unwrap();

    let db = Store::open(&path).unwrap();
    for i in 0..100 {
        assert_eq!(
            db.get(format!("before/{i:03}")).unwrap().unwrap().value,
            format!("v{i}").into_bytes()
        );
    }
    for i in 0..20 {
        assert_eq!(
            db.get(format!("during/{i:02}")).unwrap().unwrap().value,
            format!("d{i}").into_bytes()
        );
    }
    db.check().unwrap();
}

/// Value of thread `t`'s write `i`: long enough that the WAL fills and checkpoints by size.
fn value_of(t: usize, i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("t{t}/{i}/").into_bytes();
    v.resize(len, b'a' + ((t * 7 + i) % 26) as u8);
    v
}

fn key_of(t: usize, i: usize) -> String {
    format!("t{t}/{i:05}")
}

#[test]
fn writer_threads_racing_checkpoints_lose_nothing() {
    const THREADS: usize = 4;
    const BATCHES: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.etch");
    let db = Options::new()
        // A small WAL: checkpoints by size run in the background many times during the run.
        .wal_capacity(1 << 20)
        .checkpoint_interval(Duration::from_secs(3600))
        .open(&path)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) && n < 2_000 {
                db.checkpoint().unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let ops = (0..4)
                        .map(|j| WriteOp::put(key_of(t, b * 4 + j), value_of(t, b * 4 + j, 900)))
                        .collect();
                    db.batch(ops).unwrap();
                    // Read-your-writes: an acknowledged batch is visible at once.
                    let kv = db.get(key_of(t, b * 4 + 3)).unwrap().unwrap();
                    assert_eq!(kv.value, value_of(t, b * 4 + 3, 900));
                    if b.is_multiple_of(10) {
                        // Overwrite an earlier key, so checkpoints also free pages.
                        db.put(key_of(t, b), value_of(t, b, 300)).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let explicit = checkpointer.join().unwrap();
    assert!(explicit > 0);
    assert!(
        checkpoint_counter(&path) > 10,
        "only {} checkpoints ran",
        checkpoint_counter(&path)
    );
    let expected: BTreeMap<String, Vec<u8>> = (0..THREADS)
        .flat_map(|t| {
            (0..BATCHES * 4).map(move |i| {
                // Keys b for b = 0, 10, 20, ... were overwritten with 300 bytes.
                let len = if i < BATCHES && i.is_multiple_of(10) {
                    300
                } else {
                    900
                };
                (key_of(t, i), value_of(t, i, len))
            })
        })
        .collect();
    let verify = |db: &Store| {
        for (k, v) in &expected {
            let got = db.get(k).unwrap().unwrap_or_else(|| panic!("{k} lost"));
            assert_eq!(&got.value, v, "{k}");
        }
        db.check().unwrap();
    };
    verify(&db);
    db.close().unwrap();
    verify(&Store::open(&path).unwrap());
}

const SIM_DB: &str = "/sim/flight.etch";

fn sim_options(disk: &SimDisk) -> Options {
    Options::new()
        .storage(Arc::new(disk.clone()))
        .wal_capacity(1 << 20)
        .checkpoint_interval(Duration::from_secs(3600))
}

/// What the writer threads of one run had acknowledged, and the write each had in flight.
#[derive(Default)]
struct Flight {
    acked: Vec<Vec<usize>>,
    in_flight: Vec<Option<usize>>,
}

const SIM_THREADS: usize = 3;
const SIM_WRITES: usize = 40;

/// Sizes of the sim writes: many small, some on overflow pages, so the 1 MiB WAL checkpoints by
/// size as well as by the explicit checkpoints.
fn sim_len(t: usize, i: usize) -> usize {
    if (t + i).is_multiple_of(5) {
        9_000
    } else {
        200 + 40 * i
    }
}

/// Writer threads and a checkpointing thread until the disk dies or the work is done.
fn sim_run(disk: &SimDisk) -> Flight {
    let flight = Arc::new(Mutex::new(Flight {
        acked: vec![Vec::new(); SIM_THREADS],
        in_flight: vec![None; SIM_THREADS],
    }));
    let Ok(db) = sim_options(disk).open(SIM_DB) else {
        return Arc::try_unwrap(flight).ok().unwrap().into_inner().unwrap();
    };
    let done = Arc::new(AtomicUsize::new(0));
    let checkpointer = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..200 {
                if done.load(Ordering::Acquire) == SIM_THREADS || db.checkpoint().is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let writers: Vec<_> = (0..SIM_THREADS)
        .map(|t| {
            let (db, flight, done) = (db.clone(), flight.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..SIM_WRITES {
                    flight.lock().unwrap().in_flight[t] = Some(i);
                    if db.put(key_of(t, i), value_of(t, i, sim_len(t, i))).is_err() {
                        break;
                    }
                    let mut f = flight.lock().unwrap();
                    f.in_flight[t] = None;
                    f.acked[t].push(i);
                    drop(f);
                    // Let the checkpointer in between commits.
                    std::thread::sleep(Duration::from_micros(200));
                }
                done.fetch_add(1, Ordering::AcqRel);
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    checkpointer.join().unwrap();
    // The disk may be dead: closing then fails, and the image is what the power cut left.
    let _ = db.close();
    Arc::try_unwrap(flight).ok().unwrap().into_inner().unwrap()
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A store on gated storage with a 1 MiB WAL that neither time nor the size threshold
/// checkpoints on its own (0.95 of the WAL), the gate, and the guard that opens it on drop.
fn open_gated_small_wal(path: &Path) -> (Store, Arc<Gate>, OpenOnDrop) {
    open_gated(
        path,
        Options::new()
            .wal_capacity(1 << 20)
            .checkpoint_wal_fraction(0.95),
    )
}

/// `options` on gated storage, with no timed checkpoints; the guard opens the gate when the
/// test ends, before the store is dropped, so that a close never waits on a held gate.
fn open_gated(path: &Path, options: Options) -> (Store, Arc<Gate>, OpenOnDrop) {
    let storage = GatedStorage::default();
    let gate = storage.gate.clone();
    let db = options
        .storage(Arc::new(storage))
        .checkpoint_interval(Duration::from_secs(3600))
        .open(path)
        .unwrap();
    (db, gate.clone(), OpenOnDrop(gate))
}

/// The commit clocks (`Store::commit_profile`) name the phases a commit and a checkpoint went
/// through: a durable commit's apply, WAL append, seal and WAL sync; a checkpoint's start, its
/// unlocked I/O (at least as long as the gate held it, and reported as running meanwhile, while
/// commits made during it show no checkpoint work of their own), and its finish; file growth;
/// and a commit too large for the WAL, which checkpoints under the writer lock.
#[test]
fn commit_profile_names_the_phases_commits_and_checkpoints_spent_time_in() {
    let dir = tempfile::tempdir().unwrap();
    let (db, gate, _open_gate) = open_gated_small_wal(&dir.path().join("profiled.etch"));
    let zero = Duration::ZERO;
    let start = db.commit_profile();
    assert_eq!(start.checkpoints, 0);
    assert!(!start.checkpoint_io_running);
    // 2,000 keys in 40 durable batches: about 300 KiB of records, 1,500 pages of trees, so
    // the main file grows past its initial length.
    for b in 0..40 {
        let ops = (0..50)
            .map(|i| WriteOp::put(format!("k/{b:02}/{i:02}"), [b as u8; 100]))
            .collect();
        db.batch(ops).unwrap();
    }
    let loaded = db.commit_profile().since(&start);
    assert!(
        loaded.apply > zero && loaded.wal_append > zero,
        "{loaded:?}"
    );
    assert!(loaded.seal > zero && loaded.wal_sync > zero, "{loaded:?}");
    assert!(loaded.file_grows >= 1, "{loaded:?}");
    assert_eq!(loaded.checkpoints, 0, "{loaded:?}");
    assert_eq!(loaded.checkpoint_io, zero, "{loaded:?}");
    assert_eq!(loaded.wal_full_checkpoint, zero, "{loaded:?}");

    // A checkpoint held in its main-file sync: reported as running; commits go on without it.
    let checkpointer = gate.hold_checkpoint(&db);
    let before_puts = db.commit_profile();
    assert!(before_puts.checkpoint_io_running);
    assert_eq!(before_puts.since(&start).checkpoints, 1);
    for i in 0..5 {
        db.put(format!("during/{i}"), "d").unwrap();
    }
    let during = db.commit_profile().since(&before_puts);
    assert!(during.checkpoint_io_running, "{during:?}");
    assert_eq!(during.checkpoints, 0, "{during:?}");
    assert_eq!(during.checkpoint_io, zero, "{during:?}");
    assert_eq!(during.checkpoint_finish, zero, "{during:?}");
    assert!(during.wal_sync > zero, "{during:?}");
    std::thread::sleep(Duration::from_millis(50));
    gate.set_closed(false);
    checkpointer.join().unwrap().unwrap();
    let checkpointed = db.commit_profile().since(&before_puts);
    assert!(!checkpointed.checkpoint_io_running, "{checkpointed:?}");
    // The I/O began before the 50 ms sleep and ended after the gate opened.
    assert!(
        checkpointed.checkpoint_io >= Duration::from_millis(50),
        "{checkpointed:?}"
    );
    assert!(checkpointed.checkpoint_finish > zero, "{checkpointed:?}");
    assert!(db.commit_profile().since(&start).checkpoint_start > zero);

    // A record larger than a quarter of the 1 MiB WAL never goes to the WAL: the commit
    // checkpoints under the writer lock instead, and that time is its own phase.
    let before_big = db.commit_profile();
    db.put("big", vec![7u8; 300 << 10]).unwrap();
    let big = db.commit_profile().since(&before_big);
    assert!(big.wal_full_checkpoint > zero, "{big:?}");
    assert_eq!(
        big.checkpoints, 0,
        "a locked checkpoint is not a concurrent one: {big:?}"
    );
    assert_eq!(db.get("big").unwrap().unwrap().value.len(), 300 << 10);
}

/// A commit that finds the WAL full while a concurrent checkpoint's I/O is in flight waits for
/// that checkpoint, which frees the WAL before its start, and then appends its record: it runs
/// no checkpoint of its own under the writer lock (whose sync would also have to write every
/// page sealed since the first one started).
#[test]
fn a_commit_that_finds_the_wal_full_waits_for_the_checkpoint_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.etch");
    let (db, gate, _open_gate) = open_gated_small_wal(&path);
    let value = |i: usize| vec![b'a' + (i % 26) as u8; 1000];
    // About half the WAL before the checkpoint starts: what its finish frees.
    for i in 0..450 {
        db.put(format!("before/{i:03}"), value(i)).unwrap();
    }
    let counter_before = checkpoint_counter(&path);
    let before = db.commit_profile();
    let checkpointer = gate.hold_checkpoint(&db);
    // More than the other half: some commit finds the WAL full while the sync is held.
    const DURING: usize = 600;
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..DURING {
                db.put(format!("during/{i:03}"), value(i)).unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The writer stops making progress (a whole second without a commit) before it is done.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = done.load(Ordering::SeqCst);
        assert!(now < DURING, "no commit found the WAL full");
        assert!(Instant::now() < deadline, "the writer never stopped");
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if now > 300 && since.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    // Only the checkpoint's sync waits at the gate: the commit waits for that checkpoint.
    assert_eq!(gate.waiting.load(Ordering::SeqCst), 1);
    gate.set_closed(false);
    writer.join().unwrap();
    checkpointer.join().unwrap().unwrap();
    let after = db.commit_profile().since(&before);
    assert!(after.wal_full_drain > Duration::ZERO, "{after:?}");
    assert_eq!(after.wal_full_checkpoint, Duration::ZERO, "{after:?}");
    // One checkpoint in all: the held one; the full commit ran none of its own.
    assert_eq!(checkpoint_counter(&path), counter_before + 1);
    assert!(db.status().unwrap().wal_size > 0);
    db.close().unwrap();

    let db = Store::open(&path).unwrap();
    for i in 0..450 {
        assert_eq!(
            db.get(format!("before/{i:03}")).unwrap().unwrap().value,
            value(i)
        );
    }
    for i in 0..DURING {
        assert_eq!(
            db.get(format!("during/{i:03}")).unwrap().unwrap().value,
            value(i)
        );
    }
    db.check().unwrap();
}

/// Group commit's writeback requests are served while a checkpoint's main-file sync is held:
/// the thread that starts the writeback is not the one blocked in the checkpoint.
#[test]
fn writeback_is_started_while_a_checkpoint_syncs_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let (db, gate, _open_gate) = open_gated(&dir.path().join("writeback.etch"), Options::new());
    let checkpointer = gate.hold_checkpoint(&db);
    let before = gate.writebacks.load(Ordering::SeqCst);
    // 1,500 keys of 1 KiB in batches of 100: over 1 MiB of sealed pages, so group commit asks.
    for b in 0..15 {
        let ops = (0..100)
            .map(|i| WriteOp::put(format!("wb/{:04}", b * 100 + i), vec![7u8; 1000]))
            .collect();
        db.batch(ops).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.writebacks.load(Ordering::SeqCst) == before {
        assert!(
            Instant::now() < deadline,
            "no writeback was started while the checkpoint's sync was held"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        gate.waiting.load(Ordering::SeqCst),
        1,
        "the sync is still held"
    );
    gate.set_closed(false);
    checkpointer.join().unwrap().unwrap();
    assert_eq!(db.get("wb/1499").unwrap().unwrap().value, vec![7u8; 1000]);
}

/// The main file grows ahead of need (docs/design.md, "File growth"), and the writeback thread
/// brings each region it grew into into the page cache: commits smaller than the room kept ahead
/// never write into a region the file has just grown into; the prefaulted ranges follow one
/// another up the file, requests end where a growth set the file's length, the last at its end;
/// and each growth adds more than the sixteenth of the file (64 KiB at least) it keeps ahead.
#[test]
fn the_writeback_thread_prefaults_what_the_file_grows_into() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growth.etch");
    let (db, gate, _open_gate) = open_gated(&path, Options::new());
    // 4,000 keys of 1 KiB in batches of 10 (about 12 KiB of pages each, against 64 KiB kept
    // ahead): about 4 MiB of leaves, several growths.
    for b in 0..400 {
        let ops = (0..10)
            .map(|i| WriteOp::put(format!("grow/{:05}", b * 10 + i), vec![b as u8; 1000]))
            .collect();
        db.batch(ops).unwrap();
    }
    assert_eq!(
        gate.writes_into_own_growth.load(Ordering::SeqCst),
        0,
        "a commit wrote into the region its own growth added"
    );
    let lengths = gate.lengths.lock().unwrap().clone();
    assert!(lengths.len() >= 3, "the file grew only {lengths:?}");
    let end = *lengths.last().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.prefaults.lock().unwrap().last().map(|r| r.1) != Some(end) {
        assert!(
            Instant::now() < deadline,
            "the file's end {end} was never prefaulted: {:?}",
            gate.prefaults.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let prefaults = gate.prefaults.lock().unwrap().clone();
    for pair in prefaults.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "overlapping prefaults {prefaults:?}"
        );
    }
    // A prefault is cut into slices; the end of each request is a length the file was set to.
    let ends: Vec<u64> = prefaults
        .iter()
        .map(|r| r.1)
        .filter(|e| lengths.contains(e))
        .collect();
    assert!(
        ends.len() >= 2,
        "prefaults {prefaults:?}, lengths {lengths:?}"
    );
    for &(start, stop) in &prefaults {
        assert!(
            start < stop && stop <= end,
            "prefault {start}..{stop}, file {end}"
        );
    }
    // A growth adds more than the room it keeps ahead, a sixteenth of the old length.
    for pair in lengths[1..].windows(2) {
        let ahead = (pair[0] / 16).clamp(64 << 10, 64 << 20);
        assert!(pair[1] > pair[0] + ahead, "lengths {lengths:?}");
    }
    assert!(db.status().unwrap().size_in_use < end);
    assert_eq!(
        db.get("grow/03999").unwrap().unwrap().value,
        vec![143u8; 1000]
    );
    db.check().unwrap();
}

#[test]
fn power_cut_at_every_storage_op_during_checkpoints_with_commits_in_flight() {
    let root = tempfile::tempdir().unwrap();
    let full_disk = SimDisk::new(&fresh_dir(root.path(), "full"));
    let full = sim_run(&full_disk);
    assert!(
        full.acked.iter().all(|a| a.len() == SIM_WRITES),
        "the workload fails without a power cut"
    );
    // Checkpoints are dense in the run (each one's I/O phase is five storage operations), so
    // many power cuts land inside one while the writers' commits are in flight.
    let image = full_disk.crash_image(CrashPolicy::KeepUnsynced);
    let main = &image.files[Path::new(SIM_DB)];
    let at = |o: usize| u64::from_le_bytes(main[o..o + 8].try_into().unwrap());
    let checkpoints = at(24).max(at(4096 + 24));
    assert!(
        checkpoints >= 10,
        "only {checkpoints} checkpoints in the run"
    );
    // Thread scheduling changes the operation count from run to run a little: crash points go
    // a bit past the full run's count (a run that ends first simply sees no power cut).
    let ops = full_disk.ops();
    let points: Vec<u64> = (1..=ops + ops / 10).collect();
    let mut images = 0;
    let mut cut_mid_run = 0;
    for &k in &points {
        let disk = SimDisk::new(&fresh_dir(root.path(), "run"));
        disk.crash_at_op(k);
        let flight = sim_run(&disk);
        if disk.is_dead() && flight.acked.iter().any(|a| a.len() < SIM_WRITES) {
            cut_mid_run += 1;
        }
        for policy in [
            CrashPolicy::DropUnsynced,
            CrashPolicy::KeepUnsynced,
            CrashPolicy::Torn {
                seed: 0x5eed ^ k,
                sector: 512,
            },
            CrashPolicy::Torn {
                seed: 0xfeed ^ (k << 8),
                sector: 4096,
            },
        ] {
            let what = format!("power cut at op {k} of ~{ops}, {policy:?}");
            let image = disk.crash_image(policy);
            let after = SimDisk::from_image(&fresh_dir(root.path(), "verify"), &image).unwrap();
            let db = sim_options(&after)
                .open(SIM_DB)
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            for t in 0..SIM_THREADS {
                for i in 0..SIM_WRITES {
                    let got = db.get(key_of(t, i)).unwrap();
                    let acked = flight.acked[t].contains(&i);
                    match got {
                        Some(kv) => {
                            assert!(
                                acked || flight.in_flight[t] == Some(i),
                                "{what}: {} is present but was never acknowledged nor in flight",
                                key_of(t, i)
                            );
                            assert_eq!(kv.value, value_of(t, i, sim_len(t, i)), "{what}");
                        }
                        None => assert!(!acked, "{what}: acknowledged {} lost", key_of(t, i)),
                    }
                }
            }
            db.check()
                .unwrap_or_else(|e| panic!("{what}: check() after recovery: {e}"));
            // The recovered store takes writes and checkpoints again.
            db.put("after/cut", "1").unwrap();
            db.checkpoint().unwrap();
            db.check().unwrap();
            drop(db);
            images += 1;
        }
    }
    assert!(cut_mid_run > points.len() / 2);
    println!(
        "{} power cuts ({ops} operations and {checkpoints} checkpoints in the full run), {images} images verified",
        points.len()
    );
}
