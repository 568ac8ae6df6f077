//! Model-based test of the etcd layer: transactions with compares, leases (grant, attach,
//! revoke), compaction and watch, against a simple in-memory model. Every watcher's stream must
//! equal the model's change log for its range, in order, exactly once; watchers that start at a
//! compacted revision must be cancelled with the compact revision.
//!
//! Lease expiry runs on a `ManualClock`: the test advances it and calls `expire_leases`, which
//! revokes expired leases in id order (the background thread may beat it to some; the outcome
//! is the same).
//! `ETCH_PROPTEST_CASES` raises the case count (default 200).

use std::collections::{BTreeMap, BTreeSet};

use etch_engine::{
    Compare, CompareOp, Error, EventKind, PutOp, Range, RangeOptions, Store, Txn, TxnOp,
    WatchOptions, Watcher,
};
use proptest::prelude::*;

const KEYS: [&str; 8] = ["a", "a/1", "a/2", "b", "b/x", "c", "c/c", "d"];
const LEASES: [i64; 3] = [11, 22, 33];

#[derive(Clone, Debug, PartialEq, Eq)]
struct MKv {
    value: Vec<u8>,
    create: i64,
    modr: i64,
    version: i64,
    lease: i64,
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: usize,
        value: u8,
        lease: Option<usize>,
    },
    Delete {
        key: usize,
    },
    DeletePrefix {
        key: usize,
    },
    Txn {
        cmp_key: usize,
        cmp: u8,
        cmp_op: u8,
        operand: i64,
        success: Vec<(usize, Option<u8>)>,
        failure: Vec<(usize, Option<u8>)>,
    },
    Compact {
        back: i64,
    },
    Grant {
        lease: usize,
    },
    Revoke {
        lease: usize,
    },
    Watch {
        prefix: usize,
        back: i64,
        prev_kv: bool,
    },
    KeepAlive {
        lease: usize,
    },
    Tick {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    let branch = prop::collection::vec((0..KEYS.len(), prop::option::of(any::<u8>())), 0..4);
    prop_oneof![
        6 => (k.clone(), any::<u8>(), prop::option::of(0..LEASES.len())).prop_map(|(key, value, lease)| Op::Put { key, value, lease }),
        2 => k.clone().prop_map(|key| Op::Delete { key }),
        1 => k.clone().prop_map(|key| Op::DeletePrefix { key }),
        3 => (k.clone(), 0u8..4, 0u8..4, 0i64..6, branch.clone(), branch)
            .prop_map(|(cmp_key, cmp, cmp_op, operand, success, failure)| Op::Txn { cmp_key, cmp, cmp_op, operand, success, failure }),
        1 => (0i64..8).prop_map(|back| Op::Compact { back }),
        2 => (0..LEASES.len()).prop_map(|lease| Op::Grant { lease }),
        1 => (0..LEASES.len()).prop_map(|lease| Op::Revoke { lease }),
        2 => (k, 0i64..10, any::<bool>()).prop_map(|(prefix, back, prev_kv)| Op::Watch { prefix, back, prev_kv }),
        1 => (0..LEASES.len()).prop_map(|lease| Op::KeepAlive { lease }),
        1 => (1u64..4).prop_map(|secs| Op::Tick { secs }),
    ]
}

/// One change in the model's log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MEvent {
    rev: i64,
    kind: EventKind,
    key: Vec<u8>,
    kv: Option<MKv>,
    prev: Option<MKv>,
}

/// A write in the model: key, and `Some((value, lease))` for a put or `None` for a delete.
type Write = (Vec<u8>, Option<(Vec<u8>, i64)>);

struct Model {
    states: Vec<BTreeMap<Vec<u8>, MKv>>, // states[r] = keyspace at revision r (index 0 unused)
    log: Vec<MEvent>,
    compacted: i64,
    leases: BTreeSet<i64>,
    /// Lease deadlines in seconds on the manual clock.
    deadlines: BTreeMap<i64, u64>,
    now: u64,
}

/// TTL of every lease the test grants.
const TTL: u64 = 5;

