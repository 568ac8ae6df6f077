//! Read-only opens (`Options::read_only`): a killed writer's WAL replayed into memory with the
//! file and WAL left byte-for-byte as they were, a file of mode 0444 in a read-only directory,
//! many readers at once, every write refused with `Error::ReadOnly`, and a storage seam asked
//! for nothing but read-only opens and shared locks.
//!
//! The killed writer is a real process: this test binary re-executed as `ro_child`, which does
//! nothing unless `ETCH_RO_CHILD` names a database path.

use crate::common::{self, keys};

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use etch_engine::sim::{CrashPolicy, SimDisk};
use etch_engine::storage::{FsStorage, Mapping, Storage, StorageFile};
use etch_engine::{
    Error, Options, PutOp, Range, RangeOptions, Store, Txn, TxnOp, WatchOptions, WriteOp,
};

const CHILD_ENV: &str = "ETCH_RO_CHILD";
/// "writer": run the script, report, and wait to be killed. "reader": open read-only, report
/// the revision and key count, wait for a line on stdin, close.
const MODE_ENV: &str = "ETCH_RO_CHILD_MODE";

/// Not a test of its own: the body of the child process.
#[test]
fn ro_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    match std::env::var(MODE_ENV).as_deref() {
        Ok("writer") => {
            let store = Store::open(&path).unwrap();
            let rev = write_script(&store);
            println!("\nacked {rev}");
            std::thread::sleep(Duration::from_secs(60));
            std::process::exit(1);
        }
        Ok("reader") => {
            let store = Options::new().read_only(true).open(&path).unwrap();
            let keys = store.range(Range::all()).unwrap().kvs.len();
            println!("\nreading {} {keys}", store.revision());
            let mut line = String::new();
            let _ = io::stdin().read_line(&mut line);
            store.close().unwrap();
            std::process::exit(0);
        }
        other => panic!("unknown child mode {other:?}"),
    }
}

/// A child process, killed (by pid) when dropped, also when the test fails.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child in `mode` on `path` and returns it with the words of its report line.
fn spawn_child(path: &Path, mode: &str) -> (ChildGuard, Vec<String>) {
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                common::test_name(module_path!(), "ro_child").as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, path)
            .env(MODE_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.0.wait().unwrap();
            panic!("{mode} child exited before reporting: {status}");
        }
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        if matches!(words.first().map(String::as_str), Some("acked" | "reading")) {
            return (child, words);
        }
    }
}

fn big(i: usize) -> Vec<u8> {
    (0..20_000).map(|j| (i * 31 + j) as u8).collect()
}

/// The writes of the killed writer: puts (some with overflow values), deletes, a lease with a
/// key, a compaction. Returns the revision of the last acknowledged write.
fn write_script(store: &Store) -> i64 {
    for i in 0..300usize {
        let value = if i % 50 == 7 {
            big(i)
        } else {
            format!("v{i}").into_bytes()
        };
        store.put(format!("k{i:04}"), value).unwrap();
    }
    for i in (0..300).step_by(17) {
        store.delete(format!("k{i:04}")).unwrap();
    }
    let lease = store.lease_grant(600, 77).unwrap();
    let rev = store
        .put_with(PutOp {
            key: b"leased".to_vec(),
            value: b"yes".to_vec(),
            lease: lease.id,
            ..Default::default()
        })
        .unwrap()
        .header_revision;
    store.compact(rev - 10).unwrap();
    rev
}

/// What `write_script` leaves: key -> value.
fn expected() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for i in 0..300usize {
        let value = if i % 50 == 7 {
            big(i)
        } else {
            format!("v{i}").into_bytes()
        };
        m.insert(format!("k{i:04}").into_bytes(), value);
    }
    for i in (0..300).step_by(17) {
        m.remove(format!("k{i:04}").as_bytes());
    }
    m.insert(b"leased".to_vec(), b"yes".to_vec());
    m
}

