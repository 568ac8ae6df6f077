//! Concurrency tests: snapshot consistency of readers during heavy writes, many concurrent
//! durable writers (group commit), and the thread-safety contract of `Store`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use etch_engine::{
    Durability, Error, KeyValue, Options, Range, RangeOptions, ReadTxn, Revision, Store, WriteOp,
};

/// xorshift64*: deterministic per thread, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Readers see one consistent revision while a writer moves money between accounts
// ---------------------------------------------------------------------------------------------

const ACCOUNTS: usize = 24;
const INITIAL: i64 = 1000;
const TOTAL: i64 = ACCOUNTS as i64 * INITIAL;

fn account(i: usize) -> String {
    format!("acct/{i:02}")
}

/// `balance:padding`; the padding varies so that some versions need overflow pages and the
/// pages of old versions keep being replaced while readers hold snapshots.
fn encode_balance(balance: i64, pad: usize) -> Vec<u8> {
    let mut v = format!("{balance}:").into_bytes();
    v.resize(v.len() + pad, b'.');
    v
}

fn decode_balance(kv: &KeyValue) -> i64 {
    let s = std::str::from_utf8(&kv.value).expect("utf-8 value");
    let (n, _) = s.split_once(':').expect("balance:padding");
    n.parse().expect("balance")
}

/// Checks one read of the accounts and the counter, all at revision `rev` (the state as of
/// `rev`). `init_rev` is the revision of the batch that created the accounts; every batch since
/// writes every account and the counter, so every key of the read has mod revision `rev`.
fn check_bank(
    what: &str,
    accounts: &[KeyValue],
    count: i64,
    counter: &KeyValue,
    rev: Revision,
    init_rev: Revision,
) {
    assert_eq!(count, ACCOUNTS as i64, "{what}: count at {rev}");
    assert_eq!(accounts.len(), ACCOUNTS, "{what}: accounts at {rev}");
    let sum: i64 = accounts.iter().map(decode_balance).sum();
    assert_eq!(sum, TOTAL, "{what}: total at revision {rev} is {sum}");
    for (i, kv) in accounts.iter().enumerate() {
        assert_eq!(kv.key, account(i).into_bytes(), "{what}: key order");
        assert_eq!(
            kv.mod_revision,
            rev,
            "{what}: {} has mod revision {} in a read at revision {rev}",
            account(i),
            kv.mod_revision
        );
        assert_eq!(kv.create_revision, init_rev, "{what}: create revision");
        assert_eq!(kv.version, rev - init_rev + 1, "{what}: version");
    }
    assert_eq!(counter.mod_revision, rev, "{what}: counter mod revision");
    assert_eq!(
        counter.value,
        (rev - init_rev).to_string().into_bytes(),
        "{what}: counter value at revision {rev}"
    );
}

fn read_bank_txn(txn: &ReadTxn, rev: Revision, init_rev: Revision, what: &str) -> Vec<KeyValue> {
    // 0: the transaction's current revision.
    let rev = if rev == 0 { txn.revision() } else { rev };
    let opts = RangeOptions {
        revision: rev,
        ..Default::default()
    };
    let accts = txn.range_with(&Range::prefix("acct/"), &opts).unwrap();
    assert_eq!(
        accts.header_revision,
        txn.revision(),
        "{what}: header revision"
    );
    let counter = txn.range_with(&Range::key("counter"), &opts).unwrap();
    assert_eq!(counter.kvs.len(), 1, "{what}: counter at {rev}");
    check_bank(
        what,
        &accts.kvs,
        accts.count,
        &counter.kvs[0],
        rev,
        init_rev,
    );
    accts.kvs
}