impl Model {
    fn rev(&self) -> i64 {
        self.states.len() as i64 - 1
    }
    fn cur(&self) -> &BTreeMap<Vec<u8>, MKv> {
        self.states.last().unwrap()
    }
    /// Applies writes (key, Some(value, lease) = put / None = delete) at one revision.
    fn write(&mut self, writes: &[Write]) {
        let rev = self.rev() + 1;
        let mut st = self.cur().clone();
        let mut events = Vec::new();
        for (key, w) in writes {
            let prev = st.get(key).cloned();
            match w {
                Some((value, lease)) => {
                    let kv = MKv {
                        value: value.clone(),
                        create: prev.as_ref().map_or(rev, |p| p.create),
                        modr: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        lease: *lease,
                    };
                    st.insert(key.clone(), kv.clone());
                    events.push(MEvent {
                        rev,
                        kind: EventKind::Put,
                        key: key.clone(),
                        kv: Some(kv),
                        prev,
                    });
                }
                None => {
                    if st.remove(key).is_some() {
                        events.push(MEvent {
                            rev,
                            kind: EventKind::Delete,
                            key: key.clone(),
                            kv: None,
                            prev,
                        });
                    }
                }
            }
        }
        if !events.is_empty() {
            self.states.push(st);
            self.log.extend(events);
        }
    }
}

fn key(i: usize) -> Vec<u8> {
    KEYS[i].as_bytes().to_vec()
}

