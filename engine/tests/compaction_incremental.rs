//! Incremental compaction: a compaction is a decision (the compact revision rises) and then
//! bounded steps, each its own commit (see `keyspace/compact.rs`). These tests cut the power at
//! every sync of a multi-step compaction, compare compactions left half-done (decided through
//! `Store::apply`, advanced by later writes) against a model of etcd's keyspace and against a
//! store that compacted in one go, check that writers proceed during a compaction and during
//! `check()`, and that the default change-count retention bounds an overwrite loop's file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_engine::sim::{CrashPolicy, SimDisk, SimImage};
use etch_engine::{
    AutoCompaction, CheckReport, Command, Error, KeyValue, Options, Range, RangeOptions, Store,
    WriteOp,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

const DB: &str = "/sim/inc.etch";

fn contents(store: &Store, rev: i64) -> Result<Vec<KeyValue>, Error> {
    store
        .range_with(
            &Range::all(),
            &RangeOptions {
                revision: rev,
                ..Default::default()
            },
        )
        .map(|r| r.kvs)
}

fn sim_options(disk: &SimDisk) -> Options {
    Options::new()
        .max_txn_ops(10_000)
        .max_request_bytes(64 << 20)
        .storage(Arc::new(disk.clone()))
        .wal_capacity(8 << 20)
        .checkpoint_interval(Duration::from_secs(3600))
        .auto_compaction(AutoCompaction::Off)
        // No background writes: the only compaction steps are the test's, so every run syncs
        // at the same points.
        .background_writes(false)
}

fn scratch(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

const KEYS: usize = 1500;
const ROUNDS: usize = 30;
/// Rounds before the compaction target: ~38,000 log entries at or below it, several steps.
const TARGET_ROUND: usize = 28;

/// Value of key `i` in round `r`: small, with an overflow value now and then (whose pages
/// compaction must free).
fn value(i: usize, r: usize) -> Vec<u8> {
    let len = if (i * 31 + r).is_multiple_of(97) {
        6000
    } else {
        20 + (i + r) % 80
    };
    vec![b'a' + ((i + r) % 26) as u8; len]
}

/// The history the compaction drops: every key overwritten each round, some deleted.
fn load(store: &Store) -> i64 {
    let mut target = 0;
    for r in 0..ROUNDS {
        let ops: Vec<WriteOp> = (0..KEYS)
            .filter(|i| (i + r) % 11 != 0)
            .map(|i| WriteOp::put(format!("k/{i:04}"), value(i, r)))
            .collect();
        let mut rev = store.batch(ops).unwrap().header_revision;
        if r % 4 == 3 {
            rev = store
                .delete_range(Range::prefix(format!("k/00{}", r % 10)), false)
                .unwrap()
                .header_revision;
        }
        if r + 1 == TARGET_ROUND {
            target = rev;
        }
    }
    store.checkpoint().unwrap();
    target
}

/// What a run saw: the acknowledged states and where its compaction began, in syncs.
struct Run {
    at_target: Vec<KeyValue>,
    current: Vec<KeyValue>,
    target: i64,
    syncs_before_compaction: u64,
    compacted: Option<Result<(), Error>>,
}

/// Loads, then compacts to the target revision and checkpoints, stopping at the first error.
fn run(disk: &SimDisk) -> Run {
    let store = sim_options(disk).open(DB).unwrap();
    let target = load(&store);
    let mut run = Run {
        at_target: contents(&store, target).unwrap(),
        current: contents(&store, 0).unwrap(),
        target,
        syncs_before_compaction: disk.syncs(),
        compacted: None,
    };
    let result = store
        .compact(target)
        .map(|_| ())
        .and_then(|_| store.checkpoint());
    run.compacted = Some(result);
    let _ = store.close();
    run
}

/// Reopens `image` and checks it against the full run: the compact revision is the old one or
/// the target, every readable revision reads as before, `check()` passes half-way, and
/// finishing (or redoing) the compaction reaches exactly the reference's history.
fn verify(root: &Path, image: &SimImage, full: &Run, reference: &CheckReport, what: &str) {
    let dir = scratch(root, "verify");
    let disk = SimDisk::from_image(&dir, image).unwrap();
    let store = sim_options(&disk)
        .open(DB)
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let compacted = store.status().unwrap().compact_revision;
    assert!(
        compacted == 0 || compacted == full.target,
        "{what}: compact revision {compacted}, expected 0 or {}",
        full.target
    );
    assert_eq!(
        contents(&store, 0).unwrap(),
        full.current,
        "{what}: current"
    );
    assert_eq!(
        contents(&store, full.target).unwrap(),
        full.at_target,
        "{what}: at the compact revision"
    );
    if compacted == full.target {
        assert!(matches!(
            contents(&store, full.target - 1),
            Err(Error::Compacted { .. })
        ));
    }
    store
        .check()
        .unwrap_or_else(|e| panic!("{what}: check() of the interrupted compaction: {e}"));
    if compacted == 0 {
        store.compact(full.target).unwrap();
    } else {
        store.finish_compaction().unwrap();
    }
    let report = store.check().unwrap();
    assert_eq!(
        (report.history_records, report.log_records, report.keys),
        (
            reference.history_records,
            reference.log_records,
            reference.keys
        ),
        "{what}: finishing reaches the reference's history"
    );
    assert_eq!(contents(&store, full.target).unwrap(), full.at_target);
    // A second power cut after the finish loses nothing acknowledged.
    let rev = store.put("post/crash", "1").unwrap().header_revision;
    let second = disk.crash_image(CrashPolicy::DropUnsynced);
    drop(store);
    let disk2 = SimDisk::from_image(&scratch(root, "verify2"), &second).unwrap();
    let store2 = sim_options(&disk2).open(DB).unwrap();
    assert_eq!(store2.get("post/crash").unwrap().unwrap().mod_revision, rev);
    assert_eq!(store2.status().unwrap().compact_revision, full.target);
    store2.check().unwrap();
}

#[test]
fn power_cut_at_every_sync_of_an_incremental_compaction() {
    let root = tempfile::tempdir().unwrap();
    let full_disk = SimDisk::new(&scratch(root.path(), "full"));
    let full = run(&full_disk);
    assert!(
        matches!(full.compacted, Some(Ok(()))),
        "{:?}",
        full.compacted
    );
    let syncs = full_disk.syncs();
    // The reference: the finished compaction, reopened.
    let reference = {
        let image = full_disk.crash_image(CrashPolicy::DropUnsynced);
        let disk = SimDisk::from_image(&scratch(root.path(), "ref"), &image).unwrap();
        let store = sim_options(&disk).open(DB).unwrap();
        store.check().unwrap()
    };
    assert!(
        syncs >= full.syncs_before_compaction + 5,
        "the compaction takes several steps ({} syncs)",
        syncs - full.syncs_before_compaction
    );
    let mut images = 0;
    for k in full.syncs_before_compaction + 1..=syncs {
        let disk = SimDisk::new(&scratch(root.path(), "crash"));
        disk.crash_at_sync(k);
        let crashed = run(&disk);
        assert_eq!(crashed.target, full.target);
        for policy in [
            CrashPolicy::DropUnsynced,
            CrashPolicy::KeepUnsynced,
            CrashPolicy::Torn {
                seed: 0x5eed ^ k,
                sector: 4096,
            },
        ] {
            let image = disk.crash_image(policy);
            verify(
                root.path(),
                &image,
                &full,
                &reference,
                &format!("power cut at sync {k} ({policy:?})"),
            );
            images += 1;
        }
    }
    assert!(images >= 15, "only {images} images checked");
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Puts of keys `start..start + count` (of 4,000), with a value length and seed.
    Bulk {
        start: u16,
        count: u16,
        len: u16,
        seed: u8,
    },
    /// Deletes keys with this prefix digit.
    DeletePrefix(u8),
    /// A compaction through `Store::apply`: decided, one step, the rest left to later commits.
    CompactApply(u8),
    /// A compaction through `Store::compact`, finished before it returns.
    CompactLocal(u8),
    /// Reads at a revision `back` before the current one, and checks.
    ReadBack(u8),
    Finish,
    Reopen,
}

fn op_strat() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..4000, 1u16..2500, 0u16..700, any::<u8>())
            .prop_map(|(start, count, len, seed)| Op::Bulk { start, count, len, seed }),
        1 => (0u8..10).prop_map(Op::DeletePrefix),
        3 => (0u8..6).prop_map(Op::CompactApply),
        1 => (0u8..6).prop_map(Op::CompactLocal),
        3 => (0u8..8).prop_map(Op::ReadBack),
        1 => Just(Op::Finish),
        1 => Just(Op::Reopen),
    ]
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn model_options() -> Options {
    Options::new()
        .max_txn_ops(10_000)
        .max_request_bytes(64 << 20)
        .auto_compaction(AutoCompaction::Off)
        .background_writes(false)
        .wal_capacity(16 << 20)
}

