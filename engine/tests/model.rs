//! Model-based tests of the public API against a trivially correct in-memory model of etcd's
//! MVCC keyspace (one full copy of the keyspace per revision), plus deterministic edge cases.
//!
//! The property tests run random operation sequences (puts with every option, deletes, range
//! deletes, batches valid and invalid, large values that need overflow pages, bulk batches that
//! split and merge the trees, range reads at random past revisions with every option, reopen,
//! checkpoint, check) and compare every response field with the model.
//!
//! `ETCH_PROPTEST_CASES=n` raises the number of cases (default: a few dozen, well under a minute
//! in release mode).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use etch_engine::{
    prefix_end, BatchResponse, DeleteResponse, Durability, Error, KeyValue, OpResponse, Options,
    PutOp, PutResponse, Range, RangeOptions, RangeResponse, Revision, SortOrder, SortTarget, Store,
    WriteOp,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

// ---------------------------------------------------------------------------------------------
// Key alphabet
// ---------------------------------------------------------------------------------------------

/// Keys written by single operations: small, so they collide; several are prefixes of others and
/// several contain 0x00 and 0xff bytes. `m/000100` collides with the bulk keys.
const SHORT_KEYS: &[&[u8]] = &[
    b"a",
    b"ab",
    b"abc",
    b"a\0",
    b"a\0\0",
    b"a\x01",
    b"a\xff",
    b"a\xff\xff",
    b"a\xff\0",
    b"b",
    b"b/1",
    b"b/2",
    b"b/10",
    b"b/\xff",
    b"b0",
    b"\0",
    b"\0\0",
    b"\0a",
    b"\xff",
    b"\xff\0",
    b"\xff\xff",
    b"z",
    b"m/000100",
];

/// Default `max_key_size` (with 4 KiB pages): keys this long are accepted, longer ones not.
const MAX_KEY: usize = 960;

/// The short keys plus long keys (up to the maximum size, sharing long prefixes), which leave
/// few entries per page and long separators.
fn keys() -> &'static [Vec<u8>] {
    static KEYS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<Vec<u8>> = SHORT_KEYS.iter().map(|k| k.to_vec()).collect();
        let long = |n: usize, tail: &[u8]| {
            let mut k = vec![b'L'; n];
            k.extend_from_slice(tail);
            k
        };
        keys.push(long(100, b"x"));
        keys.push(long(950, b""));
        keys.push(long(950, b"\0"));
        keys.push(long(MAX_KEY - 1, b"\xff"));
        keys.push(long(MAX_KEY, b""));
        keys
    })
}

/// Prefixes for `Range::prefix` (the empty prefix means every key).
const PREFIXES: &[&[u8]] = &[
    b"",
    b"a",
    b"ab",
    b"a\0",
    b"a\xff",
    b"b",
    b"b/",
    b"b/1",
    b"\0",
    b"\xff",
    b"\xff\xff",
    b"m/",
    b"m/0001",
    b"q",
    b"L",
    b"LLLL",
    b"\xff\xff\xffm/",
    b"\xff\xff\xffm/0100",
];

/// Extra bounds for `Range::between` and `Range::from_key`, besides the keys.
const BOUNDS: &[&[u8]] = &[
    b"a\0\x01",
    b"aa",
    b"b/",
    b"b1",
    b"c",
    b"m/",
    b"m/0005",
    b"m0",
    b"\x01",
    b"\xff\xff\xff",
    b"\0",
    b"\xfe",
];

/// Bulk keys: `m/` and a six-digit number; a third of them padded to up to ~600 bytes (few
/// entries per page, deeper trees).
/// With `hi` the keys sort after every other key (`\xff\xff\xff` prefix), so inserts append
/// at the right edge of the tree.
fn bulk_key(hi: bool, i: u32) -> Vec<u8> {
    let mut k = if hi {
        b"\xff\xff\xff".to_vec()
    } else {
        Vec::new()
    };
    k.extend_from_slice(format!("m/{i:06}").as_bytes());
    if i.is_multiple_of(3) {
        k.resize(k.len() + (i as usize * 7) % 600, b'~');
    }
    k
}

/// A key that prints as an escaped byte string.
#[derive(Clone, PartialEq, Eq)]
struct K(Vec<u8>);

impl fmt::Debug for K {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&esc(&self.0))
    }
}

/// An escaped byte string; a long run of one byte at the start is abbreviated.
fn esc(b: &[u8]) -> String {
    let run = b.iter().take_while(|&&c| Some(&c) == b.first()).count();
    if run > 16 {
        format!(
            "[{:?} x {run}] + b\"{}\"",
            b[0] as char,
            b[run..].escape_ascii()
        )
    } else {
        format!("b\"{}\"", b.escape_ascii())
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A value: its length and a seed for its content (generated, so cases print compactly).
#[derive(Clone, Copy, PartialEq, Eq)]
struct ValSpec {
    len: usize,
    seed: u8,
}

impl fmt::Debug for ValSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V({}, {})", self.len, self.seed)
    }
}

fn make_value(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i == 0 {
                seed
            } else {
                (seed as usize)
                    .wrapping_mul(131)
                    .wrapping_add(i.wrapping_mul(7))
                    .wrapping_add(i >> 10) as u8
            }
        })
        .collect()
}

impl ValSpec {
    fn bytes(self) -> Vec<u8> {
        make_value(self.len, self.seed)
    }
}

