//! A harness for whole-system cluster tests: `etch serve` processes started from etcd's flags
//! on free loopback ports, each stopped by its pid when dropped (also when a test panics), and
//! etcdctl run against them.
//!
//! The etch binary is `ETCH_BIN`, or `etch` in the directory above this test executable
//! (`target/release/deps/<test>` → `target/release/etch`): build it first
//! (`cargo build --release -p etch-cli`). etcdctl is `ETCDCTL_BIN` or `etcdctl` on the PATH; a
//! test that needs it is skipped without it unless `ETCH_REQUIRE_TOOLS=1`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The etch executable.
pub fn etch_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCH_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("locate the test executable");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps");
    let bin = release.join("etch");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --release -p etch-cli) or set ETCH_BIN",
        bin.display()
    );
    bin
}

/// The etcdctl executable.
pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os("ETCDCTL_BIN").map_or_else(|| PathBuf::from("etcdctl"), PathBuf::from)
}

/// Whether etcdctl runs; panics when it does not and `ETCH_REQUIRE_TOOLS=1`.
pub fn etcdctl_available() -> bool {
    let ok = Command::new(etcdctl_bin())
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("ETCH_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("etcdctl is required (ETCH_REQUIRE_TOOLS=1) but not found");
        }
        eprintln!("skipped: etcdctl not found");
    }
    ok
}

/// A free loopback TCP port (for client URLs).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port()
}

/// A free loopback UDP port (for peer URLs: QUIC).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}

/// One `etch serve` member: its name, ports and data directory, and its process while it runs.
pub struct Member {
    /// `--name`.
    pub name: String,
    /// The client port (TCP, gRPC and HTTP).
    pub client_port: u16,
    /// The peer port (UDP, QUIC).
    pub peer_port: u16,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// Where the process's stderr goes (appended across restarts).
    pub log: PathBuf,
    /// Peer TLS: the directory of `etch cert` files (`ca.crt`, `<name>.crt`, `<name>.key`);
    /// peer URLs are then `https://` and peers must present certificates of that CA.
    pub peer_certs: Option<PathBuf>,
    child: Option<Child>,
}

impl Member {
    /// A member named `name` with fresh ports and its data directory under `root`.
    pub fn new(root: &Path, name: &str) -> Member {
        Member {
            name: name.to_string(),
            client_port: free_tcp_port(),
            peer_port: free_udp_port(),
            data_dir: root.join(format!("{name}.etcd")),
            log: root.join(format!("{name}.log")),
            peer_certs: None,
            child: None,
        }
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>` (`https://` with peer TLS).
    pub fn peer_url(&self) -> String {
        let scheme = if self.peer_certs.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.peer_port)
    }

    /// The client address.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// `name=peer-url`, an item of `--initial-cluster`.
    pub fn initial_cluster_item(&self) -> String {
        format!("{}={}", self.name, self.peer_url())
    }

