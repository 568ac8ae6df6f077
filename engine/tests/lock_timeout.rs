//! Waiting for the file lock (`Options::lock_timeout`) and who holds it: writers exclude
//! everyone, read-only stores exclude writers only, and a refusal says whether the holder is
//! this process or another one.
//!
//! Cross-process cases re-execute this test binary as `holder_child`, which does nothing unless
//! `ETCH_HOLD_CHILD` names a database path: it opens the store (read-only if
//! `ETCH_HOLD_READ_ONLY` is set), prints a line, holds it for `ETCH_HOLD_MS` milliseconds and
//! closes it.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etch_engine::{Error, Options, Store};

const CHILD_ENV: &str = "ETCH_HOLD_CHILD";
const READ_ONLY_ENV: &str = "ETCH_HOLD_READ_ONLY";
const HOLD_MS_ENV: &str = "ETCH_HOLD_MS";

/// Not a test of its own: the body of the child process.
#[test]
fn holder_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let hold: u64 = std::env::var(HOLD_MS_ENV).unwrap().parse().unwrap();
    let read_only = std::env::var(READ_ONLY_ENV).is_ok();
    let store = Options::new().read_only(read_only).open(&path).unwrap();
    println!("\nholding");
    std::thread::sleep(Duration::from_millis(hold));
    store.close().unwrap();
    std::process::exit(0);
}

/// A child process, killed (by pid) when dropped, also when the test fails.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child holding `path` for `hold`; returns once it holds the lock. The hold is long
/// enough (2 s in the tests) that the refusals asserted right after it cannot race its end on a
/// loaded machine.
fn hold_in_child(path: &Path, read_only: bool, hold: Duration) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        common::test_name(module_path!(), "holder_child").as_str(),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, path)
    .env(HOLD_MS_ENV, hold.as_millis().to_string())
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    if read_only {
        cmd.env(READ_ONLY_ENV, "1");
    }
    let mut child = ChildGuard(cmd.spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.0.wait().unwrap();
            panic!("holder exited before holding the lock: {status}");
        }
        if line.trim() == "holding" {
            return child;
        }
    }
}

/// A store of one key at a fresh path.
fn new_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = Store::open(&path).unwrap();
    store.put("k", "v").unwrap();
    store.close().unwrap();
    (dir, path)
}

/// Asserts `Error::Locked` for `path` with the given holder.
fn assert_locked<T>(r: etch_engine::Result<T>, path: &Path, in_this_process: bool) {
    match r.err() {
        Some(e @ Error::Locked { .. }) => {
            let msg = e.to_string();
            let Error::Locked {
                path: p,
                in_this_process: here,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert_eq!(here, in_this_process, "{msg}");
            let says = if in_this_process {
                "already open in this process"
            } else {
                "by another process"
            };
            assert!(msg.contains(says), "{msg}");
        }
        other => panic!("expected Error::Locked, got {other:?}"),
    }
}

/// Drops `store` on another thread after `after`.
fn release_later(store: Store, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        store.close().unwrap();
    })
}

#[test]
fn zero_timeout_fails_at_once() {
    let (_dir, path) = new_store();
    let held = Store::open(&path).unwrap();
    let start = Instant::now();
    assert_locked(Store::open(&path), &path, true);
    assert_locked(
        Options::new().lock_timeout(Duration::ZERO).open(&path),
        &path,
        true,
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a zero timeout waited {:?}",
        start.elapsed()
    );
    held.close().unwrap();
}

#[test]
fn waiting_open_succeeds_once_the_holder_closes() {
    let (_dir, path) = new_store();
    let held = Store::open(&path).unwrap();
    held.put("k", "from holder").unwrap();
    let start = Instant::now();
    let releaser = release_later(held, Duration::from_millis(300));
    let store = Options::new()
        .lock_timeout(Duration::from_secs(20))
        .open(&path)
        .unwrap();
    let waited = start.elapsed();
    releaser.join().unwrap();
    assert!(
        waited >= Duration::from_millis(250),
        "waited only {waited:?}"
    );
    assert_eq!(store.get("k").unwrap().unwrap().value, b"from holder");
    store.close().unwrap();
}

#[test]
fn timeout_shorter_than_the_hold_fails_after_about_the_timeout() {
    let (_dir, path) = new_store();
    let held = Store::open(&path).unwrap();
    let start = Instant::now();
    assert_locked(
        Options::new()
            .lock_timeout(Duration::from_millis(300))
            .open(&path),
        &path,
        true,
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "waited {waited:?} for a 300 ms timeout"
    );
    // The holder was not disturbed.
    held.put("k", "still mine").unwrap();
    held.close().unwrap();
}

#[test]
fn another_process_is_named_and_waited_for() {
    let (_dir, path) = new_store();
    let child = hold_in_child(&path, false, Duration::from_millis(2000));
    assert_locked(Store::open(&path), &path, false);
    assert_locked(Options::new().read_only(true).open(&path), &path, false);
    let start = Instant::now();
    let store = Options::new()
        .lock_timeout(Duration::from_secs(20))
        .open(&path)
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    drop(child);
    assert_eq!(store.get("k").unwrap().unwrap().value, b"v");
    store.close().unwrap();
}

#[test]
fn readers_share_the_file_and_exclude_a_writer_in_this_process() {
    let (_dir, path) = new_store();
    let ro = || Options::new().read_only(true);
    let a = ro().open(&path).unwrap();
    let b = ro().open(&path).unwrap();
    assert_locked(Store::open(&path), &path, true);
    // A waiting writer gets in once the last reader has gone.
    let start = Instant::now();
    let ra = release_later(a, Duration::from_millis(200));
    let rb = release_later(b, Duration::from_millis(400));
    let w = Options::new()
        .lock_timeout(Duration::from_secs(20))
        .open(&path)
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(350));
    ra.join().unwrap();
    rb.join().unwrap();
    // And now the writer keeps readers out, or makes them wait.
    assert_locked(ro().open(&path), &path, true);
    w.put("k", "v2").unwrap();
    let releaser = release_later(w, Duration::from_millis(200));
    let r = ro()
        .lock_timeout(Duration::from_secs(20))
        .open(&path)
        .unwrap();
    releaser.join().unwrap();
    assert_eq!(r.get("k").unwrap().unwrap().value, b"v2");
    r.close().unwrap();
}

#[test]
fn readers_in_two_processes_share_and_keep_a_writer_out() {
    let (_dir, path) = new_store();
    let child = hold_in_child(&path, true, Duration::from_millis(2000));
    let here = Options::new().read_only(true).open(&path).unwrap();
    assert_eq!(here.get("k").unwrap().unwrap().value, b"v");
    assert_locked(Store::open(&path), &path, true);
    here.close().unwrap();
    assert_locked(Store::open(&path), &path, false);
    let w = Options::new()
        .lock_timeout(Duration::from_secs(20))
        .open(&path)
        .unwrap();
    drop(child);
    w.put("k", "after").unwrap();
    w.close().unwrap();
}
