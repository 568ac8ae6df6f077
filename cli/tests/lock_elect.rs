//! lock and elect with real child processes, and the file lock between etch processes.

use crate::common;

use common::{wait_for_file, Env, Running};

#[test]
fn lock_runs_the_command_while_holding_the_lock() {
    let e = Env::new();
    let out = e.path("out");
    let script = format!(
        "echo \"$ETCD_LOCK_KEY $ETCD_LOCK_REV\" > '{}'",
        out.display()
    );
    e.ok(&["lock", "jobs", "--", "sh", "-c", &script]);
    let line = std::fs::read_to_string(&out).unwrap();
    let (key, rev) = line.trim_end().split_once(' ').unwrap();
    assert!(key.starts_with("jobs/"), "{line}");
    assert!(rev.parse::<i64>().unwrap() > 0, "{line}");
    // Released afterwards: no lock key, no lease.
    assert_eq!(e.ok(&["get", "jobs/", "--prefix", "--count-only"]), "0\n");
    assert_eq!(e.ok(&["lease", "list"]), "found 0 leases\n");
}

#[test]
fn lock_passes_on_the_commands_exit_status() {
    let e = Env::new();
    let r = e.run(&["lock", "jobs", "--", "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7);
    assert_eq!(e.ok(&["get", "jobs/", "--prefix", "--count-only"]), "0\n");
    e.fails(&["lock", "jobs", "--", "/nonexistent/program"], 1);
}

#[test]
fn lock_holds_until_interrupted_and_other_processes_see_the_file_locked() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    let l = Running::spawn(e.cmd(&["lock", "jobs"]));
    let key = l.line(10);
    assert!(key.starts_with("jobs/"), "{key}");
    assert_eq!(l.line(10), "");
    // The holder has the file: another etch process is refused with exit 1.
    let err = e.fails(&["get", "k"], 1);
    assert!(err.contains("locked"), "{err}");
    l.signal("INT");
    assert_eq!(l.wait(10), Some(0));
    assert_eq!(e.ok(&["get", "jobs/", "--prefix", "--count-only"]), "0\n");
    assert_eq!(e.ok(&["get", "k", "--print-value-only"]), "v\n");
}

#[test]
fn a_killed_holders_lock_passes_on_when_its_lease_expires() {
    let e = Env::new();
    let l = Running::spawn(e.cmd(&["lock", "jobs", "--ttl", "1"]));
    let stale = l.line(10);
    l.signal("KILL");
    assert_eq!(l.wait(10), None);
    // The stale key is still there; the next locker waits for its lease (1 s) to run out.
    assert_eq!(
        e.ok(&["get", &stale, "--keys-only"]),
        format!("{stale}\n\n")
    );
    let out = e.path("out");
    let script = format!("echo \"$ETCD_LOCK_KEY\" > '{}'", out.display());
    let started = std::time::Instant::now();
    e.ok(&["lock", "jobs", "--", "sh", "-c", &script]);
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    let key = wait_for_file(&out, 1);
    assert_ne!(key.trim_end(), stale);
    assert_eq!(e.ok(&["get", "jobs/", "--prefix", "--count-only"]), "0\n");
}

#[test]
fn elect_campaigns_prints_the_leader_and_resigns_on_interrupt() {
    let e = Env::new();
    let c = Running::spawn(e.cmd(&["elect", "sched", "node-1"]));
    let key = c.line(10);
    assert!(key.starts_with("sched/"), "{key}");
    assert_eq!(c.line(10), "node-1");
    c.signal("TERM");
    assert_eq!(c.wait(10), Some(0));
    assert_eq!(e.ok(&["get", "sched/", "--prefix", "--count-only"]), "0\n");
    e.fails(&["elect", "sched"], 128);
}

#[test]
fn elect_listen_shows_the_leader_and_its_change() {
    let e = Env::new();
    // A candidate killed while leading leaves its key until its lease expires.
    let c = Running::spawn(e.cmd(&["elect", "sched", "old", "--ttl", "1"]));
    let old_key = c.line(10);
    c.signal("KILL");
    c.wait(10);
    let l = Running::spawn(e.cmd(&["elect", "sched", "--listen"]));
    assert_eq!(l.line(10), old_key);
    assert_eq!(l.line(10), "old");
    // Its lease expires in the listener's process; no leader is printed after that, so stop.
    std::thread::sleep(std::time::Duration::from_millis(1800));
    l.signal("INT");
    assert_eq!(l.wait(10), Some(0));
    assert_eq!(e.ok(&["get", "sched/", "--prefix", "--count-only"]), "0\n");
    // A new campaign now wins at once.
    let c = Running::spawn(e.cmd(&["elect", "sched", "new"]));
    c.line(10);
    assert_eq!(c.line(10), "new");
    c.signal("INT");
    assert_eq!(c.wait(10), Some(0));
}

#[test]
fn interrupting_a_wait_exits_5_and_leaves_the_line() {
    let e = Env::new();
    // Stale holders with a long lease: the next contenders have to wait.
    for args in [
        &["lock", "jobs", "--ttl", "60"][..],
        &["elect", "sched", "old", "--ttl", "60"],
    ] {
        let h = Running::spawn(e.cmd(args));
        h.line(10);
        h.signal("KILL");
        h.wait(10);
    }
    let w = Running::spawn(e.cmd(&["lock", "jobs"]));
    std::thread::sleep(std::time::Duration::from_millis(600));
    w.signal("INT");
    assert_eq!(w.wait(10), Some(5));
    assert_eq!(e.ok(&["get", "jobs/", "--prefix", "--count-only"]), "1\n");
    let c = Running::spawn(e.cmd(&["elect", "sched", "new"]));
    std::thread::sleep(std::time::Duration::from_millis(600));
    c.signal("INT");
    assert_eq!(c.wait(10), Some(5));
}
