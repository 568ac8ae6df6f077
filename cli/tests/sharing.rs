//! Several `etch` processes on one file, and a damaged WAL: commands wait for the file lock
//! (`--lock-timeout`), read-only commands share the file, and a WAL damaged before
//! acknowledged records makes every command refuse until `check --repair`.

use crate::common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;

/// Kills the children on drop, also when an assertion fails.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `n` copies of `etch <args>` at once and returns their exit codes.
fn parallel(e: &Env, n: usize, args: impl Fn(usize) -> Vec<String>) -> Vec<i32> {
    let mut kids = Children(Vec::new());
    for i in 0..n {
        let a = args(i);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kids.0.push(
            e.cmd(&a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut codes = Vec::new();
    for c in &mut kids.0 {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                codes.push(status.code().unwrap_or(-1));
                break;
            }
            assert!(Instant::now() < deadline, "etch did not finish in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    codes
}

#[test]
fn parallel_puts_and_gets_wait_for_the_lock() {
    let e = Env::new();
    e.ok(&["put", "seed", "0"]);
    let codes = parallel(&e, 40, |i| vec!["put".into(), format!("k{i}"), "v".into()]);
    assert!(codes.iter().all(|&c| c == 0), "puts: {codes:?}");
    let codes = parallel(&e, 40, |i| vec!["get".into(), format!("k{i}")]);
    assert!(codes.iter().all(|&c| c == 0), "gets: {codes:?}");
    assert_eq!(
        e.ok(&["get", "k", "--prefix", "--count-only", "-w", "fields"])
            .lines()
            .find(|l| l.starts_with("\"Count\""))
            .unwrap(),
        "\"Count\" : 40"
    );
}

#[test]
fn a_held_file_fails_at_once_with_lock_timeout_zero_and_waits_otherwise() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    // `lock` holds the file for writing while its command runs.
    let mut holder = Children(vec![e
        .cmd(&["lock", "L", "--", "sleep", "1.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()]);
    // Wait until the holder has the file: a get that may not wait then fails at once.
    let start = Instant::now();
    loop {
        let r = e.run(&["--lock-timeout", "0", "get", "k"]);
        if r.code == 1 {
            assert!(r.stderr.contains("database is locked"), "{}", r.stderr);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the holder never took the file"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // With a timeout longer than the hold, the same command waits and succeeds.
    let r = e.run(&["--lock-timeout", "20s", "get", "k", "--print-value-only"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "v\n"), "{}", r.stderr);
    holder.0[0].wait().unwrap();
    holder.0.clear();
}

#[test]
fn a_damaged_wal_is_refused_until_check_repair() {
    let e = Env::new();
    // `lock` grants a lease and puts the lock key (two acknowledged commits), then its command
    // kills it: the WAL keeps both records, unreplayed.
    let status = e
        .cmd(&["lock", "L", "--", "sh", "-c", "kill -9 $PPID"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    let wal = e.path("test.etch-wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    // The first frame starts at 4096 with a 32-byte header; flip a byte of its payload.
    bytes[4096 + 34] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();
    let main_before = std::fs::read(&e.db).unwrap();

    for args in [
        &["status"][..],
        &["get", "x"],
        &["put", "x", "y"],
        &["check"],
    ] {
        let r = e.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("WAL is damaged at offset 4096")
                && r.stderr.contains("1 valid records")
                && r.stderr.contains("etch check --repair"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(
            std::fs::read(&wal).unwrap(),
            bytes,
            "{args:?} changed the WAL"
        );
        assert_eq!(std::fs::read(&e.db).unwrap(), main_before, "{args:?}");
    }

    let r = e.run(&["check", "--repair"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("dropped 1 record(s)") && r.stderr.contains("test.etch-wal.damaged"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(e.path("test.etch-wal.damaged")).unwrap(),
        bytes
    );
    // Recovered up to the damage, which was the first record: the lock key's put (revision 2)
    // is gone, so the next put is at revision 2 again, and the store works.
    e.ok(&["put", "after", "repair"]);
    let got = e.ok(&["get", "after", "-w", "fields"]);
    assert!(got.contains("\"ModRevision\" : 2"), "{got}");
    e.ok(&["check"]);
}