/// Runs `ops` on a store at `path`; `apply_compactions` chooses `Store::apply` (partial) over
/// `Store::compact` (finished) for `CompactApply`. Checks every read against the model.
fn run_model(path: &Path, ops: &[Op], apply_compactions: bool) -> (u32, CheckReport) {
    let mut store = model_options().open(path).unwrap();
    // states[r] = the keyspace at revision r (revision 1 is empty).
    let mut states: Vec<State> = vec![State::new(), State::new()];
    let mut compacted = 0i64;
    let rev_of = |states: &Vec<State>| states.len() as i64 - 1;
    for op in ops {
        match op {
            Op::Bulk {
                start,
                count,
                len,
                seed,
            } => {
                let mut st = states.last().unwrap().clone();
                let ops: Vec<WriteOp> = (0..*count as usize)
                    .map(|i| {
                        let k = format!("{:04}", (*start as usize + i) % 4000).into_bytes();
                        let v = vec![seed.wrapping_add(i as u8); *len as usize + i % 3];
                        st.insert(k.clone(), v.clone());
                        WriteOp::put(k, v)
                    })
                    .collect();
                let r = store.batch(ops).unwrap().header_revision;
                states.push(st);
                assert_eq!(r, rev_of(&states));
            }
            Op::DeletePrefix(d) => {
                let prefix = format!("{d}");
                let mut st = states.last().unwrap().clone();
                let before = st.len();
                st.retain(|k, _| !k.starts_with(prefix.as_bytes()));
                let r = store
                    .delete_range(Range::prefix(prefix), false)
                    .unwrap()
                    .header_revision;
                if st.len() != before {
                    states.push(st);
                }
                assert_eq!(r, rev_of(&states));
            }
            Op::CompactApply(back) | Op::CompactLocal(back) => {
                let target = rev_of(&states) - *back as i64;
                if target <= compacted.max(1) {
                    continue;
                }
                if apply_compactions && matches!(op, Op::CompactApply(_)) {
                    let index = store.applied().0 + 1;
                    store.apply(index, 0, &Command::Compact(target)).unwrap();
                } else {
                    store.compact(target).unwrap();
                }
                compacted = target;
            }
            Op::ReadBack(back) => {
                let rev = (rev_of(&states) - *back as i64).max(1);
                let got = contents(&store, rev);
                if rev < compacted {
                    assert!(matches!(got, Err(Error::Compacted { .. })), "rev {rev}");
                } else {
                    let got: State = got
                        .unwrap()
                        .into_iter()
                        .map(|kv| (kv.key, kv.value))
                        .collect();
                    assert_eq!(&got, &states[rev as usize], "revision {rev}");
                }
                store.check().unwrap();
            }
            Op::Finish => store.finish_compaction().unwrap(),
            Op::Reopen => {
                store.close().unwrap();
                store = model_options().open(path).unwrap();
            }
        }
    }
    assert_eq!(store.status().unwrap().compact_revision, compacted);
    for rev in compacted.max(1)..=rev_of(&states) {
        let got: State = contents(&store, rev)
            .unwrap()
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        assert_eq!(&got, &states[rev as usize], "revision {rev} at the end");
    }
    store.finish_compaction().unwrap();
    let hash = store.hash_kv(0).unwrap();
    let report = store.check().unwrap();
    (hash, report)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("ETCH_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    })]

    /// Compactions left half-done (decided through `apply`, advanced by the writes after them,
    /// across reopens) read exactly as the model at every revision they keep, pass `check()`
    /// at every point, and once finished leave the same history as compacting in one go.
    #[test]
    fn incremental_compaction_matches_the_model(ops in prop::collection::vec(op_strat(), 1..28)) {
        let dir = tempfile::tempdir().unwrap();
        let (hash_a, a) = run_model(&dir.path().join("a.etch"), &ops, true);
        let (hash_b, b) = run_model(&dir.path().join("b.etch"), &ops, false);
        prop_assert_eq!(hash_a, hash_b);
        prop_assert_eq!(
            (a.keys, a.history_records, a.log_records),
            (b.keys, b.history_records, b.log_records)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Writers during compaction and check
// ---------------------------------------------------------------------------------------------

/// Four writer threads committing until `stop`; returns their commit counter.
fn writers(
    store: &Arc<Store>,
    stop: &Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Vec<std::thread::JoinHandle<()>>) {
    let commits = Arc::new(AtomicU64::new(0));
    let handles = (0..4)
        .map(|t| {
            let (store, stop, commits) = (store.clone(), stop.clone(), commits.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                // Bounded: a stuck test ends with a failed assertion, not a hang.
                let until = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Acquire) && Instant::now() < until {
                    store
                        .put(format!("w/{t}/{}", i % 500), format!("{i}"))
                        .unwrap();
                    commits.fetch_add(1, Ordering::AcqRel);
                    i += 1;
                }
            })
        })
        .collect();
    (commits, handles)
}

/// Waits (bounded) until `counter` passes `at_least`; returns whether it did.
fn wait_for(counter: &AtomicU64, at_least: u64, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while counter.load(Ordering::Acquire) < at_least {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn loaded_store(dir: &Path) -> Arc<Store> {
    let store = Options::new()
        .max_txn_ops(10_000)
        .auto_compaction(AutoCompaction::Off)
        .open(dir.join("w.etch"))
        .unwrap();
    for r in 0..20 {
        let ops: Vec<WriteOp> = (0..2000)
            .map(|i| WriteOp::put(format!("k/{i:05}"), vec![b'v'; 40 + (i + r) % 50]))
            .collect();
        store.batch(ops).unwrap();
    }
    Arc::new(store)
}

#[test]
fn check_runs_while_four_writers_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let (commits, handles) = writers(&store, &stop);
    assert!(wait_for(&commits, 10, Duration::from_secs(30)));
    let keys_before = store.status().unwrap().key_count;
    let mut calls = 0u64;
    let mut progressed_during_check = true;
    let mut last = (0, 0);
    let report = store
        .check_with_progress(|done, total| {
            assert!(
                done <= total && done >= last.0,
                "progress {done}/{total} after {last:?}"
            );
            last = (done, total);
            if calls == 0 {
                // In the middle of the check: the writers must be able to commit. (A check
                // holding the writer lock would make this wait time out.)
                let now = commits.load(Ordering::Acquire);
                progressed_during_check &= wait_for(&commits, now + 20, Duration::from_secs(20));
            }
            calls += 1;
        })
        .unwrap();
    stop.store(true, Ordering::Release);
    for h in handles {
        h.join().unwrap();
    }
    assert!(
        progressed_during_check,
        "writers were blocked during check()"
    );
    assert!(calls >= 1);
    assert_eq!(last.0, last.1, "progress ends at its total");
    assert!(report.keys >= keys_before && report.keys <= keys_before + 2000);
    store.check().unwrap();
}

#[test]
fn writers_commit_between_compaction_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let target = store.revision();
    let stop = Arc::new(AtomicBool::new(false));
    let (commits, handles) = writers(&store, &stop);
    assert!(wait_for(&commits, 10, Duration::from_secs(30)));
    let before = commits.load(Ordering::Acquire);
    store.compact(target).unwrap();
    let after = commits.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    for h in handles {
        h.join().unwrap();
    }
    // 40,000 dropped versions are ten steps, each its own commit: writers get the lock
    // between them.
    assert!(
        after > before,
        "no writer committed during a ten-step compaction"
    );
    let report = store.check().unwrap();
    assert_eq!(
        report.keys,
        2000 + store.range(Range::prefix("w/")).unwrap().count as u64
    );
}

// ---------------------------------------------------------------------------------------------
// History bounded by change count
// ---------------------------------------------------------------------------------------------

/// An overwrite loop whose revisions each carry 500 changes: with retention by changes the
/// file stops growing (the history holds at most ~1.1 x the retained changes plus one round),
/// where retention by revisions (the old default's shape: 100 revisions) never compacts it.
#[test]
fn retention_by_changes_bounds_an_overwrite_loop() {
    let dir = tempfile::tempdir().unwrap();
    let retained = 5_000u64;
    let store = Options::new()
        .max_txn_ops(10_000)
        .auto_compaction(AutoCompaction::Changes(retained))
        .background_writes(false) // the test is the one driving compaction, as a replica's leader
        .open(dir.path().join("h.etch"))
        .unwrap();
    let mut sizes = Vec::new();
    for round in 0..60 {
        for _ in 0..4 {
            let ops: Vec<WriteOp> = (0..500)
                .map(|i| WriteOp::put(format!("k/{i:04}"), vec![b'a' + (round % 26) as u8; 100]))
                .collect();
            store.batch(ops).unwrap();
        }
        if let Some(target) = store.auto_compaction_due() {
            store.compact(target).unwrap();
        }
        store.checkpoint().unwrap();
        let report = store.check().unwrap();
        // Retained changes: at most n + n/10 before a compaction is due, plus the round's 2,000.
        assert!(
            report.log_records <= retained + retained / 10 + 2000,
            "round {round}: {} changes kept",
            report.log_records
        );
        sizes.push(store.status().unwrap().file_size);
    }
    // From round 20 on (history at its bound since round ~3) the file does not grow.
    let settled = sizes[20];
    assert!(
        sizes[20..].iter().all(|&s| s <= settled),
        "file grew after settling: {sizes:?}"
    );
    assert!(
        format!("{:?}", Options::new()).contains("auto_compaction: Changes(100000)"),
        "the default retention is by changes"
    );
}

/// The same history as `loaded_store`, in a store whose only compaction steps are the test's.
fn loaded_store_without_background(dir: &Path) -> Store {
    std::fs::create_dir_all(dir).unwrap();
    let store = Options::new()
        .max_txn_ops(10_000)
        .auto_compaction(AutoCompaction::Off)
        .background_writes(false)
        .open(dir.join("w.etch"))
        .unwrap();
    for r in 0..20 {
        let ops: Vec<WriteOp> = (0..2000)
            .map(|i| WriteOp::put(format!("k/{i:05}"), vec![b'v'; 40 + (i + r) % 50]))
            .collect();
        store.batch(ops).unwrap();
    }
    store
}

#[test]
fn compaction_steps_run_at_most_the_steps_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store_without_background(dir.path());
    let target = store.revision();
    assert!(!store.compaction_pending().unwrap());
    assert!(!store.compaction_steps(3).unwrap(), "nothing was decided");
    // The decision alone, as a replicated store applies it.
    let index = store.applied().0 + 1;
    store.apply(index, 0, &Command::Compact(target)).unwrap();
    assert!(store.compaction_pending().unwrap());
    assert!(!store.compaction_steps(0).unwrap(), "zero steps do nothing");
    assert!(store.compaction_pending().unwrap());
    let mut calls = 0;
    let mut last_history = u64::MAX;
    while store.compaction_steps(1).unwrap() {
        calls += 1;
        assert!(calls < 1000, "the compaction does not end");
        assert!(store.compaction_pending().unwrap(), "more work reported");
        // One step at a time: the history shrinks step by step, never all at once.
        let history = store.check().unwrap().history_records;
        assert!(history <= last_history);
        if calls == 1 {
            assert!(
                history > 0,
                "one step dropped the whole history of 40,000 versions"
            );
        }
        last_history = history;
    }
    // 38,000 superseded versions at ~16,000 entries a sweep step (the 40,000 log entries then
    // go in one trim step, which removes up to 16 times as many, a leaf at a time).
    assert!(calls >= 3, "only {calls} calls of one step each");
    assert!(!store.compaction_pending().unwrap());
    let report = store.check().unwrap();
    assert_eq!((report.keys, report.history_records), (2000, 0));
    assert!(matches!(
        contents(&store, target - 1),
        Err(Error::Compacted { .. })
    ));
    assert_eq!(contents(&store, target).unwrap().len(), 2000);
}

#[test]
fn background_compaction_is_paced_over_ticks() {
    let dir = tempfile::tempdir().unwrap();
    loaded_store_without_background(dir.path()).close().unwrap();
    let tick = Duration::from_millis(40);
    let store = Options::new()
        .max_txn_ops(10_000)
        .auto_compaction(AutoCompaction::Revisions(1))
        .compaction_steps_per_tick(1)
        .checkpoint_interval(tick)
        .open(dir.path().join("w.etch"))
        .unwrap();
    // The background thread decides the compaction at its first tick, then runs one step per
    // tick: the compaction stays pending across several ticks instead of ending in the first.
    let start = Instant::now();
    let mut pending_since: Option<Instant> = None;
    let mut pending_for = Duration::ZERO;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the background compaction does not end"
        );
        let decided = store.status().unwrap().compact_revision > 0;
        let pending = store.compaction_pending().unwrap();
        if decided && pending {
            let since = *pending_since.get_or_insert_with(Instant::now);
            pending_for = since.elapsed();
        }
        if decided && !pending {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // At least six steps, one per tick: the last is at least five ticks after the first.
    assert!(
        pending_for >= 2 * tick,
        "the compaction ran in one tick (pending for {pending_for:?})"
    );
    // Retention of one revision: each key keeps its version as of the one before the last.
    let report = store.check().unwrap();
    assert_eq!((report.keys, report.history_records), (2000, 2000));
    assert_eq!(
        store.status().unwrap().compact_revision,
        store.revision() - 1
    );
}

#[test]
fn zero_compaction_steps_per_tick_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opened = Options::new()
        .compaction_steps_per_tick(0)
        .open(dir.path().join("z.etch"));
    assert!(matches!(opened, Err(Error::InvalidOption(_))));
}

