//! Snapshots that keep their identity (`Store::snapshot_to`) and their atomic install
//! (`Store::install_snapshot`): identity and state survive the round trip; a snapshot taken
//! while writers run is the state at its reported index; readers and watchers across an
//! install; bad snapshots are refused with nothing changed; and on the simulated disk, a power
//! cut or an I/O error at every storage operation of an install leaves the old state or the new
//! one, whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::sim::{CrashPolicy, Fault, SimDisk, SimImage};
use etch_engine::storage::Storage;
use etch_engine::{
    Command, Error, KeyValue, LeaseGrant, Options, PutOp, Range, SnapshotInfo, Store, WatchOptions,
    WriteOp,
};

/// Everything that identifies a store's state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    applied: (u64, u64),
    revision: i64,
    compact_revision: i64,
    kvs: Vec<KeyValue>,
    leases: Vec<LeaseGrant>,
}

fn model(db: &Store) -> Model {
    Model {
        applied: db.applied(),
        revision: db.revision(),
        compact_revision: db.status().unwrap().compact_revision,
        kvs: db.range(Range::all()).unwrap().kvs,
        leases: db.lease_list().unwrap(),
    }
}

fn put(key: &str, value: &[u8]) -> Command {
    Command::Batch(vec![WriteOp::put(key, value)])
}

/// A store fed through `Store::apply` with terms, a lease with a key, large values and a
/// compaction: the state a Raft snapshot carries.
fn fill_replicated(db: &Store, from_index: u64, entries: u64, term: u64) {
    let mut index = from_index;
    for i in 0..entries {
        let value = if i % 10 == 3 {
            vec![b'L'; 9000]
        } else {
            format!("v{i}").into_bytes()
        };
        db.apply(index, term, &put(&format!("k/{:04}", i % 40), &value))
            .unwrap();
        index += 1;
    }
    let lease = 70 + term as i64;
    db.apply(
        index,
        term,
        &Command::LeaseGrant {
            id: lease,
            ttl: 600,
        },
    )
    .unwrap();
    db.apply(
        index + 1,
        term,
        &Command::Batch(vec![WriteOp::Put(PutOp {
            key: b"leased".to_vec(),
            value: b"x".to_vec(),
            lease,
            ..Default::default()
        })]),
    )
    .unwrap();
    let target = db.revision() - 5;
    db.apply(index + 2, term, &Command::Compact(target))
        .unwrap();
}

fn snapshot_bytes(db: &Store) -> (Vec<u8>, SnapshotInfo) {
    let mut out = Vec::new();
    let info = db.snapshot_to(&mut out).unwrap();
    assert_eq!(info.size, out.len() as u64);
    (out, info)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".install") || n.contains(".snapshot-"))
        .collect()
}

#[test]
fn a_snapshot_keeps_identity_and_installs_as_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path().join("a.etch")).unwrap();
    fill_replicated(&a, 1, 120, 3);
    let expected = model(&a);
    let (bytes, info) = snapshot_bytes(&a);
    assert_eq!(info.index, a.applied().0);
    assert_eq!((info.index, info.term), expected.applied);
    assert_eq!(info.revision, expected.revision);
    assert_eq!(info.compact_revision, expected.compact_revision);
    assert!(info.compact_revision > 1);
    assert!(leftovers(dir.path()).is_empty(), "scratch file left behind");
    let snap_path = dir.path().join("snap.etch");
    std::fs::write(&snap_path, &bytes).unwrap();

    // A new member (never applied anything, its own random database id) takes it.
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    let installed = b.install_snapshot(&snap_path).unwrap();
    assert_eq!(installed, info);
    assert_eq!(model(&b), expected);
    assert_eq!(b.hash_kv(0).unwrap(), a.hash_kv(0).unwrap());
    b.check().unwrap();
    assert!(leftovers(dir.path()).is_empty(), "install copy left behind");
    // The log continues at index + 1, on both, identically.
    let next = info.index + 1;
    for db in [&a, &b] {
        assert!(matches!(
            db.apply(next + 1, 4, &put("late", b"1")),
            Err(Error::OutOfOrder { .. })
        ));
        db.apply(next, 4, &put("late", b"1")).unwrap();
    }
    assert_eq!(b.applied(), (next, 4));
    assert_eq!(b.hash_kv(0).unwrap(), a.hash_kv(0).unwrap());
    // The installed state and what followed survive a reopen, identity included.
    let after = model(&b);
    b.close().unwrap();
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    assert_eq!(model(&b), after);
    let (_, again) = snapshot_bytes(&b);
    assert_eq!(again.database_id, info.database_id);
    // The same database's later snapshot installs over it; an older one is refused.
    let (_, _) = snapshot_bytes(&a);
    a.apply(next + 1, 4, &put("later", b"2")).unwrap();
    let (newer, newer_info) = snapshot_bytes(&a);
    let newer_path = dir.path().join("newer.etch");
    std::fs::write(&newer_path, &newer).unwrap();
    b.install_snapshot(&newer_path).unwrap();
    assert_eq!(model(&b), model(&a));
    assert_eq!(b.applied().0, newer_info.index);
    assert!(matches!(
        b.install_snapshot(&snap_path),
        Err(Error::SnapshotBehind { snapshot, applied }) if snapshot == info.index && applied == newer_info.index
    ));
    assert_eq!(model(&b), model(&a));
}

