//! The same script through etcdctl 3.4 against a real etcd, and through `etch --db FILE`: after
//! removing what only a server has, stdout, stderr and the exit code must be equal.
//!
//! What is normalised away, and why:
//! - `cluster_id`, `member_id` and `raft_term` (JSON) and the `ClusterID`, `MemberID` and
//!   `RaftTerm` lines (fields output): a file has no cluster, member or Raft term.
//! - etcdctl's client log lines on stderr (JSON objects from its gRPC retry logger): they are
//!   diagnostics of the network client, printed before the `Error: ...` line scripts read.
//! - Lease ids: both sides pick random ids. Each side's n-th granted lease becomes `<lease-n>`
//!   in hex and decimal, and `{Ln}` in a command stands for that side's own id.
//! - Remaining lease TTLs count down in real time: checked to be within a few seconds of the
//!   granted TTL, then replaced.
//! - Snapshot hash, key count and size describe etcd's bbolt file (its buckets and pages),
//!   not the key space: only their presence and the revision are compared.
//! - Files are named relative to each side's own working directory.
//!
//! Not compared, because etcdctl 3.4 differs on purpose from etch: `get --count-only` (etcdctl
//! 3.5's flag, absent from 3.4), `-w table` for get (3.4 refuses it), `lease grant 0` (etcd
//! raises it to its minimum TTL; etch refuses it), `watch --rev -1` (etcd treats it as a
//! compacted revision) and argument-syntax errors (cobra's usage text).

mod common;

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::Env;
use serde_json::Value;

/// Upper bound of one bounded watch.
const WATCH_TIMEOUT: Duration = Duration::from_secs(15);

/// What one run produced, normalised.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Which program a run went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
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
struct Pair {
    etcd: Etcd,
    etch: Env,
    /// The n-th granted lease's id on each side: (etcd, etch).
    leases: Vec<(i64, i64)>,
    /// Every difference found so far (the test reports them all at the end).
    failures: RefCell<Vec<String>>,
}