fn to_mkv(kv: &etch_engine::KeyValue) -> MKv {
    MKv {
        value: kv.value.clone(),
        create: kv.create_revision,
        modr: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

struct Watch {
    watcher: Watcher,
    range: Range,
    start: i64,
    prev_kv: bool,
    expect_cancel: Option<i64>,
    cancelled: bool,
    got: Vec<MEvent>,
}

/// Drains a watcher up to the model's revision and compares it with the model's log.
fn drain(w: &mut Watch, m: &Model) {
    if let Some(compacted) = w.expect_cancel {
        if w.cancelled {
            return;
        }
        w.cancelled = true;
        let r = w
            .watcher
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap()
            .expect("a cancellation");
        assert!(
            r.canceled && r.compact_revision >= compacted,
            "watch from {} not cancelled: {r:?}",
            w.start
        );
        return;
    }
    while w.watcher.next_revision() <= m.rev() {
        // No response is fine if the watcher only skipped revisions outside its range; a commit
        // made by the background thread may also take a moment to be published.
        let Some(r) = w.watcher.recv_timeout(std::time::Duration::ZERO).unwrap() else {
            if w.watcher.next_revision() > m.rev() {
                break;
            }
            let r = w
                .watcher
                .recv_timeout(std::time::Duration::from_secs(2))
                .unwrap();
            assert!(
                r.is_some() || w.watcher.next_revision() > m.rev(),
                "watch from {} stalled at {}",
                w.start,
                w.watcher.next_revision()
            );
            if let Some(r) = r {
                for e in r.events {
                    w.got.push(MEvent {
                        rev: e.kv.mod_revision,
                        kind: e.kind,
                        key: e.kv.key.clone(),
                        kv: (e.kind == EventKind::Put).then(|| to_mkv(&e.kv)),
                        prev: e.prev_kv.as_ref().map(to_mkv),
                    });
                }
            }
            continue;
        };
        assert!(!r.canceled, "watch from {} cancelled unexpectedly", w.start);
        for e in r.events {
            w.got.push(MEvent {
                rev: e.kv.mod_revision,
                kind: e.kind,
                key: e.kv.key.clone(),
                kv: (e.kind == EventKind::Put).then(|| to_mkv(&e.kv)),
                prev: e.prev_kv.as_ref().map(to_mkv),
            });
        }
    }
    let want: Vec<MEvent> = m
        .log
        .iter()
        .filter(|e| e.rev >= w.start && w.range.contains(&e.key))
        .map(|e| MEvent {
            prev: if w.prev_kv { e.prev.clone() } else { None },
            ..e.clone()
        })
        .collect();
    assert_eq!(w.got, want, "watch of {:?} from {}", w.range, w.start);
}

fn check_state(db: &Store, m: &Model) {
    assert_eq!(db.revision(), m.rev());
    for r in [
        m.compacted.max(1),
        (m.compacted.max(1) + m.rev()) / 2,
        m.rev(),
    ] {
        let got: BTreeMap<Vec<u8>, MKv> = db
            .range_with(
                &Range::all(),
                &RangeOptions {
                    revision: r,
                    ..Default::default()
                },
            )
            .unwrap()
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), to_mkv(kv)))
            .collect();
        assert_eq!(got, m.states[r as usize], "keyspace at revision {r}");
    }
    if m.compacted > 1 {
        let below = db.range_with(
            &Range::all(),
            &RangeOptions {
                revision: m.compacted - 1,
                ..Default::default()
            },
        );
        assert!(matches!(below, Err(Error::Compacted { .. })));
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(etch_engine::ManualClock::new());
    let db = etch_engine::Options::new()
        .auto_compaction(etch_engine::AutoCompaction::Off)
        .clock(clock.clone())
        .open(dir.path().join("m.etch"))
        .unwrap();
    let mut m = Model {
        states: vec![BTreeMap::new(), BTreeMap::new()],
        log: Vec::new(),
        compacted: 0,
        leases: BTreeSet::new(),
        deadlines: BTreeMap::new(),
        now: 0,
    };
    let mut watches: Vec<Watch> = Vec::new();
    for op in ops {
        match op {
            Op::Put {
                key: k,
                value,
                lease,
            } => {
                let lease = lease.map_or(0, |l| LEASES[l]);
                let r = db.put_with(PutOp {
                    key: key(k),
                    value: vec![value],
                    lease,
                    ..Default::default()
                });
                if lease != 0 && !m.leases.contains(&lease) {
                    assert!(matches!(r, Err(Error::LeaseNotFound { .. })), "{r:?}");
                } else {
                    assert_eq!(r.unwrap().header_revision, m.rev() + 1);
                    m.write(&[(key(k), Some((vec![value], lease)))]);
                }
            }
            Op::Delete { key: k } => {
                let r = db.delete(key(k)).unwrap();
                m.write(&[(key(k), None)]);
                assert_eq!(r.header_revision, m.rev());
            }
            Op::DeletePrefix { key: k } => {
                let range = Range::prefix(key(k));
                db.delete_range(range.clone(), false).unwrap();
                let victims: Vec<_> = m
                    .cur()
                    .keys()
                    .filter(|x| range.contains(x))
                    .map(|x| (x.clone(), None))
                    .collect();
                m.write(&victims);
            }
            Op::Txn {
                cmp_key,
                cmp,
                cmp_op,
                operand,
                success,
                failure,
            } => {
                let kk = key(cmp_key);
                let op = [
                    CompareOp::Equal,
                    CompareOp::NotEqual,
                    CompareOp::Less,
                    CompareOp::Greater,
                ][cmp_op as usize];
                let cur = m.cur().get(&kk).cloned();
                let field = |kv: &MKv| {
                    [
                        kv.version,
                        kv.create,
                        kv.modr,
                        kv.value.first().copied().unwrap_or(0) as i64,
                    ][cmp as usize]
                };
                let compare = match cmp {
                    0 => Compare::version(&kk, op, operand),
                    1 => Compare::create_revision(&kk, op, operand),
                    2 => Compare::mod_revision(&kk, op, operand),
                    _ => Compare::value(&kk, op, [operand as u8]),
                };
                let holds = match (&cur, cmp) {
                    (None, 3) => false,
                    (c, _) => {
                        let f = c.as_ref().map_or(0, field);
                        let o = if cmp == 3 {
                            (operand as u8) as i64
                        } else {
                            operand
                        };
                        match op {
                            CompareOp::Equal => f == o,
                            CompareOp::NotEqual => f != o,
                            CompareOp::Less => f < o,
                            CompareOp::Greater => f > o,
                        }
                    }
                };
                let dedup = |b: &[(usize, Option<u8>)]| {
                    let mut seen = BTreeSet::new();
                    b.iter()
                        .filter(|(k, _)| seen.insert(*k))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                let (success, failure) = (dedup(&success), dedup(&failure));
                let ops = |b: &[(usize, Option<u8>)]| {
                    b.iter()
                        .map(|(k, v)| match v {
                            Some(v) => TxnOp::put(key(*k), [*v]),
                            None => TxnOp::delete(Range::key(key(*k))),
                        })
                        .collect::<Vec<_>>()
                };
                let resp = db
                    .txn(
                        Txn::new()
                            .when([compare])
                            .and_then(ops(&success))
                            .or_else(ops(&failure)),
                    )
                    .unwrap();
                assert_eq!(
                    resp.succeeded, holds,
                    "compare {cmp} {op:?} {operand} on {kk:?} = {cur:?}"
                );
                let branch = if holds { &success } else { &failure };
                let writes: Vec<_> = branch
                    .iter()
                    .map(|(k, v)| (key(*k), v.map(|v| (vec![v], 0))))
                    .collect();
                m.write(&writes);
                assert_eq!(resp.header_revision, m.rev());
            }
            Op::Compact { back } => {
                let target = m.rev() - back;
                for w in &mut watches {
                    drain(w, &m);
                }
                if target > m.compacted && target >= 1 {
                    db.compact(target).unwrap();
                    m.compacted = target;
                } else {
                    assert!(db.compact(target).is_err());
                }
            }
            Op::Grant { lease } => {
                let id = LEASES[lease];
                let r = db.lease_grant(TTL as i64, id);
                if m.leases.insert(id) {
                    r.unwrap();
                    m.deadlines.insert(id, m.now + TTL);
                } else {
                    assert!(matches!(r, Err(Error::LeaseExists { .. })));
                }
            }
            Op::Revoke { lease } => {
                let id = LEASES[lease];
                let r = db.lease_revoke(id);
                if m.leases.remove(&id) {
                    r.unwrap();
                    m.deadlines.remove(&id);
                    let victims: Vec<_> = m
                        .cur()
                        .iter()
                        .filter(|(_, kv)| kv.lease == id)
                        .map(|(k, _)| (k.clone(), None))
                        .collect();
                    m.write(&victims);
                } else {
                    assert!(matches!(r, Err(Error::LeaseNotFound { .. })));
                }
            }
            Op::KeepAlive { lease } => {
                let id = LEASES[lease];
                let r = db.lease_keep_alive(id);
                if m.leases.contains(&id) {
                    assert_eq!(r.unwrap(), TTL as i64);
                    m.deadlines.insert(id, m.now + TTL);
                } else {
                    assert!(matches!(r, Err(Error::LeaseNotFound { .. })));
                }
            }
            Op::Tick { secs } => {
                clock.advance(std::time::Duration::from_secs(secs));
                m.now += secs;
                db.expire_leases().unwrap();
                let expired: Vec<i64> = m
                    .deadlines
                    .iter()
                    .filter(|(_, &d)| d <= m.now)
                    .map(|(&id, _)| id)
                    .collect();
                for id in expired {
                    m.leases.remove(&id);
                    m.deadlines.remove(&id);
                    let victims: Vec<_> = m
                        .cur()
                        .iter()
                        .filter(|(_, kv)| kv.lease == id)
                        .map(|(k, _)| (k.clone(), None))
                        .collect();
                    m.write(&victims);
                }
                assert_eq!(db.lease_list().unwrap().len(), m.leases.len());
            }
            Op::Watch {
                prefix,
                back,
                prev_kv,
            } => {
                let start = (m.rev() + 1 - back).max(1);
                let range = Range::prefix(key(prefix));
                let watcher = db
                    .watch_with(
                        range.clone(),
                        WatchOptions {
                            start_revision: start,
                            prev_kv,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                let expect_cancel = (start <= m.compacted).then_some(m.compacted);
                watches.push(Watch {
                    watcher,
                    range,
                    start,
                    prev_kv,
                    expect_cancel,
                    cancelled: false,
                    got: Vec::new(),
                });
            }
        }
    }
    for w in &mut watches {
        drain(w, &m);
    }
    check_state(&db, &m);
    db.check().unwrap();
}

fn cases() -> u32 {
    std::env::var("ETCH_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn etcd_layer_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
