//! SIGKILL crash test.
//!
//! The parent test (`sigkill_crash_recovery`) re-executes this test binary as a child
//! (`crash_child`, which does nothing unless `ETCH_CRASH_CHILD` names a database path). The child
//! opens the store and runs a multi-threaded workload (so commits share syncs: group commit):
//! puts of unique keys, atomic batches of 3-5 keys (sometimes with a delete), ~50 KB values
//! (overflow pages), overwrites of a per-thread counter key, deletes and delete-ranges of keys it
//! wrote before, huge batches that do not fit a small WAL, and explicit checkpoints; some sessions
//! use a 1 MiB WAL so WAL-full checkpoints happen too. Before each commit a thread prints
//! `@@ try <thread> <ops>`; after the commit returns Ok it prints `@@ ack <revision> <thread> <ops>`.
//!
//! The parent kills the child with SIGKILL (`Child::kill`) after a random number of acks or a
//! random short delay, and then, usually, reopens the store and checks it against a model built
//! from the acks: every acked write is present with exactly the acked revision (and create
//! revision, version and value), unless a later acked op replaced or deleted it; the one
//! operation per thread that was in flight is either wholly applied or not at all; no key exists
//! that nobody wrote; revisions are unique and gap-free (`revision - 1` commits in all); past
//! revisions read back as the model says (MVCC history); `check()` passes; a new write works; a
//! clean close removes the WAL; and a reopen sees the same state. Sometimes the parent skips the
//! reopen and the next child recovers the crashed file itself, and one database file lives through
//! several kill rounds, so recovery of already-recovered files (and crashes during recovery) are
//! covered as well.
//!
//! Environment:
//! - `ETCH_CRASH_SEED=<u64>`: reproduce a run's decisions (printed at the start of every run;
//!   thread timing is not reproducible, the workload and kill plan are).
//! - `ETCH_CRASH_ITERATIONS=<n>`: number of kill points (default 200) for a longer soak.
//! - `ETCH_CRASH_KEEP=1`: keep the database directories (a failing run always keeps its own).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etch_engine::{Durability, KeyValue, Options, Range, RangeOptions, Store, WriteOp};

const CHILD_ENV: &str = "ETCH_CRASH_CHILD";
const CONF_ENV: &str = "ETCH_CRASH_CONF";
/// Every line of the child's protocol starts with this marker (libtest writes its own lines).
const MARK: &str = "@@ ";
/// A child that is never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// A child that does not reach its kill point in this long is reported as stalled.
const STALL_LIMIT: Duration = Duration::from_secs(20);
const DEFAULT_ITERATIONS: usize = 300;

// ---------------------------------------------------------------------------------------------
// Shared helpers: PRNG, values, operations.
// ---------------------------------------------------------------------------------------------

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64* seeded through splitmix64.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The value written for `key` with length `len`: deterministic, so the parent can check it.
fn value_for(key: &str, len: usize) -> Vec<u8> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut r = Rng::new(h ^ (len as u64).rotate_left(32));
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// One operation of a commit, as printed by the child and modelled by the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// Put `key` = `value_for(key, len)`.
    Put(String, usize),
    /// Delete one key (live when the op was generated).
    Del(String),
    /// Delete every key in `[start, end)` (at least one live).
    DelRange(String, String),
    /// `Store::checkpoint()` (changes no data).
    Checkpoint,
}

fn encode_ops(ops: &[Op]) -> String {
    let toks: Vec<String> = ops
        .iter()
        .map(|op| match op {
            Op::Put(k, len) => format!("p:{k}:{len}"),
            Op::Del(k) => format!("d:{k}"),
            Op::DelRange(a, b) => format!("r:{a}:{b}"),
            Op::Checkpoint => "ckpt".to_string(),
        })
        .collect();
    toks.join(" ")
}

fn parse_ops<'a>(toks: impl Iterator<Item = &'a str>) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    for t in toks {
        let parts: Vec<&str> = t.split(':').collect();
        let op = match parts.as_slice() {
            ["p", k, len] => Op::Put(
                k.to_string(),
                len.parse().map_err(|_| format!("bad token {t}"))?,
            ),
            ["d", k] => Op::Del(k.to_string()),
            ["r", a, b] => Op::DelRange(a.to_string(), b.to_string()),
            ["ckpt"] => Op::Checkpoint,
            _ => return Err(format!("bad token {t:?}")),
        };
        ops.push(op);
    }
    if ops.is_empty() {
        return Err("empty op list".into());
    }
    Ok(ops)
}

fn to_write_ops(ops: &[Op]) -> Vec<WriteOp> {
    ops.iter()
        .map(|op| match op {
            Op::Put(k, len) => WriteOp::put(k, value_for(k, *len)),
            Op::Del(k) => WriteOp::delete(Range::key(k)),
            Op::DelRange(a, b) => WriteOp::delete(Range::between(a, b)),
            Op::Checkpoint => unreachable!("checkpoint is not a write"),
        })
        .collect()
}

