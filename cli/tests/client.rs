//! Client mode: the built `etch` with `--endpoints` against `etch serve` on loopback, for every
//! command class, plus an unreachable endpoint, several endpoints, a server that goes away and
//! the endpoint environment variables (TLS: client_tls.rs). Every server is stopped by its pid when its guard drops (also when a
//! test fails). Output compared with etcdctl's is in etcdctl_parity (client mode).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::serve::{free_port, Server};
use common::{Env, Run, Running};
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Reads lines from a running command's stdout into a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(15))
        .expect("no output line in time")
}

#[test]
fn kv_and_txn_against_a_server() {
    let mut server = Server::start();
    let c = server.client();
    assert_eq!(c.ok(&["put", "a/1", "one"]), "OK\n");
    assert_eq!(c.ok(&["put", "a/2", "two"]), "OK\n");
    assert_eq!(c.ok(&["get", "a/", "--prefix"]), "a/1\none\na/2\ntwo\n");
    let got = json(&c.ok(&["get", "a/1", "-w", "json"]));
    // A server's header: cluster, member, revision and term, as etcdctl prints them.
    let header = &got["header"];
    assert!(header["cluster_id"].as_u64().unwrap() > 0, "{got}");
    assert!(header["member_id"].as_u64().unwrap() > 0, "{got}");
    assert_eq!(header["revision"], 3);
    assert_eq!(header["raft_term"], 1);
    assert_eq!(got["kvs"][0]["value"], "b25l");
    let fields = c.ok(&["get", "a/1", "-w", "fields"]);
    assert!(fields.starts_with("\"ClusterID\" : "), "{fields}");
    assert!(
        fields.contains("\"Revision\" : 3\n\"RaftTerm\" : 1\n"),
        "{fields}"
    );
    // The value from stdin.
    let r = c.run_with_stdin(&["put", "s"], "from stdin");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(c.ok(&["get", "s", "--print-value-only"]), "from stdin\n");
    assert_eq!(
        c.ok(&[
            "get",
            "a/",
            "--prefix",
            "--count-only",
            "--consistency",
            "s"
        ]),
        "2\n"
    );
    assert_eq!(c.ok(&["del", "a/1", "--prev-kv"]), "1\na/1\none\n");
    let txn = "value(\"a/2\") = \"two\"\n\nput t yes\nget a/2\n\nput t no\n\n";
    let r = c.run_with_stdin(&["txn"], txn);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "SUCCESS\n\nOK\n\na/2\ntwo\n");
    // Errors from the server: etcd's texts, exit 1.
    let err = c.fails(&["get", ""], 1);
    assert_eq!(err, "Error: etcdserver: key is not provided\n");
    assert_eq!(c.ok(&["compaction", "5"]), "compacted revision 5\n");
    let err = c.fails(&["get", "a/2", "--rev", "2"], 1);
    assert_eq!(
        err,
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    let err = c.fails(&["put", "k", "v", "--lease", "1234"], 1);
    assert_eq!(err, "Error: etcdserver: requested lease not found\n");
    // Argument errors are caught before anything is sent, as on a file.
    c.fails(&["get", "a", "--prefix", "--from-key"], 128);
    // What the client wrote is in the server's file.
    let db = server.stop();
    let store = etch::Store::open(&db).unwrap();
    assert_eq!(store.get("t").unwrap().unwrap().value, b"yes");
    store.check().unwrap();
    store.close().unwrap();
}

