//! `etch-bench scale`: how etch and LMDB behave as a store grows from 1M keys to `--max-keys`.
//!
//! ```text
//! cargo run --release -p etch-bench -- scale [--max-keys N] [--step N] [--quick]
//!                                            [--engines etch,lmdb]
//! ```
//!
//! Each engine runs in a child process of its own (so heap and peak RSS are its own), in a fresh
//! directory under the current one, removed at the end. The load adds `--step` keys (default
//! 1,000,000) at a time in durable batches of 10,000 (24-byte random keys, 150-byte random
//! values, generated from the key's index so nothing is kept in memory); after each step it
//! prints:
//!
//! * load rate of the step, and its median and worst 10k-batch commit;
//! * RSS split into heap (anonymous memory) and mapped file (file-backed resident pages), from
//!   `/proc/self/smaps_rollup`;
//! * point-read latency: the mean over random loaded keys in one read transaction;
//! * single durable put p50 and p99: overwrites of random loaded keys, one key per commit;
//! * the file size on disk.
//!
//! After the load: close, reopen and the first read (timed together); etch's `check()`;
//! overwriting `--step` loaded keys in 10k batches (median and worst batch); then etch's
//! `compact(revision)` and `defrag` (LMDB: a compacting copy), with file sizes and heap.
//! `--quick` (200,000 keys in steps of 50,000, smaller samples) is the CI smoke run.
//!
//! With `ETCH_SCALE_PROFILE=1` in the environment, each step (and the overwrite) also prints
//! where etch's median batch and its three slowest spent their time, from the store's commit
//! clocks ([`etch_engine::CommitProfile`]): writer lock, apply, WAL append, seal (page writes,
//! file growth, remap), WAL sync, and the checkpoints that ran meanwhile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use etch_engine::{CommitProfile, Store, WriteOp};
use heed::types::Bytes;
use heed::{CompactionOption, Database, Env, EnvOpenOptions};

/// Keys per durable batch of the load and of the overwrite.
pub(crate) const BATCH: u64 = 10_000;
const KEY_LEN: usize = 24;
const VALUE_LEN: usize = 150;

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    max_keys: u64,
    step: u64,
    /// Point reads per step.
    reads: u64,
    /// Single durable puts per step.
    puts: u64,
}

impl Plan {
    fn args(&self) -> [String; 4] {
        [
            self.max_keys.to_string(),
            self.step.to_string(),
            self.reads.to_string(),
            self.puts.to_string(),
        ]
    }

    fn parse(args: &mut impl Iterator<Item = String>) -> Option<Plan> {
        let mut n = || args.next()?.parse::<u64>().ok();
        Some(Plan {
            max_keys: n()?,
            step: n()?,
            reads: n()?,
            puts: n()?,
        })
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: etch-bench scale [--max-keys N] [--step N] [--puts N] [--quick] [--engines etch,lmdb]"
    );
    std::process::exit(2)
}

/// splitmix64: a bijection, so distinct indices give distinct keys.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(&mix(seed ^ (i << 56)).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// The key of index `i`: its first 8 bytes are a bijection of `i`, so keys never collide.
pub(crate) fn key(i: u64) -> Vec<u8> {
    let mut k = mix(i).to_be_bytes().to_vec();
    k.extend_from_slice(&fill(i ^ 0x5EED, KEY_LEN - 8));
    k
}

/// Value of key `i` in generation `generation` (0: the load; then each overwrite).
pub(crate) fn value(i: u64, generation: u64) -> Vec<u8> {
    fill(
        i.wrapping_mul(31).wrapping_add(generation << 40) ^ 0xA11CE,
        VALUE_LEN,
    )
}

/// The two engines under test, with just what this benchmark needs.
trait Scaled {
    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]);
    /// Reads every key in one read transaction; returns the value bytes seen.
    fn read_all(&self, keys: &[Vec<u8>]) -> u64;
    fn close(&mut self);
    fn reopen(&mut self);
    fn file_size(&self) -> u64;
    /// The etch store, for what only etch has (check, compact, defrag).
    fn etch(&self) -> Option<&Store> {
        None
    }
    /// The LMDB environment, for its compacting copy.
    fn lmdb(&self) -> Option<&Env> {
        None
    }
    /// etch's per-phase commit clocks (see [`etch_engine::CommitProfile`]).
    fn profile(&self) -> Option<CommitProfile> {
        None
    }
}