/// Bytes and modification time of every file in `dir`, by name.
fn dir_state(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap();
            (name, (bytes, e.metadata().unwrap().modified().unwrap()))
        })
        .collect()
}

/// Every call a store makes on its storage, by name.
#[derive(Default)]
struct CallLog(Mutex<Vec<String>>);

impl CallLog {
    fn push(&self, call: String) {
        self.0.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A storage that logs every call that opens, locks or changes something, then passes it on.
struct Recording {
    inner: Arc<dyn Storage>,
    log: Arc<CallLog>,
}

impl Recording {
    fn wrap(&self, file: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(RecordingFile {
            inner: file,
            log: self.log.clone(),
        })
    }
}

impl Storage for Recording {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.log
            .push(format!("open {} create={create}", path.display()));
        Ok(self.wrap(self.inner.open(path, create)?))
    }

    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.log.push("open_read_only".into());
        Ok(self.wrap(self.inner.open_read_only(path)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.log.push(format!("remove {}", path.display()));
        self.inner.remove(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.log.push(format!("sync_dir {}", path.display()));
        self.inner.sync_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.log.push(format!("rename {}", from.display()));
        self.inner.rename(from, to)
    }
}

struct RecordingFile {
    inner: Arc<dyn StorageFile>,
    log: Arc<CallLog>,
}

impl StorageFile for RecordingFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.log.push(format!("set_len {len}"));
        self.inner.set_len(len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.log.push(format!("write_all_at {offset}"));
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.log.push("sync_data".into());
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.log.push("sync_all".into());
        self.inner.sync_all()
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.log.push("try_lock".into());
        self.inner.try_lock()
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.log.push("try_lock_shared".into());
        self.inner.try_lock_shared()
    }

    fn unlock(&self) -> io::Result<()> {
        self.log.push("unlock".into());
        self.inner.unlock()
    }

    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        self.inner.identity()
    }

    fn map(&self, len: usize, random_access: bool) -> io::Result<Box<dyn Mapping>> {
        self.inner.map(len, random_access)
    }
}

/// Asserts a read-only store's calls were read-only opens, shared locks and unlocks only.
fn assert_only_reads(log: &CallLog) {
    let calls = log.calls();
    assert!(
        calls.iter().any(|c| c == "open_read_only"),
        "no read-only open recorded: {calls:?}"
    );
    for call in &calls {
        assert!(
            matches!(
                call.as_str(),
                "open_read_only" | "try_lock_shared" | "unlock"
            ),
            "a read-only store asked its storage for {call:?}; all calls: {calls:?}"
        );
    }
}

fn assert_read_only_err<T: std::fmt::Debug>(r: etch_engine::Result<T>, path: &Path, what: &str) {
    match r {
        Err(Error::ReadOnly { path: p }) => assert_eq!(p, path, "{what}"),
        other => panic!("{what}: expected Error::ReadOnly, got {other:?}"),
    }
}

/// Every kind of write fails with `Error::ReadOnly` and changes nothing.
fn assert_writes_refused(store: &Store, path: &Path) {
    let before = store.revision();
    assert_read_only_err(store.put("new", "x"), path, "put");
    assert_read_only_err(store.delete("k0001"), path, "delete");
    assert_read_only_err(
        store.delete_range(Range::all(), false),
        path,
        "delete_range",
    );
    assert_read_only_err(
        store.batch(vec![WriteOp::Put(PutOp {
            key: b"b".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        })]),
        path,
        "batch",
    );
    assert_read_only_err(
        store.txn(Txn::new().and_then(vec![TxnOp::put("t", "1")])),
        path,
        "txn",
    );
    assert_read_only_err(store.compact(before), path, "compact");
    assert_read_only_err(store.lease_grant(10, 0), path, "lease_grant");
    assert_read_only_err(store.lease_revoke(77), path, "lease_revoke");
    assert_read_only_err(store.lease_keep_alive(77), path, "lease_keep_alive");
    assert_read_only_err(store.expire_leases(), path, "expire_leases");
    assert_read_only_err(store.checkpoint(), path, "checkpoint");
    assert_read_only_err(store.defrag(), path, "defrag");
    assert_read_only_err(
        store.write(|t| {
            t.put("w", "1");
            Ok(())
        }),
        path,
        "write",
    );
    let msg = store.put("new", "x").unwrap_err().to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("read-only"),
        "{msg}"
    );
    assert_eq!(store.revision(), before);
    assert!(store.is_read_only());
}