#[test]
fn snapshot_to_while_writers_run_is_the_state_at_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("w.etch")).unwrap();
    const PUTS: usize = 600;
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for i in 0..PUTS {
                // Put i is commit i + 1 and makes revision i + 2.
                db.put(format!("k/{i:05}"), format!("{i}")).unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    for n in 0..8 {
        let (bytes, info) = snapshot_bytes(&db);
        let path = dir.path().join(format!("s{n}.etch"));
        std::fs::write(&path, &bytes).unwrap();
        let copy = Store::open(&path).unwrap();
        assert_eq!(copy.revision(), info.revision);
        assert_eq!(copy.applied(), (info.index, 0));
        assert_eq!(info.index as i64, info.revision - 1);
        let kvs = copy.range(Range::all()).unwrap().kvs;
        let expected: Vec<(Vec<u8>, Vec<u8>, i64)> = (0..info.index as usize)
            .map(|i| {
                (
                    format!("k/{i:05}").into_bytes(),
                    format!("{i}").into_bytes(),
                    i as i64 + 2,
                )
            })
            .collect();
        let got: Vec<(Vec<u8>, Vec<u8>, i64)> = kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision))
            .collect();
        assert_eq!(got, expected, "snapshot at index {}", info.index);
        copy.check().unwrap();
        seen.push(info.index);
    }
    writer.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "indexes go back: {seen:?}"
    );
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn readers_and_watchers_across_an_install() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path().join("a.etch")).unwrap();
    for i in 0..20u64 {
        a.apply(i + 1, 1, &put(&format!("k/{i:02}"), b"first"))
            .unwrap();
    }
    let (first, first_info) = snapshot_bytes(&a);
    let first_path = dir.path().join("first.etch");
    std::fs::write(&first_path, first).unwrap();
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    b.install_snapshot(&first_path).unwrap();
    let base = b.revision();
    assert_eq!(base, first_info.revision);

    // Readers and watchers on b's current state.
    let reader = b.read().unwrap();
    let before = reader.range(Range::all()).unwrap().kvs;
    let mut low = b
        .watch_with(
            Range::all(),
            WatchOptions {
                start_revision: 3,
                ..Default::default()
            },
        )
        .unwrap();
    let mut high = b
        .watch_with(
            Range::all(),
            WatchOptions {
                start_revision: base + 6,
                ..Default::default()
            },
        )
        .unwrap();
    // Drain `low`'s replay of the history it can still see.
    while let Some(r) = low.try_recv().unwrap() {
        if r.caught_up {
            break;
        }
    }

    // The leader moves on: more writes, then a compaction to `base + 5`.
    let mut index = first_info.index + 1;
    for i in 0..10u64 {
        a.apply(index, 2, &put(&format!("n/{i:02}"), b"second"))
            .unwrap();
        index += 1;
    }
    a.apply(index, 2, &Command::Compact(base + 5)).unwrap();
    let (second, _) = snapshot_bytes(&a);
    let second_path = dir.path().join("second.etch");
    std::fs::write(&second_path, second).unwrap();
    b.install_snapshot(&second_path).unwrap();
    assert_eq!(model(&b), model(&a));

    // The reader still sees the state it pinned.
    assert_eq!(reader.range(Range::all()).unwrap().kvs, before);
    assert_eq!(reader.revision(), base);
    drop(reader);

    // `low` needs history at or below the new compact revision: cancelled, as etcd does.
    let mut cancelled = None;
    for _ in 0..50 {
        match low.recv_timeout(Duration::from_millis(200)).unwrap() {
            Some(r) if r.canceled => {
                cancelled = Some(r.compact_revision);
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert_eq!(
        cancelled,
        Some(base + 5),
        "the low watcher was not cancelled"
    );
    // `high` continues: it sees the puts after the compaction, in order, then later writes.
    let mut keys = Vec::new();
    while keys.len() < 5 {
        let r = high
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("events after the install");
        assert!(!r.canceled);
        keys.extend(r.events.into_iter().map(|e| e.kv.key));
    }
    let expected: Vec<Vec<u8>> = (5..10).map(|i| format!("n/{i:02}").into_bytes()).collect();
    assert_eq!(keys, expected);
    b.put("after/install", "1").unwrap();
    let r = high.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(r.events[0].kv.key, b"after/install");
    b.check().unwrap();
}

#[test]
fn bad_snapshots_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path().join("a.etch")).unwrap();
    fill_replicated(&a, 1, 80, 1);
    let (good, _) = snapshot_bytes(&a);
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    for i in 0..30 {
        b.put(format!("own/{i}"), "mine").unwrap();
    }
    let before = model(&b);
    let page = 4096;
    let mut flipped = good.clone();
    // A byte inside a tree page (past the two meta pages).
    let at = 2 * page + (good.len() - 2 * page) / 2 + 100;
    flipped[at] ^= 0x40;
    let mut bad_meta = good.clone();
    bad_meta[20] ^= 1;
    bad_meta[page + 20] ^= 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", vec![0x5a; 3 * page]),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("meta only", good[..2 * page].to_vec()),
        ("flipped page byte", flipped),
        ("both metas damaged", bad_meta),
    ];
    for (what, bytes) in cases {
        let path = dir.path().join("bad.etch");
        std::fs::write(&path, &bytes).unwrap();
        match b.install_snapshot_replacing_identity(&path) {
            Err(Error::InvalidSnapshot { path: p, .. }) => assert_eq!(p, path, "{what}"),
            other => panic!("{what}: expected InvalidSnapshot, got {other:?}"),
        }
        assert_eq!(model(&b), before, "{what}: the store changed");
        assert!(leftovers(dir.path()).is_empty(), "{what}: copy left behind");
    }
    // A missing file is an I/O error.
    assert!(matches!(
        b.install_snapshot(&dir.path().join("missing.etch")),
        Err(Error::Io(_))
    ));
    // A good snapshot of another database: refused by a store with a history of its own...
    let good_path = dir.path().join("good.etch");
    std::fs::write(&good_path, &good).unwrap();
    assert!(matches!(
        b.install_snapshot(&good_path),
        Err(Error::SnapshotIdentity { .. })
    ));
    assert_eq!(model(&b), before);
    b.check().unwrap();
    b.put("still", "writable").unwrap();
    // ...unless told to replace its identity (b's 31 commits are behind a's index).
    b.install_snapshot_replacing_identity(&good_path).unwrap();
    assert_eq!(model(&b), model(&a));
    b.close().unwrap();
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    assert_eq!(model(&b), model(&a));
}