impl Pair {
    fn new() -> Option<Pair> {
        Some(Pair {
            etcd: Etcd::start()?,
            etch: Env::new(),
            leases: Vec::new(),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// `args` with `{Ln}` replaced by this side's n-th lease id in hex.
    fn args(&self, side: Side, args: &[&[u8]]) -> Vec<OsString> {
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

    fn command(&self, side: Side, args: &[&[u8]]) -> Command {
        let args = self.args(side, args);
        match side {
            Side::Etcd => self.etcd.etcdctl(&args),
            Side::Etch => {
                let mut c = self.etch.cmd(&[]);
                c.args(&args);
                c
            }
        }
    }

    /// Runs `args` (with `stdin`) on one side; raw stdout and stderr.
    fn raw(
        &self,
        side: Side,
        args: &[&[u8]],
        stdin: Option<&str>,
    ) -> (Option<i32>, Vec<u8>, Vec<u8>) {
        let mut cmd = self.command(side, args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (out.status.code(), out.stdout, out.stderr)
    }

    fn outcome(&self, side: Side, code: Option<i32>, stdout: &[u8], stderr: &[u8]) -> Outcome {
        Outcome {
            code,
            stdout: self.normalise(side, stdout),
            stderr: self.normalise(side, stderr),
        }
    }

    /// Runs on both sides and asserts equal outcomes; returns etch's.
    fn same_with(
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
    fn same(&self, args: &[&str]) -> Outcome {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.same_with(&args, None, &|s| s.to_string())
    }

    /// Grants a lease on both sides with `lease grant TTL` in `format` and records the ids.
    fn grant(&mut self, ttl: &str, format: &str) {
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
    fn expect_equal<T: PartialEq + std::fmt::Debug>(&self, what: &str, etch: &T, etcd: &T) {
        if etch != etcd {
            self.fail(format!(
                "`{what}`:\n  etch:    {etch:?}\n  etcdctl: {etcd:?}"
            ));
        }
    }

    fn fail(&self, message: String) {
        self.failures.borrow_mut().push(message);
    }

    /// Panics with every recorded difference.
    fn finish(self) {
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
    fn normalise(&self, side: Side, raw: &[u8]) -> String {
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
            if server_only.iter().any(|p| body.starts_with(p)) || body.starts_with("{\"level\":") {
                continue;
            }
            match serde_json::from_str::<Value>(body) {
                Ok(mut v) if body.starts_with('{') || body.starts_with('[') => {
                    strip_server_fields(&mut v);
                    out.push_str(&v.to_string());
                    out.push_str(&line[body.len()..]);
                }
                _ => out.push_str(line),
            }
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
    fn watch(&self, args: &[&str], lines: usize) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let etcd = self.bounded(Side::Etcd, &args, lines);
        let etch = self.bounded(Side::Etch, &args, lines);
        let what = show(&args);
        self.expect_equal(&what, &etch, &etcd);
        if etch.lines().count() != lines {
            self.fail(format!("`{what}`: {lines} lines expected, got {etch:?}"));
        }
    }

    fn bounded(&self, side: Side, args: &[&[u8]], lines: usize) -> String {
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

/// Replaces the number after each of `markers` (up to the next non-digit) with `N`, after
/// checking it lies in `range`.
fn mask_numbers(s: &str, markers: &[&str], range: std::ops::RangeInclusive<i64>) -> String {
    let mut out = s.to_string();
    for m in markers {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(m) {
            let (head, tail) = rest.split_at(at + m.len());
            result.push_str(head);
            let digits: String = tail
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            let n: i64 = digits
                .parse()
                .unwrap_or_else(|_| panic!("no number after {m} in {s}"));
            assert!(range.contains(&n), "{m}{n} not in {range:?}: {s}");
            result.push('N');
            rest = &tail[digits.len()..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[test]
fn etcdctl_and_etch_print_the_same() {
    let Some(mut p) = Pair::new() else { return };
    kv(&p);
    deletes(&p);
    txns(&p);
    watches(&p);
    leases(&mut p);
    compaction(&p);
    snapshots(&p);
    endpoint_status(&p);
    // Last: a killed `elect` leaves its session's lease and key behind on both sides.
    lock_and_elect(&p);
    p.finish();
}

fn kv(p: &Pair) {
    p.same(&["put", "a", "1"]);
    p.same(&["put", "a", "2", "-w", "json"]);
    p.same(&["put", "b", "10", "--prev-kv"]);
    p.same(&["put", "b", "11", "--prev-kv"]);
    p.same(&["put", "b", "12", "--prev-kv", "-w", "json"]);
    p.same(&["put", "b", "13", "--prev-kv", "-w", "fields"]);
    p.same(&["put", "c", "30"]);
    p.same(&["put", "d/1", ""]);
    p.same(&["put", "d/2", "v"]);
    for w in ["simple", "json", "fields"] {
        p.same(&["get", "a", "-w", w]);
        p.same(&["get", "missing", "-w", w]);
        p.same(&["get", "", "--prefix", "-w", w]);
        p.same(&["get", "d/", "--prefix", "--keys-only", "-w", w]);
        p.same(&["get", "a", "c", "-w", w]);
        p.same(&["get", "b", "--from-key", "-w", w]);
        p.same(&["get", "", "--from-key", "--limit", "2", "-w", w]);
        p.same(&["get", "a", "--rev", "2", "-w", w]);
    }
    p.same(&["get", "", "--prefix", "--print-value-only"]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--sort-by",
        "VALUE",
        "--order",
        "DESCEND",
    ]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--sort-by",
        "CREATE",
        "--order",
        "DESCEND",
    ]);
    p.same(&["get", "", "--prefix", "--sort-by", "MODIFY", "-w", "json"]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--sort-by",
        "VERSION",
        "--order",
        "DESCEND",
    ]);
    p.same(&["get", "", "--prefix", "--order", "DESCEND", "--limit", "2"]);
    p.same(&["get", "", "--prefix", "--order", "descend"]);
    p.same(&["get", "a", "--rev", "0"]);
    p.same(&["get", "a", "--rev", "-1"]);
    p.same(&["get", "a", "--rev", "1", "-w", "json"]);
    p.same(&["get", "a", "--rev", "1000"]);
    p.same(&["get", "a", "--consistency", "s"]);
    p.same(&["get", "a", "--consistency", "l", "-w", "json"]);
    p.same(&["--hex", "get", "a"]);
    p.same(&["get", "a", "--prefix", "--from-key"]);
    p.same(&["get", "a", "c", "--prefix"]);
    p.same(&["--hex", "get", "a", "-w", "fields"]);
    p.same(&["--hex", "get", "", "--prefix", "--keys-only"]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--keys-only",
        "--limit",
        "1",
        "-w",
        "json",
    ]);
    p.same(&["get", "", "--prefix", "--print-value-only", "--keys-only"]);
    // Requests etcd refuses.
    p.same(&["put", "", "v"]);
    p.same(&["del", ""]);
    p.same(&["get", ""]);
    p.same(&["put", "nokey", "--ignore-value"]);
    p.same(&["put", "nokey", "v", "--ignore-lease"]);
    p.same(&["put", "a", "--ignore-value", "-w", "json"]);
    p.same(&["put", "a", "3", "--ignore-lease", "--prev-kv"]);
    p.same(&["put", "a", "3", "--ignore-value"]);
    p.same(&["put", "a", "4", "--lease", "1234", "--ignore-lease"]);
    p.same(&[
        "get",
        "",
        "--from-key",
        "--limit",
        "-1",
        "--order",
        "DESCEND",
    ]);
    // Keys and values that are not UTF-8 pass through as bytes.
    let (key, value): (&[u8], &[u8]) = (b"\xff\xfe", b"\x80v");
    let id = |s: &str| s.to_string();
    p.same_with(&[b"put", key, value], None, &id);
    p.same_with(&[b"get", key], None, &id);
    p.same_with(&[b"get", key, b"-w", b"json"], None, &id);
    p.same_with(&[b"get", key, b"-w", b"fields"], None, &id);
    p.same_with(&[b"del", key], None, &id);
}

fn deletes(p: &Pair) {
    p.same(&["del", "missing"]);
    p.same(&["del", "missing", "-w", "json"]);
    p.same(&["del", "missing", "-w", "fields"]);
    p.same(&["put", "x1", "1"]);
    p.same(&["put", "x2", "2"]);
    p.same(&["put", "x3", "3"]);
    p.same(&["put", "x4", "4"]);
    p.same(&["del", "x1", "--prev-kv", "-w", "json"]);
    p.same(&["del", "x2", "--prev-kv", "-w", "fields"]);
    p.same(&["del", "x3", "--prev-kv"]);
    p.same(&["del", "x", "--prefix", "-w", "json"]);
    p.same(&["put", "y1", "1"]);
    p.same(&["put", "y2", "2"]);
    p.same(&["put", "z", "3"]);
    p.same(&["del", "y1", "y3", "--prev-kv"]);
    p.same(&["del", "y", "--from-key", "--prev-kv", "-w", "json"]);
    p.same(&["del", "a", "--prefix", "--from-key"]);
}

fn txns(p: &Pair) {
    let id = |s: &str| s.to_string();
    let txn = |w: &str, input: &str| {
        p.same_with(&[b"txn", b"-w", w.as_bytes()], Some(input), &id);
    };
    for w in ["simple", "json", "fields"] {
        txn(
            w,
            "value(\"a\") = \"2\"\n\nput t 1\nget a\ndel nothing\n\nput t 0\n\n",
        );
        txn(w, "mod(\"a\") > \"1000\"\n\nput t 1\n\nput t 2 --prev-kv\nget t --prefix\ndel t --prev-kv\n\n");
        txn(
            w,
            "version(\"b\") = \"4\"\ncreate(\"b\") < \"100\"\n\nget b --keys-only\n\n\n",
        );
    }
    // Quoted values with escapes, bytes that are not UTF-8. (No `lease(...)` compare: etcdctl
    // 3.4 panics parsing one.)
    txn(
        "simple",
        "create(\"a\") > \"0\"\n\nput \"q\\xff\" \"tab\\there\"\nget q --prefix\n\n\n",
    );
    txn(
        "json",
        "value(\"q\\xff\") = \"tab\\there\"\n\ndel q --prefix --prev-kv\n\n\n",
    );
    // Interactive: the prompts, then the result.
    let interactive = "value(\"a\") = \"3\"\n\nget a\n\nput a 9\n\n";
    p.same_with(&[b"txn", b"-i"], Some(interactive), &id);
    // etcd rejects writing the same key twice in one transaction.
    txn("simple", "\n\nput t 1\nput t 2\n\n\n");
    p.same(&["get", "t"]);
}

fn watches(p: &Pair) {
    p.same(&["put", "w", "1"]);
    p.same(&["put", "w", "2"]);
    p.same(&["del", "w"]);
    let rev = current_revision(p);
    let start = (rev - 2).to_string();
    p.watch(&["watch", "w", "--rev", &start], 9);
    p.watch(&["watch", "w", "--rev", &start, "--prev-kv"], 13);
    p.watch(&["watch", "w", "--rev", &start, "-w", "json"], 1);
    p.watch(
        &[
            "watch",
            "w",
            "--prefix",
            "--rev",
            &start,
            "--prev-kv",
            "-w",
            "json",
        ],
        1,
    );
    p.watch(&["watch", "w", "--rev", &start, "-w", "fields"], 1 + 3 * 7);
    p.watch(&["watch", "v", "x", "--rev", &start], 9);
    p.watch(&["--hex", "watch", "w", "--rev", &start, "--prev-kv"], 13);
    // A command per event, after the response is printed. (Not $ETCD_WATCH_REVISION: etcdctl
    // sets the response's header revision, etch the event's own revision, as documented.)
    let hook = "echo \"$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"";
    p.watch(
        &["watch", "w", "--rev", &start, "--", "sh", "-c", hook],
        9 + 3,
    );
}

fn current_revision(p: &Pair) -> i64 {
    let out = p.same(&["get", "a", "-w", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

fn leases(p: &mut Pair) {
    p.grant("100", "simple");
    p.grant("200", "json");
    p.grant("300", "fields");
    p.same(&["put", "l1", "v", "--lease", "{L1}"]);
    p.same(&["put", "l2", "v", "--lease", "{L1}", "-w", "json"]);
    p.same(&["get", "l1", "-w", "json"]);
    p.same(&["get", "l1", "-w", "fields"]);
    // Remaining TTLs count down; each must be close to the granted TTL. etcd lists a lease's
    // keys in its map's (random) order: they are compared sorted.
    let ttl = |s: &str| {
        sort_lease_keys(&mask_numbers(
            s,
            &["remaining(", "\"ttl\":", "\"TTL\" : "],
            // Generous: the machine may be slow, and only the shape is compared.
            60..=100,
        ))
    };
    for w in ["simple", "json", "fields"] {
        for keys in [&[][..], &[&b"--keys"[..]][..]] {
            let mut args: Vec<&[u8]> = vec![b"lease", b"timetolive", b"{L1}", b"-w", w.as_bytes()];
            args.extend_from_slice(keys);
            p.same_with(&args, None, &ttl);
        }
        p.same(&["lease", "timetolive", "1234", "--keys", "-w", w]);
        p.same(&["lease", "keep-alive", "--once", "{L1}", "-w", w]);
        p.same(&["lease", "keep-alive", "--once", "1234", "-w", w]);
    }
    // Both list in ascending id order, but the ids are random: compare as sets.
    for w in ["simple", "json", "fields"] {
        let (c1, o1, e1) = p.raw(Side::Etcd, &[b"lease", b"list", b"-w", w.as_bytes()], None);
        let (c2, o2, e2) = p.raw(Side::Etch, &[b"lease", b"list", b"-w", w.as_bytes()], None);
        let sorted = |o: Outcome| Outcome {
            stdout: sort_leases(&o.stdout),
            ..o
        };
        let etcd = sorted(p.outcome(Side::Etcd, c1, &o1, &e1));
        let etch = sorted(p.outcome(Side::Etch, c2, &o2, &e2));
        p.expect_equal(&format!("lease list -w {w}"), &etch, &etcd);
    }
    // Renewing until killed: one line per renewal.
    let keep = [&b"lease"[..], b"keep-alive", b"{L1}"];
    let etcd = p.bounded(Side::Etcd, &keep, 1);
    let etch = p.bounded(Side::Etch, &keep, 1);
    p.expect_equal("lease keep-alive {L1}", &etch, &etcd);
    p.same(&["put", "l3", "v", "--lease", "1234"]);
    p.same(&["put", "l3", "v", "--lease", "zz"]);
    p.same(&["lease", "revoke", "{L2}", "-w", "json"]);
    p.same(&["lease", "revoke", "{L3}", "-w", "fields"]);
    p.same(&["lease", "revoke", "{L1}"]);
    p.same(&["lease", "revoke", "{L1}"]);
    p.same(&["lease", "revoke", "zz"]);
    p.same(&["get", "l", "--prefix", "-w", "json"]);
    p.same(&["lease", "list"]);
    p.same(&["lease", "list", "-w", "json"]);
}

/// `lease timetolive --keys` output with the keys in order, in each format.
fn sort_lease_keys(s: &str) -> String {
    fn sorted(list: &str, sep: &str) -> String {
        let mut items: Vec<&str> = list.split(sep).collect();
        items.sort();
        items.join(sep)
    }
    for (open, close, sep) in [("\"keys\":[", "]", ","), ("attached keys([", "])", " ")] {
        if let Some((head, rest)) = s.split_once(open) {
            let (list, tail) = rest.split_once(close).expect("end of the key list");
            return format!("{head}{open}{}{close}{tail}", sorted(list, sep));
        }
    }
    let (mut keys, mut other): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for line in s.lines() {
        if line.starts_with("\"Key\" : ") {
            keys.push(line);
        } else {
            other.push(line);
        }
    }
    keys.sort();
    // In fields output the key lines come last.
    other.extend(keys);
    other.iter().map(|l| format!("{l}\n")).collect()
}

/// Lease list output with its ids (lines, or the JSON list's entries) in name order.
fn sort_leases(s: &str) -> String {
    // Normalised JSON is no longer JSON (`{"id":<lease-1>}`): sort the list's entries as text.
    if let Some((head, rest)) = s.split_once("\"leases\":[") {
        let (list, tail) = rest.split_once(']').expect("end of the lease list");
        let mut entries: Vec<&str> = list.split(',').collect();
        entries.sort();
        return format!("{head}\"leases\":[{}]{tail}", entries.join(","));
    }
    let mut lines: Vec<&str> = s.lines().collect();
    let first_id = lines
        .iter()
        .position(|l| l.contains("<lease-"))
        .unwrap_or(lines.len());
    lines[first_id..].sort();
    lines.join("\n") + "\n"
}

fn compaction(p: &Pair) {
    let rev = current_revision(p);
    let to = (rev - 3).to_string();
    p.same(&["compaction", &to]);
    p.same(&["compaction", &to]);
    p.same(&["compaction", "1", "-w", "json"]);
    p.same(&["compaction", "1000000"]);
    p.same(&[
        "compaction",
        &(rev - 1).to_string(),
        "--physical",
        "-w",
        "json",
    ]);
    p.same(&["get", "a", "--rev", "2"]);
    p.same(&["get", "a", "--rev", &(rev - 1).to_string(), "-w", "json"]);
    p.same(&["compaction", &rev.to_string(), "-w", "fields"]);
    p.same(&["compaction", "0"]);
    // A watch from a compacted revision is canceled: etcdctl prints the reason and exits 5.
    p.same(&["watch", "a", "--rev", "2"]);
    p.same(&["watch", "a", "--rev", "2", "-w", "json"]);
}

fn snapshots(p: &Pair) {
    let shape = |s: &str| {
        let mut out = String::new();
        for line in s.lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                for k in ["hash", "totalKey", "totalSize"] {
                    assert!(v[k].as_u64().is_some(), "{k} missing: {line}");
                    v[k] = Value::from(0);
                }
                out.push_str(&v.to_string());
            } else if let Some((name, _)) = line.split_once(" : ") {
                let keep = name == "\"Revision\"";
                out.push_str(if keep { line } else { name });
            } else if line.contains(", ") {
                // "hash, revision, keys, size"
                let parts: Vec<&str> = line.split(", ").collect();
                assert_eq!(parts.len(), 4, "{line}");
                out.push_str(&format!("H, {}, K, S", parts[1]));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    };
    // etcd's snapshot status reports the newest revision left in its key bucket, which the
    // compaction above emptied of tombstones: a put makes it the current revision again.
    p.same(&["put", "before-snapshot", "1"]);
    p.same_with(&[b"snapshot", b"save", b"snap.db"], None, &|s| {
        s.to_string()
    });
    for w in ["simple", "json", "fields"] {
        p.same_with(
            &[b"snapshot", b"status", b"snap.db", b"-w", w.as_bytes()],
            None,
            &shape,
        );
    }
    p.same_with(
        &[b"snapshot", b"status", b"snap.db", b"-w", b"table"],
        None,
        &table_shape,
    );
}

/// A table reduced to its column names and how each cell is aligned.
fn table_shape(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        let shape: Vec<String> = cells
            .iter()
            .map(|c| {
                let text = c.trim();
                if !text.is_empty() && text.chars().all(|ch| ch.is_ascii_uppercase() || ch == ' ') {
                    text.to_string() // a header
                } else if c.len() - c.trim_end().len() > 1 {
                    // Padded on the right. (A cell as wide as its column counts as right-aligned.)
                    "<left>".to_string()
                } else {
                    "<right>".to_string()
                }
            })
            .collect();
        out.push_str(&shape.join("|"));
        out.push('\n');
    }
    out
}

/// `endpoint status`: a file is a cluster of one member without id, leader or raft term, so the
/// shapes are compared: the columns, the JSON fields etcd would print for such a member, the
/// field names, and the revision.
fn endpoint_status(p: &Pair) {
    let shape = |s: &str| {
        let mut out = String::new();
        for line in s.lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                let status = v[0]["Status"].as_object_mut().expect("Status");
                // Zero for a file, so left out (omitempty) on etch's side.
                status.shift_remove("leader");
                status.shift_remove("raftTerm");
                let keys: Vec<String> = status.keys().cloned().collect();
                let header = status["header"].to_string();
                let entry: Vec<String> = v[0].as_object().unwrap().keys().cloned().collect();
                out.push_str(&format!("{entry:?} {keys:?} {header}"));
            } else if line.starts_with("\"Revision\"") || line.is_empty() {
                out.push_str(line);
            } else if let Some((name, _)) = line.split_once(" : ") {
                out.push_str(name);
            } else {
                let columns: Vec<&str> = line.split(", ").collect();
                out.push_str(&format!(
                    "{} columns, errors {:?}",
                    columns.len(),
                    columns.last()
                ));
            }
            out.push('\n');
        }
        out
    };
    for w in ["simple", "json", "fields"] {
        p.same_with(&[b"endpoint", b"status", b"-w", w.as_bytes()], None, &shape);
    }
    p.same_with(
        &[b"endpoint", b"status", b"-w", b"table"],
        None,
        &table_shape,
    );
}

/// `NAME/<hex>` (a lock or election key named after its session's lease) as `NAME/<session>`.
fn mask_session_keys(s: &str, name: &str) -> String {
    let marker = format!("{name}/");
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(&marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let hex = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        assert!(hex > 0, "no lease id after {marker}: {s}");
        out.push_str("<session>");
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

fn lock_and_elect(p: &Pair) {
    let script = "echo \"$ETCD_LOCK_KEY $ETCD_LOCK_REV\"";
    let args: [&[u8]; 6] = [b"lock", b"jobs", b"--", b"sh", b"-c", script.as_bytes()];
    p.same_with(&args, None, &|s| mask_session_keys(s, "jobs"));
    // The lock was released: its key is gone.
    p.same(&["get", "jobs", "--prefix"]);
    // Held until killed: the key, then the lock key's value (empty).
    let lock = [&b"lock"[..], b"held"];
    let etcd = mask_session_keys(&p.bounded(Side::Etcd, &lock, 2), "held");
    let etch = mask_session_keys(&p.bounded(Side::Etch, &lock, 2), "held");
    p.expect_equal("lock held", &etch, &etcd);
    let elect = [&b"elect"[..], b"leader", b"me"];
    let etcd = mask_session_keys(&p.bounded(Side::Etcd, &elect, 2), "leader");
    let etch = mask_session_keys(&p.bounded(Side::Etch, &elect, 2), "leader");
    p.expect_equal("elect leader me", &etch, &etcd);
    if etch.lines().count() != 2 {
        p.fail(format!("elect printed {etch:?}"));
    }
}