#[test]
fn killed_writers_wal_is_replayed_into_memory_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let acked: i64 = {
        let (mut writer, words) = spawn_child(&path, "writer");
        let rev = words[1].parse().unwrap();
        writer.0.kill().unwrap(); // SIGKILL: no close, no checkpoint
        writer.0.wait().unwrap();
        rev
    };
    let wal = dir.path().join("db.etch-wal");
    assert!(wal.exists(), "the killed writer left no WAL");
    let before = dir_state(dir.path());

    let log = Arc::new(CallLog::default());
    let recording: Arc<dyn Storage> = Arc::new(Recording {
        inner: Arc::new(FsStorage),
        log: log.clone(),
    });
    let ro = || Options::new().read_only(true).storage(recording.clone());
    let store = ro().open(&path).unwrap();
    assert_eq!(store.revision(), acked);
    assert_eq!(keys(&store), expected());
    assert_eq!(store.lease_list().unwrap().len(), 1);
    let report = store.check().unwrap();
    let _ = report;
    // History from the WAL is there too: the compaction and the versions after it.
    assert!(matches!(
        store.range_with(
            &Range::all(),
            &RangeOptions {
                revision: acked - 11,
                ..Default::default()
            }
        ),
        Err(Error::Compacted { .. })
    ));
    let mut watcher = store
        .watch_with(
            Range::key("leased"),
            WatchOptions {
                start_revision: acked - 5,
                ..Default::default()
            },
        )
        .unwrap();
    let events = watcher
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(events.events.len(), 1);
    assert_eq!(store.status().unwrap().wal_size, 0);

    // Many readers at once: two more handles here and one in another process.
    let second = ro().open(&path).unwrap();
    let third = Options::new().read_only(true).open(&path).unwrap();
    let (mut reader, words) = spawn_child(&path, "reader");
    assert_eq!(words[1].parse::<i64>().unwrap(), acked);
    assert_eq!(words[2].parse::<usize>().unwrap(), expected().len());
    assert_eq!(keys(&second), expected());
    assert_eq!(third.revision(), acked);
    // ... and they keep a writer out, saying it is this process.
    match Store::open(&path).err() {
        Some(Error::Locked {
            in_this_process: true,
            ..
        }) => {}
        other => panic!("writer opened while readers hold the file: {other:?}"),
    }
    assert_writes_refused(&store, &path);
    drop(reader.0.stdin.take()); // EOF: the reader closes
    assert!(reader.0.wait().unwrap().success());
    drop(watcher);
    store.close().unwrap();
    second.close().unwrap();
    third.close().unwrap();

    assert_only_reads(&log);
    let after = dir_state(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files appeared or vanished"
    );
    for (name, (bytes, mtime)) in &before {
        assert!(after[name].0 == *bytes, "{name} changed");
        assert_eq!(after[name].1, *mtime, "{name}: mtime changed");
    }

    // The WAL is still there for a writer to recover, with the same result.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.revision(), acked);
    assert_eq!(keys(&store), expected());
    store.check().unwrap();
    store.close().unwrap();
}