struct EtchScaled {
    store: Option<Store>,
    path: PathBuf,
}

impl EtchScaled {
    fn open_store(path: &Path) -> Store {
        // As a new user would open it, except for batches larger than etcd's request limits, and
        // with automatic compaction off: the default retention (the last 100,000 changes) would
        // compact the overwrite's history in the background while it runs, and the figure below
        // is what one `compact(revision)` of all of it costs.
        etch_engine::Options::new()
            .auto_compaction(etch_engine::AutoCompaction::Off)
            .max_txn_ops(BATCH as usize)
            .max_request_bytes(64 << 20)
            .quota_bytes(None)
            .open(path)
            .expect("open etch store")
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("etch store is open")
    }
}

impl Scaled for EtchScaled {
    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) {
        let ops = pairs.iter().map(|(k, v)| WriteOp::put(k, v)).collect();
        self.store().batch(ops).expect("etch batch");
    }

    fn read_all(&self, keys: &[Vec<u8>]) -> u64 {
        let txn = self.store().read().expect("etch read");
        keys.iter()
            .map(|k| {
                txn.get_ref(k)
                    .expect("etch get")
                    .map_or(0, |kv| kv.value.len() as u64)
            })
            .sum()
    }

    fn close(&mut self) {
        let store = self.store.take().expect("etch store is open");
        store.close().expect("close etch store");
    }

    fn reopen(&mut self) {
        self.store = Some(EtchScaled::open_store(&self.path));
    }

    fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn etch(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    fn profile(&self) -> Option<CommitProfile> {
        self.store.as_ref().map(Store::commit_profile)
    }
}

struct LmdbScaled {
    env: Option<Env>,
    db: Option<Database<Bytes, Bytes>>,
    dir: PathBuf,
}

impl LmdbScaled {
    fn open_env(dir: &Path) -> (Env, Database<Bytes, Bytes>) {
        // SAFETY: the environment lives in a directory of this run that no other process opens,
        // and an earlier `Env` of this process on it was fully closed first (see `close`),
        // which is what heed's `open` requires.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(64 << 30)
                .max_dbs(1)
                .open(dir)
                .expect("open lmdb env")
        };
        let db = crate::engines::lmdb::kv_database(&env);
        (env, db)
    }

    fn env(&self) -> &Env {
        self.env.as_ref().expect("lmdb env is open")
    }

    fn db(&self) -> Database<Bytes, Bytes> {
        self.db.expect("lmdb db is open")
    }
}

impl Scaled for LmdbScaled {
    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) {
        let mut txn = self.env().write_txn().expect("lmdb write_txn");
        for (k, v) in pairs {
            self.db().put(&mut txn, k, v).expect("lmdb put");
        }
        txn.commit().expect("lmdb commit");
    }

    fn read_all(&self, keys: &[Vec<u8>]) -> u64 {
        let txn = self.env().read_txn().expect("lmdb read_txn");
        keys.iter()
            .map(|k| {
                self.db()
                    .get(&txn, k)
                    .expect("lmdb get")
                    .map_or(0, |v| v.len() as u64)
            })
            .sum()
    }

    fn close(&mut self) {
        self.db = None;
        let env = self.env.take().expect("lmdb env is open");
        env.prepare_for_closing().wait();
    }

    fn reopen(&mut self) {
        let (env, db) = LmdbScaled::open_env(&self.dir);
        self.env = Some(env);
        self.db = Some(db);
    }

    fn file_size(&self) -> u64 {
        std::fs::metadata(self.dir.join("data.mdb")).map_or(0, |m| m.len())
    }

    fn lmdb(&self) -> Option<&Env> {
        self.env.as_ref()
    }
}

/// Resident memory from `/proc/self/smaps_rollup`: (anonymous, file-backed) bytes.
pub(crate) fn rss_split() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps_rollup") else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    let rss = field("Rss:");
    let anon = field("Anonymous:");
    (anon, rss.saturating_sub(anon))
}

/// This process's peak resident set size in bytes (`VmHWM`; 0 if unreadable).
pub(crate) fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Value at quantile `q` of sorted `v`.
pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Whether to print where the median and the slowest batches of each step spent their time
/// (`ETCH_SCALE_PROFILE=1`; etch only). Off by default: the table stays the same.
fn profiling() -> bool {
    std::env::var_os("ETCH_SCALE_PROFILE").is_some_and(|v| v != "0")
}

