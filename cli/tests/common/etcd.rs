//! A real etcd server for tests that compare etch with etcd: started in a temporary directory on
//! free loopback ports, stopped by its pid when the [`Etcd`] is dropped (also when a test
//! panics), and an `etcdctl` [`Command`] pointed at it.
//!
//! Self-contained on purpose (only std and tempfile): tests of other crates (an `etch serve`
//! talking to etcdctl) can include this file with `#[path = ...] mod etcd;`.
//!
//! Tools: `etcd` and `etcdctl` are looked up on `PATH` (Debian's `etcd-server` and
//! `etcd-client` packages). When one is missing, [`Etcd::start`] returns `None` after printing
//! "skipped: ...", unless `ETCH_REQUIRE_TOOLS=1` (as CI sets), where a missing tool fails the
//! test.
//!
//! The server never touches the default ports 2379/2380 (a packaged etcd service may hold
//! them), and every variable starting with `ETCD_` or `ETCDCTL_` is removed from the
//! environment of both programs, since etcd and etcdctl read their flags from such variables.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting on fresh ports (a port picked free can be taken before etcd binds it).
const START_ATTEMPTS: u32 = 3;

/// A running etcd. Dropping it kills the process (by pid) and deletes its data directory.
pub struct Etcd {
    child: Child,
    /// `127.0.0.1:<port>`: the client endpoint, as etcdctl's `--endpoints` takes it.
    pub endpoint: String,
    etcdctl: PathBuf,
    // Declared last: removed after the process is gone.
    dir: tempfile::TempDir,
}

/// Finds `name` on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// True when CI requires every external tool (`ETCH_REQUIRE_TOOLS=1`).
pub fn tools_required() -> bool {
    std::env::var("ETCH_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `Some(path)` of each tool, or `None` after printing "skipped" (panicking instead when tools
/// are required).
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_tool("etcd"), find_tool("etcdctl")) {
        (Some(etcd), Some(etcdctl)) => Some((etcd, etcdctl)),
        _ if tools_required() => panic!(
            "ETCH_REQUIRE_TOOLS=1 but etcd or etcdctl is not on PATH \
             (apt-get install etcd-server etcd-client)"
        ),
        _ => {
            eprintln!(
                "skipped: etcd or etcdctl not found (apt-get install etcd-server etcd-client)"
            );
            None
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Removes every `ETCD_*` and `ETCDCTL_*` variable from `cmd`'s environment.
fn scrub_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("ETCD_") || n.starts_with("ETCDCTL_") {
            cmd.env_remove(&name);
        }
    }
}

impl Etcd {
    /// Starts a single-member etcd and waits until it serves requests. `None` when the tools
    /// are missing and not required; panics when it cannot be started.
    pub fn start() -> Option<Etcd> {
        let (etcd, etcdctl) = tools()?;
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match Etcd::try_start(&etcd, &etcdctl) {
                Ok(server) => return Some(server),
                Err(log) => last_log = log,
            }
        }
        panic!("etcd did not start in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// One attempt on fresh ports; on failure the process is stopped and its log returned.
    fn try_start(etcd: &Path, etcdctl: &Path) -> Result<Etcd, String> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.path().join("etcd.log");
        let log_file = std::fs::File::create(&log).expect("etcd log file");
        let mut cmd = Command::new(etcd);
        cmd.arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("etcd log file"))
            .stderr(log_file);
        scrub_env(&mut cmd);
        if cfg!(target_arch = "aarch64") {
            // etcd 3.4 refuses to start on arm64 unless told the platform is acceptable.
            cmd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        let child = cmd.spawn().expect("spawning etcd");
        let mut server = Etcd {
            child,
            endpoint: format!("127.0.0.1:{client}"),
            etcdctl: etcdctl.to_path_buf(),
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("etcd exited ({status}):\n{text}"));
            }
            let ready = server
                .etcdctl(&["endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(server);
            }
            if Instant::now() > deadline {
                // Dropping `server` stops the process.
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `etch serve` (the binary at `etch`) on a fresh loopback port, advertising
    /// `advertise` (so two servers can be given the same member id), and waits until etcdctl
    /// gets an answer. `None` when etcdctl is missing and not required.
    pub fn start_etch_serve(etch: &Path, advertise: &str) -> Option<Etcd> {
        let etcdctl = match find_tool("etcdctl") {
            Some(p) => p,
            None if tools_required() => {
                panic!(
                    "ETCH_REQUIRE_TOOLS=1 but etcdctl is not on PATH (apt-get install etcd-client)"
                )
            }
            None => {
                eprintln!("skipped: etcdctl not found (apt-get install etcd-client)");
                return None;
            }
        };
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("temporary directory");
            let port = free_port();
            let log = dir.path().join("serve.log");
            let log_file = std::fs::File::create(&log).expect("serve log file");
            let mut cmd = Command::new(etch);
            cmd.arg("serve")
                .arg("--db")
                .arg(dir.path().join("served.etch"))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
                .arg(format!("--advertise-client-urls={advertise}"))
                .arg("--log-level=warn")
                .env_remove("ETCH_DB")
                .env_remove("ETCH_ENDPOINTS")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("serve log file"))
                .stderr(log_file);
            let child = cmd.spawn().expect("spawning etch serve");
            let mut server = Etcd {
                child,
                endpoint: format!("127.0.0.1:{port}"),
                etcdctl: etcdctl.clone(),
                dir,
            };
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last_log = format!(
                        "etch serve exited ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                let ready = server
                    .etcdctl(&["endpoint", "health"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    return Some(server);
                }
                if Instant::now() > deadline {
                    last_log = std::fs::read_to_string(&log).unwrap_or_default();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("etch serve did not start in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// `etcdctl --endpoints=<this server> ARGS`, with stdin closed and etcd's environment
    /// variables removed. Arguments are `OsStr`s so tests can pass bytes that are not UTF-8.
    pub fn etcdctl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.etcdctl);
        cmd.arg(format!("--endpoints={}", self.endpoint))
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        scrub_env(&mut cmd);
        cmd.env("ETCDCTL_API", "3");
        cmd
    }

    /// The server's temporary directory (for files such as snapshots).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Kill by pid and reap, so no server outlives its test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
