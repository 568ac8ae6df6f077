//! The file lock: one writer per file, in this process and across processes.
//!
//! Cross-process cases re-execute this test binary as a child running `lock_child`, which does
//! nothing unless `ETCH_LOCK_CHILD` names a database path. The child reports what `Store::open`
//! returned through its exit code.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use etch_engine::{Error, Store};

const CHILD_ENV: &str = "ETCH_LOCK_CHILD";
/// If set in the child: after opening, print a line and hold the store open until killed.
const HOLD_ENV: &str = "ETCH_LOCK_HOLD";

const EXIT_LOCKED: i32 = 42;
const EXIT_OPENED: i32 = 43;
const EXIT_OTHER_ERROR: i32 = 44;

/// Not a test of its own: the body of the child process.
#[test]
fn lock_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    match Store::open(&path) {
        Err(Error::Locked { path: p, .. }) => {
            assert_eq!(p, Path::new(&path));
            std::process::exit(EXIT_LOCKED);
        }
        Ok(store) => {
            if std::env::var(HOLD_ENV).is_ok() {
                let rev = store.put("held-by-child", "yes").unwrap().header_revision;
                println!("\nholding {rev}");
                std::thread::sleep(Duration::from_secs(60));
                std::process::exit(EXIT_OTHER_ERROR);
            }
            store.put("written-by-child", "yes").unwrap();
            store.close().unwrap();
            std::process::exit(EXIT_OPENED);
        }
        Err(e) => {
            eprintln!("lock child: open failed: {e:?}");
            std::process::exit(EXIT_OTHER_ERROR);
        }
    }
}

fn child(path: &Path, hold: bool) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        common::test_name(module_path!(), "lock_child").as_str(),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, path)
    .stdin(Stdio::null());
    if hold {
        cmd.env(HOLD_ENV, "1").stdout(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null());
    }
    cmd
}

fn child_exit_code(path: &Path) -> i32 {
    let status = child(path, false).status().unwrap();
    status
        .code()
        .unwrap_or_else(|| panic!("child died: {status}"))
}

fn assert_locked<T>(r: etch_engine::Result<T>, path: &Path) {
    match r {
        Err(Error::Locked { path: p, .. }) => assert_eq!(p, path),
        Err(e) => panic!("expected Error::Locked, got {e:?}"),
        Ok(_) => panic!("expected Error::Locked, got Ok: two handles on one file"),
    }
}

#[test]
fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let first = Store::open(&path).unwrap();
    first.put("a", "1").unwrap();
    assert_locked(Store::open(&path), &path);
    // Another spelling of the same path is the same file.
    let other = dir.path().join(".").join("db.etch");
    assert_locked(Store::open(&other), &other);
    // The refused open disturbed nothing.
    assert_eq!(first.get("a").unwrap().unwrap().value, b"1");
    first.put("b", "2").unwrap();
    first.check().unwrap();
    // A clone is the same handle, not a second opener; closing it closes the store.
    let clone = first.clone();
    clone.close().unwrap();
    assert!(matches!(first.get("a"), Err(Error::Closed)));
    assert!(matches!(first.put("c", "3"), Err(Error::Closed)));

    let second = Store::open(&path).expect("open after close");
    assert_eq!(second.get("a").unwrap().unwrap().value, b"1");
    assert_eq!(second.get("b").unwrap().unwrap().value, b"2");
    second.check().unwrap();
    // The closed clone going away must not touch the store opened since.
    drop(first);
    second.put("c", "3").unwrap();
    second.check().unwrap();
    second.close().unwrap();
    let third = Store::open(&path).unwrap();
    assert_eq!(third.range(etch_engine::Range::all()).unwrap().kvs.len(), 3);
    third.close().unwrap();
}

#[test]
fn other_process_gets_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = Store::open(&path).unwrap();
    store.put("parent", "1").unwrap();
    assert_eq!(
        child_exit_code(&path),
        EXIT_LOCKED,
        "child opened a locked file"
    );
    // Still ours and intact.
    store.put("parent", "2").unwrap();
    store.check().unwrap();
    store.close().unwrap();

    assert_eq!(
        child_exit_code(&path),
        EXIT_OPENED,
        "child could not open after close"
    );
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get("parent").unwrap().unwrap().value, b"2");
    assert_eq!(
        store.get("written-by-child").unwrap().unwrap().value,
        b"yes"
    );
    store.check().unwrap();
    store.close().unwrap();
}

#[test]
fn lock_of_a_killed_process_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let mut holder = child(&path, true).spawn().unwrap();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    let rev = loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = holder.wait().unwrap();
            panic!("holder exited before holding the lock: {status}");
        }
        if let Some(rev) = line.trim().strip_prefix("holding ") {
            break rev.parse::<i64>().unwrap();
        }
    };
    assert_locked(Store::open(&path), &path);
    assert_eq!(child_exit_code(&path), EXIT_LOCKED);
    holder.kill().unwrap(); // SIGKILL: no close, no checkpoint
    holder.wait().unwrap();
    // The kernel drops the lock with the process; the acked write is recovered from the WAL.
    let store = Store::open(&path).expect("open after the holder was killed");
    assert_eq!(store.revision(), rev);
    assert_eq!(store.get("held-by-child").unwrap().unwrap().value, b"yes");
    store.check().unwrap();
    store.close().unwrap();
}

/// Regression: dropping the last `Store` handle must release the lock before `drop` returns.
/// At commit 5eca7d6 this failed every time: the background thread held a strong reference
/// while it slept for its tick (up to 100 ms), so the close that `Drop` ran (and the unlock)
/// happened later on that thread, and an immediate reopen got `Error::Locked`.
#[test]
fn reopen_right_after_drop_is_not_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = Store::open(&path).unwrap();
    store.put("k", "v").unwrap();
    drop(store);
    match Store::open(&path) {
        Ok(store) => {
            assert_eq!(store.get("k").unwrap().unwrap().value, b"v");
            store.check().unwrap();
            store.close().unwrap();
        }
        Err(e) => panic!("reopen right after dropping the only handle: {e:?}"),
    }
}

#[test]
fn dropped_store_is_eventually_closed_and_unlocked() {
    // Whatever the timing of the unlock, a dropped store is closed: the lock goes away and the
    // data is there (this passes even while the test above fails).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = Store::open(&path).unwrap();
    store.put("k", "v").unwrap();
    drop(store);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let store = loop {
        match Store::open(&path) {
            Ok(s) => break s,
            Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("reopen after drop: {e:?}"),
        }
    };
    assert_eq!(store.get("k").unwrap().unwrap().value, b"v");
    store.check().unwrap();
    store.close().unwrap();
}