    /// The member's flags (etcd's names): name, URLs, data directory, token, timing, and
    /// peer TLS when set.
    pub fn flags(&self, initial_cluster: &str, state: &str, token: &str) -> Vec<String> {
        let mut flags: Vec<String> = [
            ("--name", self.name.clone()),
            ("--data-dir", self.data_dir.display().to_string()),
            ("--listen-peer-urls", self.peer_url()),
            ("--initial-advertise-peer-urls", self.peer_url()),
            ("--listen-client-urls", self.client_url()),
            ("--advertise-client-urls", self.client_url()),
            ("--initial-cluster", initial_cluster.to_string()),
            ("--initial-cluster-state", state.to_string()),
            ("--initial-cluster-token", token.to_string()),
            ("--heartbeat-interval", "50".to_string()),
            ("--election-timeout", "500".to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect();
        if let Some(dir) = &self.peer_certs {
            let file = |f: String| dir.join(f).display().to_string();
            flags.extend([
                "--peer-cert-file".to_string(),
                file(format!("{}.crt", self.name)),
                "--peer-key-file".to_string(),
                file(format!("{}.key", self.name)),
                "--peer-trusted-ca-file".to_string(),
                file("ca.crt".to_string()),
                "--peer-client-cert-auth".to_string(),
            ]);
        }
        flags
    }

    /// Starts `etch serve` with `args` (replacing a stopped process).
    pub fn start(&mut self, args: &[String]) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the member's log");
        let child = Command::new(etch_bin())
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etch serve");
        self.child = Some(child);
    }

    /// The running process's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (up to 20 s, then SIGKILL); returns whether it exited cleanly
    /// (status 0) in time.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` over HTTP/1.1: (status, body), or `None` if nothing answered.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect_timeout(&self.client_addr(), Duration::from_secs(2))
                .ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).ok()?;
        let mut raw = String::new();
        conn.read_to_string(&mut raw).ok()?;
        let code = raw.split_whitespace().nth(1)?.parse().ok()?;
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((code, body))
    }

    /// Whether `/health` answers 200 (a leader is known and reads work).
    pub fn healthy(&self) -> bool {
        self.http_get("/health")
            .is_some_and(|(code, _)| code == 200)
    }

    /// Whether `/metrics` says this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.http_get("/metrics")
            .is_some_and(|(_, body)| body.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Several members in one temporary directory.
pub struct ClusterProcs {
    /// The members (stopped by pid when dropped).
    pub members: Vec<Member>,
    /// `--initial-cluster-token`.
    pub token: String,
    /// The temporary directory (data directories and logs).
    pub dir: tempfile::TempDir,
}

impl ClusterProcs {
    /// `names.len()` members, not started.
    pub fn new(names: &[&str], token: &str) -> ClusterProcs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let members = names.iter().map(|n| Member::new(dir.path(), n)).collect();
        ClusterProcs {
            members,
            token: token.to_string(),
            dir,
        }
    }

    /// `--initial-cluster` for the members at `indexes`.
    pub fn initial_cluster(&self, indexes: &[usize]) -> String {
        indexes
            .iter()
            .map(|&i| self.members[i].initial_cluster_item())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts every member as a new cluster of all of them.
    pub fn start_new(&mut self) {
        let all: Vec<usize> = (0..self.members.len()).collect();
        let initial = self.initial_cluster(&all);
        let token = self.token.clone();
        for m in &mut self.members {
            let flags = m.flags(&initial, "new", &token);
            m.start(&flags);
        }
    }

    /// Waits (bounded) until every running member is healthy.
    pub fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut all = true;
            for m in &mut self.members {
                if m.is_running() && !m.healthy() {
                    all = false;
                }
            }
            if all {
                return;
            }
            if Instant::now() > deadline {
                panic!("members not healthy within {within:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index of the running member that says it leads, waiting (bounded) for one.
    pub fn leader(&mut self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..self.members.len() {
                if self.members[i].is_running() && self.members[i].is_leader() {
                    return i;
                }
            }
            if Instant::now() > deadline {
                panic!("no leader within {within:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Client URLs of the running members, comma-separated (etcdctl's `--endpoints`).
    pub fn endpoints(&mut self) -> String {
        let mut urls = Vec::new();
        for m in &mut self.members {
            if m.is_running() {
                urls.push(m.client_url());
            }
        }
        urls.join(",")
    }

    /// Every member's log, for failure messages (the last 40 lines of each).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = m.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!("--- {} ---\n{}\n", m.name, tail.join("\n")));
        }
        out
    }
}

/// Runs etcdctl (API 3) with `args` against `endpoints`, bounded by its timeouts.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=3s", "--command-timeout=10s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl")
}

/// etcdctl's stdout, asserting success.
pub fn etcdctl_ok(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Retries `f` every 200 ms until it returns `Some`, up to `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One row of `etcdctl member list` (simple output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// The id, hex.
    pub id: String,
    /// `started` or `unstarted`.
    pub status: String,
    /// The name (empty until started).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: String,
    /// Client URLs.
    pub client_urls: String,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// Parses `etcdctl member list`'s simple output (`id, status, name, peers, clients, learner`).
pub fn parse_member_list(text: &str) -> Vec<MemberRow> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(", ").collect();
            assert_eq!(f.len(), 6, "unexpected member list line {line:?}");
            MemberRow {
                id: f[0].to_string(),
                status: f[1].to_string(),
                name: f[2].to_string(),
                peer_urls: f[3].to_string(),
                client_urls: f[4].to_string(),
                is_learner: f[5] == "true",
            }
        })
        .collect()
}
