//! The two sides of the comparison: running one command through etcdctl (against a real etcd)
//! and through etch, normalising away what only a server has, and recording differences.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::etcd::Etcd;
use crate::common::Env;
use serde_json::Value;

/// Upper bound of one bounded watch.
const WATCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound of one command that should end by itself.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run produced, normalised.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Which program a run went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Etcd,
    Etch,
}

/// Kills a child (by pid) when dropped, so a failing assertion stops it too.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Both sides and what the script has learnt about them so far.
pub struct Pair {
    etcd: Etcd,
    etch: Env,
    /// In client mode, the `etch serve` that `etch --endpoints` talks to (stopped on drop).
    _etch_server: Option<Etcd>,
    /// True when both sides talk to an `etch serve`: the header's cluster, member and term
    /// are compared rather than removed.
    servers_on_both_sides: bool,
    /// True when the reference side is `etch --endpoints` (not etcdctl) against `etch serve`:
    /// the file-mode and client-mode comparison of etch with itself.
    reference_is_etch_client: bool,
    /// The n-th granted lease's id on each side: (etcd, etch).
    leases: Vec<(i64, i64)>,
    /// Every difference found so far (the test reports them all at the end).
    failures: RefCell<Vec<String>>,
}

impl Pair {
    pub fn new() -> Option<Pair> {
        Some(Pair {
            etcd: Etcd::start()?,
            etch: Env::new(),
            _etch_server: None,
            servers_on_both_sides: false,
            reference_is_etch_client: false,
            leases: Vec::new(),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// Client mode: etcdctl against one `etch serve`, `etch --endpoints` against another,
    /// both fresh and advertising the same URL, so they have the same member and cluster ids
    /// and go through the same revisions.
    pub fn client() -> Option<Pair> {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_etch"));
        let advertise = "http://127.0.0.1:2379";
        let reference = Etcd::start_etch_serve(bin, advertise)?;
        let subject = Etcd::start_etch_serve(bin, advertise)?;
        Some(Pair {
            etcd: reference,
            etch: Env::client(&subject.endpoint),
            _etch_server: Some(subject),
            servers_on_both_sides: true,
            reference_is_etch_client: false,
            leases: Vec::new(),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// Client mode against real etcd: etcdctl against one etcd, `etch --endpoints` against
    /// another. Their ids differ (they are derived from the peer URLs), so the header's
    /// cluster, member and term are removed as in file mode.
    pub fn client_of_etcd() -> Option<Pair> {
        let reference = Etcd::start()?;
        let subject = Etcd::start()?;
        Some(Pair {
            etcd: reference,
            etch: Env::client(&subject.endpoint),
            _etch_server: Some(subject),
            servers_on_both_sides: false,
            reference_is_etch_client: false,
            leases: Vec::new(),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// etch with itself: the reference side is `etch --endpoints` against a fresh `etch
    /// serve`, the other `etch --db FILE` on a fresh file. Server-only fields are removed as
    /// when etch's file mode is compared with etcd.
    pub fn file_and_client() -> Option<Pair> {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_etch"));
        let server = Etcd::start_etch_serve(bin, "http://127.0.0.1:2379")?;
        Some(Pair {
            etcd: server,
            etch: Env::new(),
            _etch_server: None,
            servers_on_both_sides: false,
            reference_is_etch_client: true,
            leases: Vec::new(),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// True in client mode.
    pub fn is_client(&self) -> bool {
        self.etch.endpoints.is_some()
    }

    /// `args` with `{Ln}` replaced by this side's n-th lease id in hex.
    pub fn args(&self, side: Side, args: &[&[u8]]) -> Vec<OsString> {
        args.iter()
            .map(|a| {
                let mut s = a.to_vec();
                for (i, (etcd_id, etch_id)) in self.leases.iter().enumerate() {
                    let id = if side == Side::Etcd { etcd_id } else { etch_id };
                    s = replace(
                        &s,
                        format!("{{L{}}}", i + 1).as_bytes(),
                        format!("{id:x}").as_bytes(),
                    );
                }
                OsStr::from_bytes(&s).to_os_string()
            })
            .collect()
    }

    pub fn command(&self, side: Side, args: &[&[u8]]) -> Command {
        let args = self.args(side, args);
        match side {
            Side::Etcd if self.reference_is_etch_client => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_etch"));
                c.arg("--endpoints")
                    .arg(&self.etcd.endpoint)
                    .args(&args)
                    .current_dir(self.etcd.dir())
                    .env_remove("ETCH_DB")
                    .env_remove("ETCH_ENDPOINTS")
                    .env_remove("ETCDCTL_ENDPOINTS")
                    .stdin(Stdio::null());
                c
            }
            Side::Etcd => self.etcd.etcdctl(&args),
            Side::Etch => {
                let mut c = self.etch.cmd(&[]);
                c.args(&args);
                c
            }
        }
    }

    /// Runs `args` (with `stdin`) on one side; raw stdout and stderr.
    pub fn raw(
        &self,
        side: Side,
        args: &[&[u8]],
        stdin: Option<&str>,
    ) -> (Option<i32>, Vec<u8>, Vec<u8>) {
        let mut cmd = self.command(side, args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = KillOnDrop(cmd.spawn().expect("spawn"));
        let mut input = child.0.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let read_all = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        };
        let out = read_all(Box::new(child.0.stdout.take().unwrap()));
        let err = read_all(Box::new(child.0.stderr.take().unwrap()));
        // A command that hangs fails the test instead of hanging it (the drop kills it).
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` on {side:?} still running after {COMMAND_TIMEOUT:?}",
                show(args)
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        (status.code(), out.join().unwrap(), err.join().unwrap())
    }

    pub fn outcome(&self, side: Side, code: Option<i32>, stdout: &[u8], stderr: &[u8]) -> Outcome {
        Outcome {
            code,
            stdout: self.normalise(side, stdout),
            stderr: self.normalise(side, stderr),
        }
    }

    /// Runs on both sides and asserts equal outcomes; returns etch's.
    pub fn same_with(
        &self,
        args: &[&[u8]],
        stdin: Option<&str>,
        fix: &dyn Fn(&str) -> String,
    ) -> Outcome {
        let (c1, o1, e1) = self.raw(Side::Etcd, args, stdin);
        let (c2, o2, e2) = self.raw(Side::Etch, args, stdin);
        let mut etcd = self.outcome(Side::Etcd, c1, &o1, &e1);
        let mut etch = self.outcome(Side::Etch, c2, &o2, &e2);
        for o in [&mut etcd, &mut etch] {
            o.stdout = fix(&o.stdout);
            o.stderr = fix(&o.stderr);
        }
        self.expect_equal(&show(args), &etch, &etcd);
        etch
    }

    /// [`Pair::same_with`] for plain text arguments and no further normalisation.
    pub fn same(&self, args: &[&str]) -> Outcome {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.same_with(&args, None, &|s| s.to_string())
    }

    /// Grants a lease on both sides with `lease grant TTL` in `format` and records the ids.
    pub fn grant(&mut self, ttl: &str, format: &str) {
        let args: [&[u8]; 5] = [b"lease", b"grant", ttl.as_bytes(), b"-w", format.as_bytes()];
        let (c1, o1, e1) = self.raw(Side::Etcd, &args, None);
        let (c2, o2, e2) = self.raw(Side::Etch, &args, None);
        assert_eq!((c1, c2), (Some(0), Some(0)), "lease grant: {e1:?} / {e2:?}");
        let id = |out: &[u8]| -> i64 {
            let s = String::from_utf8_lossy(out);
            match format {
                "simple" => i64::from_str_radix(s.split_whitespace().nth(1).unwrap(), 16).unwrap(),
                // A number as etcdctl prints it; a string is accepted so that a wrong shape
                // is reported as a difference rather than a panic here.
                "json" => {
                    let v = &serde_json::from_str::<Value>(&s).unwrap()["ID"];
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .expect("an ID")
                }
                _ => s
                    .lines()
                    .find_map(|l| l.strip_prefix("\"ID\" : "))
                    .unwrap()
                    .parse()
                    .unwrap(),
            }
        };
        self.leases.push((id(&o1), id(&o2)));
        let etcd = self.outcome(Side::Etcd, c1, &o1, &e1);
        let etch = self.outcome(Side::Etch, c2, &o2, &e2);
        self.expect_equal(&format!("lease grant {ttl} -w {format}"), &etch, &etcd);
    }

    /// Records a difference between etch's and etcdctl's outcome of `what`.
    pub fn expect_equal<T: PartialEq + std::fmt::Debug>(&self, what: &str, etch: &T, etcd: &T) {
        if etch != etcd {
            self.fail(format!(
                "`{what}`:\n  etch:    {etch:?}\n  etcdctl: {etcd:?}"
            ));
        }
    }

    pub fn fail(&self, message: String) {
        self.failures.borrow_mut().push(message);
    }

    /// Panics with every recorded difference.
    pub fn finish(self) {
        let failures = self.failures.take();
        assert!(
            failures.is_empty(),
            "{} differences:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Text with invalid UTF-8 shown as `\xNN`, server-only fields and client log lines
    /// removed, and lease ids replaced by `<lease-n>`.
    pub fn normalise(&self, side: Side, raw: &[u8]) -> String {
        let mut text = String::new();
        for chunk in raw.utf8_chunks() {
            text.push_str(chunk.valid());
            for b in chunk.invalid() {
                text.push_str(&format!("\\x{b:02x}"));
            }
        }
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            let body = line.trim_end_matches('\n');
            let server_only = ["\"ClusterID\" : ", "\"MemberID\" : ", "\"RaftTerm\" : "];
            let strip = !self.servers_on_both_sides;
            if (strip && server_only.iter().any(|p| body.starts_with(p)))
                || body.starts_with("{\"level\":")
            {
                continue;
            }
            match serde_json::from_str::<Value>(body) {
                Ok(mut v) if body.starts_with('{') || body.starts_with('[') => {
                    if strip {
                        strip_server_fields(&mut v);
                    }
                    out.push_str(&v.to_string());
                    out.push_str(&line[body.len()..]);
                }
                _ => out.push_str(line),
            }
        }
        if self.is_client() {
            // The two servers listen on different ports.
            let endpoint = match side {
                Side::Etcd => self.etcd.endpoint.as_str(),
                Side::Etch => self.etch.endpoints.as_deref().unwrap_or_default(),
            };
            out = out.replace(endpoint, "<endpoint>");
        }
        for (i, (etcd_id, etch_id)) in self.leases.iter().enumerate() {
            let id = if side == Side::Etcd {
                *etcd_id
            } else {
                *etch_id
            };
            let name = format!("<lease-{}>", i + 1);
            out = out
                .replace(&format!("{id:016x}"), &name)
                .replace(&id.to_string(), &name);
        }
        out
    }

    /// Runs a watch on both sides until each has printed `lines` lines (or the timeout), kills
    /// both and compares what they printed.
    pub fn watch(&self, args: &[&str], lines: usize) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let etcd = self.bounded(Side::Etcd, &args, lines);
        let etch = self.bounded(Side::Etch, &args, lines);
        let what = show(&args);
        self.expect_equal(&what, &etch, &etcd);
        if etch.lines().count() != lines {
            self.fail(format!("`{what}`: {lines} lines expected, got {etch:?}"));
        }
    }

    pub fn bounded(&self, side: Side, args: &[&[u8]], lines: usize) -> String {
        let mut cmd = self.command(side, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = KillOnDrop(cmd.spawn().expect("spawn watch"));
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let deadline = Instant::now() + WATCH_TIMEOUT;
        let mut got = Vec::new();
        // Count lines after normalising: etcdctl prints server-only lines etch does not.
        while self.normalise(side, &got).lines().count() < lines {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => got.extend(line),
                Err(_) => break,
            }
        }
        drop(child);
        self.normalise(side, &got)
    }
}

/// Removes `cluster_id`, `member_id` and `raft_term` at any depth.
fn strip_server_fields(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for k in ["cluster_id", "member_id", "raft_term"] {
                map.shift_remove(k);
            }
            map.values_mut().for_each(strip_server_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_server_fields),
        _ => {}
    }
}

fn replace(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn show(args: &[&[u8]]) -> String {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Pair {
    /// True when both sides talk to an `etch serve` (same member ids and URLs).
    pub fn same_servers(&self) -> bool {
        self.servers_on_both_sides
    }
}