#[test]
fn pages_freed_by_a_step_are_reused_by_the_next_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Options::new()
        .max_txn_ops(10_000)
        .auto_compaction(AutoCompaction::Off)
        .background_writes(false)
        .open(dir.path().join("r.etch"))
        .unwrap();
    // Every key has 60 versions; the compaction keeps the newest 30 (29 in history), so every history
    // leaf is rewritten (not just emptied): the steps allocate as much as they free.
    let mut target = 0;
    for r in 0..60 {
        let ops: Vec<WriteOp> = (0..2000)
            .map(|i| WriteOp::put(format!("k/{i:05}"), vec![b'v'; 40 + (i + r) % 50]))
            .collect();
        let rev = store.batch(ops).unwrap().header_revision;
        if r == 30 {
            target = rev;
        }
    }
    // A file without free pages: whatever the steps write beyond their reuse grows it.
    store.defrag().unwrap();
    let index = store.applied().0 + 1;
    store.apply(index, 0, &Command::Compact(target)).unwrap();
    let pages = |r: &CheckReport| r.tree_pages + r.overflow_pages + r.free_pages;
    let start = pages(&store.check().unwrap());
    let revision = store.revision();
    // Pages after each step. The steps free pages of the durable tree, which wait for the
    // checkpoint every fourth step runs; from then on each step reuses what the steps before
    // it freed (their state was published, so no snapshot needs the old pages), and the file
    // stops growing although no commit comes.
    let mut after_step = vec![start];
    while store.compaction_steps(1).unwrap() {
        after_step.push(pages(&store.check().unwrap()));
        assert!(after_step.len() < 1000, "the compaction does not end");
    }
    assert_eq!(store.revision(), revision, "no commit ran");
    let steps = after_step.len() - 1;
    assert!(steps >= 8, "{steps} steps: {after_step:?}");
    // Sweep steps 5 to 8 each rewrite as many leaves as the first four did (about 470 pages
    // each); with their pages reused they grow the file by nothing or next to it.
    let growth_after_checkpoint = after_step[steps] - after_step[4];
    assert!(
        growth_after_checkpoint <= 50,
        "pages after each step: {after_step:?}"
    );
    assert!(
        after_step[4] > start,
        "the first steps allocate: {after_step:?}"
    );
    let report = store.check().unwrap();
    assert_eq!((report.keys, report.history_records), (2000, 2000 * 29));
    assert!(steps >= 8, "{steps} steps");
}

