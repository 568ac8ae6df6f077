//! Defrag on a replicated store (a cluster member's file, whose WAL is the Raft log): the log
//! (unpurged entries and their payloads, the last purge, the vote), the applied state and the
//! applied membership are the same after it, after a reopen, and after a power cut at any
//! operation of it; the log goes on taking entries afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::sim::{CrashPolicy, SimDisk};
use etch_engine::{Command, Options, PutOp, Range, Store, WriteOp};

use crate::common::{keys, log_entries};

const DB: &str = "/sim/member.etch";
const VOTE: &[u8] = b"vote term 3 for 2";
const MEMBERSHIP: &[u8] = b"voters {1, 2, 3}";

fn options(disk: &SimDisk) -> Options {
    Options::new()
        .storage(Arc::new(disk.clone()))
        .replicated(true)
        .background_writes(false)
        .wal_capacity(1 << 20)
        .checkpoint_interval(Duration::from_secs(3600))
}

fn scratch(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Entry `index`'s payload (what the replication layer would store; the test applies
/// [`command`] for it).
fn payload(index: u64) -> Vec<u8> {
    format!("{index}").into_bytes()
}

/// Entry `index`'s command: a put of `k<index % 9>` with a 600-byte value, and every fourth
/// entry a delete (so the file has free pages for defrag to drop).
fn command(index: u64) -> Command {
    let key = format!("k{}", index % 9).into_bytes();
    let op = if index.is_multiple_of(4) {
        WriteOp::DeleteRange {
            range: Range::key(key),
            prev_kv: false,
        }
    } else {
        WriteOp::Put(PutOp {
            key,
            value: vec![b'a' + (index % 26) as u8; 600],
            ..Default::default()
        })
    };
    Command::Batch(vec![op])
}

fn append(store: &Store, from: u64, to: u64, term: u64) {
    let bufs: Vec<(u64, Vec<u8>)> = (from..=to).map(|i| (i, payload(i))).collect();
    let entries: Vec<(u64, u64, &[u8])> = bufs.iter().map(|(i, p)| (*i, term, &p[..])).collect();
    store.log_append(&entries).unwrap();
    store.wait_log_durable(to).unwrap();
}

/// Applies entries `from..=to` (entry 1 is the membership).
fn apply(store: &Store, from: u64, to: u64) {
    for i in from..=to {
        if i == 1 {
            store.apply_membership(1, 1, MEMBERSHIP).unwrap();
        } else {
            store.apply(i, 1, &command(i)).unwrap();
        }
    }
}

/// A member's file: 60 entries in term 1, 1..=40 applied, 1..=10 purged, a vote.
fn setup(disk: &SimDisk) -> Store {
    fill(options(disk).open(DB).unwrap())
}

fn fill(store: Store) -> Store {
    append(&store, 1, 60, 1);
    apply(&store, 1, 40);
    store.save_vote(VOTE).unwrap();
    store.log_purge(10).unwrap();
    store
}

/// Everything defrag must keep.
#[derive(Debug, PartialEq)]
struct Kept {
    log: Vec<(u64, u64, Vec<u8>)>,
    last_purged: Option<(u64, u64)>,
    vote: Option<Vec<u8>>,
    applied: (u64, u64),
    membership: Option<(u64, u64, Vec<u8>)>,
    keys: BTreeMap<Vec<u8>, Vec<u8>>,
    revision: i64,
}

fn kept(store: &Store) -> Kept {
    Kept {
        log: log_entries(store)
            .into_iter()
            .map(|e| (e.index, e.term, e.payload))
            .collect(),
        last_purged: store.log_state().unwrap().last_purged,
        vote: store.read_vote().unwrap(),
        applied: store.applied(),
        membership: store
            .applied_membership()
            .map(|m| (m.index, m.term, m.membership.to_vec())),
        keys: keys(store),
        revision: store.revision(),
    }
}

/// Opens what a power cut now would leave of `disk` under `policy`.
fn reopen(root: &Path, name: &str, disk: &SimDisk, policy: CrashPolicy) -> (SimDisk, Store) {
    let image = disk.crash_image(policy);
    disk.crash_at_op(disk.ops() + 1);
    let disk = SimDisk::from_image(&scratch(root, name), &image).unwrap();
    let store = options(&disk).open(DB).unwrap();
    (disk, store)
}

#[test]
fn defrag_keeps_a_members_log_vote_and_state() {
    let root = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(&scratch(root.path(), "a"));
    let store = setup(&disk);
    let before = kept(&store);
    assert_eq!(before.log.first().map(|e| e.0), Some(11));
    assert_eq!(before.log.last().map(|e| e.0), Some(60));
    assert_eq!(before.applied, (40, 1));

    let (size_before, size_after) = store.defrag().unwrap();
    assert!(size_after <= size_before, "{size_after} > {size_before}");
    assert_eq!(kept(&store), before, "the same handle after defrag");
    store.check().unwrap();

    // The log goes on: more entries appended and applied, then a purge past the defrag.
    append(&store, 61, 70, 2);
    apply(&store, 41, 60);
    store.log_purge(45).unwrap();
    let later = kept(&store);
    assert_eq!(later.log.first().map(|e| e.0), Some(46));
    assert_eq!(later.log.last().map(|e| (e.0, e.1)), Some((70, 2)));
    drop(store);

    // A restart (clean, and after a power cut) finds all of it.
    for policy in [CrashPolicy::DropUnsynced, CrashPolicy::KeepUnsynced] {
        let (_d, reopened) = reopen(root.path(), "reopen", &disk, policy);
        assert_eq!(kept(&reopened), later, "{policy:?}");
        reopened.check().unwrap();
    }
}

/// The same on a real file: defrag, close, reopen.
#[test]
fn a_defragmented_member_file_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("member.etch");
    let real = || {
        Options::new()
            .replicated(true)
            .background_writes(false)
            .wal_capacity(1 << 20)
    };
    let store = fill(real().open(&path).unwrap());
    let before = kept(&store);
    let (size_before, size_after) = store.defrag().unwrap();
    assert!(size_after < size_before, "{size_after} >= {size_before}");
    store.close().unwrap();
    let store = real().open(&path).unwrap();
    assert_eq!(kept(&store), before);
    store.check().unwrap();
    append(&store, 61, 62, 2);
    apply(&store, 41, 45);
    store.close().unwrap();
    let store = real().open(&path).unwrap();
    assert_eq!(store.applied(), (45, 1));
    assert_eq!(store.log_state().unwrap().last, Some((62, 2)));
    store.close().unwrap();
}