/// One batch's commit time and, with [`profiling`], what etch's commit clocks and the kernel's
/// accounting of the committing thread say about it.
struct Batch {
    ms: f64,
    /// (phases during the batch, a checkpoint's I/O was running when it began).
    profile: Option<(CommitProfile, bool)>,
    /// The committing thread's scheduler and fault counts during the batch.
    thread: ThreadTimes,
}

/// The calling thread's CPU time, time spent runnable but waiting for a CPU (other processes
/// on the machine), and major page faults: `/proc/thread-self/schedstat` and `.../stat`.
/// Zero where unavailable. Wall time minus CPU minus run-queue wait is time the thread was
/// blocked (I/O, locks, sleeping).
#[derive(Clone, Copy, Default)]
struct ThreadTimes {
    cpu_ns: u64,
    runq_ns: u64,
    major_faults: u64,
}

impl ThreadTimes {
    fn now() -> ThreadTimes {
        let sched = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        let mut f = sched
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (cpu_ns, runq_ns) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
        // Fields after the command name's closing parenthesis: state is field 3, majflt 12.
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let major_faults = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(12 - 3))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        ThreadTimes {
            cpu_ns,
            runq_ns,
            major_faults,
        }
    }

    fn since(&self, earlier: &ThreadTimes) -> ThreadTimes {
        ThreadTimes {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            runq_ns: self.runq_ns.saturating_sub(earlier.runq_ns),
            major_faults: self.major_faults.saturating_sub(earlier.major_faults),
        }
    }
}

/// Writes keys `[from, to)` with `generation`'s values in 10k batches; returns the sorted batch
/// times in ms and the total time. With [`profiling`], prints where the median batch and the
/// slowest ones spent their time.
fn write_range(engine: &dyn Scaled, from: u64, to: u64, generation: u64) -> (Vec<f64>, Duration) {
    let profile = profiling();
    let mut batches = Vec::new();
    let started = Instant::now();
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let pairs: Vec<_> = (i..end).map(|j| (key(j), value(j, generation))).collect();
        let before = if profile { engine.profile() } else { None };
        let thread_before = if profile {
            ThreadTimes::now()
        } else {
            ThreadTimes::default()
        };
        let t = Instant::now();
        engine.write(&pairs);
        let elapsed = ms(t.elapsed());
        let thread = if profile {
            ThreadTimes::now().since(&thread_before)
        } else {
            ThreadTimes::default()
        };
        let after = if profile { engine.profile() } else { None };
        batches.push(Batch {
            ms: elapsed,
            thread,
            profile: before
                .zip(after)
                .map(|(b, a)| (a.since(&b), b.checkpoint_io_running)),
        });
        i = end;
    }
    let total = started.elapsed();
    if profile {
        print_profiles(&batches);
    }
    let mut times: Vec<f64> = batches.iter().map(|b| b.ms).collect();
    times.sort_by(f64::total_cmp);
    (times, total)
}

