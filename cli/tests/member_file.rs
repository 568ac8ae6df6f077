//! The file commands on a cluster member's file (`<data-dir>/member.etch`, whose WAL is the
//! Raft log): `check`, `status`, `endpoint status`, `get` and `check --repair` work on a
//! stopped member's file, writes are refused with a message naming the cluster, and the
//! member restarts afterwards with its data and keeps taking writes.

use crate::common;

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;

/// A running one-member cluster (`etch serve --name a --initial-cluster a=...`), killed and
/// reaped by its pid when dropped.
struct Member {
    child: Option<Child>,
    client_port: u16,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Member {
    fn start(data_dir: &Path, client_port: u16, peer_port: u16) -> Member {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(env!("CARGO_BIN_EXE_etch"))
            .arg("serve")
            .args(["--name", "a", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("a={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "member-file-test"])
            .args(["--log-level", "warn"])
            .env_remove("ETCH_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etch serve starts");
        let mut member = Member {
            child: Some(child),
            client_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", client_port)).is_err() {
            if let Ok(Some(status)) = member.child.as_mut().unwrap().try_wait() {
                panic!("etch serve exited: {status}");
            }
            assert!(Instant::now() < deadline, "the member did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        member
    }

    fn client(&self) -> Env {
        Env::client(&format!("127.0.0.1:{}", self.client_port))
    }

    /// A put through the member, retried while it elects itself (bounded).
    fn put(&self, key: &str, value: &str) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = client.run(&["put", key, value]);
            if r.code == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "put {key} never succeeded: {}",
                r.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the member exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the member did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `etch --db <file>` in a fresh working directory.
fn on_file(file: &Path) -> Env {
    let mut env = Env::new();
    env.db = file.to_path_buf();
    env
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn file_commands_work_on_a_stopped_members_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("a.etcd");
    let file: PathBuf = data_dir.join("member.etch");
    let (client_port, peer_port) = (free_tcp_port(), free_udp_port());

    let mut member = Member::start(&data_dir, client_port, peer_port);
    for i in 0..20 {
        member.put(&format!("k{i:02}"), &format!("v{i}"));
    }
    let revision = json(&member.client().ok(&["get", "k19", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    member.stop();

    let env = on_file(&file);
    // `check` walks every page of the member's file.
    let out = env.ok(&["check"]);
    assert!(out.contains(&file.display().to_string()), "{out}");
    // `status` sees the member's data: the revision its clients saw.
    let status = json(&env.ok(&["status", "-w", "json"]));
    assert_eq!(status["header"]["revision"], revision, "{status}");
    let rows = json(&env.ok(&["endpoint", "status", "-w", "json"]));
    assert_eq!(rows[0]["Status"]["header"]["revision"], revision, "{rows}");
    // Reads see the data.
    assert_eq!(
        env.ok(&["get", "k07", "--print-value-only"]),
        "v7\n",
        "a read of the member's file"
    );
    let counted = json(&env.ok(&["get", "k", "--prefix", "--count-only", "-w", "json"]));
    assert_eq!(counted["count"], 20, "{counted}");
    // `check --repair` on an intact member file repairs nothing.
    let r = env.run(&["check", "--repair"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("nothing to repair"), "{}", r.stderr);
    // Writes are refused, saying where they go; the file is unchanged.
    for args in [
        &["put", "k00", "x"][..],
        &["del", "k00"],
        &["compaction", "2"],
        &["defrag"],
    ] {
        let err = env.fails(args, 1);
        assert!(err.contains("cluster member's file"), "{args:?}: {err}");
    }
    assert_eq!(env.ok(&["get", "k00", "--print-value-only"]), "v0\n");

    // The member restarts on its file after all this, with its data, and takes writes.
    let mut member = Member::start(&data_dir, client_port, peer_port);
    member.put("after", "restart");
    let client = member.client();
    assert_eq!(client.ok(&["get", "k19", "--print-value-only"]), "v19\n");
    let after = json(&client.ok(&["get", "after", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    assert!(after > revision, "{after} after {revision}");
    member.stop();
    let status = json(&on_file(&file).ok(&["status", "-w", "json"]));
    assert_eq!(status["header"]["revision"], after, "{status}");
    on_file(&file).ok(&["check"]);
}

#[test]
fn a_running_members_file_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("a.etcd");
    let member = Member::start(&data_dir, free_tcp_port(), free_udp_port());
    member.put("k", "v");
    let env = on_file(&data_dir.join("member.etch"));
    let r = env.run(&["--lock-timeout", "200ms", "check"]);
    assert_ne!(r.code, 0, "check on a running member's file: {}", r.stdout);
    assert!(!r.stderr.is_empty());
    drop(member);
}