/// On a simulated disk after a power cut, the main file holds only the first checkpoint: every
/// page the replay makes lies past the file's end, so they all live in the overlay. The disk
/// counts every mutating call: there must be none.
#[test]
fn replay_past_the_end_of_the_file_stays_in_memory_on_a_simulated_disk() {
    let dir = tempfile::tempdir().unwrap();
    let before_dir = dir.path().join("before");
    std::fs::create_dir_all(&before_dir).unwrap();
    let disk = SimDisk::new(&before_dir);
    let store = Options::new()
        .storage(Arc::new(disk.clone()))
        .open("db.etch")
        .unwrap();
    let acked = write_script(&store);
    let image = disk.crash_image(CrashPolicy::DropUnsynced);
    drop(store);
    let main_len = image.files[Path::new("db.etch")].len() as u64;

    let after_dir = dir.path().join("after");
    std::fs::create_dir_all(&after_dir).unwrap();
    let replay_disk = SimDisk::from_image(&after_dir, &image).unwrap();
    let log = Arc::new(CallLog::default());
    let store = Options::new()
        .read_only(true)
        .storage(Arc::new(Recording {
            inner: Arc::new(replay_disk.clone()),
            log: log.clone(),
        }))
        .open("db.etch")
        .unwrap();
    assert_eq!(store.revision(), acked);
    assert_eq!(keys(&store), expected());
    let status = store.status().unwrap();
    assert_eq!(status.file_size, main_len);
    assert!(
        status.size_in_use > main_len,
        "the replay should have grown the store past its file ({} <= {main_len})",
        status.size_in_use
    );
    store.check().unwrap();
    assert_writes_refused(&store, Path::new("db.etch"));
    assert_eq!(replay_disk.ops(), 0, "the read-only store mutated the disk");
    assert_only_reads(&log);
    // A snapshot of a read-only store works (it writes only the copy) and holds the replay.
    let (rev, _) = store.snapshot("copy.etch").unwrap();
    assert_eq!(rev, acked);
    let ops_for_copy = replay_disk.ops();
    store.close().unwrap();
    assert_eq!(
        replay_disk.ops(),
        ops_for_copy,
        "closing a read-only store wrote"
    );
    let after = replay_disk.crash_image(CrashPolicy::KeepUnsynced);
    for (p, bytes) in &image.files {
        assert!(after.files[p] == *bytes, "{} changed", p.display());
    }

    let restored = Options::new()
        .storage(Arc::new(replay_disk.clone()))
        .open("copy.etch")
        .unwrap();
    assert_eq!(keys(&restored), expected());
    restored.close().unwrap();
    // A writable open of the same image recovers the same state.
    let writable = Options::new()
        .storage(Arc::new(replay_disk))
        .open("db.etch")
        .unwrap();
    assert_eq!(writable.revision(), acked);
    assert_eq!(keys(&writable), expected());
    writable.close().unwrap();
}

/// Restores permissions on drop, so the temporary directory can be removed.
struct Writable(PathBuf);

impl Drop for Writable {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

fn running_as_root() -> bool {
    // A root process ignores permission bits; then only the "nothing changed" checks can show
    // that the store did not write.
    let probe = tempfile::tempdir().unwrap();
    let file = probe.path().join("probe");
    std::fs::write(&file, b"x").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::OpenOptions::new().write(true).open(&file).is_ok()
}

#[test]
fn mode_0444_file_in_a_read_only_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ro");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("db.etch");
    let store = Store::open(&path).unwrap();
    for i in 0..50 {
        store.put(format!("k{i}"), format!("v{i}")).unwrap();
    }
    store.close().unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
    let _restore = Writable(sub.clone());
    let before = dir_state(&sub);

