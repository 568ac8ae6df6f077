//! `etch serve` as a process: etcd's exit code for bad flags, health over HTTP, graceful
//! shutdown on SIGTERM back to a single intact file, and no acknowledged write lost when the
//! server is killed with SIGKILL under load (writes through etcdctl when it is installed).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills and reaps the server when the test ends, also on failure.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn etch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_etch"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn start(db: &Path, port: u16) -> Guard {
    let url = format!("http://127.0.0.1:{port}");
    let child = etch()
        .arg("serve")
        .arg("--db")
        .arg(db)
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etch serve starts");
    let guard = Guard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(port, "/health").is_some_and(|r| r.contains(r#""health":"true""#)) {
        assert!(
            Instant::now() < deadline,
            "etch serve did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(guard: &mut Guard) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            guard.0 = None;
            return status;
        }
        assert!(Instant::now() < deadline, "etch serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_flags_exit_2_with_a_clear_error() {
    let out = etch().args(["serve", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = etch()
        .args(["serve", "--listen-client-urls", "ftp://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--listen-client-urls"), "{stderr}");
    let out = etch()
        .args(["serve", "--auto-compaction-mode", "weekly"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_shuts_down_to_one_intact_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.etch");
    let port = free_port();
    let mut server = start(&db, port);
    let version = http_get(port, "/version").unwrap();
    assert!(version.contains(r#""etcdserver":"3.5.0""#), "{version}");
    let metrics = http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("etcd_server_has_leader 1"), "{metrics}");
    // A second server on the same file is refused (the file is locked), exit 1.
    let other = etch()
        .arg("serve")
        .arg("--db")
        .arg(&db)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1), "{other:?}");
    signal(server.0.as_ref().unwrap(), "-TERM");
    let status = wait_exit(&mut server);
    assert!(status.success(), "{status:?}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["app.etch"]);
    let store = etch::Store::open(&db).unwrap();
    store.check().unwrap();
    store.close().unwrap();
}

fn etcdctl_available() -> bool {
    let ok = Command::new("etcdctl")
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

#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    if !etcdctl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.etch");
    let port = free_port();
    let mut server = start(&db, port);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..10_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("load/{w}/{i}");
                    let out = Command::new("etcdctl")
                        .env("ETCDCTL_API", "3")
                        .arg(format!("--endpoints=127.0.0.1:{port}"))
                        .args([
                            "--dial-timeout=2s",
                            "--command-timeout=5s",
                            "put",
                            &key,
                            "v",
                        ])
                        .output()
                        .unwrap();
                    if out.status.success() && out.stdout == b"OK\n" {
                        acked.lock().unwrap().push(key);
                    } else {
                        break; // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "writes did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(server.0.as_ref().unwrap(), "-KILL");
    wait_exit(&mut server);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let store = etch::Store::open(&db).unwrap();
    store.check().unwrap();
    for key in &acked {
        assert!(store.get(key).unwrap().is_some(), "acknowledged {key} lost");
    }
    store.close().unwrap();
}
