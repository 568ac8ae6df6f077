//! The two servers under test as child processes: real etcd 3.4 and `etch serve`, each in its
//! own temporary directory on free loopback ports, killed by pid and reaped when dropped (also
//! when the benchmark fails or panics).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

/// Which server a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// etcd 3.4 (`/usr/bin/etcd`, or `ETCD_BIN`).
    Etcd,
    /// `etch serve` (the `etch` binary next to this benchmark's executable, or `ETCH_BIN`).
    Etch,
}

impl Kind {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Etcd => "etcd",
            Kind::Etch => "etch",
        }
    }
}

/// A running server; dropping it kills the process and removes its directory.
pub struct Server {
    /// What runs.
    pub kind: Kind,
    /// `http://127.0.0.1:PORT`, the client URL.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Kill by pid (`Child::kill` sends SIGKILL to exactly this process) and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now (the OS picks it, so never 2379/2380).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// The etcd executable: `ETCD_BIN` or `/usr/bin/etcd`.
pub fn etcd_path() -> PathBuf {
    std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from)
}

/// The etch executable: `ETCH_BIN`, or `etch` in this executable's directory (target/release).
pub fn etch_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCH_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("locate etch-bench executable");
    exe.with_file_name("etch")
}

/// First line of `etcd --version` (`etcd Version: 3.4.x`), if etcd runs.
pub fn etcd_version() -> Option<String> {
    let out = Command::new(etcd_path()).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_string)
}

/// Checks that both servers can be run; returns etcd's version line.
pub fn check_binaries() -> Result<String, String> {
    let etcd_version = etcd_version().ok_or_else(|| {
        format!(
            "cannot run {} (install Debian's etcd-server or set ETCD_BIN)",
            etcd_path().display()
        )
    })?;
    if !etch_path().is_file() {
        return Err(format!(
            "{} is missing (cargo build --release -p etch-cli, or set ETCH_BIN)",
            etch_path().display()
        ));
    }
    Ok(etcd_version)
}

/// Writes a run's JSON document to `path`.
pub fn write_json(path: &str, doc: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("write {path}: {e}"))
}

impl Server {
    /// Starts `kind` in a fresh temporary directory under the current one (the same file
    /// system for both servers) and waits until it answers a gRPC Range.
    pub async fn start(kind: Kind) -> Result<Server, String> {
        let dir = tempfile::tempdir_in(".").map_err(|e| format!("temporary directory: {e}"))?;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut command = match kind {
            Kind::Etcd => etcd_command(dir.path(), &url),
            Kind::Etch => etch_command(dir.path(), &url),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", command.get_program().to_string_lossy()))?;
        let mut server = Server {
            kind,
            url,
            child,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// The server's pid, for `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "{} exited during start-up: {status}",
                    self.kind.name()
                ));
            }
            if let Ok(mut client) = KvClient::connect(self.url.clone()).await {
                let probe = RangeRequest {
                    key: b"etch-bench/probe".to_vec(),
                    ..Default::default()
                };
                if client.range(probe).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not answer within 30 s", self.kind.name()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `n` HTTP/2 connections to the server.
    pub async fn connect(&self, n: usize) -> Result<Vec<Channel>, String> {
        let mut channels = Vec::with_capacity(n);
        for _ in 0..n {
            let channel = Channel::from_shared(self.url.clone())
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| format!("connect to {}: {e}", self.kind.name()))?;
            channels.push(channel);
        }
        Ok(channels)
    }

    /// The server's memory: (`VmRSS`, `VmHWM`) in bytes.
    pub fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        Memory {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
        }
    }
}

/// A server process's memory in bytes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss: u64,
    /// Peak resident (`VmHWM`).
    pub hwm: u64,
}

fn etcd_command(dir: &Path, url: &str) -> Command {
    let peer = format!("http://127.0.0.1:{}", free_port());
    let mut command = Command::new(etcd_path());
    command
        .arg("--name=bench")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=bench={peer}"))
        .arg("--logger=zap")
        .arg("--log-level=warn");
    command
}

fn etch_command(dir: &Path, url: &str) -> Command {
    let mut command = Command::new(etch_path());
    command
        .arg("serve")
        .arg("--db")
        .arg(dir.join("bench.etch"))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg("--log-level=warn");
    command
}