    if !running_as_root() {
        // What issue 12 reported: a writable open of a read-only file fails, naming it.
        match Store::open(&path).err() {
            Some(Error::Open {
                path: p, source, ..
            }) => {
                assert_eq!(p, path);
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("writable open of a 0444 file: {other:?}"),
        }
    }
    let store = Options::new().read_only(true).open(&path).unwrap();
    assert_eq!(store.range(Range::all()).unwrap().kvs.len(), 50);
    assert_eq!(store.get("k7").unwrap().unwrap().value, b"v7");
    store.check().unwrap();
    assert_read_only_err(store.put("x", "y"), &path, "put");
    store.close().unwrap();
    assert_eq!(
        dir_state(&sub),
        before,
        "the read-only open changed the directory"
    );
    assert!(!sub.join("db.etch-wal").exists());
}

#[test]
fn missing_or_empty_file_is_not_created_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.etch");
    match Options::new().read_only(true).open(&path).err() {
        Some(e @ Error::Open { .. }) => {
            let Error::Open {
                path: p,
                action,
                source,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(p, &path);
            assert_eq!(*action, etch_engine::OpenAction::OpenFileReadOnly);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("never creates"), "{msg}");
        }
        other => panic!("read-only open of a missing file: {other:?}"),
    }
    assert!(!path.exists(), "a read-only open created the file");
    assert!(!dir.path().join("absent.etch-wal").exists());

    std::fs::write(&path, b"").unwrap();
    match Options::new().read_only(true).open(&path).err() {
        Some(Error::Open {
            path: p, source, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), io::ErrorKind::InvalidData);
        }
        other => panic!("read-only open of an empty file: {other:?}"),
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert!(!dir.path().join("absent.etch-wal").exists());
}

#[test]
fn read_only_store_sees_the_state_as_of_its_open_and_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = Store::open(&path).unwrap();
    store.put("a", "1").unwrap();
    store.put("big", vec![9u8; 100_000]).unwrap();
    store.close().unwrap();
    let before = dir_state(dir.path());

    let ro = Options::new().read_only(true).open(&path).unwrap();
    let clone = ro.clone();
    assert_eq!(ro.get("big").unwrap().unwrap().value.len(), 100_000);
    assert_eq!(ro.hash_kv(0).unwrap(), clone.hash_kv(0).unwrap());
    drop(ro);
    assert_eq!(clone.get("a").unwrap().unwrap().value, b"1");
    drop(clone); // the last handle: closes without writing
    assert_eq!(dir_state(dir.path()), before);

    // A writer after the readers are gone works as before.
    let store = Store::open(&path).unwrap();
    store.put("a", "2").unwrap();
    store.close().unwrap();
    let ro = Options::new().read_only(true).open(&path).unwrap();
    assert_eq!(ro.get("a").unwrap().unwrap().value, b"2");
    ro.close().unwrap();
}

/// `Store::restore` only reads its snapshot: it asks the storage for a read-only open of it.
#[test]
fn restore_opens_the_snapshot_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db.etch")).unwrap();
    store.put("a", "1").unwrap();
    let snap = dir.path().join("snap.etch");
    store.snapshot(&snap).unwrap();
    store.close().unwrap();
    let log = Arc::new(CallLog::default());
    let restored = Store::restore(
        &snap,
        dir.path().join("restored.etch"),
        Options::new().storage(Arc::new(Recording {
            inner: Arc::new(FsStorage),
            log: log.clone(),
        })),
    )
    .unwrap();
    assert_eq!(restored.get("a").unwrap().unwrap().value, b"1");
    restored.close().unwrap();
    let calls = log.calls();
    assert_eq!(calls.first().map(String::as_str), Some("open_read_only"));
    let snap_opens = format!("open {} ", snap.display());
    assert!(
        !calls.iter().any(|c| c.starts_with(&snap_opens)),
        "the snapshot was opened for writing: {calls:?}"
    );
}

#[test]
fn repair_cannot_be_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    Store::open(&path).unwrap().close().unwrap();
    match Options::new()
        .read_only(true)
        .repair_wal(true)
        .open(&path)
        .err()
    {
        Some(Error::InvalidOption(msg)) => assert!(msg.contains("read_only"), "{msg}"),
        other => panic!("read_only + repair_wal: {other:?}"),
    }
}