/// Prints the phases of the median batch and of the slowest three (see [`profiling`]).
fn print_profiles(batches: &[Batch]) {
    let mut order: Vec<usize> = (0..batches.len()).collect();
    order.sort_by(|&a, &b| batches[a].ms.total_cmp(&batches[b].ms));
    let Some(&median) = order.get(order.len() / 2) else {
        return;
    };
    // Each batch's wall time without its run-queue wait: the time the engine itself took
    // (CPU and blocking), which other processes on the machine do not inflate.
    let mut own: Vec<f64> = batches
        .iter()
        .map(|b| (b.ms - b.thread.runq_ns as f64 / 1e6).max(0.0))
        .collect();
    own.sort_by(f64::total_cmp);
    let mut waits: Vec<f64> = batches
        .iter()
        .map(|b| b.thread.runq_ns as f64 / 1e6)
        .collect();
    waits.sort_by(f64::total_cmp);
    let (own_median, own_worst) = (quantile(&own, 0.5), quantile(&own, 1.0));
    println!(
        "  batches without waiting for a cpu: median / worst {own_median:.0} / {own_worst:.0} ms ({:.1}x); waiting for a cpu median / worst {:.0} / {:.0} ms",
        own_worst / own_median.max(f64::MIN_POSITIVE),
        quantile(&waits, 0.5),
        quantile(&waits, 1.0)
    );
    // The step's WAL syncs and seals over all its batches (what the writeback's timing moves).
    let phase = |f: fn(&CommitProfile) -> Duration| -> (f64, f64, f64) {
        let mut v: Vec<f64> = batches
            .iter()
            .filter_map(|b| b.profile.map(|(p, _)| ms(f(&p))))
            .collect();
        v.sort_by(f64::total_cmp);
        (v.iter().sum::<f64>(), quantile(&v, 0.5), quantile(&v, 1.0))
    };
    let (sync_sum, sync_median, sync_max) = phase(|p| p.wal_sync);
    let (seal_sum, seal_median, seal_max) = phase(|p| p.seal);
    println!(
        "  WAL sync total {sync_sum:.0} ms, median / worst {sync_median:.1} / {sync_max:.1} ms; seal total {seal_sum:.0} ms, median / worst {seal_median:.1} / {seal_max:.1} ms"
    );
    let slowest = order.iter().rev().take(3);
    for (label, &n) in std::iter::once(("median", &median)).chain(slowest.map(|n| ("slow", n))) {
        let b = &batches[n];
        let Some((p, ckpt_running)) = b.profile else {
            continue;
        };
        let cpu = b.thread.cpu_ns as f64 / 1e6;
        let runq = b.thread.runq_ns as f64 / 1e6;
        println!(
            "  {label} batch {n}: thread cpu {cpu:.0} ms, waiting for a cpu {runq:.0} ms, blocked {:.0} ms, major faults {}",
            (b.ms - cpu - runq).max(0.0),
            b.thread.major_faults
        );
        println!(
            "  {label} batch {n}: {:.0} ms = lock {:.1} + apply {:.1} + wal {:.1} + wal-full ckpt {:.1} + wal-full wait {:.1} + follow {:.1} + seal-lock {:.1} + seal {:.1} (grow {:.1} x{}, remap {:.1} x{}) + wal sync {:.1}; checkpoints: {} started, start {:.1}, io {:.1}, finish-wait {:.1}, finish {:.1}, io running at start/end {}/{}",
            b.ms,
            ms(p.writer_wait),
            ms(p.apply),
            ms(p.wal_append),
            ms(p.wal_full_checkpoint),
            ms(p.wal_full_drain),
            ms(p.sync_follow),
            ms(p.seal_lock_wait),
            ms(p.seal),
            ms(p.file_grow),
            p.file_grows,
            ms(p.map_remap),
            p.map_remaps,
            ms(p.wal_sync),
            p.checkpoints,
            ms(p.checkpoint_start),
            ms(p.checkpoint_io),
            ms(p.checkpoint_finish_wait),
            ms(p.checkpoint_finish),
            ckpt_running,
            p.checkpoint_io_running,
        );
    }
}

/// A deterministic sample of `n` indices below `loaded`.
pub(crate) fn sample(n: u64, loaded: u64, salt: u64) -> Vec<u64> {
    (0..n).map(|j| mix(j ^ (salt << 32)) % loaded).collect()
}