#[test]
fn identity_and_index_rules() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path().join("a.etch")).unwrap();
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    for i in 0..10 {
        a.put(format!("a/{i}"), "a").unwrap();
        b.put(format!("b/{i}"), "b").unwrap();
    }
    let (bytes, info) = snapshot_bytes(&a);
    assert_eq!(info.index, 10);
    let path = dir.path().join("a-snap.etch");
    std::fs::write(&path, &bytes).unwrap();
    let b_before = model(&b);
    // Another database at b's own index: refused both ways, nothing changed.
    assert!(matches!(
        b.install_snapshot(&path),
        Err(Error::SnapshotIdentity { store, snapshot }) if snapshot == info.database_id && store != snapshot
    ));
    assert!(matches!(
        b.install_snapshot_replacing_identity(&path),
        Err(Error::SnapshotBehind {
            snapshot: 10,
            applied: 10
        })
    ));
    assert_eq!(model(&b), b_before);
    // The same database at its own applied index: installs, the same state, still writable.
    let a_before = model(&a);
    assert_eq!(a.install_snapshot(&path).unwrap(), info);
    assert_eq!(model(&a), a_before);
    a.put("a/after", "1").unwrap();
    assert_eq!(a.applied().0, 11);
    // Read-only and closed stores install nothing.
    b.close().unwrap();
    let ro = Options::new()
        .read_only(true)
        .open(dir.path().join("b.etch"))
        .unwrap();
    assert!(matches!(
        ro.install_snapshot(&path),
        Err(Error::ReadOnly { .. })
    ));
    assert_eq!(model(&ro), b_before);
    drop(ro);
    let a2 = a.clone();
    a.close().unwrap();
    assert!(matches!(a2.install_snapshot(&path), Err(Error::Closed)));
    assert!(matches!(
        a2.snapshot_to(&mut Vec::new()),
        Err(Error::Closed)
    ));
}

