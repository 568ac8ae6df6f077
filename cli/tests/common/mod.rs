//! Runs the built `etch` binary against a database in a fresh temporary directory.

#![allow(dead_code)] // each test file uses a different part of this helper

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// A temporary directory with a database path in it; or, made by [`Env::client`], the
/// working directory of `etch --endpoints` runs against a server.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    /// The server's endpoint in client mode (`--endpoints` instead of `--db`).
    pub endpoints: Option<String>,
}

/// The outcome of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().expect("etch was killed by a signal"),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.etch");
        Env {
            dir,
            db,
            endpoints: None,
        }
    }

    /// Runs `etch --endpoints <endpoints>` (client mode) in a fresh temporary directory.
    pub fn client(endpoints: &str) -> Env {
        Env {
            endpoints: Some(endpoints.to_string()),
            ..Env::new()
        }
    }

    /// A path inside the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `etch --db <db>` with the given arguments, stdin closed, run in the temporary directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_etch"));
        match &self.endpoints {
            Some(e) => c.arg("--endpoints").arg(e),
            None => c.arg("--db").arg(&self.db),
        };
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ETCH_DB")
            .env_remove("ETCH_ENDPOINTS")
            .env_remove("ETCDCTL_ENDPOINTS")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().unwrap().into()
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "etch {args:?} failed: {}", r.stderr);
        r.stdout
    }

    /// Runs and asserts the exit code; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, code,
            "etch {args:?}: expected exit {code}, stdout {:?} stderr {:?}",
            r.stdout, r.stderr
        );
        r.stderr
    }
}

/// A running etch process whose stdout lines arrive on a channel.
pub struct Running {
    pub child: Child,
    pub lines: Receiver<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
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
        Running { child, lines: rx }
    }

    /// The next stdout line, failing the test after `secs` seconds.
    pub fn line(&self, secs: u64) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(secs))
            .expect("no output line in time")
    }

    /// Sends a signal by name (INT, TERM, KILL) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit; returns the exit code (None if killed by a signal).
    pub fn wait(mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("etch did not exit in {secs} s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until `path` exists and has content, up to `secs` seconds.
pub fn wait_for_file(path: &Path, secs: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
pub mod etcd;
pub mod serve;