/// Per-session engine configuration, shared by parent and child.
#[derive(Clone, Copy, Debug)]
struct Conf {
    threads: usize,
    page_size: usize,
    wal_capacity: u64,
    fraction: f64,
    /// `Durability::Relaxed`: a commit returns before its WAL record is synced. A process crash
    /// must still lose nothing (the record is in the OS page cache).
    relaxed: bool,
    /// Percentage of new keys that get a ~50 KB value (more makes the WAL grow and fill).
    large_pct: u64,
}

impl Conf {
    fn random(rng: &mut Rng) -> Conf {
        let mut c = Conf {
            threads: rng.range(2, 6) as usize,
            page_size: if rng.chance(25) { 8192 } else { 4096 },
            wal_capacity: [1 << 20, 1 << 20, 1 << 20, 8 << 20, 64 << 20][rng.below(5) as usize],
            fraction: [0.5, 0.5, 0.9, 0.2][rng.below(4) as usize],
            relaxed: rng.chance(20),
            large_pct: 6,
        };
        // Many large values in a large WAL make it grow (it starts at 4 MiB and doubles).
        if rng.chance(if c.wal_capacity > 1 << 20 { 60 } else { 15 }) {
            c.large_pct = 40;
        }
        c
    }

    fn encode(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.threads,
            self.page_size,
            self.wal_capacity,
            self.fraction,
            self.relaxed,
            self.large_pct
        )
    }

    fn decode(s: &str) -> Option<Conf> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 6 {
            return None;
        }
        Some(Conf {
            threads: f[0].parse().ok()?,
            page_size: f[1].parse().ok()?,
            wal_capacity: f[2].parse().ok()?,
            fraction: f[3].parse().ok()?,
            relaxed: f[4].parse().ok()?,
            large_pct: f[5].parse().ok()?,
        })
    }

    fn options(&self) -> Options {
        Options::new()
            .page_size(self.page_size)
            .wal_capacity(self.wal_capacity)
            .checkpoint_wal_fraction(self.fraction)
            .durability(if self.relaxed {
                Durability::Relaxed
            } else {
                Durability::Immediate
            })
    }
}

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

/// Writes one protocol line atomically (one write of a short line to a pipe); exits quietly if
/// the parent has gone away.
fn emit(line: &str) {
    let s = format!("{MARK}{line}\n");
    let mut out = std::io::stdout().lock();
    if out
        .write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn child_fail(msg: &str) -> ! {
    emit(&format!("err {msg}"));
    std::process::exit(3);
}

/// Not a test of its own: the body of the child process of `sigkill_crash_recovery`.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    std::panic::set_hook(Box::new(|info| {
        emit(&format!("panic {}", info.to_string().replace('\n', " | ")));
        std::process::exit(101);
    }));
    let conf_s = std::env::var(CONF_ENV).unwrap_or_default();
    let mut parts = conf_s.splitn(3, ' ');
    let seed: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let round: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let Some(conf) = parts.next().and_then(Conf::decode) else {
        child_fail(&format!("bad {CONF_ENV}: {conf_s:?}"));
    };
    let deadline = Instant::now() + CHILD_LIFETIME;
    let store = match conf.options().open(&path) {
        Ok(s) => s,
        Err(e) => child_fail(&format!("open failed: {e}")),
    };
    emit(&format!("opened {}", store.revision()));
    for t in 0..conf.threads {
        let store = store.clone();
        std::thread::spawn(move || child_worker(store, t, round, seed, conf.large_pct, deadline));
    }
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::exit(0);
}