// ---- the simulated disk: power cuts and I/O errors at every operation of an install ----

const DB: &str = "/sim/b.etch";
const SNAP: &str = "/sim/snap.etch";

fn sim_options(disk: &SimDisk) -> Options {
    Options::new()
        .storage(Arc::new(disk.clone()))
        .wal_capacity(1 << 20)
        .checkpoint_interval(Duration::from_secs(3600))
}

fn scratch(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The starting image: `b` and a snapshot file of a newer state beside it. With `foreign`, `b`
/// is a database of its own (installed with `install_snapshot_replacing_identity`); without,
/// it was made from an early snapshot of the same database. Either way `b` has commits of its
/// own. Returns the image and the newer state.
fn starting_image(root: &Path, foreign: bool) -> (SimImage, Model) {
    let source_dir = tempfile::tempdir().unwrap();
    let a = Store::open(source_dir.path().join("a.etch")).unwrap();
    fill_replicated(&a, 1, 60, 1);
    let (early, _) = snapshot_bytes(&a);
    fill_replicated(&a, a.applied().0 + 1, 60, 2);
    let (late, _) = snapshot_bytes(&a);
    let new = model(&a);

    let disk = SimDisk::new(&scratch(root, "setup"));
    let early_path = Path::new("/sim/early.etch");
    write_sim_file(&disk, early_path, &early);
    let b = sim_options(&disk).open(DB).unwrap();
    if !foreign {
        b.install_snapshot(early_path).unwrap();
    }
    for i in 0..5u64 {
        b.apply(b.applied().0 + 1, 1, &put(&format!("own/{i}"), b"b"))
            .unwrap();
    }
    assert!(b.applied().0 < new.applied.0);
    disk.remove(early_path).unwrap();
    write_sim_file(&disk, Path::new(SNAP), &late);
    let image = disk.crash_image(CrashPolicy::DropUnsynced);
    drop(b);
    (image, new)
}

fn write_sim_file(disk: &SimDisk, path: &Path, bytes: &[u8]) {
    let f = disk.open(path, true).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_all().unwrap();
    disk.sync_dir(path).unwrap();
}

/// Reopens `image` and checks it holds `old` or `new`, whole; returns which ("old"/"new").
fn reopen_whole(root: &Path, image: &SimImage, old: &Model, new: &Model, what: &str) -> bool {
    let disk = SimDisk::from_image(&scratch(root, "verify"), image).unwrap();
    let db = sim_options(&disk)
        .open(DB)
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let got = model(&db);
    let is_new = if &got == new {
        true
    } else if &got == old {
        false
    } else {
        panic!(
            "{what}: a mix of states: applied {:?}, revision {}",
            got.applied, got.revision
        )
    };
    db.check()
        .unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
    let next = got.applied.0 + 1;
    db.apply(next, 9, &put("after", b"crash"))
        .unwrap_or_else(|e| panic!("{what}: no write after reopen: {e}"));
    is_new
}

fn install(db: &Store, foreign: bool) -> Result<SnapshotInfo, Error> {
    if foreign {
        db.install_snapshot_replacing_identity(Path::new(SNAP))
    } else {
        db.install_snapshot(Path::new(SNAP))
    }
}

/// Opens the starting image on a fresh disk and commits a few entries that stay in the WAL
/// (opening checkpointed what the image's WAL held); returns the disk and the store.
fn open_start(root: &Path, image: &SimImage) -> (SimDisk, Store) {
    let disk = SimDisk::from_image(&scratch(root, "run"), image).unwrap();
    let db = sim_options(&disk).open(DB).unwrap();
    for i in 0..3u64 {
        db.apply(db.applied().0 + 1, 1, &put(&format!("wal/{i}"), b"w"))
            .unwrap();
    }
    assert!(db.status().unwrap().wal_size > 0);
    (disk, db)
}

#[test]
fn a_power_cut_at_every_operation_of_an_install_leaves_old_or_new() {
    for foreign in [false, true] {
        power_cut_at_every_operation(foreign);
    }
}

fn power_cut_at_every_operation(foreign: bool) {
    let root = tempfile::tempdir().unwrap();
    let (image, new) = starting_image(root.path(), foreign);
    let (disk, db) = open_start(root.path(), &image);
    let old = model(&db);
    let ops_before = disk.ops();
    install(&db, foreign).unwrap();
    let ops = disk.ops() - ops_before;
    assert_eq!(model(&db), new);
    drop(db);
    assert!(ops > 8, "install did {ops} operations");
    let (mut olds, mut news) = (0, 0);
    for k in 1..=ops + 1 {
        let (disk, db) = open_start(root.path(), &image);
        disk.crash_at_op(disk.ops() + k);
        let result = install(&db, foreign);
        if k <= ops {
            assert!(result.is_err(), "crash at install op {k} went unnoticed");
        }
        for policy in [
            CrashPolicy::DropUnsynced,
            CrashPolicy::KeepUnsynced,
            CrashPolicy::Torn {
                seed: k,
                sector: 512,
            },
            CrashPolicy::Torn {
                seed: k << 8,
                sector: 4096,
            },
        ] {
            let what = format!(
                "foreign {foreign}: power cut at install operation {k} of {ops}, {policy:?}"
            );
            let crashed = disk.crash_image(policy);
            if reopen_whole(root.path(), &crashed, &old, &new, &what) {
                news += 1;
            } else {
                olds += 1;
            }
        }
        drop(db);
    }
    assert!(olds > 0 && news > 0, "old {olds}, new {news}");
    println!(
        "install (foreign {foreign}): {ops} operations, power cut at each: {olds} images old, {news} new"
    );
}

#[test]
fn an_io_error_at_every_operation_of_an_install_is_reported_and_leaves_a_whole_state() {
    for foreign in [false, true] {
        io_error_at_every_operation(foreign);
    }
}

fn io_error_at_every_operation(foreign: bool) {
    let root = tempfile::tempdir().unwrap();
    let (image, new) = starting_image(root.path(), foreign);
    let (disk, db) = open_start(root.path(), &image);
    let old = model(&db);
    let ops_before = disk.ops();
    install(&db, foreign).unwrap();
    let ops = disk.ops() - ops_before;
    drop(db);
    let mut usable = 0;
    for k in 1..=ops {
        for fault in [Fault::Io, Fault::NoSpace] {
            let what = format!("foreign {foreign}: {fault:?} at install operation {k} of {ops}");
            let (disk, db) = open_start(root.path(), &image);
            disk.fail_op(disk.ops() + k, fault);
            match install(&db, foreign) {
                Ok(_) => panic!("{what}: the error went unnoticed"),
                Err(Error::Io(_) | Error::NoSpace(_) | Error::Poisoned(_)) => {}
                Err(e) => panic!("{what}: unexpected error {e:?}"),
            }
            // Either the handle still works on the old state, or it refuses every write.
            match db.apply(old.applied.0 + 1, 9, &put("after", b"error")) {
                Ok(_) => {
                    usable += 1;
                    let mut m = model(&db);
                    m.kvs.retain(|kv| kv.key != b"after");
                    assert_eq!(m.kvs, old.kvs, "{what}: usable handle, changed state");
                }
                Err(Error::Poisoned(_)) => {}
                Err(e) => panic!("{what}: neither usable nor poisoned: {e:?}"),
            }
            let crashed = disk.crash_image(CrashPolicy::DropUnsynced);
            drop(db);
            let crashed_after_drop = disk.crash_image(CrashPolicy::KeepUnsynced);
            for (img, how) in [(crashed, "power cut"), (crashed_after_drop, "after close")] {
                let what = format!("{what}, {how}");
                let disk2 = SimDisk::from_image(&scratch(root.path(), "verify"), &img).unwrap();
                let db2 = sim_options(&disk2)
                    .open(DB)
                    .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
                let mut got = model(&db2);
                // A write accepted after the error may be in the reopened state.
                if got.kvs.iter().any(|kv| kv.key == b"after") {
                    got.kvs.retain(|kv| kv.key != b"after");
                    assert_eq!(got.kvs, old.kvs, "{what}");
                } else {
                    assert!(got == old || got == new, "{what}: a mix of states");
                }
                db2.check().unwrap();
            }
        }
    }
    assert!(
        usable > 0,
        "no error before the swap left the handle usable"
    );
    println!(
        "install (foreign {foreign}): {ops} operations, I/O error at each: {usable} left the handle usable"
    );
}

// ---- what a snapshot costs (run by hand; figures in docs/benchmarks.md) ----

/// Peak resident memory while `f` runs, sampled every 5 ms from /proc/self/status: returns
/// `f`'s result and the peak increase of (anonymous, file-backed) RSS in MiB over the start.
fn peak_rss<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    fn sample() -> (u64, u64) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("RssAnon:"), field("RssFile:"))
    }
    let start = sample();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = sample();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let s = sample();
                peak = (peak.0.max(s.0), peak.1.max(s.1));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let out = f();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let mib = |kib: u64, base: u64| kib.saturating_sub(base) as f64 / 1024.0;
    (out, mib(peak.0, start.0), mib(peak.1, start.1))
}