/// Runs the whole plan against `name` in this process, printing rows as it goes.
fn run_engine(name: &str, plan: Plan) {
    let dir = tempfile::tempdir_in(".").expect("create temporary directory");
    let mut engine: Box<dyn Scaled> = match name {
        "etch" => {
            let path = dir.path().join("scale.etch");
            Box::new(EtchScaled {
                store: Some(EtchScaled::open_store(&path)),
                path,
            })
        }
        "lmdb" => {
            let env_dir = dir.path().join("lmdb");
            std::fs::create_dir(&env_dir).expect("create lmdb directory");
            let (env, db) = LmdbScaled::open_env(&env_dir);
            Box::new(LmdbScaled {
                env: Some(env),
                db: Some(db),
                dir: env_dir,
            })
        }
        _ => usage(),
    };
    println!(
        "| {name} keys | load k/s | batch median / worst ms | heap / mapped MiB | read us | put p50 / p99 us | file MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut loaded = 0;
    let mut put_generation = 1_000;
    while loaded < plan.max_keys {
        let to = (loaded + plan.step).min(plan.max_keys);
        let (batches, total) = write_range(engine.as_ref(), loaded, to, 0);
        loaded = to;
        let rate = (plan.step as f64) / total.as_secs_f64() / 1e3;
        let (heap, mapped) = rss_split();

        let keys: Vec<Vec<u8>> = sample(plan.reads, loaded, loaded)
            .into_iter()
            .map(key)
            .collect();
        let t = Instant::now();
        let bytes = engine.read_all(&keys);
        let read_us = t.elapsed().as_secs_f64() * 1e6 / plan.reads as f64;
        assert_eq!(
            bytes,
            plan.reads * VALUE_LEN as u64,
            "{name}: a read missed"
        );

        let mut puts = Vec::new();
        // With profiling: (wall us, the thread's run-queue wait us) of each put, and the wall
        // us of the puts made while a checkpoint's main-file I/O ran (at their start or end)
        // and of the others.
        let mut put_waits = Vec::new();
        let (mut during_checkpoint, mut outside_checkpoint) = (Vec::new(), Vec::new());
        // With profiling: each put's WAL sync, and the rest of its time, in us.
        let (mut put_syncs, mut put_rest) = (Vec::new(), Vec::new());
        for i in sample(plan.puts, loaded, loaded + 1) {
            put_generation += 1;
            let pair = [(key(i), value(i, put_generation))];
            let before = profiling().then(ThreadTimes::now);
            let profile_before = before.and_then(|_| engine.profile());
            let t = Instant::now();
            engine.write(&pair);
            let us = t.elapsed().as_secs_f64() * 1e6;
            puts.push(us);
            if let Some(before) = before {
                let runq = ThreadTimes::now().since(&before).runq_ns as f64 / 1e3;
                put_waits.push((us, runq));
            }
            if let (Some(b), Some(a)) = (profile_before, engine.profile()) {
                let running = b.checkpoint_io_running
                    || a.checkpoint_io_running
                    || a.checkpoints != b.checkpoints;
                if running {
                    during_checkpoint.push(us);
                } else {
                    outside_checkpoint.push(us);
                }
                let sync_us = a.since(&b).wal_sync.as_secs_f64() * 1e6;
                put_syncs.push(sync_us);
                put_rest.push((us - sync_us).max(0.0));
            }
        }
        if !put_syncs.is_empty() {
            put_syncs.sort_by(f64::total_cmp);
            put_rest.sort_by(f64::total_cmp);
            println!(
                "  puts: WAL sync p50 / p99 {:.0} / {:.0} us; the rest of a put p50 / p99 {:.0} / {:.0} us",
                quantile(&put_syncs, 0.5),
                quantile(&put_syncs, 0.99),
                quantile(&put_rest, 0.5),
                quantile(&put_rest, 0.99)
            );
        }
        for (what, v) in [
            ("during a checkpoint's I/O", &mut during_checkpoint),
            ("with no checkpoint running", &mut outside_checkpoint),
        ] {
            if !v.is_empty() {
                v.sort_by(f64::total_cmp);
                println!(
                    "  puts {what}: {} of {}, p50 / p99 {:.0} / {:.0} us",
                    v.len(),
                    puts.len(),
                    quantile(v, 0.5),
                    quantile(v, 0.99)
                );
            }
        }
        puts.sort_by(f64::total_cmp);
        if !put_waits.is_empty() {
            put_waits.sort_by(|a, b| a.0.total_cmp(&b.0));
            let own: Vec<f64> = {
                let mut v: Vec<f64> = put_waits.iter().map(|&(us, q)| (us - q).max(0.0)).collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let at = |q: f64| put_waits[((put_waits.len() - 1) as f64 * q).round() as usize];
            let (p50, p99) = (at(0.5), at(0.99));
            println!(
                "  puts: p50 {:.0} us (waiting for a cpu {:.0}), p99 {:.0} us (waiting for a cpu {:.0}); without the wait p50 / p99 {:.0} / {:.0} us",
                p50.0,
                p50.1,
                p99.0,
                p99.1,
                quantile(&own, 0.5),
                quantile(&own, 0.99)
            );
        }
        println!(
            "| {:.2}M | {rate:.1} | {:.0} / {:.0} | {:.0} / {:.0} | {read_us:.2} | {:.0} / {:.0} | {:.0} |",
            loaded as f64 / 1e6,
            quantile(&batches, 0.5),
            quantile(&batches, 1.0),
            mib(heap),
            mib(mapped),
            quantile(&puts, 0.5),
            quantile(&puts, 0.99),
            mib(engine.file_size()),
        );
    }

    let t = Instant::now();
    engine.close();
    let close = t.elapsed();
    let t = Instant::now();
    engine.reopen();
    let first = engine.read_all(&[key(0)]);
    let reopen = t.elapsed();
    assert_eq!(first, VALUE_LEN as u64, "{name}: first read after reopen");
    println!(
        "- close {:.1} ms; reopen + first read {:.2} ms",
        ms(close),
        ms(reopen)
    );
    if let Some(store) = engine.etch() {
        let t = Instant::now();
        let report = store.check().expect("etch check");
        println!(
            "- check(): {:.2} s ({} keys, {} tree pages)",
            t.elapsed().as_secs_f64(),
            report.keys,
            report.tree_pages
        );
    }
    let overwrite = plan.step.min(plan.max_keys);
    let (batches, total) = write_range(engine.as_ref(), 0, overwrite, 1);
    let (heap, _) = rss_split();
    println!(
        "- overwrite {overwrite} keys: {:.1} s, batch median / worst {:.0} / {:.0} ms; file {:.0} MiB, heap {:.0} MiB",
        total.as_secs_f64(),
        quantile(&batches, 0.5),
        quantile(&batches, 1.0),
        mib(engine.file_size()),
        mib(heap)
    );
    if let Some(store) = engine.etch() {
        let t = Instant::now();
        store.compact(store.revision()).expect("etch compact");
        let compact = t.elapsed();
        let (heap_compact, _) = rss_split();
        let peak_compact = peak_rss();
        let t = Instant::now();
        let (before, after) = store.defrag().expect("etch defrag");
        let defrag = t.elapsed();
        let (heap_defrag, _) = rss_split();
        println!(
            "- compact(revision) {:.1} s (heap {:.0} MiB, peak RSS so far {:.0} MiB); defrag {:.1} s, {:.0} -> {:.0} MiB (heap {:.0} MiB)",
            compact.as_secs_f64(),
            mib(heap_compact),
            mib(peak_compact),
            defrag.as_secs_f64(),
            mib(before),
            mib(after),
            mib(heap_defrag)
        );
    } else if let Some(env) = engine.lmdb() {
        let copy = dir.path().join("compact.mdb");
        let t = Instant::now();
        env.copy_to_path(&copy, CompactionOption::Enabled)
            .expect("lmdb compacting copy");
        let size = std::fs::metadata(&copy).map_or(0, |m| m.len());
        println!(
            "- compacting copy {:.1} s, {:.0} -> {:.0} MiB",
            t.elapsed().as_secs_f64(),
            mib(engine.file_size()),
            mib(size)
        );
    }
    let t = Instant::now();
    engine.close();
    println!(
        "- final close {:.1} ms; peak RSS {:.0} MiB",
        ms(t.elapsed()),
        mib(peak_rss())
    );
    drop(engine);
    dir.close().expect("remove temporary directory");
}

/// `etch-bench scale ...`: runs each engine in its own child process (see [`run_engine`]).
pub fn main(mut args: impl Iterator<Item = String>) {
    let mut plan = Plan {
        max_keys: 16_000_000,
        step: 1_000_000,
        reads: 100_000,
        puts: 1_000,
    };
    let mut engines = vec!["etch".to_string(), "lmdb".to_string()];
    while let Some(arg) = args.next() {
        let mut number = || {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--max-keys" => plan.max_keys = number(),
            "--step" => plan.step = number(),
            // More puts per size steady the p99 (1,000 make it the 10th slowest put).
            "--puts" => plan.puts = number(),
            "--quick" => {
                plan = Plan {
                    max_keys: 200_000,
                    step: 50_000,
                    reads: 10_000,
                    puts: 200,
                }
            }
            "--engines" => {
                let list = args.next().unwrap_or_else(|| usage());
                engines = list.split(',').map(str::to_string).collect();
                if engines.iter().any(|e| e != "etch" && e != "lmdb") {
                    usage();
                }
            }
            _ => usage(),
        }
    }
    println!(
        "etch-bench scale: up to {} keys in steps of {} ({KEY_LEN}-byte keys, {VALUE_LEN}-byte values, durable batches of {BATCH})",
        plan.max_keys, plan.step
    );
    for name in &engines {
        let exe = std::env::current_exe().expect("locate etch-bench executable");
        let status = Command::new(exe)
            .arg("scale-engine")
            .arg(name)
            .args(plan.args())
            .status()
            .expect("run engine process");
        assert!(status.success(), "{name} scale run failed: {status}");
    }
}

/// `etch-bench scale-engine NAME MAX STEP READS PUTS` (internal): one engine's run.
pub fn engine_main(mut args: impl Iterator<Item = String>) {
    let name = args.next().unwrap_or_else(|| usage());
    let plan = Plan::parse(&mut args).unwrap_or_else(|| usage());
    run_engine(&name, plan);
}