#[test]
fn a_pass_goes_on_when_the_compact_revision_rises_during_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store_without_background(&dir.path().join("a"));
    let reference = loaded_store_without_background(&dir.path().join("b"));
    // Revisions 2..=21 are the 20 rounds.
    let revision = store.revision();
    assert_eq!(revision, 21);
    let log_start = store.check().unwrap().log_records;
    let decide = |c: i64| {
        let index = store.applied().0 + 1;
        store.apply(index, 0, &Command::Compact(c)).unwrap();
    };
    // A new decision after every step, as automatic compaction under a fast writer makes them.
    // Restarting the pass at each would trim nothing until the decisions stop; going on, the
    // first pass (about 3 steps of 40,000 history entries) ends and trims the log to the
    // revision it started with while the decisions still come.
    let mut c = 3;
    decide(c);
    let mut trimmed_while_deciding = false;
    for _ in 0..15 {
        assert!(store.compaction_steps(1).unwrap());
        c += 1;
        decide(c);
        trimmed_while_deciding |= store.check().unwrap().log_records < log_start;
    }
    assert!(
        trimmed_while_deciding,
        "no log entry trimmed during 15 steps with a new decision after each"
    );
    store.finish_compaction().unwrap();
    assert!(!store.compaction_pending().unwrap());
    // The same result as one compaction to the last revision decided.
    reference.compact(c).unwrap();
    let (a, b) = (store.check().unwrap(), reference.check().unwrap());
    assert_eq!(
        (a.keys, a.history_records, a.log_records),
        (b.keys, b.history_records, b.log_records)
    );
    for rev in [c, c + 1, revision] {
        assert_eq!(
            contents(&store, rev).unwrap(),
            contents(&reference, rev).unwrap()
        );
    }
    assert!(matches!(
        contents(&store, c - 1),
        Err(Error::Compacted { .. })
    ));
}

