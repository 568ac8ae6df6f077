//! The real etcdctl 3.4 (Debian's `etcd-client`) against an etch server, covering every command
//! class; where output is deterministic, the same script also runs against a real etcd 3.4
//! (Debian's `etcd-server`) and the outputs must match. Without the tools the tests print
//! "skipped" and pass, unless `ETCH_REQUIRE_TOOLS=1` (CI), where a missing tool fails.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tool_available, ChildGuard, TestServer};

/// What one etcdctl run printed.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn etcdctl(endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=20s")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::piped());
    cmd
}

/// Collects a pipe on a thread into a shared string.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// Runs etcdctl to completion (killed after 90 s), feeding `stdin`.
fn ctl_in(endpoint: &str, args: &[&str], stdin: &str) -> Out {
    let mut child = etcdctl(endpoint, args).spawn().expect("etcdctl starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let mut guard = ChildGuard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "etcdctl {args:?} hung");
        std::thread::sleep(Duration::from_millis(10));
    };
    guard.0 = None;
    // Let the reader threads drain the closed pipes.
    std::thread::sleep(Duration::from_millis(20));
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: stdout.lock().unwrap().clone(),
        stderr: stderr.lock().unwrap().clone(),
    };
    out
}

fn ctl(endpoint: &str, args: &[&str]) -> Out {
    ctl_in(endpoint, args, "")
}

/// Runs etcdctl and expects success.
fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = ctl(endpoint, args);
    assert_eq!(out.code, 0, "etcdctl {args:?} failed: {out:?}");
    out.stdout
}

/// A long-running etcdctl (watch, lock, elect) whose output is read while it runs.
struct Background {
    guard: ChildGuard,
    stdout: Arc<Mutex<String>>,
    stdin: Option<std::process::ChildStdin>,
}

impl Background {
    fn start(endpoint: &str, args: &[&str]) -> Background {
        let mut child = etcdctl(endpoint, args).spawn().expect("etcdctl starts");
        let stdin = child.stdin.take();
        let stdout = collect(child.stdout.take().unwrap());
        let _ = collect(child.stderr.take().unwrap());
        Background {
            guard: ChildGuard(Some(child)),
            stdout,
            stdin,
        }
    }

    /// Waits until the output contains `text`; returns the output.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.stdout.lock().unwrap().clone();
            if out.contains(text) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "never printed {text:?}; printed {out:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends SIGINT, as a user's Ctrl-C (etcdctl then releases its lock or session).
    fn interrupt(&self) {
        if let Some(child) = &self.guard.0 {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
        }
    }

    fn exited(&mut self) -> bool {
        self.guard
            .0
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }
}