/// Value sizes from empty to ~100 KB: inline values, values around the inline limit of a 4 KiB
/// page, and values spanning one to many overflow pages.
fn val_strat() -> impl Strategy<Value = ValSpec> {
    let len = prop_oneof![
        1 => Just(0usize),
        4 => 1usize..=16,
        4 => 17usize..=300,
        2 => 900usize..=1100,
        2 => 1900usize..=2200,
        1 => 4900usize..=5200,
        1 => 19_000usize..=21_000,
        1 => 98_000usize..=102_400,
    ];
    (len, any::<u8>()).prop_map(|(len, seed)| ValSpec { len, seed })
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum RangeSpec {
    Key(K),
    Prefix(K),
    Between(K, K),
    FromKey(K),
    All,
}

impl RangeSpec {
    fn to_range(&self) -> Range {
        match self {
            RangeSpec::Key(k) => Range::key(&k.0),
            RangeSpec::Prefix(p) => Range::prefix(&p.0),
            RangeSpec::Between(a, b) => Range::between(&a.0, &b.0),
            RangeSpec::FromKey(k) => Range::from_key(&k.0),
            RangeSpec::All => Range::all(),
        }
    }
}

#[derive(Clone, Debug)]
struct PutSpec {
    key: K,
    val: ValSpec,
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

impl PutSpec {
    fn to_op(&self) -> PutOp {
        PutOp {
            key: self.key.0.clone(),
            value: self.val.bytes(),
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

#[derive(Clone, Debug)]
enum BatchOp {
    Put(PutSpec),
    Delete(RangeSpec, bool),
}

impl BatchOp {
    fn to_op(&self) -> WriteOp {
        match self {
            BatchOp::Put(p) => WriteOp::Put(p.to_op()),
            BatchOp::Delete(r, prev_kv) => WriteOp::DeleteRange {
                range: r.to_range(),
                prev_kv: *prev_kv,
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum RevPick {
    /// revision 0: the current one.
    Current,
    /// revision 1 + n % current.
    Past(u32),
    /// current + n: must fail with FutureRevision.
    Future(u8),
    /// A negative revision: the current one.
    Negative,
}

#[derive(Clone, Debug)]
struct RangeQuery {
    range: RangeSpec,
    rev: RevPick,
    limit: i64,
    keys_only: bool,
    count_only: bool,
    sort_order: SortOrder,
    sort_target: SortTarget,
    /// min_mod, max_mod, min_create, max_create: None = 0 (no bound), Some(n) = 1 + n % current.
    filters: [Option<u32>; 4],
    /// 0: Store::range_with, 1: ReadTxn::range_with, 2: Store::range (default options only).
    via: u8,
}

#[derive(Clone, Debug)]
enum Op {
    Put(PutSpec),
    Delete {
        key: K,
        prev_kv: bool,
    },
    DeleteRange {
        range: RangeSpec,
        prev_kv: bool,
    },
    Batch(Vec<BatchOp>),
    /// One batch putting `count` bulk keys `start + i * stride` (trees split).
    BulkPut {
        hi: bool,
        start: u32,
        count: u32,
        stride: u32,
        val_len: usize,
        seed: u8,
    },
    /// One batch of single-key deletes of bulk keys (trees merge).
    BulkDelete {
        hi: bool,
        start: u32,
        count: u32,
        stride: u32,
        prev_kv: bool,
    },
    /// `count` commits, each putting a new key after every other one (right-edge appends across
    /// batches). Keys continue from the previous `Appends`.
    Appends {
        count: u32,
        val_len: usize,
    },
    /// A batch of ~100 KB values to distinct keys: over 1 MiB in one record, bigger than a small
    /// WAL (and than a small request limit).
    LargeBatch {
        count: usize,
        seed: u8,
    },
    /// A put with an empty key, or one a byte over the maximum: always rejected.
    BadKeyPut {
        too_long: bool,
    },
    /// `count` single-put commits cycling over a few keys: long histories per key, spanning
    /// many leaves of the history tree.
    ManyPuts {
        keys: Vec<K>,
        count: usize,
        val: ValSpec,
    },
    Range(RangeQuery),
    Get(K),
    Reopen {
        cfg: u8,
        /// Close explicitly, or just drop the handle.
        close: bool,
    },
    /// Simulated crash: copy the files of the open store (main file and WAL, as the OS has them)
    /// and recover from the copy, which replays the WAL. Only done under a configuration without
    /// background checkpoints (which could run during the copy); otherwise a clean reopen into
    /// such a configuration.
    CrashReopen {
        cfg: u8,
    },
    Checkpoint,
    Check,
    Sync,
}

fn key_strat() -> impl Strategy<Value = K> {
    prop::sample::select(keys()).prop_map(K)
}

fn bound_strat() -> impl Strategy<Value = K> {
    prop_oneof![
        3 => prop::sample::select(keys()),
        2 => prop::sample::select(BOUNDS).prop_map(|k| k.to_vec()),
    ]
    .prop_map(K)
}

fn range_strat() -> impl Strategy<Value = RangeSpec> {
    prop_oneof![
        3 => key_strat().prop_map(RangeSpec::Key),
        3 => prop::sample::select(PREFIXES).prop_map(|p| RangeSpec::Prefix(K(p.to_vec()))),
        2 => (bound_strat(), bound_strat()).prop_map(|(a, b)| RangeSpec::Between(a, b)),
        2 => bound_strat().prop_map(RangeSpec::FromKey),
        1 => Just(RangeSpec::All),
    ]
}

/// Leases granted on every store the harness creates; puts may use them. Any other id must be
/// rejected with `LeaseNotFound`.
const GRANTED_LEASES: [i64; 5] = [1, 2, 3, 500, i64::MAX];

fn lease_strat() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => Just(0i64),
        3 => prop::sample::select(GRANTED_LEASES.to_vec()),
        1 => Just(999i64),
        1 => Just(-7i64),
    ]
}

fn put_strat() -> impl Strategy<Value = PutSpec> {
    (
        key_strat(),
        val_strat(),
        lease_strat(),
        any::<bool>(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(key, val, lease, prev_kv, ignore_value, ignore_lease, well_formed)| {
                let mut p = PutSpec {
                    key,
                    val,
                    lease,
                    prev_kv,
                    ignore_value,
                    ignore_lease,
                };
                // Mostly well-formed flag combinations; sometimes ValueProvided/LeaseProvided.
                if well_formed {
                    if p.ignore_value {
                        p.val.len = 0;
                    }
                    if p.ignore_lease {
                        p.lease = 0;
                    }
                }
                p
            },
        )
}

fn batch_strat() -> impl Strategy<Value = Vec<BatchOp>> {
    let op = prop_oneof![
        3 => put_strat().prop_map(BatchOp::Put),
        1 => (range_strat(), any::<bool>()).prop_map(|(r, p)| BatchOp::Delete(r, p)),
    ];
    (prop::collection::vec(op, 0..8), prop::bool::weighted(0.7)).prop_map(|(mut ops, repair)| {
        if repair {
            // Make the batch valid: no key put twice, no put inside a delete of the batch.
            let mut seen = HashSet::new();
            ops.retain(|o| match o {
                BatchOp::Put(p) => seen.insert(p.key.0.clone()),
                BatchOp::Delete(..) => true,
            });
            let deletes: Vec<Range> = ops
                .iter()
                .filter_map(|o| match o {
                    BatchOp::Delete(r, _) => Some(r.to_range()),
                    _ => None,
                })
                .collect();
            ops.retain(|o| match o {
                BatchOp::Put(p) => !deletes
                    .iter()
                    .any(|r| model_contains(r.start(), r.end(), &p.key.0)),
                BatchOp::Delete(..) => true,
            });
        }
        ops
    })
}

fn sort_order_strat() -> impl Strategy<Value = SortOrder> {
    prop_oneof![
        3 => Just(SortOrder::None),
        1 => Just(SortOrder::Ascend),
        1 => Just(SortOrder::Descend),
    ]
}

fn sort_target_strat() -> impl Strategy<Value = SortTarget> {
    prop_oneof![
        4 => Just(SortTarget::Key),
        1 => Just(SortTarget::Version),
        1 => Just(SortTarget::Create),
        1 => Just(SortTarget::Mod),
        1 => Just(SortTarget::Value),
    ]
}

fn filter_strat() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![5 => Just(None), 1 => any::<u32>().prop_map(Some)]
}

fn query_strat() -> impl Strategy<Value = RangeQuery> {
    let rev = prop_oneof![
        3 => Just(RevPick::Current),
        6 => any::<u32>().prop_map(RevPick::Past),
        1 => (1u8..4).prop_map(RevPick::Future),
        1 => Just(RevPick::Negative),
    ];
    let limit = prop_oneof![3 => Just(0i64), 2 => 1i64..4, 1 => 4i64..60];
    (
        range_strat(),
        rev,
        limit,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        sort_order_strat(),
        sort_target_strat(),
        [
            filter_strat(),
            filter_strat(),
            filter_strat(),
            filter_strat(),
        ],
        0u8..3,
    )
        .prop_map(
            |(range, rev, limit, keys_only, count_only, sort_order, sort_target, filters, via)| {
                RangeQuery {
                    range,
                    rev,
                    limit,
                    keys_only,
                    count_only,
                    sort_order,
                    sort_target,
                    filters,
                    via,
                }
            },
        )
}

/// The operation mix; `bulk` weights it towards bulk batches and range deletes (tree splits and
/// merges with thousands of keys).
fn op_strat(bulk: bool) -> impl Strategy<Value = Op> {
    let (w_bulk, w_small) = if bulk { (6, 6) } else { (1, 16) };
    prop_oneof![
        w_small => put_strat().prop_map(Op::Put),
        3 => (key_strat(), any::<bool>()).prop_map(|(key, prev_kv)| Op::Delete { key, prev_kv }),
        1 => (range_strat(), any::<bool>())
            .prop_map(|(range, prev_kv)| Op::DeleteRange { range, prev_kv }),
        4 => batch_strat().prop_map(Op::Batch),
        w_bulk => (
            any::<bool>(),
            0u32..400,
            1u32..1500,
            1u32..4,
            0usize..200,
            any::<u8>()
        )
            .prop_map(|(hi, start, count, stride, val_len, seed)| Op::BulkPut {
                hi,
                start,
                count,
                stride,
                val_len,
                seed,
            }),
        w_bulk => (any::<bool>(), 0u32..400, 1u32..1500, 1u32..4, any::<bool>()).prop_map(
            |(hi, start, count, stride, prev_kv)| Op::BulkDelete {
                hi,
                start,
                count,
                stride,
                prev_kv,
            }
        ),
        1 => (1u32..300, 0usize..1200).prop_map(|(count, val_len)| Op::Appends { count, val_len }),
        1 => (2usize..=14, any::<u8>()).prop_map(|(count, seed)| Op::LargeBatch { count, seed }),
        1 => any::<bool>().prop_map(|too_long| Op::BadKeyPut { too_long }),
        1 => (
            prop::collection::vec(key_strat(), 1..4),
            10usize..300,
            (0usize..120, any::<u8>()).prop_map(|(len, seed)| ValSpec { len, seed }),
        )
            .prop_map(|(keys, count, val)| Op::ManyPuts { keys, count, val }),
        12 => query_strat().prop_map(Op::Range),
        3 => key_strat().prop_map(Op::Get),
        2 => (0u8..CONFIGS, any::<bool>()).prop_map(|(cfg, close)| Op::Reopen { cfg, close }),
        2 => (CRASH_SAFE..CONFIGS).prop_map(|cfg| Op::CrashReopen { cfg }),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Check),
        1 => Just(Op::Sync),
    ]
}

// ---------------------------------------------------------------------------------------------
// Store configurations
// ---------------------------------------------------------------------------------------------

const CONFIGS: u8 = 8;
/// Configurations from this one on never checkpoint in the background during a test case (a
/// 64 MiB WAL checkpointed at 95% or hourly), so their files can be copied while open.
const CRASH_SAFE: u8 = 6;

/// The request limits the model needs to predict rejections.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_txn_ops: usize,
    max_request_bytes: usize,
}

fn config(cfg: u8, page_size: usize) -> (Options, Limits) {
    let base = Options::new().page_size(page_size);
    let big = Limits {
        max_txn_ops: 10_000,
        max_request_bytes: 1536 * 1024,
    };
    match cfg {
        // Defaults with room for bulk batches.
        0 => (base.max_txn_ops(10_000), big),
        // A 1 MiB WAL: checkpoints by WAL size, and records too big for the WAL.
        1 => (base.max_txn_ops(10_000).wal_capacity(1 << 20), big),
        // etcd's default limit of 128 operations per transaction.
        2 => (
            base,
            Limits {
                max_txn_ops: 128,
                ..big
            },
        ),
        // Relaxed durability with a small WAL.
        3 => (
            base.max_txn_ops(10_000)
                .wal_capacity(1 << 20)
                .durability(Durability::Relaxed)
                .relaxed_sync_interval(Duration::from_millis(5)),
            big,
        ),
        // Background checkpoints as early as possible; no read-ahead.
        4 => (
            base.max_txn_ops(10_000)
                .wal_capacity(1 << 20)
                .checkpoint_wal_fraction(0.05)
                .checkpoint_interval(Duration::from_millis(20))
                .random_access(true),
            big,
        ),
        // Crash-safe copies: no background checkpoints.
        6 => (
            base.max_txn_ops(10_000)
                .checkpoint_wal_fraction(0.95)
                .checkpoint_interval(Duration::from_secs(3600)),
            big,
        ),
        7 => (
            base.max_txn_ops(10_000)
                .checkpoint_wal_fraction(0.95)
                .checkpoint_interval(Duration::from_secs(3600))
                .durability(Durability::Relaxed)
                .relaxed_sync_interval(Duration::from_millis(5)),
            big,
        ),
        // A small request limit.
        _ => (
            base.max_txn_ops(10_000).max_request_bytes(64 * 1024),
            Limits {
                max_txn_ops: 10_000,
                max_request_bytes: 64 * 1024,
            },
        ),
    }
}

/// Opens, retrying while a dropped handle is still being closed by the background thread.
fn open_retry(path: &Path, opts: Options) -> Store {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match opts.clone().open(path) {
            Ok(s) => return s,
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("open {}: {e:?}", path.display()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct MKv {
    value: Rc<Vec<u8>>,
    create: i64,
    modr: i64,
    version: i64,
    lease: i64,
}

impl MKv {
    fn to_kv(&self, key: &[u8], keys_only: bool) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: if keys_only {
                Vec::new()
            } else {
                (*self.value).clone()
            },
            create_revision: self.create,
            mod_revision: self.modr,
            version: self.version,
            lease: self.lease,
        }
    }
}

type State = BTreeMap<Vec<u8>, MKv>;

/// etcd's range encoding, written independently of `Range::contains`.
fn model_contains(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        // From `start` on; `start == [0]` too means every (non-empty) key.
        key >= start
    } else {
        key >= start && key < end
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrKind {
    EmptyKey,
    KeyTooLarge,
    ValueProvided,
    LeaseProvided,
    DuplicateKey,
    KeyNotFound,
    TooManyOps,
    RequestTooLarge,
    LeaseNotFound,
}

fn err_kind(e: &Error) -> Option<ErrKind> {
    Some(match e {
        Error::EmptyKey => ErrKind::EmptyKey,
        Error::KeyTooLarge { .. } => ErrKind::KeyTooLarge,
        Error::ValueProvided => ErrKind::ValueProvided,
        Error::LeaseProvided => ErrKind::LeaseProvided,
        Error::DuplicateKey { .. } => ErrKind::DuplicateKey,
        Error::KeyNotFound => ErrKind::KeyNotFound,
        Error::TooManyOps { .. } => ErrKind::TooManyOps,
        Error::RequestTooLarge { .. } => ErrKind::RequestTooLarge,
        Error::LeaseNotFound { .. } => ErrKind::LeaseNotFound,
        _ => return None,
    })
}

struct Model {
    /// `states[r]` is the keyspace at revision r (index 0 unused).
    states: Vec<Rc<State>>,
}

impl Model {
    fn new() -> Self {
        Model {
            states: vec![Rc::new(State::new()), Rc::new(State::new())],
        }
    }

    fn rev(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    fn current(&self) -> &State {
        self.states.last().unwrap()
    }

    /// Every reason the engine may give for rejecting `ops` (empty: it must accept them).
    fn rejections(&self, ops: &[WriteOp], lim: Limits) -> Vec<ErrKind> {
        let mut errs = Vec::new();
        if ops.len() > lim.max_txn_ops {
            errs.push(ErrKind::TooManyOps);
        }
        let mut size = 0usize;
        let mut puts: HashSet<&[u8]> = HashSet::new();
        for op in ops {
            match op {
                WriteOp::Put(p) => {
                    if p.key.is_empty() {
                        errs.push(ErrKind::EmptyKey);
                    }
                    if p.key.len() > MAX_KEY {
                        errs.push(ErrKind::KeyTooLarge);
                    }
                    if p.ignore_value && !p.value.is_empty() {
                        errs.push(ErrKind::ValueProvided);
                    }
                    if p.ignore_lease && p.lease != 0 {
                        errs.push(ErrKind::LeaseProvided);
                    }
                    if !puts.insert(&p.key) {
                        errs.push(ErrKind::DuplicateKey);
                    }
                    if (p.ignore_value || p.ignore_lease) && !self.current().contains_key(&p.key) {
                        errs.push(ErrKind::KeyNotFound);
                    }
                    if p.lease != 0 && !GRANTED_LEASES.contains(&p.lease) {
                        errs.push(ErrKind::LeaseNotFound);
                    }
                    size += p.key.len() + p.value.len();
                }
                WriteOp::DeleteRange { range, .. } => {
                    if range.start().is_empty() {
                        errs.push(ErrKind::EmptyKey);
                    }
                    if range.start().len() > MAX_KEY {
                        errs.push(ErrKind::KeyTooLarge);
                    }
                    size += range.start().len() + range.end().len();
                }
            }
        }
        for op in ops {
            if let WriteOp::DeleteRange { range, .. } = op {
                if puts
                    .iter()
                    .any(|k| model_contains(range.start(), range.end(), k))
                {
                    errs.push(ErrKind::DuplicateKey);
                }
            }
        }
        if size > lim.max_request_bytes {
            errs.push(ErrKind::RequestTooLarge);
        }
        errs
    }

    /// Applies a batch that the engine must accept.
    fn apply(&mut self, ops: &[WriteOp]) -> BatchResponse {
        let rev = self.rev() + 1;
        let mut st: State = self.current().clone();
        let mut changed = false;
        let mut responses = Vec::new();
        for op in ops {
            match op {
                WriteOp::Put(p) => {
                    let old = st.get(&p.key).cloned();
                    let kv = match &old {
                        Some(o) => MKv {
                            value: if p.ignore_value {
                                o.value.clone()
                            } else {
                                Rc::new(p.value.clone())
                            },
                            create: o.create,
                            modr: rev,
                            version: o.version + 1,
                            lease: if p.ignore_lease { o.lease } else { p.lease },
                        },
                        None => {
                            assert!(!p.ignore_value && !p.ignore_lease);
                            MKv {
                                value: Rc::new(p.value.clone()),
                                create: rev,
                                modr: rev,
                                version: 1,
                                lease: p.lease,
                            }
                        }
                    };
                    st.insert(p.key.clone(), kv);
                    changed = true;
                    responses.push(OpResponse::Put(PutResponse {
                        header_revision: 0,
                        prev_kv: if p.prev_kv {
                            old.map(|o| o.to_kv(&p.key, false))
                        } else {
                            None
                        },
                    }));
                }
                WriteOp::DeleteRange { range, prev_kv } => {
                    let victims: Vec<Vec<u8>> = st
                        .keys()
                        .filter(|k| model_contains(range.start(), range.end(), k))
                        .cloned()
                        .collect();
                    let mut prev_kvs = Vec::new();
                    for k in &victims {
                        let old = st.remove(k).unwrap();
                        if *prev_kv {
                            prev_kvs.push(old.to_kv(k, false));
                        }
                    }
                    changed |= !victims.is_empty();
                    responses.push(OpResponse::Delete(DeleteResponse {
                        header_revision: 0,
                        deleted: victims.len() as i64,
                        prev_kvs,
                    }));
                }
            }
        }
        if changed {
            self.states.push(Rc::new(st));
        }
        let header_revision = self.rev();
        for r in &mut responses {
            match r {
                OpResponse::Put(p) => p.header_revision = header_revision,
                OpResponse::Delete(d) => d.header_revision = header_revision,
            }
        }
        BatchResponse {
            header_revision,
            responses,
        }
    }

    /// A range read; `Err((requested, current))` for a future revision.
    fn range(&self, range: &Range, o: &RangeOptions) -> Result<RangeResponse, (i64, i64)> {
        let current = self.rev();
        let rev = if o.revision <= 0 { current } else { o.revision };
        if rev > current {
            return Err((rev, current));
        }
        let st = &self.states[rev as usize];
        // Written from etcd's documented Range (rpc.proto, and its `Range` apply step), not
        // from the engine: take every key of the range at that revision, keep those passing the
        // revision filters, put them in the requested order, cut to the limit.
        let all: Vec<KeyValue> = st
            .iter()
            .filter(|(k, _)| model_contains(range.start(), range.end(), k))
            .map(|(k, v)| v.to_kv(k, o.keys_only))
            .collect();
        // `count` is every key of the range at that revision, before filters and limit.
        let count = all.len() as i64;
        if o.count_only {
            return Ok(RangeResponse {
                header_revision: current,
                kvs: Vec::new(),
                more: false,
                count,
            });
        }
        let in_bounds =
            |v: i64, min: i64, max: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
        let kept: Vec<KeyValue> = all
            .into_iter()
            .filter(|kv| {
                in_bounds(kv.mod_revision, o.min_mod_revision, o.max_mod_revision)
                    && in_bounds(
                        kv.create_revision,
                        o.min_create_revision,
                        o.max_create_revision,
                    )
            })
            .collect();
        let filtered = o.min_mod_revision != 0
            || o.max_mod_revision != 0
            || o.min_create_revision != 0
            || o.max_create_revision != 0;
        let ordered = match (o.sort_order, o.sort_target) {
            // No order: key order, which `st` iterates in.
            (SortOrder::None, SortTarget::Key) => kept,
            // etcd's one exception: a sort target without an order sorts ascending, but when a
            // limit applies (no order, no filter) it sorts only the page it fetched, the first
            // limit + 1 keys in key order.
            (SortOrder::None, target) if o.limit > 0 && !filtered => {
                let page = kept.into_iter().take(o.limit as usize + 1).collect();
                sorted_by(page, target, false)
            }
            (SortOrder::None, target) | (SortOrder::Ascend, target) => {
                sorted_by(kept, target, false)
            }
            (SortOrder::Descend, target) => sorted_by(kept, target, true),
        };
        let limit = if o.limit > 0 {
            o.limit as usize
        } else {
            usize::MAX
        };
        let more = ordered.len() > limit;
        let kvs: Vec<KeyValue> = ordered.into_iter().take(limit).collect();
        Ok(RangeResponse {
            header_revision: current,
            kvs,
            more,
            count,
        })
    }
}

/// `kvs` sorted by the value of `target`, descending if `descend`; keys with equal values stay
/// in ascending key order either way (etch's documented tie rule; etcd leaves ties unspecified).
fn sorted_by(mut kvs: Vec<KeyValue>, target: SortTarget, descend: bool) -> Vec<KeyValue> {
    kvs.sort_unstable_by(|a, b| {
        let by_target = match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        let by_target = if descend {
            by_target.reverse()
        } else {
            by_target
        };
        by_target.then_with(|| a.key.cmp(&b.key))
    });
    kvs
}

// ---------------------------------------------------------------------------------------------
// Comparison helpers with readable failure messages (values can be 100 KB)
// ---------------------------------------------------------------------------------------------

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn show_kv(kv: &KeyValue) -> String {
    format!(
        "{{{} = {}B#{:016x} c{} m{} v{} l{}}}",
        esc(&kv.key),
        kv.value.len(),
        fnv(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease
    )
}

fn show_kvs(kvs: &[KeyValue]) -> String {
    let items: Vec<String> = kvs.iter().map(show_kv).collect();
    format!("[{}]", items.join(", "))
}

fn show_opt_kv(kv: &Option<KeyValue>) -> String {
    kv.as_ref().map_or("None".into(), show_kv)
}

fn show_range(r: &RangeResponse) -> String {
    format!(
        "header {} count {} more {} kvs {}",
        r.header_revision,
        r.count,
        r.more,
        show_kvs(&r.kvs)
    )
}

fn show_batch(b: &BatchResponse) -> String {
    let parts: Vec<String> = b
        .responses
        .iter()
        .map(|r| match r {
            OpResponse::Put(p) => format!(
                "Put(h{} prev {})",
                p.header_revision,
                show_opt_kv(&p.prev_kv)
            ),
            OpResponse::Delete(d) => format!(
                "Del(h{} deleted {} prev {})",
                d.header_revision,
                d.deleted,
                show_kvs(&d.prev_kvs)
            ),
        })
        .collect();
    format!("header {} [{}]", b.header_revision, parts.join(", "))
}

fn assert_range_eq(ctx: &str, got: &RangeResponse, want: &RangeResponse) {
    if got != want {
        panic!(
            "{ctx}: range response differs from the model\n got: {}\nwant: {}",
            show_range(got),
            show_range(want)
        );
    }
}

fn assert_batch_eq(ctx: &str, got: &BatchResponse, want: &BatchResponse) {
    if got != want {
        panic!(
            "{ctx}: batch response differs from the model\n got: {}\nwant: {}",
            show_batch(got),
            show_batch(want)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

struct Harness {
    dir: tempfile::TempDir,
    /// The main file, relative to `dir` (crash copies live in subdirectories).
    rel: std::path::PathBuf,
    cfg: u8,
    page_size: usize,
    store: Option<Store>,
    limits: Limits,
    model: Model,
    step: usize,
    /// Keys put by `Appends` so far.
    appended: u32,
}

impl Harness {
    fn new(cfg: u8, page_size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (opts, limits) = config(cfg, page_size);
        let store = open_retry(&dir.path().join("db.etch"), opts);
        for id in GRANTED_LEASES {
            store.lease_grant(9_000_000_000, id).unwrap();
        }
        let h = Harness {
            dir,
            rel: "db.etch".into(),
            cfg,
            page_size,
            store: Some(store),
            limits,
            model: Model::new(),
            step: 0,
            appended: 0,
        };
        assert_eq!(h.store().revision(), 1, "a new store is at revision 1");
        h
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(&self.rel)
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn ctx(&self, what: &str) -> String {
        format!("step {} ({what})", self.step)
    }

    /// Runs a batch through `f`, checks the outcome against the model.
    fn write(
        &mut self,
        what: &str,
        ops: Vec<WriteOp>,
        f: impl FnOnce(&Store, Vec<WriteOp>) -> Result<BatchResponse, Error>,
    ) {
        let ctx = self.ctx(what);
        let rejections = self.model.rejections(&ops, self.limits);
        let before = self.model.rev();
        let got = f(self.store(), ops.clone());
        match got {
            Ok(resp) => {
                assert!(
                    rejections.is_empty(),
                    "{ctx}: the engine accepted a batch the model rejects for {rejections:?}"
                );
                let want = self.model.apply(&ops);
                assert_batch_eq(&ctx, &resp, &want);
            }
            Err(e) => {
                let kind = err_kind(&e);
                assert!(
                    kind.is_some_and(|k| rejections.contains(&k)),
                    "{ctx}: the engine rejected a batch with {e:?}; the model expects {}",
                    if rejections.is_empty() {
                        "success".to_string()
                    } else {
                        format!("one of {rejections:?}")
                    }
                );
                assert_eq!(
                    self.store().revision(),
                    before,
                    "{ctx}: a rejected batch changed the revision"
                );
                // Nothing changed.
                self.verify_range_at(&ctx, &Range::all(), self.model.rev());
            }
        }
        assert_eq!(self.store().revision(), self.model.rev(), "{ctx}: revision");
    }

    fn verify_range_at(&self, ctx: &str, range: &Range, rev: Revision) {
        let opts = RangeOptions {
            revision: rev,
            ..Default::default()
        };
        let got = self
            .store()
            .range_with(range, &opts)
            .unwrap_or_else(|e| panic!("{ctx}: range at {rev}: {e:?}"));
        let want = self.model.range(range, &opts).unwrap();
        assert_range_eq(&format!("{ctx}: full read at revision {rev}"), &got, &want);
    }

    /// Compares the whole keyspace at every revision (or a sample of them if there are many).
    fn verify_all(&self, ctx: &str) {
        let cur = self.model.rev();
        assert_eq!(self.store().revision(), cur, "{ctx}: revision");
        let step = (cur / 80).max(1);
        let mut r = cur;
        while r >= 1 {
            self.verify_range_at(ctx, &Range::all(), r);
            r -= step;
        }
        self.verify_range_at(ctx, &Range::all(), 1);
        for k in keys() {
            let got = self.store().get(k).unwrap();
            let want = self.model.current().get(k).map(|v| v.to_kv(k, false));
            assert!(
                got == want,
                "{ctx}: get {} = {}, model {}",
                esc(k),
                show_opt_kv(&got),
                show_opt_kv(&want)
            );
        }
        let status = self.store().status().unwrap();
        assert_eq!(status.revision, cur, "{ctx}: status revision");
        assert_eq!(
            status.page_size as usize, self.page_size,
            "{ctx}: status page_size"
        );
        assert_eq!(
            status.key_count,
            self.model.current().len() as u64,
            "{ctx}: status key_count"
        );
    }

    fn check(&self, ctx: &str) {
        let report = self
            .store()
            .check()
            .unwrap_or_else(|e| panic!("{ctx}: check failed: {e:?}"));
        assert_eq!(
            report.keys,
            self.model.current().len() as u64,
            "{ctx}: check report live keys ({report:?})"
        );
    }

    fn reopen(&mut self, cfg: u8, close: bool) {
        let store = self.store.take().unwrap();
        if close {
            store.close().expect("close");
        } else {
            drop(store);
        }
        // Sometimes ask for another page size: an existing file keeps its own.
        let page_size = if cfg % 2 == 1 { 8192 } else { self.page_size };
        let (opts, limits) = config(cfg, page_size);
        self.store = Some(open_retry(&self.path(), opts));
        self.limits = limits;
        self.cfg = cfg;
    }

    /// Copies the files of the open store into a new directory, closes the original and opens
    /// the copy: recovery from the checkpoint plus the WAL, as after a crash.
    fn crash_reopen(&mut self, cfg: u8) {
        if self.cfg < CRASH_SAFE {
            self.reopen(cfg, true);
            return;
        }
        let src = self.path();
        let mut wal_src = src.clone().into_os_string();
        wal_src.push("-wal");
        let rel = std::path::PathBuf::from(format!("crash{}", self.step)).join("db.etch");
        let dst = self.dir.path().join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let mut wal_dst = dst.clone().into_os_string();
        wal_dst.push("-wal");
        std::fs::copy(&src, &dst).unwrap();
        std::fs::copy(&wal_src, &wal_dst).unwrap();
        self.store.take().unwrap().close().expect("close");
        self.rel = rel;
        let (opts, limits) = config(cfg, self.page_size);
        self.store = Some(open_retry(&self.path(), opts));
        self.limits = limits;
        self.cfg = cfg;
    }

    fn range_query(&self, q: &RangeQuery) {
        let ctx = self.ctx("range");
        let cur = self.model.rev();
        let pick = |f: Option<u32>| f.map_or(0, |n| 1 + (n as i64) % cur);
        let range = q.range.to_range();
        let via = if q.via == 2 { 0 } else { q.via };
        let opts = RangeOptions {
            limit: q.limit,
            revision: match q.rev {
                RevPick::Current => 0,
                RevPick::Past(n) => 1 + (n as i64) % cur,
                RevPick::Future(n) => cur + n as i64,
                RevPick::Negative => -3,
            },
            sort_order: q.sort_order,
            sort_target: q.sort_target,
            keys_only: q.keys_only,
            count_only: q.count_only,
            min_mod_revision: pick(q.filters[0]),
            max_mod_revision: pick(q.filters[1]),
            min_create_revision: pick(q.filters[2]),
            max_create_revision: pick(q.filters[3]),
        };
        let got = match via {
            0 => self.store().range_with(&range, &opts),
            _ => self.store().read().unwrap().range_with(&range, &opts),
        };
        let ctx = format!("{ctx} {:?} {opts:?}", q.range);
        match (got, self.model.range(&range, &opts)) {
            (Ok(g), Ok(w)) => assert_range_eq(&ctx, &g, &w),
            (Err(Error::FutureRevision { requested, current }), Err((wr, wc))) => {
                assert_eq!(
                    (requested, current),
                    (wr, wc),
                    "{ctx}: FutureRevision fields"
                );
            }
            (g, w) => panic!(
                "{ctx}: engine {:?}, model {:?}",
                g.map(|r| show_range(&r)),
                w.map(|r| show_range(&r))
            ),
        }
        if q.via == 2 {
            // The plain form with default options.
            let got = self.store().range(range.clone()).unwrap();
            let want = self.model.range(&range, &RangeOptions::default()).unwrap();
            assert_range_eq(&format!("{ctx} (Store::range)"), &got, &want);
        }
    }

    fn run(&mut self, op: &Op) {
        self.step += 1;
        match op {
            Op::Put(p) => {
                let put = p.to_op();
                let plain = !p.prev_kv && !p.ignore_value && !p.ignore_lease && p.lease == 0;
                self.write("put", vec![WriteOp::Put(put)], |s, mut ops| {
                    let WriteOp::Put(put) = ops.pop().unwrap() else {
                        unreachable!()
                    };
                    let r = if plain {
                        s.put(&put.key, &put.value)?
                    } else {
                        s.put_with(put)?
                    };
                    Ok(BatchResponse {
                        header_revision: r.header_revision,
                        responses: vec![OpResponse::Put(r)],
                    })
                });
            }
            Op::Delete { key, prev_kv } => {
                let prev_kv = *prev_kv;
                let op = WriteOp::DeleteRange {
                    range: Range::key(&key.0),
                    prev_kv,
                };
                let key = key.0.clone();
                self.write("delete", vec![op], move |s, _| {
                    let r = if prev_kv {
                        s.delete_range(Range::key(&key), true)?
                    } else {
                        s.delete(&key)?
                    };
                    Ok(BatchResponse {
                        header_revision: r.header_revision,
                        responses: vec![OpResponse::Delete(r)],
                    })
                });
            }
            Op::DeleteRange { range, prev_kv } => {
                let range = range.to_range();
                let prev_kv = *prev_kv;
                let op = WriteOp::DeleteRange {
                    range: range.clone(),
                    prev_kv,
                };
                self.write("delete_range", vec![op], move |s, _| {
                    let r = s.delete_range(range, prev_kv)?;
                    Ok(BatchResponse {
                        header_revision: r.header_revision,
                        responses: vec![OpResponse::Delete(r)],
                    })
                });
            }
            Op::Batch(ops) => {
                let ops: Vec<WriteOp> = ops.iter().map(BatchOp::to_op).collect();
                self.write("batch", ops, |s, ops| s.batch(ops));
            }
            Op::BulkPut {
                hi,
                start,
                count,
                stride,
                val_len,
                seed,
            } => {
                let ops = (0..*count)
                    .map(|i| {
                        let n = start + i * stride;
                        WriteOp::put(
                            bulk_key(*hi, n),
                            make_value(val_len + (n as usize % 7), seed.wrapping_add(n as u8)),
                        )
                    })
                    .collect();
                self.write("bulk put", ops, |s, ops| s.batch(ops));
            }
            Op::BulkDelete {
                hi,
                start,
                count,
                stride,
                prev_kv,
            } => {
                let ops = (0..*count)
                    .map(|i| WriteOp::DeleteRange {
                        range: Range::key(bulk_key(*hi, start + i * stride)),
                        prev_kv: *prev_kv,
                    })
                    .collect();
                self.write("bulk delete", ops, |s, ops| s.batch(ops));
            }
            Op::Appends { count, val_len } => {
                for _ in 0..*count {
                    self.appended += 1;
                    let key = bulk_key(true, 10_000 + self.appended);
                    let value = make_value(val_len + (self.appended as usize % 13), 0xa5);
                    let op = WriteOp::put(&key, &value);
                    self.write("append", vec![op], move |s, _| {
                        let r = s.put(&key, &value)?;
                        Ok(BatchResponse {
                            header_revision: r.header_revision,
                            responses: vec![OpResponse::Put(r)],
                        })
                    });
                }
            }
            Op::LargeBatch { count, seed } => {
                let ops = keys()
                    .iter()
                    .take(*count)
                    .enumerate()
                    .map(|(i, k)| {
                        WriteOp::put(k, make_value(100 * 1024 - i, seed.wrapping_add(i as u8)))
                    })
                    .collect();
                self.write("large batch", ops, |s, ops| s.batch(ops));
            }
            Op::BadKeyPut { too_long } => {
                let key = if *too_long {
                    vec![b'L'; MAX_KEY + 1]
                } else {
                    Vec::new()
                };
                let op = WriteOp::put(&key, b"v");
                self.write("bad key", vec![op], move |s, _| {
                    let r = s.put(&key, b"v")?;
                    Ok(BatchResponse {
                        header_revision: r.header_revision,
                        responses: vec![OpResponse::Put(r)],
                    })
                });
            }
            Op::ManyPuts { keys, count, val } => {
                for i in 0..*count {
                    let key = keys[i % keys.len()].0.clone();
                    let value = make_value(val.len + i % 5, val.seed.wrapping_add(i as u8));
                    let op = WriteOp::put(&key, &value);
                    self.write("many puts", vec![op], move |s, _| {
                        let r = s.put(&key, &value)?;
                        Ok(BatchResponse {
                            header_revision: r.header_revision,
                            responses: vec![OpResponse::Put(r)],
                        })
                    });
                }
            }
            Op::Range(q) => self.range_query(q),
            Op::Get(k) => {
                let ctx = self.ctx("get");
                let want = self.model.current().get(&k.0).map(|v| v.to_kv(&k.0, false));
                let got = self.store().get(&k.0).unwrap();
                let got_txn = self.store().read().unwrap().get(&k.0).unwrap();
                assert!(
                    got == want && got_txn == want,
                    "{ctx}: get {k:?} = {} / txn {}, model {}",
                    show_opt_kv(&got),
                    show_opt_kv(&got_txn),
                    show_opt_kv(&want)
                );
            }
            Op::Reopen { cfg, close } => {
                self.reopen(*cfg, *close);
                let ctx = self.ctx("after reopen");
                self.verify_all(&ctx);
            }
            Op::CrashReopen { cfg } => {
                self.crash_reopen(*cfg);
                let ctx = self.ctx("after crash and recovery");
                self.verify_all(&ctx);
                self.check(&ctx);
            }
            Op::Checkpoint => {
                self.store().checkpoint().expect("checkpoint");
                let ctx = self.ctx("after checkpoint");
                self.verify_range_at(&ctx, &Range::all(), self.model.rev());
            }
            Op::Check => {
                let ctx = self.ctx("check");
                self.check(&ctx);
            }
            Op::Sync => {
                self.store().sync().expect("sync");
            }
        }
    }

    fn finish(mut self) {
        let ctx = self.ctx("end");
        self.check(&ctx);
        self.verify_all(&ctx);
        self.reopen(0, true);
        let ctx = self.ctx("end, reopened");
        self.verify_all(&ctx);
        self.check(&ctx);
        self.store.take().unwrap().close().expect("close");
    }
}

/// Runs one case: an optional first batch putting some of the keys (so that reads find
/// something), then the operations.
fn run_case(cfg: u8, page_size: usize, preload: &[Option<ValSpec>], ops: &[Op]) {
    let mut h = Harness::new(cfg, page_size);
    let puts: Vec<BatchOp> = keys()
        .iter()
        .zip(preload)
        .filter_map(|(k, v)| {
            v.map(|val| {
                BatchOp::Put(PutSpec {
                    key: K(k.to_vec()),
                    val,
                    lease: 0,
                    prev_kv: false,
                    ignore_value: false,
                    ignore_lease: false,
                })
            })
        })
        .collect();
    if !puts.is_empty() {
        h.run(&Op::Batch(puts));
    }
    for op in ops {
        h.run(op);
    }
    h.finish();
}

fn cases(default: u32) -> u32 {
    std::env::var("ETCH_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn proptest_config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        // Minimized failures are turned into deterministic tests in this file instead.
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_shrink_time: 180_000,
        ..ProptestConfig::default()
    }
}

fn preload_strat() -> impl Strategy<Value = Vec<Option<ValSpec>>> {
    prop::collection::vec(prop::option::weighted(0.6, val_strat()), keys().len())
}

fn page_size_strat() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(4096usize), 1 => Just(8192usize), 1 => Just(16384usize)]
}

proptest! {
    #![proptest_config(proptest_config(40))]

    /// Random mixed workloads against the model.
    #[test]
    fn model_mixed(
        cfg in 0u8..CONFIGS,
        page_size in page_size_strat(),
        preload in preload_strat(),
        ops in prop::collection::vec(op_strat(false), 1..80),
    ) {
        run_case(cfg, page_size, &preload, &ops);
    }
}

proptest! {
    #![proptest_config(proptest_config(10))]

    /// Workloads heavy in bulk batches: thousands of keys, tree splits and merges.
    #[test]
    fn model_bulk(
        cfg in 0u8..CONFIGS,
        page_size in page_size_strat(),
        preload in preload_strat(),
        ops in prop::collection::vec(op_strat(true), 1..30),
    ) {
        run_case(cfg, page_size, &preload, &ops);
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic edge cases
// ---------------------------------------------------------------------------------------------

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db.etch")).unwrap();
    for id in [3, 5, 9, 10] {
        store.lease_grant(3600, id).unwrap();
    }
    (dir, store)
}

fn at(rev: Revision) -> RangeOptions {
    RangeOptions {
        revision: rev,
        ..Default::default()
    }
}

fn keys_of(r: &RangeResponse) -> Vec<Vec<u8>> {
    r.kvs.iter().map(|kv| kv.key.clone()).collect()
}

fn ks(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

#[test]
fn new_store_is_empty_at_revision_one() {
    let (_dir, db) = temp_store();
    assert_eq!(db.revision(), 1);
    let r = db.range(Range::all()).unwrap();
    assert_eq!(r.header_revision, 1);
    assert_eq!(r.count, 0);
    assert!(r.kvs.is_empty() && !r.more);
    assert_eq!(db.range_with(&Range::all(), &at(1)).unwrap().count, 0);
    assert!(db.get("a").unwrap().is_none());
    db.check().unwrap();
}

#[test]
fn prefix_ranges_with_ff_bytes() {
    assert_eq!(prefix_end(b"a\xff"), b"b");
    assert_eq!(prefix_end(b"a\xff\xff"), b"b");
    assert_eq!(prefix_end(b"\xff"), [0]);
    assert_eq!(prefix_end(b"\xff\xff"), [0]);
    assert_eq!(prefix_end(b"a\x00"), b"a\x01");

    let (_dir, db) = temp_store();
    let keys: &[&[u8]] = &[
        b"a",
        b"a\xfe",
        b"a\xff",
        b"a\xff\0",
        b"a\xff\xff",
        b"a\xff\xff\xff",
        b"b",
        b"\xfe",
        b"\xff",
        b"\xff\0",
        b"\xff\xff",
        b"\xff\xff\0",
    ];
    for k in keys {
        db.put(k, *k).unwrap();
    }
    let rev = db.revision();
    let cases: &[(&[u8], &[&[u8]])] = &[
        (
            b"a\xff",
            &[b"a\xff", b"a\xff\0", b"a\xff\xff", b"a\xff\xff\xff"],
        ),
        (b"a\xff\xff", &[b"a\xff\xff", b"a\xff\xff\xff"]),
        (b"\xff", &[b"\xff", b"\xff\0", b"\xff\xff", b"\xff\xff\0"]),
        (b"\xff\xff", &[b"\xff\xff", b"\xff\xff\0"]),
        (b"\xfe", &[b"\xfe"]),
    ];
    for (p, want) in cases {
        let r = db.range(Range::prefix(p)).unwrap();
        assert_eq!(keys_of(&r), ks(want), "prefix {}", esc(p));
        assert_eq!(r.count, want.len() as i64);
    }
    // The same at an older revision, after changing everything.
    db.delete_range(Range::all(), false).unwrap();
    for k in keys {
        db.put(k, b"new").unwrap();
    }
    for (p, want) in cases {
        let r = db.range_with(&Range::prefix(p), &at(rev)).unwrap();
        assert_eq!(keys_of(&r), ks(want), "prefix {} at {rev}", esc(p));
        assert!(r.kvs.iter().all(|kv| kv.value == kv.key));
    }
    // A delete by an all-0xff prefix reaches the end of the keyspace.
    let d = db.delete_range(Range::prefix(b"\xff"), true).unwrap();
    assert_eq!(d.deleted, 4);
    assert_eq!(
        d.prev_kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        ks(&[b"\xff", b"\xff\0", b"\xff\xff", b"\xff\xff\0"])
    );
    db.check().unwrap();
}

#[test]
fn from_key_ranges() {
    let (_dir, db) = temp_store();
    for k in [&b"\0"[..], b"a", b"a\0", b"b", b"b\0", b"c", b"\xff"] {
        db.put(k, b"1").unwrap();
    }
    let rev = db.revision();
    assert_eq!(
        keys_of(&db.range(Range::from_key(b"b")).unwrap()),
        ks(&[b"b", b"b\0", b"c", b"\xff"])
    );
    assert_eq!(
        keys_of(&db.range(Range::from_key(b"a\0")).unwrap()),
        ks(&[b"a\0", b"b", b"b\0", b"c", b"\xff"])
    );
    // from_key(0x00) is etcd's "all keys".
    assert_eq!(db.range(Range::from_key(b"\0")).unwrap().count, 7);
    assert_eq!(Range::from_key(b"\0"), Range::all());
    assert_eq!(db.range(Range::from_key(b"\xff\0")).unwrap().count, 0);
    db.delete(b"c").unwrap();
    db.put(b"d", b"2").unwrap();
    assert_eq!(
        keys_of(&db.range(Range::from_key(b"b\0")).unwrap()),
        ks(&[b"b\0", b"d", b"\xff"])
    );
    assert_eq!(
        keys_of(&db.range_with(&Range::from_key(b"b\0"), &at(rev)).unwrap()),
        ks(&[b"b\0", b"c", b"\xff"])
    );
    let r = db
        .range_with(
            &Range::from_key(b"a"),
            &RangeOptions {
                revision: rev,
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(keys_of(&r), ks(&[b"a", b"a\0"]));
    assert!(r.more);
    assert_eq!(r.count, 6);
}

#[test]
fn prefix_keys_at_old_revisions() {
    let (_dir, db) = temp_store();
    // Keys that are prefixes of each other, with 0x00 and 0xff bytes, each changed at its own
    // revision.
    let r_a = db.put(b"a", b"a1").unwrap().header_revision;
    let r_a0 = db.put(b"a\0", b"a0-1").unwrap().header_revision;
    let r_ab = db.put(b"ab", b"ab1").unwrap().header_revision;
    let r_aff = db.put(b"a\xff", b"aff1").unwrap().header_revision;
    let r_a00 = db.put(b"a\0\0", b"a00-1").unwrap().header_revision;
    let r_a_2 = db.put(b"a", b"a2").unwrap().header_revision;
    let r_del_a0 = db.delete(b"a\0").unwrap().header_revision;
    let r_ab_2 = db.put(b"ab", b"ab2").unwrap().header_revision;
    let r_del_a = db.delete(b"a").unwrap().header_revision;

    let val_at = |key: &[u8], rev: Revision| -> Option<Vec<u8>> {
        let r = db.range_with(&Range::key(key), &at(rev)).unwrap();
        assert!(r.kvs.len() <= 1);
        assert_eq!(r.count, r.kvs.len() as i64);
        r.kvs.first().map(|kv| kv.value.clone())
    };
    assert_eq!(val_at(b"a", r_a), Some(b"a1".to_vec()));
    assert_eq!(val_at(b"a", r_a_2 - 1), Some(b"a1".to_vec()));
    assert_eq!(val_at(b"a", r_a_2), Some(b"a2".to_vec()));
    assert_eq!(val_at(b"a", r_del_a), None);
    assert_eq!(val_at(b"a", r_a - 1), None);
    assert_eq!(val_at(b"a\0", r_a), None);
    assert_eq!(val_at(b"a\0", r_a0), Some(b"a0-1".to_vec()));
    assert_eq!(val_at(b"a\0", r_del_a0 - 1), Some(b"a0-1".to_vec()));
    assert_eq!(val_at(b"a\0", r_del_a0), None);
    assert_eq!(val_at(b"a\0\0", r_a00), Some(b"a00-1".to_vec()));
    assert_eq!(val_at(b"a\0\0", r_del_a), Some(b"a00-1".to_vec()));
    assert_eq!(val_at(b"ab", r_ab - 1), None);
    assert_eq!(val_at(b"ab", r_ab), Some(b"ab1".to_vec()));
    assert_eq!(val_at(b"ab", r_ab_2 - 1), Some(b"ab1".to_vec()));
    assert_eq!(val_at(b"ab", r_ab_2), Some(b"ab2".to_vec()));
    assert_eq!(val_at(b"a\xff", r_aff - 1), None);
    assert_eq!(val_at(b"a\xff", r_aff), Some(b"aff1".to_vec()));

    let prefix_at = |p: &[u8], rev: Revision| -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = db.range_with(&Range::prefix(p), &at(rev)).unwrap();
        assert_eq!(r.count, r.kvs.len() as i64);
        r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
    };
    let kv = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
    assert_eq!(
        prefix_at(b"a", r_a00),
        vec![
            kv(b"a", b"a1"),
            kv(b"a\0", b"a0-1"),
            kv(b"a\0\0", b"a00-1"),
            kv(b"ab", b"ab1"),
            kv(b"a\xff", b"aff1"),
        ]
    );
    assert_eq!(prefix_at(b"a\0", r_del_a0), vec![kv(b"a\0\0", b"a00-1")]);
    assert_eq!(
        prefix_at(b"a\0", r_del_a0 - 1),
        vec![kv(b"a\0", b"a0-1"), kv(b"a\0\0", b"a00-1")]
    );
    assert_eq!(
        prefix_at(b"a", r_del_a),
        vec![
            kv(b"a\0\0", b"a00-1"),
            kv(b"ab", b"ab2"),
            kv(b"a\xff", b"aff1")
        ]
    );
    assert_eq!(
        prefix_at(b"a", r_ab_2),
        vec![
            kv(b"a", b"a2"),
            kv(b"a\0\0", b"a00-1"),
            kv(b"ab", b"ab2"),
            kv(b"a\xff", b"aff1")
        ]
    );
    // Between bounds that split the family.
    let r = db
        .range_with(&Range::between(b"a\0", b"ab"), &at(r_a_2))
        .unwrap();
    assert_eq!(keys_of(&r), ks(&[b"a\0", b"a\0\0"]));
    let r = db
        .range_with(&Range::between(b"a", b"a\0"), &at(r_a_2))
        .unwrap();
    assert_eq!(keys_of(&r), ks(&[b"a"]));
}

#[test]
fn delete_then_recreate_starts_a_new_incarnation() {
    let (_dir, db) = temp_store();
    let r1 = db
        .put_with(PutOp {
            key: b"k".to_vec(),
            value: b"v1".to_vec(),
            lease: 5,
            ..Default::default()
        })
        .unwrap()
        .header_revision;
    let r2 = db.put(b"k", b"v2").unwrap().header_revision;
    let kv = db.get(b"k").unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        (r1, r2, 2, 0)
    );
    let d = db.delete_range(Range::key(b"k"), true).unwrap();
    assert_eq!(d.deleted, 1);
    assert_eq!(d.prev_kvs, vec![kv.clone()]);
    let r_del = d.header_revision;
    assert!(db.get(b"k").unwrap().is_none());
    let r3 = db.put(b"k", b"v3").unwrap().header_revision;
    let now = db.get(b"k").unwrap().unwrap();
    assert_eq!(
        (
            now.create_revision,
            now.mod_revision,
            now.version,
            now.value.as_slice()
        ),
        (r3, r3, 1, &b"v3"[..])
    );
    // The old incarnation is still there at old revisions.
    let old = db.range_with(&Range::key(b"k"), &at(r2)).unwrap();
    assert_eq!(old.kvs, vec![kv.clone()]);
    let first = db.range_with(&Range::key(b"k"), &at(r1)).unwrap();
    assert_eq!(
        (
            first.kvs[0].version,
            first.kvs[0].lease,
            first.kvs[0].value.as_slice()
        ),
        (1, 5, &b"v1"[..])
    );
    assert!(db
        .range_with(&Range::key(b"k"), &at(r_del))
        .unwrap()
        .kvs
        .is_empty());
    // A put with prev_kv right after re-creation sees only the new incarnation.
    let p = db
        .put_with(PutOp {
            key: b"k".to_vec(),
            value: b"v4".to_vec(),
            prev_kv: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p.prev_kv, Some(now));
    let kv4 = db.get(b"k").unwrap().unwrap();
    assert_eq!((kv4.create_revision, kv4.version), (r3, 2));
    // min/max create revision filters tell the incarnations apart.
    let r = db
        .range_with(
            &Range::key(b"k"),
            &RangeOptions {
                revision: r2,
                min_create_revision: r3,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 1, "count ignores the filters, as in etcd");
    db.check().unwrap();
}

#[test]
fn recreate_with_large_values_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let big1 = make_value(50_000, 1);
    let big2 = make_value(7_000, 2);
    let db = Store::open(&path).unwrap();
    let r1 = db.put(b"big", &big1).unwrap().header_revision;
    let r_del = db.delete(b"big").unwrap().header_revision;
    let r2 = db.put(b"big", &big2).unwrap().header_revision;
    db.close().unwrap();
    let db = Store::open(&path).unwrap();
    assert_eq!(db.revision(), r2);
    let old = db.range_with(&Range::key(b"big"), &at(r1)).unwrap();
    assert_eq!(old.kvs[0].value, big1);
    assert!(db
        .range_with(&Range::key(b"big"), &at(r_del))
        .unwrap()
        .kvs
        .is_empty());
    let now = db.get(b"big").unwrap().unwrap();
    assert_eq!(
        (now.value.len(), now.create_revision, now.version),
        (7_000, r2, 1)
    );
    assert_eq!(now.value, big2);
    db.check().unwrap();
}

#[test]
fn limit_more_and_count() {
    let (_dir, db) = temp_store();
    for i in 0..10u8 {
        db.put([b'k', b'0' + i], [i]).unwrap();
    }
    let rev = db.revision();
    let with = |limit: i64, f: &dyn Fn(&mut RangeOptions)| {
        let mut o = RangeOptions {
            limit,
            ..Default::default()
        };
        f(&mut o);
        db.range_with(&Range::prefix(b"k"), &o).unwrap()
    };
    let r = with(3, &|_| {});
    assert_eq!(keys_of(&r), ks(&[b"k0", b"k1", b"k2"]));
    assert!(r.more);
    assert_eq!(r.count, 10);
    assert_eq!(r.header_revision, rev);
    let r = with(9, &|_| {});
    assert!(r.more && r.kvs.len() == 9 && r.count == 10);
    let r = with(10, &|_| {});
    assert!(!r.more && r.kvs.len() == 10 && r.count == 10);
    let r = with(11, &|_| {});
    assert!(!r.more && r.kvs.len() == 10 && r.count == 10);
    let r = with(0, &|_| {});
    assert!(!r.more && r.kvs.len() == 10);
    // Descending with a limit: the largest keys.
    let r = with(2, &|o| o.sort_order = SortOrder::Descend);
    assert_eq!(keys_of(&r), ks(&[b"k9", b"k8"]));
    assert!(r.more && r.count == 10);
    // A sort target without an order sorts ascending.
    let r = with(0, &|o| {
        o.sort_target = SortTarget::Mod;
    });
    assert_eq!(r.kvs.first().unwrap().key, b"k0");
    let r = with(3, &|o| {
        o.sort_target = SortTarget::Mod;
        o.sort_order = SortOrder::Descend;
    });
    assert_eq!(keys_of(&r), ks(&[b"k9", b"k8", b"k7"]));
    // count_only: no kvs, no more, the full count.
    let r = with(3, &|o| o.count_only = true);
    assert!(r.kvs.is_empty() && !r.more && r.count == 10);
    // keys_only: no values.
    let r = with(3, &|o| o.keys_only = true);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()) && r.kvs.len() == 3);
    // Filters apply after fetching; count is not reduced by them (etcd).
    let r = with(2, &|o| o.min_mod_revision = rev - 4);
    assert_eq!(keys_of(&r), ks(&[b"k5", b"k6"]));
    assert!(r.more);
    assert_eq!(r.count, 10);
    let r = with(0, &|o| o.max_mod_revision = rev - 8);
    assert_eq!(keys_of(&r), ks(&[b"k0", b"k1"]));
    assert!(!r.more);
    assert_eq!(r.count, 10);
    // At an older revision.
    let r = with(4, &|o| o.revision = rev - 5);
    assert_eq!(keys_of(&r), ks(&[b"k0", b"k1", b"k2", b"k3"]));
    assert!(r.more);
    assert_eq!(r.count, 5);
    assert_eq!(r.header_revision, rev);
    let r = with(5, &|o| o.revision = rev - 5);
    assert!(!r.more && r.count == 5);
}

#[test]
fn future_revision_is_an_error() {
    let (_dir, db) = temp_store();
    db.put(b"a", b"1").unwrap();
    let rev = db.revision();
    match db.range_with(&Range::all(), &at(rev + 1)) {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (rev + 1, rev))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    let txn = db.read().unwrap();
    db.put(b"a", b"2").unwrap();
    // The read transaction's current revision is the one it was taken at.
    assert!(matches!(
        txn.range_with(&Range::all(), &at(rev + 1)),
        Err(Error::FutureRevision { .. })
    ));
    assert_eq!(db.range_with(&Range::all(), &at(rev + 1)).unwrap().count, 1);
    assert_eq!(
        db.range_with(&Range::all(), &at(rev)).unwrap().kvs[0].value,
        b"1"
    );
    // 0 and negative revisions mean the current one.
    assert_eq!(
        db.range_with(&Range::all(), &at(0)).unwrap().kvs[0].value,
        b"2"
    );
    assert_eq!(
        db.range_with(&Range::all(), &at(-1)).unwrap().kvs[0].value,
        b"2"
    );
    assert!(matches!(
        db.range_with(&Range::all(), &at(i64::MAX)),
        Err(Error::FutureRevision { .. })
    ));
}

#[test]
fn noop_delete_does_not_bump_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let db = Store::open(&path).unwrap();
    db.put(b"a", b"1").unwrap();
    let rev = db.revision();
    let d = db.delete(b"missing").unwrap();
    assert_eq!((d.deleted, d.header_revision), (0, rev));
    assert!(d.prev_kvs.is_empty());
    let d = db.delete_range(Range::prefix(b"zz"), true).unwrap();
    assert_eq!((d.deleted, d.header_revision), (0, rev));
    let b = db
        .batch(vec![
            WriteOp::delete(Range::key(b"x")),
            WriteOp::delete(Range::from_key(b"b")),
        ])
        .unwrap();
    assert_eq!(b.header_revision, rev);
    assert_eq!(db.revision(), rev);
    // An empty batch changes nothing either.
    assert_eq!(db.batch(vec![]).unwrap().header_revision, rev);
    // A batch with one real change gets exactly one revision.
    let b = db
        .batch(vec![
            WriteOp::delete(Range::key(b"x")),
            WriteOp::delete(Range::key(b"a")),
            WriteOp::put(b"c", b"3"),
        ])
        .unwrap();
    assert_eq!(b.header_revision, rev + 1);
    assert_eq!(db.revision(), rev + 1);
    db.close().unwrap();
    let db = Store::open(&path).unwrap();
    assert_eq!(db.revision(), rev + 1);
    assert_eq!(db.delete(b"a").unwrap().header_revision, rev + 1);
    assert_eq!(db.revision(), rev + 1);
    db.check().unwrap();
}

#[test]
fn overlapping_deletes_in_one_batch() {
    let (_dir, db) = temp_store();
    for k in [&b"a"[..], b"ab", b"b"] {
        db.put(k, b"1").unwrap();
    }
    let rev = db.revision();
    let b = db
        .batch(vec![
            WriteOp::DeleteRange {
                range: Range::prefix(b"a"),
                prev_kv: true,
            },
            WriteOp::DeleteRange {
                range: Range::all(),
                prev_kv: true,
            },
        ])
        .unwrap();
    assert_eq!(b.header_revision, rev + 1);
    let deleted: Vec<(i64, usize)> = b
        .responses
        .iter()
        .map(|r| match r {
            OpResponse::Delete(d) => (d.deleted, d.prev_kvs.len()),
            _ => panic!("not a delete"),
        })
        .collect();
    assert_eq!(deleted, vec![(2, 2), (1, 1)]);
    assert_eq!(db.range(Range::all()).unwrap().count, 0);
}

#[test]
fn invalid_batches_change_nothing() {
    let (_dir, db) = temp_store();
    db.put(b"a", b"1").unwrap();
    let rev = db.revision();
    let dup = db.batch(vec![WriteOp::put(b"k", b"1"), WriteOp::put(b"k", b"2")]);
    assert!(matches!(dup, Err(Error::DuplicateKey { .. })), "{dup:?}");
    let covered = db.batch(vec![
        WriteOp::put(b"b/1", b"1"),
        WriteOp::delete(Range::prefix(b"b/")),
    ]);
    assert!(
        matches!(covered, Err(Error::DuplicateKey { .. })),
        "{covered:?}"
    );
    let covered = db.batch(vec![
        WriteOp::delete(Range::from_key(b"a")),
        WriteOp::put(b"z", b"1"),
    ]);
    assert!(
        matches!(covered, Err(Error::DuplicateKey { .. })),
        "{covered:?}"
    );
    let missing = db.put_with(PutOp {
        key: b"nope".to_vec(),
        ignore_value: true,
        ..Default::default()
    });
    assert!(matches!(missing, Err(Error::KeyNotFound)), "{missing:?}");
    let missing = db.batch(vec![
        WriteOp::put(b"new", b"1"),
        WriteOp::Put(PutOp {
            key: b"nope".to_vec(),
            ignore_lease: true,
            ..Default::default()
        }),
    ]);
    assert!(matches!(missing, Err(Error::KeyNotFound)), "{missing:?}");
    assert!(matches!(db.put(b"", b"x"), Err(Error::EmptyKey)));
    assert!(matches!(db.delete(b""), Err(Error::EmptyKey)));
    let provided = db.put_with(PutOp {
        key: b"a".to_vec(),
        value: b"x".to_vec(),
        ignore_value: true,
        ..Default::default()
    });
    assert!(
        matches!(provided, Err(Error::ValueProvided)),
        "{provided:?}"
    );
    let provided = db.put_with(PutOp {
        key: b"a".to_vec(),
        lease: 3,
        ignore_lease: true,
        ..Default::default()
    });
    assert!(
        matches!(provided, Err(Error::LeaseProvided)),
        "{provided:?}"
    );
    assert_eq!(db.revision(), rev);
    let r = db.range(Range::all()).unwrap();
    assert_eq!(keys_of(&r), ks(&[b"a"]));
    // ignore_value / ignore_lease keep the current value and lease.
    db.put_with(PutOp {
        key: b"a".to_vec(),
        value: b"big".repeat(2000),
        lease: 9,
        ..Default::default()
    })
    .unwrap();
    db.put_with(PutOp {
        key: b"a".to_vec(),
        ignore_value: true,
        lease: 10,
        ..Default::default()
    })
    .unwrap();
    db.put_with(PutOp {
        key: b"a".to_vec(),
        value: b"small".to_vec(),
        ignore_lease: true,
        ..Default::default()
    })
    .unwrap();
    let kv = db.get(b"a").unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"small"[..], 10, 4)
    );
    let r = db.range_with(&Range::key(b"a"), &at(rev + 2)).unwrap();
    assert_eq!((r.kvs[0].value.len(), r.kvs[0].lease), (6000, 10));
    db.check().unwrap();
}

/// etcd's `Range` clears the limit only for a sort *order* or a revision filter. A sort target
/// with no order fetches the first limit + 1 keys in key order, sorts those ascending by the
/// target, and cuts to the limit — so it may not return the globally smallest values.
#[test]
fn sort_target_without_order_sorts_only_the_first_limit_keys() {
    let (_dir, db) = temp_store();
    // Key order k0..k4; value order is the reverse.
    for i in 0..5u8 {
        db.put([b'k', b'0' + i], [b'z' - i]).unwrap();
    }
    let opts = RangeOptions {
        limit: 2,
        sort_target: SortTarget::Value,
        ..Default::default()
    };
    let r = db.range_with(&Range::prefix(b"k"), &opts).unwrap();
    // Fetched k0, k1, k2 (limit + 1); sorted by value: k2 (x), k1 (y), k0 (z); cut to 2.
    assert_eq!(keys_of(&r), ks(&[b"k2", b"k1"]));
    assert!(r.more);
    assert_eq!(r.count, 5);
    // With an explicit order the whole range is sorted first.
    let r = db
        .range_with(
            &Range::prefix(b"k"),
            &RangeOptions {
                sort_order: SortOrder::Ascend,
                ..opts
            },
        )
        .unwrap();
    assert_eq!(keys_of(&r), ks(&[b"k4", b"k3"]));
}