fn child_worker(
    store: Store,
    t: usize,
    round: usize,
    seed: u64,
    large_pct: u64,
    deadline: Instant,
) {
    let mut rng = Rng::new(seed ^ splitmix(t as u64 + 1));
    let key = |n: u64| format!("k/{round:03}/{t}/{n:08}");
    let counter = format!("c/{round:03}/{t}");
    // Keys of this thread that are live (all acked: a thread has one commit in flight at a time).
    let mut live: Vec<u64> = Vec::new();
    let mut next: u64 = 0;
    let new_key = |live: &mut Vec<u64>, next: &mut u64, rng: &mut Rng, large: bool| {
        let k = key(*next);
        live.push(*next);
        *next += 1;
        let len = if large {
            rng.range(40_000, 60_000)
        } else {
            rng.range(0, 120)
        };
        Op::Put(k, len as usize)
    };
    while Instant::now() < deadline {
        let r = rng.below(100);
        let mut ops = Vec::new();
        // Deletes need live keys; they are generated after the puts of a batch, and the puts'
        // keys were pushed to `live`, so take deletes from the keys before the batch.
        let old_live = live.len();
        let mut deleted_expect = 0usize;
        if r < 44 {
            let large = rng.chance(large_pct);
            ops.push(new_key(&mut live, &mut next, &mut rng, large));
        } else if r < 62 {
            let n = rng.range(3, 5);
            for _ in 0..n {
                let large = rng.chance(large_pct * 2);
                ops.push(new_key(&mut live, &mut next, &mut rng, large));
            }
            if old_live > 0 && rng.chance(30) {
                let i = rng.below(old_live as u64) as usize;
                let n = live.remove(i);
                ops.push(Op::Del(key(n)));
                deleted_expect = 1;
            }
        } else if r < 76 {
            ops.push(Op::Put(counter.clone(), rng.range(1, 64) as usize));
        } else if r < 96 && old_live == 0 {
            ops.push(new_key(&mut live, &mut next, &mut rng, false));
        } else if r < 82 {
            let i = rng.below(old_live as u64) as usize;
            let n = live.remove(i);
            ops.push(Op::Del(key(n)));
            deleted_expect = 1;
        } else if r < 96 {
            if r >= 90 {
                for _ in 0..rng.range(2, 3) {
                    ops.push(new_key(&mut live, &mut next, &mut rng, false));
                }
            }
            let i = rng.below(old_live as u64) as usize;
            let j = (i + rng.below(8) as usize).min(old_live - 1);
            let start = key(live[i]);
            let end = key(live[j] + 1);
            live.drain(i..=j);
            deleted_expect = j - i + 1;
            ops.push(Op::DelRange(start, end));
        } else if r < 98 {
            // ~300 KB in one record: more than a 1 MiB WAL takes (a checkpoint commits it).
            for _ in 0..rng.range(5, 6) {
                ops.push(new_key(&mut live, &mut next, &mut rng, true));
            }
        } else if large_pct < 40 || rng.chance(10) {
            ops.push(Op::Checkpoint);
        } else {
            // Heavy sessions rarely checkpoint by hand, so that the WAL grows.
            ops.push(new_key(&mut live, &mut next, &mut rng, true));
        }
        let desc = encode_ops(&ops);
        emit(&format!("try {t} {desc}"));
        let result = match ops.as_slice() {
            [Op::Checkpoint] => store.checkpoint().map(|_| (store.revision(), 0)),
            [Op::Put(k, len)] => store
                .put(k, value_for(k, *len))
                .map(|r| (r.header_revision, 0)),
            [Op::Del(k)] => store
                .delete(k)
                .map(|r| (r.header_revision, r.deleted as usize)),
            [Op::DelRange(a, b)] => store
                .delete_range(Range::between(a, b), false)
                .map(|r| (r.header_revision, r.deleted as usize)),
            _ => store.batch(to_write_ops(&ops)).map(|r| {
                let deleted = r
                    .responses
                    .iter()
                    .map(|resp| match resp {
                        etch_engine::OpResponse::Delete(d) => d.deleted as usize,
                        etch_engine::OpResponse::Put(_) => 0,
                    })
                    .sum();
                (r.header_revision, deleted)
            }),
        };
        match result {
            Ok((rev, deleted)) => {
                if deleted != deleted_expect {
                    child_fail(&format!(
                        "thread {t}: {desc} deleted {deleted} keys, expected {deleted_expect}"
                    ));
                }
                emit(&format!("ack {rev} {t} {desc}"));
            }
            Err(e) => child_fail(&format!("thread {t}: {desc} failed: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent's model.
// ---------------------------------------------------------------------------------------------

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ver {
    len: usize,
    create: i64,
    modr: i64,
    version: i64,
}

#[derive(Clone, Debug, Default)]
struct KeyModel {
    live: Option<Ver>,
    /// Every change: (revision if known, state after it).
    events: Vec<(Option<i64>, Option<Ver>)>,
}

#[derive(Clone, Debug, Default)]
struct Keys(BTreeMap<String, KeyModel>);

impl Keys {
    /// Applies one commit at revision `rev` (unknown only for pure deletes resolved from a
    /// crash, whose revision cannot be observed).
    fn apply(&mut self, ops: &[Op], rev: Option<i64>) -> Result<(), String> {
        for op in ops {
            match op {
                Op::Put(k, len) => {
                    let rev = rev.ok_or("a put needs a revision")?;
                    let km = self.0.entry(k.clone()).or_default();
                    let ver = match &km.live {
                        Some(v) => Ver {
                            len: *len,
                            create: v.create,
                            modr: rev,
                            version: v.version + 1,
                        },
                        None => Ver {
                            len: *len,
                            create: rev,
                            modr: rev,
                            version: 1,
                        },
                    };
                    km.live = Some(ver.clone());
                    km.events.push((Some(rev), Some(ver)));
                }
                Op::Del(k) => {
                    if let Some(km) = self.0.get_mut(k) {
                        if km.live.take().is_some() {
                            km.events.push((rev, None));
                        }
                    }
                }
                Op::DelRange(a, b) => {
                    for (_, km) in self.0.range_mut(a.clone()..b.clone()) {
                        if km.live.take().is_some() {
                            km.events.push((rev, None));
                        }
                    }
                }
                Op::Checkpoint => {}
            }
        }
        Ok(())
    }
}

/// An operation that was in flight when its child was killed: applied wholly or not at all.
#[derive(Clone, Debug)]
struct Pending {
    round: usize,
    t: usize,
    ops: Vec<Op>,
    /// Its revision, if applied, is above this (the thread's last acked revision).
    after: i64,
    /// ... and at most this (the revision the next child opened at), if known.
    upto: Option<i64>,
}

#[derive(Default)]
struct Model {
    keys: Keys,
    /// Every revision known to have been committed, with what committed it.
    revs: BTreeMap<i64, String>,
    /// Commits resolved from a crash whose revision is unknown (pure deletes).
    unknown_revs: usize,
    pending: Vec<Pending>,
    max_acked: i64,
}

impl Model {
    fn record_rev(&mut self, rev: i64, what: String) -> Result<(), String> {
        if rev < 2 {
            return Err(format!("{what}: revision {rev} is below 2"));
        }
        if let Some(prev) = self.revs.insert(rev, what.clone()) {
            return Err(format!(
                "revision {rev} acknowledged twice: by {prev:?} and by {what:?}"
            ));
        }
        Ok(())
    }
}

fn describe_kv(kv: &Option<KeyValue>) -> String {
    match kv {
        None => "absent".into(),
        Some(kv) => format!(
            "present(len {}, create {}, mod {}, version {}, lease {})",
            kv.value.len(),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease
        ),
    }
}

fn kv_matches(key: &str, kv: &Option<KeyValue>, exp: &Option<Ver>) -> bool {
    match (kv, exp) {
        (None, None) => true,
        (Some(kv), Some(v)) => {
            kv.key == key.as_bytes()
                && kv.create_revision == v.create
                && kv.mod_revision == v.modr
                && kv.version == v.version
                && kv.lease == 0
                && kv.value.len() == v.len
                && kv.value == value_for(key, v.len)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Kill once this many acks have been read (0: right after the child opened the store).
    Acks(usize),
    /// Kill this long after spawning (may hit the open and its recovery).
    Delay(Duration),
}

struct Ack {
    rev: i64,
    t: usize,
    ops: Vec<Op>,
}

struct RoundResult {
    opened: Option<i64>,
    acks: Vec<Ack>,
    in_flight: Vec<(usize, Vec<Op>)>,
}

fn run_child(
    path: &Path,
    conf: &Conf,
    round: usize,
    child_seed: u64,
    plan: Plan,
) -> Result<RoundResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args([
            common::test_name(module_path!(), "crash_child").as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env(CONF_ENV, format!("{child_seed} {round} {}", conf.encode()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let spawned = Instant::now();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel::<(String, bool)>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let complete = buf.last() == Some(&b'\n');
                    let s = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send((s, complete)).is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut res = RoundResult {
        opened: None,
        acks: Vec::new(),
        in_flight: Vec::new(),
    };
    let mut flying: BTreeMap<usize, Vec<Op>> = BTreeMap::new();
    let mut failure: Option<String> = None;
    let handle = |line: &str,
                  complete: bool,
                  res: &mut RoundResult,
                  flying: &mut BTreeMap<usize, Vec<Op>>|
     -> Result<(), String> {
        let Some(pos) = line.find(MARK) else {
            return Ok(());
        };
        if !complete {
            return Ok(()); // torn line at the kill: not an acknowledgement
        }
        let body = &line[pos + MARK.len()..];
        let mut toks = body.split(' ');
        match toks.next() {
            Some("opened") => {
                let rev = toks
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad line {line:?}"))?;
                res.opened = Some(rev);
            }
            Some("try") => {
                let t: usize = toks
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad line {line:?}"))?;
                let ops = parse_ops(toks)?;
                if let Some(prev) = flying.insert(t, ops) {
                    return Err(format!(
                        "thread {t} started a commit while {prev:?} was open"
                    ));
                }
            }
            Some("ack") => {
                let rev: i64 = toks
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad line {line:?}"))?;
                let t: usize = toks
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad line {line:?}"))?;
                let ops = parse_ops(toks)?;
                match flying.remove(&t) {
                    Some(f) if f == ops => {}
                    other => {
                        return Err(format!(
                            "ack {ops:?} of thread {t} does not match {other:?}"
                        ))
                    }
                }
                res.acks.push(Ack { rev, t, ops });
            }
            Some("err") | Some("panic") => return Err(format!("child reported: {body}")),
            _ => return Err(format!("unknown line {line:?}")),
        }
        Ok(())
    };

    let mut killed_by_us = false;
    loop {
        if let Plan::Acks(n) = plan {
            if res.opened.is_some() && res.acks.len() >= n {
                break;
            }
        }
        let deadline = match plan {
            Plan::Delay(d) => spawned + d,
            Plan::Acks(_) => spawned + STALL_LIMIT,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((line, complete)) => {
                if let Err(e) = handle(&line, complete, &mut res, &mut flying) {
                    failure = Some(e);
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Plan::Acks(n) = plan {
                    failure = Some(format!(
                        "child stalled: {} acks after {STALL_LIMIT:?}, waiting for {n} \
                         (opened: {:?})",
                        res.acks.len(),
                        res.opened
                    ));
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if child.kill().is_ok() {
        killed_by_us = true;
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    // Lines the child wrote before it died are still in the pipe: they were acknowledged too.
    for (line, complete) in rx.iter() {
        if failure.is_none() {
            if let Err(e) = handle(&line, complete, &mut res, &mut flying) {
                failure = Some(e);
            }
        }
    }
    let _ = reader.join();
    if let Some(f) = failure {
        return Err(f);
    }
    if status.signal() != Some(9) {
        return Err(format!(
            "child exited by itself ({status}, kill sent: {killed_by_us}) before the kill"
        ));
    }
    res.in_flight = flying.into_iter().collect();
    Ok(res)
}

#[derive(Default)]
struct Stats {
    /// Checkpoints the children wrote (growth of the meta's checkpoint counter while they ran).
    checkpoints_written: u64,
    /// Kill points at which the WAL file had grown past its initial 4 MiB.
    wal_grown: usize,
    relaxed_sessions: usize,
    kills: usize,
    acks_verified: usize,
    acks_total: usize,
    in_flight_applied: usize,
    in_flight_dropped: usize,
    checkpoint_acks: usize,
    verifications: usize,
    chained: usize,
    kills_before_open: usize,
    sessions: usize,
}

/// Folds the acks of one round into the model.
fn absorb_round(model: &mut Model, round: usize, res: RoundResult) -> Result<usize, String> {
    if let Some(opened) = res.opened {
        if opened < model.max_acked {
            return Err(format!(
                "round {round}: the child opened at revision {opened}, below the acked revision {}",
                model.max_acked
            ));
        }
        for p in model.pending.iter_mut() {
            if p.upto.is_none() {
                p.upto = Some(opened);
            }
        }
    }
    let opened = res.opened.unwrap_or(model.max_acked);
    let mut last: BTreeMap<usize, i64> = BTreeMap::new();
    let mut acks = res.acks;
    let n = acks.len();
    for a in &acks {
        let prev = last.insert(a.t, a.rev).unwrap_or(opened);
        let is_ckpt = a.ops == [Op::Checkpoint];
        if a.rev < prev || (!is_ckpt && a.rev == prev) || a.rev < opened {
            return Err(format!(
                "round {round} thread {}: ack at revision {} after revision {prev} \
                 (opened at {opened})",
                a.t, a.rev
            ));
        }
    }
    acks.sort_by_key(|a| a.rev);
    for a in &acks {
        if a.ops == [Op::Checkpoint] {
            continue;
        }
        model.record_rev(
            a.rev,
            format!("round {round} thread {} {}", a.t, encode_ops(&a.ops)),
        )?;
        model.keys.apply(&a.ops, Some(a.rev))?;
        model.max_acked = model.max_acked.max(a.rev);
    }
    for (t, ops) in res.in_flight {
        model.pending.push(Pending {
            round,
            t,
            ops,
            after: last.get(&t).copied().unwrap_or(opened),
            upto: None,
        });
    }
    Ok(n)
}

/// Decides an in-flight operation from what the store holds: not applied, or wholly applied.
fn resolve_pending(
    model: &mut Model,
    store: &Store,
    p: &Pending,
    store_rev: i64,
    stats: &mut Stats,
) -> Result<(), String> {
    if p.ops == [Op::Checkpoint] {
        return Ok(());
    }
    let what = format!(
        "in-flight op of round {} thread {}: {}",
        p.round,
        p.t,
        encode_ops(&p.ops)
    );
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for op in &p.ops {
        match op {
            Op::Put(k, _) | Op::Del(k) => {
                touched.insert(k.clone());
            }
            Op::DelRange(a, b) => {
                touched.extend(
                    model
                        .keys
                        .0
                        .range(a.clone()..b.clone())
                        .map(|(k, _)| k.clone()),
                );
                let r = store
                    .range(Range::between(a, b))
                    .map_err(|e| format!("{what}: range failed: {e}"))?;
                for kv in r.kvs {
                    touched.insert(String::from_utf8_lossy(&kv.key).into_owned());
                }
            }
            Op::Checkpoint => {}
        }
    }
    let mut observed: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
    for k in &touched {
        let kv = store
            .get(k)
            .map_err(|e| format!("{what}: get {k} failed: {e}"))?;
        observed.insert(k.clone(), kv);
    }
    let before = Keys(
        touched
            .iter()
            .filter_map(|k| model.keys.0.get(k).map(|km| (k.clone(), km.clone())))
            .collect(),
    );
    let live_of = |keys: &Keys, k: &str| keys.0.get(k).and_then(|km| km.live.clone());
    let matches = |keys: &Keys| {
        observed
            .iter()
            .all(|(k, kv)| kv_matches(k, kv, &live_of(keys, k)))
    };
    if matches(&before) {
        stats.in_flight_dropped += 1;
        return Ok(());
    }
    let rev = p.ops.iter().find_map(|op| match op {
        Op::Put(k, _) => observed
            .get(k)
            .and_then(|kv| kv.as_ref().map(|kv| kv.mod_revision)),
        _ => None,
    });
    let has_put = p.ops.iter().any(|op| matches!(op, Op::Put(..)));
    let mut after = before.clone();
    let applied_ok =
        (!has_put || rev.is_some()) && after.apply(&p.ops, rev).is_ok() && matches(&after);
    if !applied_ok {
        let detail: Vec<String> = observed
            .iter()
            .map(|(k, kv)| {
                format!(
                    "{k}: found {}, before {:?}",
                    describe_kv(kv),
                    live_of(&before, k)
                )
            })
            .collect();
        return Err(format!(
            "PARTIAL OR WRONG COMMIT: {what} is neither absent nor wholly applied: {}",
            detail.join("; ")
        ));
    }
    let upto = p.upto.unwrap_or(store_rev);
    if let Some(r) = rev {
        if r <= p.after || r > upto {
            return Err(format!(
                "{what}: applied at revision {r}, outside ({}, {upto}]",
                p.after
            ));
        }
        model.record_rev(r, format!("{what} (in flight, applied)"))?;
    } else {
        model.unknown_revs += 1;
    }
    model.keys.apply(&p.ops, rev)?;
    stats.in_flight_applied += 1;
    Ok(())
}

/// Compares every key of the store with the model.
fn compare_all(model: &Model, store: &Store) -> Result<usize, String> {
    let resp = store
        .range(Range::all())
        .map_err(|e| format!("range(all) failed: {e}"))?;
    let expected: BTreeMap<&String, &Ver> = model
        .keys
        .0
        .iter()
        .filter_map(|(k, km)| km.live.as_ref().map(|v| (k, v)))
        .collect();
    let mut found: BTreeSet<String> = BTreeSet::new();
    for kv in &resp.kvs {
        let k = String::from_utf8_lossy(&kv.key).into_owned();
        match expected.get(&k) {
            None => {
                return Err(format!(
                    "UNEXPECTED KEY {k:?} ({}): no acked or in-flight write explains it{}",
                    describe_kv(&Some(kv.clone())),
                    match model.keys.0.get(&k) {
                        Some(km) => format!(" (model history: {:?})", km.events),
                        None => String::new(),
                    }
                ))
            }
            Some(v) => {
                if !kv_matches(&k, &Some(kv.clone()), &Some((*v).clone())) {
                    return Err(format!(
                        "WRONG VERSION of {k:?}: found {}, expected {v:?} (value ok: {})",
                        describe_kv(&Some(kv.clone())),
                        kv.value == value_for(&k, v.len)
                    ));
                }
            }
        }
        found.insert(k);
    }
    for (k, v) in &expected {
        if !found.contains(*k) {
            let by = model.revs.get(&v.modr).cloned().unwrap_or_default();
            return Err(format!(
                "LOST ACKED WRITE: {k:?} {v:?} (written by {by}) is missing; get says {}",
                describe_kv(&store.get(k).unwrap_or(None))
            ));
        }
    }
    if resp.count != expected.len() as i64 {
        return Err(format!(
            "range(all) count {} != {} keys",
            resp.count,
            expected.len()
        ));
    }
    Ok(expected.len())
}

/// Reads a sample of keys at past revisions (MVCC history must survive recovery too).
fn check_history(model: &Model, store: &Store, rng: &mut Rng) -> Result<(), String> {
    let keys: Vec<&String> = model.keys.0.keys().collect();
    if keys.is_empty() {
        return Ok(());
    }
    let at = |k: &str, rev: i64| -> Result<Option<KeyValue>, String> {
        let r = store
            .range_with(
                &Range::key(k),
                &RangeOptions {
                    revision: rev,
                    ..Default::default()
                },
            )
            .map_err(|e| format!("read of {k} at revision {rev} failed: {e}"))?;
        if r.kvs.len() > 1 {
            return Err(format!(
                "read of {k} at {rev} returned {} keys",
                r.kvs.len()
            ));
        }
        Ok(r.kvs.into_iter().next())
    };
    for _ in 0..20 {
        let k = keys[rng.below(keys.len() as u64) as usize];
        let km = &model.keys.0[k];
        if km.events.iter().any(|(r, _)| r.is_none()) {
            continue;
        }
        let n = km.events.len();
        let mut idx = vec![0, n - 1, rng.below(n as u64) as usize];
        idx.dedup();
        for i in idx {
            let (Some(rev), state) = &km.events[i] else {
                continue;
            };
            let kv = at(k, *rev)?;
            if !kv_matches(k, &kv, state) {
                return Err(format!(
                    "HISTORY: {k} at revision {rev} is {}, expected {state:?}",
                    describe_kv(&kv)
                ));
            }
            let prev_state = if i == 0 {
                None
            } else {
                km.events[i - 1].1.clone()
            };
            let kv = at(k, rev - 1)?;
            if !kv_matches(k, &kv, &prev_state) {
                return Err(format!(
                    "HISTORY: {k} at revision {} is {}, expected {prev_state:?}",
                    rev - 1,
                    describe_kv(&kv)
                ));
            }
        }
    }
    Ok(())
}

/// Reopens a crashed store and checks it against the model; then writes, closes, reopens.
fn verify(
    path: &Path,
    conf: &Conf,
    model: &mut Model,
    round: usize,
    rng: &mut Rng,
    stats: &mut Stats,
) -> Result<(), String> {
    let store = conf
        .options()
        .open(path)
        .map_err(|e| format!("RECOVERY FAILED: open after the crash: {e}"))?;
    let rev = store.revision();
    if rev < model.max_acked {
        return Err(format!(
            "REVISION WENT BACK: store is at revision {rev}, an acked commit had {}",
            model.max_acked
        ));
    }
    store
        .check()
        .map_err(|e| format!("CHECK FAILED after recovery: {e}"))?;
    let pending = std::mem::take(&mut model.pending);
    for p in &pending {
        resolve_pending(model, &store, p, rev, stats)?;
    }
    let live = compare_all(model, &store)?;
    // Every revision in 2..=rev is one commit: acked, in flight and applied, or a probe.
    if let Some((&max, what)) = model.revs.iter().next_back() {
        if max > rev {
            return Err(format!(
                "REVISION WENT BACK: store at {rev}, {what} committed revision {max}"
            ));
        }
    }
    let commits = model.revs.len() + model.unknown_revs;
    if commits as i64 != rev - 1 {
        let missing: Vec<i64> = (2..=rev)
            .filter(|r| !model.revs.contains_key(r))
            .take(10)
            .collect();
        return Err(format!(
            "REVISION ACCOUNTING: store at revision {rev} ({} commits), but {} known commits and {} \
             resolved deletes; unexplained revisions (first 10): {missing:?}",
            rev - 1,
            model.revs.len(),
            model.unknown_revs
        ));
    }
    check_history(model, &store, rng)?;
    let status = store.status().map_err(|e| format!("status: {e}"))?;
    if status.key_count != live as u64 || status.revision != rev {
        return Err(format!(
            "status says {} keys at revision {}, expected {live} at {rev}",
            status.key_count, status.revision
        ));
    }
    // The recovered store takes new writes.
    let probe = format!("p/{round:03}");
    let plen = rng.range(1, 100) as usize;
    let pr = store
        .put(&probe, value_for(&probe, plen))
        .map_err(|e| format!("write after recovery failed: {e}"))?;
    if pr.header_revision != rev + 1 {
        return Err(format!(
            "write after recovery got revision {}, expected {}",
            pr.header_revision,
            rev + 1
        ));
    }
    model.record_rev(rev + 1, format!("probe {probe}"))?;
    model
        .keys
        .apply(&[Op::Put(probe.clone(), plen)], Some(rev + 1))?;
    model.max_acked = rev + 1;
    store.close().map_err(|e| format!("close failed: {e}"))?;
    let wal = wal_path(path);
    if wal.exists() {
        return Err(format!(
            "{} still exists after a clean close",
            wal.display()
        ));
    }
    let store = conf
        .options()
        .open(path)
        .map_err(|e| format!("reopen after a clean close failed: {e}"))?;
    store
        .check()
        .map_err(|e| format!("CHECK FAILED after a clean reopen: {e}"))?;
    if store.revision() != rev + 1 {
        return Err(format!(
            "clean reopen at revision {}, expected {}",
            store.revision(),
            rev + 1
        ));
    }
    if rng.chance(25) {
        compare_all(model, &store)?;
    } else {
        let kv = store.get(&probe).map_err(|e| e.to_string())?;
        let exp = model.keys.0[&probe].live.clone();
        if !kv_matches(&probe, &kv, &exp) {
            return Err(format!("probe after reopen: {}", describe_kv(&kv)));
        }
    }
    store
        .close()
        .map_err(|e| format!("second close failed: {e}"))?;
    stats.verifications += 1;
    Ok(())
}

/// The higher checkpoint counter of the two meta slots (0 if there is no valid one yet).
fn checkpoint_counter(path: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let slot = |off: usize| -> Option<u64> {
        let m = bytes.get(off..off + 256)?;
        let crc = u32::from_le_bytes(m[252..256].try_into().ok()?);
        (m[0..8] == *b"etch\x00db\x1a" && crc32fast::hash(&m[..252]) == crc)
            .then(|| u64::from_le_bytes(m[24..32].try_into().unwrap()))
    };
    let ps = bytes
        .get(12..16)
        .map_or(4096, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    slot(0).max(slot(ps)).unwrap_or(0)
}

fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    s.into()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// Writes to stderr directly (not through `eprintln!`) so the line shows without --nocapture.
fn report(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

#[test]
fn sigkill_crash_recovery() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = env_u64("ETCH_CRASH_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        splitmix(t ^ std::process::id() as u64)
    });
    let iterations = env_u64("ETCH_CRASH_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS as u64) as usize;
    let keep = std::env::var("ETCH_CRASH_KEEP").is_ok();
    report(&format!(
        "crash test: seed {seed} (reproduce with ETCH_CRASH_SEED={seed}), {iterations} kill points"
    ));
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    while stats.kills < iterations {
        stats.sessions += 1;
        let conf = Conf::random(&mut rng);
        stats.relaxed_sessions += conf.relaxed as usize;
        let rounds = (rng.range(1, 8) as usize).min(iterations - stats.kills);
        let dir = tempfile::Builder::new()
            .prefix("etch-crash-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("crash.etch");
        let mut model = Model::default();
        let mut unverified_acks = 0usize;
        for round in 0..rounds {
            let plan = if rng.chance(65) {
                Plan::Acks(if rng.chance(8) {
                    0
                } else if conf.large_pct >= 40 && rng.chance(50) {
                    rng.range(200, 700) as usize
                } else {
                    rng.range(1, 250) as usize
                })
            } else {
                // Short delays kill the child while it starts or recovers the file.
                let ms = if rng.chance(40) {
                    rng.range(0, 12)
                } else {
                    rng.range(0, 120)
                };
                Plan::Delay(Duration::from_millis(ms))
            };
            let child_seed = rng.next();
            let context = format!(
                "seed {seed}, session {} ({conf:?}), round {round}, plan {plan:?}, db {}",
                stats.sessions,
                path.display()
            );
            let counter_before = checkpoint_counter(&path);
            let outcome = run_child(&path, &conf, round, child_seed, plan)
                .map_err(|e| format!("child: {e}"))
                .and_then(|res| {
                    stats.checkpoints_written +=
                        checkpoint_counter(&path).saturating_sub(counter_before);
                    if std::fs::metadata(wal_path(&path)).map_or(0, |m| m.len()) > 4 << 20 {
                        stats.wal_grown += 1;
                    }
                    if res.opened.is_none() {
                        stats.kills_before_open += 1;
                    }
                    stats.checkpoint_acks += res
                        .acks
                        .iter()
                        .filter(|a| a.ops == [Op::Checkpoint])
                        .count();
                    absorb_round(&mut model, round, res)
                })
                .and_then(|n| {
                    stats.kills += 1;
                    stats.acks_total += n;
                    unverified_acks += n;
                    if round + 1 == rounds || rng.chance(70) {
                        verify(&path, &conf, &mut model, round, &mut rng, &mut stats)?;
                        stats.acks_verified += unverified_acks;
                        unverified_acks = 0;
                    } else {
                        stats.chained += 1;
                    }
                    Ok(())
                });
            if let Err(e) = outcome {
                let kept = dir.keep();
                panic!(
                    "crash test failed: {e}\n  context: {context}\n  database kept in {}\n  \
                     reproduce with ETCH_CRASH_SEED={seed}",
                    kept.display()
                );
            }
        }
        if keep {
            let kept = dir.keep();
            report(&format!("kept {}", kept.display()));
        }
    }
    report(&format!(
        "crash test summary: seed {seed}: {} kill points in {} sessions ({} relaxed-durability; \
         {} kills before the store opened, {} crashed files recovered by the next child); \
         {} acked commits verified of {}; in-flight commits at the kill: {} applied, {} not \
         applied; {} checkpoints written by children ({} explicit); WAL grown past 4 MiB at {} \
         kill points; {} verifications; {:.1?}",
        stats.kills,
        stats.sessions,
        stats.relaxed_sessions,
        stats.kills_before_open,
        stats.chained,
        stats.acks_verified,
        stats.acks_total,
        stats.in_flight_applied,
        stats.in_flight_dropped,
        stats.checkpoints_written,
        stats.checkpoint_acks,
        stats.wal_grown,
        stats.verifications,
        started.elapsed()
    ));
}