/// Replaces what differs between two servers by nature (ids, term) with placeholders.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        for field in ["cluster_id", "member_id", "raft_term"] {
            let pat = format!("\"{field}\":");
            if let Some(start) = line.find(&pat) {
                let from = start + pat.len();
                let end = line[from..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(line.len(), |e| from + e);
                line.replace_range(from..end, "N");
            }
        }
        for field in ["\"ClusterID\" : ", "\"MemberID\" : ", "\"RaftTerm\" : "] {
            if let Some(start) = line.find(field) {
                line.replace_range(start + field.len().., "N");
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The deterministic part of the script: every put/get/del/txn/watch/compaction flag etcdctl
/// has, in an order whose revisions are the same on any server that follows etcd's rules.
fn deterministic_script(endpoint: &str) -> Vec<(String, i32, String, String)> {
    let steps: Vec<(Vec<&str>, &str)> = vec![
        (vec!["put", "foo", "bar"], ""),
        (vec!["put", "foo2", "bar2"], ""),
        (vec!["put", "foo3", "bar3"], ""),
        (vec!["put", "zoo", "z"], ""),
        (vec!["put", "foo", "bar-again", "--prev-kv"], ""),
        (vec!["get", "foo"], ""),
        (vec!["get", "foo", "--prefix"], ""),
        (vec!["get", "foo", "--from-key", "--keys-only"], ""),
        (vec!["get", "foo", "--rev=2"], ""),
        (
            vec![
                "get",
                "foo",
                "--prefix",
                "--limit=2",
                "--sort-by=KEY",
                "--order=DESCEND",
            ],
            "",
        ),
        (
            vec![
                "get",
                "foo",
                "--prefix",
                "--sort-by=VALUE",
                "--order=ASCEND",
                "--print-value-only",
            ],
            "",
        ),
        (
            vec![
                "get",
                "foo",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=DESCEND",
                "--keys-only",
            ],
            "",
        ),
        (
            vec!["get", "foo", "--prefix", "--limit=1", "-w", "fields"],
            "",
        ),
        (vec!["get", "foo", "-w", "json"], ""),
        (vec!["get", "foo", "foo3"], ""),
        (vec!["get", "nothing"], ""),
        (vec!["del", "foo3", "--prev-kv"], ""),
        (vec!["del", "foo", "--prefix"], ""),
        (vec!["del", "absent"], ""),
        (vec!["get", "", "--prefix"], ""),
        (
            vec!["txn", "-i"],
            "value(\"zoo\") = \"z\"\n\nput zoo z2\nget zoo\n\nput failed yes\n\n",
        ),
        (
            vec!["txn", "-i", "-w", "json"],
            "mod(\"zoo\") < \"3\"\n\nput never x\n\ndel zoo\n\n",
        ),
        (vec!["put", "w/a", "1"], ""),
        (vec!["put", "w/b", "2"], ""),
        (vec!["del", "w/a"], ""),
        (vec!["compaction", "5"], ""),
        (vec!["get", "zoo", "--rev=3"], ""),
        (vec!["get", "zoo", "--rev=99"], ""),
        (vec!["put", "", "empty-key"], ""),
        (vec!["alarm", "list"], ""),
    ];
    let mut results = Vec::new();
    for (args, stdin) in steps {
        let out = ctl_in(endpoint, &args, stdin);
        results.push((args.join(" "), out.code, out.stdout, out.stderr));
    }
    // A watch replaying history with prev_kv (output read for a fixed time, then stopped).
    let watch = Background::start(
        endpoint,
        &["watch", "w/", "--prefix", "--prev-kv", "--rev=11"],
    );
    let printed = watch.wait_for("w/a\n1\n");
    std::thread::sleep(Duration::from_millis(500));
    let printed = watch.output().len().max(printed.len());
    results.push((
        "watch w/ --prefix --prev-kv --rev=11".into(),
        0,
        watch.output()[..printed].to_string(),
        String::new(),
    ));
    results
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a real etcd 3.4 in `dir` on loopback; the guard kills it.
fn start_etcd(dir: &std::path::Path) -> (ChildGuard, String) {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.join("etcd-data"))
        .args(["--name", "default"])
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd starts");
    let guard = ChildGuard(Some(child));
    let endpoint = format!("127.0.0.1:{client}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctl(&endpoint, &["endpoint", "health"]).code != 0 {
        assert!(Instant::now() < deadline, "etcd did not become healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, endpoint)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn etcdctl_output_matches_real_etcd() {
    if !tool_available("etcdctl", "version") {
        return;
    }
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let etch = deterministic_script(&server.addr.to_string());
    rt.block_on(server.stop_and_check());

    for r in &etch {
        eprintln!("=== {} [{}]\n{}{}", r.0, r.1, r.2, r.3);
    }
    // Exit codes and the essential texts, on etch alone.
    let find = |cmd: &str| etch.iter().find(|r| r.0 == cmd).unwrap();
    assert_eq!(find("put foo bar").2, "OK\n");
    assert_eq!(find("get foo --rev=2").2, "foo\nbar\n");
    assert_eq!(
        find("get foo --prefix --limit=2 --sort-by=KEY --order=DESCEND").2,
        "foo3\nbar3\nfoo2\nbar2\n"
    );
    assert_eq!(find("del foo3 --prev-kv").2, "1\nfoo3\nbar3\n");
    assert!(
        find("txn -i").2.ends_with("SUCCESS\n\nOK\n\nzoo\nz2\n"),
        "{:?}",
        find("txn -i")
    );
    let compacted = find("get zoo --rev=3");
    assert_eq!(compacted.1, 1);
    assert!(
        compacted
            .3
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{compacted:?}"
    );
    let empty = find("put  empty-key");
    assert_ne!(empty.1, 0);
    assert!(find("watch w/ --prefix --prev-kv --rev=11")
        .2
        .ends_with("PUT\nw/a\n1\nPUT\nw/b\n2\nDELETE\nw/a\n1\nw/a\n\n"));

    // The same script against a real etcd 3.4, when it is installed: identical output.
    if !tool_available("etcd", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (guard, endpoint) = start_etcd(dir.path());
    let etcd = deterministic_script(&endpoint);
    drop(guard);
    for (mine, theirs) in etch.iter().zip(&etcd) {
        assert_eq!(mine.0, theirs.0);
        assert_eq!(
            mine.1, theirs.1,
            "exit code of `etcdctl {}`: etch {mine:?}, etcd {theirs:?}",
            mine.0
        );
        assert_eq!(
            normalize(&mine.2),
            normalize(&theirs.2),
            "stdout of `etcdctl {}`",
            mine.0
        );
        // Error texts must match too (the last stderr line; the lines before carry times).
        if mine.1 != 0 {
            assert_eq!(
                mine.3.lines().last(),
                theirs.3.lines().last(),
                "stderr of `etcdctl {}`",
                mine.0
            );
        }
    }
}

/// The lease id in "lease 694d77aa9e38260f granted with TTL(60s)".
fn lease_id(granted: &str) -> String {
    granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease id in {granted:?}"))
        .to_string()
}

#[test]
fn etcdctl_leases_watch_lock_elect_cluster_maintenance() {
    if !tool_available("etcdctl", "version") {
        return;
    }
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let ep = server.addr.to_string();
    let ep = ep.as_str();

    // Leases: grant, attach, keep-alive once, time-to-live with keys, list, revoke.
    let granted = ok(ep, &["lease", "grant", "60"]);
    assert!(granted.ends_with("granted with TTL(60s)\n"), "{granted}");
    let id = lease_id(&granted);
    assert_eq!(
        ok(ep, &["put", "lk", "v", &format!("--lease={id}")]),
        "OK\n"
    );
    assert_eq!(
        ok(ep, &["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(60)\n")
    );
    let ttl = ok(ep, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining("))
            && ttl.ends_with("attached keys([lk])\n"),
        "{ttl}"
    );
    assert_eq!(
        ok(ep, &["lease", "list"]),
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(
        ok(ep, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(ep, &["get", "lk"]), "");
    assert_eq!(
        ok(ep, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    let revoked = ctl(ep, &["lease", "revoke", &id]);
    assert_ne!(revoked.code, 0);
    assert!(
        revoked
            .stderr
            .contains("etcdserver: requested lease not found"),
        "{revoked:?}"
    );

    // Watch while puts run, and an interactive watch.
    let watch = Background::start(ep, &["watch", "live/", "--prefix"]);
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        ok(ep, &["put", &format!("live/{i}"), &format!("v{i}")]);
    }
    let seen = watch.wait_for("live/19\nv19\n");
    assert_eq!(seen.matches("PUT\n").count(), 20, "{seen}");
    let mut interactive = Background::start(ep, &["watch", "-i"]);
    let stdin = interactive.stdin.as_mut().unwrap();
    stdin.write_all(b"watch inter\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ok(ep, &["put", "inter", "1"]);
    interactive.wait_for("PUT\ninter\n1\n");
    drop((watch, interactive));

    // Lock: a holder, a waiter that gets it once the holder goes, and a locked command.
    let holder = Background::start(ep, &["lock", "mylock"]);
    let key = holder.wait_for("mylock/");
    assert!(key.starts_with("mylock/"), "{key}");
    let mut waiter = Background::start(ep, &["lock", "mylock", "echo", "got-it"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.output().contains("got-it"), "the waiter must wait");
    // Ctrl-C on the holder: etcdctl unlocks, and the waiter gets the lock.
    holder.interrupt();
    waiter.wait_for("got-it");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waiter.exited() {
        assert!(Instant::now() < deadline, "lock command did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Election: a leader, an observer that sees it.
    let leader = Background::start(ep, &["elect", "myelection", "p1"]);
    leader.wait_for("p1");
    let observer = Background::start(ep, &["elect", "-l", "myelection"]);
    observer.wait_for("p1");
    drop((leader, observer));

    // Cluster and maintenance.
    let members = ok(ep, &["member", "list"]);
    assert!(
        members.contains(", started, default, http://localhost:2380, "),
        "{members}"
    );
    let health = ctl(ep, &["endpoint", "health"]);
    assert_eq!(health.code, 0, "{health:?}");
    assert!(
        health.stderr.contains("is healthy") || health.stdout.contains("is healthy"),
        "{health:?}"
    );
    let status = ok(ep, &["endpoint", "status", "-w", "table"]);
    assert!(
        status.contains("3.5.0") && status.contains("true"),
        "{status}"
    );
    let json = ok(ep, &["endpoint", "status", "-w", "json"]);
    assert!(json.contains("\"leader\":"), "{json}");
    assert!(ok(ep, &["defrag"]).starts_with("Finished defragmenting etcd member["));
    assert_eq!(ok(ep, &["alarm", "list"]), "");
    let snap = server.dir.path().join("snap.db");
    let saved = ok(ep, &["snapshot", "save", snap.to_str().unwrap()]);
    assert_eq!(saved, format!("Snapshot saved at {}\n", snap.display()));
    // The saved file restores with etch (the engine's restore, as `etch snapshot restore`).
    let restored = server.dir.path().join("restored.etch");
    let store = etch_engine::Store::restore(&snap, &restored, etch_engine::Options::new()).unwrap();
    assert_eq!(
        store
            .range(etch_engine::Range::prefix("live/"))
            .unwrap()
            .count,
        20
    );
    store.close().unwrap();
    std::fs::remove_file(&snap).unwrap();
    std::fs::remove_file(&restored).unwrap();
    rt.block_on(server.stop_and_check());
}

#[test]
fn etcdctl_check_perf_small_load_runs_clean() {
    if !tool_available("etcdctl", "version") {
        return;
    }
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let out = ctl(&server.addr.to_string(), &["check", "perf", "--load=s"]);
    eprintln!(
        "{}",
        out.stdout
            .lines()
            .filter(|l| l.contains("PASS") || l.contains("FAIL"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every request must succeed; whether the latency and throughput bars pass depends on the
    // machine (CI shares two cores among several jobs), so a FAIL verdict is printed, not fatal.
    assert!(out.stdout.contains("Throughput is"), "{out:?}");
    assert!(!out.stderr.contains("Error"), "{out:?}");
    assert!(out.code == 0 || out.stdout.contains("FAIL"), "{out:?}");
    rt.block_on(server.stop_and_check());
}