#[test]
fn watch_follows_live_changes_and_reads_interactive_commands() {
    let server = Server::start();
    let c = server.client();
    c.ok(&["put", "w/0", "before"]);
    // Another process's writes arrive while the watch runs (a file's watch cannot see them).
    let watch = Running::spawn(c.cmd(&["watch", "w/", "--prefix", "--prev-kv"]));
    // The watch is registered once a write made after it starts shows up; retry until then.
    let mut seen = Vec::new();
    for i in 0..50 {
        c.ok(&["put", "w/0", &format!("v{i}")]);
        if let Ok(line) = watch.lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
            break;
        }
    }
    assert_eq!(seen, ["PUT"], "the watch printed nothing");
    // Then every event in order: PUT, the previous key-value, the key-value; until a delete.
    c.ok(&["del", "w/0"]);
    let mut lines = vec!["PUT".to_string()];
    while lines.last().map(String::as_str) != Some("DELETE") {
        lines.push(watch.line(10));
    }
    lines.push(watch.line(10));
    let (puts, delete) = lines.split_at(lines.len() - 2);
    assert_eq!(delete, ["DELETE", "w/0"], "{lines:?}");
    assert_eq!(puts.len() % 5, 0, "{lines:?}");
    for event in puts.chunks(5) {
        assert_eq!(event[0], "PUT", "{lines:?}");
        assert_eq!((event[1].as_str(), event[3].as_str()), ("w/0", "w/0"));
        assert!(event[4].starts_with('v'), "{lines:?}");
    }
    watch.signal("INT");
    assert_eq!(watch.wait(10), Some(0));

    // Replay from a revision, in JSON: the response's header is the server's.
    let replay = Running::spawn(c.cmd(&["watch", "w/0", "--rev", "1", "-w", "json"]));
    let first = json(&replay.line(10));
    assert_eq!(first["Events"][0]["kv"]["value"], "YmVmb3Jl");
    assert!(first["Header"]["member_id"].as_u64().unwrap() > 0);
    replay.signal("TERM");
    assert_eq!(replay.wait(10), Some(0));

    // `watch -i`: watches added from stdin; bad lines are reported and skipped; the end of
    // input ends the command with etcdctl's error (exit 3).
    let mut interactive = c
        .cmd(&["watch", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(interactive.id());
    let rx = lines_of(&mut interactive);
    let mut stdin = interactive.stdin.take().unwrap();
    writeln!(stdin, "bogus").unwrap();
    writeln!(stdin, "watch i1 --rev 1").unwrap();
    stdin.flush().unwrap();
    c.ok(&["put", "i1", "x"]);
    assert_eq!(next(&rx), "PUT");
    assert_eq!(next(&rx), "i1");
    assert_eq!(next(&rx), "x");
    drop(stdin);
    let out = interactive.wait_with_output().unwrap();
    drop(guard);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Invalid command bogus (only support watch)"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("Error: Error reading watch request line: EOF\n"),
        "{stderr}"
    );

    // A watch from a compacted revision is canceled: the reason on stderr, exit 5.
    c.ok(&["put", "w/0", "again"]);
    c.ok(&["compaction", "4"]);
    let err = c.fails(&["watch", "w/0", "--rev", "2"], 5);
    assert_eq!(
        err,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );
}