fn bank(durability: Durability, batches: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.etch");
    let store = Options::new()
        .durability(durability)
        // A small WAL so that checkpoints happen by WAL size during the run, too.
        .wal_capacity(1 << 20)
        .open(&path)
        .unwrap();
    let mut init: Vec<WriteOp> = (0..ACCOUNTS)
        .map(|i| WriteOp::put(account(i), encode_balance(INITIAL, 0)))
        .collect();
    init.push(WriteOp::put("counter", "0"));
    let init_rev = store.batch(init).unwrap().header_revision;
    assert_eq!(init_rev, 2);
    // A snapshot held for the whole run: the pages it reaches must survive every later batch and
    // checkpoint unchanged.
    let early = store.read().unwrap();
    let early_kvs = read_bank_txn(&early, 0, init_rev, "early snapshot");

    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..4u64 {
        let store = store.clone();
        let done = done.clone();
        let reads = reads.clone();
        readers.push(thread::spawn(move || {
            let mut rng = Rng::new(100 + r);
            let mut last_rev = 0;
            let mut n = 0u64;
            // At least a few reads even if the writer finishes first.
            while !done.load(Ordering::Acquire) || n < 20 {
                n += 1;
                match rng.below(8) {
                    // A read transaction: current state, then an older revision through it.
                    0..=4 => {
                        let txn = store.read().unwrap();
                        let rev = txn.revision();
                        assert!(
                            rev >= last_rev,
                            "revision went back from {last_rev} to {rev}"
                        );
                        last_rev = rev;
                        let first = read_bank_txn(&txn, 0, init_rev, "txn read");
                        let counter = txn.get("counter").unwrap().unwrap();
                        assert_eq!(counter.mod_revision, rev, "txn get counter");
                        if rev > init_rev {
                            let old = init_rev + rng.below((rev - init_rev) as u64) as i64;
                            read_bank_txn(&txn, old, init_rev, "txn read at an old revision");
                        }
                        if rng.below(10) == 0 {
                            // Hold the snapshot while the writer replaces (and would reuse) its
                            // pages, then read it again: it must not have changed.
                            thread::sleep(Duration::from_millis(3));
                            let again = read_bank_txn(&txn, 0, init_rev, "txn re-read");
                            assert_eq!(first, again, "a held snapshot changed");
                        }
                    }
                    // Plain store reads: each is its own snapshot.
                    5 | 6 => {
                        let accts = store.range(Range::prefix("acct/")).unwrap();
                        let rev = accts.header_revision;
                        assert!(
                            rev >= last_rev,
                            "revision went back from {last_rev} to {rev}"
                        );
                        last_rev = rev;
                        let counter = store
                            .range_with(
                                &Range::key("counter"),
                                &RangeOptions {
                                    revision: rev,
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                        check_bank(
                            "store read",
                            &accts.kvs,
                            accts.count,
                            &counter.kvs[0],
                            rev,
                            init_rev,
                        );
                    }
                    // Sorted, limited and count-only reads agree with the snapshot too.
                    _ => {
                        let txn = store.read().unwrap();
                        let rev = txn.revision();
                        let r = txn
                            .range_with(
                                &Range::prefix("acct/"),
                                &RangeOptions {
                                    limit: 5,
                                    sort_order: etch_engine::SortOrder::Descend,
                                    sort_target: etch_engine::SortTarget::Mod,
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                        assert_eq!((r.kvs.len(), r.more, r.count), (5, true, ACCOUNTS as i64));
                        assert!(r.kvs.iter().all(|kv| kv.mod_revision == rev));
                        let c = txn
                            .range_with(
                                &Range::all(),
                                &RangeOptions {
                                    count_only: true,
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                        assert_eq!(c.count, ACCOUNTS as i64 + 1);
                    }
                }
            }
            reads.fetch_add(n, Ordering::Relaxed);
        }));
    }

    let mut rng = Rng::new(7);
    let mut balances = vec![INITIAL; ACCOUNTS];
    let started = Instant::now();
    for i in 1..=batches {
        let from = rng.below(ACCOUNTS as u64) as usize;
        let to = rng.below(ACCOUNTS as u64) as usize;
        let amount = (rng.below(50) as i64).min(balances[from]);
        balances[from] -= amount;
        balances[to] += amount;
        let mut ops: Vec<WriteOp> = balances
            .iter()
            .enumerate()
            .map(|(a, &b)| {
                let pad = match rng.below(16) {
                    0 => 3000 + rng.below(3000) as usize,
                    1..=3 => 500 + rng.below(600) as usize,
                    _ => rng.below(40) as usize,
                };
                WriteOp::put(account(a), encode_balance(b, pad))
            })
            .collect();
        ops.push(WriteOp::put("counter", i.to_string()));
        let resp = store.batch(ops).unwrap();
        assert_eq!(resp.header_revision, init_rev + i as i64);
        if i % 97 == 0 {
            store.checkpoint().unwrap();
        }
    }
    let write_time = started.elapsed();
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    let reads = reads.load(Ordering::Relaxed);
    assert!(reads >= 80, "readers did only {reads} reads");
    eprintln!("bank {durability:?}: {batches} batches in {write_time:?}, {reads} concurrent reads");

    assert_eq!(early.revision(), init_rev);
    assert_eq!(
        read_bank_txn(&early, 0, init_rev, "early snapshot at the end"),
        early_kvs,
        "a snapshot held during the run changed"
    );
    drop(early);

    let final_rev = init_rev + batches as i64;
    assert_eq!(store.revision(), final_rev);
    let txn = store.read().unwrap();
    let accts = read_bank_txn(&txn, 0, init_rev, "final");
    let got: Vec<i64> = accts.iter().map(decode_balance).collect();
    assert_eq!(got, balances);
    drop(txn);
    store.check().unwrap();
    store.close().unwrap();

    let store = Store::open(&path).unwrap();
    assert_eq!(store.revision(), final_rev);
    let txn = store.read().unwrap();
    for rev in (init_rev..=final_rev).step_by(((batches / 50) as usize).max(1)) {
        read_bank_txn(&txn, rev, init_rev, "after reopen");
    }
    store.check().unwrap();
}

#[test]
fn readers_see_consistent_snapshots_during_durable_writes() {
    bank(Durability::Immediate, 400);
}

#[test]
fn readers_see_consistent_snapshots_during_relaxed_writes() {
    bank(Durability::Relaxed, 2000);
}

// ---------------------------------------------------------------------------------------------
// (b) Many durable writers: every acknowledged commit is there, at its revision
// ---------------------------------------------------------------------------------------------

const WRITERS: usize = 8;
const COMMITS: usize = 200;

fn writer_key(t: usize, i: usize, part: &str) -> String {
    format!("w{t}/{i:04}{part}")
}

fn writer_value(t: usize, i: usize) -> Vec<u8> {
    let len = if i.is_multiple_of(23) { 5000 } else { 16 };
    let mut v = format!("{t}-{i}-").into_bytes();
    v.resize(len, b'0' + (i % 10) as u8);
    v
}

/// Every acked write is visible with the revision it was acknowledged at.
fn verify_acked(store: &Store, acked: &[(Vec<String>, Revision)], what: &str) {
    let txn = store.read().unwrap();
    for (keys, rev) in acked {
        for key in keys {
            let kv = txn
                .get(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{what}: acknowledged key {key} is missing"));
            assert_eq!(
                (kv.mod_revision, kv.create_revision, kv.version),
                (*rev, *rev, 1),
                "{what}: {key}"
            );
            let (t, i) = parse_writer_key(key);
            assert_eq!(kv.value, writer_value(t, i), "{what}: value of {key}");
            let at = |r: Revision| {
                txn.range_with(
                    &Range::key(key),
                    &RangeOptions {
                        revision: r,
                        ..Default::default()
                    },
                )
                .unwrap()
                .count
            };
            assert_eq!(at(*rev), 1, "{what}: {key} at its revision");
            assert_eq!(at(*rev - 1), 0, "{what}: {key} before its revision");
        }
    }
}

fn parse_writer_key(key: &str) -> (usize, usize) {
    let (t, rest) = key[1..].split_once('/').unwrap();
    (t.parse().unwrap(), rest[..4].parse().unwrap())
}

#[test]
fn concurrent_durable_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writers.etch");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.revision(), 1);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let started = Instant::now();
    let handles: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut acked: Vec<(Vec<String>, Revision)> = Vec::new();
                let mut last = 0;
                for i in 0..COMMITS {
                    let (keys, rev) = if i % 10 == 9 {
                        // A two-key batch: one commit, one revision.
                        let keys = vec![writer_key(t, i, "a"), writer_key(t, i, "b")];
                        let ops = keys
                            .iter()
                            .map(|k| WriteOp::put(k, writer_value(t, i)))
                            .collect();
                        let rev = store.batch(ops).unwrap().header_revision;
                        (keys, rev)
                    } else {
                        let key = writer_key(t, i, "");
                        let rev = store.put(&key, writer_value(t, i)).unwrap().header_revision;
                        (vec![key], rev)
                    };
                    assert!(rev > last, "writer {t}: revision {rev} after {last}");
                    last = rev;
                    // Acknowledged means visible: read-your-writes, at the acked revision.
                    assert!(store.revision() >= rev);
                    for k in &keys {
                        let kv = store.get(k).unwrap().expect("own write visible");
                        assert_eq!(kv.mod_revision, rev, "writer {t}: {k}");
                    }
                    acked.push((keys, rev));
                }
                acked
            })
        })
        .collect();
    let acked: Vec<(Vec<String>, Revision)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    let total = WRITERS * COMMITS;
    eprintln!("{total} durable commits from {WRITERS} threads in {elapsed:?}");
    assert_eq!(acked.len(), total);

    // Revisions are unique and dense: exactly 2..=1+total.
    let revs: HashSet<Revision> = acked.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        revs.len(),
        total,
        "two commits were acknowledged at the same revision"
    );
    assert_eq!(
        revs,
        (2..=1 + total as i64).collect::<HashSet<_>>(),
        "acknowledged revisions are not 2..=1+commits"
    );
    assert_eq!(store.revision(), 1 + total as i64);
    let keys: usize = acked.iter().map(|(k, _)| k.len()).sum();
    let by_rev: HashMap<Revision, usize> = acked.iter().map(|(k, r)| (*r, k.len())).collect();
    assert_eq!(by_rev.len(), total);

    verify_acked(&store, &acked, "live");
    let all = store.range(Range::all()).unwrap();
    assert_eq!(all.count as usize, keys);
    let report = store.check().unwrap();
    assert_eq!(report.keys as usize, keys);
    store.close().unwrap();

    let store = Store::open(&path).unwrap();
    assert_eq!(store.revision(), 1 + total as i64);
    verify_acked(&store, &acked, "reopened");
    assert_eq!(store.range(Range::all()).unwrap().count as usize, keys);
    let report = store.check().unwrap();
    assert_eq!(report.keys as usize, keys);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// (c) Thread-safety contract
// ---------------------------------------------------------------------------------------------

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn store_is_send_sync_and_clones_share_state() {
    assert_send_sync::<Store>();
    assert_send_sync::<ReadTxn>();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clones.etch");
    let a = Store::open(&path).unwrap();
    let b = a.clone();
    let r = b.put("k", "from b").unwrap().header_revision;
    assert_eq!(a.revision(), r);
    assert_eq!(a.get("k").unwrap().unwrap().value, b"from b");

    // A clone moved to another thread writes into the same store.
    let c = a.clone();
    let r2 = thread::spawn(move || c.put("k", "from thread").unwrap().header_revision)
        .join()
        .unwrap();
    assert_eq!(r2, r + 1);
    assert_eq!(b.get("k").unwrap().unwrap().value, b"from thread");
    assert_eq!(b.get("k").unwrap().unwrap().version, 2);

    // A read transaction can move to another thread and still sees its snapshot.
    let txn = a.read().unwrap();
    a.put("k", "later").unwrap();
    let seen = thread::spawn(move || txn.get("k").unwrap().unwrap().value)
        .join()
        .unwrap();
    assert_eq!(seen, b"from thread");

    // The file is locked while open, clones included.
    assert!(matches!(Store::open(&path), Err(Error::Locked { .. })));

    // Closing one clone closes the store for all of them.
    b.close().unwrap();
    assert!(matches!(a.put("k", "x"), Err(Error::Closed)));
    assert!(matches!(a.get("k"), Err(Error::Closed)));
    assert!(matches!(a.read(), Err(Error::Closed)));
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.revision(), r2 + 1);
    assert_eq!(reopened.get("k").unwrap().unwrap().value, b"later");
    // Dropping the last old clone does not disturb the reopened store.
    drop(a);
    reopened.put("k", "after").unwrap();
    assert!(matches!(Store::open(&path), Err(Error::Locked { .. })));
    reopened.check().unwrap();
    reopened.close().unwrap();
    let again = Store::open(&path).unwrap();
    assert_eq!(again.get("k").unwrap().unwrap().value, b"after");
}

#[test]
fn concurrent_clones_and_readers_with_checkpoints() {
    // Writers on shared clones, each to its own key with a version count, while another
    // thread checkpoints and checks: every key's version equals the number of acked puts.
    let dir = tempfile::tempdir().unwrap();
    let store = Options::new()
        .durability(Durability::Relaxed)
        .wal_capacity(1 << 20)
        .open(dir.path().join("mixed.etch"))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let maint = {
        let store = store.clone();
        let done = done.clone();
        thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                store.checkpoint().unwrap();
                store.check().unwrap();
                store.sync().unwrap();
                n += 1;
                thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                let key = format!("ctr/{t}");
                let mut rng = Rng::new(t as u64);
                for i in 1..=500i64 {
                    let len = if rng.below(20) == 0 { 4000 } else { 8 };
                    let mut v = i.to_string().into_bytes();
                    v.push(b':');
                    v.resize(len, b'x');
                    let rev = store.put(&key, &v).unwrap().header_revision;
                    let kv = store.get(&key).unwrap().unwrap();
                    assert_eq!((kv.version, kv.mod_revision), (i, rev));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let rounds = maint.join().unwrap();
    assert!(rounds > 0);
    assert_eq!(store.revision(), 1 + 4 * 500);
    let r = store.range(Range::prefix("ctr/")).unwrap();
    assert_eq!(r.count, 4);
    for kv in &r.kvs {
        assert_eq!(kv.version, 500);
        assert!(kv.value.starts_with(b"500:"));
    }
    store.check().unwrap();
}