#[test]
fn power_cut_at_every_operation_of_a_members_defrag() {
    let root = tempfile::tempdir().unwrap();
    let probe = SimDisk::new(&scratch(root.path(), "probe"));
    let store = setup(&probe);
    let want = kept(&store);
    let first = probe.ops();
    store.defrag().unwrap();
    let last = probe.ops();
    assert!(last > first + 4, "defrag writes and syncs a copy");
    drop(store);

    let policies = |seed: u64| {
        [
            CrashPolicy::DropUnsynced,
            CrashPolicy::KeepUnsynced,
            CrashPolicy::Torn { seed, sector: 512 },
        ]
    };
    let mut done_runs = 0;
    for k in first + 1..=last + 1 {
        let disk = SimDisk::new(&scratch(root.path(), "run"));
        let store = setup(&disk);
        disk.crash_at_op(k);
        let done = store.defrag().is_ok();
        done_runs += usize::from(done);
        for policy in policies(k) {
            let (_d, reopened) = reopen(root.path(), "verify", &disk, policy);
            // Old file or new, the member finds the same log, vote and applied state.
            assert_eq!(kept(&reopened), want, "op {k} {policy:?} (done: {done})");
            reopened
                .check()
                .unwrap_or_else(|e| panic!("op {k} {policy:?}: {e}"));
            // And its log takes the next entry.
            append(&reopened, 61, 61, 2);
        }
        disk.crash_at_op(u64::MAX);
        drop(store);
    }
    assert!(done_runs > 0, "the last run completes");
}