/// Kills a process by pid when dropped (for children moved into `wait_with_output`).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(self.0.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn leases_against_a_server() {
    let server = Server::start();
    let c = server.client();
    let granted = c.ok(&["lease", "grant", "100"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(granted, format!("lease {id} granted with TTL(100s)\n"));
    c.ok(&["put", "leased", "v", "--lease", &id]);
    let ttl = c.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(100s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("attached keys([leased])\n"), "{ttl}");
    assert_eq!(
        c.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(100)\n")
    );
    assert_eq!(c.ok(&["lease", "list"]), format!("found 1 leases\n{id}\n"));
    let table = c.ok(&["lease", "list", "-w", "table"]);
    assert!(table.contains(&format!("| {id} | 100 ")), "{table}");
    // Renewing until interrupted: one line per renewal.
    let keep = Running::spawn(c.cmd(&["lease", "keep-alive", &id]));
    assert_eq!(
        keep.line(10),
        format!("lease {id} keepalived with TTL(100)")
    );
    keep.signal("INT");
    assert_eq!(keep.wait(10), Some(0));
    assert_eq!(
        c.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(c.ok(&["get", "leased"]), "");
    let err = c.fails(&["lease", "revoke", &id], 1);
    assert_eq!(
        err,
        "Error: failed to revoke lease (etcdserver: requested lease not found)\n"
    );
    let err = c.fails(&["lease", "keep-alive", "--once", &id], 2);
    assert_eq!(err, "Error: etcdserver: requested lease not found\n");
    assert_eq!(
        c.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
}

#[test]
fn maintenance_and_cluster_commands_against_a_server() {
    let server = Server::start();
    let c = server.client();
    let ep = server.endpoint.clone();
    c.ok(&["put", "k", "v"]);
    let status = json(&c.ok(&["endpoint", "status", "-w", "json"]));
    assert_eq!(status[0]["Endpoint"], ep.as_str());
    let st = &status[0]["Status"];
    assert_eq!(st["leader"], st["header"]["member_id"]);
    assert_eq!(st["raftTerm"], 1);
    let simple = c.ok(&["endpoint", "status"]);
    assert!(simple.starts_with(&format!("{ep}, ")), "{simple}");
    assert!(simple.contains(", true, false, 1, "), "{simple}");
    // Health: etcdctl writes the simple line to stderr.
    let r = c.run(&["endpoint", "health"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "{ep} is healthy: successfully committed proposal: took = "
        )),
        "{}",
        r.stderr
    );
    let health = json(&c.ok(&["endpoint", "health", "-w", "json"]));
    assert_eq!(health[0]["endpoint"], ep.as_str());
    assert_eq!(health[0]["health"], true);
    let members = json(&c.ok(&["member", "list", "-w", "json"]));
    assert_eq!(members["members"][0]["ID"], st["header"]["member_id"]);
    assert_eq!(members["members"][0]["name"], "default");
    assert_eq!(
        members["members"][0]["clientURLs"][0],
        format!("http://{ep}").as_str()
    );
    let simple = c.ok(&["member", "list"]);
    let id = st["header"]["member_id"].as_u64().unwrap();
    assert!(
        simple.starts_with(&format!("{id:x}, started, default, ")),
        "{simple}"
    );
    assert!(
        simple.ends_with(&format!(", http://{ep}, false\n")),
        "{simple}"
    );
    assert_eq!(c.ok(&["alarm", "list"]), "");
    assert_eq!(c.ok(&["alarm", "disarm"]), "");
    assert_eq!(
        c.ok(&["defrag"]),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    // Snapshot save streams the server's store; etch restores it as a file.
    assert_eq!(
        c.ok(&["snapshot", "save", "snap.etch"]),
        "Snapshot saved at snap.etch\n"
    );
    let snap = c.path("snap.etch");
    let out = c.path("restored.etch");
    let local = Env::new();
    let restore = local.ok(&[
        "snapshot",
        "restore",
        snap.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(restore.starts_with("Restored snapshot"), "{restore}");
    let restored = Env {
        dir: tempfile::tempdir().unwrap(),
        db: out,
        endpoints: None,
    };
    assert_eq!(restored.ok(&["get", "k"]), "k\nv\n");
    // Commands that only make sense on a file say so.
    let err = c.fails(&["status"], 128);
    assert!(err.contains("endpoint status"), "{err}");
    let err = c.fails(&["check"], 128);
    assert!(err.contains("--db"), "{err}");
    // And the server-only commands on a file.
    let file = Env::new();
    let err = file.fails(&["member", "list"], 128);
    assert!(err.contains("--endpoints"), "{err}");
    file.fails(&["alarm", "list"], 128);
    file.fails(&["endpoint", "health"], 128);
    file.fails(&["check", "perf"], 128);
}

#[test]
fn lock_elect_import_export_against_a_server() {
    let server = Server::start();
    let c = server.client();
    let out = c.ok(&["lock", "jobs", "--", "sh", "-c", "echo \"$ETCD_LOCK_KEY\""]);
    assert!(out.starts_with("jobs/"), "{out}");
    assert_eq!(
        c.ok(&["get", "jobs", "--prefix"]),
        "",
        "the lock was released"
    );
    // A held lock makes the next one wait; interrupting the holder releases it.
    let holder = Running::spawn(c.cmd(&["lock", "held"]));
    assert!(holder.line(10).starts_with("held/"));
    let waiter = Running::spawn(c.cmd(&["lock", "held", "--", "echo", "got it"]));
    std::thread::sleep(Duration::from_millis(500));
    holder.signal("INT");
    assert_eq!(holder.wait(10), Some(0));
    assert_eq!(waiter.line(10), "got it");
    assert_eq!(waiter.wait(10), Some(0));

    let leader = Running::spawn(c.cmd(&["elect", "e", "node-1"]));
    assert!(leader.line(10).starts_with("e/"));
    assert_eq!(leader.line(10), "node-1");
    let listen = Running::spawn(c.cmd(&["elect", "e", "--listen"]));
    assert!(listen.line(10).starts_with("e/"));
    assert_eq!(listen.line(10), "node-1");
    leader.signal("INT");
    assert_eq!(leader.wait(10), Some(0));
    listen.signal("INT");
    assert_eq!(listen.wait(10), Some(0));
    assert_eq!(c.ok(&["get", "e", "--prefix"]), "", "the leader resigned");

    for i in 0..3 {
        c.ok(&["put", &format!("x/{i:03}"), &i.to_string()]);
    }
    let exported = c.ok(&["export", "--prefix", "x/"]);
    assert_eq!(exported.lines().count(), 3);
    let other = Server::start();
    let d = other.client();
    let r = d.run_with_stdin(&["import", "-"], &exported);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("Imported 3 keys"), "{}", r.stdout);
    assert_eq!(d.ok(&["get", "x/", "--prefix", "--count-only"]), "3\n");
    assert_eq!(d.ok(&["get", "x/001", "--print-value-only"]), "1\n");
}

#[test]
fn several_endpoints_and_a_server_that_goes_away() {
    let a = Server::start();
    let mut b = Server::start();
    let both = Env::client(&format!("{},{}", a.endpoint, b.endpoint));
    // Per-endpoint commands address each one.
    let status = both.ok(&["endpoint", "status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 2, "{status}");
    assert!(
        lines[0].starts_with(&format!("{}, ", a.endpoint)),
        "{status}"
    );
    assert!(
        lines[1].starts_with(&format!("{}, ", b.endpoint)),
        "{status}"
    );
    let health = json(&both.ok(&["endpoint", "health", "-w", "json"]));
    assert_eq!(health.as_array().unwrap().len(), 2);
    // Other commands use the first endpoint that answers.
    both.ok(&["put", "k", "on-a"]);
    assert_eq!(a.client().ok(&["get", "k", "--print-value-only"]), "on-a\n");

    // A watch whose server goes away ends with an error instead of hanging.
    let bc = b.client();
    let watch = Running::spawn(bc.cmd(&["watch", "k"]));
    let mut seen = false;
    for _ in 0..50 {
        bc.ok(&["put", "k", "v"]);
        if watch.lines.recv_timeout(Duration::from_millis(200)).is_ok() {
            seen = true;
            break;
        }
    }
    assert!(seen, "the watch printed nothing");
    b.stop();
    let code = watch.wait(20);
    assert_eq!(code, Some(1));
    // The endpoint that is gone: reported, the other one still listed, exit 1.
    let r = both.run(&["--command-timeout", "1s", "endpoint", "status"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(&format!("{}, ", a.endpoint)),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(&format!(
            "Failed to get the status of endpoint {} (context deadline exceeded)",
            b.endpoint
        )),
        "{}",
        r.stderr
    );
    // And a lock waiter interrupted by Ctrl-C leaves the queue: exit 5, nothing left behind.
    let ac = a.client();
    let holder = Running::spawn(ac.cmd(&["lock", "q"]));
    assert!(holder.line(10).starts_with("q/"));
    let waiter = Running::spawn(ac.cmd(&["lock", "q"]));
    std::thread::sleep(Duration::from_millis(500));
    waiter.signal("INT");
    assert_eq!(waiter.wait(10), Some(5));
    holder.signal("INT");
    assert_eq!(holder.wait(10), Some(0));
    assert_eq!(ac.ok(&["get", "q", "--prefix", "--count-only"]), "0\n");
}

#[test]
fn check_perf_runs_a_bounded_load_and_cleans_up() {
    let server = Server::start();
    let c = server.client();
    let r = c.run(&["check", "perf", "--load", "s", "--duration", "2s"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    assert!(
        lines[0].starts_with("PASS: Throughput is ")
            || lines[0].starts_with("FAIL: Throughput too low: "),
        "{}",
        r.stdout
    );
    assert!(lines[1].contains("Slowest request took"), "{}", r.stdout);
    assert!(lines[2].contains("Stddev"), "{}", r.stdout);
    // The verdict line and the exit code agree (a slow CI machine may fail the thresholds).
    match lines[3] {
        "PASS" => assert_eq!(r.code, 0),
        "FAIL" => assert_eq!(r.code, 1),
        other => panic!("verdict {other:?}"),
    }
    // About 150 writes/s for 2 s, all deleted afterwards.
    assert_eq!(
        c.ok(&["get", "/etcdctl-check-perf/", "--prefix", "--count-only"]),
        "0\n"
    );
    let status = json(&c.ok(&["get", "nothing", "-w", "json"]));
    let revision = status["header"]["revision"].as_i64().unwrap();
    assert!((100..=400).contains(&revision), "revision {revision}");
    // A prefix that holds keys is refused before any load, as etcdctl.
    c.ok(&["put", "/busy/k", "v"]);
    let err = c.fails(
        &["check", "perf", "--prefix", "/busy/", "--duration", "1s"],
        3,
    );
    assert!(err.contains("has keys"), "{err}");
}

#[test]
fn unreachable_endpoint_is_context_deadline_exceeded() {
    let port = free_port();
    let c = Env::client(&format!("127.0.0.1:{port}"));
    let start = Instant::now();
    let r = c.run(&["--command-timeout", "1s", "get", "a"]);
    let took = start.elapsed();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.ends_with("Error: context deadline exceeded\n"),
        "{}",
        r.stderr
    );
    // The cause is on stderr as a client log line (etcdctl's shape).
    assert!(r.stderr.starts_with("{\"level\":\"warn\""), "{}", r.stderr);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let r = c.run(&["--command-timeout", "1s", "endpoint", "health"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&format!(
        "127.0.0.1:{port} is unhealthy: failed to commit proposal: context deadline exceeded"
    )));
    assert!(
        r.stderr.ends_with("Error: unhealthy cluster\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn endpoints_from_the_environment_and_conflicts() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let etch = |args: &[&str], envs: &[(&str, &str)]| -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_etch"));
        cmd.args(args)
            .current_dir(dir.path())
            .env_remove("ETCH_DB")
            .env_remove("ETCH_ENDPOINTS")
            .env_remove("ETCDCTL_ENDPOINTS")
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap().into()
    };
    let ep = server.endpoint.as_str();
    let r = etch(&["put", "e", "1"], &[("ETCH_ENDPOINTS", ep)]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "OK\n"), "{}", r.stderr);
    let r = etch(
        &["get", "e", "--print-value-only"],
        &[("ETCDCTL_ENDPOINTS", ep)],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "1\n"), "{}", r.stderr);
    // A file named with --db wins over etcdctl's variable...
    let db = dir.path().join("local.etch");
    let r = etch(
        &["--db", db.to_str().unwrap(), "put", "e", "local"],
        &[("ETCDCTL_ENDPOINTS", ep)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(db.exists());
    // ...but naming both a file and a server on the command line is an error.
    let r = etch(
        &["--db", db.to_str().unwrap(), "--endpoints", ep, "get", "e"],
        &[],
    );
    assert_eq!(r.code, 128, "{}", r.stdout);
    assert!(r.stderr.contains("give one of them"), "{}", r.stderr);
    // An endpoint that is no URL is an argument error, at once.
    let r = etch(&["--endpoints", "unix:///tmp/sock", "get", "e"], &[]);
    assert_eq!(r.code, 128, "{}", r.stderr);
    assert!(r.stderr.contains("unsupported endpoint"), "{}", r.stderr);
}