/// `ETCH_SNAPSHOT_KEYS` (default 1,000,000) keys with 256-byte values, put in batches of 1,000;
/// then `snapshot_to` a file, and `install_snapshot` of it into a new store.
#[test]
#[ignore = "a measurement: cargo test --release --workspace --test engine snapshot_install:: -- --ignored --nocapture"]
fn snapshot_cost_for_a_million_keys() {
    let keys: usize = std::env::var("ETCH_SNAPSHOT_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let a = Options::new()
        .max_txn_ops(1000)
        .open(dir.path().join("a.etch"))
        .unwrap();
    let start = std::time::Instant::now();
    for chunk in 0..keys.div_ceil(1000) {
        let ops = (chunk * 1000..((chunk + 1) * 1000).min(keys))
            .map(|i| WriteOp::put(format!("key/{i:08}"), [b'v'; 256]))
            .collect();
        a.batch(ops).unwrap();
    }
    a.checkpoint().unwrap();
    let fill = start.elapsed();
    let store_size = a.status().unwrap().file_size;
    let snap_path = dir.path().join("snap.etch");
    let start = std::time::Instant::now();
    let (info, anon, file) = peak_rss(|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&snap_path).unwrap());
        a.snapshot_to(&mut out).unwrap()
    });
    let snapshot_time = start.elapsed();
    let b = Store::open(dir.path().join("b.etch")).unwrap();
    let start = std::time::Instant::now();
    let (installed, install_anon, install_file) =
        peak_rss(|| b.install_snapshot(&snap_path).unwrap());
    let install_time = start.elapsed();
    assert_eq!(installed, info);
    assert_eq!(b.hash_kv(0).unwrap(), a.hash_kv(0).unwrap());
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{keys} keys x 256 B: fill {fill:.1?}, store file {:.1} MiB",
        mib(store_size)
    );
    println!(
        "snapshot_to: {snapshot_time:.2?}, {:.1} MiB, peak extra RSS anon {anon:.1} MiB, file-backed {file:.1} MiB",
        mib(info.size)
    );
    println!(
        "install_snapshot: {install_time:.2?}, peak extra RSS anon {install_anon:.1} MiB, file-backed {install_file:.1} MiB"
    );
}
