//! Power-cut and I/O-error tests on the simulated disk (`etch_engine::sim`).
//!
//! A deterministic single-threaded workload (puts, overwrites, large values on overflow pages,
//! deletes, prefix deletes, batches, explicit checkpoints, WAL-full checkpoints, file growth and
//! free-page reuse) runs on a `SimDisk`. For every sync point k — and for mutating operations
//! between syncs — the disk loses power there; the surviving image is rebuilt under several
//! policies (unsynced writes dropped, kept, torn at 512 B or 4 KiB sectors in shuffled order),
//! reopened, and checked: every acknowledged commit is present with its exact revision (every
//! acknowledged revision reads back exactly as it read before the crash), the one commit in flight
//! is either wholly present or wholly absent, `check()` passes, and the store takes a new write
//! and survives a second power cut. The I/O-error loop fails each operation in turn with EIO and
//! ENOSPC and checks the typed error, the refusal of further writes, and recovery.
//!
//! `ETCH_SIM_STEPS` (default 40) sets the workload length; `ETCH_SIM_SEED` the workload seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::sim::{CrashPolicy, Fault, SimDisk, SimImage};
use etch_engine::{Error, KeyValue, Options, Range, RangeOptions, Store, WriteOp};

const DB: &str = "/sim/app.etch";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
enum Step {
    Batch(Vec<WriteOp>),
    Checkpoint,
    /// Compact to this many revisions before the current one.
    Compact(i64),
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The workload: deterministic for a seed.
fn workload(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = Rng(seed | 1);
    let key = |rng: &mut Rng| format!("k/{:02}", rng.below(24)).into_bytes();
    let value = |rng: &mut Rng| {
        let len = match rng.below(8) {
            0 => 3000 + rng.below(40_000) as usize, // overflow pages, fills the 1 MiB WAL
            1 => 600 + rng.below(300) as usize,
            _ => 1 + rng.below(120) as usize,
        };
        vec![b'a' + rng.below(26) as u8; len]
    };
    let mut out = Vec::new();
    for i in 0..steps {
        let step = match rng.below(13) {
            0 => Step::Checkpoint,
            12 => Step::Compact(rng.below(6) as i64),
            1 => Step::Batch(vec![WriteOp::delete(Range::key(key(&mut rng)))]),
            2 => Step::Batch(vec![WriteOp::delete(Range::prefix(format!(
                "k/{}",
                rng.below(3)
            )))]),
            3 | 4 => {
                let mut keys: Vec<Vec<u8>> = (0..2 + rng.below(5)).map(|_| key(&mut rng)).collect();
                keys.sort();
                keys.dedup();
                Step::Batch(
                    keys.into_iter()
                        .map(|k| WriteOp::put(k, value(&mut rng)))
                        .collect(),
                )
            }
            _ => Step::Batch(vec![WriteOp::put(key(&mut rng), value(&mut rng))]),
        };
        out.push(step);
        if i % 17 == 16 {
            out.push(Step::Checkpoint);
        }
    }
    out
}

fn options(disk: &SimDisk) -> Options {
    Options::new()
        .storage(Arc::new(disk.clone()))
        .wal_capacity(1 << 20)
        .checkpoint_interval(Duration::from_secs(3600))
        .max_txn_ops(1000)
}

/// What a run observed before it stopped.
#[derive(Default)]
struct Observed {
    /// Full contents as read right after each acknowledged revision.
    at_rev: BTreeMap<i64, Vec<KeyValue>>,
    /// Values (key -> value) after the last acknowledged commit.
    model: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The model if the failed step's commit was applied, when the failure was a commit.
    model_if_failed_applied: Option<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// The first error.
    error: Option<Error>,
    /// The second operation after the failure, if attempted.
    after_error: Option<Result<(), Error>>,
    /// The failure came from `close()`, after the whole workload succeeded.
    close_failed: bool,
    /// Highest acknowledged compaction.
    compacted: i64,
    /// Target of a compaction that failed (it may or may not have become durable).
    compact_in_flight: Option<i64>,
}

fn apply_model(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, ops: &[WriteOp]) {
    for op in ops {
        match op {
            WriteOp::Put(p) => {
                model.insert(p.key.clone(), p.value.clone());
            }
            WriteOp::DeleteRange { range, .. } => model.retain(|k, _| !range.contains(k)),
        }
    }
}

fn contents(store: &Store, rev: i64) -> Vec<KeyValue> {
    store
        .range_with(
            &Range::all(),
            &RangeOptions {
                revision: rev,
                ..Default::default()
            },
        )
        .unwrap()
        .kvs
}

/// Runs the workload until the first error; then tries one more write.
fn run(disk: &SimDisk, steps: &[Step]) -> Observed {
    let mut obs = Observed::default();
    let store = match options(disk).open(DB) {
        Ok(s) => s,
        Err(e) => {
            obs.error = Some(e);
            return obs;
        }
    };
    obs.at_rev.insert(1, Vec::new());
    for step in steps {
        let result = match step {
            Step::Checkpoint => store.checkpoint().map(|_| ()),
            Step::Compact(back) => {
                let target = store.revision() - back;
                if target <= obs.compacted.max(1) {
                    Ok(())
                } else {
                    match store.compact(target) {
                        Ok(_) => {
                            obs.compacted = target;
                            Ok(())
                        }
                        Err(e) => {
                            obs.compact_in_flight = Some(target);
                            Err(e)
                        }
                    }
                }
            }
            Step::Batch(ops) => match store.batch(ops.clone()) {
                Ok(resp) => {
                    apply_model(&mut obs.model, ops);
                    obs.at_rev.insert(resp.header_revision, contents(&store, 0));
                    Ok(())
                }
                Err(e) => {
                    let mut m = obs.model.clone();
                    apply_model(&mut m, ops);
                    obs.model_if_failed_applied = Some(m);
                    Err(e)
                }
            },
        };
        if let Err(e) = result {
            obs.error = Some(e);
            obs.after_error = Some(store.put("after/error", "x").map(|_| ()));
            return obs;
        }
    }
    if let Err(e) = store.close() {
        obs.error = Some(e);
        obs.close_failed = true;
    }
    obs
}

fn scratch(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Reopens an image and checks it against what the run observed. Returns the revision found.
fn verify(root: &Path, image: &SimImage, obs: &Observed, what: &str) -> i64 {
    let dir = scratch(root, "verify");
    let disk = SimDisk::from_image(&dir, image).unwrap();
    let store = options(&disk)
        .open(DB)
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let acked = *obs.at_rev.keys().last().unwrap();
    let rev = store.revision();
    let in_flight = obs.model_if_failed_applied.is_some();
    assert!(
        rev == acked || (in_flight && rev == acked + 1),
        "{what}: revision {rev} after recovery, last acknowledged {acked}"
    );
    let compacted = store.status().unwrap().compact_revision;
    assert!(
        compacted == obs.compacted || Some(compacted) == obs.compact_in_flight,
        "{what}: compact revision {compacted} after recovery, acknowledged {}",
        obs.compacted
    );
    for (&r, expected) in &obs.at_rev {
        if r < compacted {
            let res = store.range_with(
                &Range::all(),
                &RangeOptions {
                    revision: r,
                    ..Default::default()
                },
            );
            assert!(
                matches!(res, Err(Error::Compacted { .. })),
                "{what}: revision {r} below the compact revision"
            );
            continue;
        }
        assert_eq!(
            &contents(&store, r),
            expected,
            "{what}: revision {r} reads differently after recovery"
        );
    }
    let values: BTreeMap<Vec<u8>, Vec<u8>> = contents(&store, 0)
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    if rev == acked {
        assert_eq!(
            values, obs.model,
            "{what}: current values differ from the last acknowledged state"
        );
    } else {
        assert_eq!(
            Some(&values),
            obs.model_if_failed_applied.as_ref(),
            "{what}: the in-flight commit is partly applied"
        );
    }
    store
        .check()
        .unwrap_or_else(|e| panic!("{what}: check() failed after recovery: {e}"));
    // The store takes new writes and survives a second power cut.
    let r = store.put("post/crash", "1").unwrap().header_revision;
    let second = disk.crash_image(CrashPolicy::DropUnsynced);
    drop(store);
    let dir2 = scratch(root, "verify2");
    let disk2 = SimDisk::from_image(&dir2, &second).unwrap();
    let store2 = options(&disk2)
        .open(DB)
        .unwrap_or_else(|e| panic!("{what}: second reopen failed: {e}"));
    let kv = store2
        .get("post/crash")
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: write after recovery lost"));
    assert_eq!(kv.mod_revision, r);
    store2.check().unwrap();
    rev
}

fn policies(k: u64) -> [CrashPolicy; 4] {
    [
        CrashPolicy::DropUnsynced,
        CrashPolicy::KeepUnsynced,
        CrashPolicy::Torn {
            seed: 0x9e37 ^ k,
            sector: 512,
        },
        CrashPolicy::Torn {
            seed: 0x51ed ^ (k << 8),
            sector: 4096,
        },
    ]
}

#[test]
fn power_cut_at_every_sync_and_between() {
    let seed = env_u64("ETCH_SIM_SEED", 0xC0FFEE);
    let steps = workload(seed, env_u64("ETCH_SIM_STEPS", 40) as usize);
    let root = tempfile::tempdir().unwrap();
    // A full run to count sync points and operations.
    let full_disk = SimDisk::new(&scratch(root.path(), "full"));
    let full = run(&full_disk, &steps);
    assert!(
        full.error.is_none(),
        "the workload fails without faults: {:?}",
        full.error
    );
    let (syncs, ops) = (full_disk.syncs(), full_disk.ops());
    if std::env::var_os("ETCH_SIM_SEED").is_none() {
        assert!(
            full.compacted > 1,
            "the default workload must include compactions"
        );
    }
    let mut crash_points = 0;
    let mut images = 0;
    let mut points: Vec<(bool, u64)> = (1..=syncs).map(|k| (true, k)).collect();
    // Points between syncs: every 7th mutating operation.
    points.extend((1..=ops).step_by(7).map(|n| (false, n)));
    for (at_sync, k) in points {
        let disk = SimDisk::new(&scratch(root.path(), "run"));
        if at_sync {
            disk.crash_at_sync(k);
        } else {
            disk.crash_at_op(k);
        }
        let obs = run(&disk, &steps);
        if obs.at_rev.is_empty() {
            // Power was lost while creating the file: the image must open as a new store.
            let image = disk.crash_image(CrashPolicy::KeepUnsynced);
            let dir = scratch(root.path(), "verify");
            let store = options(&SimDisk::from_image(&dir, &image).unwrap())
                .open(DB)
                .unwrap();
            store.check().unwrap();
            crash_points += 1;
            continue;
        }
        crash_points += 1;
        for policy in policies(k) {
            let image = disk.crash_image(policy);
            verify(
                root.path(),
                &image,
                &obs,
                &format!(
                    "seed {seed:#x}, crash at {} {k}, {policy:?}",
                    if at_sync { "sync" } else { "op" }
                ),
            );
            images += 1;
        }
    }
    println!("power cuts: {crash_points} crash points ({syncs} sync points, {ops} operations), {images} post-crash images verified");
}

#[test]
fn io_error_at_every_operation() {
    let seed = env_u64("ETCH_SIM_SEED", 0xC0FFEE) ^ 0x55;
    let steps = workload(seed, env_u64("ETCH_SIM_STEPS", 40) as usize);
    let root = tempfile::tempdir().unwrap();
    let full_disk = SimDisk::new(&scratch(root.path(), "full"));
    assert!(run(&full_disk, &steps).error.is_none());
    let ops = full_disk.ops();
    let mut injected = 0;
    for (n, fault) in (1..=ops).flat_map(|n| [(n, Fault::Io), (n, Fault::NoSpace)]) {
        let disk = SimDisk::new(&scratch(root.path(), "run"));
        disk.fail_op(n, fault);
        let obs = run(&disk, &steps);
        let what = format!("seed {seed:#x}, {fault:?} at operation {n}");
        match &obs.error {
            None => panic!("{what}: the injected fault went unnoticed"),
            // An I/O error while opening names the file: Error::Open.
            Some(Error::Io(_))
            | Some(Error::Open { .. })
            | Some(Error::NoSpace(_))
            | Some(Error::Poisoned(_)) => {}
            Some(e) => panic!("{what}: unexpected error type {e:?}"),
        }
        if obs.at_rev.is_empty() {
            continue; // failed while creating the store; nothing was acknowledged
        }
        injected += 1;
        if obs.close_failed {
            // The final checkpoint failed: the WAL stays and recovery must still find everything.
            verify(
                root.path(),
                &disk.crash_image(CrashPolicy::KeepUnsynced),
                &obs,
                &what,
            );
            continue;
        }
        // After a fault the store refuses writes: a failed write is never retried as if safe.
        assert!(
            matches!(obs.after_error, Some(Err(Error::Poisoned(_)))),
            "{what}: a write after the fault gave {:?}",
            obs.after_error
        );
        for policy in [CrashPolicy::KeepUnsynced, CrashPolicy::DropUnsynced] {
            verify(
                root.path(),
                &disk.crash_image(policy),
                &obs,
                &format!("{what}, {policy:?}"),
            );
        }
    }
    println!("I/O errors: {injected} faults injected (EIO and ENOSPC at each of {ops} operations), each recovered from 2 images");
}

#[test]
fn relaxed_durability_loses_at_most_a_suffix_and_sync_makes_it_durable() {
    let root = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(&scratch(root.path(), "relaxed"));
    let store = options(&disk)
        .durability(etch_engine::Durability::Relaxed)
        .relaxed_sync_interval(Duration::from_secs(3600))
        .open(DB)
        .unwrap();
    for i in 0..20 {
        let rev = store
            .put(format!("r/{i:02}"), format!("{i}"))
            .unwrap()
            .header_revision;
        // Visible at once, before any sync.
        assert_eq!(
            store
                .get(format!("r/{i:02}"))
                .unwrap()
                .unwrap()
                .mod_revision,
            rev
        );
    }
    store.sync().unwrap();
    for i in 20..30 {
        store.put(format!("r/{i:02}"), format!("{i}")).unwrap();
    }
    for (n, policy) in policies(7).into_iter().enumerate() {
        let image = disk.crash_image(policy);
        let dir = scratch(root.path(), &format!("img{n}"));
        let reopened = options(&SimDisk::from_image(&dir, &image).unwrap())
            .open(DB)
            .unwrap();
        let rev = reopened.revision();
        // Everything synced survives; of the rest, a prefix in order.
        assert!((21..=31).contains(&rev), "{policy:?}: revision {rev}");
        let keys = reopened.range(Range::prefix("r/")).unwrap().kvs;
        assert_eq!(
            keys.len() as i64,
            rev - 1,
            "{policy:?}: not a prefix of the commits"
        );
        for (i, kv) in keys.iter().enumerate() {
            assert_eq!(kv.key, format!("r/{i:02}").into_bytes());
            assert_eq!(kv.mod_revision, i as i64 + 2);
        }
        reopened.check().unwrap();
    }
}
