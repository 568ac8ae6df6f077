//! Whole-system cluster tests: `etch serve` members as separate processes on loopback (peers
//! over QUIC), driven with the real etcdctl 3.4 (skipped without it unless
//! `ETCH_REQUIRE_TOOLS=1`). Needs the etch binary: `cargo build --release -p etch-cli` first.
//!
//! - three members started together: member list, endpoint status and health with
//!   `--cluster`, a put/get/watch script, the leader SIGKILLed and writes continuing;
//! - the promotion walkthrough of the README: a standalone file becomes a one-member cluster,
//!   grows by learners that catch up by snapshot and are promoted, loses a member and takes a
//!   wiped one back.

mod cluster;

use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{
    etcdctl, etcdctl_available, etcdctl_ok, etch_bin, eventually, parse_member_list, ClusterProcs,
    Member,
};

const START: Duration = Duration::from_secs(30);

/// `etcdctl endpoint health --cluster` (etcdctl 3.4 prints the results on stderr).
fn endpoint_health(endpoint: &str) -> String {
    let out = etcdctl(endpoint, &["endpoint", "health", "--cluster"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "endpoint health failed: {text}");
    text
}

/// `etcdctl member list` rows, once every one of `n` members has started (published its
/// name and client URLs).
fn wait_started(endpoints: &str, n: usize) -> Vec<cluster::MemberRow> {
    eventually(Duration::from_secs(20), "every member started", || {
        let out = etcdctl(endpoints, &["member", "list"]);
        if !out.status.success() {
            return None;
        }
        let rows = parse_member_list(&String::from_utf8_lossy(&out.stdout));
        (rows.len() == n
            && rows
                .iter()
                .all(|r| r.status == "started" && !r.client_urls.is_empty()))
        .then_some(rows)
    })
}

#[test]
fn three_processes_serve_etcdctl_and_survive_a_leader_kill() {
    if !etcdctl_available() {
        return;
    }
    let mut c = ClusterProcs::new(&["m1", "m2", "m3"], "three-procs");
    c.start_new();
    c.wait_healthy(START);
    let endpoints = c.endpoints();

    // member list: three started voters, each with its name, peer URL and client URL.
    let rows = wait_started(&endpoints, 3);
    for m in &c.members {
        let row = rows
            .iter()
            .find(|r| r.name == m.name)
            .unwrap_or_else(|| panic!("{} missing from {rows:?}", m.name));
        assert_eq!(row.peer_urls, m.peer_url(), "{rows:?}");
        assert_eq!(row.client_urls, m.client_url(), "{rows:?}");
        assert!(!row.is_learner);
    }

    // endpoint health and status with --cluster dial every member's advertised client URL.
    let one = c.members[0].client_url();
    let health = endpoint_health(&one);
    assert_eq!(
        health.lines().filter(|l| l.contains("is healthy")).count(),
        3,
        "{health}"
    );
    let status = etcdctl_ok(&one, &["endpoint", "status", "--cluster"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 3, "{status}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(", true, ")).count(),
        1,
        "exactly one leader: {status}"
    );

    // put on one member, watch on another, linearizable get on the third.
    let mut watch = Command::new(cluster::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.members[1].client_url()))
        .args(["watch", "script/", "--prefix"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcdctl watch");
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..5 {
        etcdctl_ok(&one, &["put", &format!("script/k{i}"), &format!("v{i}")]);
    }
    let third = c.members[2].client_url();
    let got = etcdctl_ok(&third, &["get", "script/", "--prefix"]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "script/k0",
            "v0",
            "script/k1",
            "v1",
            "script/k2",
            "v2",
            "script/k3",
            "v3",
            "script/k4",
            "v4"
        ]
    );
    let serial = etcdctl_ok(&third, &["get", "script/k4", "--consistency=s"]);
    // The linearizable get above waited until this member applied every put.
    assert_eq!(serial, "script/k4\nv4\n");
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let text = String::from_utf8_lossy(&out.stdout);
    let puts: Vec<&str> = text.lines().filter(|l| *l == "PUT").collect();
    assert_eq!(puts.len(), 5, "the watch saw every put in order: {text}");
    for i in 0..5 {
        assert!(text.contains(&format!("script/k{i}\nv{i}")), "{text}");
    }

    // SIGKILL the leader: a new one is elected and writes continue on the others.
    let leader = c.leader(START);
    c.members[leader].kill();
    let survivor = c.members[(leader + 1) % 3].client_url();
    eventually(
        Duration::from_secs(20),
        "a write after the leader's kill",
        || {
            etcdctl(&survivor, &["put", "after-kill", "yes"])
                .status
                .success()
                .then_some(())
        },
    );
    let new_leader = c.leader(START);
    assert_ne!(new_leader, leader);
    let got = etcdctl_ok(&c.endpoints(), &["get", "after-kill"]);
    assert_eq!(got, "after-kill\nyes\n");

    // The killed member restarts from its file and catches up.
    let initial = c.initial_cluster(&[0, 1, 2]);
    let token = c.token.clone();
    let flags = c.members[leader].flags(&initial, "new", &token);
    c.members[leader].start(&flags);
    c.wait_healthy(START);
    let back = c.members[leader].client_url();
    eventually(
        Duration::from_secs(20),
        "the restarted member caught up",
        || {
            let out = etcdctl(&back, &["get", "after-kill", "--consistency=s"]);
            (String::from_utf8_lossy(&out.stdout) == "after-kill\nyes\n").then_some(())
        },
    );
    for m in &mut c.members {
        assert!(m.stop(), "{} stops cleanly on SIGTERM", m.name);
    }
}

/// Runs the etch CLI with `args`, asserting success.
fn etch_cli(args: &[&str]) -> String {
    let out = Command::new(etch_bin())
        .args(args)
        .output()
        .expect("run etch");
    assert!(
        out.status.success(),
        "etch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the etch CLI on a local file.
fn etch_local(db: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(etch_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run etch");
    assert!(
        out.status.success(),
        "etch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `member promote ID`, once: a change that arrives while another is in flight (a member
/// that just joined publishes its name and client URLs as a membership change) waits for it on
/// the leader, as etcd queues it, instead of failing.
fn promote(endpoints: &str, id: &str) {
    let out = etcdctl_ok(endpoints, &["member", "promote", id]);
    assert!(out.contains("promoted"), "member promote: {out}");
}

/// The hex id in `Member <id> added to cluster <cluster>`.
fn added_id(output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|w| *w != "Member")
        .nth(1)
        .unwrap_or_else(|| panic!("no member id in {output:?}"))
        .to_string()
}

/// `member add NAME --learner`, then starts the member as `existing` and waits until it has
/// caught up (a serializable read of `greeting` on it answers). Returns its id.
fn add_learner_and_start(c: &mut ClusterProcs, endpoints: &str, i: usize, all: &[usize]) -> String {
    let name = c.members[i].name.clone();
    let peer = c.members[i].peer_url();
    let out = etcdctl_ok(
        endpoints,
        &[
            "member",
            "add",
            &name,
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
    );
    let id = added_id(&out);
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    let initial = c.initial_cluster(all);
    let token = c.token.clone();
    let flags = c.members[i].flags(&initial, "existing", &token);
    c.members[i].start(&flags);
    let url = c.members[i].client_url();
    eventually(Duration::from_secs(30), "the learner caught up", || {
        let out = etcdctl(&url, &["get", "greeting", "--consistency=s"]);
        (String::from_utf8_lossy(&out.stdout) == "greeting\nhello, world\n").then_some(())
    });
    id
}

#[test]
fn promotion_walkthrough() {
    if !etcdctl_available() {
        return;
    }
    let mut c = ClusterProcs::new(&["a", "b", "c"], "app-cluster");
    // A cluster CA and a certificate per member: peers authenticate each other (mutual TLS).
    let certs = c.dir.path().join("certs");
    let certs_arg = certs.display().to_string();
    etch_cli(&["cert", "ca", "--dir", &certs_arg]);
    for m in &mut c.members {
        etch_cli(&[
            "cert",
            "node",
            "--dir",
            &certs_arg,
            "--name",
            &m.name,
            "--ip",
            "127.0.0.1",
        ]);
        m.peer_certs = Some(certs.clone());
    }
    // An application's file, used standalone: some history, a deleted key.
    let app = c.dir.path().join("app.etch");
    etch_local(&app, &["put", "greeting", "hello"]);
    etch_local(&app, &["put", "greeting", "hello, world"]);
    etch_local(&app, &["put", "gone", "x"]);
    etch_local(&app, &["del", "gone"]);
    let before = etch_local(&app, &["get", "greeting", "-w", "json"]);

    // a: the file served as a one-member cluster; it keeps its keys and revisions.
    let token = c.token.clone();
    let initial = c.initial_cluster(&[0]);
    let mut flags = c.members[0].flags(&initial, "new", &token);
    // The file is named directly instead of a data directory.
    let at = flags.iter().position(|f| f == "--data-dir").unwrap();
    flags.drain(at..at + 2);
    flags.extend(["--db".to_string(), app.display().to_string()]);
    c.members[0].start(&flags);
    c.wait_healthy(START);
    let a = c.members[0].client_url();
    let got = etcdctl_ok(&a, &["get", "greeting", "-w", "json"]);
    let revision = |json: &str| {
        json.split("\"mod_revision\":")
            .nth(1)
            .and_then(|s| s.split(|ch: char| !ch.is_ascii_digit()).next())
            .map(str::to_string)
    };
    assert_eq!(revision(&got), revision(&before), "{got} vs {before}");
    assert!(revision(&got).is_some(), "{got}");
    wait_started(&a, 1);

    // b and c join as learners, catch up (by snapshot: the file's history is not in any
    // log), and are promoted.
    let id_b = add_learner_and_start(&mut c, &a, 1, &[0, 1]);
    promote(&a, &id_b);
    let id_c = add_learner_and_start(&mut c, &a, 2, &[0, 1, 2]);
    promote(&a, &id_c);
    let endpoints = c.endpoints();
    let rows = wait_started(&endpoints, 3);
    assert!(rows.iter().all(|r| !r.is_learner), "{rows:?}");
    etcdctl_ok(&endpoints, &["put", "grown", "3"]);

    // c is removed; its data directory wiped; it is added again and catches up.
    etcdctl_ok(&a, &["member", "remove", &id_c]);
    // A removed member is stopped (whether its shutdown is clean is not what this tests).
    let _ = c.members[2].stop();
    std::fs::remove_dir_all(&c.members[2].data_dir).unwrap();
    wait_started(&a, 2);
    let id_c2 = add_learner_and_start(&mut c, &a, 2, &[0, 1, 2]);
    promote(&a, &id_c2);
    let endpoints = c.endpoints();
    wait_started(&endpoints, 3);
    let url_c = c.members[2].client_url();
    assert_eq!(etcdctl_ok(&url_c, &["get", "grown"]), "grown\n3\n");
    let health = endpoint_health(&a);
    assert_eq!(
        health.lines().filter(|l| l.contains("is healthy")).count(),
        3
    );
    for m in &mut c.members {
        assert!(m.stop(), "{} stops cleanly on SIGTERM", m.name);
    }
}

/// A member refuses a data file of another cluster, naming it.
#[test]
fn a_file_of_another_cluster_is_refused() {
    let mut first = ClusterProcs::new(&["x"], "cluster-one");
    first.start_new();
    first.wait_healthy(START);
    assert!(first.members[0].stop());
    let dir = first.members[0].data_dir.clone();

    let mut other = ClusterProcs::new(&["x"], "cluster-two");
    let m: &mut Member = &mut other.members[0];
    m.data_dir = dir.clone();
    let initial = m.initial_cluster_item();
    let flags = m.flags(&initial, "new", "cluster-two");
    let out = Command::new(etch_bin())
        .arg("serve")
        .args(flags)
        .output()
        .expect("run etch serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("member.etch"), "{err}");
    assert!(err.contains("belongs to another cluster"), "{err}");
}

/// Bad flags and config keys are refused naming them, with etcd's exit code 2.
#[test]
fn unknown_flags_and_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(etch_bin())
        .args(["serve", "--initial-cluster-sate", "new"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--initial-cluster-sate"));
    let file = dir.path().join("etcd.yaml");
    std::fs::write(&file, "name: a\nenable-v2: true\n").unwrap();
    let out = Command::new(etch_bin())
        .args(["serve", "--config-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enable-v2"));
}

/// etcd's recovery after losing quorum: two of three members die for good; the survivor
/// restarts with `--force-new-cluster`, keeps its data, is a one-member cluster, takes writes,
/// and a wiped member joins it again with `member add`.
#[test]
fn force_new_cluster_recovers_from_a_lost_quorum() {
    if !etcdctl_available() {
        return;
    }
    let mut c = ClusterProcs::new(&["f1", "f2", "f3"], "force-new");
    c.start_new();
    c.wait_healthy(START);
    let endpoints = c.endpoints();
    wait_started(&endpoints, 3);
    for i in 0..20 {
        etcdctl_ok(&endpoints, &["put", &format!("k{i:02}"), &format!("v{i}")]);
    }
    // Quorum lost: two members gone.
    c.members[1].kill();
    c.members[2].kill();
    let survivor = c.members[0].client_url();
    let out = etcdctl(&survivor, &["put", "--command-timeout=2s", "lost", "x"]);
    assert!(!out.status.success(), "no write without a quorum");

    // The survivor restarts with --force-new-cluster.
    assert!(c.members[0].stop());
    let initial = c.initial_cluster(&[0, 1, 2]);
    let token = c.token.clone();
    let mut flags = c.members[0].flags(&initial, "new", &token);
    flags.push("--force-new-cluster".into());
    c.members[0].start(&flags);
    c.wait_healthy(START);
    let rows = wait_started(&survivor, 1);
    assert_eq!(rows[0].name, "f1");
    let got = etcdctl_ok(&survivor, &["get", "k", "--prefix", "--keys-only"]);
    assert_eq!(got.lines().filter(|l| !l.is_empty()).count(), 20, "{got}");
    etcdctl_ok(&survivor, &["put", "after", "force"]);

    // Restarted without the flag it stays a one-member cluster; a wiped f2 joins again.
    assert!(c.members[0].stop());
    let flags = c.members[0].flags(&initial, "new", &token);
    c.members[0].start(&flags);
    c.wait_healthy(START);
    std::fs::remove_dir_all(&c.members[1].data_dir).unwrap();
    let peer = c.members[1].peer_url();
    let out = etcdctl_ok(
        &survivor,
        &[
            "member",
            "add",
            "f2",
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
    );
    let id_f2 = added_id(&out);
    let flags = c.members[1].flags(&c.initial_cluster(&[0, 1]), "existing", &token);
    c.members[1].start(&flags);
    let f2 = c.members[1].client_url();
    eventually(Duration::from_secs(30), "f2 caught up", || {
        let out = etcdctl(&f2, &["get", "after", "--consistency=s"]);
        (String::from_utf8_lossy(&out.stdout) == "after\nforce\n").then_some(())
    });
    promote(&survivor, &id_f2);
    let rows = wait_started(&survivor, 2);
    assert!(rows.iter().all(|r| !r.is_learner), "{rows:?}");
    etcdctl_ok(&f2, &["put", "two", "members"]);
    for m in &mut c.members {
        assert!(m.stop(), "{} stops cleanly", m.name);
    }
}

/// `--listen-peer-urls` with two URLs: the member binds both UDP ports, and its peer knows it
/// only by the second (its advertised one), through which the two form a cluster, elect a
/// leader and replicate a write.
#[test]
fn a_member_listens_on_every_peer_url() {
    let mut c = ClusterProcs::new(&["l1", "l2"], "two-listen");
    let extra = cluster::free_udp_port();
    let initial = c.initial_cluster(&[0, 1]);
    let token = c.token.clone();
    let mut flags = c.members[0].flags(&initial, "new", &token);
    let at = flags
        .iter()
        .position(|f| f == "--listen-peer-urls")
        .expect("the flag is set")
        + 1;
    flags[at] = format!("http://127.0.0.1:{extra},{}", c.members[0].peer_url());
    c.members[0].start(&flags);
    let flags = c.members[1].flags(&initial, "new", &token);
    c.members[1].start(&flags);
    c.wait_healthy(START);
    c.leader(START);
    // Both of l1's peer ports are taken (by it).
    for port in [extra, c.members[0].peer_port] {
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
            "UDP port {port} of l1 is not bound"
        );
    }
    let l1 = c.members[0].client_url();
    let l2 = c.members[1].client_url();
    etch_cli(&["--endpoints", &l2, "put", "k", "two-urls"]);
    eventually(Duration::from_secs(20), "l1 applied the write", || {
        let out = Command::new(etch_bin())
            .args(["--endpoints", &l1, "get", "k", "--print-value-only"])
            .args(["--consistency", "s"])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&out.stdout) == "two-urls\n").then_some(())
    });
    for m in &mut c.members {
        assert!(m.stop(), "{} stops cleanly", m.name);
    }
}