/// The change log's trim removes whole runs of entries from the log's leftmost leaf per descent
/// (`btree::remove_front`): compactions to revisions that fall inside leaves, one after another,
/// leave exactly the entries above each compact revision, in a tree that passes `check()`.
#[test]
fn log_trim_to_revisions_inside_leaves_keeps_exactly_the_later_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store_without_background(dir.path());
    // 20 revisions (2..=21) of 2,000 changes each: a log of 40,000 entries over hundreds of
    // leaves, two or more levels deep.
    let last = store.revision();
    assert_eq!(last, 21);
    let before = store.check().unwrap();
    assert_eq!(before.log_records, 40_000);
    for c in [2, 3, 7, 8, 15, 20, 21] {
        store.compact(c).unwrap();
        assert!(!store.compaction_pending().unwrap());
        let report = store.check().unwrap();
        assert_eq!(
            report.log_records,
            2_000 * (last - c) as u64,
            "after compact({c})"
        );
        // Each key keeps in its history its versions from `c` (the one readers at `c` need)
        // to the one before its live version, at 21.
        assert_eq!(
            report.history_records,
            2_000 * (last - c) as u64,
            "after compact({c})"
        );
        assert_eq!(contents(&store, c).unwrap().len(), 2000);
        assert_eq!(contents(&store, last).unwrap().len(), 2000);
    }
    store.close().unwrap();
    let store = Options::new()
        .auto_compaction(AutoCompaction::Off)
        .open(dir.path().join("w.etch"))
        .unwrap();
    assert_eq!(store.check().unwrap().log_records, 0);
}
