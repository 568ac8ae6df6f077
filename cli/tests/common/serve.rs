//! `etch serve` as a child process for client-mode tests: started on a free loopback port,
//! killed and reaped by its pid when the guard drops (also when a test fails).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Env;

/// A running `etch serve`, killed and reaped when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:<port>`, or `https://127.0.0.1:<port>` with TLS.
    pub endpoint: String,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Plain HTTP.
    pub fn start() -> Server {
        Server::start_with("http", &[])
    }

    /// `scheme` http or https; `extra` flags (TLS files) for `etch serve`.
    pub fn start_with(scheme: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("served.etch");
        let port = free_port();
        let url = format!("{scheme}://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_etch"))
            .arg("serve")
            .arg("--db")
            .arg(&db)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--log-level", "warn"])
            .args(extra)
            .env_remove("ETCH_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etch serve starts");
        let mut server = Server {
            child,
            endpoint: if scheme == "https" {
                url
            } else {
                format!("127.0.0.1:{port}")
            },
            db,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("etch serve exited: {status}");
            }
            assert!(Instant::now() < deadline, "etch serve did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// An `etch --endpoints <this server>` environment.
    pub fn client(&self) -> Env {
        Env::client(&self.endpoint)
    }

    /// Stops the server (SIGTERM: graceful) and returns the path of its file, which lives as
    /// long as the guard.
    pub fn stop(&mut self) -> PathBuf {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "etch serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.db.clone()
    }
}
